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
    /// Authentication sources and certificate groups.
    pub auth: AuthConfig,
    /// Topic access rules, evaluated in order (see [`AclRuleConfig`]).
    pub acl: Vec<AclRuleConfig>,
    /// Durable state: retained messages and persistent sessions.
    pub store: StoreConfig,
    /// The dashboard, JSON API and Prometheus metrics (HTTP).
    pub http: HttpConfig,
    /// Folder for the broker's own files: the lab PKI that TLS listeners
    /// without `cert`/`key` use (`<data_dir>/pki`), and durable state.
    pub data_dir: PathBuf,
    /// When started as root, switch to this user and its primary group once
    /// the listeners are bound (Mosquitto's `user`); ignored otherwise.
    /// Absent: no switch (Mosquitto's default is `mosquitto`).
    pub user: Option<String>,
    /// Certificate provisioning by claim (off by default; see
    /// [`ProvisionConfig`]).
    pub provision: super::provision::ProvisionConfig,
    /// Firmware updates over MQTT (off by default; see [`super::OtaConfig`]).
    pub ota: super::OtaConfig,
    /// Write the process id to this file at start and remove it at a clean
    /// stop (Mosquitto's `pid_file`).
    pub pid_file: Option<PathBuf>,
    /// Links to remote brokers (see `bridge.rs`).
    #[serde(rename = "bridge")]
    pub bridges: Vec<super::BridgeConfig>,
    /// One node of a cluster on NATS JetStream, or (default) a broker on
    /// its own (docs/decisions/0156).
    pub cluster: super::cluster::ClusterConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listeners: vec![ListenerConfig::default(), ListenerConfig::default_tls()],
            limits: LimitsConfig::default(),
            mqtt: MqttConfig::default(),
            log: LogConfig::default(),
            auth: AuthConfig::default(),
            acl: Vec::new(),
            store: StoreConfig::default(),
            http: HttpConfig::default(),
            data_dir: PathBuf::from("fleetmq-data"),
            user: None,
            provision: Default::default(),
            ota: Default::default(),
            pid_file: None,
            bridges: Vec::new(),
            cluster: super::cluster::ClusterConfig::default(),
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
            complete_chain_from: vec![PathBuf::new()],
            client_ca: Some(PathBuf::new()),
            crl: vec![PathBuf::new()],
            ..TlsConfig::default()
        };
        config.listeners = vec![ListenerConfig {
            tls: Some(tls),
            path: Some(String::new()),
            allow_anonymous: Some(false),
            mount_point: Some(String::new()),
            ..ListenerConfig::default()
        }];
        config.user = Some(String::new());
        config.pid_file = Some(PathBuf::new());
        config.provision.pki_dir = Some(PathBuf::new());
        config.provision.allow_list = Some(PathBuf::new());
        config.provision.tokens_file = Some(PathBuf::new());
        config.ota.dir = Some(PathBuf::new());
        config.ota.pki_dir = Some(PathBuf::new());
        config.cluster = super::cluster::ClusterConfig::schema_example();
        config.store.import_mosquitto_db = Some(PathBuf::new());
        config.log.file = Some(PathBuf::new());
        config.log.timestamp_format = Some(String::new());
        config.auth.password_file = Some(PathBuf::new());
        config.auth.acl_file = Some(PathBuf::new());
        config.auth.dynsec_file = Some(PathBuf::new());
        config.auth.groups = vec![GroupConfig {
            name: String::new(),
            identities: vec![String::new()],
            fingerprints: vec![String::new()],
        }];
        config.acl = vec![AclRuleConfig {
            identity: Some(String::new()),
            group: Some(String::new()),
            ..AclRuleConfig::default()
        }];
        config.bridges = vec![super::BridgeConfig::schema_example()];
        config.http.token = Some(String::new());
        config.http.token_file = Some(PathBuf::new());
        config.http.allowed_hosts = vec![String::new()];
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
    /// What the listener speaks on its sockets: MQTT directly (`mqtt`, the
    /// default) or MQTT inside WebSocket binary messages (`websockets`,
    /// after TLS on a TLS listener). Client certificates, identities,
    /// ACLs and limits are the same for both.
    pub protocol: ListenerProtocol,
    /// WebSocket listeners only: the one request path the upgrade is
    /// accepted on (`/mqtt`); absent accepts any path, like Mosquitto.
    pub path: Option<String>,
    /// Admit clients that present neither a client certificate nor a
    /// username/password. Absent: refused on TLS listeners, and on every
    /// listener when `auth.password_file` is set (as Mosquitto 2.0: a
    /// password file means clients are to log in); allowed on plain
    /// listeners of a broker without one (the default listener binds to
    /// 127.0.0.1 only).
    pub allow_anonymous: Option<bool>,
    /// Which part of a client certificate is the client's identity.
    pub identity: IdentitySource,
    /// Mosquitto's `use_identity_as_username`: the certificate identity
    /// becomes the username (ACL `user` lines and `%u` match it), and a
    /// verified certificate authenticates the client without a password.
    pub use_identity_as_username: bool,
    /// Mosquitto's `use_subject_as_username`: as above with the whole
    /// subject DN.
    pub use_subject_as_username: bool,
    /// Refuse a CONNECT whose client id differs from the client's identity
    /// (certificate identity, else verified username; a client with
    /// neither is refused), on any listener (5.0: 0x85 client identifier
    /// not valid; 3.1.1: return code 2).
    pub clientid_must_match_identity: bool,
    /// Replace the client id with the certificate identity (which must fit
    /// `limits.max_client_id_length`).
    pub identity_as_clientid: bool,
    /// MQTT protocol levels this listener accepts (Mosquitto 2.1's
    /// `accept_protocol_versions`): 3 (3.1), 4 (3.1.1), 5 (5.0). Empty
    /// accepts all three. Others are refused with "unsupported protocol
    /// version" (5.0: 0x84; 3.x: return code 1).
    pub accept_protocol_versions: Vec<u8>,
    /// Topic prefix for this listener's clients (Mosquitto's
    /// `mount_point`): added to what they publish and subscribe to
    /// (ACLs see the prefixed topic), removed from what they receive.
    pub mount_point: Option<String>,
    /// Which PROXY protocol header (HAProxy's, v1 text or v2 binary) each
    /// connection must start with; its client address then replaces the
    /// socket's everywhere (logs, per-IP limits, dashboard). Off by
    /// default: a header is only trustworthy from the balancer, so bind
    /// such a listener where only the balancer reaches it (decision 0123).
    pub proxy_protocol: ProxyProtocol,
    /// With TLS terminated at the balancer: take the client-certificate
    /// identity from the v2 header's SSL TLVs (the CN of a certificate the
    /// balancer verified). Off by default; needs `proxy_protocol` on and a
    /// plain listener (decision 0124).
    pub proxy_protocol_tls_identity: bool,
    /// Serve the provisioning topics (`$fleetmq/provision/...`) on this
    /// listener; needs `[provision] enabled` and no `mount_point`.
    pub provision: bool,
}

