//! The log's one writing thread (decisions 0178 and 0196): it takes
//! whatever ops are queued, writes them as one frame, fdatasyncs it, and
//! only then reports their tickets committed and leaves their ops for the
//! checkpointer. Ops submitted while an fdatasync runs wait in the channel
//! and make the next group: natural group commit, with no timer on the
//! path (`batch_interval_ms` = 0).
//!
//! One thread, not an appender and a syncer: on a broker given one core,
//! the hand-offs between two threads (two wake-ups and their context
//! switches per group) cost more than writing the next frame during the
//! previous fdatasync saved (decision 0196).
//!
//! Failures: a failed append or fdatasync cuts the frame off again (the
//! segment is rewound to where the frame started) and keeps its ops,
//! with every op that arrives meanwhile, for a retry after a growing
//! pause. Their tickets are reported failed, never committed, until a
//! retry's fdatasync succeeds; so `committed` never passes a failed
//! ticket.
//!
//! It must not touch redb: synced groups go to the checkpointer.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use fleetmq_core::store::{Op, Progress, StoreHealth};

use super::behind::Behind;
use super::checkpoint::{Sealed, Synced};
use super::frame;
use super::segment::Segment;
use crate::store::writer::{next_group, RETRY_MAX, RETRY_MIN};

/// Start a new segment (and so a checkpoint) after this many bytes...
const SEGMENT_BYTES: u64 = 8 << 20;
/// ...or when the segment is this old, so redb stays recent and a
/// restart replays little.
const SEGMENT_AGE: Duration = Duration::from_secs(1);

/// The writing thread's state.
pub struct Appender {
    /// The WAL directory.
    pub dir: PathBuf,
    pub segment: Segment,
    /// When the current segment was started.
    pub segment_started: Instant,
    /// The LSN of the next frame.
    pub next_lsn: u64,
    /// The store file, for log lines.
    pub store_path: PathBuf,
    pub progress: watch::Sender<Progress>,
    pub health: Arc<StoreHealth>,
    /// Tells the checkpointer a segment is sealed.
    pub checkpoints: Sender<Sealed>,
    /// Where synced groups wait for the checkpointer.
    pub synced: Arc<Synced>,
    /// Sealed segments not checkpointed yet (the bound this thread waits
    /// on).
    pub behind: Arc<Behind>,
    /// How long a group waits for more (`batch_interval_ms`, periodic).
    pub window: Duration,
}

/// A failing period: when the next attempt is due, and the pause after it.
#[derive(Clone, Copy)]
struct Retry {
    at: Instant,
    pause: Duration,
}

impl Appender {
    /// Runs until every sender of `ops` is gone; then commits what is left
    /// and hands the last segment to the checkpointer.
    pub fn run(mut self, ops: Receiver<(u64, Op)>) {
        // Ops not committed yet: the group being committed, or every op
        // since the first failed attempt.
        let mut backlog: Vec<(u64, Op)> = Vec::new();
        let mut frame = Vec::new();
        let mut retry: Option<Retry> = None;
        let mut closing = false;
        while !closing {
            match next_group(&ops, retry.map(|r| r.at), self.window, &mut backlog) {
                Some(gone) => closing |= gone,
                None => break,
            }
            let Some(last) = backlog.last().map(|(ticket, _)| *ticket) else {
                continue;
            };
            if retry.is_some_and(|r| Instant::now() < r.at) && !closing {
                // Failed for now, without touching the disk.
                self.progress
                    .send_modify(|p| p.attempted = p.attempted.max(last));
                continue;
            }
            match self.commit(&mut frame, &mut backlog, retry.is_some()) {
                Ok(()) => {
                    retry = None;
                    self.rotate_when_due();
                }
                Err(error) => {
                    self.health.failed(&self.store_path, &error);
                    self.progress
                        .send_modify(|p| p.attempted = p.attempted.max(last));
                    let pause = retry.map_or(RETRY_MIN, |r| (r.pause * 2).min(RETRY_MAX));
                    retry = Some(Retry {
                        at: Instant::now() + pause,
                        pause,
                    });
                }
            }
        }
        self.finish(&mut frame, &mut backlog, retry.is_some());
    }

