//! Mosquitto's bridge directives (a `connection NAME` section) translated
//! into a `[[bridge]]` table: each directive updates the bridge opened by
//! the last `connection` line. What fleetmq cannot honour is a problem
//! with the reason (the translation stops), never silently dropped; what
//! changes nothing on the wire is a note (decision 0146).
//!
//! It must not open connections or read the certificate files it names.

use super::parse::Line;
use super::translate::Translator;
use fleetmq_core::config::{
    BridgeConfig, BridgeDirection, BridgeProtocol, BridgeTls, BridgeTopic, TlsVersion,
};

/// Directives refused, and why.
const REFUSED: &[(&str, &str)] = &[
    (
        "bridge_identity",
        "rustls has no TLS-PSK: give the bridge a certificate (bridge_certfile, bridge_keyfile)",
    ),
    (
        "bridge_psk",
        "rustls has no TLS-PSK: give the bridge a certificate (bridge_certfile, bridge_keyfile)",
    ),
    (
        "bridge_require_ocsp",
        "fleetmq does not check OCSP staples on bridge links",
    ),
    (
        "bridge_bind_address",
        "fleetmq lets the system choose the bridge's source address",
    ),
    (
        "local_username",
        "the bridge's local side is inside fleetmq and needs no credentials; remove it",
    ),
    (
        "local_password",
        "the bridge's local side is inside fleetmq and needs no credentials; remove it",
    ),
    (
        "bridge_max_topic_alias",
        "fleetmq sends no topic aliases to a bridge remote",
    ),
];

