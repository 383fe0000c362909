//! The `[cluster]` table: whether this broker is one node of a cluster
//! sharing routing and retained messages through NATS JetStream
//! (docs/decisions/0156), and how it reaches NATS. Default: no cluster,
//! the single binary on redb, unchanged.
//!
//! It owns the model and its checks only; connecting is the `fleetmq`
//! binary's (`broker/src/cluster`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::validate::ValidationError;

/// Which cluster backend, if any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterBackend {
    /// One broker on its own (the default).
    #[default]
    None,
    /// Nodes share routing and retained messages through NATS JetStream.
    Nats,
}

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `none` (default) or `nats`.
    pub backend: ClusterBackend,
    /// NATS server URLs (`nats://host:4222`, `tls://host:4222`); the client
    /// reconnects to any of them and learns the others from the cluster.
    pub servers: Vec<String>,
    /// This node's name, unique in the cluster: its durable consumer is
    /// named after it (letters, digits, `-`, `_`).
    pub node_name: String,
    /// Copies JetStream keeps of every stream (1 to 5; 3 survives the loss
    /// of one NATS server). Used when this node creates the streams.
    pub replicas: usize,
    /// A NATS credentials file (`.creds`: JWT and NKey seed).
    pub credentials_file: Option<PathBuf>,
    /// User and password for NATS, when not using a credentials file.
    pub username: Option<String>,
    pub password: Option<String>,
    /// TLS to NATS: the CA that signed the servers' certificates, and a
    /// client certificate and key when the servers ask for one.
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// How long a QoS >= 1 publish waits for JetStream's acknowledgement
    /// before it is refused to its publisher (milliseconds).
    pub publish_timeout_ms: u64,
    /// Messages waiting to be published to NATS; beyond it QoS >= 1
    /// publishes are refused and QoS 0 ones stay local.
    pub max_pending: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            backend: ClusterBackend::None,
            servers: Vec::new(),
            node_name: String::new(),
            replicas: 3,
            credentials_file: None,
            username: None,
            password: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            publish_timeout_ms: 5_000,
            max_pending: 65_536,
        }
    }
}

impl ClusterConfig {
    /// The example with every optional key present (for the loader's
    /// unknown-key check).
    pub fn schema_example() -> ClusterConfig {
        ClusterConfig {
            credentials_file: Some(PathBuf::new()),
            username: Some(String::new()),
            password: Some(String::new()),
            tls_ca: Some(PathBuf::new()),
            tls_cert: Some(PathBuf::new()),
            tls_key: Some(PathBuf::new()),
            ..ClusterConfig::default()
        }
    }
}

/// The checks of `[cluster]` (only when a backend is chosen).
pub(super) fn validate_cluster(cluster: &ClusterConfig, errors: &mut Vec<ValidationError>) {
    if cluster.backend == ClusterBackend::None {
        return;
    }
    let mut error = |key: &str, message: String| {
        errors.push(ValidationError {
            key: format!("cluster.{key}"),
            message,
        });
    };
    if cluster.servers.is_empty() {
        error(
            "servers",
            "no NATS server is given (write servers = [\"nats://127.0.0.1:4222\"])".into(),
        );
    }
    for server in &cluster.servers {
        let address = server
            .strip_prefix("nats://")
            .or_else(|| server.strip_prefix("tls://"))
            .unwrap_or(server);
        let port_ok = address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok || address.contains('/') {
            error(
                "servers",
                format!("{server:?} is not a NATS server URL (write nats://HOST:PORT or tls://HOST:PORT)"),
            );
        }
    }
    let name_ok = !cluster.node_name.is_empty()
        && cluster.node_name.len() <= 64
        && cluster
            .node_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !name_ok {
        error(
            "node_name",
            format!(
                "{:?} cannot name a node (give each node its own name of 1 to 64 letters, \
                 digits, '-' or '_')",
                cluster.node_name
            ),
        );
    }
    if !(1..=5).contains(&cluster.replicas) {
        error(
            "replicas",
            format!(
                "{} is outside what JetStream allows (write 1 to 5; 3 survives one lost server)",
                cluster.replicas
            ),
        );
    }
    if cluster.tls_cert.is_some() != cluster.tls_key.is_some() {
        error(
            "tls_cert",
            "a client certificate needs its key and a key its certificate (set both tls_cert and tls_key, or neither)".into(),
        );
    }
    if cluster.password.is_some() && cluster.username.is_none() {
        error(
            "password",
            "a password without a username (set username too)".into(),
        );
    }
    if cluster.publish_timeout_ms == 0 {
        error(
            "publish_timeout_ms",
            "0 would refuse every QoS >= 1 publish (write e.g. 5000)".into(),
        );
    }
    if cluster.max_pending == 0 {
        error(
            "max_pending",
            "0 would refuse every QoS >= 1 publish (write e.g. 65536)".into(),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn nats() -> ClusterConfig {
        ClusterConfig {
            backend: ClusterBackend::Nats,
            servers: vec!["nats://127.0.0.1:4222".into()],
            node_name: "node-1".into(),
            ..ClusterConfig::default()
        }
    }

    fn keys(cluster: &ClusterConfig) -> Vec<String> {
        let mut errors = Vec::new();
        validate_cluster(cluster, &mut errors);
        errors.into_iter().map(|e| e.key).collect()
    }

    #[test]
    fn the_default_is_no_cluster_and_valid() {
        assert!(keys(&ClusterConfig::default()).is_empty());
        assert!(keys(&nats()).is_empty());
    }

    #[test]
    fn bad_settings_are_named() {
        let mut cluster = nats();
        cluster.servers = vec!["nats://host".into(), "tls://h:1/x".into()];
        cluster.node_name = "a.b".into();
        cluster.replicas = 0;
        cluster.tls_cert = Some(PathBuf::from("c.pem"));
        cluster.password = Some("p".into());
        assert_eq!(
            keys(&cluster),
            [
                "cluster.servers",
                "cluster.servers",
                "cluster.node_name",
                "cluster.replicas",
                "cluster.tls_cert",
                "cluster.password"
            ]
        );
        cluster.servers.clear();
        assert!(keys(&cluster).contains(&"cluster.servers".to_owned()));
    }
}
