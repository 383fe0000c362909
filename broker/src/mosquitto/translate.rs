//! The translation proper: each directive, in file order, updates either
//! the listener being configured or the global settings; at the end the
//! listeners are finished, the Mosquitto defaults that differ from
//! fleetmq's are written out, and the result is validated.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use super::directives;
use super::listener::{source, ListenerDraft};
use super::parse::Line;
use super::{MosquittoError, Note, Provenance, Translation};
use fleetmq_core::config::{Config, FsyncPolicy, ListenerProtocol, ProxyProtocol, TlsVersion};

/// Translates directive lines; `notes` holds what reading already noted.
pub(crate) fn translate(
    lines: &[Line],
    notes: Vec<Note>,
    main_file: &str,
) -> Result<Translation, MosquittoError> {
    let mut translator = Translator {
        config: Config::default(),
        provenance: Provenance::new(),
        notes,
        problems: Vec::new(),
        per_listener_settings: false,
        first_security_option: None,
        default_listener: ListenerDraft::default(),
        listeners: Vec::new(),
        bridge: None,
        bridge_lines: Vec::new(),
        allow_anonymous: None,
        password_file: None,
        acl_file: None,
        log_types: Vec::new(),
        persistence_set: false,
        dynsec_plugin: None,
    };
    for line in lines {
        if let Err(why) = translator.directive(line) {
            translator.problems.push(line.note(why));
        }
    }
    translator.finish_dynsec();
    translator.finish_bridges();
    let mut translation = translator.finish(main_file)?;
    // Notes in reading order: files as they were read, then by line.
    let mut files: Vec<&Arc<str>> = Vec::new();
    for line in lines {
        if !files.contains(&&line.file) {
            files.push(&line.file);
        }
    }
    let rank = |note: &Note| files.iter().position(|file| **file == note.file);
    translation
        .notes
        .sort_by_key(|note| (rank(note), note.line));
    Ok(translation)
}

pub(super) struct Translator {
    pub(super) config: Config,
    pub(super) provenance: Provenance,
    pub(super) notes: Vec<Note>,
    pub(super) problems: Vec<Note>,
    pub(super) per_listener_settings: bool,
    /// The first security option, which `per_listener_settings` must precede.
    pub(super) first_security_option: Option<Line>,
    pub(super) default_listener: ListenerDraft,
    pub(super) listeners: Vec<ListenerDraft>,
    /// The bridge being configured after `connection NAME`.
    pub(super) bridge: Option<String>,
    /// The `connection` line of each bridge, in order.
    pub(super) bridge_lines: Vec<Line>,
    /// Global `allow_anonymous` (without `per_listener_settings`).
    pub(super) allow_anonymous: Option<(bool, Line)>,
    pub(super) password_file: Option<(String, Line)>,
    pub(super) acl_file: Option<(String, Line)>,
    pub(super) log_types: Vec<(String, Line)>,
    pub(super) persistence_set: bool,
    /// `plugin .../mosquitto_dynamic_security.so`, whose options follow.
    pub(super) dynsec_plugin: Option<Line>,
}

impl Translator {
    fn directive(&mut self, line: &Line) -> Result<(), String> {
        let name = line.name.as_str();
        if name == "connection" {
            return self.bridge_connection(line);
        }
        if directives::is_bridge(name) {
            if self.bridge.is_none() {
                return Err("a bridge directive outside a `connection` section".into());
            }
            return self.bridge_directive(line);
        }
        if let Some(done) = self.dynsec_directive(line) {
            return done;
        }
        if let Some(why) = directives::unsupported(name) {
            self.unsupported(line, why);
            return Ok(());
        }
        if is_security_option(name) && self.first_security_option.is_none() {
            self.first_security_option = Some(line.clone());
        }
        match name {
            "listener" => self.listener(line),
            "port" => {
                self.default_listener.port = Some(number(line)?);
                self.default_listener.set("bind", line);
                Ok(())
            }
            "bind_address" => {
                self.default_listener.address = Some(line.value.clone());
                self.default_listener.set("bind", line);
                Ok(())
            }
            "per_listener_settings" => {
                self.per_listener_settings = boolean(line)?;
                match &self.first_security_option {
                    Some(first) if self.per_listener_settings => Err(format!(
                        "must come before every security option, but {} is set at line {} \
                         (Mosquitto refuses this too; move per_listener_settings up)",
                        first.name, first.number
                    )),
                    _ => Ok(()),
                }
            }
            "allow_anonymous" if self.per_listener_settings => {
                let allowed = boolean(line)?;
                self.current().allow_anonymous = Some(allowed);
                self.current().record("allow_anonymous", line);
                Ok(())
            }
            "allow_anonymous" => {
                self.allow_anonymous = Some((boolean(line)?, line.clone()));
                Ok(())
            }
            "listener_allow_anonymous" => {
                let allowed = boolean(line)?;
                self.current().allow_anonymous = Some(allowed);
                self.current().record("allow_anonymous", line);
                Ok(())
            }
            "password_file" | "acl_file" => self.auth_file(line),
            _ => self.setting(line),
        }
    }

