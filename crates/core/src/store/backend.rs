//! The seam between the store handle and the durable writer behind it.
//!
//! [`Store`](super::Store) hands out tickets and sends `(ticket, Op)` on a
//! channel (no dynamic dispatch, no disk on the data path); a
//! [`StoreBackend`] is whatever drains that channel and makes the ops
//! durable: today the redb writer thread of fleetmq's `store`, later a
//! NATS JetStream writer for the cluster. Loading what a backend holds at
//! start is the backend's own constructor (it returns a
//! [`Restored`](super::Restored) before the writer starts), because how a
//! damaged store is refused depends on the medium.
//!
//! It must not acknowledge anything itself: it only publishes how far it
//! got ([`Progress`]) and whether commits succeed ([`StoreHealth`]).

use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::watch;

use super::{Op, Progress, StoreError, StoreHealth};

/// A durable writer for the ops of a [`Store`](super::Store).
///
/// The contract every implementation keeps:
/// - ops arrive in ticket order and are committed in that order, in
///   groups of any size (one transaction per group);
/// - after every commit attempt `progress` is updated: tickets up to
///   `committed` are durable, tickets above it up to `attempted` failed;
///   a failed ticket is never reported committed unless a later retry
///   really committed it;
/// - `health` says whether commits succeed now (refusals, `/readyz`);
/// - when every sender is gone, what is left is committed and the
///   returned thread ends ([`Store::close`](super::Store::close) joins it).
pub trait StoreBackend: Send + 'static {
    /// Starts the writer on a thread of its own; called once, by
    /// [`Store::start`](super::Store::start).
    fn start(
        self,
        ops: Receiver<(u64, Op)>,
        progress: watch::Sender<Progress>,
        health: Arc<StoreHealth>,
    ) -> Result<JoinHandle<()>, StoreError>;
}
