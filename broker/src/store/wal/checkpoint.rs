//! The checkpointer thread: keeps the ops of synced WAL groups and, when
//! the appender seals a segment, applies them to redb in one transaction
//! (one fsync) that also records the last group's LSN; then deletes the
//! sealed segments. It is off the acknowledgement path and runs under
//! `SCHED_IDLE` (decision 0197), at [`NICE`] nice values below the broker
//! where that is refused; the appender waits for it only
//! when more than `behind::MAX_SEALED` segments wait for a checkpoint.
//!
//! Synced groups reach it through [`Synced`], which does not wake it: it
//! has nothing to do with a group before its segment is sealed, and a
//! wake-up per group cost the broker's one core about a tenth of its time
//! (decision 0196). Only a sealed segment, a retry or the end wakes it.
//!
//! A failed checkpoint (disk full) changes nothing that was acknowledged:
//! the log still holds every group. It is retried, and logged once per
//! failing period; the segments stay until it succeeds.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use fleetmq_core::store::Op;
use parking_lot::Mutex;

use super::behind::{self, Behind};
use super::segment;
use crate::store::apply::{Applier, Checkpoint};

/// What wakes the checkpointer: every group up to `up_to` is synced and
/// in [`Synced`]; the segment at `path` holds none after it.
pub struct Sealed {
    pub up_to: u64,
    pub path: PathBuf,
}

/// Synced groups not yet taken by the checkpointer, oldest first: the
/// writing thread adds each group right after its fdatasync, and seals a
/// segment only after that, so a [`Sealed`] always finds its groups
/// here.
#[derive(Default)]
pub struct Synced {
    groups: Mutex<Vec<SyncedGroup>>,
}

/// A synced group: its LSN and its ops with their tickets.
type SyncedGroup = (u64, Vec<(u64, Op)>);

impl Synced {
    /// Adds a synced group (its LSN and ops), without waking anyone.
    pub fn push(&self, lsn: u64, ops: Vec<(u64, Op)>) {
        self.groups.lock().push((lsn, ops));
    }

    fn take(&self) -> Vec<SyncedGroup> {
        std::mem::take(&mut *self.groups.lock())
    }
}

/// How long a failed checkpoint waits before it is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// How many nice values the checkpoint thread runs below the broker where
/// `SCHED_IDLE` is refused (decision 0197; under `SCHED_IDLE` the nice
/// value does not count); it stops at 19, the lowest. A checkpoint applies a whole segment (up to
/// 8 MiB) in one burst, which on a broker given one core delayed the
/// acknowledgements behind it (decision 0193). At nice 10 it still took
/// a tenth of a contended core from them; at 19 it takes about 1.5%, and
/// all of an idle one (decision 0196).
pub const NICE: i32 = 19;

pub struct Checkpointer {
    pub applier: Applier,
    pub dir: PathBuf,
    /// The last group whose ops are in the applier's backlog or in redb.
    pub last_lsn: u64,
    /// Shared with the appender: sealed segments not checkpointed yet.
    pub behind: Arc<Behind>,
    /// Shared with the writing thread: groups synced since the last look.
    pub synced: Arc<Synced>,
}

impl Checkpointer {
    /// Runs until the WAL threads are gone, then checkpoints what is left.
    pub fn run(mut self, receiver: Receiver<Sealed>) {
        // SCHED_IDLE first (it resets the nice value), then the nice value,
        // which is what counts where SCHED_IDLE is refused.
        behind::idle_this_thread();
        behind::lower_this_thread(NICE);
        // Sealed segments not deleted yet (their checkpoint failed).
        let mut sealed: Vec<(u64, PathBuf)> = Vec::new();
        let mut failing = false;
        loop {
            let message = if sealed.is_empty() {
                receiver.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                receiver.recv_timeout(RETRY)
            };
            let closing = match message {
                Ok(Sealed { up_to, path }) => {
                    sealed.push((up_to, path));
                    false
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            for (lsn, ops) in self.synced.take() {
                self.applier.backlog.extend(ops);
                self.last_lsn = lsn;
            }
            self.checkpoint(&mut sealed, &mut failing);
            if closing {
                break;
            }
        }
        if !sealed.is_empty() || !self.applier.backlog.is_empty() {
            tracing::warn!(
                "Stopping before the write-ahead log in {} was checkpointed; it is replayed at the next start.",
                self.dir.display()
            );
        }
    }

    fn checkpoint(&mut self, sealed: &mut Vec<(u64, PathBuf)>, failing: &mut bool) {
        let checkpoint = Checkpoint {
            lsn: self.last_lsn,
            keep_early: true,
        };
        match self.applier.commit_backlog(Some(checkpoint)) {
            Ok(_) => {
                if *failing {
                    tracing::warn!(
                        "Checkpoints of the write-ahead log into {} succeed again.",
                        self.applier.path.display()
                    );
                    *failing = false;
                }
                // Oldest first, stopping at the first that cannot go: a
                // gap between segments would read as damage at the next
                // start, an old segment left behind is merely skipped.
                let mut deleted = false;
                // A segment that cannot be deleted counts as a failing
                // checkpoint for the bound: the appender must not wait on
                // what no retry may fix (a directory made read-only).
                let mut stuck = false;
                let before = sealed.len();
                while let Some((up_to, path)) = sealed.first() {
                    if *up_to > self.last_lsn {
                        break;
                    }
                    match std::fs::remove_file(path) {
                        Ok(()) => deleted = true,
                        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                        Err(error) => {
                            tracing::warn!(
                                "Cannot delete the checkpointed write-ahead log segment {}: {error}.",
                                path.display()
                            );
                            stuck = true;
                            break;
                        }
                    }
                    sealed.remove(0);
                }
                if deleted {
                    if let Err(error) = segment::sync_dir(&self.dir) {
                        tracing::debug!("Syncing {} failed: {error}.", self.dir.display());
                    }
                }
                self.behind.checkpointed(before - sealed.len(), stuck);
            }
            Err(error) => {
                if !*failing {
                    tracing::warn!(
                        "Checkpoint of the write-ahead log into {} failed: {error}. Nothing \
                         acknowledged is at risk (the log holds it); retried every second.",
                        self.applier.path.display()
                    );
                }
                *failing = true;
                self.behind.checkpointed(0, true);
            }
        }
    }
}
