//! The `[[bridge]]` tables of `fleetmq.toml`: one link to a remote MQTT
//! broker each (Mosquitto's `connection` sections translate into these),
//! with the checks that need no file or socket.
//!
//! It must not open connections or read certificate files: the broker's
//! `bridge` module does that when it starts a link.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::validate::ValidationError;
use super::TlsVersion;

/// One bridge: a remote broker, what flows each way, and how to reach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeConfig {
    /// Name in logs, `$SYS/broker/connection/NAME/state`, `/api/bridges`
    /// and metrics (Mosquitto's `connection NAME`).
    pub name: String,
    /// Remote brokers as `HOST:PORT`, tried in turn (Mosquitto's
    /// `address`); the first is the main one.
    pub addresses: Vec<String>,
    /// After a failover, stay on the address that works (true) or go back
    /// to the first one at the next connect (false, Mosquitto's default).
    pub round_robin: bool,
    /// What is forwarded, each way.
    #[serde(rename = "topic")]
    pub topics: Vec<BridgeTopic>,
    /// MQTT version spoken to the remote.
    pub protocol_version: BridgeProtocol,
    /// Clean session on the remote side. Default false (Mosquitto's), so
    /// the remote keeps the bridge's subscriptions and QoS 1/2 state.
    pub clean_session: bool,
    /// Clean session on the local side, which holds what waits for the
    /// remote; absent: as `clean_session`.
    pub local_clean_session: Option<bool>,
    /// Client id on the remote; absent: `HOSTNAME.NAME`, as Mosquitto.
    pub remote_client_id: Option<String>,
    /// Id of the bridge's local session; absent: `local.` + the remote id.
    pub local_client_id: Option<String>,
    pub remote_username: Option<String>,
    pub remote_password: Option<String>,
    /// TLS to the remote; absent: plain TCP.
    pub tls: Option<BridgeTls>,
    /// Announce the link as a bridge (Mosquitto's protocol bit 0x80 with
    /// 3.1.1, so a Mosquitto remote does not send our messages back).
    pub try_private: bool,
    /// Publish the link's state (1 up, 0 down) on `notification_topic`.
    pub notifications: bool,
    /// Absent: `$SYS/broker/connection/<remote client id>/state`.
    pub notification_topic: Option<String>,
    /// Publish notifications locally only (true) or also on the remote,
    /// with a will there for when the link drops (false, Mosquitto's).
    pub notifications_local_only: bool,
    /// Keep alive towards the remote, seconds.
    pub keepalive_secs: u16,
    /// Wait before reconnecting: constant when `restart_max_secs` is
    /// absent, else growing from this to the maximum.
    pub restart_secs: u64,
    pub restart_max_secs: Option<u64>,
    /// Largest packet sent to or accepted from the remote; 0: no limit.
    pub max_packet_size: u32,
    /// Keep the retain flag on messages sent to the remote.
    pub outgoing_retain: bool,
    /// Unsubscribe `out`-only topics on the remote at connect, so a
    /// persistent remote session left from an older configuration stops
    /// sending them back.
    pub attempt_unsubscribe: bool,
    /// Receive Maximum announced to the remote (5.0); 0: not sent.
    pub receive_maximum: u16,
    /// Session Expiry Interval asked of the remote (5.0), seconds.
    pub session_expiry_interval: u32,
    /// Most messages the bridge's local session holds for the remote
    /// (queued, not yet in flight); more are dropped, counted and logged.
    /// Absent: `limits.max_queued_messages`; 0: no limit.
    pub max_queued_messages: Option<usize>,
    /// The same in bytes of payload; absent: `limits.max_queued_bytes`.
    pub max_queued_bytes: Option<usize>,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            name: String::new(),
            addresses: Vec::new(),
            round_robin: false,
            topics: Vec::new(),
            protocol_version: BridgeProtocol::V311,
            clean_session: false,
            local_clean_session: None,
            remote_client_id: None,
            local_client_id: None,
            remote_username: None,
            remote_password: None,
            tls: None,
            try_private: true,
            notifications: true,
            notification_topic: None,
            notifications_local_only: false,
            keepalive_secs: 60,
            restart_secs: 5,
            restart_max_secs: Some(30),
            max_packet_size: 0,
            outgoing_retain: true,
            attempt_unsubscribe: true,
            receive_maximum: 0,
            session_expiry_interval: 0,
            max_queued_messages: None,
            max_queued_bytes: None,
        }
    }
}

impl BridgeConfig {
    /// The client id used on the remote.
    pub fn remote_id(&self, hostname: &str) -> String {
        self.remote_client_id
            .clone()
            .unwrap_or_else(|| format!("{hostname}.{}", self.name))
    }

