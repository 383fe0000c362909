//! Mosquitto 2.0's defaults, in one place: what a `mosquitto.conf` that
//! leaves a directive out means, for every setting whose fleetmq default
//! differs and that a client can see on the wire (CONNACK properties,
//! refusals, admission). The translation applies them last, to every
//! setting no Mosquitto line has set, and writes each one into the
//! provenance so `fleetmq migrate mosquitto` prints it with its reason.
//!
//! It owns nothing else: the native `fleetmq.toml` keeps fleetmq's own
//! defaults (`LimitsConfig::default`), and deliberate differences that stay
//! under `--mosquitto-conf` are listed, with their reasons, in
//! docs/mosquitto-differences.md (decision 0134).

use super::{Provenance, Source};
use fleetmq_core::config::{Config, MQTT_MAX_PACKET_SIZE};

/// One Mosquitto default: the fleetmq key it sets, how, and why.
struct MosquittoDefault {
    /// Dotted fleetmq key; a Mosquitto line that set it wins.
    key: &'static str,
    apply: fn(&mut Config),
    /// The Mosquitto default, as the rendered comment says it.
    why: &'static str,
}

/// Every Mosquitto 2.0 default that differs from fleetmq's own. Defaults
/// that are already equal (`max_inflight_messages 20`,
/// `max_queued_messages 1000`, `max_keepalive 65535`,
/// `retain_available true`, `max_qos 2`, `allow_zero_length_clientid true`,
/// `auto_id_prefix auto-`) are checked by the unit tests beside this table.
const DEFAULTS: &[MosquittoDefault] = &[
    MosquittoDefault {
        key: "limits.max_packet_size",
        apply: |c| c.limits.max_packet_size = MQTT_MAX_PACKET_SIZE,
        why: "Mosquitto 2.0 default: max_packet_size 0 (no limit but MQTT's own; no Maximum Packet Size in CONNACK)",
    },
    MosquittoDefault {
        key: "limits.topic_alias_maximum",
        apply: |c| c.limits.topic_alias_maximum = 10,
        why: "Mosquitto 2.0 default: max_topic_alias 10",
    },
    MosquittoDefault {
        key: "limits.max_queued_bytes",
        apply: |c| c.limits.max_queued_bytes = 0,
        why: "Mosquitto 2.0 default: max_queued_bytes 0 (queues bounded by max_queued_messages only)",
    },
    MosquittoDefault {
        key: "limits.max_client_id_length",
        apply: |c| c.limits.max_client_id_length = 65535,
        why: "Mosquitto 2.0 default: any client id MQTT can carry (65535 bytes)",
    },
    MosquittoDefault {
        key: "limits.max_connections_per_ip",
        apply: |c| c.limits.max_connections_per_ip = 0,
        why: "Mosquitto 2.0 has no per-address connection limit",
    },
    MosquittoDefault {
        key: "limits.connection_rate_per_ip",
        apply: |c| c.limits.connection_rate_per_ip = 0,
        why: "Mosquitto 2.0 has no per-address connection rate limit",
    },
    MosquittoDefault {
        // Mosquitto 2.0 sends no topic aliases, and clients that announce a
        // maximum do not all resolve them (libmosquitto 2.0.11, paho-mqtt
        // 2.2): only 2.1's `max_topic_alias_broker` turns them on (0129).
        key: "limits.max_outbound_topic_aliases",
        apply: |c| c.limits.max_outbound_topic_aliases = 0,
        why: "Mosquitto 2.0 default: no topic aliases towards clients (no max_topic_alias_broker line)",
    },
];

/// Applies Mosquitto's default to every key of [`DEFAULTS`] that no line
/// set, recording it where it changes fleetmq's value.
pub(super) fn apply(config: &mut Config, provenance: &mut Provenance) {
    let native = Config::default();
    for default in DEFAULTS {
        if provenance.contains_key(default.key) {
            continue;
        }
        (default.apply)(config);
        let mut changed = native.clone();
        (default.apply)(&mut changed);
        if changed != native {
            provenance
                .entry(default.key.to_string())
                .or_default()
                .push(Source::Default(default.why.to_string()));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_that_fleetmq_shares_with_mosquitto_stay_equal() {
        let native = Config::default();
        assert_eq!(native.limits.max_inflight, 20);
        assert_eq!(native.limits.max_queued_messages, 1000);
        assert_eq!(native.limits.max_keepalive, 65535);
        assert!(native.mqtt.retain_available);
        assert_eq!(native.mqtt.max_qos, 2);
        assert!(native.mqtt.allow_zero_length_clientid);
        assert_eq!(native.mqtt.auto_id_prefix, "auto-");
        assert_eq!(native.limits.max_connections, 0);
    }

    #[test]
    fn a_line_wins_over_the_default_and_every_default_changes_something() {
        let mut config = Config::default();
        let mut provenance = Provenance::new();
        provenance.insert("limits.topic_alias_maximum".into(), Vec::new());
        config.limits.topic_alias_maximum = 3;
        apply(&mut config, &mut provenance);
        assert_eq!(config.limits.topic_alias_maximum, 3);
        assert_eq!(config.limits.max_packet_size, MQTT_MAX_PACKET_SIZE);
        assert_eq!(config.limits.connection_rate_per_ip, 0);
        assert_eq!(config.limits.max_connections_per_ip, 0);
        assert_eq!(config.limits.max_outbound_topic_aliases, 0);
        for default in DEFAULTS {
            assert!(provenance.contains_key(default.key), "{}", default.key);
        }
        fleetmq_core::config::validate(&config).unwrap();
    }
}