    /// The listener that listener options apply to now.
    fn current(&mut self) -> &mut ListenerDraft {
        match self.listeners.last_mut() {
            Some(listener) => listener,
            None => &mut self.default_listener,
        }
    }

    pub(super) fn note(&mut self, line: &Line, why: impl Into<String>) {
        self.notes.push(line.note(why));
    }

    fn unsupported(&mut self, line: &Line, why: &str) {
        if line.name == "psk_hint" {
            // Noted when the listener is finished: left out, or TLS without PSK.
            self.current().psk = Some(line.clone());
            return;
        }
        self.note(line, why);
    }

    fn listener(&mut self, line: &Line) -> Result<(), String> {
        self.bridge = None;
        let words = line.words();
        let port: u16 = match words.first() {
            Some(port) => port.parse().map_err(|_| {
                format!("{port:?} is not a port number (write listener PORT [ADDRESS])")
            })?,
            None => return Err("needs a port (write listener PORT [ADDRESS])".into()),
        };
        if port == 0 {
            self.listeners.push(ListenerDraft {
                left_out: Some(line.clone()),
                ..ListenerDraft::default()
            });
            self.note(
                line,
                "a unix socket listener; fleetmq listens on TCP only, so it is left out",
            );
            return Ok(());
        }
        let mut draft = ListenerDraft {
            line: Some(line.clone()),
            port: Some(port),
            address: words.get(1).map(|address| address.to_string()),
            ..ListenerDraft::default()
        };
        draft.set("bind", line);
        self.listeners.push(draft);
        Ok(())
    }

    fn auth_file(&mut self, line: &Line) -> Result<(), String> {
        if line.value.is_empty() {
            return Err("needs a file path".into());
        }
        let entry = Some((line.value.clone(), line.clone()));
        match (line.name.as_str(), self.per_listener_settings) {
            ("password_file", true) => self.current().password_file = entry,
            ("password_file", false) => self.password_file = entry,
            (_, true) => self.current().acl_file = entry,
            (_, false) => self.acl_file = entry,
        }
        Ok(())
    }

