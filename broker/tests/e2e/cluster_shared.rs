//! Issue 19: `$share/<group>/<filter>` across three fleetmq nodes on a
//! three-server NATS JetStream cluster (decision 0182). One member of the
//! group on each node: every message, QoS 0 and 1, published on one node
//! reaches exactly one member cluster-wide, and members on every node get
//! some; a plain subscriber still gets everything. When a member leaves,
//! the others get its share; when a member's node is SIGKILLed, the
//! survivors get every message published after (at least once: what the
//! dead node had pulled comes back after the consumer's ack wait).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::cluster_support::{node, publish_acknowledged, recv_publish, wait_ready};
use crate::harness::hostile::heavy_lock;
use crate::harness::nats::NatsCluster;
use crate::harness::*;

/// Longest a batch of messages may take to reach the members: covers the
/// consumer's 10 s ack wait after a node dies.
const COLLECT_FOR: Duration = Duration::from_secs(40);
/// How long to keep reading after the last expected message, to see
/// duplicates.
const QUIET: Duration = Duration::from_secs(2);
const RETRY_FOR: Duration = Duration::from_secs(20);
const FILTER: &str = "$share/workers/jobs/#";
const PULLING: &str = "pulling for shared group $share/workers/jobs/#";

/// Reads from every member until each payload in `want` arrived (or
/// [`COLLECT_FOR`]), then [`QUIET`] more; returns payload -> members that
/// got it, in arrival order.
fn collect(
    members: &mut [(&str, &mut RawClient)],
    want: &BTreeSet<String>,
) -> BTreeMap<String, Vec<String>> {
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let deadline = Instant::now() + COLLECT_FOR;
    let mut quiet_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now >= deadline || quiet_until.is_some_and(|until| now >= until) {
            return got;
        }
        for (name, client) in members.iter_mut() {
            while let Some(publish) = recv_publish(client, Duration::from_millis(20)) {
                let payload = String::from_utf8_lossy(&publish.payload).into_owned();
                got.entry(payload).or_default().push(name.to_string());
            }
        }
        if quiet_until.is_none() && want.iter().all(|payload| got.contains_key(payload)) {
            quiet_until = Some(Instant::now() + QUIET);
        }
    }
}

/// Receivers per member name.
fn per_member(got: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for receivers in got.values() {
        for member in receivers {
            *counts.entry(member.clone()).or_default() += 1;
        }
    }
    counts
}

#[test]
fn a_shared_group_across_nodes_gets_each_message_once() {
    if skip_on_mosquitto("fleetmq's NATS cluster backend") {
        return;
    }
    let _heavy = heavy_lock();
    let nats = NatsCluster::start();
    let a = node(&nats, "a");
    let b = node(&nats, "b");
    let mut c = node(&nats, "c");
    for broker in [&a, &b, &c] {
        wait_ready(broker, 1, &nats);
    }
    let (mut on_a, _) = RawClient::connect_v5(a.addr(), "member-a", true);
    let (mut on_b, _) = RawClient::connect_v5(b.addr(), "member-b", true);
    let (mut on_c, _) = RawClient::connect_v5(c.addr(), "member-c", true);
    for member in [&mut on_a, &mut on_b, &mut on_c] {
        assert_eq!(member.subscribe(1, FILTER, 1), [ReasonCode(1)]);
    }
    // Each node pulls for the group once its consumer has a leader (two
    // NATS subjects for `jobs/#`: `jobs` and `jobs.>`); what is published
    // before goes to the nodes already pulling.
    for broker in [&a, &b, &c] {
        assert_eq!(
            broker.wait_for_log_lines(&[PULLING], 2, Duration::from_secs(20)),
            2,
            "{}",
            broker.logs()
        );
    }
    let (mut plain, _) = RawClient::connect_v5(b.addr(), "plain-b", true);
    assert_eq!(plain.subscribe(1, "jobs/#", 1), [ReasonCode(1)]);
    let (mut source, _) = RawClient::connect_v5(a.addr(), "source-a", true);

    // 60 QoS 1 and 30 QoS 0 messages from a.
    let mut want = BTreeSet::new();
    for index in 0..90u16 {
        let payload = format!("m{index}");
        let qos = if index % 3 == 2 { 0 } else { 1 };
        if qos == 1 {
            assert!(
                publish_acknowledged(
                    &mut source,
                    "jobs/x",
                    payload.as_bytes(),
                    index + 1,
                    RETRY_FOR
                ),
                "QoS 1 publish refused:\n{}",
                a.logs()
            );
        } else {
            assert_eq!(
                source.publish("jobs/x", payload.as_bytes(), 0, false),
                ReasonCode::SUCCESS
            );
        }
        want.insert(payload);
    }
    let got = collect(
        &mut [("a", &mut on_a), ("b", &mut on_b), ("c", &mut on_c)],
        &want,
    );
    let missing: Vec<_> = want.iter().filter(|p| !got.contains_key(*p)).collect();
    assert!(
        missing.is_empty(),
        "never delivered to the group: {missing:?}\n{}",
        b.logs()
    );
    let doubled: Vec<_> = got.iter().filter(|(_, to)| to.len() > 1).collect();
    assert!(doubled.is_empty(), "delivered more than once: {doubled:?}");
    let counts = per_member(&got);
    eprintln!("shared group, 90 messages: {counts:?}");
    for (member, broker) in [("a", &a), ("b", &b), ("c", &c)] {
        assert!(
            counts.get(member).copied().unwrap_or(0) > 0,
            "the member on node {member} got nothing: {counts:?}\n{}",
            broker.logs()
        );
    }
    // The plain subscriber is not part of the group: it gets them all.
    let plain_got = collect(&mut [("plain", &mut plain)], &want);
    assert_eq!(plain_got.len(), want.len(), "plain subscriber on b");

    // The member on b leaves: a and c get everything from now on.
    on_b.send(&disconnect(Some(0)));
    assert!(on_b.expect_closed(Duration::from_secs(5)));
    let mut want = BTreeSet::new();
    for index in 0..30u16 {
        let payload = format!("left{index}");
        assert!(publish_acknowledged(
            &mut source,
            "jobs/y",
            payload.as_bytes(),
            200 + index,
            RETRY_FOR
        ));
        want.insert(payload);
    }
    let got = collect(&mut [("a", &mut on_a), ("c", &mut on_c)], &want);
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "after b's member left"
    );
    let doubled: Vec<_> = got.iter().filter(|(_, to)| to.len() > 1).collect();
    assert!(doubled.is_empty(), "delivered more than once: {doubled:?}");
    eprintln!("after b's member left: {:?}", per_member(&got));

    // Node c dies: its member is gone with it; a's member gets every
    // message published after, at least once.
    c.kill9();
    assert!(on_c.expect_closed(Duration::from_secs(5)), "c did not die");
    let mut want = BTreeSet::new();
    for index in 0..30u16 {
        let payload = format!("killed{index}");
        assert!(publish_acknowledged(
            &mut source,
            "jobs/z",
            payload.as_bytes(),
            300 + index,
            RETRY_FOR
        ));
        want.insert(payload);
    }
    let got = collect(&mut [("a", &mut on_a)], &want);
    let missing: Vec<_> = want.iter().filter(|p| !got.contains_key(*p)).collect();
    assert!(
        missing.is_empty(),
        "lost for the group after c's SIGKILL: {missing:?}\n{}",
        a.logs()
    );
}
