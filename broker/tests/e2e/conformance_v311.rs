//! MQTT 3.1.1 conformance: one test per normative statement a server must
//! honour, named after the statement (`mqtt_3_1_0_1_…` is [MQTT-3.1.0-1]).
//!
//! Each test writes the client's bytes by hand and asserts the exact packets
//! the broker answers with, and that it closes the connection where the
//! specification says it must.

use std::thread;
use std::time::{Duration, Instant};

use crate::harness::*;

/// A connected 3.1.1 client subscribed to `filter` at QoS 1: a witness that
/// sees whether a message was routed.
fn witness(broker: &Broker, id: &str, filter: &str) -> RawClient {
    let (mut client, _) = RawClient::connect_v311(broker.addr(), id, true);
    assert_eq!(client.subscribe(1, filter, 1), vec![ReasonCode(1)]);
    client
}

/// Asserts the broker closes `client` and never answered with a successful
/// CONNACK or any other packet than `allowed`.
fn assert_closed_without(client: &mut RawClient, what: &str) {
    let closed = client
        .wait_closed(WAIT)
        .unwrap_or_else(|| panic!("{what}: broker kept the connection open"));
    for packet in &closed.packets {
        match packet {
            Packet::ConnAck(connack) if connack.reason != ReasonCode::SUCCESS => {}
            other => panic!("{what}: broker answered {other:?} before closing"),
        }
    }
}

#[test]
fn mqtt_3_1_0_1_first_packet_must_be_connect() {
    let broker = Broker::start();
    let mut client = RawClient::connect(broker.addr());
    client.send(&[0xC0, 0x00]); // PINGREQ before CONNECT
    assert_closed_without(&mut client, "PINGREQ as first packet");

    let mut client = RawClient::connect(broker.addr());
    client.send(&subscribe(1, &[("a", 0)], false, &[]));
    assert_closed_without(&mut client, "SUBSCRIBE as first packet");
}

#[test]
fn mqtt_3_1_0_2_second_connect_is_protocol_violation() {
    let broker = Broker::start();
    let (mut client, _) = RawClient::connect_v311(broker.addr(), "twice", true);
    client.send(&ConnectBuilder::v311("twice").build());
    assert_closed_without(&mut client, "second CONNECT");
    broker.assert_log("disconnected due to protocol error", WAIT);
}

#[test]
fn mqtt_3_1_2_3_reserved_flag_must_be_zero() {
    let broker = Broker::start();
    let mut client = RawClient::connect(broker.addr());
    let mut connect = ConnectBuilder::v311("reserved");
    connect.extra_flags = 0x01;
    client.send(&connect.build());
    assert_closed_without(&mut client, "CONNECT reserved flag 1");
}

#[test]
fn mqtt_3_1_2_1_invalid_protocol_name() {
    let broker = Broker::start();
    let mut client = RawClient::connect(broker.addr());
    let mut connect = ConnectBuilder::v311("badname");
    connect.protocol_name = b"MQTX".to_vec();
    client.send(&connect.build());
    assert_closed_without(&mut client, "protocol name MQTX");
}

#[test]
fn mqtt_3_1_2_2_unsupported_level_gets_connack_1() {
    let broker = Broker::start();
    let mut client = RawClient::connect(broker.addr());
    let mut connect = ConnectBuilder::v311("level6");
    connect.level = 6;
    client.send(&connect.build());
    assert_eq!(
        client.recv_exact(4, WAIT),
        [0x20, 0x02, 0x00, 0x01],
        "CONNACK 0x01 unacceptable protocol version"
    );
    assert!(
        client.expect_closed(WAIT),
        "connection left open after CONNACK 0x01"
    );
}

#[test]
fn mqtt_3_1_3_6_zero_length_id_with_clean_session_1_accepted() {
    let broker = Broker::start();
    let mut client = RawClient::connect(broker.addr());
    client.send(&ConnectBuilder::v311("").clean(true).build());
    assert_eq!(client.recv_exact(4, WAIT), [0x20, 0x02, 0x00, 0x00]);
    client.ping();
}

#[test]
fn mqtt_3_1_3_8_zero_length_id_with_clean_session_0_rejected() {
    let broker = Broker::start();
    let mut client = RawClient::connect(broker.addr());
    client.send(&ConnectBuilder::v311("").clean(false).build());
    assert_eq!(
        client.recv_exact(4, WAIT),
        [0x20, 0x02, 0x00, 0x02],
        "CONNACK 0x02 identifier rejected"
    );
    assert!(
        client.expect_closed(WAIT),
        "connection left open after CONNACK 0x02"
    );
}