    /// The id of the bridge's local session.
    pub fn local_id(&self, hostname: &str) -> String {
        self.local_client_id
            .clone()
            .unwrap_or_else(|| format!("local.{}", self.remote_id(hostname)))
    }

    pub fn local_clean(&self) -> bool {
        self.local_clean_session.unwrap_or(self.clean_session)
    }

    /// A bridge with every optional key present, for the schema.
    pub(crate) fn schema_example() -> BridgeConfig {
        BridgeConfig {
            topics: vec![BridgeTopic::default()],
            local_clean_session: Some(false),
            remote_client_id: Some(String::new()),
            local_client_id: Some(String::new()),
            remote_username: Some(String::new()),
            remote_password: Some(String::new()),
            tls: Some(BridgeTls {
                ca_file: Some(PathBuf::new()),
                ca_path: Some(PathBuf::new()),
                cert: Some(PathBuf::new()),
                key: Some(PathBuf::new()),
                ..BridgeTls::default()
            }),
            notification_topic: Some(String::new()),
            max_queued_messages: Some(0),
            max_queued_bytes: Some(0),
            ..BridgeConfig::default()
        }
    }
}

/// One `topic` line: a pattern, its direction and QoS, and the prefixes
/// that map local topics to remote ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeTopic {
    pub pattern: String,
    pub direction: BridgeDirection,
    pub qos: u8,
    /// Added to the pattern locally.
    pub local_prefix: String,
    /// Added to the pattern on the remote.
    pub remote_prefix: String,
}

impl Default for BridgeTopic {
    fn default() -> Self {
        BridgeTopic {
            pattern: String::new(),
            direction: BridgeDirection::Out,
            qos: 0,
            local_prefix: String::new(),
            remote_prefix: String::new(),
        }
    }
}

impl BridgeTopic {
    /// The filter subscribed locally (`out`, `both`).
    pub fn local_filter(&self) -> String {
        format!("{}{}", self.local_prefix, self.pattern)
    }

    /// The filter subscribed on the remote (`in`, `both`).
    pub fn remote_filter(&self) -> String {
        format!("{}{}", self.remote_prefix, self.pattern)
    }

    pub fn is_out(&self) -> bool {
        matches!(self.direction, BridgeDirection::Out | BridgeDirection::Both)
    }

