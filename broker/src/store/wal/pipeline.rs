//! The two threads in front of the WAL (decision 0178): the appender
//! takes whatever ops are queued, writes them as one frame and hands the
//! frame to the syncer; the syncer fdatasyncs everything handed to it
//! since its last fdatasync and only then reports the tickets committed.
//! So group N+1 is written while group N's fdatasync runs, and every
//! acknowledgement still waits for the fdatasync of its own group.
//!
//! Failures: a failed append is retried by the appender (the frame is cut
//! off again); a failed fdatasync hands its groups, and every group
//! written after them, back to the appender, which rewrites them from the
//! first one's offset. Meanwhile their tickets are reported failed, never
//! committed. Either way the syncer syncs nothing newer until that
//! rewrite, so `committed` never passes a failed ticket.
//!
//! It must not touch redb: synced groups go to the checkpointer.

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use fleetmq_core::store::{Op, Progress, StoreHealth};

use super::behind::Behind;
use super::checkpoint::ToCheckpoint;
use super::frame;
use super::segment::Segment;
use crate::store::writer::{gather, RETRY_MAX, RETRY_MIN};

/// Start a new segment (and so a checkpoint) after this many bytes...
const SEGMENT_BYTES: u64 = 8 << 20;
/// ...or when the segment is this old, so redb stays recent and a
/// restart replays little.
const SEGMENT_AGE: Duration = Duration::from_secs(1);

/// A frame written, not yet synced.
struct Written {
    lsn: u64,
    /// Its offset in the segment (where a rewrite starts).
    start: u64,
    ops: Vec<(u64, Op)>,
    /// Written as the retry of a failure: its sync ends the failing period.
    retry: bool,
    file: Arc<File>,
}

impl Written {
    fn last_ticket(&self) -> u64 {
        self.ops.last().map_or(0, |(ticket, _)| *ticket)
    }
}

#[derive(Default)]
struct State {
    /// Written frames waiting for the syncer, oldest first.
    posted: VecDeque<Written>,
    /// The syncer holds a batch (its fdatasync is running).
    syncing: bool,
    /// A batch whose fdatasync failed, for the appender to rewrite; the
    /// syncer takes nothing while it is here.
    failed: Option<Vec<Written>>,
    /// The appender has finished: the syncer stops when idle.
    closing: bool,
}

/// What the two threads share.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

/// Progress is published by both threads: the appender (failed appends)
/// and the syncer (commits, failed fdatasyncs).
pub type SharedProgress = Arc<watch::Sender<Progress>>;

/// The appender thread's state.
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
    pub progress: SharedProgress,
    pub health: Arc<StoreHealth>,
    pub checkpoints: Sender<ToCheckpoint>,
    /// Sealed segments not checkpointed yet (the bound the appender
    /// waits on).
    pub behind: Arc<Behind>,
    /// How long a group waits for more (`batch_interval_ms`, periodic).
    pub window: Duration,
}

impl Appender {
    /// Runs until every sender of `ops` is gone; then syncs what is left,
    /// stops the syncer and sends the last segment to the checkpointer.
    pub fn run(self, ops: Receiver<(u64, Op)>) {
        let shared = Arc::new(Shared::default());
        let syncer = {
            let shared = Arc::clone(&shared);
            let progress = Arc::clone(&self.progress);
            let health = Arc::clone(&self.health);
            let checkpoints = self.checkpoints.clone();
            let path = self.store_path.clone();
            std::thread::Builder::new()
                .name("fleetmq-wal-sync".into())
                .spawn(move || sync_loop(&shared, &progress, &health, &path, &checkpoints))
        };
        let syncer = match syncer {
            Ok(handle) => handle,
            Err(error) => {
                tracing::error!("Cannot start the write-ahead log's fsync thread: {error}.");
                return;
            }
        };
        let mut running = Running {
            appender: self,
            shared,
            backlog: Vec::new(),
            frame: Vec::new(),
        };
        running.run(&ops);
        running.finish(syncer);
    }
}

struct Running {
    appender: Appender,
    shared: Arc<Shared>,
    /// Ops not written yet (or handed back by a failed fdatasync).
    backlog: Vec<(u64, Op)>,
    /// The frame being built (reused).
    frame: Vec<u8>,
}

