//! Byte-exact packets written by hand from the specification, checked in
//! both directions, and incremental decoding.

use super::super::wire::{Counter, Sink};
use super::*;

/// `bytes` decodes to `packet` and `packet` encodes to `bytes`.
fn assert_vector(bytes: &[u8], packet: &Packet, version: ProtocolVersion) {
    assert_eq!(&encode(packet, version)[..], bytes, "encoding {packet:?}");
    assert_eq!(
        &decode(bytes, decoder_version(packet, version)).unwrap(),
        packet
    );
}

#[test]
fn connect_v3_1_1_minimal() {
    // §3.1: "MQTT", level 4, Clean Session, keep alive 60, client id "a".
    let bytes = [
        0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x01, b'a',
    ];
    let packet = Packet::Connect(Box::new(Connect {
        protocol: V3,
        clean_start: true,
        keep_alive: 60,
        client_id: "a".into(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }));
    assert_vector(&bytes, &packet, V3);
}

#[test]
fn connect_v3_1_mqisdp() {
    let bytes = [
        0x10, 0x0F, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x00, 0x00, 0x0A, 0x00,
        0x01, b'x',
    ];
    let Packet::Connect(connect) = decode(&bytes, None).unwrap() else {
        panic!("not a CONNECT")
    };
    assert_eq!(connect.protocol, ProtocolVersion::V3_1);
    assert_eq!(connect.keep_alive, 10);
    assert_eq!(
        &encode(&Packet::Connect(connect), ProtocolVersion::V3_1)[..],
        &bytes
    );
}

#[test]
fn connect_v5_with_session_expiry() {
    // Properties: length 5, Session Expiry Interval (0x11) = 10.
    let bytes = [
        0x10, 0x12, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x00, 0x05, 0x11, 0x00,
        0x00, 0x00, 0x0A, 0x00, 0x00,
    ];
    let packet = Packet::Connect(Box::new(Connect {
        protocol: V5,
        clean_start: true,
        keep_alive: 0,
        client_id: String::new(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties {
            session_expiry_interval: Some(10),
            ..ConnectProperties::default()
        },
    }));
    assert_vector(&bytes, &packet, V5);
}

#[test]
fn connack() {
    let refused = Packet::ConnAck(ConnAck {
        session_present: false,
        reason: ReasonCode::NOT_AUTHORIZED,
        properties: ConnAckProperties::default(),
    });
    assert_vector(&[0x20, 0x02, 0x00, 0x05], &refused, V3);
    assert_vector(&[0x20, 0x03, 0x00, 0x87, 0x00], &refused, V5);
    let resumed = Packet::ConnAck(ConnAck {
        session_present: true,
        ..ConnAck::default()
    });
    assert_vector(&[0x20, 0x02, 0x01, 0x00], &resumed, V3);
}

#[test]
fn publish_qos1_v3() {
    let bytes = [
        0x32, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0A, b'h', b'i',
    ];
    let packet = Publish {
        topic: Arc::from("a/b"),
        ..publish(QoS::AtLeastOnce, Some(10), b"hi")
    };
    assert_vector(&bytes, &Packet::Publish(packet), V3);
}

#[test]
fn publish_qos0_retained_v5() {
    let bytes = [0x31, 0x05, 0x00, 0x01, b't', 0x00, b'x'];
    let packet = Publish {
        topic: Arc::from("t"),
        retain: true,
        ..publish(QoS::AtMostOnce, None, b"x")
    };
    assert_vector(&bytes, &Packet::Publish(packet), V5);
}

#[test]
fn publish_remaining_length_of_two_bytes() {
    // 2 + 1 (topic) + 318 = 321 = 0xC1 0x02.
    let packet = Packet::Publish(Publish {
        topic: Arc::from("t"),
        ..publish(QoS::AtMostOnce, None, &[7u8; 318])
    });
    let bytes = encode(&packet, V3);
    assert_eq!(&bytes[..6], &[0x30, 0xC1, 0x02, 0x00, 0x01, b't']);
    assert_eq!(bytes.len(), 3 + 321);
}

#[test]
fn publish_responses() {
    assert_vector(
        &[0x40, 0x02, 0x00, 0x01],
        &Packet::PubAck(PubResponse::success(1)),
        V3,
    );
    // 5.0 success without properties is shortened to the packet id.
    assert_vector(
        &[0x50, 0x02, 0x01, 0x00],
        &Packet::PubRec(PubResponse::success(256)),
        V5,
    );
    let reason_only = PubResponse {
        packet_id: 1,
        reason: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
        properties: AckProperties::default(),
    };
    assert_vector(
        &[0x62, 0x03, 0x00, 0x01, 0x92],
        &Packet::PubRel(reason_only),
        V5,
    );
    let with_reason_string = PubResponse {
        packet_id: 1,
        reason: ReasonCode::SUCCESS,
        properties: AckProperties {
            reason_string: Some("ok".into()),
            user_properties: Vec::new(),
        },
    };
    let bytes = [
        0x70, 0x09, 0x00, 0x01, 0x00, 0x05, 0x1F, 0x00, 0x02, b'o', b'k',
    ];
    assert_vector(&bytes, &Packet::PubComp(with_reason_string), V5);
}

#[test]
fn subscribe_and_suback() {
    let subscribe = Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: vec![(
            "#".into(),
            SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..SubscriptionOptions::default()
            },
        )],
        subscription_identifier: None,
        user_properties: Vec::new(),
    });
    assert_vector(
        &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'#', 0x01],
        &subscribe,
        V3,
    );
    assert_vector(
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'#', 0x01],
        &subscribe,
        V5,
    );
    let suback = Packet::SubAck(SubAck {
        packet_id: 1,
        reasons: vec![ReasonCode::GRANTED_QOS_1, ReasonCode::UNSPECIFIED_ERROR],
        properties: AckProperties::default(),
    });
    assert_vector(&[0x90, 0x04, 0x00, 0x01, 0x01, 0x80], &suback, V3);
}