#[test]
fn mqtt_3_1_4_2_existing_client_disconnected_on_same_id() {
    let broker = Broker::start();
    let (mut first, _) = RawClient::connect_v311(broker.addr(), "same-id", true);
    let (mut second, _) = RawClient::connect_v311(broker.addr(), "same-id", true);
    assert_closed_without(&mut first, "old connection of a taken-over id");
    second.ping();
    broker.assert_log(
        "Client same-id already connected, closing old connection.",
        WAIT,
    );
}

#[test]
fn mqtt_3_1_2_24_keep_alive_exceeded_disconnects() {
    let broker = Broker::start();
    let mut client = RawClient::connect(broker.addr());
    client.send(&ConnectBuilder::v311("sleepy").keep_alive(1).build());
    client.expect_connack();
    let started = Instant::now();
    // One and a half keep alive periods, plus scheduling slack. Mosquitto
    // checks keep alive coarsely and takes about 5 s here.
    let limit = Duration::from_secs(if is_mosquitto() { 7 } else { 3 });
    assert!(
        client.expect_closed(limit),
        "idle client kept past 1.5 x keep alive"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "closed before the keep alive period"
    );
    broker.assert_log("Client sleepy has exceeded timeout, disconnecting.", WAIT);
}

#[test]
fn mqtt_3_2_2_1_session_present() {
    let broker = Broker::start();
    let addr = broker.addr();
    let connack = |clean: bool| {
        let mut client = RawClient::connect(addr);
        client.send(&ConnectBuilder::v311("persist").clean(clean).build());
        let bytes = client.recv_exact(4, WAIT);
        (client, bytes)
    };
    // No session yet: session present 0 [MQTT-3.2.2-3].
    let (mut client, bytes) = connack(false);
    assert_eq!(bytes, [0x20, 0x02, 0x00, 0x00]);
    client.subscribe(1, "persist/t", 1);
    client.send(&disconnect(None));
    assert!(client.expect_closed(WAIT));
    // Stored session resumed: session present 1 [MQTT-3.2.2-2].
    let (mut client, bytes) = connack(false);
    assert_eq!(
        bytes,
        [0x20, 0x02, 0x01, 0x00],
        "resumed session must be present"
    );
    client.send(&disconnect(None));
    assert!(client.expect_closed(WAIT));
    // Clean session: session present 0 [MQTT-3.2.2-1], and the session is gone.
    let (mut client, bytes) = connack(true);
    assert_eq!(bytes, [0x20, 0x02, 0x00, 0x00]);
    client.send(&disconnect(None));
    assert!(client.expect_closed(WAIT));
    let (_client, bytes) = connack(false);
    assert_eq!(
        bytes,
        [0x20, 0x02, 0x00, 0x00],
        "clean session must discard the old one"
    );
}

#[test]
fn mqtt_3_3_1_2_dup_with_qos0_malformed() {
    if skip_on_mosquitto("mosquitto 2.0.11 accepts DUP on a 3.1.1 QoS 0 PUBLISH") {
        return;
    }
    let broker = Broker::start();
    let mut sub = witness(&broker, "dup-witness", "dup/#");
    let (mut client, _) = RawClient::connect_v311(broker.addr(), "dup-qos0", true);
    client.send(&publish("dup/t", b"x").dup(true).build());
    assert_closed_without(&mut client, "QoS 0 PUBLISH with DUP");
    assert_eq!(
        sub.expect_silence(QUIET),
        Ok(()),
        "malformed PUBLISH was routed"
    );
}

#[test]
fn mqtt_3_3_1_4_publish_qos_3_malformed() {
    let broker = Broker::start();
    let (mut client, _) = RawClient::connect_v311(broker.addr(), "qos3", true);
    client.send(&packet(0x36, &[0x00, 0x01, b't', 0x00, 0x01, b'x']));
    assert_closed_without(&mut client, "PUBLISH with QoS 3");
}

#[test]
fn mqtt_3_3_2_2_publish_topic_with_wildcards() {
    let broker = Broker::start();
    let mut sub = witness(&broker, "wild-witness", "#");
    for topic in ["wild/+/t", "wild/#"] {
        let (mut client, _) = RawClient::connect_v311(broker.addr(), "wild-pub", true);
        client.send(&publish(topic, b"x").qos(1).packet_id(5).build());
        assert_closed_without(&mut client, &format!("PUBLISH to {topic}"));
    }
    assert_eq!(
        sub.expect_silence(QUIET),
        Ok(()),
        "PUBLISH with a wildcard topic was routed"
    );
}