    /// Writes `backlog` as one frame and fdatasyncs it; then reports its
    /// tickets committed and hands its ops to the checkpointer (`backlog`
    /// is left empty). On failure the frame is cut off again and
    /// `backlog` kept.
    fn commit(
        &mut self,
        frame: &mut Vec<u8>,
        backlog: &mut Vec<(u64, Op)>,
        retried: bool,
    ) -> Result<(), String> {
        let Some(last) = backlog.last().map(|(ticket, _)| *ticket) else {
            return Ok(());
        };
        frame.clear();
        frame::put_group(frame, self.next_lsn, backlog.iter().map(|(_, op)| op));
        let (start, _) = self.segment.append(frame).map_err(|e| {
            format!(
                "appending to the write-ahead log {} failed: {e}",
                self.segment.path.display()
            )
        })?;
        if let Err(error) = self.segment.file.sync_data() {
            // What the failed fdatasync left in the page cache is not
            // trusted: the retry writes the frame again from `start`.
            self.segment.rewind(start);
            return Err(format!("fdatasync of the write-ahead log failed: {error}"));
        }
        let ops = backlog.len();
        self.health.committed(ops);
        if retried {
            self.health.recovered(&self.store_path, ops);
        }
        self.progress.send_modify(|p| {
            p.committed = p.committed.max(last);
            p.attempted = p.attempted.max(last);
        });
        self.synced.push(self.next_lsn, std::mem::take(backlog));
        self.next_lsn += 1;
        Ok(())
    }

    /// Starts a new segment when the current one is big or old enough,
    /// and hands the current one to the checkpointer. Called only after a
    /// commit, so every frame of a sealed segment is synced and only the
    /// last segment can end torn.
    fn rotate_when_due(&mut self) {
        if self.segment.end == 0
            || (self.segment.end < SEGMENT_BYTES && self.segment_started.elapsed() < SEGMENT_AGE)
        {
            return;
        }
        match Segment::create(&self.dir, self.next_lsn) {
            Ok(segment) => {
                let old = std::mem::replace(&mut self.segment, segment);
                self.segment_started = Instant::now();
                self.behind.sealed();
                let _ = self.checkpoints.send(Sealed {
                    up_to: self.next_lsn - 1,
                    path: old.path,
                });
                // Too far ahead of the checkpointer: wait for it here,
                // with nothing in flight, before writing the next frame.
                let started = Instant::now();
                if self.behind.wait_for_room() {
                    self.health.waited_for_checkpoint(started.elapsed());
                }
            }
            Err(error) => {
                // Keep appending to the current one; tried again later.
                self.segment_started = Instant::now();
                tracing::warn!(
                    "Cannot start a new write-ahead log segment in {}: {error}.",
                    self.dir.display()
                );
            }
        }
    }

    /// Commits what is left (one more try if it fails) and hands the last
    /// segment to the checkpointer, which then checkpoints everything and
    /// deletes it.
    fn finish(mut self, frame: &mut Vec<u8>, backlog: &mut Vec<(u64, Op)>, mut retried: bool) {
        for _ in 0..2 {
            if backlog.is_empty() {
                break;
            }
            match self.commit(frame, backlog, retried) {
                Ok(()) => {}
                Err(error) => {
                    self.health.failed(&self.store_path, &error);
                    retried = true;
                }
            }
        }
        if !backlog.is_empty() {
            if let Some((last, _)) = backlog.last() {
                let last = *last;
                self.progress
                    .send_modify(|p| p.attempted = p.attempted.max(last));
            }
            tracing::error!(
                "Stopping with {} changes the store {} could not commit; they are lost.",
                backlog.len(),
                self.store_path.display()
            );
        }
        self.behind.sealed();
        let _ = self.checkpoints.send(Sealed {
            up_to: self.next_lsn - 1,
            path: self.segment.path.clone(),
        });
    }
}
