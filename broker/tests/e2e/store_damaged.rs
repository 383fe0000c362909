//! A damaged store stops the broker: it names the file, says to move it
//! aside, exits non-zero, and leaves the file exactly as it was (no
//! "repair" that silently drops what MQTT promised to keep).
//!
//! A store that cannot write (a full filesystem, [`full_disk`]) refuses
//! what it cannot keep and recovers by itself once space returns.
//!
//! Each test names its store: `store.wal = false` (the redb file alone)
//! in the plain tests, `store.wal = true` (the write-ahead log of decision
//! 0178, the default) in the `_wal` one, so both paths stay tested.

use std::time::Duration;

use crate::harness::store::store_toml;
use crate::harness::*;

/// A broker whose store holds retained messages and a persistent session
/// with queued messages, stopped cleanly; returns it (stopped).
fn broker_with_state(test: &str) -> Broker {
    let mut broker = Broker::start_with(&store_toml("batch", "wal = false"));
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

/// The store on a real, small filesystem (a 2 MB tmpfs) that is filled up
/// while clients publish: nothing acknowledged may be lost.
mod full_disk {
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::{Duration, Instant};

    use crate::harness::store::{drain_session, store_toml};
    use crate::harness::web::{eventually, get};
    use crate::harness::*;

    /// A tmpfs mounted on a fresh directory, unmounted on drop.
    struct SmallFs {
        dir: tempfile::TempDir,
    }

    impl SmallFs {
        /// Mounts it, or panics: CI runs as root, so a test that cannot
        /// mount must fail loudly rather than pass without testing.
        fn mount(size: &str) -> SmallFs {
            let dir = tempfile::tempdir().expect("tempdir");
            let output = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir.path())
                .output()
                .expect("run mount");
            assert!(
                output.status.success(),
                "cannot mount a {size} tmpfs on {} (this test needs root): {}",
                dir.path().display(),
                String::from_utf8_lossy(&output.stderr)
            );
            SmallFs { dir }
        }

        fn path(&self) -> &Path {
            self.dir.path()
        }

        /// Writes a file until the filesystem is full; returns its path.
        fn fill(&self) -> PathBuf {
            let path = self.path().join("filler");
            let mut file = std::fs::File::create(&path).expect("create the filler");
            let chunk = vec![0xA5u8; 64 * 1024];
            loop {
                match file.write(&chunk) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(error) if error.raw_os_error() == Some(28) => break,
                    Err(error) => panic!("filling {}: {error}", path.display()),
                }
            }
            // The last partial pages too.
            while file.write(&[0xA5u8; 512]).is_ok_and(|n| n > 0) {}
            path
        }
    }

    impl Drop for SmallFs {
        fn drop(&mut self) {
            // Lazy: a broker killed a moment ago may still hold the file.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }

    /// A payload that names message `n`, large enough that each commit
    /// needs pages the full filesystem does not have.
    fn payload(n: u32) -> Vec<u8> {
        let mut payload = format!("full-{n:04}:").into_bytes();
        payload.resize(32 * 1024, b'.');
        payload
    }

    fn name(payload: &[u8]) -> String {
        String::from_utf8_lossy(&payload[..10]).into_owned()
    }

    fn metric(broker: &Broker, name: &str) -> Option<f64> {
        let metrics = get(broker.http_addr(), "/metrics", None);
        metrics.body.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(' ')?;
            value.trim().parse().ok()
        })
    }

    #[test]
    fn full_disk_refuses_what_it_cannot_keep_and_recovers_by_itself() {
        if skip_on_mosquitto("fleetmq's store on a filesystem of the test's making") {
            return;
        }
        full_disk("wal = false");
    }

    /// The same with the write-ahead log (decision 0178) on the full
    /// filesystem with the store file.
    #[test]
    fn full_disk_refuses_what_it_cannot_keep_and_recovers_by_itself_wal() {
        if skip_on_mosquitto("fleetmq's store on a filesystem of the test's making") {
            return;
        }
        full_disk("wal = true");
    }

    fn full_disk(extra_store: &str) {
        let fs = SmallFs::mount("2m");
        let store_path = fs.path().join("fleetmq.redb");
        let mut broker = Broker::start_with(&store_toml(
            "always",
            &format!("path = \"{}\"\n{extra_store}", store_path.display()),
        ));
        let addr = broker.addr();
        let subscriber = || ConnectBuilder::v311("full-sub").clean(false);
        let (mut sub, _) = RawClient::connect_with(addr, subscriber());
        assert_eq!(sub.subscribe(1, "full/#", 1), vec![ReasonCode(1)]);
        sub.send(&disconnect(None));
        assert!(sub.expect_closed(WAIT));
        let (mut live, _) = RawClient::connect_v5(addr, "full-live", true);
        assert_eq!(live.subscribe(1, "live/#", 0), vec![ReasonCode(0)]);

        let (mut v5, _) = RawClient::connect_v5(addr, "full-pub5", true);
        let mut acked = Vec::new();
        let mut refused = Vec::new();
        let mut n = 0;
        for _ in 0..3 {
            assert_eq!(
                v5.publish("full/a", &payload(n), 1, false),
                ReasonCode::SUCCESS
            );
            acked.push(n);
            n += 1;
        }
        // Commits are counted with the ops they held (decision 0168):
        // at least the three messages' records, in at least one commit.
        let commits_before_fill = metric(&broker, "fleetmq_store_commits_total").unwrap_or(0.0);
        assert!(commits_before_fill >= 1.0, "{}", broker.logs());
        assert!(
            metric(&broker, "fleetmq_store_committed_ops_total").is_some_and(|v| v >= 3.0),
            "committed ops counted"
        );
        // Waits for the checkpointer are exported (none with so little).
        assert_eq!(
            metric(&broker, "fleetmq_store_checkpoint_waits_total"),
            Some(0.0)
        );
        assert_eq!(
            metric(&broker, "fleetmq_store_checkpoint_wait_seconds_total"),
            Some(0.0)
        );

        let filler = fs.fill();
        // Until the store notices (redb may still find room in its file),
        // then a few more while it is failing.
        while n < 80 && refused.len() < 10 {
            match v5.publish("full/a", &payload(n), 1, false) {
                ReasonCode::SUCCESS => acked.push(n),
                ReasonCode::UNSPECIFIED_ERROR => refused.push(n),
                other => panic!("PUBACK for message {n}: unexpected {other:?}"),
            }
            n += 1;
        }
        eprintln!(
            "disk full: {} acknowledged after the fill, {} refused with 0x80",
            acked.len() - 3,
            refused.len()
        );
        assert!(
            !refused.is_empty(),
            "no PUBACK was refused on a full filesystem; logs:\n{}",
            broker.logs()
        );

        // Not ready, with the reason, and the metrics say so.
        let ready = get(broker.http_addr(), "/readyz", None);
        assert_eq!(ready.status, 503, "/readyz while failing: {}", ready.body);
        assert!(
            ready.json()["reason"]
                .as_str()
                .is_some_and(|r| r.contains("store cannot commit")),
            "/readyz says why: {}",
            ready.body
        );
        assert_eq!(metric(&broker, "fleetmq_store_healthy"), Some(0.0));
        assert!(metric(&broker, "fleetmq_store_commit_failures_total").is_some_and(|v| v >= 1.0));

        // QoS 2 (5.0): PUBREC 0x80, so the flow ends there.
        assert_eq!(
            v5.publish("full/a", &payload(n), 2, false),
            ReasonCode::UNSPECIFIED_ERROR
        );
        refused.push(n);
        n += 1;

        // 3.1.1 has no negative PUBACK: the publisher is disconnected.
        let (mut v311, _) = RawClient::connect_v311(addr, "full-pub311", true);
        v311.send(&publish("full/b", &payload(n)).qos(1).packet_id(1).build());
        let closed = v311
            .wait_closed(WAIT)
            .expect("a 3.1.1 publisher is disconnected while the store fails");
        assert!(
            !closed
                .packets
                .iter()
                .any(|p| matches!(p, Packet::PubAck(_))),
            "no PUBACK for a message that is not durable: {:?}",
            closed.packets
        );
        refused.push(n);
        n += 1;

        // A persistent session's SUBACK waits for its commit: the
        // subscriber is disconnected and subscribes again later.
        let (mut late, _) = RawClient::connect_with(
            addr,
            ConnectBuilder::v5("full-late")
                .clean(false)
                .property(prop::u32(prop::SESSION_EXPIRY, 3600)),
        );
        late.send(&subscribe(1, &[("late/#", 1)], true, &[]));
        late.expect_disconnect(ReasonCode::UNSPECIFIED_ERROR);

        // QoS 0 to an online subscriber goes on.
        v5.send(&publish("live/q0", b"still here").v5(true).build());
        assert_eq!(&live.expect_app_publish().payload[..], b"still here");

        // Space returns: recovery without a restart.
        std::fs::remove_file(&filler).expect("free the space");
        let freed_at = Instant::now();
        let recovered_after = eventually(Duration::from_secs(10), "/readyz 200", || {
            (get(broker.http_addr(), "/readyz", None).status == 200).then(|| freed_at.elapsed())
        });
        eprintln!("/readyz 200 again {recovered_after:?} after the space was freed");
        assert_eq!(metric(&broker, "fleetmq_store_healthy"), Some(1.0));
        for _ in 0..3 {
            assert_eq!(
                v5.publish("full/a", &payload(n), 1, false),
                ReasonCode::SUCCESS
            );
            acked.push(n);
            n += 1;
        }
        let (mut v311, _) = RawClient::connect_v311(addr, "full-pub311", true);
        assert_eq!(
            v311.publish("full/b", &payload(n), 1, false),
            ReasonCode::SUCCESS
        );
        acked.push(n);
        n += 1;
        assert!(
            metric(&broker, "fleetmq_store_commits_total").is_some_and(|v| v > commits_before_fill),
            "commits after the recovery are counted"
        );

        // One line per state change, not one per message.
        assert_eq!(
            broker.count_log_lines(&["Store commit to", "failed"]),
            1,
            "{}",
            broker.logs()
        );
        assert_eq!(
            broker.count_log_lines(&["Store", "recovered"]),
            1,
            "{}",
            broker.logs()
        );

        // Full again, and a crash while failing: what was refused and kept
        // only in memory is lost with the process, which is allowed;
        // anything acknowledged is not.
        let filler = fs.fill();
        let refused_before = refused.len();
        while n < 200 && refused.len() == refused_before {
            match v5.publish("full/a", &payload(n), 1, false) {
                ReasonCode::SUCCESS => acked.push(n),
                ReasonCode::UNSPECIFIED_ERROR => refused.push(n),
                other => panic!("PUBACK for message {n}: unexpected {other:?}"),
            }
            n += 1;
        }
        assert!(
            refused.len() > refused_before,
            "full again: nothing refused"
        );
        broker.kill9();
        std::fs::remove_file(&filler).expect("free the space");
        broker.restart();
        let drained = drain_session(
            broker.addr(),
            subscriber(),
            Duration::from_millis(500),
            Duration::from_secs(10),
        );
        assert!(drained.session_present);
        let delivered: std::collections::BTreeSet<String> =
            drained.publishes.iter().map(|p| name(&p.payload)).collect();
        let lost: Vec<String> = acked
            .iter()
            .map(|n| name(&payload(*n)))
            .filter(|name| !delivered.contains(name))
            .collect();
        eprintln!(
            "acknowledged {}, refused {}, delivered after the restart {} (refused but kept: {})",
            acked.len(),
            refused.len(),
            delivered.len(),
            delivered.len().saturating_sub(acked.len())
        );
        assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
        // What was refused may have been kept (its records were retried),
        // never more than that.
        assert!(delivered.len() <= acked.len() + refused.len());
    }
}