    /// Listener options and global settings with a direct equivalent.
    fn setting(&mut self, line: &Line) -> Result<(), String> {
        let value = line.value.as_str();
        match line.name.as_str() {
            // Listener options.
            "cafile" => self.listener_value(line, "tls.client_ca", |l| l.cafile = Some(line.clone())),
            "capath" => self.listener_value(line, "tls.client_ca", |l| l.capath = Some(line.clone())),
            "mount_point" => {
                let mount = value.to_string();
                if mount.is_empty() {
                    return Err("needs a topic prefix (mount_point lab/)".into());
                }
                self.listener_value(line, "mount_point", |l| l.mount_point = Some(mount))
            }
            "certfile" => self.listener_value(line, "tls.cert", |l| l.certfile = Some(line.clone())),
            "keyfile" => self.listener_value(line, "tls.key", |l| l.keyfile = Some(line.clone())),
            "crlfile" => self.listener_value(line, "tls.crl", |l| l.crlfile = Some(line.clone())),
            "require_certificate" => {
                let required = boolean(line)?;
                self.listener_value(line, "tls.client_certs", |l| l.require_certificate = required)
            }
            "use_identity_as_username" => {
                let on = boolean(line)?;
                self.listener_value(line, "use_identity_as_username", |l| l.use_identity_as_username = on)
            }
            "use_subject_as_username" => {
                let on = boolean(line)?;
                self.listener_value(line, "use_subject_as_username", |l| l.use_subject_as_username = on)
            }
            "tls_version" => {
                let version = match value {
                    "tlsv1.3" => TlsVersion::Tls13,
                    "tlsv1.2" => TlsVersion::Tls12,
                    "tlsv1.1" | "tlsv1" => {
                        self.note(line, "rustls speaks TLS 1.2 and 1.3 only, so the minimum is 1.2");
                        TlsVersion::Tls12
                    }
                    other => return Err(format!("{other:?} is not a TLS version (write tlsv1.2 or tlsv1.3)")),
                };
                self.listener_value(line, "tls.min_version", |l| l.tls_version = Some(version))
            }
            "ciphers" => {
                let (suites, unread) = super::ciphers::tls12(value);
                if suites.is_empty() {
                    return Err("names no TLS 1.2 suite rustls has (it offers ECDHE with AES-GCM or ChaCha20-Poly1305, e.g. ECDHE-ECDSA-AES128-GCM-SHA256); devices limited to these could not connect".to_string());
                }
                if !unread.is_empty() {
                    self.note(line, format!("not offered (rustls has no such suite, or the token is not understood): {}; TLS 1.2 suites offered: {}", unread.join(" "), suites.join(" ")));
                }
                self.listener_value(line, "tls.cipher_suites", |l| l.ciphers = Some(suites))
            }
            "ciphers_tls1.3" => {
                let (suites, unread) = super::ciphers::tls13(value);
                if suites.is_empty() {
                    return Err("names no TLS 1.3 suite rustls has (TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256)".to_string());
                }
                if !unread.is_empty() {
                    self.note(line, format!("not offered (rustls has no such suite): {}", unread.join(" ")));
                }
                self.listener_value(line, "tls.cipher_suites", |l| l.ciphers_tls13 = Some(suites))
            }
            "enable_proxy_protocol" => {
                let version = match value {
                    "1" => ProxyProtocol::V1,
                    "2" => ProxyProtocol::V2,
                    other => return Err(format!("{other:?} is not a PROXY protocol version (write 1 or 2)")),
                };
                self.listener_value(line, "proxy_protocol", |l| l.proxy_protocol = version)
            }
            "max_connections" => {
                let limit: i64 = number(line)?;
                let limit = usize::try_from(limit).unwrap_or(0);
                self.listener_value(line, "max_connections", |l| l.max_connections = limit)
            }
            "socket_domain" => {
                let ipv6 = match value {
                    "ipv4" => false,
                    "ipv6" => true,
                    other => return Err(format!("{other:?} is not ipv4 or ipv6")),
                };
                self.listener_value(line, "bind", |l| l.ipv6 = ipv6)
            }
            "protocol" => match value {
                "mqtt" => self.listener_value(line, "protocol", |l| l.protocol = ListenerProtocol::Mqtt),
                "websockets" => self.listener_value(line, "protocol", |l| l.protocol = ListenerProtocol::Websockets),
                "http_api" => {
                    self.current().left_out = Some(line.clone());
                    self.note(line, "fleetmq serves its HTTP API on the [http] listener of its own (the dashboard), so this listener is left out");
                    Ok(())
                }
                other => Err(format!("{other:?} is not a protocol (write mqtt or websockets)")),
            },
            // Global settings.
            "max_inflight_messages" => {
                let count: u32 = number(line)?;
                if count == 0 || count > u32::from(u16::MAX) {
                    self.note(line, "carried over as 65535, the most MQTT 5.0 can express");
                }
                self.config.limits.max_inflight = u16::try_from(count).ok().filter(|c| *c > 0).unwrap_or(u16::MAX);
                self.record("limits.max_inflight", line);
                Ok(())
            }
            "memory_limit" => self.global(line, "limits.memory_limit", |c, v| c.limits.memory_limit = v),
            "max_inflight_bytes" => self.global(line, "limits.max_inflight_bytes", |c, v| c.limits.max_inflight_bytes = v),
            "max_queued_messages" => self.global(line, "limits.max_queued_messages", |c, v| c.limits.max_queued_messages = v),
            "max_queued_bytes" => self.global(line, "limits.max_queued_bytes", |c, v| c.limits.max_queued_bytes = v),
            "global_max_connections" => {
                let limit: i64 = number(line)?;
                self.config.limits.max_connections = usize::try_from(limit).unwrap_or(0);
                self.record("limits.max_connections", line);
                Ok(())
            }
            "max_packet_size" => {
                let size: u32 = number(line)?;
                self.config.limits.max_packet_size = if size == 0 { 268_435_460 } else { size };
                self.record("limits.max_packet_size", line);
                Ok(())
            }
            "message_size_limit" => {
                let size: u32 = number(line)?;
                self.config.limits.max_payload_size = size;
                self.record("limits.max_payload_size", line);
                Ok(())
            }
            "max_keepalive" => {
                let seconds: u16 = number(line)?;
                if seconds < 10 {
                    return Err(format!("{seconds} is out of range (Mosquitto 2.0 refuses it too; write 10 to 65535 seconds)"));
                }
                self.config.limits.max_keepalive = seconds;
                self.record("limits.max_keepalive", line);
                Ok(())
            }
            "log_timestamp_format" => {
                if value.is_empty() {
                    return Err("needs a format (Mosquitto refuses an empty one too)".into());
                }
                self.config.log.timestamp_format = Some(value.to_string());
                self.record("log.timestamp_format", line);
                Ok(())
            }
            "queue_qos0_messages" => self.flag(line, "mqtt.queue_qos0_messages", |c, v| c.mqtt.queue_qos0_messages = v),
            "connection_messages" => self.flag(line, "log.connection_messages", |c, v| c.log.connection_messages = v),
            "accept_protocol_versions" => {
                let levels = super::listener::protocol_levels(value)?;
                self.listener_value(line, "accept_protocol_versions", |l| l.accept_protocol_versions = levels)
            }
            "max_topic_alias" => self.global(line, "limits.topic_alias_maximum", |c, v| c.limits.topic_alias_maximum = v),
            "max_topic_alias_broker" => self.global(line, "limits.max_outbound_topic_aliases", |c, v| c.limits.max_outbound_topic_aliases = v),
            "max_qos" => self.global(line, "mqtt.max_qos", |c, v| c.mqtt.max_qos = v),
            "retain_available" => self.flag(line, "mqtt.retain_available", |c, v| c.mqtt.retain_available = v),
            "allow_zero_length_clientid" => self.flag(line, "mqtt.allow_zero_length_clientid", |c, v| c.mqtt.allow_zero_length_clientid = v),
            "auto_id_prefix" => {
                self.config.mqtt.auto_id_prefix = value.to_string();
                self.record("mqtt.auto_id_prefix", line);
                Ok(())
            }
            "sys_interval" => self.global(line, "mqtt.sys_interval_secs", |c, v| c.mqtt.sys_interval_secs = v),
            "persistent_client_expiration" => {
                self.config.mqtt.persistent_session_expiry_secs = duration(value)?;
                self.record("mqtt.persistent_session_expiry_secs", line);
                Ok(())
            }
            "persistence" => {
                self.persistence_set = true;
                self.flag(line, "store.enabled", |c, v| c.store.enabled = v)
            }
            "user" => {
                if value == "root" {
                    self.note(line, "fleetmq stays root, as Mosquitto does with `user root`");
                } else {
                    self.config.user = Some(value.to_string());
                    self.record("user", line);
                }
                Ok(())
            }
            "pid_file" => {
                self.config.pid_file = Some(PathBuf::from(value));
                self.record("pid_file", line);
                Ok(())
            }
            "persistence_location" => {
                self.config.data_dir = PathBuf::from(value);
                self.record("data_dir", line);
                Ok(())
            }
            "persistence_file" => {
                self.config.store.import_mosquitto_db = Some(PathBuf::from(value));
                self.record("store.import_mosquitto_db", line);
                self.note(line, "fleetmq keeps its own store (store.path in data_dir); this file is imported into it at the first start, while the store does not exist yet, and left as it is");
                Ok(())
            }
            "autosave_interval" => {
                let seconds: u64 = number(line)?;
                if seconds == 0 {
                    self.note(line, "fleetmq has no save-at-exit-only mode; store.fsync keeps its default (batch)");
                } else {
                    self.config.store.fsync = FsyncPolicy::Periodic;
                    self.config.store.periodic_interval_secs = seconds;
                    self.record("store.fsync", line);
                    self.record("store.periodic_interval_secs", line);
                }
                Ok(())
            }
            "log_dest" => self.log_dest(line),
            "log_type" => {
                for kind in line.words() {
                    self.log_types.push((kind.to_string(), line.clone()));
                }
                Ok(())
            }
            other => Err(format!("{other:?} is not a Mosquitto directive (Mosquitto refuses it too; check the spelling)")),
        }
    }

