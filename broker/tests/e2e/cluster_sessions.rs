//! Issue 19, sessions across nodes (decisions 0172, 0173): three Debian
//! nats-servers (JetStream R3) and fleetmq nodes on loopback.
//!
//! - Take-over: a second connection with a client id on another node
//!   closes the first with DISCONNECT 0x8E (5.0) or a plain close (3.1.1).
//! - Resume: a persistent session left on one node is resumed on another
//!   with its subscriptions and the QoS 1 messages published while it was
//!   offline (duplicates allowed, none missing), in 5.0 and 3.1.1.
//! - Without NATS a persistent session is refused with 0x88 (3.1.1:
//!   return code 3); a clean one is still accepted.
//! - A second node with a running node's name refuses to start; a
//!   stopped node's name is free at once, a killed one's after its
//!   heartbeat stops.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::cluster_support::{
    node, persistent_v5, publish_acknowledged, recv_publish, wait_ready, CROSS, READY_WAIT,
};
use crate::harness::hostile::heavy_lock;
use crate::harness::nats::NatsCluster;
use crate::harness::*;

/// Reads until every payload of `want` arrived (duplicates allowed).
fn receive_all(client: &mut RawClient, want: &BTreeSet<String>, what: &str, logs: &str) {
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + CROSS * 2;
    while !want.is_subset(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(publish) = recv_publish(client, left) else {
            panic!(
                "{what}: missing {:?}\n{logs}",
                want.difference(&got).collect::<Vec<_>>()
            );
        };
        got.insert(String::from_utf8_lossy(&publish.payload).into_owned());
    }
}

fn connack_of(addr: std::net::SocketAddr, connect: ConnectBuilder) -> ConnAck {
    let mut client = RawClient::connect(addr);
    client.send_connect(&connect);
    client.expect_connack()
}

#[test]
fn take_over_and_resume_across_nodes_refused_without_nats() {
    if skip_on_mosquitto("fleetmq's NATS cluster backend") {
        return;
    }
    let _heavy = heavy_lock();
    let mut nats = NatsCluster::start();
    let a = node(&nats, "a");
    let b = node(&nats, "b");
    let c = node(&nats, "c");
    for broker in [&a, &b, &c] {
        wait_ready(broker, 1, &nats);
    }

    // Take-over across nodes, 5.0: DISCONNECT 0x8E on a.
    let (mut first, _) = RawClient::connect_v5(a.addr(), "dev-over-5", true);
    first.ping();
    let (mut second, _) = RawClient::connect_v5(b.addr(), "dev-over-5", true);
    let closed = first
        .wait_closed(CROSS)
        .unwrap_or_else(|| panic!("a kept the taken-over connection:\n{}", a.logs()));
    assert_eq!(
        closed.disconnect_reason(),
        Some(ReasonCode::SESSION_TAKEN_OVER),
        "packets before the close: {:?}",
        closed.packets
    );
    second.ping();
    a.assert_log(
        "Client dev-over-5 already connected, closing old connection. It connected to cluster node b",
        WAIT,
    );

    // 3.1.1: closed without a DISCONNECT.
    let (mut old, _) = RawClient::connect_v311(a.addr(), "dev-over-3", true);
    old.ping();
    let (mut new, _) = RawClient::connect_v311(c.addr(), "dev-over-3", true);
    let closed = old
        .wait_closed(CROSS)
        .unwrap_or_else(|| panic!("a kept the taken-over 3.1.1 connection:\n{}", a.logs()));
    assert!(
        closed
            .packets
            .iter()
            .all(|p| !matches!(p, Packet::Disconnect(_))),
        "3.1.1 got {:?}",
        closed.packets
    );
    new.ping();

    // Resume on another node, 5.0: subscriptions and the QoS 1 messages
    // published while offline.
    let (mut device, connack) = RawClient::connect_with(a.addr(), persistent_v5("dev-res-5", 300));
    assert!(!connack.session_present);
    assert_eq!(device.subscribe(1, "fleet/dev-res-5/#", 1), [ReasonCode(1)]);
    device.send(&disconnect(Some(0)));
    assert!(device.expect_closed(WAIT));
    std::thread::sleep(QUIET);
    let (mut on_b, _) = RawClient::connect_v5(b.addr(), "ops-b", true);
    let mut want = BTreeSet::new();
    for index in 0..5 {
        let payload = format!("offline{index}");
        assert_eq!(
            on_b.publish("fleet/dev-res-5/cmd", payload.as_bytes(), 1, false),
            ReasonCode::SUCCESS
        );
        want.insert(payload);
    }
    let (mut device, connack) = RawClient::connect_with(c.addr(), persistent_v5("dev-res-5", 300));
    assert!(
        connack.session_present,
        "session not resumed on c:\n{}",
        c.logs()
    );
    receive_all(&mut device, &want, "5.0 resume on c", &c.logs());
    // Its subscription lives on c now: a message from a arrives live.
    let (mut on_a, _) = RawClient::connect_v5(a.addr(), "ops-a", true);
    assert_eq!(
        on_a.publish("fleet/dev-res-5/live", b"live", 1, false),
        ReasonCode::SUCCESS
    );
    let live = BTreeSet::from(["live".to_string()]);
    receive_all(&mut device, &live, "live after resume", &c.logs());
    a.assert_log(
        "Client dev-res-5 connected to cluster node c; its session moves there",
        WAIT,
    );

    // 3.1.1: clean session off on b, a network drop, resumed on a.
    let (mut device, _) = RawClient::connect_v311(b.addr(), "dev-res-3", false);
    assert_eq!(device.subscribe(1, "fleet/dev-res-3/#", 1), [ReasonCode(1)]);
    device.drop_connection();
    std::thread::sleep(QUIET);
    let mut want = BTreeSet::new();
    for index in 0..3 {
        let payload = format!("dropped{index}");
        assert_eq!(
            on_a.publish("fleet/dev-res-3/cmd", payload.as_bytes(), 1, false),
            ReasonCode::SUCCESS
        );
        want.insert(payload);
    }
    let (mut device, connack) = RawClient::connect_v311(a.addr(), "dev-res-3", false);
    assert!(
        connack.session_present,
        "3.1.1 session not resumed on a:\n{}",
        a.logs()
    );
    receive_all(&mut device, &want, "3.1.1 resume on a", &a.logs());

    // Without NATS: a persistent session is refused with 0x88, never
    // accepted silently; a clean one still works on the node alone.
    nats.stop_all();
    assert_eq!(
        a.wait_for_log_lines(&["refusing QoS 1/2 publishes"], 1, Duration::from_secs(10)),
        1,
        "a did not notice NATS was gone:\n{}",
        a.logs()
    );
    let refused = connack_of(a.addr(), persistent_v5("dev-down-5", 300));
    assert_eq!(refused.reason, ReasonCode::SERVER_UNAVAILABLE);
    assert!(!refused.session_present);
    let refused = connack_of(a.addr(), ConnectBuilder::v311("dev-down-3").clean(false));
    assert_eq!(
        refused.reason,
        ReasonCode::SERVER_UNAVAILABLE,
        "3.1.1 return code 3"
    );
    a.assert_log(
        "so this cluster node cannot keep a persistent session (0x88)",
        WAIT,
    );
    let (mut clean, _) = RawClient::connect_v5(a.addr(), "dev-down-clean", true);
    clean.ping();
}

