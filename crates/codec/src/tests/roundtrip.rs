//! decode(encode(p)) == p for every packet type, 3.1.1 and 5.0.

use super::*;

fn responses(response: PubResponse) -> Vec<Packet> {
    vec![
        Packet::PubAck(response.clone()),
        Packet::PubRec(response.clone()),
        Packet::PubRel(response.clone()),
        Packet::PubComp(response),
    ]
}

#[test]
fn connect_v5_with_every_property() {
    assert_round_trip(&full_connect_v5(), V5);
}

#[test]
fn connect_v5_minimal_and_password_without_username() {
    let Packet::Connect(mut connect) = full_connect_v5() else {
        panic!("not a CONNECT")
    };
    connect.will = None;
    connect.username = None;
    connect.properties = ConnectProperties::default();
    assert_round_trip(&Packet::Connect(connect), V5);
}

#[test]
fn connect_v3_1_1_and_v3_1() {
    assert_round_trip(&connect_v3(V3), V3);
    assert_round_trip(&connect_v3(ProtocolVersion::V3_1), ProtocolVersion::V3_1);
}

#[test]
fn connack_v5_with_every_property() {
    assert_round_trip(&full_connack_v5(), V5);
    let refused = Packet::ConnAck(ConnAck {
        reason: ReasonCode::BANNED,
        ..ConnAck::default()
    });
    assert_round_trip(&refused, V5);
}

#[test]
fn connack_v3_every_return_code() {
    for reason in [
        ReasonCode::SUCCESS,
        ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
        ReasonCode::SERVER_UNAVAILABLE,
        ReasonCode::BAD_USER_NAME_OR_PASSWORD,
        ReasonCode::NOT_AUTHORIZED,
    ] {
        let connack = Packet::ConnAck(ConnAck {
            session_present: reason == ReasonCode::SUCCESS,
            reason,
            properties: ConnAckProperties::default(),
        });
        assert_round_trip(&connack, V3);
    }
}

#[test]
fn publish_every_qos_both_versions() {
    for version in [V3, V5] {
        assert_round_trip(
            &Packet::Publish(publish(QoS::AtMostOnce, None, b"21.5")),
            version,
        );
        let mut qos1 = publish(QoS::AtLeastOnce, Some(1), b"");
        qos1.retain = true;
        assert_round_trip(&Packet::Publish(qos1), version);
        let mut qos2 = publish(QoS::ExactlyOnce, Some(65_535), &[0u8; 300]);
        qos2.dup = true;
        assert_round_trip(&Packet::Publish(qos2), version);
    }
}

#[test]
fn publish_v5_with_every_property() {
    let mut packet = publish(QoS::AtLeastOnce, Some(9), b"{\"t\":21.5}");
    packet.properties = full_publish_properties();
    assert_round_trip(&Packet::Publish(packet), V5);
    // A topic alias standing for the topic leaves the topic empty.
    let mut aliased = publish(QoS::AtMostOnce, None, b"x");
    aliased.topic = Arc::from("");
    aliased.properties.topic_alias = Some(1);
    assert_round_trip(&Packet::Publish(aliased), V5);
}

#[test]
fn publish_responses_both_versions() {
    for packet in responses(PubResponse::success(77)) {
        assert_round_trip(&packet, V3);
        assert_round_trip(&packet, V5);
    }
    let reason_only = PubResponse {
        packet_id: 78,
        reason: ReasonCode::NO_MATCHING_SUBSCRIBERS,
        properties: AckProperties::default(),
    };
    let with_properties = PubResponse {
        packet_id: 79,
        reason: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
        properties: full_ack_properties(),
    };
    let success_with_properties = PubResponse {
        packet_id: 80,
        reason: ReasonCode::SUCCESS,
        properties: full_ack_properties(),
    };
    for response in [reason_only, with_properties, success_with_properties] {
        for packet in responses(response) {
            assert_round_trip(&packet, V5);
        }
    }
}

fn subscribe(options: Vec<SubscriptionOptions>) -> Subscribe {
    Subscribe {
        packet_id: 10,
        filters: options
            .into_iter()
            .enumerate()
            .map(|(index, options)| (format!("fleet/{index}/#"), options))
            .collect(),
        subscription_identifier: None,
        user_properties: Vec::new(),
    }
}

#[test]
fn subscribe_v3_every_qos() {
    let options = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .map(|qos| SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        })
        .collect();
    assert_round_trip(&Packet::Subscribe(subscribe(options)), V3);
}

#[test]
fn subscribe_v5_with_every_option_and_property() {
    let mut packet = subscribe(vec![
        SubscriptionOptions {
            qos: QoS::ExactlyOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: 2,
        },
        SubscriptionOptions {
            qos: QoS::AtMostOnce,
            no_local: false,
            retain_as_published: false,
            retain_handling: 1,
        },
        SubscriptionOptions::default(),
    ]);
    packet.subscription_identifier = Some(268_435_455);
    packet.user_properties = user_properties();
    assert_round_trip(&Packet::Subscribe(packet), V5);
}

#[test]
fn suback_both_versions() {
    let suback = SubAck {
        packet_id: 10,
        reasons: vec![
            ReasonCode::GRANTED_QOS_0,
            ReasonCode::GRANTED_QOS_1,
            ReasonCode::GRANTED_QOS_2,
            ReasonCode::UNSPECIFIED_ERROR,
        ],
        properties: AckProperties::default(),
    };
    assert_round_trip(&Packet::SubAck(suback.clone()), V3);
    let mut v5 = suback;
    v5.reasons.push(ReasonCode::TOPIC_FILTER_INVALID);
    v5.properties = full_ack_properties();
    assert_round_trip(&Packet::SubAck(v5), V5);
}

