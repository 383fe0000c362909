//! The engine's side of the cluster publisher: a bounded hand-over channel,
//! the backend's health, and one settle-cell per QoS >= 1 message whose
//! acknowledgement waits for JetStream (docs/decisions/0158).
//!
//! It owns no IO and never blocks: a full channel or a backend that is not
//! ready is a refusal, decided by the caller. The broker's NATS task holds
//! the receiving end, publishes, and settles the cells.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::{SessionDirectory, SharedReadiness, WillKeeper};
use crate::message::Message;

/// Where one message's cluster publish stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckState {
    Pending,
    /// JetStream acknowledged it: it is stored on a quorum.
    Stored,
    /// It could not be stored: its acknowledgement becomes a refusal.
    Failed,
}

/// The settle-cell of one message an acknowledgement waits for.
#[derive(Debug, Default)]
pub struct ClusterAck {
    state: AtomicU8,
}

const PENDING: u8 = 0;
const STORED: u8 = 1;
const FAILED: u8 = 2;

impl ClusterAck {
    pub fn state(&self) -> AckState {
        match self.state.load(Ordering::Acquire) {
            PENDING => AckState::Pending,
            STORED => AckState::Stored,
            _ => AckState::Failed,
        }
    }

    /// A cell already failed (the message never left the node).
    pub fn failed() -> Arc<ClusterAck> {
        let ack = ClusterAck::default();
        ack.state.store(FAILED, Ordering::Release);
        Arc::new(ack)
    }
}

/// One message handed to the cluster publisher.
#[derive(Debug)]
pub struct Outbound {
    pub message: Arc<Message>,
    /// Settled by the publisher; `None` for QoS 0 and the broker's own
    /// messages, which nobody acknowledges.
    pub ack: Option<Arc<ClusterAck>>,
    /// When it was handed over: one that waited longer than the publish
    /// timeout is failed without being sent.
    pub queued_at: std::time::Instant,
}

/// The engine's handle on the cluster backend.
#[derive(Debug)]
pub struct ClusterLink {
    /// To the broker's NATS publisher; bounded, so a NATS that stalls
    /// turns into refusals instead of memory.
    sender: mpsc::Sender<Outbound>,
    /// Connected to NATS with the streams in place; QoS >= 1 publishes are
    /// refused while false.
    ready: Arc<AtomicBool>,
    /// Bumped after every settle, so connections waiting for a cell wake.
    settled: watch::Sender<u64>,
    /// Client-id ownership and sessions across nodes, set once by the
    /// backend at start (decision 0172).
    directory: std::sync::OnceLock<Arc<dyn SessionDirectory>>,
    /// Wills across nodes, set once by the backend at start (0183).
    wills: std::sync::OnceLock<Arc<dyn WillKeeper>>,
    /// The `$share` groups this node pulls for; a first member's SUBACK
    /// waits for its group (0182).
    pub shared: SharedReadiness,
    /// Shared with the [`Settler`]: JetStream's answers so far.
    outcomes: Arc<[AtomicU64; 2]>,
}

/// The publisher's end of a [`ClusterLink`]: the channel, and the
/// [`Settler`] that its tasks share.
#[derive(Debug)]
pub struct LinkBackend {
    pub receiver: mpsc::Receiver<Outbound>,
    pub settler: Settler,
}

/// Settles cells and sets readiness; cheap to clone into tasks.
#[derive(Debug, Clone)]
pub struct Settler {
    ready: Arc<AtomicBool>,
    settled: watch::Sender<u64>,
    /// Settled cells, stored and failed, for the metrics.
    outcomes: Arc<[AtomicU64; 2]>,
}

