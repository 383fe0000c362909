//! Issue 19, faults during a QoS 1 stream (decisions 0156, 0158, 0173):
//! three Debian nats-servers (JetStream R3) and fleetmq nodes on loopback.
//!
//! - SIGKILL of one nats-server mid-stream (the leader of the message
//!   stream, so JetStream must elect another): every message a publisher got
//!   a successful PUBACK for reaches the subscriber on another node
//!   (refusals while JetStream re-elects are retried by the publisher).
//! - SIGKILL of the fleetmq node a persistent subscriber is on: the
//!   device reconnects to a survivor, resumes its session and receives
//!   everything acknowledged to the publisher meanwhile.
//! - A node cut off from NATS (its only server killed) refuses QoS 1
//!   (0x80) and persistent sessions (0x88) while the others acknowledge
//!   and route, and accepts again by itself once the link is back.
//!
//! Bounded: a fixed number of messages, each retried for a bounded time.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::cluster_support::{
    node, persistent_v5, publish_acknowledged, recv_publish, wait_ready, CROSS,
};
use crate::harness::hostile::heavy_lock;
use crate::harness::nats::NatsCluster;
use crate::harness::*;

/// Messages in the stream, and the one after which the fault happens.
const MESSAGES: u16 = 300;
const FAULT_AT: u16 = 100;
/// How long one message may be retried while JetStream recovers.
const RETRY_FOR: Duration = Duration::from_secs(20);

/// Reads until every payload of `want` arrived (duplicates allowed).
fn receive_all(client: &mut RawClient, want: &BTreeSet<String>, what: &str, logs: &str) {
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + CROSS * 3;
    while !want.is_subset(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(publish) = recv_publish(client, left) else {
            let missing: Vec<_> = want.difference(&got).collect();
            panic!(
                "{what}: {} acknowledged messages missing, e.g. {:?}\n{logs}",
                missing.len(),
                missing.iter().take(5).collect::<Vec<_>>()
            );
        };
        got.insert(String::from_utf8_lossy(&publish.payload).into_owned());
    }
}

#[test]
fn a_killed_nats_server_loses_no_acknowledged_qos1_message() {
    if skip_on_mosquitto("fleetmq's NATS cluster backend") {
        return;
    }
    let _heavy = heavy_lock();
    let mut nats = NatsCluster::start();
    let a = node(&nats, "a");
    let b = node(&nats, "b");
    for broker in [&a, &b] {
        wait_ready(broker, 1, &nats);
    }
    let (mut sink, _) = RawClient::connect_with(b.addr(), persistent_v5("sink-b", 600));
    assert_eq!(sink.subscribe(1, "stream/#", 1), [ReasonCode(1)]);
    let (mut source, _) = RawClient::connect_v5(a.addr(), "source-a", true);
    let mut acknowledged = BTreeSet::new();
    let mut after_fault = 0;
    for index in 0..MESSAGES {
        if index == FAULT_AT {
            let leader = nats.stream_leader("FLEETMQ_MSGS").unwrap_or(1);
            eprintln!("killing nats-server n{leader}, leader of FLEETMQ_MSGS");
            nats.kill9(leader);
        }
        let payload = format!("m{index}");
        if publish_acknowledged(
            &mut source,
            "stream/x",
            payload.as_bytes(),
            index + 1,
            RETRY_FOR,
        ) {
            acknowledged.insert(payload);
            if index >= FAULT_AT {
                after_fault += 1;
            }
        }
    }
    assert!(
        after_fault > 0,
        "nothing acknowledged after the server was killed:\n{}\n{}",
        a.logs(),
        nats.logs()
    );
    eprintln!(
        "{} of {MESSAGES} acknowledged, {after_fault} after the kill",
        acknowledged.len()
    );
    receive_all(
        &mut sink,
        &acknowledged,
        "after a nats-server SIGKILL",
        &b.logs(),
    );
}