/// The PROXY protocol versions a listener expects (decision 0123).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProxyProtocol {
    /// No header is read; a connection that starts with one is refused.
    #[default]
    Off,
    /// Every connection starts with a v1 (text) header.
    V1,
    /// Every connection starts with a v2 (binary) header.
    V2,
    /// Every connection starts with a v1 or a v2 header.
    Any,
}

impl ProxyProtocol {
    /// Whether connections must start with a header.
    pub fn is_on(self) -> bool {
        self != ProxyProtocol::Off
    }
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            name: String::new(),
            bind: "127.0.0.1:1883".to_string(),
            max_connections: 0,
            tls: None,
            protocol: ListenerProtocol::Mqtt,
            path: None,
            allow_anonymous: None,
            identity: IdentitySource::Cn,
            use_identity_as_username: false,
            use_subject_as_username: false,
            clientid_must_match_identity: false,
            identity_as_clientid: false,
            accept_protocol_versions: Vec::new(),
            mount_point: None,
            proxy_protocol: ProxyProtocol::Off,
            proxy_protocol_tls_identity: false,
            provision: false,
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
            tls: Some(TlsConfig::default()),
            ..ListenerConfig::default()
        }
    }

    /// Whether clients without certificate or password are admitted;
    /// `password_file_set`: whether the broker has a password file.
    pub fn anonymous_allowed(&self, password_file_set: bool) -> bool {
        self.allow_anonymous
            .unwrap_or(self.tls.is_none() && !password_file_set)
    }
}