#[test]
fn mqtt_3_3_1_5_6_7_retained() {
    let broker = Broker::start();
    let (mut publisher, _) = RawClient::connect_v311(broker.addr(), "ret-pub", true);
    publisher.publish("ret/a", b"first", 1, true);
    // [MQTT-3.3.1-7]: a newer retained message (QoS 0 too) replaces the old one.
    publisher.publish("ret/a", b"second", 0, true);
    publisher.publish("ret/b", b"other", 1, true);
    publisher.ping(); // the QoS 0 publish has been processed

    // [MQTT-3.3.1-5/6]: stored and sent to a new matching subscription.
    let (mut sub, _) = RawClient::connect_v311(broker.addr(), "ret-sub", true);
    sub.subscribe(1, "ret/a", 1);
    let retained = sub.expect_publish();
    assert_eq!(&*retained.topic, "ret/a");
    assert_eq!(&retained.payload[..], b"second");
    assert!(
        retained.retain,
        "[MQTT-3.3.1-8] RETAIN must be 1 on a new subscription"
    );
    assert_eq!(
        retained.qos,
        QoS::AtMostOnce,
        "stored with the QoS it was published with"
    );
    assert_eq!(
        sub.expect_silence(QUIET),
        Ok(()),
        "only the last retained message of ret/a"
    );
}

#[test]
fn mqtt_3_3_1_9_retain_flag_cleared_on_live_delivery() {
    let broker = Broker::start();
    let mut sub = witness(&broker, "live-sub", "live/t");
    let (mut publisher, _) = RawClient::connect_v311(broker.addr(), "live-pub", true);
    publisher.publish("live/t", b"x", 1, true);
    let delivered = sub.expect_publish();
    assert!(
        !delivered.retain,
        "RETAIN must be 0 on an established subscription"
    );
}

#[test]
fn mqtt_3_3_1_10_11_empty_retained_clears_and_is_not_stored() {
    let broker = Broker::start();
    let (mut publisher, _) = RawClient::connect_v311(broker.addr(), "clear-pub", true);
    publisher.publish("clear/t", b"keep?", 1, true);
    publisher.publish("clear/t", b"", 1, true);
    let (mut sub, _) = RawClient::connect_v311(broker.addr(), "clear-sub", true);
    sub.subscribe(1, "clear/#", 1);
    assert_eq!(
        sub.expect_silence(QUIET),
        Ok(()),
        "retained message survived an empty one"
    );
}

