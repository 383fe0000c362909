//! What one bridge shows the world: link state, the remote it is on,
//! counters and the last error, read by `/api/bridges` and the metrics.
//!
//! It must not decide anything: the link writes it, observers read it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;

use fleetmq_core::engine::Engine;

/// One bridge's live status.
#[derive(Debug, Default)]
pub struct BridgeStatus {
    pub name: String,
    /// The local session's id, whose queue holds what waits for the remote.
    pub local_client_id: String,
    /// Connected to the remote and forwarding.
    pub connected: AtomicBool,
    /// The address in use or last tried.
    pub remote: Mutex<String>,
    /// PUBLISHes sent to the remote, and received from it.
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// Successful connects since start.
    pub connects: AtomicU64,
    /// Failed connects since start.
    pub failures: AtomicU64,
    /// Why the link last failed or dropped.
    pub last_error: Mutex<Option<String>>,
}

/// The JSON of one bridge in `/api/bridges`.
#[derive(Debug, Serialize)]
pub struct BridgeView {
    pub name: String,
    pub state: &'static str,
    pub remote: String,
    pub local_client_id: String,
    /// Messages waiting in the bridge's local session (queued and
    /// unacknowledged by the remote).
    pub queued: usize,
    /// Messages dropped because the local queue was full (since start).
    pub dropped: u64,
    pub sent: u64,
    pub received: u64,
    pub connects: u64,
    pub failures: u64,
    pub last_error: Option<String>,
}

impl BridgeStatus {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub fn fail(&self, why: String) {
        self.connected.store(false, Ordering::Relaxed);
        *self.last_error.lock() = Some(why);
    }

    /// Messages held for the remote: the local session's queue, and those
    /// sent but not yet acknowledged by the remote.
    pub fn queued(&self, broker: &Engine) -> usize {
        broker.session(&self.local_client_id).map_or(0, |session| {
            let state = session.lock();
            state.queue_len() + state.inflight_in_order().count()
        })
    }

    /// Messages the local session dropped because its queue was full.
    pub fn dropped(&self, broker: &Engine) -> u64 {
        broker
            .session(&self.local_client_id)
            .map_or(0, |session| session.lock().queue_dropped())
    }

    pub fn view(&self, broker: &Engine) -> BridgeView {
        BridgeView {
            name: self.name.clone(),
            state: if self.is_connected() {
                "connected"
            } else {
                "disconnected"
            },
            remote: self.remote.lock().clone(),
            local_client_id: self.local_client_id.clone(),
            queued: self.queued(broker),
            dropped: self.dropped(broker),
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            connects: self.connects.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            last_error: self.last_error.lock().clone(),
        }
    }
}

/// Every bridge's status, in configuration order.
#[derive(Debug, Default)]
pub struct Bridges {
    pub links: Vec<Arc<BridgeStatus>>,
}

impl Bridges {
    pub fn views(&self, broker: &Engine) -> Vec<BridgeView> {
        self.links.iter().map(|link| link.view(broker)).collect()
    }
}
