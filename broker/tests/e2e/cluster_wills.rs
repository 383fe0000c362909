//! Issue 19: wills exactly once across three fleetmq nodes on a
//! three-server NATS JetStream cluster (decision 0183). Two witnesses on
//! two other nodes each see one copy of a will when its client's
//! connection drops, none after a normal DISCONNECT, none when a delayed
//! will's session resumes on another node within the delay, and one copy
//! of each will (immediate and delayed) of the clients of a node that is
//! SIGKILLed: a survivor takes them over, once. Session expiry: the record
//! of an expired persistent session is removed by one node, also for a
//! session that was online on the killed node.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::cluster_support::{node, persistent_v5, recv_publish, wait_ready};
use crate::harness::hostile::heavy_lock;
use crate::harness::nats::NatsCluster;
use crate::harness::*;

/// How long to read after the expected wills, to see a second copy.
const QUIET: Duration = Duration::from_secs(3);
/// Clients that drop on one node and resume on another at once.
const RECONNECTS_AT_ONCE: usize = 20;

/// Reads both witnesses until every topic in `want` arrived at each (or
/// `within`), then [`QUIET`] more; returns (witness, topic) -> copies.
fn wills_seen(
    witnesses: &mut [(&str, &mut RawClient)],
    want: &[&str],
    within: Duration,
) -> BTreeMap<(String, String), usize> {
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    let deadline = Instant::now() + within;
    let mut quiet_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now >= deadline || quiet_until.is_some_and(|until| now >= until) {
            return seen;
        }
        for (name, client) in witnesses.iter_mut() {
            while let Some(publish) = recv_publish(client, Duration::from_millis(20)) {
                *seen
                    .entry((name.to_string(), publish.topic.to_string()))
                    .or_default() += 1;
            }
        }
        let complete = witnesses.iter().all(|(name, _)| {
            want.iter()
                .all(|topic| seen.contains_key(&(name.to_string(), topic.to_string())))
        });
        if quiet_until.is_none() && complete {
            quiet_until = Some(Instant::now() + QUIET);
        }
    }
}

/// Asserts each witness saw each of `want` exactly once and nothing else.
fn once_each(seen: &BTreeMap<(String, String), usize>, want: &[&str], what: &str, logs: &str) {
    let mut expected = BTreeMap::new();
    for witness in ["on-a", "on-c"] {
        for topic in want {
            expected.insert((witness.to_string(), topic.to_string()), 1);
        }
    }
    assert_eq!(*seen, expected, "{what}\n{logs}");
}

fn with_will(client_id: &str, topic: &str, delay: Option<u32>) -> ConnectBuilder {
    let connect = persistent_v5(client_id, 60).will(topic, b"gone", 1, false);
    match delay {
        Some(seconds) => connect.will_property(prop::u32(prop::WILL_DELAY, seconds)),
        None => connect,
    }
}

