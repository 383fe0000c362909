//! Durable state: retained messages, persistent sessions (subscriptions,
//! expiry), their queued and inflight QoS 1/2 messages, incoming QoS 2
//! packet ids, and wills waiting out their delay.
//!
//! The data path never writes to disk. It hands [`Op`]s to [`Store::submit`]
//! (a channel send) and gets a ticket; a writer thread applies ops in groups
//! (one redb write transaction and one fsync per group) and publishes the
//! highest committed ticket. Acknowledgements that promise durability
//! (PUBACK, PUBREC) wait until their ticket is committed, unless the fsync
//! policy is `periodic`. QoS 0 traffic never produces an op.
//!
//! A ticket ends committed or failed ([`Progress`]), never silently
//! dropped: an acknowledgement whose commit failed becomes a refusal.
//! While commits fail ([`StoreHealth`]) the writer keeps the uncommitted
//! ops, retries them and reopens the file until a commit succeeds.
//!
//! It must not be on the hot path for QoS 0, and must never silently empty
//! a damaged store: opening one fails with the file and the reason.
//!
//! This module is the store's vocabulary and its handle: [`Op`], the
//! record encoding (`record`), what a store holds at start ([`Restored`]),
//! tickets ([`Progress`], [`TicketState`]), [`StoreHealth`] and [`Store`].
//! The writer that commits ops is a [`StoreBackend`]: the redb one (thread,
//! transactions, fsync, reopening the file) is fleetmq's `store`.

mod backend;
mod health;
pub mod record;
mod restored;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::config::FsyncPolicy;
use crate::message::Message;
use crate::message::Queued;

pub use backend::StoreBackend;
pub use health::StoreHealth;
pub use record::{now_ms, ItemState, SessionMeta, StoredSubscription};
pub use restored::{Restored, RestoredSession, RestoredWill};

/// One change to durable state.
#[derive(Debug)]
pub enum Op {
    RetainSet(Arc<Message>),
    RetainClear(Arc<str>),
    /// Create or replace a session's metadata.
    SessionPut(Arc<str>, SessionMeta),
    /// Remove a session with its deliveries and QoS 2 ids.
    SessionDelete(Arc<str>),
    /// A delivery queued for a persistent session.
    ItemPut(Arc<str>, Queued),
    /// A stored delivery changed state (QoS 2 sent / released).
    ItemState(Arc<str>, u64, Queued, ItemState),
    /// A stored delivery is done (acknowledged, expired, dropped).
    ItemRemove(Arc<str>, u64),
    IncomingAdd(Arc<str>, u16),
    IncomingRemove(Arc<str>, u16),
    /// A will to publish at the given wall-clock time (ms since epoch).
    WillPut(Arc<str>, Arc<Message>, u64),
    WillClear(Arc<str>),
    /// Ops that must be committed together (one message's records).
    Batch(Vec<Op>),
}

/// How far the writer got with the tickets handed out, published after
/// every commit attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Every ticket up to this one is committed.
    pub committed: u64,
    /// Every ticket up to this one was tried: those above `committed`
    /// failed, and stay failed for whoever waits on them (they are retried
    /// and may commit later, which moves `committed` past them).
    pub attempted: u64,
}

/// Where one ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketState {
    Committed,
    Failed,
    Pending,
}

impl Progress {
    /// Where `ticket` stands (ticket 0, "nothing to commit", is committed).
    pub fn state(&self, ticket: u64) -> TicketState {
        if ticket <= self.committed {
            TicketState::Committed
        } else if ticket <= self.attempted {
            TicketState::Failed
        } else {
            TicketState::Pending
        }
    }
}

/// Why the store could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store {path}: {detail} (if it is damaged, move it aside, with the `.wal` directory beside it if there is one, to start with an empty store; nothing was deleted)")]
    Open { path: PathBuf, detail: String },
    #[error("the store {path} holds a damaged record in {table} (key {key}): {detail}; move the file aside, with the `.wal` directory beside it if there is one, to start empty; nothing was deleted")]
    Damaged {
        path: PathBuf,
        table: &'static str,
        key: String,
        detail: String,
    },
    #[error("cannot start the store writer: {0}")]
    Thread(std::io::Error),
}