/// What a listener speaks on its sockets (its transport).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ListenerProtocol {
    /// MQTT packets directly on TCP (or TLS).
    #[default]
    Mqtt,
    /// MQTT packets in binary WebSocket messages, subprotocol `mqtt` or
    /// `mqttv3.1` (RFC 6455 over TCP or TLS).
    Websockets,
}

impl ListenerProtocol {
    /// The name in configurations, logs, the API and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerProtocol::Mqtt => "mqtt",
            ListenerProtocol::Websockets => "websockets",
        }
    }
}

/// Which part of a verified client certificate names the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IdentitySource {
    /// The subject common name.
    #[default]
    Cn,
    /// The whole subject DN (`CN=dev-a,OU=sensors`).
    Subject,
    /// The first DNS subject alternative name.
    SanDns,
    /// The first URI subject alternative name.
    SanUri,
    /// The SHA-256 fingerprint of the certificate, lower-case hex.
    Fingerprint,
}

/// Where passwords and Mosquitto ACLs come from, and certificate groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// A password file in `mosquitto_passwd` format (`user:$7$...` or
    /// `user:$6$...`); write entries with `fleetmq passwd FILE USER`.
    pub password_file: Option<PathBuf>,
    /// A Mosquitto `acl_file`, read as it is (`user`, `topic`, `pattern`).
    /// Its rules apply after the `[[acl]]` rules of this file.
    pub acl_file: Option<PathBuf>,
    /// A Mosquitto `dynamic-security.json` (the dynamic-security plugin's
    /// `plugin_opt_config_file`): clients, groups and roles, changed at run
    /// time on `$CONTROL/dynamic-security/v1` and saved back to this file.
    /// With it, dynsec decides connects and topic access (decision 0138).
    pub dynsec_file: Option<PathBuf>,
    /// Certificate groups beyond the OU values of certificates.
    #[serde(rename = "group")]
    pub groups: Vec<GroupConfig>,
}

/// A named group of certificate identities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct GroupConfig {
    pub name: String,
    /// Certificate identities (as the listener's `identity` gives them).
    pub identities: Vec<String>,
    /// SHA-256 certificate fingerprints, hex.
    pub fingerprints: Vec<String>,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    #[default]
    Allow,
    Deny,
}

/// What a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AccessKind {
    /// Subscribe to filters the topic covers, and receive messages on
    /// matching topics.
    #[default]
    Read,
    /// Publish to matching topics.
    Write,
    /// Read and write.
    ReadWrite,
    /// Subscribe only: the SUBSCRIBE is admitted, but each message is still
    /// delivered only where a read rule allows it.
    Subscribe,
}