impl Translator {
    /// Opens the bridge `connection NAME`.
    pub(super) fn bridge_connection(&mut self, line: &Line) -> Result<(), String> {
        let name = line.value.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err("needs one name (connection NAME)".into());
        }
        self.bridge = Some(name.to_string());
        self.bridge_lines.push(line.clone());
        self.config.bridges.push(BridgeConfig {
            name: name.to_string(),
            ..BridgeConfig::default()
        });
        self.record(&format!("bridge.{name}"), line);
        Ok(())
    }

    /// Mosquitto speaks TLS to a remote only with `bridge_cafile` or
    /// `bridge_capath`; other TLS directives alone leave the link plain.
    pub(super) fn finish_bridges(&mut self) {
        let mut plain = Vec::new();
        for (bridge, line) in self.config.bridges.iter_mut().zip(&self.bridge_lines) {
            let Some(tls) = &bridge.tls else {
                continue;
            };
            if tls.ca_file.is_none() && tls.ca_path.is_none() {
                bridge.tls = None;
                plain.push(line.clone());
            }
        }
        for line in plain {
            self.note(
                &line,
                "TLS directives without bridge_cafile or bridge_capath: as in Mosquitto, this bridge connects without TLS",
            );
        }
    }

    /// A directive inside a `connection` section.
    pub(super) fn bridge_directive(&mut self, line: &Line) -> Result<(), String> {
        let name = line.name.as_str();
        if let Some((_, why)) = REFUSED.iter().find(|(known, _)| *known == name) {
            return Err(format!("not supported: {why}"));
        }
        let Some(bridge) = self.config.bridges.last_mut() else {
            return Err("a bridge directive outside a `connection` section".into());
        };
        let value = line.value.trim();
        match name {
            "address" | "addresses" => {
                for word in line.words() {
                    let address = if word.starts_with('[') && word.contains("]:") || (!word.starts_with('[') && word.matches(':').count() == 1) {
                        word.to_string()
                    } else if word.contains(':') && !word.starts_with('[') {
                        format!("[{word}]:1883")
                    } else {
                        format!("{word}:1883")
                    };
                    bridge.addresses.push(address);
                }
                if bridge.addresses.is_empty() {
                    return Err("needs HOST[:PORT]".into());
                }
            }
            "round_robin" => bridge.round_robin = boolean(value)?,
            "topic" => bridge.topics.push(topic(&line.words())?),
            "bridge_protocol_version" => {
                bridge.protocol_version = match value {
                    "mqttv311" => BridgeProtocol::V311,
                    "mqttv50" => BridgeProtocol::V5,
                    "mqttv31" => return Err("MQTT 3.1 bridges are not supported: write mqttv311 or mqttv50".into()),
                    other => return Err(format!("{other:?} is not mqttv311 or mqttv50")),
                }
            }
            "cleansession" => bridge.clean_session = boolean(value)?,
            "local_cleansession" => bridge.local_clean_session = Some(boolean(value)?),
            "remote_clientid" | "clientid" => bridge.remote_client_id = Some(value.to_string()),
            "local_clientid" => bridge.local_client_id = Some(value.to_string()),
            "remote_username" | "username" => bridge.remote_username = Some(value.to_string()),
            "remote_password" | "password" => bridge.remote_password = Some(value.to_string()),
            "bridge_cafile" => tls(bridge).ca_file = Some(value.into()),
            "bridge_capath" => tls(bridge).ca_path = Some(value.into()),
            "bridge_certfile" => tls(bridge).cert = Some(value.into()),
            "bridge_keyfile" => tls(bridge).key = Some(value.into()),
            "bridge_insecure" => tls(bridge).insecure = boolean(value)?,
            "bridge_alpn" => tls(bridge).alpn = vec![value.to_string()],
            "bridge_tls_version" => {
                tls(bridge).min_version = match value {
                    "tlsv1.3" => TlsVersion::Tls13,
                    "tlsv1.2" => TlsVersion::Tls12,
                    "tlsv1.1" | "tlsv1" => return Err("rustls speaks TLS 1.2 and 1.3 only: write tlsv1.2 or tlsv1.3".into()),
                    other => return Err(format!("{other:?} is not a TLS version (write tlsv1.2 or tlsv1.3)")),
                }
            }
            "try_private" => bridge.try_private = boolean(value)?,
            "notifications" => bridge.notifications = boolean(value)?,
            "notification_topic" => bridge.notification_topic = Some(value.to_string()),
            "notifications_local_only" => bridge.notifications_local_only = boolean(value)?,
            "keepalive_interval" => bridge.keepalive_secs = number(value, name)?,
            "restart_timeout" => {
                let words = line.words();
                match words.as_slice() {
                    [constant] => {
                        bridge.restart_secs = number(constant, name)?;
                        bridge.restart_max_secs = None;
                    }
                    [base, cap] => {
                        bridge.restart_secs = number(base, name)?;
                        bridge.restart_max_secs = Some(number(cap, name)?);
                    }
                    _ => return Err("write restart_timeout SECONDS or restart_timeout BASE CAP".into()),
                }
            }
            "start_type" => match value {
                "automatic" => {}
                "lazy" | "once" => {
                    return Err(format!(
                        "start_type {value} is not supported: fleetmq bridges start automatically and reconnect with restart_timeout; remove it or write automatic"
                    ))
                }
                other => return Err(format!("{other:?} is not automatic, lazy or once")),
            },
            "idle_timeout" | "threshold" => {
                number::<u64>(value, name)?;
                let note = format!("only used by start_type lazy, which fleetmq does not support; bridge {:?} starts automatically", bridge.name);
                self.note(line, note);
                return Ok(());
            }
            "bridge_max_packet_size" => bridge.max_packet_size = number(value, name)?,
            "bridge_outgoing_retain" => bridge.outgoing_retain = boolean(value)?,
            "bridge_attempt_unsubscribe" => bridge.attempt_unsubscribe = boolean(value)?,
            "bridge_receive_maximum" => bridge.receive_maximum = number(value, name)?,
            "bridge_session_expiry_interval" => bridge.session_expiry_interval = number(value, name)?,
            other => return Err(format!("{other} is a bridge directive fleetmq does not know; remove it")),
        }
        let key = format!("bridge.{}", bridge.name);
        self.record(&key, line);
        Ok(())
    }
}

/// The TLS settings of `bridge`, created by the first TLS directive.
fn tls(bridge: &mut BridgeConfig) -> &mut BridgeTls {
    bridge.tls.get_or_insert_with(BridgeTls::default)
}