/// The writer's channel and the last ticket handed out; `None` once closed.
type Submitter = (mpsc::Sender<(u64, Op)>, u64);

/// The handle the broker uses to record changes.
#[derive(Debug)]
pub struct Store {
    /// Sender and the last ticket handed out, under one lock so that the
    /// channel order is the ticket order.
    sender: Mutex<Option<Submitter>>,
    /// What the writer committed and what failed.
    progress: watch::Receiver<Progress>,
    /// Whether commits succeed now; shared with the writer.
    health: Arc<StoreHealth>,
    /// Source of delivery sequence numbers (record keys).
    next_seq: AtomicU64,
    policy: FsyncPolicy,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Store {
    /// Starts `backend`'s writer and returns the handle that hands it ops.
    /// `policy` says whether acknowledgements wait for commits;
    /// `next_seq` is the first free delivery sequence number (one above
    /// the highest the backend loaded).
    pub fn start<B: StoreBackend>(
        backend: B,
        policy: FsyncPolicy,
        next_seq: u64,
    ) -> Result<Arc<Store>, StoreError> {
        let (sender, receiver) = mpsc::channel();
        let (progress_tx, progress) = watch::channel(Progress::default());
        let health = Arc::new(StoreHealth::default());
        let handle = backend.start(receiver, progress_tx, Arc::clone(&health))?;
        let store = Store {
            sender: Mutex::new(Some((sender, 0))),
            progress,
            health,
            next_seq: AtomicU64::new(next_seq),
            policy,
            writer: Mutex::new(Some(handle)),
        };
        Ok(Arc::new(store))
    }

    /// Queues a change; returns its ticket (0 once the store is closed).
    pub fn submit(&self, op: Op) -> u64 {
        let mut guard = self.sender.lock();
        let Some((sender, last)) = guard.as_mut() else {
            return 0;
        };
        *last += 1;
        let ticket = *last;
        if sender.send((ticket, op)).is_err() {
            tracing::error!("The store writer stopped; changes are no longer saved.");
            return 0;
        }
        ticket
    }

    /// A fresh sequence number for a stored delivery.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Watches which tickets are committed and which failed.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// Whether commits succeed now (for refusals, `/readyz`, metrics).
    pub fn health(&self) -> &StoreHealth {
        &self.health
    }

    /// True when acknowledgements wait for commits (`always`, `batch`).
    pub fn gates_acks(&self) -> bool {
        self.policy != FsyncPolicy::Periodic
    }

    /// Commits everything submitted and stops the writer (shutdown).
    pub fn close(&self) {
        drop(self.sender.lock().take());
        if let Some(handle) = self.writer.lock().take() {
            if handle.join().is_err() {
                tracing::error!("The store writer panicked while closing.");
            }
        }
    }
}

impl Drop for Store {
    /// Nothing calls [`Store::close`] on the way out of `fleetmq run`: the
    /// last handle goes when the runtime drops its tasks. Without this the
    /// process could exit while the writer still held the last group (with
    /// `periodic`, up to `periodic_interval_secs` of acknowledged
    /// messages), so a clean stop lost what only a crash may lose.
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::{Progress, TicketState};

    #[test]
    fn a_ticket_is_committed_failed_or_pending() {
        let failing = Progress {
            committed: 10,
            attempted: 14,
        };
        assert_eq!(failing.state(0), TicketState::Committed);
        assert_eq!(failing.state(10), TicketState::Committed);
        assert_eq!(failing.state(11), TicketState::Failed);
        assert_eq!(failing.state(14), TicketState::Failed);
        assert_eq!(failing.state(15), TicketState::Pending);
        // The retried backlog committed: the failed tickets are durable now.
        let recovered = Progress {
            committed: 14,
            attempted: 14,
        };
        assert_eq!(recovered.state(12), TicketState::Committed);
    }
}
