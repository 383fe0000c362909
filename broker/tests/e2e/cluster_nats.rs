//! Issue 19, first part: three fleetmq nodes on a three-server NATS
//! JetStream cluster (Debian's nats-server, loopback): a PUBLISH on one
//! node reaches subscribers on the others at QoS 0/1/2 with wildcards,
//! special characters and 5.0 properties; a retained message set on one
//! node is seen by a subscriber on another; an offline persistent session
//! on one node gets what another node published meanwhile; with NATS gone a QoS 1 publish
//! is refused (0x80 in 5.0, no PUBACK and a closed connection in 3.1.1),
//! and once NATS is back the node accepts and routes again by itself
//! (decisions 0156 to 0158).
//!
//! One test on one NATS cluster, under the heavy lock: six processes and a
//! JetStream leader election are not something to run beside others.

use std::time::{Duration, Instant};

use crate::cluster_support::{node, recv_publish, wait_ready, CROSS};
use crate::harness::hostile::heavy_lock;
use crate::harness::nats::NatsCluster;
use crate::harness::*;

/// 5.0 user property `key` = `value` (0x26, two UTF-8 strings).
fn user_property(key: &str, value: &str) -> Vec<u8> {
    let mut out = vec![0x26];
    for text in [key, value] {
        out.extend_from_slice(&(text.len() as u16).to_be_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    out
}

#[test]
fn three_nodes_route_retain_and_refuse_without_nats() {
    if skip_on_mosquitto("fleetmq's NATS cluster backend") {
        return;
    }
    let _heavy = heavy_lock();
    let started = Instant::now();
    let mut nats = NatsCluster::start();
    let a = node(&nats, "a");
    let b = node(&nats, "b");
    let c = node(&nats, "c");
    for broker in [&a, &b, &c] {
        wait_ready(broker, 1, &nats);
    }

    eprintln!("nodes ready after {:?}", started.elapsed());
    // Subscribers on b (single-level wildcard, QoS 2) and c (multi-level,
    // QoS 1, retain-as-published: options bit 3).
    let (mut on_b, _) = RawClient::connect_v5(b.addr(), "sub-b", true);
    assert_eq!(on_b.subscribe(1, "lab/+/x", 2), [ReasonCode(2)]);
    let (mut on_c, _) = RawClient::connect_v5(c.addr(), "sub-c", true);
    assert_eq!(on_c.subscribe(1, "lab/#", 1 | 0x08), [ReasonCode(1)]);

    // QoS 0, 1 and 2 from a, on a topic with '.', a space and UTF-8; the
    // acknowledgements say success although a has no subscriber itself.
    let topic = "lab/a.b c é/x";
    let (mut publisher, _) = RawClient::connect_v5(a.addr(), "pub-a", true);
    for qos in 0..=2u8 {
        let payload = format!("qos{qos}");
        assert_eq!(
            publisher.publish(topic, payload.as_bytes(), qos, false),
            ReasonCode::SUCCESS,
            "QoS {qos} acknowledgement on a"
        );
    }
    for (client, max_qos) in [(&mut on_b, 2u8), (&mut on_c, 1u8)] {
        let mut got = Vec::new();
        for _ in 0..3 {
            let publish = recv_publish(client, CROSS)
                .unwrap_or_else(|| panic!("a message from a did not cross over:\n{}", b.logs()));
            assert_eq!(&*publish.topic, topic);
            got.push((
                String::from_utf8_lossy(&publish.payload).into_owned(),
                publish.qos as u8,
            ));
        }
        got.sort();
        let want: Vec<(String, u8)> = (0..=2u8)
            .map(|q| (format!("qos{q}"), q.min(max_qos)))
            .collect();
        assert_eq!(got, want);
    }

    // 5.0 properties cross in headers.
    let mut properties = user_property("site", "lab 2");
    properties.extend(prop::u32(prop::MESSAGE_EXPIRY, 600));
    publisher.send(
        &publish("lab/props/x", b"p")
            .qos(1)
            .packet_id(9)
            .v5(true)
            .properties(&properties)
            .build(),
    );
    match publisher.expect_packet("PUBACK") {
        Packet::PubAck(ack) => assert_eq!(ack.reason, ReasonCode::SUCCESS),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    let with_properties = recv_publish(&mut on_b, CROSS).expect("properties message on b");
    assert_eq!(
        with_properties.properties.user_properties,
        [("site".to_string(), "lab 2".to_string())]
    );
    assert!(with_properties
        .properties
        .message_expiry_interval
        .is_some_and(|secs| (590..=600).contains(&secs)));
    let _ = recv_publish(&mut on_c, CROSS).expect("properties message on c");

    // Retained on a: c's live subscriber (retain-as-published) sees the
    // flag, and a new subscriber on b gets it from the retained stream.
    assert_eq!(
        publisher.publish("lab/ret", b"kept", 1, true),
        ReasonCode::SUCCESS
    );
    let live = recv_publish(&mut on_c, CROSS).expect("retained message live on c");
    assert!(live.retain, "retain-as-published across nodes");
    let deadline = Instant::now() + CROSS;
    let retained = loop {
        let (mut late, _) = RawClient::connect_v5(b.addr(), "late-b", true);
        assert_eq!(late.subscribe(1, "lab/ret", 1), [ReasonCode(1)]);
        if let Some(publish) = recv_publish(&mut late, QUIET) {
            break publish;
        }
        assert!(Instant::now() < deadline, "no retained message on b");
    };
    assert_eq!(&retained.payload[..], b"kept");
    assert!(retained.retain);

    // NATS gone: QoS 1 refused, never acknowledged as success.
    // An offline persistent session on c gets what a published meanwhile
    // (c's store holds it before c acks it to JetStream).
    let (mut persistent, _) = RawClient::connect_v311(c.addr(), "persist-c", false);
    assert_eq!(persistent.subscribe(1, "lab/offline", 1), [ReasonCode(1)]);
    persistent.drop_connection();
    std::thread::sleep(QUIET);
    assert_eq!(
        publisher.publish("lab/offline", b"queued", 1, false),
        ReasonCode::SUCCESS
    );
    std::thread::sleep(QUIET);
    let (mut persistent, connack) = RawClient::connect_v311(c.addr(), "persist-c", false);
    assert!(connack.session_present);
    let queued = recv_publish(&mut persistent, CROSS).expect("queued message on c");
    assert_eq!(&queued.payload[..], b"queued");

    eprintln!("routing and retained checked after {:?}", started.elapsed());
    nats.stop_all();
    assert_eq!(
        a.wait_for_log_lines(&["refusing QoS 1/2 publishes"], 1, Duration::from_secs(10)),
        1,
        "a did not notice NATS was gone:\n{}",
        a.logs()
    );
    let (mut v5, _) = RawClient::connect_v5(a.addr(), "pub-a-down", true);
    assert_eq!(
        v5.publish("lab/down/x", b"lost?", 1, false),
        ReasonCode::UNSPECIFIED_ERROR,
        "a QoS 1 publish without NATS"
    );
    let (mut v311, _) = RawClient::connect_v311(a.addr(), "pub-a-311", true);
    v311.send(&publish("lab/down/x", b"lost?").qos(1).packet_id(5).build());
    match v311.recv_packet(Duration::from_secs(6)) {
        None => assert!(v311.is_closed(), "3.1.1: neither PUBACK nor close"),
        Some(other) => panic!("3.1.1 without NATS: expected a close, got {other:?}"),
    }
    a.assert_log(
        "pub-a-311 disconnected: this cluster node cannot reach NATS JetStream",
        WAIT,
    );
    // QoS 0 still reaches local subscribers.
    let (mut local, _) = RawClient::connect_v5(a.addr(), "local-a", true);
    assert_eq!(local.subscribe(1, "lab/local", 0), [ReasonCode(0)]);
    v5.publish("lab/local", b"here", 0, false);
    assert!(
        recv_publish(&mut local, WAIT).is_some(),
        "local QoS 0 without NATS"
    );

    // NATS back: a recovers by itself and routes again.
    eprintln!("refusals checked after {:?}", started.elapsed());
    nats.start_all();
    wait_ready(&a, 2, &nats);
    wait_ready(&b, 2, &nats);
    eprintln!("ready again after {:?}", started.elapsed());
    // JetStream may still refuse a moment after the node says ready (a
    // leader moves); refusals are honest, so retry, bounded.
    let (mut again, _) = RawClient::connect_v5(a.addr(), "pub-a-again", true);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let payload = format!("back{attempt}");
        match again.publish("lab/again/x", payload.as_bytes(), 1, false) {
            ReasonCode::SUCCESS => break,
            ReasonCode::UNSPECIFIED_ERROR if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(500));
            }
            other => panic!("after NATS came back: {other:?}\n{}", a.logs()),
        }
    }
    let want = format!("back{attempt}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let back = recv_publish(
            &mut on_b,
            deadline.saturating_duration_since(Instant::now()),
        )
        .expect("routing after NATS is back");
        // A refused attempt may have reached the stream too (0156).
        if back.payload == want.as_bytes() {
            break;
        }
    }
    eprintln!("recovered after {attempt} attempt(s)");
}