/// One topic access rule. Rules are checked in order; the first whose
/// subject and topic match decides. With any rule present, what no rule
/// allows is denied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AclRuleConfig {
    pub permission: Permission,
    pub access: AccessKind,
    /// Topic or filter with `+`/`#` and the patterns `%c` (client id),
    /// `%u` (username), `%i` (identity), `%g` (group).
    pub topic: String,
    /// Applies to this identity: the certificate identity, else a username
    /// the password file verified. Never a client id or an unverified name.
    pub identity: Option<String>,
    /// Applies to members of this group.
    pub group: Option<String>,
    /// Applies to clients without a username only, as the lines before the
    /// first `user` line of a Mosquitto `acl_file` (docs/decisions/0030).
    pub anonymous: bool,
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
    /// CA certificates (PEM files, or folders as `client_ca`) from which the
    /// chain is completed when `cert` holds only the leaf and `chain` is
    /// absent: the certificates linking the leaf to its root are sent after
    /// it, root included, as OpenSSL does with Mosquitto's `cafile` and
    /// `capath`. Empty: `client_ca`, when set (decision 0136).
    pub complete_chain_from: Vec<PathBuf>,
    /// CA certificates that client certificates must chain to (PEM), or a
    /// folder of them (Mosquitto's `capath`: its `*.pem`, `*.crt` and
    /// `openssl rehash` files). Absent with the lab PKI: its CA.
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
    /// Seconds a client may take, from its ClientHello, to answer the
    /// server's flight and finish the handshake (within
    /// `handshake_timeout_secs` too). A classic ESP32 needs about 2 s for
    /// mutual TLS; peers that send a ClientHello and stall are cut off
    /// after this (decision 0086).
    pub client_flight_timeout_secs: u64,
    /// Handshakes doing cryptography at once on this listener; more wait
    /// (within their timeout), so a connect storm cannot exhaust memory or
    /// CPU. A handshake waiting for the peer holds no slot.
    pub max_concurrent_handshakes: usize,
    /// TLS 1.2 session ids remembered for resumption (bounded cache).
    pub session_cache_size: usize,
    /// Issue session tickets (TLS 1.2 and 1.3), keys rotated every 6 hours
    /// and kept in `<data_dir>/tls-ticket-keys` across restarts.
    pub session_tickets: bool,
    /// Accept X.509 version 1 client certificates issued directly by a
    /// `client_ca` (what `openssl x509 -req` makes without an extension
    /// file), checked like v3 ones: signature, validity, CRL and the
    /// handshake signature (decision 0090). Off by default: a v3-only
    /// listener is the stricter one. On for listeners translated from a
    /// mosquitto.conf, which accepts them.
    pub accept_v1_client_certificates: bool,
    /// Cipher suites offered, by IANA name (`TLS_AES_128_GCM_SHA256`,
    /// `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`, ...); only suites rustls
    /// has (AES-GCM and ChaCha20-Poly1305 with ECDHE). Empty: all of them.
    /// Mosquitto's `ciphers` and `ciphers_tls1.3` translate into it.
    pub cipher_suites: Vec<String>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            chain: None,
            complete_chain_from: Vec::new(),
            client_ca: None,
            client_certs: ClientCertPolicy::Required,
            crl: Vec::new(),
            min_version: TlsVersion::Tls12,
            handshake_timeout_secs: 10,
            client_flight_timeout_secs: 5,
            max_concurrent_handshakes: 8,
            session_cache_size: 4096,
            session_tickets: true,
            accept_v1_client_certificates: false,
            cipher_suites: Vec::new(),
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
    /// Largest PUBLISH or will payload accepted, in bytes (Mosquitto's
    /// `message_size_limit`); 0: no limit but `max_packet_size`. A larger
    /// PUBLISH is acknowledged and dropped (5.0: PUBACK/PUBREC 0x95) and
    /// its sender stays connected; a larger will refuses the CONNECT
    /// (5.0: 0x95; 3.1.1: return code 5, as Mosquitto). Not announced in
    /// CONNACK.
    pub max_payload_size: u32,
    /// QoS 1 and 2 messages in flight to one client at a time (5.0: the
    /// Receive Maximum we grant, and the most we send unacknowledged).
    pub max_inflight: u16,
    /// Payload bytes of QoS 1/2 messages in flight to one client at which
    /// the next waits for an acknowledgement (Mosquitto's
    /// `max_inflight_bytes`: the last one sent may cross it). 0: no limit.
    pub max_inflight_bytes: usize,
    /// Heap bytes the whole broker may have in use (Mosquitto's
    /// `memory_limit`); 0: no limit. Above it, PUBLISHes are refused (5.0
    /// QoS 1/2: 0x97 Quota exceeded; 3.1.1 QoS 1/2: disconnected, as
    /// Mosquitto does; QoS 0: dropped and counted) and new connections are
    /// refused (0x97; 3.1.1: server unavailable) until usage falls back.
    pub memory_limit: u64,
    /// Messages queued for one session beyond the inflight window; 0 means
    /// no count limit. When the queue of a connected subscriber is full,
    /// new messages for it are still queued past the bound and its
    /// publishers are held back (see `queue_full_wait_ms`, decision 0064).
    /// A full queue drops the new message (the queued ones keep their
    /// place, as Mosquitto does) and counts it only when the session is
    /// offline, when the queue has been full for `queue_full_wait_ms`, or
    /// for the retained messages a SUBSCRIBE asks for.
    pub max_queued_messages: usize,
    /// Payload and topic bytes queued for one session, bounded like
    /// `max_queued_messages`; 0 means no byte limit.
    pub max_queued_bytes: usize,
    /// Milliseconds publishers are held back for a connected subscriber
    /// whose queue is full: a message for it is queued past the
    /// bound instead of dropped, and the publisher's connection stops
    /// reading until the queue has room. A queue full for longer belongs to
    /// a reader that is not keeping up: messages for it are dropped (and
    /// counted) and publishers go on. 0 drops at once, like Mosquitto.
    pub queue_full_wait_ms: u64,
    /// Simultaneous client connections over all listeners; 0 means no limit.
    pub max_connections: usize,
    /// Longest topic name or filter, in bytes.
    pub max_topic_length: usize,
    /// Most levels (`/`-separated parts) in a topic name or filter.
    pub max_topic_levels: usize,
    /// Largest keep alive the broker accepts, in seconds. A 5.0 client asking
    /// for more (or for 0) is told this value as Server Keep Alive; a 3.1.1
    /// client asking for more is refused (identifier rejected), as Mosquitto
    /// does since 2.0.12 (CVE-2020-13849); 65535 turns the check off.
    pub max_keepalive: u16,
    /// Longest client identifier, in bytes.
    pub max_client_id_length: usize,
    /// Seconds a new connection may take to send CONNECT.
    pub connect_timeout_secs: u64,
    /// Seconds a write to a client may make no progress (the peer stopped
    /// reading and its TCP window is closed) before the client is
    /// disconnected, so a stalled peer cannot hold its connection task,
    /// its buffers and a take-over of its client id forever.
    pub write_timeout_secs: u64,
    /// Most topic aliases a 5.0 client may use towards the broker.
    pub topic_alias_maximum: u16,
    /// Most topic aliases the broker uses towards one 5.0 client that
    /// announces a Topic Alias Maximum (capped by that maximum); 0 never
    /// sends aliases. When they are all in use, the least recently sent
    /// topic gives its alias to the next one (decision 0129).
    pub max_outbound_topic_aliases: u16,
    /// Simultaneous connections from one IP address (IPv6: one /64) over
    /// all listeners; 0 means no limit. Further connections from it are
    /// closed at accept, before TLS or CONNECT, so one host cannot take
    /// every slot of `max_connections`.
    pub max_connections_per_ip: usize,
    /// New connections per second one IP address (IPv6: one /64) may open,
    /// sustained; 0 means no limit. A token bucket of
    /// `connection_burst_per_ip` tokens: connections beyond it are closed at
    /// accept, so a reconnect loop cannot keep the broker busy with
    /// handshakes.
    pub connection_rate_per_ip: u32,
    /// Connections one IP address may open at once before
    /// `connection_rate_per_ip` applies (a fleet behind one NAT coming back
    /// after a power cut).
    pub connection_burst_per_ip: u32,
    /// Subscriptions one session may hold; 0 means no limit. A SUBSCRIBE
    /// beyond it is refused per filter (5.0: 0x97 quota exceeded; 3.1.1:
    /// 0x80). Replacing an existing subscription always succeeds.
    pub max_subscriptions_per_client: usize,
    /// Retained messages the broker keeps over all topics; 0 means no
    /// limit. When full, a retained PUBLISH to a new topic is delivered to
    /// current subscribers but not retained (counted, logged); replacing or
    /// clearing an existing retained topic always works.
    pub max_retained_messages: usize,
    /// Topic and payload bytes of all retained messages; 0 means no limit.
    /// Same policy as `max_retained_messages`.
    pub max_retained_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_packet_size: 1024 * 1024,
            max_payload_size: 0,
            max_inflight: 20,
            max_inflight_bytes: 0,
            memory_limit: 0,
            max_queued_messages: 1000,
            max_queued_bytes: 16 * 1024 * 1024,
            queue_full_wait_ms: 1000,
            max_connections: 0,
            max_topic_length: 1024,
            max_topic_levels: 128,
            max_keepalive: 65535,
            max_client_id_length: 256,
            connect_timeout_secs: 10,
            write_timeout_secs: 30,
            topic_alias_maximum: 64,
            max_outbound_topic_aliases: 10,
            // Decision 0180: room for a NAT'd fleet; still a bound on one
            // host while `max_connections` is unlimited.
            max_connections_per_ip: 10_000,
            connection_rate_per_ip: 100,
            connection_burst_per_ip: 5_000,
            max_subscriptions_per_client: 1000,
            max_retained_messages: 100_000,
            max_retained_bytes: 64 * 1024 * 1024,
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
    /// Queue QoS 0 messages for offline persistent sessions (Mosquitto's
    /// `queue_qos0_messages`), within the session's queue bounds; they are
    /// kept in memory only, not in the store.
    pub queue_qos0_messages: bool,
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
            queue_qos0_messages: false,
        }
    }
}

