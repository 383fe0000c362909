//! The `async-nats` connection options a node's `[cluster]` table asks
//! for: servers, credentials, TLS, and reconnecting forever (a node must
//! recover by itself, decision 0158). It opens no stream and sends nothing.

use std::time::Duration;

use async_nats::{Client, ConnectOptions};

use fleetmq_core::config::ClusterConfig;

/// Why the cluster backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster.credentials_file {path}: {source} (give the path of a NATS .creds file)")]
    Credentials {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the NATS client for {servers}: {detail}")]
    Connect { servers: String, detail: String },
    #[error("cluster.node_name '{node}' is in use by a running node ({why}): give each node its own name")]
    NameInUse { node: String, why: String },
    #[error("the cluster backend was started twice")]
    AlreadyStarted,
}

/// Longest wait between two reconnect attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// A client that connects in the background and reconnects forever.
pub async fn connect(config: &ClusterConfig) -> Result<Client, ClusterError> {
    let mut options = ConnectOptions::new()
        .name(format!("fleetmq {}", config.node_name))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .ping_interval(Duration::from_secs(2))
        .reconnect_delay_callback(|attempts| {
            let step = Duration::from_millis(100).saturating_mul(attempts as u32);
            step.min(MAX_RECONNECT_DELAY)
        });
    if let Some(path) = &config.credentials_file {
        options =
            options
                .credentials_file(path)
                .await
                .map_err(|source| ClusterError::Credentials {
                    path: path.display().to_string(),
                    source,
                })?;
    }
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(ca) = &config.tls_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        options = options
            .add_client_certificate(cert.clone(), key.clone())
            .require_tls(true);
    }
    options
        .connect(config.servers.as_slice())
        .await
        .map_err(|error| ClusterError::Connect {
            servers: config.servers.join(", "),
            detail: error.to_string(),
        })
}
