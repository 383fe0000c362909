//! The log on real files, replayed into a real redb file: torn and
//! damaged frames, a crash between a checkpoint and the deletion of its
//! segment, and a clean stop that leaves no log behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fleetmq_codec::QoS;
use fleetmq_core::config::{FsyncPolicy, StoreConfig};
use fleetmq_core::message::{Message, Queued};
use fleetmq_core::store::{Op, Restored, SessionMeta, StoreError};

use super::frame;
use super::segment::{self, Segment};

fn config(dir: &Path, fsync: FsyncPolicy) -> StoreConfig {
    StoreConfig {
        path: dir.join("fleetmq.redb"),
        fsync,
        wal: true,
        ..StoreConfig::default()
    }
}

fn message(topic: &str, payload: &str) -> Arc<Message> {
    Arc::new(Message {
        topic: Arc::from(topic),
        payload: Bytes::from(payload.to_string()),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
        expires_at: None,
        publisher: Some(Arc::from("pub")),
    })
}

fn session(client: &str) -> Op {
    Op::SessionPut(
        Arc::from(client),
        SessionMeta {
            owner: None,
            expiry_interval: 3600,
            disconnected_at_ms: Some(1),
            subscriptions: Vec::new(),
        },
    )
}

fn item(client: &str, seq: u64) -> Op {
    Op::ItemPut(
        Arc::from(client),
        Queued {
            message: message("t/q", &format!("m-{seq}")),
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: vec![3],
            seq: Some(seq),
        },
    )
}

/// Writes `groups` (LSNs from `first_lsn`) as a segment, as the appender
/// would before a crash, zeros ahead included; returns it.
fn write_segment_ahead(dir: &Path, first_lsn: u64, groups: &[Vec<Op>]) -> Segment {
    let mut segment =
        Segment::create(&segment::dir_for(&dir.join("fleetmq.redb")), first_lsn).expect("segment");
    for (i, ops) in groups.iter().enumerate() {
        let mut bytes = Vec::new();
        frame::put_group(&mut bytes, first_lsn + i as u64, ops.iter());
        segment.append(&bytes).expect("append");
    }
    segment.file.sync_data().expect("sync");
    segment
}

/// The same without the zeros ahead: the file ends with its last frame
/// (so cutting or flipping its last bytes hits that frame).
fn write_segment(dir: &Path, first_lsn: u64, groups: &[Vec<Op>]) -> PathBuf {
    let segment = write_segment_ahead(dir, first_lsn, groups);
    segment.file.set_len(segment.end).expect("trim");
    segment.path
}

fn open(dir: &Path) -> Result<Restored, StoreError> {
    let (store, restored) = crate::store::open(dir, &config(dir, FsyncPolicy::Batch))?;
    store.close();
    Ok(restored)
}

/// (client, payloads of its items in order).
fn items(restored: &Restored) -> Vec<(String, Vec<String>)> {
    let mut sessions: Vec<_> = restored
        .sessions
        .iter()
        .map(|s| {
            let mut items: Vec<_> = s.items.iter().map(|(q, _)| q.seq.unwrap_or(0)).collect();
            items.sort();
            (
                s.client_id.to_string(),
                items.iter().map(|seq| format!("m-{seq}")).collect(),
            )
        })
        .collect();
    sessions.sort();
    sessions
}

fn segments(dir: &Path) -> usize {
    segment::list(&segment::dir_for(&dir.join("fleetmq.redb")))
        .unwrap()
        .len()
}

fn three_groups() -> Vec<Vec<Op>> {
    vec![
        vec![session("a"), item("a", 1), item("a", 2)],
        vec![Op::ItemRemove(Arc::from("a"), 1), item("a", 3)],
        vec![item("a", 4), Op::RetainSet(message("r/1", "kept"))],
    ]
}

