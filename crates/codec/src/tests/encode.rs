//! What the encoder does per protocol version, and its errors.

use super::*;

#[test]
fn v3_connack_uses_return_codes() {
    for (reason, code) in [
        (ReasonCode::SUCCESS, 0),
        (ReasonCode::UNSUPPORTED_PROTOCOL_VERSION, 1),
        (ReasonCode::CLIENT_IDENTIFIER_NOT_VALID, 2),
        (ReasonCode::SERVER_BUSY, 3),
        (ReasonCode::BAD_USER_NAME_OR_PASSWORD, 4),
        (ReasonCode::BANNED, 5),
    ] {
        let connack = Packet::ConnAck(ConnAck {
            reason,
            ..ConnAck::default()
        });
        assert_eq!(&encode(&connack, V3)[..], &[0x20, 0x02, 0x00, code]);
    }
}

#[test]
fn refused_connack_never_has_a_session() {
    let connack = Packet::ConnAck(ConnAck {
        session_present: true,
        reason: ReasonCode::NOT_AUTHORIZED,
        properties: ConnAckProperties::default(),
    });
    assert_eq!(&encode(&connack, V3)[..], &[0x20, 0x02, 0x00, 0x05]);
    assert_eq!(&encode(&connack, V5)[..], &[0x20, 0x03, 0x00, 0x87, 0x00]);
}

#[test]
fn v3_drops_properties_and_ack_reasons() {
    let mut packet = publish(QoS::AtLeastOnce, Some(1), b"x");
    packet.properties = full_publish_properties();
    let bytes = encode(&Packet::Publish(packet), V3);
    assert_eq!(bytes.len(), 2 + 2 + "sensors/temp".len() + 2 + 1);
    let response = PubResponse {
        packet_id: 1,
        reason: ReasonCode::NO_MATCHING_SUBSCRIBERS,
        properties: full_ack_properties(),
    };
    assert_eq!(
        &encode(&Packet::PubAck(response), V3)[..],
        &[0x40, 0x02, 0x00, 0x01]
    );
    let disconnect = Packet::Disconnect(Disconnect {
        reason: ReasonCode::SERVER_SHUTTING_DOWN,
        properties: DisconnectProperties::default(),
    });
    assert_eq!(&encode(&disconnect, V3)[..], &[0xE0, 0x00]);
}

#[test]
fn v3_suback_failures_become_0x80() {
    let suback = Packet::SubAck(SubAck {
        packet_id: 1,
        reasons: vec![
            ReasonCode::GRANTED_QOS_2,
            ReasonCode::NOT_AUTHORIZED,
            ReasonCode::TOPIC_FILTER_INVALID,
        ],
        properties: full_ack_properties(),
    });
    assert_eq!(
        &encode(&suback, V3)[..],
        &[0x90, 0x05, 0x00, 0x01, 0x02, 0x80, 0x80]
    );
}

#[test]
fn v3_unsuback_has_no_payload() {
    let unsuback = Packet::UnsubAck(UnsubAck {
        packet_id: 9,
        reasons: vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED],
        properties: full_ack_properties(),
    });
    assert_eq!(&encode(&unsuback, V3)[..], &[0xB0, 0x02, 0x00, 0x09]);
}

#[test]
fn v3_subscribe_sends_only_the_qos() {
    let subscribe = Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: vec![(
            "#".into(),
            SubscriptionOptions {
                qos: QoS::ExactlyOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: 2,
            },
        )],
        subscription_identifier: Some(5),
        user_properties: user_properties(),
    });
    assert_eq!(
        &encode(&subscribe, V3)[..],
        &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'#', 0x02]
    );
}

#[test]
fn auth_is_not_in_v3() {
    let mut buf = BytesMut::from(&b"keep"[..]);
    for version in [ProtocolVersion::V3_1, V3] {
        let error = encode_packet(&Packet::Auth(Auth::default()), version, &mut buf).unwrap_err();
        assert_eq!(
            error,
            EncodeError::NotInVersion {
                packet: "AUTH",
                version
            }
        );
        assert!(encoded_len(&Packet::Auth(Auth::default()), version).is_err());
    }
    assert_eq!(&buf[..], b"keep");
}

#[test]
fn string_longer_than_65535_bytes() {
    let long = "x".repeat(65_536);
    let mut packet = publish(QoS::AtMostOnce, None, b"");
    packet.topic = Arc::from(long.as_str());
    let mut buf = BytesMut::new();
    let error = encode_packet(&Packet::Publish(packet), V5, &mut buf).unwrap_err();
    assert_eq!(error, EncodeError::StringTooLong { len: 65_536 });
    assert!(buf.is_empty(), "nothing written on error");
    // Exactly 65,535 bytes is fine.
    let mut packet = publish(QoS::AtMostOnce, None, b"");
    packet.topic = Arc::from(&long[1..]);
    assert_round_trip(&Packet::Publish(packet), V5);
    // In a property too.
    let mut packet = publish(QoS::AtMostOnce, None, b"");
    packet.properties.user_properties = vec![("k".into(), long)];
    assert!(matches!(
        encoded_len(&Packet::Publish(packet), V5),
        Err(EncodeError::StringTooLong { .. })
    ));
}

