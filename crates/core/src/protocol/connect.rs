//! What the broker decides about an accepted CONNECT without IO and
//! without the client's identity: whether its will is acceptable, the keep
//! alive and session expiry it gets, and the CONNACK properties that tell a
//! 5.0 client what this broker allows.
//!
//! Reading the CONNECT, authenticating the client (its certificate is the
//! TLS layer's) and attaching its session stay in `connection::handshake`,
//! which calls [`negotiate`] once the client is known.

use crate::config::{Config, MQTT_MAX_PACKET_SIZE};
use crate::router::{validate_topic_name, TopicLimits};
use fleetmq_codec::{ConnAckProperties, Connect, QoS, ReasonCode};

/// The parameters an accepted CONNECT gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Keep alive enforced, in seconds (0: none).
    pub keep_alive: u16,
    /// Told to a 5.0 client whose keep alive the broker changed.
    pub server_keep_alive: Option<u16>,
    /// Session Expiry Interval the session gets.
    pub expiry_interval: u32,
    /// True when the client asked for more than `mqtt.max_session_expiry_secs`
    /// (5.0 clients are told the interval they got).
    pub expiry_capped: bool,
}

/// A CONNECT refused: with this CONNACK reason (`None`: close without
/// CONNACK) and why, for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Option<ReasonCode>,
    pub why: String,
}

fn refuse(reason: Option<ReasonCode>, why: impl Into<String>) -> Result<Negotiated, Refusal> {
    Err(Refusal {
        reason,
        why: why.into(),
    })
}

/// Checks the will and negotiates keep alive and session expiry.
pub fn negotiate(
    connect: &Connect,
    config: &Config,
    topic_limits: &TopicLimits,
) -> Result<Negotiated, Refusal> {
    let version = connect.protocol;
    if let Some(will) = &connect.will {
        if let Err(error) = validate_topic_name(&will.topic, topic_limits) {
            let reason = version.is_v5().then_some(ReasonCode::TOPIC_NAME_INVALID);
            return refuse(reason, format!("invalid will topic: {error}"));
        }
        let max_payload = config.limits.max_payload_size;
        if max_payload > 0 && will.payload.len() > max_payload as usize {
            // Mosquitto 2.0 answers 3.1.1 clients "not authorized" here.
            let reason = if version.is_v5() {
                ReasonCode::PACKET_TOO_LARGE
            } else {
                ReasonCode::NOT_AUTHORIZED
            };
            return refuse(
                Some(reason),
                format!(
                    "will payload of {} bytes above limits.max_payload_size {max_payload}",
                    will.payload.len()
                ),
            );
        }
        // Retain first, then QoS: Mosquitto 2.0's order, so a will that is
        // both gets the same reason code.
        if will.retain && !config.mqtt.retain_available {
            return refuse(
                Some(ReasonCode::RETAIN_NOT_SUPPORTED),
                "retained will while retain is not available",
            );
        }
        if will.qos as u8 > config.mqtt.max_qos {
            return refuse(
                Some(ReasonCode::QOS_NOT_SUPPORTED),
                "will QoS above mqtt.max_qos",
            );
        }
    }
    let max_keepalive = config.limits.max_keepalive;
    let mut keep_alive = connect.keep_alive;
    let mut server_keep_alive = None;
    if version.is_v5() && (keep_alive == 0 || keep_alive > max_keepalive) {
        // As Mosquitto 2.0, also at 65535: a 5.0 client without keep alive
        // is told the largest one (decision 0135), so a dead client is
        // eventually noticed.
        keep_alive = max_keepalive;
        server_keep_alive = Some(max_keepalive);
    } else if !version.is_v5() && keep_alive > max_keepalive {
        // As Mosquitto: 3.1.1 cannot be told another keep alive.
        return refuse(
            Some(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID),
            format!("keep alive {keep_alive}s above limits.max_keepalive {max_keepalive}s"),
        );
    }
    let (expiry_interval, expiry_capped) = if version.is_v5() {
        let asked = connect.properties.session_expiry_interval.unwrap_or(0);
        let cap = config.mqtt.max_session_expiry_secs;
        (asked.min(cap), asked > cap)
    } else if connect.clean_start {
        (0, false)
    } else {
        match config.mqtt.persistent_session_expiry_secs {
            0 => (u32::MAX, false),
            secs => (secs, false),
        }
    };
    Ok(Negotiated {
        keep_alive,
        server_keep_alive,
        expiry_interval,
        expiry_capped,
    })
}

/// CONNACK properties describing what this broker allows (5.0).
pub fn connack_properties(
    config: &Config,
    negotiated: &Negotiated,
    assigned_client_id: Option<String>,
) -> ConnAckProperties {
    ConnAckProperties {
        session_expiry_interval: negotiated
            .expiry_capped
            .then_some(negotiated.expiry_interval),
        // Each property is left out where its absence means the same value
        // (65535, no limit, 0), as Mosquitto leaves them out.
        receive_maximum: (config.limits.max_inflight < u16::MAX)
            .then_some(config.limits.max_inflight),
        maximum_qos: (config.mqtt.max_qos < 2)
            .then(|| QoS::from_u8(config.mqtt.max_qos))
            .flatten(),
        retain_available: (!config.mqtt.retain_available).then_some(false),
        maximum_packet_size: (config.limits.max_packet_size < MQTT_MAX_PACKET_SIZE)
            .then_some(config.limits.max_packet_size),
        assigned_client_identifier: assigned_client_id,
        topic_alias_maximum: (config.limits.topic_alias_maximum > 0)
            .then_some(config.limits.topic_alias_maximum),
        server_keep_alive: negotiated.server_keep_alive,
        ..ConnAckProperties::default()
    }
}

/// CONNACK properties of a refusal (5.0): Maximum QoS when below 2, as
/// Mosquitto 2.0 sends it with every CONNACK; nothing else is promised to a
/// client that is not admitted (decision 0135).
pub fn refusal_properties(config: &Config) -> ConnAckProperties {
    ConnAckProperties {
        maximum_qos: (config.mqtt.max_qos < 2)
            .then(|| QoS::from_u8(config.mqtt.max_qos))
            .flatten(),
        ..ConnAckProperties::default()
    }
}