/// How hard the store works to survive a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Every acknowledged change is on disk before its acknowledgement
    /// leaves (one fsync per change, or per group of concurrent changes).
    Always,
    /// Changes are committed in groups, each as soon as the previous
    /// commit ended (lingering `batch_interval_ms` for more only when it
    /// is set above 0); acknowledgements wait for their group's commit.
    #[default]
    Batch,
    /// Changes are committed every `periodic_interval_secs` without holding
    /// acknowledgements (Mosquitto's `autosave_interval`): a power cut may
    /// lose that window.
    Periodic,
}

/// Durable state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Keep retained messages and persistent sessions across restarts.
    pub enabled: bool,
    /// The store file; relative to `data_dir` when relative.
    pub path: PathBuf,
    /// `always`, `batch` or `periodic`.
    pub fsync: FsyncPolicy,
    /// For `batch`: how long a group waits for more changes before its
    /// commit, in milliseconds. 0 (the default): none, the next commit
    /// starts as soon as the previous one ended (decision 0168); set it
    /// only to spare fsyncs on flash that wears.
    pub batch_interval_ms: u64,
    /// Commit period for `periodic`, in seconds.
    pub periodic_interval_secs: u64,
    /// Commit through a write-ahead log in front of the store file
    /// (`<path>.wal/` beside it): one append and one fdatasync per group,
    /// changes made meanwhile forming the next group, the file updated
    /// from the log off the acknowledgement path (decisions 0178, 0196). The fsync policies keep their
    /// meaning. On by default since decision 0178's session-13 update;
    /// `wal = false` writes each group straight into the redb file (one
    /// transaction and fsync per group), with no directory beside it.
    pub wal: bool,
    /// A Mosquitto persistence file (`mosquitto.db`; relative to
    /// `data_dir` when relative) imported at the first start, when the
    /// store file does not exist yet: retained messages, sessions and
    /// queued messages carry over as `fleetmq migrate mosquitto --db`
    /// would. A damaged file stops the start. Translated from
    /// `persistence_file` (default `mosquitto.db`) when `persistence` is on.
    pub import_mosquitto_db: Option<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            enabled: true,
            path: PathBuf::from("fleetmq.redb"),
            fsync: FsyncPolicy::Batch,
            batch_interval_ms: 0,
            periodic_interval_secs: 30,
            wal: true,
            import_mosquitto_db: None,
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
    /// `auto` (journald-friendly lines without timestamps when running
    /// under systemd, timestamps otherwise), `full` or `journald`.
    pub format: LogFormat,
    /// Log clients connecting and disconnecting (at info), as Mosquitto's
    /// `connection_messages`; false leaves those lines out. Refusals and
    /// protocol errors are always logged.
    pub connection_messages: bool,
    /// Also append the log to this file (Mosquitto's `log_dest file`),
    /// with timestamps; reopened on SIGHUP for logrotate.
    pub file: Option<PathBuf>,
    /// strftime format of timestamps (Mosquitto's `log_timestamp_format`),
    /// in UTC: `%Y %m %d %H %M %S %j %s %F %T %z %Z %%`. Absent: RFC 3339.
    pub timestamp_format: Option<String>,
    /// Also publish error, warning and info lines on
    /// `$SYS/broker/log/E|W|N` (Mosquitto's `log_dest topic`; debug lines
    /// never, as in Mosquitto). Set at start; a change needs a restart.
    pub topic: bool,
}

/// Shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Auto,
    Full,
    Journald,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_string(),
            format: LogFormat::Auto,
            connection_messages: true,
            file: None,
            timestamp_format: None,
            topic: false,
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
    /// Extra names the dashboard may be reached by, as a browser writes them
    /// in the `Host` header (`"lab-pc.local"`, `"lab-pc.local:8080"`; without
    /// a port, any port). The bind address, `localhost`, `127.0.0.1` and
    /// `[::1]` are always allowed; any other `Host` is refused with 421, so a
    /// web page cannot reach the dashboard by rebinding its own name to this
    /// machine (DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// HTTP connections open at once (TLS handshakes included); more are
    /// closed at accept. Keeps the dashboard from taking the file descriptors
    /// MQTT needs: keep it well below `ulimit -n` minus MQTT's connections.
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers, on a new or an
    /// idle kept-alive connection; slower ones are closed (slow-HTTP).
    pub header_timeout_secs: u64,
    /// Seconds a connection may go without reading or writing a byte (a
    /// stalled request body, a silent TLS handshake) before it is closed.
    pub idle_timeout_secs: u64,
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
            allowed_hosts: Vec::new(),
            max_connections: 256,
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
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
