//! Whether the store can commit, as the rest of the broker sees it.
//!
//! The writer thread owns the truth and is the only one that changes it
//! ([`StoreHealth::failed`] and [`StoreHealth::recovered`] log the state
//! change, once each way). Readers are the publish path (QoS 1/2
//! publishes are refused while the store is failing), `/readyz` and the
//! metrics. It must not decide anything itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

/// The store's health, shared between the writer and its readers.
#[derive(Debug)]
pub struct StoreHealth {
    /// False from the first failed commit until a commit succeeds again.
    healthy: AtomicBool,
    /// Commits (and reopen attempts) that failed since start, for metrics.
    failed_commits: AtomicU64,
    /// The last failure, for `/readyz` (without the file's path, which
    /// only the log shows); `None` while healthy.
    reason: Mutex<Option<String>>,
    /// Successful commits that wrote something (one fsync each), for
    /// metrics: with `committed_ops`, how well commits group.
    commits: AtomicU64,
    /// Ops those commits held.
    committed_ops: AtomicU64,
    /// Times the write-ahead log waited for its checkpointer (too many
    /// sealed segments behind, decision 0193), and the microseconds spent:
    /// acknowledgements waited with it.
    checkpoint_waits: AtomicU64,
    checkpoint_wait_micros: AtomicU64,
}

impl Default for StoreHealth {
    fn default() -> Self {
        StoreHealth {
            healthy: AtomicBool::new(true),
            failed_commits: AtomicU64::new(0),
            reason: Mutex::new(None),
            commits: AtomicU64::new(0),
            committed_ops: AtomicU64::new(0),
            checkpoint_waits: AtomicU64::new(0),
            checkpoint_wait_micros: AtomicU64::new(0),
        }
    }
}

impl StoreHealth {
    /// True while commits succeed.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Failed commits (and reopen attempts) since start.
    pub fn failed_commits(&self) -> u64 {
        self.failed_commits.load(Ordering::Relaxed)
    }

    /// Successful commits that wrote something, since start.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Ops held by those commits, since start.
    pub fn committed_ops(&self) -> u64 {
        self.committed_ops.load(Ordering::Relaxed)
    }

    /// Times the write-ahead log waited for its checkpointer, since start.
    pub fn checkpoint_waits(&self) -> u64 {
        self.checkpoint_waits.load(Ordering::Relaxed)
    }

    /// Seconds those waits took, since start.
    pub fn checkpoint_wait_secs(&self) -> f64 {
        self.checkpoint_wait_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// The write-ahead log waited `took` for its checkpointer.
    pub fn waited_for_checkpoint(&self, took: std::time::Duration) {
        self.checkpoint_waits.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.checkpoint_wait_micros
            .fetch_add(micros, Ordering::Relaxed);
    }

    /// A commit of `ops` ops succeeded (nothing is counted for none).
    pub fn committed(&self, ops: usize) {
        if ops > 0 {
            self.commits.fetch_add(1, Ordering::Relaxed);
            self.committed_ops.fetch_add(ops as u64, Ordering::Relaxed);
        }
    }

    /// Why the store is not healthy, `None` while it is.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().clone()
    }

    /// A commit failed; logs only when this starts a failing period.
    pub fn failed(&self, path: &std::path::Path, error: &str) {
        self.failed_commits.fetch_add(1, Ordering::Relaxed);
        // No path: `/readyz` answers without a token; the log names it.
        *self.reason.lock() = Some(format!("store cannot commit: {error}"));
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::error!(
                "Store commit to {} failed: {error}. QoS 1/2 publishes are refused and \
                 changes are kept in memory until a commit succeeds again (free space on \
                 its filesystem or fix the error; retried automatically).",
                path.display()
            );
        } else {
            tracing::debug!("Store commit to {} failed again: {error}.", path.display());
        }
    }

    /// A commit succeeded; logs only when this ends a failing period.
    pub fn recovered(&self, path: &std::path::Path, written: usize) {
        if !self.healthy.swap(true, Ordering::AcqRel) {
            *self.reason.lock() = None;
            tracing::warn!(
                "Store {} recovered: commits succeed again ({written} changes kept in memory \
                 were written).",
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_and_recovering_flip_the_flag_and_count_failures() {
        let health = StoreHealth::default();
        let path = std::path::Path::new("/data/fleetmq.redb");
        assert!(health.is_healthy());
        health.failed(path, "No space left on device");
        health.failed(path, "No space left on device");
        assert!(!health.is_healthy());
        assert_eq!(health.failed_commits(), 2);
        assert!(health.reason().is_some_and(|r| r.contains("No space left")));
        health.recovered(path, 3);
        assert!(health.is_healthy());
        assert_eq!(health.reason(), None);
        assert_eq!(health.failed_commits(), 2, "the counter is monotonic");
    }

    #[test]
    fn commits_count_only_when_they_wrote_something() {
        let health = StoreHealth::default();
        health.committed(0);
        health.committed(32);
        health.committed(7);
        assert_eq!(health.commits(), 2);
        assert_eq!(health.committed_ops(), 39);
    }
}