#[test]
fn every_op_kind_round_trips_through_a_frame() {
    let ops = vec![
        session("c"),
        Op::SessionDelete(Arc::from("c")),
        item("c", 9),
        Op::ItemState(
            Arc::from("c"),
            9,
            Queued {
                message: message("t", "x"),
                qos: QoS::ExactlyOnce,
                retain: true,
                subscription_ids: Vec::new(),
                seq: Some(9),
            },
            fleetmq_core::store::ItemState::Released(77),
        ),
        Op::ItemRemove(Arc::from("c"), 9),
        Op::IncomingAdd(Arc::from("c"), 5),
        Op::IncomingRemove(Arc::from("c"), 5),
        Op::RetainSet(message("r", "v")),
        Op::RetainClear(Arc::from("r")),
        Op::WillPut(Arc::from("c"), message("w", "bye"), 1234),
        Op::WillClear(Arc::from("c")),
        Op::Batch(vec![item("c", 10), Op::IncomingAdd(Arc::from("c"), 6)]),
    ];
    let mut bytes = Vec::new();
    frame::put_group(&mut bytes, 42, ops.iter());
    let frame::Parsed::Frame { lsn, body, len } = frame::parse(&bytes) else {
        panic!("a whole frame");
    };
    assert_eq!((lsn, len), (42, bytes.len()));
    let back = frame::get_ops(&body).unwrap();
    assert_eq!(format!("{back:?}"), format!("{ops:?}"));
}

#[test]
fn a_crash_before_any_checkpoint_is_replayed_and_the_log_deleted() {
    let dir = tempfile::tempdir().unwrap();
    write_segment(dir.path(), 1, &three_groups());
    let restored = open(dir.path()).unwrap();
    assert_eq!(
        items(&restored),
        vec![("a".into(), vec!["m-2".into(), "m-3".into(), "m-4".into()])]
    );
    assert_eq!(restored.retained.len(), 1);
    assert_eq!(restored.max_seq, 4);
    assert_eq!(segments(dir.path()), 0, "a clean stop leaves no log");
    // And the state is in redb now: a second open finds it without a log.
    let again = open(dir.path()).unwrap();
    assert_eq!(items(&again), items(&restored));
}

#[test]
fn a_torn_last_frame_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_segment(dir.path(), 1, &three_groups());
    let len = std::fs::metadata(&path).unwrap().len();
    for cut in [len - 1, len - 7] {
        let dir = tempfile::tempdir().unwrap();
        let path = write_segment(dir.path(), 1, &three_groups());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let restored = open(dir.path()).unwrap();
        assert_eq!(
            items(&restored),
            vec![("a".into(), vec!["m-2".into(), "m-3".into()])],
            "cut at {cut} of {len}"
        );
        assert!(restored.retained.is_empty());
    }
}

#[test]
fn a_bit_flipped_last_frame_reads_as_torn() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_segment(dir.path(), 1, &three_groups());
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let restored = open(dir.path()).unwrap();
    assert_eq!(
        items(&restored),
        vec![("a".into(), vec!["m-2".into(), "m-3".into()])]
    );
}

#[test]
fn a_bit_flipped_frame_before_whole_ones_stops_the_start_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_segment(dir.path(), 1, &three_groups());
    let mut bytes = std::fs::read(&path).unwrap();
    // Inside the first frame's body: its CRC no longer matches.
    bytes[frame::HEADER + 5] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let error = open(dir.path()).expect_err("damage is refused");
    let text = error.to_string();
    assert!(
        matches!(error, StoreError::Damaged { .. }) && text.contains("write-ahead log"),
        "{text}"
    );
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the log is left as found"
    );
    assert_eq!(segments(dir.path()), 1);
}

#[test]
fn a_crash_between_checkpoint_and_deletion_replays_only_newer_groups() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_segment(dir.path(), 1, &three_groups());
    let old = std::fs::read(&path).unwrap();
    // The checkpoint (here: the replay at open) commits groups 1-3 ...
    let first = open(dir.path()).unwrap();
    // ... and the crash comes before the segment is deleted.
    std::fs::write(&path, &old).unwrap();
    // Groups written after the checkpoint, then the crash.
    write_segment(
        dir.path(),
        4,
        &[vec![Op::ItemRemove(Arc::from("a"), 2), item("a", 5)]],
    );
    let restored = open(dir.path()).unwrap();
    assert_eq!(
        items(&first),
        vec![("a".into(), vec!["m-2".into(), "m-3".into(), "m-4".into()])]
    );
    assert_eq!(
        items(&restored),
        vec![("a".into(), vec!["m-3".into(), "m-4".into(), "m-5".into()])]
    );
    assert_eq!(segments(dir.path()), 0);
}