#[test]
fn a_second_node_with_a_running_nodes_name_refuses_to_start() {
    if skip_on_mosquitto("fleetmq's NATS cluster backend") {
        return;
    }
    let _heavy = heavy_lock();
    let nats = NatsCluster::start();
    let mut first = node(&nats, "a");
    wait_ready(&first, 1, &nats);

    let mut twin = node(&nats, "a");
    let status = twin
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("a second node named a kept running:\n{}", twin.logs()));
    assert!(!status.success());
    assert!(
        twin.logs()
            .contains("cluster.node_name 'a' is in use by a running node"),
        "{}",
        twin.logs()
    );
    // The first keeps its name and keeps routing.
    let (mut client, _) = RawClient::connect_v5(first.addr(), "still-a", true);
    assert_eq!(client.publish("x/y", b"z", 1, false), ReasonCode::SUCCESS);
    assert!(!first.logs().contains("was taken by another instance"));

    // A clean stop frees the name at once: no wait for its heartbeat.
    assert!(first.sigterm().success());
    let mut second = node(&nats, "a");
    wait_ready(&second, 1, &nats);
    second.assert_log("held by this instance", WAIT);
    assert!(!second.logs().contains("waiting 6s"), "{}", second.logs());

    // A killed node's name frees itself once its heartbeat stops.
    second.kill9();
    let third = node(&nats, "a");
    wait_ready(&third, 1, &nats);
    third.assert_log("waiting 6s to see whether it is alive", WAIT);
    third.assert_log("held by this instance", WAIT);
}

/// A renewal of the node name that got no answer within its timeout may
/// still have been written (the servers were only slow): the node must
/// not take that for a loss of its name. It used to: it stopped renewing
/// ("was taken by another instance"), refused QoS 1/2 for good, and never
/// released the name at SIGTERM, so the next node under that name waited
/// for it (the flaky end of the test above).
#[test]
fn a_renewal_answered_late_keeps_the_node_name() {
    if skip_on_mosquitto("fleetmq's NATS cluster backend") {
        return;
    }
    let _heavy = heavy_lock();
    let nats = NatsCluster::start();
    let mut first = node(&nats, "a");
    wait_ready(&first, 1, &nats);
    // Each freeze outlasts the 2 s between renewals plus a request's 2 s
    // timeout, so a renewal sent during it times out and is written when
    // the servers resume.
    for _ in 0..2 {
        nats.freeze_all(Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(700));
    }
    // Two more renewals, over the revision the late ones left.
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        !first.logs().contains("was taken by another instance"),
        "{}",
        first.logs()
    );
    let (mut client, _) = RawClient::connect_v5(first.addr(), "still-a", true);
    assert!(
        publish_acknowledged(&mut client, "x/y", b"z", 1, READY_WAIT),
        "{}",
        first.logs()
    );
    assert!(first.sigterm().success());
    assert_eq!(
        first.count_log_lines(&["Cluster node name a released."]),
        1,
        "{}",
        first.logs()
    );
    let second = node(&nats, "a");
    wait_ready(&second, 1, &nats);
    assert!(!second.logs().contains("waiting 6s"), "{}", second.logs());
}
