//! The writer thread: applies ops in groups, one write transaction and one
//! fsync per group, and publishes the highest committed ticket.
//!
//! Grouping (decision 0168): `always` and `batch` commit naturally: the
//! next commit starts as soon as the previous one ended, with everything
//! that arrived meanwhile (at most `MAX_GROUP` ops), and no timer on the
//! acknowledgement path. Only an explicit `batch_interval_ms` above 0 makes
//! `batch` linger that long for more (fewer fsyncs on flash that wears);
//! `periodic` commits every `periodic_interval_secs` and acknowledgements
//! do not wait for it.
//!
//! A failed commit is never reported as committed: [`Progress`] tells
//! waiting acknowledgements which tickets failed, [`StoreHealth`] tells
//! the rest of the broker, and the uncommitted ops are kept and retried
//! (reopening the file) until a commit succeeds.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::Database;
use tokio::sync::watch;

use fleetmq_core::config::{FsyncPolicy, StoreConfig};
use fleetmq_core::store::{Op, Progress, StoreHealth};

use super::apply::Applier;

/// Most ops in one transaction, so one huge burst cannot hold every
/// acknowledgement behind a single giant commit.
pub const MAX_GROUP: usize = 10_000;

pub struct Writer {
    /// The file, the uncommitted backlog and the early updates.
    applier: Applier,
    config: StoreConfig,
    /// What is committed and what failed, for acknowledgements waiting on
    /// their tickets.
    progress: watch::Sender<Progress>,
    /// Healthy or failing, for refusals, `/readyz` and metrics; only this
    /// thread changes it.
    health: Arc<StoreHealth>,
}

/// First and longest wait between commit attempts while failing.
pub const RETRY_MIN: Duration = Duration::from_millis(100);
pub const RETRY_MAX: Duration = Duration::from_secs(2);

impl Writer {
    pub fn new(
        database: Database,
        path: std::path::PathBuf,
        config: StoreConfig,
        progress: watch::Sender<Progress>,
        health: Arc<StoreHealth>,
    ) -> Writer {
        Writer {
            applier: Applier::new(database, path),
            config,
            progress,
            health,
        }
    }

    /// Runs until every sender is gone, then commits what is left.
    ///
    /// While commits fail, arriving ops join the backlog and are reported
    /// failed at once (their acknowledgements become refusals), and the
    /// backlog is retried with a growing pause (`RETRY_MIN`..`RETRY_MAX`).
    pub fn run(mut self, receiver: Receiver<(u64, Op)>) {
        let window = match self.config.fsync {
            FsyncPolicy::Always => Duration::ZERO,
            FsyncPolicy::Batch => Duration::from_millis(self.config.batch_interval_ms),
            FsyncPolicy::Periodic => Duration::from_secs(self.config.periodic_interval_secs.max(1)),
        };
        let mut closing = false;
        let mut progress = Progress::default();
        // Some while failing: when the next commit attempt is due.
        let mut retry_at: Option<Instant> = None;
        let mut pause = RETRY_MIN;
        while !closing {
            match next_group(&receiver, retry_at, window, &mut self.applier.backlog) {
                Some(gone) => closing |= gone,
                None => break,
            }
            let last = self.applier.backlog.last().map_or(0, |(ticket, _)| *ticket);
            progress.attempted = progress.attempted.max(last);
            if retry_at.is_some_and(|at| Instant::now() < at) && !closing {
                // Failed for now, without touching the disk.
                let _ = self.progress.send(progress);
                continue;
            }
            match self.applier.commit_backlog(None) {
                Ok(written) => {
                    self.health.committed(written);
                    self.health.recovered(&self.applier.path, written);
                    progress.committed = progress.attempted;
                    retry_at = None;
                    pause = RETRY_MIN;
                }
                Err(error) => {
                    self.health.failed(&self.applier.path, &error);
                    retry_at = Some(Instant::now() + pause);
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
            let _ = self.progress.send(progress);
        }
        if !self.applier.backlog.is_empty() {
            tracing::error!(
                "Stopping with {} changes the store {} could not commit; they are lost.",
                self.applier.backlog.len(),
                self.applier.path.display()
            );
        }
    }
}

/// Waits for the next op, or only until `retry_at` while a failed commit
/// waits for its retry, and gathers it with what follows into `into`:
/// within `window`, or at once while retrying (those tickets are already
/// late; the ops only join the backlog). `Some(true)` when every sender
/// is gone, `None` when they were gone before any op came and nothing
/// waits for a retry.
pub fn next_group(
    receiver: &Receiver<(u64, Op)>,
    retry_at: Option<Instant>,
    window: Duration,
    into: &mut Vec<(u64, Op)>,
) -> Option<bool> {
    let first = match retry_at {
        None => receiver.recv().ok()?,
        Some(at) => match receiver.recv_timeout(at.saturating_duration_since(Instant::now())) {
            Ok(op) => op,
            Err(RecvTimeoutError::Timeout) => return Some(false),
            Err(RecvTimeoutError::Disconnected) => return Some(true),
        },
    };
    let window = if retry_at.is_some() {
        Duration::ZERO
    } else {
        window
    };
    Some(gather(receiver, first, window, into))
}

/// Moves `first` and whatever else arrives within `window` (at most
/// `MAX_GROUP` ops) into `into`; true when every sender is gone.
pub fn gather(
    receiver: &Receiver<(u64, Op)>,
    first: (u64, Op),
    window: Duration,
    into: &mut Vec<(u64, Op)>,
) -> bool {
    into.push(first);
    let deadline = Instant::now() + window;
    let mut taken = 1;
    while taken < MAX_GROUP {
        let now = Instant::now();
        let next = if now >= deadline {
            receiver.try_recv().map_err(|e| match e {
                std::sync::mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                std::sync::mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        } else {
            receiver.recv_timeout(deadline - now)
        };
        match next {
            Ok(op) => {
                into.push(op);
                taken += 1;
            }
            Err(RecvTimeoutError::Timeout) => return false,
            Err(RecvTimeoutError::Disconnected) => return true,
        }
    }
    false
}
