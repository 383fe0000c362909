//! What an accepted CONNECT gets: keep alive, session expiry, will checks.

use super::*;
use crate::protocol::connect::{connack_properties, negotiate};
use fleetmq_codec::{ConnectProperties, ReasonCode};

fn connect_packet(
    version: ProtocolVersion,
    keep_alive: u16,
    clean_start: bool,
) -> fleetmq_codec::Connect {
    fleetmq_codec::Connect {
        protocol: version,
        clean_start,
        keep_alive,
        client_id: "dev".into(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

#[test]
fn keep_alive_is_capped_for_5_0_and_refused_for_3_1_1() {
    let broker = broker_with(|config| config.limits.max_keepalive = 60);
    let config = &broker.config;
    for asked in [0, 600] {
        let got = negotiate(
            &connect_packet(ProtocolVersion::V5, asked, true),
            config,
            &broker.topic_limits,
        )
        .unwrap();
        assert_eq!((got.keep_alive, got.server_keep_alive), (60, Some(60)));
        let props = connack_properties(config, &got, None);
        assert_eq!(props.server_keep_alive, Some(60));
    }
    let refused = negotiate(
        &connect_packet(ProtocolVersion::V3_1_1, 600, true),
        config,
        &broker.topic_limits,
    )
    .unwrap_err();
    assert_eq!(
        refused.reason,
        Some(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID)
    );
    // 3.1.1 without keep alive is left alone (it cannot be told otherwise).
    let zero = negotiate(
        &connect_packet(ProtocolVersion::V3_1_1, 0, true),
        config,
        &broker.topic_limits,
    )
    .unwrap();
    assert_eq!(zero.keep_alive, 0);
}

#[test]
fn session_expiry_is_capped_and_3_1_1_persistence_follows_the_config() {
    let broker = broker_with(|config| {
        config.mqtt.max_session_expiry_secs = 100;
        config.mqtt.persistent_session_expiry_secs = 0;
    });
    let mut v5 = connect_packet(ProtocolVersion::V5, 30, false);
    v5.properties.session_expiry_interval = Some(500);
    let got = negotiate(&v5, &broker.config, &broker.topic_limits).unwrap();
    assert_eq!((got.expiry_interval, got.expiry_capped), (100, true));
    let props = connack_properties(&broker.config, &got, Some("auto-1".into()));
    assert_eq!(props.session_expiry_interval, Some(100));
    assert_eq!(props.assigned_client_identifier.as_deref(), Some("auto-1"));

    let kept = connect_packet(ProtocolVersion::V3_1_1, 30, false);
    let got = negotiate(&kept, &broker.config, &broker.topic_limits).unwrap();
    assert_eq!(
        got.expiry_interval,
        u32::MAX,
        "0 in the config: never expires"
    );
    let clean = connect_packet(ProtocolVersion::V3_1_1, 30, true);
    let got = negotiate(&clean, &broker.config, &broker.topic_limits).unwrap();
    assert_eq!(got.expiry_interval, 0);
}

#[test]
fn a_will_above_the_brokers_qos_or_on_a_bad_topic_is_refused() {
    let broker = broker_with(|config| config.mqtt.max_qos = 1);
    let mut connect = connect_packet(ProtocolVersion::V5, 30, true);
    connect.will = Some(LastWill {
        topic: "wills/dev".into(),
        payload: Default::default(),
        qos: QoS::ExactlyOnce,
        retain: false,
        delay_interval: None,
        properties: Default::default(),
    });
    let refused = negotiate(&connect, &broker.config, &broker.topic_limits).unwrap_err();
    assert_eq!(refused.reason, Some(ReasonCode::QOS_NOT_SUPPORTED));
    if let Some(will) = connect.will.as_mut() {
        will.qos = QoS::AtMostOnce;
        will.topic = "wills/+".into();
    }
    let refused = negotiate(&connect, &broker.config, &broker.topic_limits).unwrap_err();
    assert_eq!(refused.reason, Some(ReasonCode::TOPIC_NAME_INVALID));
}

#[test]
fn a_5_0_client_without_keep_alive_is_told_the_largest_as_mosquitto_does() {
    let broker = broker_with(|config| config.limits.max_keepalive = u16::MAX);
    let config = &broker.config;
    let got = negotiate(
        &connect_packet(ProtocolVersion::V5, 0, true),
        config,
        &broker.topic_limits,
    )
    .unwrap();
    assert_eq!(
        (got.keep_alive, got.server_keep_alive),
        (65535, Some(65535))
    );
    let within = negotiate(
        &connect_packet(ProtocolVersion::V5, 60, true),
        config,
        &broker.topic_limits,
    )
    .unwrap();
    assert_eq!((within.keep_alive, within.server_keep_alive), (60, None));
    let v311 = negotiate(
        &connect_packet(ProtocolVersion::V3_1_1, 0, true),
        config,
        &broker.topic_limits,
    )
    .unwrap();
    assert_eq!((v311.keep_alive, v311.server_keep_alive), (0, None));
}

#[test]
fn maximum_packet_size_is_left_out_at_the_protocol_maximum() {
    let limited = broker_with(|config| config.limits.max_packet_size = 2000);
    let negotiated = negotiate(
        &connect_packet(ProtocolVersion::V5, 60, true),
        &limited.config,
        &limited.topic_limits,
    )
    .unwrap();
    let props = connack_properties(&limited.config, &negotiated, None);
    assert_eq!(props.maximum_packet_size, Some(2000));
    let unlimited =
        broker_with(|config| config.limits.max_packet_size = crate::config::MQTT_MAX_PACKET_SIZE);
    let props = connack_properties(&unlimited.config, &negotiated, None);
    assert_eq!(props.maximum_packet_size, None);
}

#[test]
fn a_will_payload_above_max_payload_size_is_refused_as_mosquitto_does() {
    let broker = broker_with(|config| config.limits.max_payload_size = 4);
    for (version, reason) in [
        (ProtocolVersion::V5, ReasonCode::PACKET_TOO_LARGE),
        // 3.1.1 has no "too large": Mosquitto answers return code 5.
        (ProtocolVersion::V3_1_1, ReasonCode::NOT_AUTHORIZED),
    ] {
        let mut connect = connect_packet(version, 30, true);
        connect.will = Some(LastWill {
            topic: "wills/dev".into(),
            payload: bytes::Bytes::from_static(b"12345"),
            qos: QoS::AtMostOnce,
            retain: false,
            delay_interval: None,
            properties: Default::default(),
        });
        let refused = negotiate(&connect, &broker.config, &broker.topic_limits).unwrap_err();
        assert_eq!(refused.reason, Some(reason), "{version:?}");
        if let Some(will) = connect.will.as_mut() {
            will.payload = bytes::Bytes::from_static(b"1234");
        }
        assert!(negotiate(&connect, &broker.config, &broker.topic_limits).is_ok());
    }
}
