//! Validation: the checks that a well-typed [`Config`] must still pass before
//! the broker starts (addresses that parse, limits inside what MQTT allows,
//! no two listeners fighting over one socket).
//!
//! It sees only the merged configuration, never the file or the environment:
//! [`super::load`] maps each [`ValidationError::key`] back to the line or the
//! environment variable that set it. It must not open sockets or files.

use std::collections::HashMap;
use std::net::SocketAddr;

use tracing_subscriber::EnvFilter;

use super::model::{Config, HttpConfig, LimitsConfig, ListenerConfig, ListenerProtocol};

/// Largest packet MQTT can express: a 268,435,455-byte remaining length
/// plus a 5-byte fixed header.
pub const MQTT_MAX_PACKET_SIZE: u32 = 268_435_460;
/// Smallest `max_packet_size` we accept: below this even a CONNECT with a
/// short client id and a will does not fit, so every client would be refused.
const MIN_PACKET_SIZE: u32 = 64;
/// MQTT strings (topics, client ids) carry a 16-bit length.
const MQTT_MAX_STRING_LENGTH: usize = 65_535;

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ValidationError {
    /// The dotted path of the offending setting, as written in TOML, with
    /// 0-based indexes for listeners: `limits.max_inflight`,
    /// `listener[1].bind`.
    pub key: String,
    /// What is wrong, then in parentheses what to do about it.
    pub message: String,
}