    fn listener_value(
        &mut self,
        line: &Line,
        key: &'static str,
        apply: impl FnOnce(&mut ListenerDraft),
    ) -> Result<(), String> {
        let listener = self.current();
        apply(listener);
        listener.set(key, line);
        Ok(())
    }

    fn global<T: FromStr>(
        &mut self,
        line: &Line,
        key: &str,
        apply: impl FnOnce(&mut Config, T),
    ) -> Result<(), String> {
        apply(&mut self.config, number(line)?);
        self.record(key, line);
        Ok(())
    }

    fn flag(
        &mut self,
        line: &Line,
        key: &str,
        apply: impl FnOnce(&mut Config, bool),
    ) -> Result<(), String> {
        apply(&mut self.config, boolean(line)?);
        self.record(key, line);
        Ok(())
    }

    pub(super) fn record(&mut self, key: &str, line: &Line) {
        self.provenance
            .entry(key.to_string())
            .or_default()
            .push(source(line));
    }

    fn log_dest(&mut self, line: &Line) -> Result<(), String> {
        let words = line.words();
        match words.first().copied() {
            Some("stderr") => {}
            Some("stdout") => self.note(line, "fleetmq logs to stderr"),
            Some("syslog") => self.note(line, "fleetmq logs to stderr; under systemd journald records it (and forwards it to syslog where ForwardToSyslog=yes)"),
            Some("file") => {
                let path = line.value["file".len()..].trim();
                if path.is_empty() {
                    return Err("needs a file (log_dest file /var/log/mosquitto/mosquitto.log)".into());
                }
                self.config.log.file = Some(PathBuf::from(path));
                self.record("log.file", line);
            }
            Some("topic") => {
                self.config.log.topic = true;
                self.record("log.topic", line);
            }
            Some("none") => {
                self.config.log.level = "off".into();
                self.record("log.level", line);
            }
            Some("dlt") | Some("android") => self.note(line, "fleetmq logs to stderr only"),
            Some(other) => return Err(format!("{other:?} is not a log destination (stderr, stdout, syslog, file, topic, none)")),
            None => return Err("needs a destination (log_dest stderr)".into()),
        }
        Ok(())
    }
}