/// `topic PATTERN [[[out|in|both] QOS] LOCAL_PREFIX REMOTE_PREFIX]`.
fn topic(words: &[&str]) -> Result<BridgeTopic, String> {
    let unquote = |word: &str| {
        if word == "\"\"" {
            String::new()
        } else {
            word.to_string()
        }
    };
    let mut topic = BridgeTopic::default();
    let Some(pattern) = words.first() else {
        return Err("needs a pattern (topic PATTERN [out|in|both [QOS [LOCAL REMOTE]]])".into());
    };
    topic.pattern = unquote(pattern);
    if let Some(direction) = words.get(1) {
        topic.direction = match *direction {
            "out" => BridgeDirection::Out,
            "in" => BridgeDirection::In,
            "both" => BridgeDirection::Both,
            other => return Err(format!("{other:?} is not in, out or both")),
        };
    }
    if let Some(qos) = words.get(2) {
        topic.qos = match *qos {
            "0" => 0,
            "1" => 1,
            "2" => 2,
            other => return Err(format!("{other:?} is not a QoS (0, 1 or 2)")),
        };
    }
    match words.get(3..) {
        None | Some([]) => {}
        Some([local]) => topic.local_prefix = unquote(local),
        Some([local, remote]) => {
            topic.local_prefix = unquote(local);
            topic.remote_prefix = unquote(remote);
        }
        Some(_) => {
            return Err(
                "too many words (topic PATTERN DIRECTION QOS LOCAL_PREFIX REMOTE_PREFIX)".into(),
            )
        }
    }
    Ok(topic)
}

fn boolean(value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("{other:?} is not a boolean (write true or false)")),
    }
}

fn number<T: std::str::FromStr>(value: &str, name: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{value:?} is not a number in range for {name}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use crate::mosquitto::translate_str;
    use fleetmq_core::config::{BridgeDirection, BridgeProtocol};

    #[test]
    fn a_connection_section_becomes_a_bridge() {
        let conf = "listener 1883\nconnection central\naddress 10.0.0.5:8883 10.0.0.6\nround_robin true\ntopic sensors/# out 1 lab/ site1/\ntopic cmd/# in 2 \"\" \"\"\ntopic both/# both\nbridge_protocol_version mqttv50\ncleansession true\nremote_clientid lab1\nbridge_cafile /etc/ca.crt\nbridge_alpn x-amzn-mqtt-ca\nrestart_timeout 10\nidle_timeout 60\nkeepalive_interval 30\n";
        let translation = translate_str(conf, "m.conf").unwrap();
        let bridge = &translation.config.bridges[0];
        assert_eq!(bridge.name, "central");
        assert_eq!(bridge.addresses, ["10.0.0.5:8883", "10.0.0.6:1883"]);
        assert!(bridge.round_robin && bridge.clean_session);
        assert_eq!(bridge.protocol_version, BridgeProtocol::V5);
        assert_eq!(bridge.topics[0].local_filter(), "lab/sensors/#");
        assert_eq!(bridge.topics[0].remote_filter(), "site1/sensors/#");
        assert_eq!(bridge.topics[1].direction, BridgeDirection::In);
        assert_eq!(bridge.topics[1].qos, 2);
        assert_eq!(bridge.topics[2].direction, BridgeDirection::Both);
        assert_eq!(bridge.remote_id("h"), "lab1");
        assert_eq!(bridge.local_id("h"), "local.lab1");
        assert_eq!((bridge.restart_secs, bridge.restart_max_secs), (10, None));
        assert_eq!(bridge.keepalive_secs, 30);
        let tls = bridge.tls.as_ref().unwrap();
        assert_eq!(tls.alpn, ["x-amzn-mqtt-ca"]);
        assert!(translation
            .notes
            .iter()
            .any(|n| n.directive == "idle_timeout"));
    }

    #[test]
    fn tls_needs_a_ca_as_in_mosquitto() {
        let conf =
            "listener 1883\nconnection c\naddress h:8883\ntopic # out\nbridge_insecure true\n";
        let translation = translate_str(conf, "m.conf").unwrap();
        assert!(translation.config.bridges[0].tls.is_none());
        assert!(translation
            .notes
            .iter()
            .any(|n| n.directive == "connection" && n.why.contains("without TLS")));
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_with_the_reason() {
        for (line, why) in [
            ("start_type lazy", "start_type lazy is not supported"),
            ("bridge_psk 00ff", "TLS-PSK"),
            ("bridge_protocol_version mqttv31", "3.1"),
            ("local_username x", "no credentials"),
        ] {
            let conf = format!("listener 1883\nconnection c\naddress h\ntopic # out\n{line}\n");
            let error = translate_str(&conf, "m.conf").unwrap_err().to_string();
            assert!(error.contains(why), "{line}: {error}");
        }
    }
}