#[test]
fn wills_are_published_once_cluster_wide() {
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
    let (mut on_a, _) = RawClient::connect_v5(a.addr(), "witness-a", true);
    let (mut on_c, _) = RawClient::connect_v5(c.addr(), "witness-c", true);
    for witness in [&mut on_a, &mut on_c] {
        assert_eq!(witness.subscribe(1, "will/#", 1), [ReasonCode(1)]);
    }
    let logs = || format!("--- b ---\n{}", b.logs());

    // A dropped connection on b: its will, once, on both other nodes.
    let (dropped, _) = RawClient::connect_with(b.addr(), with_will("w-drop", "will/drop", None));
    dropped.drop_connection();
    // A normal DISCONNECT: no will.
    let (mut clean, _) =
        RawClient::connect_with(b.addr(), with_will("w-clean", "will/clean", None));
    clean.send(&disconnect(Some(0)));
    assert!(clean.expect_closed(Duration::from_secs(5)));
    // A delayed will whose session resumes on c within the delay: none.
    let (delayed, _) =
        RawClient::connect_with(b.addr(), with_will("w-resumed", "will/resumed", Some(4)));
    delayed.drop_connection();
    std::thread::sleep(Duration::from_millis(500));
    let (_resumed, connack) = RawClient::connect_with(c.addr(), persistent_v5("w-resumed", 60));
    assert!(connack.session_present, "not resumed on c:\n{}", c.logs());
    let seen = wills_seen(
        &mut [("on-a", &mut on_a), ("on-c", &mut on_c)],
        &["will/drop"],
        Duration::from_secs(20),
    );
    // The delayed will would be due 4 s after the drop: wait past it.
    std::thread::sleep(Duration::from_secs(2));
    let late = wills_seen(
        &mut [("on-a", &mut on_a), ("on-c", &mut on_c)],
        &[],
        Duration::from_secs(1),
    );
    once_each(
        &seen,
        &["will/drop"],
        "wills of connections that ended on b",
        &logs(),
    );
    assert!(
        late.is_empty(),
        "a will after a resume or a normal DISCONNECT: {late:?}\n{}\n--- c ---\n{}",
        logs(),
        c.logs()
    );

    // Reconnects at once, on another node, resuming: the CONNACK on b
    // came after the will's record, so c finds and drops each of them.
    // (Before, the record could still be on its way when c looked, and b
    // then published the will when due.) The sessions exist beforehand:
    // their records, unlike the wills', follow the CONNACK (0173).
    let ids: Vec<String> = (0..RECONNECTS_AT_ONCE)
        .map(|n| format!("w-at-once-{n}"))
        .collect();
    for id in &ids {
        let (mut first, _) = RawClient::connect_with(b.addr(), persistent_v5(id, 60));
        first.send(&disconnect(Some(0)));
        assert!(first.expect_closed(Duration::from_secs(5)));
    }
    std::thread::sleep(Duration::from_secs(1));
    for id in &ids {
        let (dropped, connack) =
            RawClient::connect_with(b.addr(), with_will(id, "will/at-once", Some(2)));
        assert!(
            connack.session_present,
            "{id} not resumed on b:\n{}",
            logs()
        );
        dropped.drop_connection();
        let (_again, connack) = RawClient::connect_with(c.addr(), persistent_v5(id, 60));
        assert!(
            connack.session_present,
            "{id} not resumed on c:\n{}",
            c.logs()
        );
    }
    // Past the wills' 2 s delay.
    let late = wills_seen(
        &mut [("on-a", &mut on_a), ("on-c", &mut on_c)],
        &[],
        Duration::from_secs(4),
    );
    assert!(
        late.is_empty(),
        "wills of sessions resumed at once on another node: {late:?}\n{}\n--- c ---\n{}",
        logs(),
        c.logs()
    );

    // A persistent session that ends on b: its record is removed once,
    // by one node, when its 2 s expiry has passed.
    let (mut expiring, _) = RawClient::connect_with(b.addr(), persistent_v5("s-expire", 2));
    assert_eq!(expiring.subscribe(1, "exp/#", 1), [ReasonCode(1)]);
    expiring.send(&disconnect(Some(0)));
    assert!(expiring.expect_closed(Duration::from_secs(5)));
    let removed = "Cluster: session s-expire (last held by node b) expired";
    assert_eq!(
        wait_for_lines_across(&[&a, &b, &c], removed, Duration::from_secs(15)),
        1,
        "the expired record of s-expire removed once\n{}",
        logs()
    );

    // b dies with two clients connected, one will immediate and one
    // delayed: a survivor publishes each, once. A third holds a
    // persistent session with a 3 s expiry.
    let (_s, _) = RawClient::connect_with(b.addr(), persistent_v5("s-kill", 3));
    let (_k1, _) = RawClient::connect_with(b.addr(), with_will("w-kill", "will/kill", None));
    let (_k2, _) = RawClient::connect_with(
        b.addr(),
        with_will("w-kill-late", "will/kill-late", Some(2)),
    );
    // The wills' records are written before the CONNACK, the session's
    // record after it: give that a moment.
    std::thread::sleep(Duration::from_secs(1));
    b.kill9();
    let killed_at = Instant::now();
    let seen = wills_seen(
        &mut [("on-a", &mut on_a), ("on-c", &mut on_c)],
        &["will/kill", "will/kill-late"],
        Duration::from_secs(30),
    );
    eprintln!(
        "wills of b's clients seen {:?} after its SIGKILL",
        killed_at.elapsed()
    );
    let survivors = format!("--- a ---\n{}\n--- c ---\n{}", a.logs(), c.logs());
    once_each(
        &seen,
        &["will/kill", "will/kill-late"],
        "wills of a SIGKILLed node's clients",
        &survivors,
    );

    // The session that was online on b: marked offline by one survivor,
    // and its record removed by one after its expiry; it is not resumed.
    let orphaned = "Cluster: session s-kill was online on node b, which is gone";
    let expired = "Cluster: session s-kill (last held by node b) expired";
    for needle in [orphaned, expired] {
        assert_eq!(
            wait_for_lines_across(&[&a, &c], needle, Duration::from_secs(20)),
            1,
            "{needle}\n{survivors}"
        );
    }
    let (_back, connack) = RawClient::connect_with(c.addr(), persistent_v5("s-kill", 3));
    assert!(!connack.session_present, "an expired session resumed");
}

/// Waits up to `within` for `needle` in the logs of `brokers`, then a
/// moment more for a second copy; returns how many lines hold it.
fn wait_for_lines_across(brokers: &[&Broker], needle: &str, within: Duration) -> usize {
    let count = || {
        brokers
            .iter()
            .map(|broker| broker.count_log_lines(&[needle]))
            .sum::<usize>()
    };
    let deadline = Instant::now() + within;
    while count() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(QUIET);
    count()
}
