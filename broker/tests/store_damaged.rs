//! A damaged store stops the broker: it names the file, says to move it
//! aside, exits non-zero, and leaves the file exactly as it was (no
//! "repair" that silently drops what MQTT promised to keep).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::store::store_toml;
use common::*;

/// A broker whose store holds retained messages and a persistent session
/// with queued messages, stopped cleanly; returns it (stopped).
fn broker_with_state(test: &str) -> Broker {
    let mut broker = Broker::start_with(&store_toml("batch", ""));
    let (mut sub, _) = RawClient::connect_v311(broker.addr(), &format!("{test}-sub"), false);
    sub.subscribe(1, &format!("{test}/q/#"), 1);
    sub.send(&disconnect(None));
    let (mut publisher, _) = RawClient::connect_v311(broker.addr(), &format!("{test}-pub"), true);
    // Enough records that the file has pages in its middle worth damaging.
    let payload = vec![b'x'; 512];
    for n in 0..400 {
        assert_eq!(
            publisher.publish(&format!("{test}/q/{n}"), &payload, 1, false),
            ReasonCode::SUCCESS
        );
        assert_eq!(
            publisher.publish(&format!("{test}/r/{n}"), &payload, 1, true),
            ReasonCode::SUCCESS
        );
    }
    let status = broker.sigterm();
    assert!(status.success(), "clean stop: {status}");
    broker
}

/// Starts the broker on the damaged store and checks the refusal.
fn assert_refuses(broker: &Broker, damaged: &[u8], what: &str) {
    let path = broker.store_path();
    let (status, logs) = run_broker_to_exit(broker.dir(), Duration::from_secs(20));
    let status = status.unwrap_or_else(|| {
        panic!("{what}: broker still running on a damaged store; logs:\n{logs}")
    });
    assert!(!status.success(), "{what}: exit {status}; logs:\n{logs}");
    assert!(
        logs.contains("fleetmq-data/fleetmq.redb") && logs.contains("move it aside"),
        "{what}: the message must name the file and say to move it aside; logs:\n{logs}"
    );
    assert!(
        !logs.contains("panicked"),
        "{what}: a refusal, not a panic; logs:\n{logs}"
    );
    eprintln!("{what}: exit {status}, message:\n{logs}");
    let after = std::fs::read(&path).expect("the damaged store is still there");
    let changed = after.iter().zip(damaged).filter(|(a, b)| a != b).count();
    let first = after.iter().zip(damaged).position(|(a, b)| a != b);
    assert!(
        after == damaged,
        "{what}: the failed start modified the damaged store ({} -> {} bytes, {changed} bytes differ, first at {first:?})",
        damaged.len(),
        after.len()
    );
}

#[test]
fn overwritten_bytes_in_the_middle_stop_the_broker_and_keep_the_file() {
    if skip_on_mosquitto("fleetmq store") {
        return;
    }
    let broker = broker_with_state("damaged-overwrite");
    let path = broker.store_path();
    let mut bytes = std::fs::read(&path).expect("store written");
    assert!(bytes.len() > 64 * 1024, "store of {} bytes", bytes.len());
    // Junk over 64 bytes in the middle of every 4 KiB page of the middle
    // third of the file: whatever the layout, live b-tree pages are hit
    // (damage only in free pages would rightly go unnoticed).
    let (from, to) = (bytes.len() / 3, 2 * bytes.len() / 3);
    for page in (from..to).step_by(4096) {
        for (i, byte) in bytes[page + 2000..page + 2064].iter_mut().enumerate() {
            *byte = (i as u8).wrapping_mul(31) ^ 0xA5;
        }
    }
    std::fs::write(&path, &bytes).expect("damage");
    assert_refuses(&broker, &bytes, "overwritten");
}

#[test]
fn truncated_store_stops_the_broker_and_keeps_the_file() {
    if skip_on_mosquitto("fleetmq store") {
        return;
    }
    let broker = broker_with_state("damaged-truncate");
    let path = broker.store_path();
    let mut bytes = std::fs::read(&path).expect("store written");
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&path, &bytes).expect("truncate");
    assert_refuses(&broker, &bytes, "truncated");
}
