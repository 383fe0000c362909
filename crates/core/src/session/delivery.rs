//! The QoS 1 and 2 flows of one session, in both directions: taking
//! queued messages into the inflight window, their acknowledgements, and
//! the packet ids of incoming QoS 2 messages.
//!
//! Each change returns the store op it implies (`None` for a delivery that
//! is not stored, a session that is not persistent, or a broker without a
//! store); the caller submits it and, where an acknowledgement promises
//! durability, waits for its ticket. No IO, no encoding, no access rules:
//! those are the connection's.

use std::sync::Arc;

use super::{OutFlight, Queued, Released, SessionState};
use crate::store::{ItemState, Op};
use fleetmq_codec::QoS;

/// What a PUBREC did to the outgoing window.
#[derive(Debug)]
pub struct PubRecOutcome {
    /// False when no QoS 2 PUBLISH had this id (PUBREL says not found).
    pub known: bool,
    /// The release, recorded before PUBREL goes out [MQTT-4.3.3-5].
    pub op: Option<Op>,
}

impl SessionState {
    /// The removal of a stored delivery that is done (acknowledged,
    /// expired, refused, too large to send).
    pub fn delivery_done(&self, item: &Queued) -> Option<Op> {
        self.forget(item.seq)
    }

    fn forget(&self, seq: Option<u64>) -> Option<Op> {
        seq.map(|seq| Op::ItemRemove(Arc::clone(&self.client_id), seq))
    }

    /// The next queued message, if any.
    pub fn next_queued(&mut self) -> Option<Queued> {
        self.queue.pop()
    }

    /// Puts a message taken by [`SessionState::next_queued`] back in front.
    pub fn requeue_front(&mut self, item: Queued) {
        self.queue.push_front(item);
    }

    /// True when nothing is queued.
    pub fn queue_is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Notes a drain; true when the queue got back under its bounds and
    /// publishers held back may go on.
    pub fn settle_queue(&mut self) -> bool {
        self.queue.settle()
    }

    /// Holds back a delivery the attached connection may not read (see
    /// `held`); returns how many older held ones were given up to stay in
    /// bounds and their removals.
    pub fn hold(&mut self, item: Queued) -> (usize, Vec<Op>) {
        let given_up = self.held.hold(item);
        let ops = given_up
            .iter()
            .filter_map(|item| self.forget(item.seq))
            .collect();
        (given_up.len(), ops)
    }

    /// A packet id for a QoS 1/2 PUBLISH when fewer than `window` are in
    /// flight and, with a `max_bytes` (not 0), the payloads in flight are
    /// below it (as Mosquitto 2.0.11 checks `max_inflight_bytes`: the last
    /// message may cross it, and one always may go); else `None` (wait for
    /// an acknowledgement).
    pub fn allocate_in_window(&mut self, window: usize, max_bytes: usize) -> Option<u16> {
        let bytes_fit = max_bytes == 0 || self.inflight.bytes() < max_bytes;
        if self.inflight.len() < window && bytes_fit {
            self.inflight.allocate_id()
        } else {
            None
        }
    }

    /// A PUBLISH went out with `id`: it waits for its acknowledgement. A
    /// stored QoS 2 delivery records its id, so that after a restart it is
    /// sent again with the same id, not as a new message.
    pub fn mark_sent(&mut self, id: u16, item: Queued) -> Option<Op> {
        let op = match (item.qos, item.seq) {
            (QoS::ExactlyOnce, Some(seq)) => Some(Op::ItemState(
                Arc::clone(&self.client_id),
                seq,
                item.clone(),
                ItemState::Sent(id),
            )),
            _ => None,
        };
        self.inflight.insert(id, OutFlight::Publish(item));
        op
    }

    /// Unacknowledged PUBLISHes and PUBRELs in their sending order.
    pub fn inflight_in_order(&self) -> impl Iterator<Item = (u16, &OutFlight)> {
        self.inflight.in_order()
    }

    /// PUBACK: a QoS 1 delivery with this id is done.
    pub fn on_puback(&mut self, id: u16) -> Option<Op> {
        let is_qos1 = matches!(
            self.inflight.get(id),
            Some(OutFlight::Publish(item)) if item.qos == QoS::AtLeastOnce
        );
        if !is_qos1 {
            return None;
        }
        match self.inflight.remove(id) {
            Some(OutFlight::Publish(item)) => self.forget(item.seq),
            _ => None,
        }
    }

    /// PUBREC with an error reason: the receiver refused the message, the
    /// delivery is done.
    pub fn on_pubrec_refused(&mut self, id: u16) -> Option<Op> {
        match self.inflight.remove(id) {
            Some(OutFlight::Publish(item)) => self.forget(item.seq),
            _ => None,
        }
    }

    /// PUBREC: the QoS 2 delivery arrived, its release begins.
    pub fn on_pubrec(&mut self, id: u16) -> PubRecOutcome {
        match self.inflight.mark_released(id) {
            Released::Published(item) => PubRecOutcome {
                known: true,
                op: item.seq.map(|seq| {
                    Op::ItemState(
                        Arc::clone(&self.client_id),
                        seq,
                        item,
                        ItemState::Released(id),
                    )
                }),
            },
            Released::Again => PubRecOutcome {
                known: true,
                op: None,
            },
            Released::Unknown => PubRecOutcome {
                known: false,
                op: None,
            },
        }
    }

    /// PUBCOMP: a released QoS 2 delivery is done.
    pub fn on_pubcomp(&mut self, id: u16) -> Option<Op> {
        let Some(OutFlight::Release(seq)) = self.inflight.get(id) else {
            return None;
        };
        let seq = *seq;
        self.inflight.remove(id);
        self.forget(seq)
    }

    /// True when an incoming QoS 2 PUBLISH with `id` was routed and awaits
    /// PUBREL (a retransmission must not be routed again).
    pub fn has_incoming(&self, id: u16) -> bool {
        self.incoming_qos2.binary_search(&id).is_ok()
    }

    /// Incoming QoS 2 messages awaiting PUBREL.
    pub fn incoming_count(&self) -> usize {
        self.incoming_qos2.len()
    }

    /// The record of an incoming QoS 2 id, to commit with the message's
    /// own records [MQTT-4.3.3-9]; [`SessionState::accept_incoming`]
    /// notes it in memory once the message is accepted.
    pub fn incoming_record(&self, id: u16) -> Option<Op> {
        (self.durable && self.is_persistent())
            .then(|| Op::IncomingAdd(Arc::clone(&self.client_id), id))
    }

    /// An incoming QoS 2 message with `id` was accepted (its record, if
    /// any, went with the message).
    pub fn accept_incoming(&mut self, id: u16) {
        if let Err(at) = self.incoming_qos2.binary_search(&id) {
            self.incoming_qos2.insert(at, id);
        }
    }

    /// PUBREL (or a refused PUBREC): the id is free again. Returns whether
    /// it was known, and its removal.
    pub fn release_incoming(&mut self, id: u16) -> (bool, Option<Op>) {
        let known = match self.incoming_qos2.binary_search(&id) {
            Ok(at) => {
                self.incoming_qos2.remove(at);
                true
            }
            Err(_) => false,
        };
        let op = (known && self.durable && self.is_persistent())
            .then(|| Op::IncomingRemove(Arc::clone(&self.client_id), id));
        (known, op)
    }
}