#[test]
fn binary_longer_than_65535_bytes() {
    let Packet::Connect(mut connect) = full_connect_v5() else {
        panic!("not a CONNECT")
    };
    connect.password = Some(Bytes::from(vec![0u8; 70_000]));
    let error = encoded_len(&Packet::Connect(connect), V5).unwrap_err();
    assert_eq!(error, EncodeError::BinaryTooLong { len: 70_000 });
}

#[test]
fn packet_larger_than_the_remaining_length_allows() {
    // calloc'd and never touched: encoded_len only adds up lengths.
    let payload = Bytes::from(vec![0u8; 268_435_455]);
    let packet = Packet::Publish(Publish {
        payload,
        ..publish(QoS::AtMostOnce, None, b"")
    });
    let error = encoded_len(&packet, V3).unwrap_err();
    assert!(
        matches!(error, EncodeError::PacketTooLarge { .. }),
        "{error}"
    );
}

#[test]
fn publish_packet_id_must_match_qos() {
    let missing = publish(QoS::AtLeastOnce, None, b"");
    assert_eq!(
        encoded_len(&Packet::Publish(missing), V3).unwrap_err(),
        EncodeError::PacketIdMismatch {
            qos: 1,
            packet_id: None
        }
    );
    let extra = publish(QoS::AtMostOnce, Some(1), b"");
    assert!(encoded_len(&Packet::Publish(extra), V3).is_err());
}

#[test]
fn subscription_identifier_above_the_variable_integer_range() {
    let mut packet = publish(QoS::AtMostOnce, None, b"");
    packet.properties.subscription_identifiers = vec![268_435_456];
    assert_eq!(
        encoded_len(&Packet::Publish(packet), V5).unwrap_err(),
        EncodeError::VariableByteIntegerTooLarge { value: 268_435_456 }
    );
}

#[test]
fn encoded_len_counts_the_fixed_header() {
    let packet = Packet::Publish(publish(QoS::AtMostOnce, None, &[0u8; 200]));
    // 2 + 12 + 200 = 214 needs two length bytes.
    assert_eq!(encoded_len(&packet, V3).unwrap(), 1 + 2 + 214);
    assert_eq!(encoded_len(&Packet::PingReq, V5).unwrap(), 2);
}

#[test]
fn v5_connack_properties_are_in_mosquittos_order() {
    // Captured from Debian's Mosquitto 2.0.11 (max_packet_size 2000,
    // retain_available false, max_qos 1, max_keepalive 30, empty client id),
    // with a shorter assigned identifier.
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        reason: ReasonCode::SUCCESS,
        properties: ConnAckProperties {
            receive_maximum: Some(20),
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(false),
            maximum_packet_size: Some(2000),
            assigned_client_identifier: Some("auto-A".into()),
            topic_alias_maximum: Some(10),
            server_keep_alive: Some(30),
            ..ConnAckProperties::default()
        },
    });
    let expected: &[u8] = &[
        0x20, 0x1e, 0x00, 0x00, 0x1b, // header, flags, reason, properties
        0x22, 0x00, 0x0a, // Topic Alias Maximum 10
        0x13, 0x00, 0x1e, // Server Keep Alive 30
        0x12, 0x00, 0x06, b'a', b'u', b't', b'o', b'-', b'A', // Assigned Client Identifier
        0x25, 0x00, // Retain Available 0
        0x27, 0x00, 0x00, 0x07, 0xd0, // Maximum Packet Size 2000
        0x21, 0x00, 0x14, // Receive Maximum 20
        0x24, 0x01, // Maximum QoS 1
    ];
    assert_eq!(&encode(&connack, V5)[..], expected);
}

#[test]
fn v3_1_connack_has_no_session_present_flag() {
    let connack = Packet::ConnAck(ConnAck {
        session_present: true,
        ..ConnAck::default()
    });
    assert_eq!(
        &encode(&connack, ProtocolVersion::V3_1)[..],
        &[0x20, 0x02, 0x00, 0x00]
    );
    assert_eq!(&encode(&connack, V3)[..], &[0x20, 0x02, 0x01, 0x00]);
    // Read back the same way: bit 0 of 3.1's reserved byte is no session
    // (the codec_roundtrip fuzz target found the encoder and decoder
    // disagreeing on [0x20, 0x02, 0x01, 0x00] under 3.1).
    let read = |version| match decode(&[0x20, 0x02, 0x01, 0x00], Some(version)) {
        Ok(Packet::ConnAck(connack)) => connack.session_present,
        other => panic!("{other:?}"),
    };
    assert!(!read(ProtocolVersion::V3_1));
    assert!(read(V3));
}
