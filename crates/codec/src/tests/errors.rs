//! One test per rule the decoder enforces outside properties, named after
//! the normative statement where the specification numbers one.

use super::*;

/// A 3.1.1 CONNECT variable header with `flags`, followed by `rest`.
fn connect_bytes(name: &[u8], level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
    let mut body = vec![0x00, name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(&[level, flags, 0x00, 0x3C]);
    body.extend_from_slice(rest);
    let mut bytes = vec![0x10, body.len() as u8];
    bytes.extend_from_slice(&body);
    bytes
}

/// A CONNECT for 3.1.1 (or 5.0 with an empty property block) with `flags`
/// and payload `payload`.
fn connect_with(version: ProtocolVersion, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut rest = Vec::new();
    if version.is_v5() {
        rest.push(0x00);
    }
    rest.extend_from_slice(payload);
    connect_bytes(b"MQTT", version.level(), flags, &rest)
}

#[test]
fn mqtt_3_1_0_1_first_packet_must_be_connect() {
    let error = decode_err(&[0xC0, 0x00], None);
    assert_eq!(
        error,
        DecodeError::FirstPacketNotConnect { packet: "PINGREQ" }
    );
    assert_eq!(error.reason_code(), ReasonCode::PROTOCOL_ERROR);
    // Refused from the first byte, without waiting for the rest.
    let mut partial = BytesMut::from(&[0x30][..]);
    assert!(decode_packet(&mut partial, None, NO_LIMIT).is_err());
}

#[test]
fn mqtt_3_1_0_2_second_connect() {
    let bytes = connect_with(V3, 0x02, &[0x00, 0x01, b'a']);
    assert!(decode(&bytes, None).is_ok());
    for version in [V3, V5] {
        let error = decode_err(&bytes, Some(version));
        assert_eq!(error, DecodeError::SecondConnect);
        assert_eq!(error.reason_code(), ReasonCode::PROTOCOL_ERROR);
    }
}

#[test]
fn mqtt_3_1_2_1_invalid_protocol_name() {
    let bytes = connect_bytes(b"MQTX", 4, 0x02, &[0x00, 0x00]);
    let error = decode_err(&bytes, None);
    assert_eq!(
        error,
        DecodeError::InvalidProtocolName {
            name: "MQTX".into()
        }
    );
    assert_ne!(
        error.reason_code(),
        ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
    );
    // An unknown name with level 4 is still not a version problem.
    let error = decode_err(&connect_bytes(b"MQIsdp!", 3, 0x02, &[0x00, 0x00]), None);
    assert!(matches!(error, DecodeError::InvalidProtocolName { .. }));
}

#[test]
fn mqtt_3_1_2_2_unsupported_protocol_level() {
    for (name, level) in [(&b"MQTT"[..], 6), (b"MQTT", 3), (b"MQIsdp", 4)] {
        // The rest of the packet is not even looked at.
        let error = decode_err(&connect_bytes(name, level, 0xFF, &[]), None);
        assert_eq!(error, DecodeError::UnsupportedProtocolVersion { level });
        assert_eq!(
            error.reason_code(),
            ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
        );
    }
}

#[test]
fn mqtt_3_1_2_3_connect_reserved_flag() {
    let error = decode_err(&connect_with(V3, 0x03, &[0x00, 0x00]), None);
    assert_eq!(error, DecodeError::ConnectReservedFlag);
    assert_eq!(error.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn mqtt_3_1_2_11_will_qos_and_retain_need_the_will_flag() {
    for version in [V3, V5] {
        // [MQTT-3.1.2-13]: Will QoS 1 without will.
        let error = decode_err(&connect_with(version, 0x0A, &[0x00, 0x00]), None);
        assert_eq!(error, DecodeError::WillQoSWithoutWill { qos: 1 });
        // [MQTT-3.1.2-15]: Will Retain without will.
        let error = decode_err(&connect_with(version, 0x22, &[0x00, 0x00]), None);
        assert_eq!(error, DecodeError::WillRetainWithoutWill);
    }
}

#[test]
fn mqtt_3_1_2_14_will_qos_3() {
    let payload = [0x00, 0x00, 0x00, 0x01, b't', 0x00, 0x00];
    let error = decode_err(&connect_with(V3, 0x1E, &payload), None);
    assert_eq!(error, DecodeError::InvalidWillQoS);
    assert_eq!(error.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn mqtt_3_1_2_22_password_without_username() {
    let payload = [0x00, 0x00, 0x00, 0x01, b'p'];
    let error = decode_err(&connect_with(V3, 0x42, &payload), None);
    assert_eq!(error, DecodeError::PasswordWithoutUsername);
    // MQTT 5.0 allows a password alone.
    let Packet::Connect(connect) = decode(&connect_with(V5, 0x42, &payload), None).unwrap() else {
        panic!("not a CONNECT")
    };
    assert_eq!(connect.username, None);
    assert_eq!(connect.password.as_deref(), Some(&b"p"[..]));
}

#[test]
fn mqtt_2_2_2_1_reserved_flags() {
    for (bytes, packet) in [
        (&[0xC1, 0x00][..], "PINGREQ"),
        (&[0x48, 0x02, 0x00, 0x01], "PUBACK"),
        (&[0xE2, 0x00], "DISCONNECT"),
        (&[0x21, 0x02, 0x00, 0x00], "CONNACK"),
    ] {
        let error = decode_err(bytes, Some(V3));
        assert_eq!(
            error,
            DecodeError::ReservedFlags {
                packet,
                flags: bytes[0] & 0x0F
            }
        );
        assert_eq!(error.reason_code(), ReasonCode::MALFORMED_PACKET);
    }
}

#[test]
fn mqtt_3_6_1_1_pubrel_reserved_flags() {
    assert!(decode(&[0x62, 0x02, 0x00, 0x01], Some(V3)).is_ok());
    let error = decode_err(&[0x60, 0x02, 0x00, 0x01], Some(V3));
    assert_eq!(
        error.to_string(),
        "reserved flags 0x0 on PUBREL (must be 0x2) [MQTT-3.6.1-1]"
    );
}

#[test]
fn mqtt_3_8_1_1_subscribe_reserved_flags() {
    let error = decode_err(&[0x83, 0x06, 0x00, 0x01, 0x00, 0x01, b'#', 0x00], Some(V3));
    assert_eq!(
        error.to_string(),
        "reserved flags 0x3 on SUBSCRIBE (must be 0x2) [MQTT-3.8.1-1]"
    );
}

#[test]
fn mqtt_3_10_1_1_unsubscribe_reserved_flags() {
    let error = decode_err(&[0xA0, 0x05, 0x00, 0x01, 0x00, 0x01, b'#'], Some(V5));
    assert_eq!(
        error,
        DecodeError::ReservedFlags {
            packet: "UNSUBSCRIBE",
            flags: 0
        }
    );
    assert!(error.to_string().ends_with("[MQTT-3.10.1-1]"));
}

#[test]
fn reserved_packet_types() {
    assert_eq!(
        decode_err(&[0x00, 0x00], Some(V5)),
        DecodeError::ReservedPacketType { packet_type: 0 }
    );
    // AUTH does not exist before 5.0.
    assert_eq!(
        decode_err(&[0xF0, 0x00], Some(V3)),
        DecodeError::ReservedPacketType { packet_type: 15 }
    );
}

#[test]
fn remaining_length_longer_than_4_bytes() {
    // Refused as soon as the fourth length byte still continues.
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x80][..]);
    let error = decode_packet(&mut buf, Some(V3), NO_LIMIT).unwrap_err();
    assert_eq!(error, DecodeError::RemainingLengthTooLong);
    assert_eq!(error.reason_code(), ReasonCode::MALFORMED_PACKET);
    let mut partial = BytesMut::from(&[0x30, 0xFF, 0xFF][..]);
    assert_eq!(
        decode_packet(&mut partial, Some(V3), NO_LIMIT).unwrap(),
        None
    );
}

#[test]
fn packet_too_large_is_refused_from_the_fixed_header() {
    // Announces 16,384 bytes; only the fixed header has arrived.
    let mut buf = BytesMut::from(&[0x30, 0x80, 0x80, 0x01][..]);
    let error = decode_packet(&mut buf, Some(V5), 1024).unwrap_err();
    assert_eq!(
        error,
        DecodeError::PacketTooLarge {
            size: 4 + 16_384,
            max: 1024
        }
    );
    assert_eq!(error.reason_code(), ReasonCode::PACKET_TOO_LARGE);
    // A packet of exactly the maximum is fine.
    let mut exact = BytesMut::from(&[0xC0, 0x00][..]);
    assert!(decode_packet(&mut exact, Some(V5), 2).unwrap().is_some());
    let mut over = BytesMut::from(&[0xC0, 0x00][..]);
    assert!(decode_packet(&mut over, Some(V5), 1).is_err());
}

#[test]
fn mqtt_3_3_1_4_publish_qos_3() {
    let error = decode_err(&[0x36, 0x05, 0x00, 0x01, b't', 0x00, 0x01], Some(V3));
    assert_eq!(error, DecodeError::InvalidQoS);
    assert_eq!(error.reason_code(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn mqtt_3_3_1_2_dup_with_qos_0() {
    let error = decode_err(&[0x38, 0x03, 0x00, 0x01, b't'], Some(V3));
    assert_eq!(error, DecodeError::DupWithQoS0);
}

#[test]
fn publish_topic_is_decoded_as_is() {
    // Wildcards and empty topics are the broker's to refuse.
    for topic in [&b"a/+/#"[..], b""] {
        let mut bytes = vec![0x30, 2 + topic.len() as u8, 0x00, topic.len() as u8];
        bytes.extend_from_slice(topic);
        let Packet::Publish(publish) = decode(&bytes, Some(V3)).unwrap() else {
            panic!("not a PUBLISH")
        };
        assert_eq!(publish.topic.as_bytes(), topic);
    }
}

#[test]
fn mqtt_2_3_1_1_zero_packet_id() {
    for (bytes, packet) in [
        (&[0x32, 0x05, 0x00, 0x01, b't', 0x00, 0x00][..], "PUBLISH"),
        (&[0x40, 0x02, 0x00, 0x00], "PUBACK"),
        (&[0x50, 0x02, 0x00, 0x00], "PUBREC"),
        (&[0x62, 0x02, 0x00, 0x00], "PUBREL"),
        (&[0x70, 0x02, 0x00, 0x00], "PUBCOMP"),
        (
            &[0x82, 0x06, 0x00, 0x00, 0x00, 0x01, b'#', 0x00],
            "SUBSCRIBE",
        ),
        (&[0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, b'#'], "UNSUBSCRIBE"),
    ] {
        let error = decode_err(bytes, Some(V3));
        assert_eq!(error, DecodeError::ZeroPacketId { packet });
        assert_eq!(error.reason_code(), ReasonCode::PROTOCOL_ERROR);
    }
}

#[test]
fn mqtt_1_5_3_1_invalid_utf8() {
    // A lone continuation byte, and an encoded surrogate (U+D800).
    for topic in [&[0xC3, 0x28][..], &[0xED, 0xA0, 0x80]] {
        let mut bytes = vec![0x30, 2 + topic.len() as u8, 0x00, topic.len() as u8];
        bytes.extend_from_slice(topic);
        let error = decode_err(&bytes, Some(V3));
        assert_eq!(error, DecodeError::InvalidUtf8);
        assert_eq!(error.reason_code(), ReasonCode::MALFORMED_PACKET);
    }
    // Also in CONNECT's client id.
    let error = decode_err(&connect_with(V3, 0x02, &[0x00, 0x01, 0xFF]), None);
    assert_eq!(error, DecodeError::InvalidUtf8);
}

#[test]
fn mqtt_1_5_3_2_nul_in_string() {
    let error = decode_err(&[0x30, 0x05, 0x00, 0x03, b'a', 0x00, b'b'], Some(V3));
    assert_eq!(error, DecodeError::NulInString);
    let error = decode_err(&[0xA2, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00], Some(V5));
    assert_eq!(error, DecodeError::NulInString);
}

#[test]
fn mqtt_3_8_3_3_subscribe_without_filters() {
    let error = decode_err(&[0x82, 0x02, 0x00, 0x01], Some(V3));
    assert_eq!(
        error,
        DecodeError::NoTopicFilters {
            packet: "SUBSCRIBE"
        }
    );
    assert_eq!(error.reason_code(), ReasonCode::PROTOCOL_ERROR);
    assert!(error.to_string().contains("[MQTT-3.8.3-3]"));
    let error = decode_err(&[0x82, 0x03, 0x00, 0x01, 0x00], Some(V5));
    assert_eq!(
        error,
        DecodeError::NoTopicFilters {
            packet: "SUBSCRIBE"
        }
    );
}

#[test]
fn mqtt_3_10_3_2_unsubscribe_without_filters() {
    let error = decode_err(&[0xA2, 0x02, 0x00, 0x01], Some(V3));
    assert_eq!(
        error,
        DecodeError::NoTopicFilters {
            packet: "UNSUBSCRIBE"
        }
    );
    assert!(error.to_string().contains("[MQTT-3.10.3-2]"));
}

/// A SUBSCRIBE to "#" with options byte `options`.
fn subscribe_bytes(version: ProtocolVersion, options: u8) -> Vec<u8> {
    if version.is_v5() {
        vec![0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'#', options]
    } else {
        vec![0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'#', options]
    }
}

#[test]
fn mqtt_3_8_3_4_subscribe_requested_qos_upper_bits() {
    for options in [0x04, 0x10, 0x80, 0xFE] {
        let error = decode_err(&subscribe_bytes(V3, options), Some(V3));
        assert_eq!(error, DecodeError::SubscribeReservedBits { options });
        assert_eq!(error.reason_code(), ReasonCode::MALFORMED_PACKET);
    }
    let error = decode_err(&subscribe_bytes(V3, 0x03), Some(V3));
    assert_eq!(error, DecodeError::InvalidSubscriptionQoS);
    // The same bits are options in 5.0.
    assert!(decode(&subscribe_bytes(V5, 0x2E), Some(V5)).is_ok());
}

#[test]
fn mqtt_3_8_3_5_subscription_options_reserved_bits() {
    for options in [0x40, 0x80, 0xC1] {
        let error = decode_err(&subscribe_bytes(V5, options), Some(V5));
        assert_eq!(
            error,
            DecodeError::SubscriptionOptionsReservedBits { options }
        );
        assert_eq!(error.reason_code(), ReasonCode::MALFORMED_PACKET);
    }
}

#[test]
fn retain_handling_3_and_qos_3_are_protocol_errors() {
    let error = decode_err(&subscribe_bytes(V5, 0x30), Some(V5));
    assert_eq!(error, DecodeError::InvalidRetainHandling);
    assert_eq!(error.reason_code(), ReasonCode::PROTOCOL_ERROR);
    let error = decode_err(&subscribe_bytes(V5, 0x03), Some(V5));
    assert_eq!(error, DecodeError::InvalidSubscriptionQoS);
    assert_eq!(error.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn trailing_bytes_are_malformed() {
    for (bytes, version, packet) in [
        (&[0xC0, 0x01, 0x00][..], V3, "PINGREQ"),
        (&[0xD0, 0x01, 0x00], V5, "PINGRESP"),
        (&[0xE0, 0x01, 0x00], V3, "DISCONNECT"),
        (&[0x40, 0x03, 0x00, 0x01, 0x00], V3, "PUBACK"),
        (&[0xB0, 0x03, 0x00, 0x01, 0x00], V3, "UNSUBACK"),
        (&[0x20, 0x03, 0x00, 0x00, 0x00], V3, "CONNACK"),
    ] {
        let error = decode_err(bytes, Some(version));
        assert_eq!(error, DecodeError::TrailingBytes { packet, count: 1 });
        assert_eq!(error.reason_code(), ReasonCode::MALFORMED_PACKET);
    }
    let error = decode_err(&connect_with(V3, 0x02, &[0x00, 0x00, 0xAA]), None);
    assert_eq!(
        error,
        DecodeError::TrailingBytes {
            packet: "CONNECT",
            count: 1
        }
    );
}

#[test]
fn truncated_fields_are_malformed() {
    for (bytes, version) in [
        (&[0x40, 0x01, 0x00][..], Some(V3)),
        (&[0x30, 0x03, 0x00, 0x05, b'a'], Some(V3)),
        (&[0x82, 0x05, 0x00, 0x01, 0x00, 0x01, b'#'], Some(V3)),
        (&[0x20, 0x01, 0x00], Some(V5)),
        (&[0x10, 0x02, 0x00, 0x04], None),
    ] {
        let error = decode_err(bytes, version);
        assert_eq!(error, DecodeError::Truncated, "{bytes:02X?}");
        assert_eq!(error.reason_code(), ReasonCode::MALFORMED_PACKET);
    }
}

#[test]
fn connack_reserved_flags_and_return_codes() {
    let error = decode_err(&[0x20, 0x02, 0x02, 0x00], Some(V3));
    assert_eq!(error, DecodeError::ConnAckReservedFlags { flags: 0x02 });
    let error = decode_err(&[0x20, 0x02, 0x00, 0x06], Some(V3));
    assert_eq!(error, DecodeError::InvalidConnAckReturnCode { code: 6 });
}

/// Regression test for fuzz/codec_roundtrip
/// crash-8e4d81bb188866b43135fe9a48b1efdf11b22bd9: Session Present with a
/// refusal decoded, but encodes without it.
#[test]
fn mqtt_3_2_2_6_session_present_only_with_success() {
    let error = decode_err(&[0x20, 0x03, 0x01, 0xC3, 0x00], Some(V5));
    assert_eq!(
        error,
        DecodeError::ConnAckSessionPresentWithError { reason: 0xC3 }
    );
    let error = decode_err(&[0x20, 0x02, 0x01, 0x05], Some(V3));
    assert_eq!(
        error,
        DecodeError::ConnAckSessionPresentWithError { reason: 0x05 }
    );
    let mut ok = BytesMut::from(&[0x20u8, 0x02, 0x01, 0x00][..]);
    assert!(matches!(
        decode_packet(&mut ok, Some(V3), 1024),
        Ok(Some(Packet::ConnAck(ConnAck {
            session_present: true,
            ..
        })))
    ));
}

#[test]
fn mqtt_3_9_3_2_suback_return_codes() {
    let error = decode_err(&[0x90, 0x03, 0x00, 0x01, 0x03], Some(V3));
    assert_eq!(error, DecodeError::InvalidSubAckReturnCode { code: 3 });
    // 5.0 reason codes are not limited to those four.
    assert!(decode(&[0x90, 0x04, 0x00, 0x01, 0x00, 0x8F], Some(V5)).is_ok());
}
