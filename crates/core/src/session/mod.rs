//! The state of one client id that outlives its network connections.
//!
//! A [`Session`] owns the client's subscriptions (as the client named them),
//! the queue of messages waiting to be sent, the QoS 1/2 messages in flight
//! in both directions, and the link to the connection currently attached.
//! Its state sits behind a short synchronous lock that is never held across
//! an `.await`; the attached connection is woken through a `Notify` when a
//! message is queued, and publishers held back by a full queue through
//! another when it has room again. The session does no IO.
//!
//! Its state has no public fields: every change goes through a method of
//! [`SessionState`] ([`lifecycle`] for attach, detach, subscriptions and
//! expiry; [`delivery`] for the QoS 1/2 flows in both directions) that
//! returns the durable [`Op`]s it implies, so store records of sessions
//! are built here only and callers just submit them (decision 0106).

mod control;
mod delivery;
mod held;
mod inflight;
mod lifecycle;
mod queue;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use tokio::sync::Notify;

use crate::auth::Identity;
use crate::router::{ClientKey, Subscription};
use crate::store::{Op, SessionMeta, Store, StoredSubscription};

pub use crate::auth::{ForeignSession, SessionOwner};
pub use crate::message::Queued;
pub use control::{control_link, ConnectionGone, Control, ControlReceiver, ControlSender};
pub use delivery::PubRecOutcome;
pub use inflight::{Inflight, OutFlight, Released};
pub use lifecycle::{Detached, ExpiryFromZero, SubscribeChange};
pub use queue::{EnqueueOutcome, Queue, QueueLimits};

/// The connection currently attached to a session.
#[derive(Debug)]
pub struct Attachment {
    /// Distinguishes this connection from earlier and later ones of the same
    /// client id, so a closing connection cleans up only what is still its.
    pub generation: u64,
    /// Where to send a take-over or kick request.
    pub control: ControlSender,
    /// Who is connected, for decisions made outside the connection task
    /// (which member of a shared subscription may take a message).
    pub identity: Arc<Identity>,
    /// Serial and issuer of the client certificate, so a CRL reload can
    /// close the connection of a device it revokes (decision 0089).
    pub certificate: Option<crate::peer::CertificateSerial>,
}

/// Mutable per-session state, guarded by [`Session::lock`]. Private
/// fields: changes go through methods that return the store ops they imply.
#[derive(Debug)]
pub struct SessionState {
    /// The session's client id, the key of its store records.
    client_id: ClientKey,
    /// True when the broker has a store: only then are ops built.
    durable: bool,
    /// The attached connection, `None` while the client is offline.
    attached: Option<Attachment>,
    /// Bumped for every connection that attaches.
    generation: u64,
    /// Subscriptions by filter exactly as subscribed (including `$share/`).
    subscriptions: HashMap<String, Subscription>,
    /// Messages not yet sent.
    queue: Queue,
    /// Outgoing QoS 1/2 messages awaiting acknowledgement.
    inflight: Inflight,
    /// Packet ids of incoming QoS 2 messages that got PUBREC and await
    /// PUBREL: a repeated PUBLISH with such an id is not routed again.
    /// Sorted; at most the broker's Receive Maximum of them, and none for
    /// most devices: a plain vector costs a held session nothing, where a
    /// hash set kept 48 bytes.
    incoming_qos2: Vec<u16>,
    /// Session Expiry Interval in seconds after disconnect; 0 ends the
    /// session with the connection, `u32::MAX` never expires.
    expiry_interval: u32,
    /// False once the session has been discarded (clean start by a new
    /// connection, or expiry): late writers must not resurrect it.
    alive: bool,
    /// The principal that created the session, the only one that may
    /// attach to it. `None` only for a session restored from a record of
    /// an older fleetmq, which the next attach claims (decision 0088).
    owner: Option<SessionOwner>,
    /// Deliveries the attached connection may not read (its rules changed,
    /// or the session was queued for another identity of its owner): not
    /// sent, not forgotten, offered again to the next connection.
    held: held::Held,
}

/// One client's session.
#[derive(Debug)]
pub struct Session {
    pub client_id: ClientKey,
    state: Mutex<SessionState>,
    /// Wakes the attached connection's writer when messages are queued.
    pub wakeup: Notify,
    /// Wakes publishers waiting for room in a full queue.
    pub space: Notify,
}