/// Options that `per_listener_settings` moves into each listener.
fn is_security_option(name: &str) -> bool {
    matches!(
        name,
        "acl_file"
            | "allow_anonymous"
            | "allow_zero_length_clientid"
            | "auto_id_prefix"
            | "password_file"
            | "psk_file"
            | "plugin"
            | "auth_plugin"
    )
}

fn boolean(line: &Line) -> Result<bool, String> {
    match line.value.as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("{other:?} is not a boolean (write true or false)")),
    }
}

fn number<T: FromStr>(line: &Line) -> Result<T, String> {
    line.value.parse().map_err(|_| {
        format!(
            "{:?} is not a number in range for {}",
            line.value, line.name
        )
    })
}

/// Mosquitto's `persistent_client_expiration`: a number with s, h, d, w, m
/// or y.
fn duration(value: &str) -> Result<u32, String> {
    let bad = || {
        format!("{value:?} is not a duration (write a number followed by s, h, d, w, m or y, such as 14d)")
    };
    let unit = value.chars().last().ok_or_else(bad)?;
    let count: u64 = value[..value.len() - unit.len_utf8()]
        .parse()
        .map_err(|_| bad())?;
    let seconds = match unit {
        's' => 1,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        'm' => 30 * 86_400,
        'y' => 365 * 86_400,
        _ => return Err(bad()),
    };
    u32::try_from(count.saturating_mul(seconds)).map_err(|_| {
        format!("{value:?} is longer than fleetmq can keep a session (about 136 years)")
    })
}
