//! Codec tests: round trips, byte-exact vectors from the specification,
//! one test per normative statement the decoder enforces, encoder rules,
//! and property-based tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::*;

mod encode;
mod errors;
mod fuzz;
mod properties;
mod roundtrip;
mod vectors;

const V3: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;
const NO_LIMIT: u32 = u32::MAX;

/// Encodes `packet` for `version`, checking `encoded_len` agrees.
fn encode(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut buf = BytesMut::new();
    encode_packet(packet, version, &mut buf).unwrap();
    assert_eq!(
        encoded_len(packet, version).unwrap(),
        buf.len(),
        "{packet:?}"
    );
    buf
}

/// The version a decoder of `packet` is in: none yet for CONNECT.
fn decoder_version(packet: &Packet, version: ProtocolVersion) -> Option<ProtocolVersion> {
    match packet {
        Packet::Connect(_) => None,
        _ => Some(version),
    }
}

/// Decodes exactly one whole packet from `bytes`.
fn decode(bytes: &[u8], version: Option<ProtocolVersion>) -> Result<Packet, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let packet = decode_packet(&mut buf, version, NO_LIMIT)?.expect("a whole packet");
    assert!(buf.is_empty(), "bytes left after the packet");
    Ok(packet)
}

/// The error decoding `bytes` gives.
fn decode_err(bytes: &[u8], version: Option<ProtocolVersion>) -> DecodeError {
    match decode(bytes, version) {
        Ok(packet) => panic!("decoded {packet:?}"),
        Err(error) => error,
    }
}

/// Asserts that `packet` survives encode then decode for `version`.
fn assert_round_trip(packet: &Packet, version: ProtocolVersion) {
    let bytes = encode(packet, version);
    let decoded = decode(&bytes, decoder_version(packet, version)).unwrap();
    assert_eq!(&decoded, packet);
}

fn user_properties() -> Vec<UserProperty> {
    vec![
        ("region".into(), "eu".into()),
        ("region".into(), "us".into()),
        ("ключ".into(), "".into()),
    ]
}

fn full_publish_properties() -> PublishProperties {
    PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(3600),
        topic_alias: Some(7),
        response_topic: Some("reply/here".into()),
        correlation_data: Some(Bytes::from_static(b"\x00corr\xff")),
        user_properties: user_properties(),
        subscription_identifiers: vec![1, 268_435_455, 42],
        content_type: Some("application/json".into()),
    }
}

fn full_connect_v5() -> Packet {
    let mut will_properties = full_publish_properties();
    will_properties.topic_alias = None;
    will_properties.subscription_identifiers = Vec::new();
    Packet::Connect(Box::new(Connect {
        protocol: V5,
        clean_start: true,
        keep_alive: 60,
        client_id: "esp32-0001".into(),
        will: Some(LastWill {
            topic: "devices/esp32-0001/status".into(),
            payload: Bytes::from_static(b"offline"),
            qos: QoS::ExactlyOnce,
            retain: true,
            delay_interval: Some(30),
            properties: will_properties,
        }),
        username: Some("device".into()),
        password: Some(Bytes::from_static(b"s3cr\x00t")),
        properties: ConnectProperties {
            session_expiry_interval: Some(86_400),
            receive_maximum: Some(20),
            maximum_packet_size: Some(65_536),
            topic_alias_maximum: Some(10),
            request_response_information: Some(true),
            request_problem_information: Some(false),
            user_properties: user_properties(),
            authentication_method: Some("SCRAM-SHA-1".into()),
            authentication_data: Some(Bytes::from_static(b"client-first")),
        },
    }))
}

fn connect_v3(protocol: ProtocolVersion) -> Packet {
    Packet::Connect(Box::new(Connect {
        protocol,
        clean_start: false,
        keep_alive: 0,
        client_id: "c".into(),
        will: Some(LastWill {
            topic: "w".into(),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: false,
            delay_interval: None,
            properties: PublishProperties::default(),
        }),
        username: Some("u".into()),
        password: Some(Bytes::from_static(b"p")),
        properties: ConnectProperties::default(),
    }))
}

fn full_connack_v5() -> Packet {
    Packet::ConnAck(ConnAck {
        session_present: true,
        reason: ReasonCode::SUCCESS,
        properties: ConnAckProperties {
            session_expiry_interval: Some(0),
            receive_maximum: Some(100),
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(false),
            maximum_packet_size: Some(1_048_576),
            assigned_client_identifier: Some("auto-1".into()),
            topic_alias_maximum: Some(16),
            reason_string: Some("welcome".into()),
            user_properties: user_properties(),
            wildcard_subscription_available: Some(true),
            subscription_identifiers_available: Some(true),
            shared_subscription_available: Some(false),
            server_keep_alive: Some(120),
            response_information: Some("resp/".into()),
            server_reference: Some("other:1883".into()),
            authentication_method: Some("SCRAM-SHA-1".into()),
            authentication_data: Some(Bytes::from_static(b"server-first")),
        },
    })
}

fn publish(qos: QoS, packet_id: Option<u16>, payload: &'static [u8]) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: Arc::from("sensors/temp"),
        packet_id,
        payload: Bytes::from_static(payload),
        properties: PublishProperties::default(),
    }
}

fn full_ack_properties() -> AckProperties {
    AckProperties {
        reason_string: Some("because".into()),
        user_properties: user_properties(),
    }
}