impl Session {
    /// A new, empty, offline session; `durable` when the broker has a
    /// store (its methods then return the ops to record).
    pub fn new(client_id: ClientKey, limits: QueueLimits, durable: bool) -> Session {
        Session {
            state: Mutex::new(SessionState {
                client_id: Arc::clone(&client_id),
                durable,
                attached: None,
                generation: 0,
                subscriptions: HashMap::new(),
                queue: Queue::new(limits),
                inflight: Inflight::default(),
                incoming_qos2: Vec::new(),
                expiry_interval: 0,
                alive: true,
                owner: None,
                held: held::Held::new(limits),
            }),
            client_id,
            wakeup: Notify::new(),
            space: Notify::new(),
        }
    }

    /// Locks the state. Callers must not hold the guard across `.await`.
    pub fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock()
    }

    /// True while a connection is attached.
    pub fn is_online(&self) -> bool {
        self.state.lock().attached.is_some()
    }

    /// Queues a message for the client and wakes its connection. Offline
    /// sessions keep only QoS 1 and 2 unless `mqtt.queue_qos0_messages`
    /// (Mosquitto's `queue_qos0_messages`; QoS 0 is kept in memory only). A QoS 1/2 delivery to a persistent
    /// session also gets a store record, appended to `ops` for the caller
    /// to submit together with the rest of its message. With `press`, a
    /// full queue of an attached client may take the message past its
    /// bound ([`EnqueueOutcome::Pressured`]: the caller holds its publisher
    /// back, see [`Session::holds_publishers`]).
    pub fn enqueue(
        &self,
        mut item: Queued,
        store: Option<&Store>,
        ops: &mut Vec<Op>,
        press: bool,
    ) -> EnqueueOutcome {
        let outcome = {
            let mut state = self.state.lock();
            if !state.alive {
                return EnqueueOutcome::Dropped;
            }
            if state.attached.is_none()
                && item.qos == fleetmq_codec::QoS::AtMostOnce
                && !state.queue.keeps_offline_qos0()
            {
                return EnqueueOutcome::Dropped;
            }
            let durable = store.filter(|_| {
                item.qos != fleetmq_codec::QoS::AtMostOnce && state.expiry_interval > 0
            });
            let record = durable.map(|store| {
                item.seq = Some(store.next_seq());
                item.clone()
            });
            // A queue that already held messages has a wake-up pending or
            // a connection that drains it on its next turn anyway.
            let was_empty = state.queue.is_empty();
            let outcome = if press {
                let attached = state.attached.is_some();
                state.queue.push_or_press(item, attached)
            } else {
                state.queue.push(item)
            };
            if let (EnqueueOutcome::Queued | EnqueueOutcome::Pressured, Some(record)) =
                (outcome, record)
            {
                ops.push(Op::ItemPut(Arc::clone(&self.client_id), record));
            }
            (outcome, was_empty)
        };
        let (outcome, was_empty) = outcome;
        if outcome != EnqueueOutcome::Dropped && was_empty {
            self.wakeup.notify_one();
        }
        outcome
    }

    /// True while publishers should wait before sending this session more:
    /// it is attached, its queue is at its press mark (`queue`, decision
    /// 0189), and it has not been there for `limits.queue_full_wait_ms` yet
    /// (then its reader counts as stalled and publishers go on; messages
    /// for it are queued up to the bounds, then dropped).
    /// A true answer registers the caller as waiting: the reader's next
    /// drain under the bounds wakes it through [`Session::space`].
    pub fn holds_publishers(&self) -> bool {
        let mut state = self.state.lock();
        let holds = state.alive
            && state.attached.is_some()
            && state.queue.is_pressing()
            && !state.queue.is_stalled(std::time::Instant::now());
        if holds {
            state.queue.note_waiter();
        }
        holds
    }
}

impl SessionState {
    /// The durable description of this session.
    pub fn meta(&self, disconnected_at_ms: Option<u64>) -> SessionMeta {
        SessionMeta {
            owner: self.owner.clone(),
            expiry_interval: self.expiry_interval,
            disconnected_at_ms,
            subscriptions: self
                .subscriptions
                .iter()
                .map(|(filter, sub)| (filter.clone(), StoredSubscription::from(sub)))
                .collect(),
        }
    }

    /// True when the session outlives its connection (and is stored).
    pub fn is_persistent(&self) -> bool {
        self.expiry_interval > 0
    }

    /// Whether `identity` may attach: it is the owner, or the session has
    /// none recorded yet. A refusal says who owns it.
    pub fn check_owner(&self, identity: &Identity) -> Result<(), ForeignSession> {
        match &self.owner {
            Some(owner) if !owner.admits(identity) => Err(ForeignSession {
                owner: owner.clone(),
                claimant: SessionOwner::of(identity),
            }),
            _ => Ok(()),
        }
    }

    /// True when this connection generation is still the attached one.
    pub fn is_attached(&self, generation: u64) -> bool {
        self.attached
            .as_ref()
            .is_some_and(|a| a.generation == generation)
    }
}