impl Running {
    fn run(&mut self, receiver: &Receiver<(u64, Op)>) {
        let mut closing = false;
        let mut retry_at: Option<Instant> = None;
        let mut pause = RETRY_MIN;
        while !closing {
            // Nothing to wait for but ops, unless a frame is in flight (a
            // failed fdatasync must not wait for the next op to be retried)
            // or a retry is due.
            let wait = match retry_at {
                Some(at) => Some(at.saturating_duration_since(Instant::now())),
                None if self.in_flight() => Some(RETRY_MIN),
                None => None,
            };
            let first = match wait {
                None => match receiver.recv() {
                    Ok(op) => Some(op),
                    Err(_) => break,
                },
                Some(wait) => match receiver.recv_timeout(wait) {
                    Ok(op) => Some(op),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => {
                        closing = true;
                        None
                    }
                },
            };
            if let Some(first) = first {
                let window = if retry_at.is_some() {
                    Duration::ZERO
                } else {
                    self.appender.window
                };
                closing |= gather(receiver, first, window, &mut self.backlog);
            }
            if self.reclaim() && retry_at.is_none() {
                retry_at = Some(Instant::now() + pause);
                pause = (pause * 2).min(RETRY_MAX);
            }
            let Some(last) = self.backlog.last().map(|(ticket, _)| *ticket) else {
                continue;
            };
            if retry_at.is_some_and(|at| Instant::now() < at) && !closing {
                // Failed for now, without touching the disk.
                self.appender
                    .progress
                    .send_modify(|p| p.attempted = p.attempted.max(last));
                continue;
            }
            match self.write_backlog(retry_at.is_some()) {
                Ok(()) => {
                    retry_at = None;
                    pause = RETRY_MIN;
                }
                Err(error) => {
                    self.appender
                        .health
                        .failed(&self.appender.store_path, &error);
                    self.appender
                        .progress
                        .send_modify(|p| p.attempted = p.attempted.max(last));
                    retry_at = Some(Instant::now() + pause);
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
            let segment = &self.appender.segment;
            if segment.end > 0
                && (segment.end >= SEGMENT_BYTES
                    || self.appender.segment_started.elapsed() >= SEGMENT_AGE)
            {
                self.rotate();
            }
        }
    }

    /// True while a frame is written but not yet synced (or failed).
    fn in_flight(&self) -> bool {
        let state = self.shared.state.lock();
        !state.posted.is_empty() || state.syncing || state.failed.is_some()
    }

    /// Takes back the frames of a failed fdatasync and every frame written
    /// after them; they go before the backlog and are rewritten from the
    /// first one's offset. True when there were any.
    fn reclaim(&mut self) -> bool {
        let mut state = self.shared.state.lock();
        let Some(failed) = state.failed.take() else {
            return false;
        };
        let mut frames: Vec<Written> = failed;
        frames.extend(state.posted.drain(..));
        drop(state);
        let Some(first) = frames.first() else {
            return false;
        };
        self.appender.segment.rewind(first.start);
        self.appender.next_lsn = first.lsn;
        let mut ops: Vec<(u64, Op)> = frames.into_iter().flat_map(|w| w.ops).collect();
        ops.append(&mut self.backlog);
        self.backlog = ops;
        true
    }

    /// Writes the backlog as one frame and hands it to the syncer.
    fn write_backlog(&mut self, retry: bool) -> Result<(), String> {
        let appender = &mut self.appender;
        self.frame.clear();
        frame::put_group(
            &mut self.frame,
            appender.next_lsn,
            self.backlog.iter().map(|(_, op)| op),
        );
        let (start, _) = appender.segment.append(&self.frame).map_err(|e| {
            format!(
                "appending to the write-ahead log {} failed: {e}",
                appender.segment.path.display()
            )
        })?;
        let written = Written {
            lsn: appender.next_lsn,
            start,
            ops: std::mem::take(&mut self.backlog),
            retry,
            file: Arc::clone(&appender.segment.file),
        };
        appender.next_lsn += 1;
        self.shared.state.lock().posted.push_back(written);
        self.shared.changed.notify_all();
        Ok(())
    }

    /// Waits until every written frame is synced or one failed; true when
    /// all are synced.
    fn wait_synced(&self) -> bool {
        let mut state = self.shared.state.lock();
        while (!state.posted.is_empty() || state.syncing) && state.failed.is_none() {
            self.shared.changed.wait(&mut state);
        }
        state.failed.is_none()
    }

    /// Starts a new segment once everything in the current one is synced,
    /// and hands the current one to the checkpointer. Waiting for the
    /// syncer here keeps every older segment whole (a torn frame can only
    /// be in the last one) and costs one fdatasync per segment.
    fn rotate(&mut self) {
        if !self.wait_synced() {
            return; // the failed frames are rewritten first
        }
        let appender = &mut self.appender;
        match Segment::create(&appender.dir, appender.next_lsn) {
            Ok(segment) => {
                let old = std::mem::replace(&mut appender.segment, segment);
                appender.segment_started = Instant::now();
                appender.behind.sealed();
                let _ = appender.checkpoints.send(ToCheckpoint::Sealed {
                    up_to: appender.next_lsn - 1,
                    path: old.path,
                });
                // Too far ahead of the checkpointer: wait for it here,
                // with nothing in flight, before writing the next frame.
                appender.behind.wait_for_room();
            }
            Err(error) => {
                // Keep appending to the current one; tried again later.
                appender.segment_started = Instant::now();
                tracing::warn!(
                    "Cannot start a new write-ahead log segment in {}: {error}.",
                    appender.dir.display()
                );
            }
        }
    }

    /// Syncs what is left (one more try if an fdatasync fails), stops the
    /// syncer and hands the last segment to the checkpointer, which then
    /// checkpoints everything and deletes it.
    fn finish(mut self, syncer: JoinHandle<()>) {
        for _ in 0..2 {
            if self.wait_synced() && self.backlog.is_empty() {
                break;
            }
            let retry = self.reclaim();
            if !self.backlog.is_empty() {
                if let Err(error) = self.write_backlog(retry) {
                    self.appender
                        .health
                        .failed(&self.appender.store_path, &error);
                }
            }
        }
        let synced = self.wait_synced();
        let lost = self.backlog.len()
            + self
                .shared
                .state
                .lock()
                .failed
                .as_ref()
                .map_or(0, |f| f.iter().map(|w| w.ops.len()).sum());
        if lost > 0 || !synced {
            tracing::error!(
                "Stopping with {lost} changes the store {} could not commit; they are lost.",
                self.appender.store_path.display()
            );
        }
        self.shared.state.lock().closing = true;
        self.shared.changed.notify_all();
        if syncer.join().is_err() {
            tracing::error!("The write-ahead log's fsync thread panicked.");
        }
        let appender = &self.appender;
        appender.behind.sealed();
        let _ = appender.checkpoints.send(ToCheckpoint::Sealed {
            up_to: appender.next_lsn - 1,
            path: appender.segment.path.clone(),
        });
    }
}

/// The syncer: fdatasyncs every frame written since its last fdatasync,
/// then reports their tickets committed and hands their ops to the
/// checkpointer.
fn sync_loop(
    shared: &Shared,
    progress: &watch::Sender<Progress>,
    health: &StoreHealth,
    path: &std::path::Path,
    checkpoints: &Sender<ToCheckpoint>,
) {
    loop {
        let batch: Vec<Written> = {
            let mut state = shared.state.lock();
            loop {
                if state.failed.is_none() && !state.posted.is_empty() {
                    break;
                }
                if state.closing {
                    return;
                }
                shared.changed.wait(&mut state);
            }
            state.syncing = true;
            state.posted.drain(..).collect()
        };
        let Some(newest) = batch.last() else { continue };
        let last_ticket = newest.last_ticket();
        match newest.file.sync_data() {
            Ok(()) => {
                let ops: usize = batch.iter().map(|w| w.ops.len()).sum();
                health.committed(ops);
                if batch.iter().any(|w| w.retry) {
                    health.recovered(path, ops);
                }
                progress.send_modify(|p| {
                    p.committed = p.committed.max(last_ticket);
                    p.attempted = p.attempted.max(last_ticket);
                });
                for written in batch {
                    let _ = checkpoints.send(ToCheckpoint::Group {
                        lsn: written.lsn,
                        ops: written.ops,
                    });
                }
                shared.state.lock().syncing = false;
            }
            Err(error) => {
                health.failed(
                    path,
                    &format!("fdatasync of the write-ahead log failed: {error}"),
                );
                progress.send_modify(|p| p.attempted = p.attempted.max(last_ticket));
                let mut state = shared.state.lock();
                state.syncing = false;
                state.failed = Some(batch);
            }
        }
        shared.changed.notify_all();
    }
}