#[test]
fn unsubscribe_and_unsuback() {
    let unsubscribe = Packet::Unsubscribe(Unsubscribe {
        packet_id: 2,
        filters: vec!["a".into()],
        user_properties: Vec::new(),
    });
    assert_vector(
        &[0xA2, 0x05, 0x00, 0x02, 0x00, 0x01, b'a'],
        &unsubscribe,
        V3,
    );
    let unsuback = Packet::UnsubAck(UnsubAck {
        packet_id: 5,
        reasons: Vec::new(),
        properties: AckProperties::default(),
    });
    assert_vector(&[0xB0, 0x02, 0x00, 0x05], &unsuback, V3);
}

#[test]
fn pings_and_disconnect() {
    assert_vector(&[0xC0, 0x00], &Packet::PingReq, V3);
    assert_vector(&[0xD0, 0x00], &Packet::PingResp, V5);
    assert_vector(
        &[0xE0, 0x00],
        &Packet::Disconnect(Disconnect::default()),
        V5,
    );
    let with_will = Packet::Disconnect(Disconnect {
        reason: ReasonCode::DISCONNECT_WITH_WILL,
        properties: DisconnectProperties::default(),
    });
    assert_vector(&[0xE0, 0x01, 0x04], &with_will, V5);
    assert_vector(&[0xF0, 0x00], &Packet::Auth(Auth::default()), V5);
}

#[test]
fn variable_byte_integer_boundaries() {
    // §1.5.5 table 1-1.
    let cases: [(u32, &[u8]); 8] = [
        (0, &[0x00]),
        (127, &[0x7F]),
        (128, &[0x80, 0x01]),
        (16_383, &[0xFF, 0x7F]),
        (16_384, &[0x80, 0x80, 0x01]),
        (2_097_151, &[0xFF, 0xFF, 0x7F]),
        (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
        (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
    ];
    for (value, bytes) in cases {
        let mut buf = BytesMut::new();
        buf.put_var_int(value).unwrap();
        assert_eq!(&buf[..], bytes, "{value}");
        let mut counter = Counter::default();
        counter.put_var_int(value).unwrap();
        assert_eq!(counter.0, bytes.len());
        let mut reader = super::super::wire::Reader::new(Bytes::copy_from_slice(bytes));
        assert_eq!(reader.var_int().unwrap(), value);
    }
}

#[test]
fn incremental_decode_returns_none_until_complete() {
    let mut big = publish(QoS::AtLeastOnce, Some(5), &[1u8; 200]);
    big.properties = full_publish_properties();
    for (packet, version) in [
        (full_connect_v5(), V5),
        (Packet::Publish(big), V5),
        (Packet::PingReq, V3),
        (
            Packet::Subscribe(Subscribe {
                packet_id: 3,
                filters: vec![("x".into(), SubscriptionOptions::default())],
                subscription_identifier: Some(200),
                user_properties: Vec::new(),
            }),
            V5,
        ),
    ] {
        let bytes = encode(&packet, version);
        let decoder = decoder_version(&packet, version);
        let mut buf = BytesMut::new();
        for (index, byte) in bytes.iter().enumerate() {
            buf.extend_from_slice(&[*byte]);
            let decoded = decode_packet(&mut buf, decoder, NO_LIMIT).unwrap();
            if index + 1 < bytes.len() {
                assert_eq!(decoded, None, "{} after {} bytes", packet.name(), index + 1);
                assert_eq!(buf.len(), index + 1, "buffer must stay untouched");
            } else {
                assert_eq!(decoded.as_ref(), Some(&packet));
                assert!(buf.is_empty());
            }
        }
    }
    let mut empty = BytesMut::new();
    assert_eq!(decode_packet(&mut empty, None, NO_LIMIT).unwrap(), None);
}
