//! The Mosquitto directives fleetmq knows of: those it translates (handled
//! in `translate.rs`), those it cannot carry over with the reason, bridge
//! directives, and directives Mosquitto 2.0 removed.

/// Directives translated into settings (some only in part, with a note).
const TRANSLATED: &[&str] = &[
    "accept_protocol_versions",
    "acl_file",
    "allow_anonymous",
    "allow_zero_length_clientid",
    "auto_id_prefix",
    "autosave_interval",
    "bind_address",
    "cafile",
    "capath",
    "certfile",
    "ciphers",
    "ciphers_tls1.3",
    "connection",
    "connection_messages",
    "crlfile",
    "enable_proxy_protocol",
    "global_max_connections",
    "keyfile",
    "listener",
    "listener_allow_anonymous",
    "log_dest",
    "log_timestamp_format",
    "log_type",
    "max_connections",
    "max_inflight_bytes",
    "max_inflight_messages",
    "max_keepalive",
    "max_packet_size",
    "max_qos",
    "max_queued_bytes",
    "max_queued_messages",
    "max_topic_alias",
    "max_topic_alias_broker",
    "memory_limit",
    "message_size_limit",
    "mount_point",
    "password_file",
    "per_listener_settings",
    "persistence",
    "persistence_file",
    "persistence_location",
    "persistent_client_expiration",
    "pid_file",
    "port",
    "protocol",
    "queue_qos0_messages",
    "require_certificate",
    "retain_available",
    "socket_domain",
    "sys_interval",
    "tls_version",
    "use_identity_as_username",
    "use_subject_as_username",
    "user",
    "include_dir",
];

/// Directives with no fleetmq equivalent, and why.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("allow_duplicate_messages", "deprecated in Mosquitto; fleetmq sends one copy for overlapping subscriptions, as MQTT requires"),
    ("auth_plugin", "fleetmq cannot load Mosquitto plugins; use password_file, acl_file or [[acl]] rules"),
    ("auth_plugin_deny_special_chars", "fleetmq cannot load Mosquitto plugins"),
    ("autosave_on_changes", "fleetmq commits by time or per change (store.fsync), not after a count of changes"),
    ("bind_interface", "fleetmq binds addresses, not interfaces; write the interface's address in the listener line"),
    ("check_retain_source", "not configurable in fleetmq"),
    ("clientid_prefixes", "deprecated in Mosquitto and not supported; restrict client ids with certificates and [[acl]] rules"),
    ("dhparamfile", "rustls has no finite-field Diffie-Hellman; ECDHE is always used"),
    ("enable_control_api", "fleetmq has no $CONTROL API"),
    ("global_max_clients", "fleetmq limits connections (limits.max_connections), not stored sessions"),
    ("global_plugin", "fleetmq cannot load Mosquitto plugins; use password_file, acl_file or [[acl]] rules"),
    ("http_dir", "fleetmq listeners serve no files"),
    ("listener_auto_id_prefix", "fleetmq has one mqtt.auto_id_prefix for every listener"),
    ("log_facility", "fleetmq does not write to syslog itself; journald records its stderr"),
    ("log_timestamp", "timestamps follow log.format: none under journald (which adds its own), otherwise always"),
    ("mptcp", "fleetmq listens with plain TCP"),
    ("plugin", "fleetmq cannot load Mosquitto plugins; use password_file, acl_file or [[acl]] rules"),
    ("plugin_load", "fleetmq cannot load Mosquitto plugins"),
    ("plugin_use", "fleetmq cannot load Mosquitto plugins"),
    ("proxy_protocol_v2_require_tls", "fleetmq does not refuse v2 headers without TLS information; to take the client-certificate identity from the balancer's SSL TLV, set proxy_protocol_tls_identity = true on the listener in fleetmq.toml"),
    ("psk_file", "rustls has no TLS-PSK: give devices certificates instead"),
    ("psk_hint", "rustls has no TLS-PSK: give devices certificates instead"),
    ("retry_interval", "removed in Mosquitto 2.0; messages are resent on reconnect, as MQTT specifies"),
    ("set_tcp_nodelay", "not configurable in fleetmq"),
    ("store_clean_interval", "removed in Mosquitto 2.0"),
    ("tls_engine", "rustls has no OpenSSL engines: the key must be a PEM file"),
    ("tls_engine_kpass_sha1", "rustls has no OpenSSL engines: the key must be a PEM file"),
    ("tls_keyform", "rustls has no OpenSSL engines: the key must be a PEM file"),
    ("upgrade_outgoing_qos", "not supported: messages go out at the lower of the publish and subscription QoS, as MQTT specifies"),
    ("use_username_as_clientid", "not supported; identity_as_clientid does this for certificate identities"),
    ("websockets_headers_size", "fleetmq caps WebSocket upgrade requests at 16 KiB; the size is not configurable"),
    ("websockets_log_level", "fleetmq filters logs by level only: WebSocket upgrades are logged at info (refused) and debug (accepted)"),
];

/// Directives of a bridge (after `connection NAME`).
const BRIDGE: &[&str] = &[
    "address",
    "addresses",
    "cleansession",
    "clientid",
    "idle_timeout",
    "keepalive_interval",
    "local_cleansession",
    "local_clientid",
    "local_password",
    "local_username",
    "notification_topic",
    "notifications",
    "notifications_local_only",
    "password",
    "remote_clientid",
    "remote_password",
    "remote_username",
    "restart_timeout",
    "round_robin",
    "start_type",
    "threshold",
    "topic",
    "try_private",
    "username",
];

/// Whether `name` is translated by `translate.rs`.
pub(crate) fn is_translated(name: &str) -> bool {
    TRANSLATED.contains(&name)
}

/// Why `name` is not carried over, if it is a directive fleetmq lacks.
pub(crate) fn unsupported(name: &str) -> Option<&'static str> {
    if name.starts_with("auth_opt_") || name.starts_with("plugin_opt_") {
        return Some("an option of a Mosquitto plugin, which fleetmq cannot load");
    }
    UNSUPPORTED
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, why)| *why)
}

/// Whether `name` configures a bridge.
pub(crate) fn is_bridge(name: &str) -> bool {
    name.starts_with("bridge_") || BRIDGE.contains(&name)
}

/// Whether Mosquitto knows `name` at all.
pub(crate) fn is_known(name: &str) -> bool {
    is_translated(name) || unsupported(name).is_some() || is_bridge(name)
}