#[test]
fn mqtt_3_6_1_1_pubrel_reserved_flags() {
    let broker = Broker::start();
    let (mut client, _) = RawClient::connect_v311(broker.addr(), "pubrel-flags", true);
    client.send(&publish("p/t", b"x").qos(2).packet_id(9).build());
    match client.expect_packet("PUBREC") {
        Packet::PubRec(rec) => assert_eq!(rec.packet_id, 9),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    client.send(&ack(0x60, 9)); // PUBREL must be 0x62
    assert_closed_without(&mut client, "PUBREL with flags 0000");
}

#[test]
fn mqtt_3_8_1_1_subscribe_reserved_flags() {
    let broker = Broker::start();
    let (mut client, _) = RawClient::connect_v311(broker.addr(), "sub-flags", true);
    let mut bytes = subscribe(3, &[("a/b", 0)], false, &[]);
    bytes[0] = 0x80;
    client.send(&bytes);
    assert_closed_without(&mut client, "SUBSCRIBE with flags 0000");
}

#[test]
fn mqtt_3_8_3_3_subscribe_without_filters() {
    let broker = Broker::start();
    let (mut client, _) = RawClient::connect_v311(broker.addr(), "sub-empty", true);
    client.send(&subscribe(3, &[], false, &[]));
    assert_closed_without(&mut client, "SUBSCRIBE without filters");
}

#[test]
fn mqtt_3_8_4_1_suback_same_packet_id() {
    let broker = Broker::start();
    let (mut client, _) = RawClient::connect_v311(broker.addr(), "suback-id", true);
    client.send(&subscribe(
        0x1234,
        &[("s/a", 1), ("s/b", 2), ("s/c", 0)],
        false,
        &[],
    ));
    // [MQTT-3.8.4-1] same packet id, [MQTT-3.9.3-1] one code per filter in order.
    assert_eq!(
        client.recv_exact(7, WAIT),
        [0x90, 0x05, 0x12, 0x34, 0x01, 0x02, 0x00]
    );
}

#[test]
fn mqtt_3_8_4_3_subscribe_replaces_existing() {
    let broker = Broker::start();
    let (mut publisher, _) = RawClient::connect_v311(broker.addr(), "repl-pub", true);
    publisher.publish("repl/t", b"retained", 1, true);
    let (mut sub, _) = RawClient::connect_v311(broker.addr(), "repl-sub", true);
    assert_eq!(sub.subscribe(1, "repl/t", 0), vec![ReasonCode(0)]);
    assert_eq!(sub.expect_publish().qos, QoS::AtMostOnce);
    assert_eq!(sub.subscribe(2, "repl/t", 1), vec![ReasonCode(1)]);
    let resent = sub.expect_publish();
    assert_eq!(
        &resent.payload[..],
        b"retained",
        "retained message re-sent on replacement"
    );
    assert_eq!(resent.qos, QoS::AtLeastOnce);
    sub.send_packet(
        &Packet::PubAck(PubResponse::success(resent.packet_id.unwrap())),
        ProtocolVersion::V3_1_1,
    );

    publisher.publish("repl/t", b"live", 1, false);
    let live = sub.expect_publish();
    assert_eq!(
        live.qos,
        QoS::AtLeastOnce,
        "replacement subscription has the new QoS"
    );
    sub.send_packet(
        &Packet::PubAck(PubResponse::success(live.packet_id.unwrap())),
        ProtocolVersion::V3_1_1,
    );
    assert_eq!(
        sub.expect_silence(QUIET),
        Ok(()),
        "one copy only: the subscription was replaced"
    );
}

#[test]
fn mqtt_3_9_3_2_suback_failure_0x80_for_invalid_filter() {
    if skip_on_mosquitto("mosquitto disconnects on an invalid filter instead of SUBACK 0x80") {
        return;
    }
    let broker = Broker::start();
    let (mut client, _) = RawClient::connect_v311(broker.addr(), "suback-fail", true);
    client.send(&subscribe(
        7,
        &[("ok/t", 1), ("bad/#/t", 1), ("bad+", 0)],
        false,
        &[],
    ));
    assert_eq!(
        client.recv_exact(7, WAIT),
        [0x90, 0x05, 0x00, 0x07, 0x01, 0x80, 0x80]
    );
    client.ping();
}

#[test]
fn mqtt_3_10_4_5_unsuback_even_when_no_match() {
    let broker = Broker::start();
    let (mut client, _) = RawClient::connect_v311(broker.addr(), "unsub", true);
    client.send(&unsubscribe(0x0102, &["never/subscribed"], false));
    assert_eq!(client.recv_exact(4, WAIT), [0xB0, 0x02, 0x01, 0x02]);
}

#[test]
fn mqtt_3_10_4_1_unsubscribe_stops_delivery() {
    let broker = Broker::start();
    let mut sub = witness(&broker, "unsub-sub", "unsub/t");
    sub.send(&unsubscribe(2, &["unsub/t"], false));
    assert_eq!(sub.recv_exact(4, WAIT), [0xB0, 0x02, 0x00, 0x02]);
    let (mut publisher, _) = RawClient::connect_v311(broker.addr(), "unsub-pub", true);
    publisher.publish("unsub/t", b"x", 1, false);
    assert_eq!(
        sub.expect_silence(QUIET),
        Ok(()),
        "delivered after UNSUBSCRIBE"
    );
}

#[test]
fn mqtt_3_12_4_1_pingresp() {
    let broker = Broker::start();
    let (mut client, _) = RawClient::connect_v311(broker.addr(), "pinger", true);
    client.send(&[0xC0, 0x00]);
    assert_eq!(client.recv_exact(2, WAIT), [0xD0, 0x00]);
}

#[test]
fn mqtt_3_14_4_3_disconnect_discards_will() {
    let broker = Broker::start();
    let mut sub = witness(&broker, "will-witness", "will/#");
    let mut client = RawClient::connect(broker.addr());
    client.send(
        &ConnectBuilder::v311("will-discard")
            .will("will/t", b"gone", 1, false)
            .build(),
    );
    client.expect_connack();
    client.send(&disconnect(None));
    assert!(
        client.expect_closed(WAIT),
        "[MQTT-3.14.4-1] server must close after DISCONNECT"
    );
    assert_eq!(
        sub.expect_silence(Duration::from_millis(500)),
        Ok(()),
        "will sent after DISCONNECT"
    );
}

#[test]
fn mqtt_3_1_2_8_will_published_on_network_drop() {
    let broker = Broker::start();
    let mut sub = witness(&broker, "drop-witness", "drop/#");
    let mut client = RawClient::connect(broker.addr());
    client.send(
        &ConnectBuilder::v311("dropper")
            .will("drop/will", b"bye", 1, false)
            .build(),
    );
    client.expect_connack();
    client.drop_connection();
    let will = sub.expect_publish();
    assert_eq!(
        (&*will.topic, &will.payload[..]),
        ("drop/will", &b"bye"[..])
    );
}

#[test]
fn mqtt_4_7_1_2_hash_must_be_last() {
    let broker = Broker::start();
    let (mut client, _) = RawClient::connect_v311(broker.addr(), "hash-last", true);
    client.send(&subscribe(4, &[("sport/#/ranking", 0)], false, &[]));
    // Either SUBACK failure or a closed connection; never a grant.
    match client.recv_packet(WAIT) {
        Some(Packet::SubAck(suback)) => assert_eq!(suback.reasons, vec![ReasonCode(0x80)]),
        Some(other) => panic!("expected SUBACK 0x80 or close, got {other:?}"),
        None => assert!(client.is_closed(), "no SUBACK and connection still open"),
    }
    if !client.is_closed() {
        let (mut publisher, _) = RawClient::connect_v311(broker.addr(), "hash-pub", true);
        publisher.publish("sport/tennis/ranking", b"x", 1, false);
        assert_eq!(
            client.expect_silence(QUIET),
            Ok(()),
            "invalid filter matched"
        );
    }
}

#[test]
fn mqtt_4_7_2_1_dollar_topics_not_matched_by_wildcards() {
    let broker = Broker::start();
    let (mut wild, _) = RawClient::connect_v311(broker.addr(), "wild", true);
    wild.subscribe(1, "#", 0);
    wild.subscribe(2, "+/broker/#", 0);
    // Positive control: the broker does publish $SYS topics every second.
    let (mut sys, _) = RawClient::connect_v311(broker.addr(), "sys", true);
    sys.subscribe(1, "$SYS/#", 0);
    let sys_message = sys.expect_publish();
    assert!(sys_message.topic.starts_with("$SYS/"));
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        if let Some(packet) = wild.recv_packet(Duration::from_millis(100)) {
            panic!("a wildcard subscription received {packet:?}");
        }
    }
}