    pub fn is_in(&self) -> bool {
        matches!(self.direction, BridgeDirection::In | BridgeDirection::Both)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BridgeDirection {
    In,
    Out,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BridgeProtocol {
    #[serde(rename = "3.1.1")]
    V311,
    #[serde(rename = "5.0")]
    V5,
}

/// TLS towards the remote broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeTls {
    /// CA certificates the remote's certificate must chain to; with
    /// neither this nor `ca_path`, the system's roots (webpki-roots are
    /// not bundled: give a CA).
    pub ca_file: Option<PathBuf>,
    /// A folder of CA certificates (Mosquitto's `bridge_capath`).
    pub ca_path: Option<PathBuf>,
    /// Client certificate and key for mutual TLS.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Skip the check that the certificate names the host (Mosquitto's
    /// `bridge_insecure`): the chain is still verified. Unsafe; off.
    pub insecure: bool,
    /// ALPN protocols offered (e.g. `x-amzn-mqtt-ca` for AWS IoT on 443).
    pub alpn: Vec<String>,
    pub min_version: TlsVersion,
}

impl Default for BridgeTls {
    fn default() -> Self {
        BridgeTls {
            ca_file: None,
            ca_path: None,
            cert: None,
            key: None,
            insecure: false,
            alpn: Vec::new(),
            min_version: TlsVersion::Tls12,
        }
    }
}

/// Checks every `[[bridge]]` table.
pub(crate) fn validate_bridges(bridges: &[BridgeConfig], errors: &mut Vec<ValidationError>) {
    let mut names = std::collections::HashSet::new();
    // Two bridges with one local session would take it from each other.
    let mut local_ids = std::collections::HashMap::new();
    for (index, bridge) in bridges.iter().enumerate() {
        if let Some(first) = local_ids.insert(bridge.local_id("HOSTNAME"), index) {
            errors.push(ValidationError::new(
                format!("bridge[{index}].remote_client_id"),
                format!(
                    "bridge[{first}] has the same local session ({}); give each bridge its own remote_client_id or local_client_id",
                    bridge.local_id("HOSTNAME")
                ),
            ));
        }
    }
    for (index, bridge) in bridges.iter().enumerate() {
        let key = format!("bridge[{index}]");
        let mut fail = |field: &str, why: String| {
            errors.push(ValidationError::new(format!("{key}.{field}"), why));
        };
        if bridge.name.is_empty() || bridge.name.contains(['/', '+', '#', ' ']) {
            fail(
                "name",
                format!(
                    "{:?} cannot name a bridge: it must be non-empty, without / + # or spaces",
                    bridge.name
                ),
            );
        } else if !names.insert(bridge.name.as_str()) {
            fail(
                "name",
                format!("a second bridge named {:?}; names must differ", bridge.name),
            );
        }
        if bridge.addresses.is_empty() {
            fail(
                "addresses",
                "no remote address (write addresses = [\"HOST:PORT\"])".into(),
            );
        }
        for address in &bridge.addresses {
            if split_address(address).is_none() {
                fail("addresses", format!("{address:?} is not HOST:PORT"));
            }
        }
        if bridge.topics.is_empty() {
            fail(
                "topic",
                "no topic: the bridge would forward nothing (add [[bridge.topic]])".into(),
            );
        }
        for (t, topic) in bridge.topics.iter().enumerate() {
            if topic.qos > 2 {
                fail(
                    &format!("topic[{t}].qos"),
                    format!("{} is not a QoS (0, 1 or 2)", topic.qos),
                );
            }
            for (what, prefix) in [
                ("local_prefix", &topic.local_prefix),
                ("remote_prefix", &topic.remote_prefix),
            ] {
                if prefix.contains(['+', '#']) {
                    fail(
                        &format!("topic[{t}].{what}"),
                        format!("{prefix:?} cannot hold wildcards"),
                    );
                }
            }
            if topic.pattern.is_empty()
                && topic.local_prefix.is_empty()
                && topic.remote_prefix.is_empty()
            {
                fail(
                    &format!("topic[{t}].pattern"),
                    "an empty pattern needs a prefix (Mosquitto's rule)".into(),
                );
            }
        }
        if bridge.restart_secs == 0 {
            fail(
                "restart_secs",
                "0 would reconnect in a tight loop; give at least 1".into(),
            );
        }
        if let Some(max) = bridge.restart_max_secs {
            if max < bridge.restart_secs {
                fail(
                    "restart_max_secs",
                    format!("{max} is below restart_secs ({})", bridge.restart_secs),
                );
            }
        }
        if let Some(tls) = &bridge.tls {
            if tls.cert.is_some() != tls.key.is_some() {
                fail(
                    "tls",
                    "cert and key go together (mutual TLS needs both)".into(),
                );
            }
        }
    }
}

/// `HOST:PORT` (an IPv6 host in brackets) split in two.
pub fn split_address(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse().ok()?;
    (!host.is_empty()).then_some((host, port))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn bridge(name: &str) -> BridgeConfig {
        BridgeConfig {
            name: name.into(),
            addresses: vec!["remote.example:8883".into()],
            topics: vec![BridgeTopic {
                pattern: "x/#".into(),
                ..BridgeTopic::default()
            }],
            ..BridgeConfig::default()
        }
    }

    fn problems(bridges: &[BridgeConfig]) -> Vec<String> {
        let mut errors = Vec::new();
        validate_bridges(bridges, &mut errors);
        errors
            .iter()
            .map(|e| format!("{}: {}", e.key, e.message))
            .collect()
    }

    #[test]
    fn a_complete_bridge_passes_and_each_problem_is_named_by_key() {
        assert!(problems(&[bridge("a"), bridge("b")]).is_empty());
        let mut bad = bridge("a b");
        bad.addresses = vec!["no-port".into()];
        bad.topics[0].qos = 3;
        bad.topics[0].local_prefix = "lab/#".into();
        bad.restart_secs = 0;
        let found = problems(&[bad]);
        for key in [
            "bridge[0].name",
            "bridge[0].addresses",
            "bridge[0].topic[0].qos",
            "bridge[0].topic[0].local_prefix",
            "bridge[0].restart_secs",
        ] {
            assert!(found.iter().any(|p| p.starts_with(key)), "{key}: {found:?}");
        }
    }

    #[test]
    fn two_bridges_may_not_share_a_local_session() {
        let mut a = bridge("a");
        let mut b = bridge("b");
        a.remote_client_id = Some("same".into());
        b.remote_client_id = Some("same".into());
        let found = problems(&[a, b]);
        assert!(
            found.iter().any(|p| p.contains("same local session")),
            "{found:?}"
        );
    }

    #[test]
    fn addresses_split_with_ipv6_in_brackets() {
        assert_eq!(split_address("[::1]:1883"), Some(("::1", 1883)));
        assert_eq!(split_address("host:8883"), Some(("host", 8883)));
        assert_eq!(split_address("host"), None);
    }
}
