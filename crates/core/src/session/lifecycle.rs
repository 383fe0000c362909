//! A session's life: attaching and detaching connections, its expiry
//! interval, its subscriptions, being discarded, and coming back from the
//! store.
//!
//! Each change returns the store op it implies (`None` when the session is
//! not persistent or the broker has no store); the caller submits it. The
//! router is the broker's: methods that change subscriptions say which
//! filters to route or unroute, they never touch it.

use std::sync::Arc;

use super::{Attachment, OutFlight, SessionOwner, SessionState};
use crate::router::Subscription;
use crate::store::{ItemState, Op, RestoredSession};

/// What [`SessionState::detach`] did.
#[derive(Debug)]
pub struct Detached {
    /// The expiry interval the session now waits out.
    pub expiry_interval: u32,
    /// The session's record with its disconnect time.
    pub op: Option<Op>,
}

/// A DISCONNECT asked for a session expiry after CONNECT asked for none
/// [MQTT-3.14.2-2].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryFromZero;

/// What [`SessionState::subscribe`] did.
#[derive(Debug)]
pub enum SubscribeChange {
    /// The session was discarded meanwhile: nothing changed.
    Gone,
    /// A new filter would exceed the per-client maximum.
    OverQuota,
    /// Added or replaced; the session's updated record.
    Added(Option<Op>),
}

impl SessionState {
    /// The session's record, when it is persistent and there is a store.
    fn meta_op(&self, disconnected_at_ms: Option<u64>) -> Option<Op> {
        (self.durable && self.is_persistent())
            .then(|| Op::SessionPut(Arc::clone(&self.client_id), self.meta(disconnected_at_ms)))
    }

    /// The attached connection, if any.
    pub fn attachment(&self) -> Option<&Attachment> {
        self.attached.as_ref()
    }

    /// The principal the session belongs to (`None`: restored from an
    /// older record and not attached since).
    pub fn owner(&self) -> Option<&SessionOwner> {
        self.owner.as_ref()
    }

    /// The generation of the last connection that attached (0: none since
    /// the session was created or restored).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Session Expiry Interval in seconds.
    pub fn expiry_interval(&self) -> u32 {
        self.expiry_interval
    }

    /// False once the session was discarded.
    pub fn is_alive(&self) -> bool {
        self.alive
    }

    /// True when the session is alive and a connection other than
    /// `generation` attached since: the rule that keeps a delayed will
    /// unsent [MQTT-3.1.3-9].
    pub fn resumed_since(&self, generation: u64) -> bool {
        self.alive && self.generation != generation
    }

    /// True when no connection attached since `generation` and none is
    /// attached: the session may expire.
    pub fn is_idle_since(&self, generation: u64) -> bool {
        self.generation == generation && self.attached.is_none() && self.alive
    }

    /// Messages waiting to be sent.
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Messages dropped because the queue was full.
    pub fn queue_dropped(&self) -> u64 {
        self.queue.dropped
    }

    /// Gives the queue other bounds (see [`super::Queue::set_limits`]).
    pub fn set_queue_limits(&mut self, limits: super::QueueLimits) {
        self.queue.set_limits(limits);
    }

    /// The subscriptions, by filter as subscribed.
    pub fn subscriptions(&self) -> impl Iterator<Item = (&String, &Subscription)> {
        self.subscriptions.iter()
    }

    /// Detaches the current connection (a take-over), returning it.
    pub fn take_attachment(&mut self) -> Option<Attachment> {
        self.attached.take()
    }

    /// Attaches a connection with its expiry interval. A session without a
    /// recorded owner is claimed by the connection's principal, returned
    /// for the log line. Deliveries held back from an earlier connection go
    /// back to the queue, to be checked against this one's rights. The op
    /// records the session, or deletes the record of one that stops being
    /// persistent.
    pub fn attach(
        &mut self,
        attachment: Attachment,
        expiry_interval: u32,
    ) -> (Option<SessionOwner>, Option<Op>) {
        let mut claimed = None;
        if self.owner.is_none() {
            let owner = SessionOwner::of(&attachment.identity);
            claimed = Some(owner.clone());
            self.owner = Some(owner);
        }
        self.held.release_into(&mut self.queue);
        self.generation = attachment.generation;
        self.attached = Some(attachment);
        let was_persistent = self.is_persistent();
        self.expiry_interval = expiry_interval;
        let op = if self.is_persistent() {
            self.meta_op(None)
        } else if was_persistent && self.durable {
            Some(Op::SessionDelete(Arc::clone(&self.client_id)))
        } else {
            None
        };
        (claimed, op)
    }