#[test]
fn mqtt_4_8_shared_subscription() {
    let broker = Broker::start();
    let mut members: Vec<RawClient> = (0..2)
        .map(|i| {
            let (mut member, _) =
                RawClient::connect_v311(broker.addr(), &format!("member{i}"), true);
            assert_eq!(
                member.subscribe(1, "$share/group/shared/t", 0),
                vec![ReasonCode(0)]
            );
            member
        })
        .collect();
    let (mut publisher, _) = RawClient::connect_v311(broker.addr(), "shared-pub", true);
    for i in 0..20u8 {
        publisher.publish("shared/t", &[i], 1, false);
    }
    let mut counts = Vec::new();
    let mut seen = Vec::new();
    for member in &mut members {
        let mut count = 0;
        while let Some(packet) = member.recv_packet(QUIET) {
            let Packet::Publish(publish) = packet else {
                panic!("unexpected {packet:?}")
            };
            seen.push(publish.payload[0]);
            count += 1;
        }
        counts.push(count);
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..20).collect::<Vec<u8>>(),
        "each message to exactly one member"
    );
    assert!(
        counts.iter().all(|&c| c > 0),
        "messages not spread across members: {counts:?}"
    );
}

#[test]
fn mqtt_2_2_2_2_reserved_flags_invalid() {
    let broker = Broker::start();
    let (mut client, _) = RawClient::connect_v311(broker.addr(), "unsub-flags", true);
    let mut bytes = unsubscribe(1, &["a/b"], false);
    bytes[0] = 0xA0; // UNSUBSCRIBE must be 0xA2
    client.send(&bytes);
    assert_closed_without(&mut client, "UNSUBSCRIBE with flags 0000");

    if skip_on_mosquitto("mosquitto 2.0.11 ignores the flags of PUBACK and PINGREQ") {
        return;
    }
    let (mut client, _) = RawClient::connect_v311(broker.addr(), "puback-flags", true);
    client.send(&ack(0x42, 1)); // PUBACK with a reserved flag set
    assert_closed_without(&mut client, "PUBACK with flags 0010");

    let (mut client, _) = RawClient::connect_v311(broker.addr(), "ping-flags", true);
    client.send(&[0xC1, 0x00]); // PINGREQ with a reserved flag set
    assert_closed_without(&mut client, "PINGREQ with flags 0001");
}