impl ValidationError {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Checks everything the type system cannot; returns every problem found,
/// in the order the settings appear in `config/fleetmq.toml`.
pub fn validate(config: &Config) -> Result<(), Vec<ValidationError>> {
    let mut errors = Vec::new();
    validate_listeners(&config.listeners, &mut errors);
    validate_limits(&config.limits, &mut errors);
    validate_mqtt(config, &mut errors);
    validate_log(&config.log.level, &mut errors);
    validate_http(config, &mut errors);
    super::provision_checks::validate_provision(config, &mut errors);
    super::ota::validate_ota(config, &mut errors);
    super::bridge::validate_bridges(&config.bridges, &mut errors);
    super::cluster::validate_cluster(&config.cluster, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn validate_listeners(listeners: &[ListenerConfig], errors: &mut Vec<ValidationError>) {
    if listeners.is_empty() {
        errors.push(ValidationError::new(
            "listener",
            "no listener is configured, so no client could connect \
             (add a [[listener]] table with bind = \"IP:PORT\", or remove `listener = []`)",
        ));
        return;
    }
    // Index of the first listener that used a bind address or a name, so a
    // duplicate can point back at it.
    let mut binds: Vec<(usize, SocketAddr)> = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (index, listener) in listeners.iter().enumerate() {
        let key = format!("listener[{index}]");
        if let Some(mount) = &listener.mount_point {
            if mount.contains(['+', '#', '\0']) || mount.starts_with('$') {
                errors.push(ValidationError::new(
                    format!("{key}.mount_point"),
                    format!(
                        "{mount:?} cannot prefix topics: no wildcard (+ #), NUL or leading $ \
                         (write a plain prefix such as \"lab/\")"
                    ),
                ));
            }
        }
        if let Some(bad) = listener
            .accept_protocol_versions
            .iter()
            .find(|level| !(3..=5).contains(*level))
        {
            errors.push(ValidationError::new(
                format!("{key}.accept_protocol_versions"),
                format!(
                    "{bad} is not an MQTT protocol level (write 3 for MQTT 3.1, 4 for 3.1.1, \
                     5 for 5.0)"
                ),
            ));
        }
        if !listener.name.is_empty() {
            if let Some(first) = names.insert(listener.name.as_str(), index) {
                errors.push(ValidationError::new(
                    format!("{key}.name"),
                    format!(
                        "the name {:?} is already used by listener[{first}], so logs and \
                         metrics could not tell them apart (give each listener its own name)",
                        listener.name
                    ),
                ));
            }
        }
        validate_websocket_path(listener, &key, errors);
        let addr = match listener.bind.parse::<SocketAddr>() {
            Ok(addr) => addr,
            Err(_) => {
                errors.push(ValidationError::new(
                    format!("{key}.bind"),
                    format!(
                        "{:?} is not a socket address (write IP:PORT, such as \"0.0.0.0:1883\" \
                         or \"[::]:1883\"; host names are not resolved)",
                        listener.bind
                    ),
                ));
                continue;
            }
        };
        // Port 0 asks the OS for a fresh port each time, so it never clashes.
        if addr.port() != 0 {
            if let Some((first, _)) = binds.iter().find(|(_, other)| overlaps(addr, *other)) {
                errors.push(ValidationError::new(
                    format!("{key}.bind"),
                    format!(
                        "{} overlaps the bind address {:?} of listener[{first}], so the second \
                         bind would fail with \"address in use\" (use another port, or remove \
                         one of the listeners)",
                        listener.bind, listeners[*first].bind
                    ),
                ));
            }
        }
        binds.push((index, addr));
        validate_proxy_protocol(listener, &key, errors);
    }
}

/// `proxy_protocol_tls_identity` trusts the balancer's word for a client
/// certificate: only where headers are read, and never next to a TLS
/// handshake of fleetmq's own (decision 0124).
fn validate_proxy_protocol(
    listener: &ListenerConfig,
    key: &str,
    errors: &mut Vec<ValidationError>,
) {
    if !listener.proxy_protocol_tls_identity {
        return;
    }
    if !listener.proxy_protocol.is_on() {
        errors.push(ValidationError::new(
            format!("{key}.proxy_protocol_tls_identity"),
            "needs proxy_protocol = \"v2\" or \"any\": the identity comes from the \
             balancer's PROXY v2 header, which this listener does not read"
                .to_string(),
        ));
    } else if listener.proxy_protocol == super::model::ProxyProtocol::V1 {
        errors.push(ValidationError::new(
            format!("{key}.proxy_protocol_tls_identity"),
            "needs proxy_protocol = \"v2\" or \"any\": a v1 header carries no TLS \
             information"
                .to_string(),
        ));
    }
    if listener.tls.is_some() {
        errors.push(ValidationError::new(
            format!("{key}.proxy_protocol_tls_identity"),
            "is for listeners whose TLS the balancer terminates; this one runs TLS itself, \
             so its client certificates are checked here (remove [listener.tls] or the option)"
                .to_string(),
        ));
    }
}

/// `path` is a WebSocket setting and an absolute request path.
fn validate_websocket_path(
    listener: &ListenerConfig,
    key: &str,
    errors: &mut Vec<ValidationError>,
) {
    let Some(path) = &listener.path else {
        return;
    };
    if listener.protocol != ListenerProtocol::Websockets {
        errors.push(ValidationError::new(
            format!("{key}.path"),
            "path applies only to WebSocket listeners (add protocol = \"websockets\", \
             or remove path)",
        ));
    } else if !path.starts_with('/')
        || path.len() > 1024
        || path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
    {
        errors.push(ValidationError::new(
            format!("{key}.path"),
            format!(
                "{path:?} is not a request path (write one starting with '/', such as \"/mqtt\", \
                 without spaces, query or fragment)"
            ),
        ));
    }
}

/// Whether binding both addresses would fail: the same address, or the same
/// port where one side is the wildcard of the same address family.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() || a.is_ipv4() != b.is_ipv4() {
        return false;
    }
    a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified()
}

fn validate_limits(limits: &LimitsConfig, errors: &mut Vec<ValidationError>) {
    let mut check = |ok: bool, key: &str, message: String| {
        if !ok {
            errors.push(ValidationError::new(format!("limits.{key}"), message));
        }
    };
    check(
        (MIN_PACKET_SIZE..=MQTT_MAX_PACKET_SIZE).contains(&limits.max_packet_size),
        "max_packet_size",
        format!(
            "{} bytes is outside what MQTT allows (use a value from {MIN_PACKET_SIZE} to \
             {MQTT_MAX_PACKET_SIZE}; the default is 1048576)",
            limits.max_packet_size
        ),
    );
    check(
        limits.max_inflight >= 1,
        "max_inflight",
        "0 would forbid every QoS 1 and 2 message (use at least 1; the default is 20)".into(),
    );
    check(
        (1..=MQTT_MAX_STRING_LENGTH).contains(&limits.max_topic_length),
        "max_topic_length",
        format!(
            "{} bytes cannot hold an MQTT topic (use a value from 1 to {MQTT_MAX_STRING_LENGTH}; \
             the default is 1024)",
            limits.max_topic_length
        ),
    );
    check(
        limits.max_topic_levels >= 1,
        "max_topic_levels",
        "0 would refuse every topic (use at least 1; the default is 128)".into(),
    );
    check(
        limits.max_keepalive >= 1,
        "max_keepalive",
        "0 would tell 5.0 clients to disable keep alive, so dead connections would never be \
         noticed (use at least 1 second; the default is 65535)"
            .into(),
    );
    check(
        (1..=MQTT_MAX_STRING_LENGTH).contains(&limits.max_client_id_length),
        "max_client_id_length",
        format!(
            "{} bytes cannot hold an MQTT client id (use a value from 1 to \
             {MQTT_MAX_STRING_LENGTH}; MQTT requires accepting at least 23, the default \
             is 256)",
            limits.max_client_id_length
        ),
    );
    check(
        limits.connect_timeout_secs >= 1,
        "connect_timeout_secs",
        "0 would drop every connection before its CONNECT arrives (use at least 1; the default \
         is 10)"
            .into(),
    );
    check(
        limits.write_timeout_secs >= 1,
        "write_timeout_secs",
        "0 would drop every client whose socket buffer is ever full (use at least 1; the \
         default is 30)"
            .into(),
    );
    check(
        limits.connection_rate_per_ip == 0 || limits.connection_burst_per_ip >= 1,
        "connection_burst_per_ip",
        "0 would refuse every connection while connection_rate_per_ip is set (use at least 1; \
         the default is 500)"
            .into(),
    );
}

fn validate_mqtt(config: &Config, errors: &mut Vec<ValidationError>) {
    let mqtt = &config.mqtt;
    if mqtt.max_qos > 2 {
        errors.push(ValidationError::new(
            "mqtt.max_qos",
            format!(
                "QoS {} does not exist (use 0, 1 or 2; the default is 2)",
                mqtt.max_qos
            ),
        ));
    }
    // An assigned id is the prefix plus a unique suffix; if the prefix alone
    // already fills the limit, every assigned id would be refused.
    let max_id = config.limits.max_client_id_length;
    if mqtt.allow_zero_length_clientid && mqtt.auto_id_prefix.len() >= max_id {
        errors.push(ValidationError::new(
            "mqtt.auto_id_prefix",
            format!(
                "the prefix is {} bytes, leaving no room under limits.max_client_id_length = \
                 {max_id} for the unique part of assigned client ids (shorten the prefix or \
                 raise the limit)",
                mqtt.auto_id_prefix.len()
            ),
        ));
    }
}

fn validate_log(level: &str, errors: &mut Vec<ValidationError>) {
    // An empty filter parses, but silently logs errors only.
    if level.trim().is_empty() {
        errors.push(ValidationError::new(
            "log.level",
            "the filter is empty (use a level such as \"info\", or \"off\" to disable logging)",
        ));
        return;
    }
    if let Err(error) = EnvFilter::try_new(level) {
        errors.push(ValidationError::new(
            "log.level",
            format!(
                "{level:?} is not a tracing filter: {error} (use a level such as \"info\" or \
                 directives such as \"info,fleetmq=debug\")"
            ),
        ));
    }
}

/// Most connects remembered per client id; each is a few hundred bytes.
const MAX_CONNECT_HISTORY: usize = 1000;

/// Shortest dashboard token accepted on a bind other machines can reach:
/// 32 characters of `openssl rand -hex 16` carry 128 bits, out of reach of
/// guessing even without the rate limit.
pub const MIN_REMOTE_TOKEN_CHARS: usize = 32;

/// Why `token` is too weak for a dashboard bound to `bind`, if it is: on a
/// non-loopback address it must have [`MIN_REMOTE_TOKEN_CHARS`] characters.
/// Shared by this check (`http.token`) and the token file's reader.
pub fn weak_token(token: &str, bind: &str) -> Option<String> {
    let remote = bind
        .parse::<SocketAddr>()
        .is_ok_and(|addr| !addr.ip().is_loopback());
    let length = token.trim().chars().count();
    (remote && length < MIN_REMOTE_TOKEN_CHARS).then(|| {
        format!(
            "the token has {length} characters; on {bind}, which other machines can reach, it \
             needs at least {MIN_REMOTE_TOKEN_CHARS} (make one with `openssl rand -hex 16`)"
        )
    })
}

fn validate_http(config: &Config, errors: &mut Vec<ValidationError>) {
    let http: &HttpConfig = &config.http;
    if !http.enabled {
        return;
    }
    match http.bind.parse::<SocketAddr>() {
        Err(_) => errors.push(ValidationError::new(
            "http.bind",
            format!(
                "{:?} is not a socket address (write IP:PORT, such as \"127.0.0.1:8080\"; host \
                 names are not resolved)",
                http.bind
            ),
        )),
        Ok(addr) => {
            let has_token = http.token.is_some() || http.token_file.is_some();
            if !addr.ip().is_loopback() && !has_token {
                errors.push(ValidationError::new(
                    "http.bind",
                    format!(
                        "{} is reachable from other machines, and without a token anyone \
                         there could read the device list and disconnect devices (set \
                         http.token or http.token_file, or bind to 127.0.0.1)",
                        http.bind
                    ),
                ));
            }
            let clash = config.listeners.iter().enumerate().find(|(_, listener)| {
                listener
                    .bind
                    .parse::<SocketAddr>()
                    .is_ok_and(|other| addr.port() != 0 && overlaps(addr, other))
            });
            if let Some((index, listener)) = clash {
                errors.push(ValidationError::new(
                    "http.bind",
                    format!(
                        "{} overlaps the bind address {:?} of listener[{index}] (give the \
                         dashboard its own port; the default is 8080)",
                        http.bind, listener.bind
                    ),
                ));
            }
        }
    }
    if http.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        errors.push(ValidationError::new(
            "http.token",
            "the token is empty, which anyone can guess (use a long random string, e.g. from \
             `openssl rand -hex 24`, or remove the setting on a loopback bind)",
        ));
    }
    if let Some(problem) = http
        .token
        .as_deref()
        .filter(|token| !token.trim().is_empty())
        .and_then(|token| weak_token(token, &http.bind))
    {
        errors.push(ValidationError::new("http.token", problem));
    }
    for host in &http.allowed_hosts {
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/' || c == ',') {
            errors.push(ValidationError::new(
                "http.allowed_hosts",
                format!(
                    "{host:?} is not a host name as a Host header gives it (write \
                     \"lab-pc.local\" or \"lab-pc.local:8080\")"
                ),
            ));
        }
    }
    if !(1..=65_535).contains(&http.max_connections) {
        errors.push(ValidationError::new(
            "http.max_connections",
            format!(
                "{} is outside 1 to 65535 (the default is 256)",
                http.max_connections
            ),
        ));
    }
    for (key, value, default) in [
        ("http.header_timeout_secs", http.header_timeout_secs, 10),
        ("http.idle_timeout_secs", http.idle_timeout_secs, 60),
    ] {
        if !(1..=3600).contains(&value) {
            errors.push(ValidationError::new(
                key,
                format!("{value} is outside 1 to 3600 seconds (the default is {default})"),
            ));
        }
    }
    if http.token.is_some() && http.token_file.is_some() {
        errors.push(ValidationError::new(
            "http.token_file",
            "both http.token and http.token_file are set, so it is unclear which one counts \
             (keep one of them)",
        ));
    }
    if let Some(tls) = &http.tls {
        if tls.cert.as_os_str().is_empty() || tls.key.as_os_str().is_empty() {
            errors.push(ValidationError::new(
                "http.tls",
                "HTTPS needs both a certificate and a key (set http.tls.cert and http.tls.key \
                 to PEM files, or remove [http.tls] to serve plain HTTP)",
            ));
        }
    }
    if !(1..=MAX_CONNECT_HISTORY).contains(&http.connect_history) {
        errors.push(ValidationError::new(
            "http.connect_history",
            format!(
                "{} is outside 1 to {MAX_CONNECT_HISTORY} (the default is 10)",
                http.connect_history
            ),
        ));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn keys(config: &Config) -> Vec<String> {
        match validate(config) {
            Ok(()) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.key).collect(),
        }
    }

    fn listener(name: &str, bind: &str) -> ListenerConfig {
        ListenerConfig {
            name: name.to_string(),
            bind: bind.to_string(),
            ..ListenerConfig::default()
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(validate(&Config::default()), Ok(()));
    }

    #[test]
    fn a_websocket_path_needs_a_websocket_listener_and_a_slash() {
        let mut mqtt = listener("a", "127.0.0.1:1883");
        mqtt.path = Some("/mqtt".to_string());
        let mut relative = listener("b", "127.0.0.1:1884");
        relative.protocol = ListenerProtocol::Websockets;
        relative.path = Some("mqtt".to_string());
        let mut good = listener("c", "127.0.0.1:1885");
        good.protocol = ListenerProtocol::Websockets;
        good.path = Some("/mqtt".to_string());
        let config = Config {
            listeners: vec![mqtt, relative, good],
            ..Config::default()
        };
        assert_eq!(keys(&config), ["listener[0].path", "listener[1].path"]);
    }

    #[test]
    fn proxy_tls_identity_needs_a_v2_header_on_a_plain_listener() {
        use crate::config::ProxyProtocol;
        let with = |proxy_protocol, tls: bool| ListenerConfig {
            proxy_protocol,
            proxy_protocol_tls_identity: true,
            tls: tls.then(Default::default),
            ..listener("", "127.0.0.1:0")
        };
        let config = Config {
            listeners: vec![
                with(ProxyProtocol::V2, false),
                with(ProxyProtocol::Any, false),
                with(ProxyProtocol::Off, false),
                with(ProxyProtocol::V1, false),
                with(ProxyProtocol::V2, true),
            ],
            ..Config::default()
        };
        assert_eq!(
            keys(&config),
            [
                "listener[2].proxy_protocol_tls_identity",
                "listener[3].proxy_protocol_tls_identity",
                "listener[4].proxy_protocol_tls_identity"
            ]
        );
    }

    #[test]
    fn no_listener_is_an_error() {
        let config = Config {
            listeners: Vec::new(),
            ..Config::default()
        };
        assert_eq!(keys(&config), ["listener"]);
    }

    #[test]
    fn bind_must_be_a_socket_address() {
        let config = Config {
            listeners: vec![
                listener("", "127.0.0.1:1883"),
                listener("", "localhost:1883"),
            ],
            ..Config::default()
        };
        assert_eq!(keys(&config), ["listener[1].bind"]);
    }

    #[test]
    fn duplicate_and_overlapping_binds_are_errors() {
        let config = Config {
            listeners: vec![
                listener("a", "127.0.0.1:1883"),
                listener("b", "127.0.0.1:1883"),
                listener("c", "0.0.0.0:1883"),
                listener("d", "[::1]:1883"),
                listener("e", "127.0.0.1:8883"),
            ],
            ..Config::default()
        };
        assert_eq!(keys(&config), ["listener[1].bind", "listener[2].bind"]);
    }

    #[test]
    fn port_zero_never_clashes() {
        let config = Config {
            listeners: vec![listener("", "127.0.0.1:0"), listener("", "127.0.0.1:0")],
            ..Config::default()
        };
        assert_eq!(validate(&config), Ok(()));
    }

    #[test]
    fn duplicate_names_are_errors() {
        let config = Config {
            listeners: vec![
                listener("lab", "127.0.0.1:1883"),
                listener("lab", "127.0.0.1:1884"),
            ],
            ..Config::default()
        };
        let errors = validate(&config).unwrap_err();
        assert_eq!(errors[0].key, "listener[1].name");
        assert!(errors[0].message.contains("listener[0]"), "{}", errors[0]);
    }

    #[test]
    fn limits_out_of_range_are_all_reported() {
        let mut config = Config::default();
        config.limits.max_packet_size = 63;
        config.limits.max_inflight = 0;
        config.limits.max_topic_length = 65_536;
        config.limits.max_topic_levels = 0;
        config.limits.max_keepalive = 0;
        config.limits.max_client_id_length = 0;
        config.limits.connect_timeout_secs = 0;
        config.mqtt.max_qos = 3;
        config.log.level = "fleetmq=loud".to_string();
        assert_eq!(
            keys(&config),
            [
                "limits.max_packet_size",
                "limits.max_inflight",
                "limits.max_topic_length",
                "limits.max_topic_levels",
                "limits.max_keepalive",
                "limits.max_client_id_length",
                "limits.connect_timeout_secs",
                "mqtt.max_qos",
                "mqtt.auto_id_prefix",
                "log.level",
            ]
        );
    }

    #[test]
    fn limit_bounds_are_inclusive() {
        let mut config = Config::default();
        config.limits.max_packet_size = MQTT_MAX_PACKET_SIZE;
        config.limits.max_topic_length = 65_535;
        config.limits.max_client_id_length = 65_535;
        assert_eq!(validate(&config), Ok(()));
        config.limits.max_packet_size = MQTT_MAX_PACKET_SIZE + 1;
        assert_eq!(keys(&config), ["limits.max_packet_size"]);
    }

    #[test]
    fn empty_log_level_is_an_error() {
        let mut config = Config::default();
        config.log.level = " ".to_string();
        assert_eq!(keys(&config), ["log.level"]);
    }

    #[test]
    fn long_prefix_only_matters_when_ids_are_assigned() {
        let mut config = Config::default();
        config.limits.max_client_id_length = 5;
        assert_eq!(keys(&config), ["mqtt.auto_id_prefix"]);
        config.mqtt.allow_zero_length_clientid = false;
        assert_eq!(validate(&config), Ok(()));
    }

    #[test]
    fn non_loopback_dashboard_needs_a_token() {
        let mut config = Config::default();
        config.http.bind = "0.0.0.0:8080".to_string();
        assert_eq!(keys(&config), ["http.bind"]);
        config.http.token = Some("s3cret-token".to_string());
        assert_eq!(keys(&config), ["http.token"]);
        config.http.token = Some("0123456789abcdef0123456789abcdef".to_string());
        assert_eq!(validate(&config), Ok(()));
        config.http.token = None;
        config.http.token_file = Some("/etc/fleetmq/token".into());
        assert_eq!(validate(&config), Ok(()));
        config.http.enabled = false;
        config.http.token_file = None;
        assert_eq!(validate(&config), Ok(()));
    }

    #[test]
    fn dashboard_limits_and_host_names_are_checked() {
        let mut config = Config::default();
        config.http.allowed_hosts = vec!["lab-pc.local".into(), "a b".into(), String::new()];
        config.http.max_connections = 0;
        config.http.header_timeout_secs = 0;
        config.http.idle_timeout_secs = 3601;
        assert_eq!(
            keys(&config),
            [
                "http.allowed_hosts",
                "http.allowed_hosts",
                "http.max_connections",
                "http.header_timeout_secs",
                "http.idle_timeout_secs",
            ]
        );
    }

    #[test]
    fn a_remote_dashboard_token_needs_32_characters() {
        assert!(weak_token("short", "127.0.0.1:8080").is_none());
        assert!(weak_token("short", "0.0.0.0:8080").is_some());
        assert!(weak_token(&"x".repeat(MIN_REMOTE_TOKEN_CHARS), "0.0.0.0:8080").is_none());
        assert!(weak_token(&"x".repeat(MIN_REMOTE_TOKEN_CHARS - 1), "[::]:8080").is_some());
    }

    #[test]
    fn loopback_dashboard_may_run_open() {
        for bind in ["127.0.0.1:8080", "[::1]:8080", "127.0.0.1:0"] {
            let mut config = Config::default();
            config.http.bind = bind.to_string();
            assert_eq!(validate(&config), Ok(()), "{bind}");
        }
    }

    #[test]
    fn http_settings_are_checked() {
        let mut config = Config::default();
        config.http.bind = "localhost:8080".to_string();
        config.http.token = Some(" ".to_string());
        config.http.token_file = Some("/t".into());
        config.http.tls = Some(crate::config::HttpTlsConfig::default());
        config.http.connect_history = 0;
        assert_eq!(
            keys(&config),
            [
                "http.bind",
                "http.token",
                "http.token_file",
                "http.tls",
                "http.connect_history"
            ]
        );
    }

    #[test]
    fn dashboard_must_not_share_an_mqtt_port() {
        let mut config = Config::default();
        config.http.bind = "127.0.0.1:1883".to_string();
        assert_eq!(keys(&config), ["http.bind"]);
    }
}
