//! MQTT 5.0 property rules.

use super::*;

/// A 5.0 PUBLISH QoS 0 to "t" with the property block `properties`.
fn publish_with(properties: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0x30, (3 + 1 + properties.len()) as u8, 0x00, 0x01, b't'];
    bytes.push(properties.len() as u8);
    bytes.extend_from_slice(properties);
    bytes
}

/// A 5.0 CONNECT with the property block `properties` and an empty client id.
fn connect_with(properties: &[u8]) -> Vec<u8> {
    let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x00];
    body.push(properties.len() as u8);
    body.extend_from_slice(properties);
    body.extend_from_slice(&[0x00, 0x00]);
    let mut bytes = vec![0x10, body.len() as u8];
    bytes.extend_from_slice(&body);
    bytes
}

#[test]
fn unknown_property_is_malformed() {
    for id in [0x00, 0x04, 0x2B, 0x7F] {
        let error = decode_err(&publish_with(&[id, 0x00]), Some(V5));
        assert_eq!(error, DecodeError::UnknownProperty { id: u32::from(id) });
        assert_eq!(error.reason_code(), ReasonCode::MALFORMED_PACKET);
    }
    // A two-byte identifier: 0x80 0x01 is 128.
    let error = decode_err(&publish_with(&[0x80, 0x01, 0x00]), Some(V5));
    assert_eq!(error, DecodeError::UnknownProperty { id: 128 });
}

#[test]
fn property_not_allowed_on_packet_is_malformed() {
    // Session Expiry Interval on PUBLISH.
    let error = decode_err(&publish_with(&[0x11, 0, 0, 0, 1]), Some(V5));
    assert_eq!(
        error,
        DecodeError::PropertyNotAllowed {
            property: "Session Expiry Interval",
            packet: "PUBLISH"
        }
    );
    assert_eq!(error.reason_code(), ReasonCode::MALFORMED_PACKET);
    // Topic Alias on CONNECT.
    let error = decode_err(&connect_with(&[0x23, 0x00, 0x01]), None);
    assert!(matches!(
        error,
        DecodeError::PropertyNotAllowed {
            packet: "CONNECT",
            ..
        }
    ));
    // Will Delay Interval belongs to the will, not to CONNECT.
    let error = decode_err(&connect_with(&[0x18, 0, 0, 0, 1]), None);
    assert!(matches!(error, DecodeError::PropertyNotAllowed { .. }));
    // Session Expiry Interval on PUBACK.
    let puback = [0x40, 0x09, 0x00, 0x01, 0x00, 0x05, 0x11, 0, 0, 0, 1];
    let error = decode_err(&puback, Some(V5));
    assert!(matches!(
        error,
        DecodeError::PropertyNotAllowed {
            packet: "PUBACK",
            ..
        }
    ));
    // Reason String on UNSUBSCRIBE.
    let unsubscribe = [
        0xA2, 0x0A, 0x00, 0x01, 0x04, 0x1F, 0x00, 0x01, b'r', 0x00, 0x01, b'#',
    ];
    let error = decode_err(&unsubscribe, Some(V5));
    assert!(matches!(
        error,
        DecodeError::PropertyNotAllowed {
            packet: "UNSUBSCRIBE",
            ..
        }
    ));
}

#[test]
fn repeated_property_is_a_protocol_error() {
    let twice = [0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2];
    let error = decode_err(&publish_with(&twice), Some(V5));
    assert_eq!(
        error,
        DecodeError::DuplicateProperty("Message Expiry Interval")
    );
    assert_eq!(error.reason_code(), ReasonCode::PROTOCOL_ERROR);
    let error = decode_err(&connect_with(&[0x21, 0, 1, 0x21, 0, 2]), None);
    assert_eq!(error, DecodeError::DuplicateProperty("Receive Maximum"));
}

