//! Property-based tests: the decoder never panics, and publishes survive a
//! round trip.

use proptest::prelude::*;

use super::*;

/// Decodes everything in `bytes`, as the broker's read loop would.
fn decode_all(bytes: &[u8], version: Option<ProtocolVersion>, max_packet_size: u32) {
    let mut buf = BytesMut::from(bytes);
    let mut version = version;
    while let Ok(Some(packet)) = decode_packet(&mut buf, version, max_packet_size) {
        if let Packet::Connect(connect) = packet {
            version = Some(connect.protocol);
        }
    }
}

fn any_version() -> impl Strategy<Value = Option<ProtocolVersion>> {
    prop_oneof![
        Just(None),
        Just(Some(ProtocolVersion::V3_1)),
        Just(Some(V3)),
        Just(Some(V5)),
    ]
}

fn string() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,12}"
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn publish_properties() -> impl Strategy<Value = PublishProperties> {
    (
        proptest::option::of(0u8..=1),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u16>()),
        proptest::option::of(string()),
        proptest::option::of(bytes(16)),
        proptest::collection::vec((string(), string()), 0..3),
        proptest::collection::vec(1u32..=268_435_455, 0..3),
        proptest::option::of(string()),
    )
        .prop_map(
            |(pfi, expiry, alias, response, correlation, users, ids, content)| PublishProperties {
                payload_format_indicator: pfi,
                message_expiry_interval: expiry,
                topic_alias: alias,
                response_topic: response,
                correlation_data: correlation,
                user_properties: users,
                subscription_identifiers: ids,
                content_type: content,
            },
        )
}

fn any_publish(v5: bool) -> impl Strategy<Value = Publish> {
    let properties = if v5 {
        publish_properties().boxed()
    } else {
        Just(PublishProperties::default()).boxed()
    };
    (
        0u8..3,
        any::<bool>(),
        any::<bool>(),
        1u16..,
        string(),
        bytes(300),
        properties,
    )
        .prop_map(
            |(qos, dup, retain, packet_id, topic, payload, properties)| {
                let qos = QoS::from_u8(qos).unwrap_or_default();
                let has_id = qos != QoS::AtMostOnce;
                Publish {
                    dup: dup && has_id,
                    qos,
                    retain,
                    topic: Arc::from(topic),
                    packet_id: has_id.then_some(packet_id),
                    payload,
                    properties,
                }
            },
        )
}

/// Valid packets to mutate: the decoder must survive near misses too.
fn seeds() -> Vec<(BytesMut, Option<ProtocolVersion>)> {
    let mut publish = publish(QoS::ExactlyOnce, Some(7), b"payload");
    publish.properties = full_publish_properties();
    vec![
        (encode(&full_connect_v5(), V5), None),
        (encode(&connect_v3(V3), V3), None),
        (encode(&full_connack_v5(), V5), Some(V5)),
        (encode(&Packet::Publish(publish), V5), Some(V5)),
    ]
}

proptest! {
    #[test]
    fn decode_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        version in any_version(),
        max_packet_size in prop_oneof![Just(u32::MAX), 0u32..600],
    ) {
        decode_all(&bytes, version, max_packet_size);
    }

    #[test]
    fn decode_never_panics_on_mutated_packets(
        seed in 0usize..4,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let (mut bytes, version) = seeds().swap_remove(seed);
        for (index, value) in edits {
            let position = index.index(bytes.len());
            bytes[position] = value;
        }
        let len = bytes.len();
        decode_all(&bytes, version, u32::MAX);
        decode_all(&bytes[..cut.index(len)], version, u32::MAX);
    }

    #[test]
    fn publish_round_trips_v3(publish in any_publish(false)) {
        let packet = Packet::Publish(publish);
        let bytes = encode(&packet, V3);
        prop_assert_eq!(decode(&bytes, Some(V3)).unwrap(), packet);
    }

    #[test]
    fn publish_round_trips_v5(publish in any_publish(true)) {
        let packet = Packet::Publish(publish);
        let bytes = encode(&packet, V5);
        prop_assert_eq!(decode(&bytes, Some(V5)).unwrap(), packet);
    }
}