impl Settler {
    /// Settles one cell and wakes whoever waits on it.
    pub fn settle(&self, ack: &ClusterAck, stored: bool) {
        let value = if stored { STORED } else { FAILED };
        ack.state.store(value, Ordering::Release);
        self.outcomes[usize::from(!stored)].fetch_add(1, Ordering::Relaxed);
        self.settled
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
}

impl ClusterLink {
    /// A link whose channel holds at most `capacity` messages, and the
    /// publisher's end of it.
    pub fn new(capacity: usize) -> (ClusterLink, LinkBackend) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let ready = Arc::new(AtomicBool::new(false));
        let (settled, _) = watch::channel(0);
        let outcomes = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let backend = LinkBackend {
            receiver,
            settler: Settler {
                ready: Arc::clone(&ready),
                settled: settled.clone(),
                outcomes: Arc::clone(&outcomes),
            },
        };
        (
            ClusterLink {
                sender,
                ready,
                settled,
                directory: std::sync::OnceLock::new(),
                wills: std::sync::OnceLock::new(),
                shared: SharedReadiness::default(),
                outcomes,
            },
            backend,
        )
    }

    /// QoS >= 1 messages JetStream stored, and those it did not (error or
    /// timeout), since start.
    pub fn ack_outcomes(&self) -> (u64, u64) {
        (
            self.outcomes[0].load(Ordering::Relaxed),
            self.outcomes[1].load(Ordering::Relaxed),
        )
    }

    /// True while the backend can make a message durable.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Hands `message` over; with `acknowledged`, returns the cell its
    /// acknowledgement waits for (failed at once when the channel is full
    /// or closed). QoS 0 and broker messages are dropped for the cluster
    /// when the channel is full.
    pub fn send(&self, message: Arc<Message>, acknowledged: bool) -> Option<Arc<ClusterAck>> {
        let ack = acknowledged.then(|| Arc::new(ClusterAck::default()));
        let outbound = Outbound {
            message,
            ack: ack.clone(),
            queued_at: std::time::Instant::now(),
        };
        match self.sender.try_send(outbound) {
            Ok(()) => ack,
            Err(_) => acknowledged.then(ClusterAck::failed),
        }
    }

    /// Installs the session directory; false when one is set already.
    pub fn set_directory(&self, directory: Arc<dyn SessionDirectory>) -> bool {
        self.directory.set(directory).is_ok()
    }

    /// The session directory, once the backend installed it.
    pub fn directory(&self) -> Option<&Arc<dyn SessionDirectory>> {
        self.directory.get()
    }

    /// Installs the will keeper; false when one is set already.
    pub fn set_wills(&self, wills: Arc<dyn WillKeeper>) -> bool {
        self.wills.set(wills).is_ok()
    }

    /// The will keeper, once the backend installed it.
    pub fn wills(&self) -> Option<&Arc<dyn WillKeeper>> {
        self.wills.get()
    }

    /// Settles `cells` as stored and wakes whoever waits on them (the
    /// SUBACKs that waited for their shared groups).
    pub fn release(&self, cells: Vec<Arc<ClusterAck>>) {
        if cells.is_empty() {
            return;
        }
        for cell in cells {
            cell.state.store(STORED, Ordering::Release);
        }
        self.settled
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Wakes each time a cell is settled.
    pub fn settled(&self) -> watch::Receiver<u64> {
        self.settled.subscribe()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use fleetmq_codec::{PublishProperties, QoS};

    fn message() -> Arc<Message> {
        Arc::new(Message {
            topic: Arc::from("a"),
            payload: bytes::Bytes::from_static(b"x"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: PublishProperties::default(),
            expires_at: None,
            publisher: None,
        })
    }

    #[test]
    fn a_full_channel_fails_the_ack_and_settles_wake_waiters() {
        let (link, mut backend) = ClusterLink::new(1);
        let first = link.send(message(), true);
        let second = link.send(message(), true);
        assert_eq!(first.as_ref().map(|a| a.state()), Some(AckState::Pending));
        assert_eq!(second.map(|a| a.state()), Some(AckState::Failed));
        let settled = link.settled();
        let Ok(outbound) = backend.receiver.try_recv() else {
            panic!("the first message was not handed over");
        };
        let Some(ack) = outbound.ack else {
            panic!("no cell");
        };
        backend.settler.settle(&ack, true);
        assert_eq!(ack.state(), AckState::Stored);
        assert_eq!(settled.has_changed().ok(), Some(true));
        assert!(!link.is_ready());
        backend.settler.set_ready(true);
        assert!(link.is_ready());
    }
}
