//! The write-ahead log (`store.wal = true`, decision 0178) across a
//! SIGKILL after the run has sealed and checkpointed segments: the
//! restart rebuilds the state from redb plus the log's newer groups, and
//! the drain delivers every acknowledged message.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::store::{drain_session, store_toml};
use crate::harness::*;

/// 1,500 messages of 8 KiB: 12 MB of log, more than one 8 MiB segment.
const COUNT: u32 = 1_500;

fn payload(n: u32) -> Vec<u8> {
    let mut payload = format!("wal-{n:05}:").into_bytes();
    payload.resize(8 * 1024, b'.');
    payload
}

fn name(payload: &[u8]) -> String {
    String::from_utf8_lossy(&payload[..10]).into_owned()
}

fn segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
            .count()
    })
}

#[test]
fn sigkill_after_checkpoints_drains_every_acknowledged_message() {
    if skip_on_mosquitto("fleetmq store") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store_path = dir.path().join("fleetmq.redb");
    let wal_dir = PathBuf::from(format!("{}.wal", store_path.display()));
    let mut broker = Broker::start_with(&store_toml(
        "batch",
        &format!("path = \"{}\"\nwal = true", store_path.display()),
    ));
    let addr = broker.addr();
    let subscriber = || ConnectBuilder::v311("wal-sub").clean(false);
    let (mut sub, _) = RawClient::connect_with(addr, subscriber());
    assert_eq!(sub.subscribe(1, "wal/#", 1), vec![ReasonCode(1)]);
    sub.send(&disconnect(None));
    assert!(sub.expect_closed(WAIT));

    let (mut publisher, _) = RawClient::connect_v311(addr, "wal-pub", true);
    let started = Instant::now();
    for n in 0..COUNT {
        assert_eq!(
            publisher.publish("wal/q", &payload(n), 1, false),
            ReasonCode::SUCCESS,
            "message {n}"
        );
    }
    let store_bytes = std::fs::metadata(&store_path).map_or(0, |m| m.len());
    broker.kill9();
    let left = segments(&wal_dir);
    eprintln!(
        "{COUNT} acknowledged in {:?}; at the kill the store file had {store_bytes} bytes, the log {left} segments",
        started.elapsed()
    );
    assert!(left >= 1, "the log is there after a crash");

    broker.restart();
    let drained = drain_session(
        broker.addr(),
        subscriber(),
        Duration::from_millis(1000),
        Duration::from_secs(60),
    );
    assert!(drained.session_present);
    let delivered: std::collections::BTreeSet<String> =
        drained.publishes.iter().map(|p| name(&p.payload)).collect();
    let lost: Vec<String> = (0..COUNT)
        .map(|n| name(&payload(n)))
        .filter(|name| !delivered.contains(name))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {COUNT} acknowledged messages lost, e.g. {:?}",
        lost.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
    // Delivered and acknowledged by the drain: a clean stop now leaves
    // no log behind, everything is in the store file.
    let status = broker.sigterm();
    assert!(status.success(), "exit {status}");
    assert_eq!(segments(&wal_dir), 0, "a clean stop checkpoints the log");
}