#[test]
fn mqtt_2_2_3_remaining_length_over_4_bytes_malformed() {
    let broker = Broker::start();
    let (mut client, _) = RawClient::connect_v311(broker.addr(), "long-length", true);
    client.send(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x00]);
    assert_closed_without(&mut client, "5-byte remaining length");
    assert!(
        broker.wait_for_log("disconnected due to malformed packet", WAIT)
            || broker.wait_for_log("disconnected due to protocol error", Duration::ZERO),
        "no malformed/protocol error log; logs:\n{}",
        broker.logs()
    );
}

#[test]
fn mqtt_1_5_3_1_invalid_utf8_disconnects() {
    let broker = Broker::start();
    let mut sub = witness(&broker, "utf8-witness", "#");
    // A lone continuation byte, and an encoded UTF-16 surrogate (U+D800).
    for topic in [&b"bad\xC3\x28"[..], &b"bad\xED\xA0\x80"[..]] {
        let (mut client, _) = RawClient::connect_v311(broker.addr(), "utf8", true);
        let mut body = Vec::new();
        string(&mut body, topic);
        body.push(b'x');
        client.send(&packet(0x30, &body));
        assert_closed_without(&mut client, &format!("topic {topic:x?}"));
    }
    assert_eq!(
        sub.expect_silence(QUIET),
        Ok(()),
        "invalid UTF-8 topic was routed"
    );
}

#[test]
fn mqtt_1_5_3_2_nul_in_string_disconnects() {
    let broker = Broker::start();
    let mut sub = witness(&broker, "nul-witness", "#");
    let (mut client, _) = RawClient::connect_v311(broker.addr(), "nul", true);
    client.send(&publish("nul\0topic", b"x").build());
    assert_closed_without(&mut client, "topic with U+0000");
    assert_eq!(
        sub.expect_silence(QUIET),
        Ok(()),
        "topic with U+0000 was routed"
    );
}

#[test]
fn garbage_client_is_disconnected_while_others_keep_working() {
    let broker = Broker::start();
    let addr = broker.addr();
    let healthy = thread::spawn(move || {
        let (mut sub, _) = RawClient::connect_v311(addr, "healthy-sub", true);
        sub.subscribe(1, "healthy/t", 1);
        let (mut publisher, _) = RawClient::connect_v311(addr, "healthy-pub", true);
        let started = Instant::now();
        let mut round_trips = 0;
        while started.elapsed() < Duration::from_millis(1500) {
            assert_eq!(
                publisher.publish("healthy/t", b"ok", 1, false),
                ReasonCode::SUCCESS
            );
            let message = sub.expect_publish();
            sub.send_packet(
                &Packet::PubAck(PubResponse::success(message.packet_id.unwrap())),
                ProtocolVersion::V3_1_1,
            );
            round_trips += 1;
        }
        round_trips
    });

    let (mut garbage, _) = RawClient::connect_v311(addr, "garbage", true);
    // Deterministic noise (xorshift), 1 MB in 512-byte writes.
    let mut state: u32 = 0x9E37_79B9;
    let mut sent = 0usize;
    let mut chunk = [0u8; 512];
    let write_failed = loop {
        if sent >= 1 << 20 {
            break false;
        }
        for byte in chunk.iter_mut() {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *byte = state as u8;
        }
        chunk[0] = 0x00; // never a valid packet start: reserved type 0
        if std::io::Write::write_all(&mut GarbageWriter(&mut garbage), &chunk).is_err() {
            break true;
        }
        sent += chunk.len();
    };
    assert!(
        write_failed || garbage.expect_closed(WAIT),
        "garbage client still connected after {sent} bytes"
    );
    let round_trips = healthy.join().expect("healthy client thread");
    assert!(
        round_trips > 0,
        "no QoS 1 round trip while garbage was sent"
    );
}

/// Exposes write errors of a raw client (its `send` ignores them).
struct GarbageWriter<'a>(&'a mut RawClient);

impl std::io::Write for GarbageWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.try_send(buf).map(|()| buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
