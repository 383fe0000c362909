//! The configuration model: what `fleetmq.toml` may say, with the defaults
//! that apply when it says nothing.
//!
//! Every field has a default, so an empty file (or no file) is a complete
//! configuration: one plain listener on 127.0.0.1:1883. Field docs state the
//! unit and what the default protects against.

use serde::{Deserialize, Serialize};

/// The whole broker configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The MQTT listeners. Default: one plain listener on 127.0.0.1:1883.
    #[serde(rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    /// Protocol and resource limits that apply to every client.
    pub limits: LimitsConfig,
    /// Behaviour of sessions and messages.
    pub mqtt: MqttConfig,
    /// Logging.
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listeners: vec![ListenerConfig::default()],
            limits: LimitsConfig::default(),
            mqtt: MqttConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// One MQTT listener (a bound TCP socket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerConfig {
    /// Name used in logs and metrics; defaults to `mqtt-<port>` when empty.
    pub name: String,
    /// Socket address to bind, `IP:PORT`; port 0 picks a free port (tests).
    pub bind: String,
    /// Most simultaneous connections on this listener; 0 means no limit
    /// beyond the global `limits.max_connections`.
    pub max_connections: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            name: String::new(),
            bind: "127.0.0.1:1883".to_string(),
            max_connections: 0,
        }
    }
}

/// Limits on what one client may make the broker hold or do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest MQTT packet accepted or sent, in bytes (whole packet). A
    /// larger incoming packet disconnects the client (5.0: 0x95). Bounds the
    /// per-connection read buffer.
    pub max_packet_size: u32,
    /// QoS 1 and 2 messages in flight to one client at a time (5.0: the
    /// Receive Maximum we grant, and the most we send unacknowledged).
    pub max_inflight: u16,
    /// Messages queued for one session beyond the inflight window; 0 means
    /// no count limit. When full, new messages for that session are dropped
    /// (the newest is dropped, like Mosquitto) and counted.
    pub max_queued_messages: usize,
    /// Payload bytes queued for one session; 0 means no byte limit.
    pub max_queued_bytes: usize,
    /// Simultaneous client connections over all listeners; 0 means no limit.
    pub max_connections: usize,
    /// Longest topic name or filter, in bytes.
    pub max_topic_length: usize,
    /// Most levels (`/`-separated parts) in a topic name or filter.
    pub max_topic_levels: usize,
    /// Largest keep alive the broker accepts, in seconds. A 5.0 client asking
    /// for more (or for 0) is told this value as Server Keep Alive; a 3.1.1
    /// client is held to it silently.
    pub max_keepalive: u16,
    /// Longest client identifier, in bytes.
    pub max_client_id_length: usize,
    /// Seconds a new connection may take to send CONNECT.
    pub connect_timeout_secs: u64,
    /// Most topic aliases a 5.0 client may use towards the broker.
    pub topic_alias_maximum: u16,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_packet_size: 1024 * 1024,
            max_inflight: 20,
            max_queued_messages: 1000,
            max_queued_bytes: 16 * 1024 * 1024,
            max_connections: 0,
            max_topic_length: 1024,
            max_topic_levels: 128,
            max_keepalive: 65535,
            max_client_id_length: 256,
            connect_timeout_secs: 10,
            topic_alias_maximum: 64,
        }
    }
}

/// Session and message behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Accept retained messages (5.0 CONNACK Retain Available).
    pub retain_available: bool,
    /// Accept an empty client id: the broker assigns one (3.1.1 only with
    /// clean session, as the specification requires).
    pub allow_zero_length_clientid: bool,
    /// Prefix of assigned client identifiers.
    pub auto_id_prefix: String,
    /// Seconds a persistent 3.1.1 session (clean session 0) is kept after its
    /// client disconnects; 0 keeps it until the broker restarts. 5.0 clients
    /// state their own Session Expiry Interval, capped by
    /// `max_session_expiry_secs`.
    pub persistent_session_expiry_secs: u32,
    /// Cap on a 5.0 client's Session Expiry Interval, in seconds.
    pub max_session_expiry_secs: u32,
    /// Seconds between `$SYS/broker/...` updates; 0 disables them.
    pub sys_interval_secs: u64,
    /// Maximum QoS granted to subscriptions and accepted in PUBLISH.
    pub max_qos: u8,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            retain_available: true,
            allow_zero_length_clientid: true,
            auto_id_prefix: "auto-".to_string(),
            persistent_session_expiry_secs: 0,
            max_session_expiry_secs: u32::MAX,
            sys_interval_secs: 10,
            max_qos: 2,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `fleetmq=debug`; the `RUST_LOG`
    /// environment variable overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_string(),
        }
    }
}