    /// The connection `generation` closed at `now_ms`. `None` when it was
    /// no longer the attached one (taken over).
    pub fn detach(&mut self, generation: u64, now_ms: u64) -> Option<Detached> {
        if !self.is_attached(generation) {
            return None;
        }
        self.attached = None;
        Some(Detached {
            expiry_interval: self.expiry_interval,
            op: self.meta_op(Some(now_ms)),
        })
    }

    /// A 5.0 DISCONNECT changes the expiry interval (capped at `cap`); it
    /// may not turn a session that ends with its connection into one that
    /// outlives it [MQTT-3.14.2-2]. Recorded at detach.
    pub fn change_expiry(&mut self, asked: u32, cap: u32) -> Result<(), ExpiryFromZero> {
        if self.expiry_interval == 0 && asked != 0 {
            return Err(ExpiryFromZero);
        }
        self.expiry_interval = asked.min(cap);
        Ok(())
    }

    /// Ends the session: `unroute` is called with every filter (to leave
    /// the router), its queue and inflight state are dropped, and later
    /// enqueues are refused. The op deletes its record.
    pub fn discard(&mut self, mut unroute: impl FnMut(&str)) -> Option<Op> {
        let op = (self.durable && self.is_persistent())
            .then(|| Op::SessionDelete(Arc::clone(&self.client_id)));
        self.alive = false;
        for filter in self.subscriptions.keys() {
            unroute(filter);
        }
        self.subscriptions.clear();
        self.queue.clear();
        self.held.clear();
        self.inflight.clear();
        self.incoming_qos2 = Vec::new();
        op
    }

    /// Adds or replaces a subscription, unless the session is gone or a
    /// new filter would take it past `max` (0: unlimited). The caller
    /// routes it.
    pub fn subscribe(
        &mut self,
        filter: &str,
        subscription: Subscription,
        max: usize,
    ) -> SubscribeChange {
        if !self.alive {
            return SubscribeChange::Gone;
        }
        if max != 0 && self.subscriptions.len() >= max && !self.subscriptions.contains_key(filter) {
            return SubscribeChange::OverQuota;
        }
        self.subscriptions.insert(filter.to_string(), subscription);
        SubscribeChange::Added(self.meta_op(None))
    }

    /// Removes a subscription; the op records the session without it.
    pub fn unsubscribe(&mut self, filter: &str) -> Option<Op> {
        self.subscriptions.remove(filter)?;
        self.meta_op(None)
    }

    /// Loads a session the store held (into a new, empty one) that was
    /// disconnected at `disconnected_at_ms`; returns the deliveries it had
    /// and its record rewritten with that time. The caller routes its
    /// subscriptions.
    pub fn restore(
        &mut self,
        stored: RestoredSession,
        disconnected_at_ms: u64,
    ) -> (usize, Option<Op>) {
        self.expiry_interval = stored.meta.expiry_interval;
        self.owner = stored.meta.owner;
        for (filter, sub) in &stored.meta.subscriptions {
            self.subscriptions
                .insert(filter.clone(), sub.to_subscription());
        }
        let deliveries = stored.items.len();
        for (item, item_state) in stored.items {
            match item_state {
                ItemState::Queued => self.queue.push_restored(item),
                ItemState::Sent(id) => self.inflight.insert(id, OutFlight::Publish(item)),
                ItemState::Released(id) => self.inflight.insert(id, OutFlight::Release(item.seq)),
            }
        }
        self.incoming_qos2.extend(stored.incoming_qos2);
        self.incoming_qos2.sort_unstable();
        self.incoming_qos2.dedup();
        let op = self.durable.then(|| {
            Op::SessionPut(
                Arc::clone(&self.client_id),
                self.meta(Some(disconnected_at_ms)),
            )
        });
        (deliveries, op)
    }

    /// Forgets the owner, as a record of an older fleetmq has none.
    #[cfg(test)]
    pub(crate) fn forget_owner(&mut self) {
        self.owner = None;
    }
}