#[test]
fn unsubscribe_both_versions() {
    let mut unsubscribe = Unsubscribe {
        packet_id: 11,
        filters: vec!["a/+".into(), "$share/g/b/#".into()],
        user_properties: Vec::new(),
    };
    assert_round_trip(&Packet::Unsubscribe(unsubscribe.clone()), V3);
    unsubscribe.user_properties = user_properties();
    assert_round_trip(&Packet::Unsubscribe(unsubscribe), V5);
}

#[test]
fn unsuback_both_versions() {
    let v3 = UnsubAck {
        packet_id: 11,
        reasons: Vec::new(),
        properties: AckProperties::default(),
    };
    assert_round_trip(&Packet::UnsubAck(v3), V3);
    let v5 = UnsubAck {
        packet_id: 11,
        reasons: vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED],
        properties: full_ack_properties(),
    };
    assert_round_trip(&Packet::UnsubAck(v5), V5);
}

#[test]
fn pings_both_versions() {
    for version in [V3, V5] {
        assert_round_trip(&Packet::PingReq, version);
        assert_round_trip(&Packet::PingResp, version);
    }
}

#[test]
fn disconnect_both_versions() {
    assert_round_trip(&Packet::Disconnect(Disconnect::default()), V3);
    assert_round_trip(&Packet::Disconnect(Disconnect::default()), V5);
    let reason_only = Disconnect {
        reason: ReasonCode::DISCONNECT_WITH_WILL,
        properties: DisconnectProperties::default(),
    };
    assert_round_trip(&Packet::Disconnect(reason_only), V5);
    let full = Disconnect {
        reason: ReasonCode::SERVER_MOVED,
        properties: DisconnectProperties {
            session_expiry_interval: Some(10),
            reason_string: Some("moving".into()),
            user_properties: user_properties(),
            server_reference: Some("b.example:1883".into()),
        },
    };
    assert_round_trip(&Packet::Disconnect(full), V5);
}

#[test]
fn auth_v5() {
    assert_round_trip(&Packet::Auth(Auth::default()), V5);
    let full = Auth {
        reason: ReasonCode::CONTINUE_AUTHENTICATION,
        authentication_method: Some("SCRAM-SHA-1".into()),
        authentication_data: Some(Bytes::from_static(b"\x01\x02")),
        reason_string: Some("more".into()),
        user_properties: user_properties(),
    };
    assert_round_trip(&Packet::Auth(full), V5);
}

#[test]
fn back_to_back_packets_decode_in_order() {
    let packets = [
        Packet::Publish(publish(QoS::AtLeastOnce, Some(1), b"one")),
        Packet::PingReq,
        Packet::PubAck(PubResponse::success(1)),
    ];
    let mut buf = BytesMut::new();
    for packet in &packets {
        encode_packet(packet, V5, &mut buf).unwrap();
    }
    for packet in &packets {
        let decoded = decode_packet(&mut buf, Some(V5), NO_LIMIT).unwrap();
        assert_eq!(decoded.as_ref(), Some(packet));
    }
    assert!(buf.is_empty());
    assert_eq!(decode_packet(&mut buf, Some(V5), NO_LIMIT).unwrap(), None);
}

#[test]
fn payload_and_binary_data_are_slices_of_the_frame() {
    let mut packet = publish(QoS::AtLeastOnce, Some(3), b"payload bytes");
    packet.properties.correlation_data = Some(Bytes::from_static(b"correlation"));
    let mut buf = encode(&Packet::Publish(packet), V5);
    let frame = buf.as_ptr_range();
    let Some(Packet::Publish(decoded)) = decode_packet(&mut buf, Some(V5), NO_LIMIT).unwrap()
    else {
        panic!("not a PUBLISH")
    };
    let within = |bytes: &Bytes| frame.contains(&bytes.as_ptr());
    assert!(within(&decoded.payload));
    assert!(within(
        decoded.properties.correlation_data.as_ref().unwrap()
    ));
}

/// Decodes a QoS 1 PUBLISH on `topic` through `topics`; its topic.
fn topic_through(topics: &mut TopicCache, topic: &str) -> Arc<str> {
    let mut packet = publish(QoS::AtLeastOnce, Some(1), b"x");
    packet.topic = Arc::from(topic);
    let mut buf = encode(&Packet::Publish(packet), V3);
    match decode_packet_with(&mut buf, Some(V3), NO_LIMIT, topics) {
        Ok(Some(Packet::Publish(publish))) => publish.topic,
        other => panic!("expected a PUBLISH, got {other:?}"),
    }
}

#[test]
fn a_topic_cache_shares_a_repeated_topic_and_replaces_a_new_one() {
    let mut topics = TopicCache::default();
    let first = topic_through(&mut topics, "fleet/dev1/temp");
    let again = topic_through(&mut topics, "fleet/dev1/temp");
    assert_eq!(&*again, "fleet/dev1/temp");
    assert!(Arc::ptr_eq(&first, &again), "the same topic shares one Arc");
    let other = topic_through(&mut topics, "fleet/dev1/hum");
    assert_eq!(&*other, "fleet/dev1/hum");
    let back = topic_through(&mut topics, "fleet/dev1/temp");
    assert_eq!(&*back, "fleet/dev1/temp");
    assert!(!Arc::ptr_eq(&first, &back), "only the last topic is kept");
    topics.clear();
    let after_clear = topic_through(&mut topics, "fleet/dev1/temp");
    assert!(
        !Arc::ptr_eq(&back, &after_clear),
        "a cleared cache shares nothing"
    );
}
