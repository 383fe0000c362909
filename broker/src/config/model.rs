//! The configuration model: what `fleetmq.toml` may say, with the defaults
//! that apply when it says nothing.
//!
//! Every field has a default, so an empty file (or no file) is a complete
//! configuration: one plain listener on 127.0.0.1:1883. Field docs state the
//! unit and what the default protects against.

use std::path::PathBuf;

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
    /// The dashboard, JSON API and Prometheus metrics (HTTP).
    pub http: HttpConfig,
    /// Folder for the broker's own files: the lab PKI that TLS listeners
    /// without `cert`/`key` use (`<data_dir>/pki`), and durable state.
    pub data_dir: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listeners: vec![ListenerConfig::default(), ListenerConfig::default_tls()],
            limits: LimitsConfig::default(),
            mqtt: MqttConfig::default(),
            log: LogConfig::default(),
            http: HttpConfig::default(),
            data_dir: PathBuf::from("fleetmq-data"),
        }
    }
}

impl Config {
    /// A configuration in which every optional setting is present, so that
    /// serializing it lists every key a file may contain (the loader checks
    /// files against it to report unknown keys and wrong types).
    pub fn schema_example() -> Config {
        let mut config = Config::default();
        let tls = TlsConfig {
            cert: Some(PathBuf::new()),
            key: Some(PathBuf::new()),
            chain: Some(PathBuf::new()),
            client_ca: Some(PathBuf::new()),
            crl: vec![PathBuf::new()],
            ..TlsConfig::default()
        };
        config.listeners = vec![ListenerConfig {
            tls: Some(tls),
            ..ListenerConfig::default()
        }];
        config.http.token = Some(String::new());
        config.http.token_file = Some(PathBuf::new());
        config.http.tls = Some(HttpTlsConfig {
            cert: PathBuf::new(),
            key: PathBuf::new(),
        });
        config
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
    /// TLS for this listener; absent means plain TCP.
    pub tls: Option<TlsConfig>,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            name: String::new(),
            bind: "127.0.0.1:1883".to_string(),
            max_connections: 0,
            tls: None,
        }
    }
}

impl ListenerConfig {
    /// The embedded default TLS listener: port 8883 on every address,
    /// certificates from the broker's own lab PKI, client certificates
    /// required (so it admits only devices the lab issued certificates to).
    pub fn default_tls() -> ListenerConfig {
        ListenerConfig {
            name: "tls".to_string(),
            bind: "0.0.0.0:8883".to_string(),
            max_connections: 0,
            tls: Some(TlsConfig::default()),
        }
    }
}

/// Whether a TLS listener asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClientCertPolicy {
    /// Never asks (one-way TLS: only the client checks the broker).
    None,
    /// Asks; a client without a certificate is admitted and authenticated
    /// otherwise (password, anonymous rules). A presented certificate must
    /// verify.
    Optional,
    /// Mutual TLS: no valid certificate, no connection.
    #[default]
    Required,
}

/// Lowest TLS version a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum TlsVersion {
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

/// TLS settings of one listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Server certificate (PEM; leaf first, intermediates may follow).
    /// Absent: the lab PKI's server certificate in `<data_dir>/pki`,
    /// created on first start.
    pub cert: Option<PathBuf>,
    /// Private key of `cert` (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: Option<PathBuf>,
    /// Extra intermediate certificates sent after `cert` (PEM).
    pub chain: Option<PathBuf>,
    /// CA certificates that client certificates must chain to (PEM).
    /// Absent with the lab PKI: its CA.
    pub client_ca: Option<PathBuf>,
    /// `none`, `optional` or `required`.
    pub client_certs: ClientCertPolicy,
    /// Certificate revocation lists (PEM) checked for client certificates.
    /// Absent with the lab PKI: its `crl.pem`.
    pub crl: Vec<PathBuf>,
    /// `"1.2"` or `"1.3"`.
    pub min_version: TlsVersion,
    /// Seconds a client may take from TCP accept to a finished handshake;
    /// silent or dribbling peers are cut off after it.
    pub handshake_timeout_secs: u64,
    /// Handshakes in progress at once on this listener; more wait (within
    /// their timeout), so a connect storm cannot exhaust memory or CPU.
    pub max_concurrent_handshakes: usize,
    /// TLS 1.2 session ids remembered for resumption (bounded cache).
    pub session_cache_size: usize,
    /// Issue session tickets (TLS 1.2 and 1.3), keys rotated every 6 hours.
    pub session_tickets: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            chain: None,
            client_ca: None,
            client_certs: ClientCertPolicy::Required,
            crl: Vec::new(),
            min_version: TlsVersion::Tls12,
            handshake_timeout_secs: 10,
            max_concurrent_handshakes: 256,
            session_cache_size: 4096,
            session_tickets: true,
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

/// The HTTP server: dashboard, JSON API, `/metrics`, `/healthz`, `/readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Serve HTTP at all.
    pub enabled: bool,
    /// Socket address to bind, `IP:PORT`; port 0 picks a free port (tests).
    /// The default only answers this machine, which is why it may run
    /// without a token; any other address requires `token` or `token_file`.
    pub bind: String,
    /// Access token for everything except `/healthz` and `/readyz`, sent as
    /// `Authorization: Bearer TOKEN` or entered once in the login form.
    /// Absent (and no `token_file`): no authentication, kick included;
    /// only allowed on a loopback `bind`.
    pub token: Option<String>,
    /// File whose first line is the token (keeps it out of the config file).
    pub token_file: Option<PathBuf>,
    /// Serve HTTPS with this certificate and key instead of plain HTTP.
    pub tls: Option<HttpTlsConfig>,
    /// Recently disconnected clients kept in the device registry.
    pub recent_disconnects: usize,
    /// Connects remembered per client id (with their timings).
    pub connect_history: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            bind: "127.0.0.1:8080".to_string(),
            token: None,
            token_file: None,
            tls: None,
            recent_disconnects: 200,
            connect_history: 10,
        }
    }
}

/// Certificate and key of the HTTPS dashboard (PEM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct HttpTlsConfig {
    /// Server certificate, leaf first, intermediates may follow.
    pub cert: PathBuf,
    /// Private key of `cert` (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: PathBuf,
}