#[test]
fn repeatable_properties() {
    // User Property anywhere; Subscription Identifier on PUBLISH.
    let users = [
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', 0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'w',
    ];
    assert!(decode(&publish_with(&users), Some(V5)).is_ok());
    let Packet::Publish(publish) =
        decode(&publish_with(&[0x0B, 0x01, 0x0B, 0x02]), Some(V5)).unwrap()
    else {
        panic!("not a PUBLISH")
    };
    assert_eq!(publish.properties.subscription_identifiers, vec![1, 2]);
}

#[test]
fn subscription_identifier_twice_on_subscribe_is_a_protocol_error() {
    let bytes = [
        0x82, 0x0B, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01, b'#', 0x00,
    ];
    let error = decode_err(&bytes, Some(V5));
    assert_eq!(
        error,
        DecodeError::DuplicateProperty("Subscription Identifier")
    );
    assert_eq!(error.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn subscription_identifier_zero_is_a_protocol_error() {
    let error = decode_err(&publish_with(&[0x0B, 0x00]), Some(V5));
    assert_eq!(error, DecodeError::ZeroSubscriptionIdentifier);
    assert_eq!(error.reason_code(), ReasonCode::PROTOCOL_ERROR);
    let subscribe = [
        0x82, 0x09, 0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, b'#', 0x00,
    ];
    assert_eq!(
        decode_err(&subscribe, Some(V5)),
        DecodeError::ZeroSubscriptionIdentifier
    );
}

#[test]
fn receive_maximum_and_maximum_packet_size_zero_are_protocol_errors() {
    let error = decode_err(&connect_with(&[0x21, 0x00, 0x00]), None);
    assert_eq!(error, DecodeError::ZeroReceiveMaximum);
    assert_eq!(error.reason_code(), ReasonCode::PROTOCOL_ERROR);
    let error = decode_err(&connect_with(&[0x27, 0, 0, 0, 0]), None);
    assert_eq!(error, DecodeError::ZeroMaximumPacketSize);
    assert_eq!(error.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn flag_properties_other_than_0_or_1_are_protocol_errors() {
    let error = decode_err(&publish_with(&[0x01, 0x02]), Some(V5));
    assert_eq!(
        error,
        DecodeError::InvalidPropertyValue {
            property: "Payload Format Indicator",
            value: 2
        }
    );
    assert_eq!(error.reason_code(), ReasonCode::PROTOCOL_ERROR);
    for id in [0x17, 0x19] {
        let error = decode_err(&connect_with(&[id, 0x02]), None);
        assert!(matches!(
            error,
            DecodeError::InvalidPropertyValue { value: 2, .. }
        ));
    }
    // Maximum QoS on CONNACK is 0 or 1 too.
    let connack = [0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02];
    let error = decode_err(&connack, Some(V5));
    assert!(matches!(
        error,
        DecodeError::InvalidPropertyValue {
            property: "Maximum QoS",
            ..
        }
    ));
}

#[test]
fn property_block_longer_than_the_packet_is_malformed() {
    let bytes = [0x30, 0x05, 0x00, 0x01, b't', 0x09, 0x01];
    assert_eq!(decode_err(&bytes, Some(V5)), DecodeError::Truncated);
    // A property running past its block.
    let error = decode_err(&publish_with(&[0x02, 0x00, 0x00]), Some(V5));
    assert_eq!(error, DecodeError::Truncated);
    // A property length of five bytes.
    let bytes = [0x30, 0x08, 0x00, 0x01, b't', 0x80, 0x80, 0x80, 0x80, 0x01];
    assert_eq!(
        decode_err(&bytes, Some(V5)),
        DecodeError::VariableByteIntegerTooLong
    );
}

#[test]
fn will_properties_are_read_apart_from_connect_properties() {
    let Packet::Connect(connect) = full_connect_v5() else {
        panic!("not a CONNECT")
    };
    let will = connect.will.as_ref().unwrap();
    assert_eq!(will.delay_interval, Some(30));
    let bytes = encode(&Packet::Connect(connect.clone()), V5);
    let Packet::Connect(decoded) = decode(&bytes, None).unwrap() else {
        panic!("not a CONNECT")
    };
    assert_eq!(decoded.will, connect.will);
    assert_eq!(decoded.properties, connect.properties);
}