#[test]
fn devices_of_a_killed_node_resume_on_a_survivor() {
    if skip_on_mosquitto("fleetmq's NATS cluster backend") {
        return;
    }
    let _heavy = heavy_lock();
    let nats = NatsCluster::start();
    let a = node(&nats, "a");
    let mut b = node(&nats, "b");
    let c = node(&nats, "c");
    for broker in [&a, &b, &c] {
        wait_ready(broker, 1, &nats);
    }
    let (mut device, _) = RawClient::connect_with(b.addr(), persistent_v5("dev-kill", 600));
    assert_eq!(device.subscribe(1, "k/#", 1), [ReasonCode(1)]);
    let (mut source, _) = RawClient::connect_v5(a.addr(), "source-a", true);
    let before = BTreeSet::from(["before".to_string()]);
    assert!(publish_acknowledged(
        &mut source,
        "k/x",
        b"before",
        1,
        RETRY_FOR
    ));
    receive_all(&mut device, &before, "before the kill", &b.logs());

    b.kill9();
    assert!(device.expect_closed(WAIT), "the device did not see b die");
    let mut acknowledged = BTreeSet::new();
    for index in 0..20u16 {
        let payload = format!("while-down{index}");
        if publish_acknowledged(&mut source, "k/x", payload.as_bytes(), index + 2, RETRY_FOR) {
            acknowledged.insert(payload);
        }
    }
    assert_eq!(
        acknowledged.len(),
        20,
        "a refused while only b was gone:\n{}",
        a.logs()
    );
    let (mut device, connack) = RawClient::connect_with(c.addr(), persistent_v5("dev-kill", 600));
    assert!(connack.session_present, "not resumed on c:\n{}", c.logs());
    receive_all(
        &mut device,
        &acknowledged,
        "resumed on c after b's SIGKILL",
        &c.logs(),
    );
    // And it keeps its subscription there.
    let live = BTreeSet::from(["after".to_string()]);
    assert!(publish_acknowledged(
        &mut source,
        "k/x",
        b"after",
        30,
        RETRY_FOR
    ));
    receive_all(&mut device, &live, "live on c", &c.logs());
}

#[test]
fn a_node_cut_off_from_nats_refuses_while_the_others_go_on() {
    if skip_on_mosquitto("fleetmq's NATS cluster backend") {
        return;
    }
    let _heavy = heavy_lock();
    let mut nats = NatsCluster::start();
    // a knows only server 0; b knows all three.
    let a = Broker::start_with(&nats.node_toml_on_one("a", 0));
    let b = node(&nats, "b");
    for broker in [&a, &b] {
        wait_ready(broker, 1, &nats);
    }
    let (mut sink, _) = RawClient::connect_v5(b.addr(), "sink-cut", true);
    assert_eq!(sink.subscribe(1, "cut/#", 1), [ReasonCode(1)]);

    nats.kill9(0);
    assert_eq!(
        a.wait_for_log_lines(&["refusing QoS 1/2 publishes"], 1, CROSS),
        1,
        "a did not notice it was cut off:\n{}",
        a.logs()
    );
    // a refuses what it cannot make durable, and says so.
    let (mut on_a, _) = RawClient::connect_v5(a.addr(), "pub-cut", true);
    assert_eq!(
        on_a.publish("cut/x", b"from-a", 1, false),
        ReasonCode::UNSPECIFIED_ERROR
    );
    let mut client = RawClient::connect(a.addr());
    client.send_connect(&persistent_v5("dev-cut", 300));
    assert_eq!(
        client.expect_connack().reason,
        ReasonCode::SERVER_UNAVAILABLE
    );
    // b, still on a quorum, acknowledges and routes.
    let (mut on_b, _) = RawClient::connect_v5(b.addr(), "pub-b", true);
    assert!(publish_acknowledged(
        &mut on_b, "cut/y", b"from-b", 1, RETRY_FOR
    ));
    let want = BTreeSet::from(["from-b".to_string()]);
    receive_all(&mut sink, &want, "b while a is cut off", &b.logs());

    // The link back: a accepts again by itself.
    nats.start_all();
    wait_ready(&a, 2, &nats);
    assert!(publish_acknowledged(
        &mut on_a, "cut/z", b"a-back", 2, RETRY_FOR
    ));
    let want = BTreeSet::from(["a-back".to_string()]);
    receive_all(&mut sink, &want, "a after the link is back", &b.logs());
}