#[test]
fn a_gap_between_the_store_and_the_log_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    write_segment(dir.path(), 1, &three_groups());
    open(dir.path()).unwrap();
    // Group 4 is missing: the log starts at 5.
    write_segment(dir.path(), 5, &[vec![item("a", 9)]]);
    let error = open(dir.path()).expect_err("a gap is refused");
    assert!(error.to_string().contains("log starts at 5"), "{error}");
}

#[test]
fn committed_tickets_survive_a_restart_through_the_live_log() {
    for fsync in [
        FsyncPolicy::Always,
        FsyncPolicy::Batch,
        FsyncPolicy::Periodic,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = crate::store::open(dir.path(), &config(dir.path(), fsync)).unwrap();
        let mut last = store.submit(session("live"));
        for seq in 1..=500 {
            last = store.submit(item("live", seq));
            if seq % 2 == 0 {
                last = store.submit(Op::ItemRemove(Arc::from("live"), seq - 1));
            }
        }
        if fsync != FsyncPolicy::Periodic {
            let mut progress = store.progress();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while progress.borrow_and_update().committed < last {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{fsync:?}: not committed"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(store.health().commits() >= 1);
        }
        store.close();
        drop(store);
        assert_eq!(
            segments(dir.path()),
            0,
            "{fsync:?}: a clean stop checkpoints the log"
        );
        let restored = open(dir.path()).unwrap();
        let (_, kept) = &items(&restored)[0];
        assert_eq!(kept.len(), 250, "{fsync:?}");
        assert!(kept.iter().all(|m| m[2..].parse::<u64>().unwrap() % 2 == 0));
    }
}

#[test]
fn a_growing_segment_writes_zeros_ahead_and_a_rewind_drops_them() {
    let dir = tempfile::tempdir().unwrap();
    let segment = write_segment_ahead(dir.path(), 1, &three_groups());
    let len = std::fs::metadata(&segment.path).unwrap().len();
    assert_eq!(len, segment.len);
    assert!(
        len > segment.end && len % 4096 == 0,
        "{len} after {}",
        segment.end
    );
    let bytes = std::fs::read(&segment.path).unwrap();
    assert!(bytes[segment.end as usize..].iter().all(|&b| b == 0));

    // A busy segment: about as many zeros ahead as it holds, at most 1 MiB.
    let mut segment = Segment::create(&segment::dir_for(&dir.path().join("big.redb")), 1).unwrap();
    let frame = vec![7u8; 100_000];
    let mut grew = 0;
    for _ in 0..40 {
        let before = segment.len;
        segment.append(&frame).unwrap();
        grew += usize::from(segment.len != before);
        assert!(segment.len >= segment.end && segment.len - segment.end <= (1 << 20) + 4096);
    }
    assert!(grew < 20, "the file grew at {grew} of 40 appends");
    assert_eq!(std::fs::metadata(&segment.path).unwrap().len(), segment.len);
    segment.rewind(250_000);
    assert_eq!((segment.end, segment.len), (250_000, 250_000));
    assert_eq!(std::fs::metadata(&segment.path).unwrap().len(), 250_000);
}

#[test]
fn zeros_after_the_frames_are_the_end_of_a_segment_not_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    // An older segment, sealed with its zeros ahead, and the last one.
    let groups = three_groups();
    write_segment_ahead(dir.path(), 1, &groups[..2]);
    let last = write_segment_ahead(dir.path(), 3, &groups[2..]);
    let log = super::recover::read(&segment::dir_for(&dir.path().join("fleetmq.redb"))).unwrap();
    assert_eq!(log.groups.len(), 3);
    assert_eq!(log.torn_bytes, 0, "zeros are not a torn write");
    let restored = open(dir.path()).unwrap();
    assert_eq!(
        items(&restored),
        vec![("a".into(), vec!["m-2".into(), "m-3".into(), "m-4".into()])]
    );
    assert_eq!(restored.retained.len(), 1);

    // A torn last frame inside the zeros is still dropped as torn.
    let dir = tempfile::tempdir().unwrap();
    let segment = write_segment_ahead(dir.path(), 1, &groups);
    let mut bytes = std::fs::read(&segment.path).unwrap();
    let end = segment.end as usize;
    bytes[end - 3..end].fill(0);
    std::fs::write(&segment.path, &bytes).unwrap();
    let restored = open(dir.path()).unwrap();
    assert_eq!(
        items(&restored),
        vec![("a".into(), vec!["m-2".into(), "m-3".into()])]
    );
    assert!(restored.retained.is_empty());
    drop(last);
}
