//! The write-ahead log in front of redb (decision 0178), on unless
//! `store.wal = false` (on by default since decision 0178's session-13
//! update).
//!
//! A group of ops becomes one frame appended to the current segment and
//! one fdatasync; that is the commit acknowledgements wait for. Ops that
//! arrive during an fdatasync make the next group (`appender`, one
//! thread, decision 0196). Synced groups are applied to redb
//! later, in one transaction per segment (`checkpoint`), and the segment
//! is deleted after that. At open, redb plus the groups after its last
//! checkpoint is the state (`recover`, called for every store, with or
//! without the switch, so a log is never left unread).
//!
//! - `frame`: the bytes (length, LSN, CRC-32, ops);
//! - `segment`: the files;
//! - `appender`: the thread that writes and syncs frames;
//! - `checkpoint`: the checkpointer thread, at a lower priority;
//! - `behind`: how many sealed segments wait for it, and the bound;
//! - `recover`: reading the log and replaying it at open.
//!
//! Fsync policies keep their meaning: `always` and `batch` acknowledge
//! after the fdatasync of the frame holding the change; `periodic` writes
//! and syncs a frame every `periodic_interval_secs` and does not gate.

mod appender;
mod behind;
mod checkpoint;
pub mod frame;
pub mod recover;
pub mod segment;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use fleetmq_core::config::{FsyncPolicy, StoreConfig};
use fleetmq_core::store::{Op, Progress, StoreBackend, StoreError, StoreHealth};

use super::apply::Applier;
use appender::Appender;
use checkpoint::Checkpointer;
use segment::Segment;

/// The WAL backend: an opened redb file (already holding every replayed
/// group) and where the log goes on.
pub struct WalBackend {
    pub database: redb::Database,
    pub path: PathBuf,
    pub config: StoreConfig,
    /// The LSN of the first group this run writes.
    pub next_lsn: u64,
}

impl StoreBackend for WalBackend {
    fn start(
        self,
        ops: Receiver<(u64, Op)>,
        progress: watch::Sender<Progress>,
        health: Arc<StoreHealth>,
    ) -> Result<JoinHandle<()>, StoreError> {
        let dir = segment::dir_for(&self.path);
        let first = Segment::create(&dir, self.next_lsn).map_err(|e| StoreError::Open {
            path: dir.clone(),
            detail: format!("cannot create a write-ahead log segment: {e}"),
        })?;
        let window = match self.config.fsync {
            FsyncPolicy::Always => Duration::ZERO,
            FsyncPolicy::Batch => Duration::from_millis(self.config.batch_interval_ms),
            FsyncPolicy::Periodic => Duration::from_secs(self.config.periodic_interval_secs.max(1)),
        };
        let (to_checkpoint, checkpoints) = std::sync::mpsc::channel();
        let behind = Arc::new(behind::Behind::default());
        let synced = Arc::new(checkpoint::Synced::default());
        let checkpointer = Checkpointer {
            behind: Arc::clone(&behind),
            synced: Arc::clone(&synced),
            applier: Applier::new(self.database, self.path.clone()),
            dir: dir.clone(),
            last_lsn: self.next_lsn - 1,
        };
        let checkpointer = std::thread::Builder::new()
            .name("fleetmq-checkpoint".into())
            .spawn(move || checkpointer.run(checkpoints))
            .map_err(StoreError::Thread)?;
        let appender = Appender {
            dir,
            segment: first,
            segment_started: Instant::now(),
            next_lsn: self.next_lsn,
            store_path: self.path,
            progress,
            health,
            checkpoints: to_checkpoint,
            synced,
            behind,
            window,
        };
        std::thread::Builder::new()
            .name("fleetmq-store".into())
            .spawn(move || {
                appender.run(ops);
                // The appender dropped its sender: the checkpointer makes
                // its last checkpoint and ends.
                if checkpointer.join().is_err() {
                    tracing::error!("The store's checkpoint thread panicked.");
                }
            })
            .map_err(StoreError::Thread)
    }
}
