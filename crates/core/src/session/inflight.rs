//! Outgoing QoS 1 and 2 messages awaiting acknowledgement, and packet ids.
//!
//! Kept in the session so that a client reconnecting with a persistent
//! session gets its unacknowledged PUBLISHes again (with DUP) and its
//! pending PUBRELs [MQTT-4.4.0-1].

use std::collections::BTreeMap;

use crate::message::Queued;

/// The state of one outgoing packet id.
#[derive(Debug, Clone)]
pub enum OutFlight {
    /// PUBLISH sent (QoS 1 awaiting PUBACK, QoS 2 awaiting PUBREC).
    Publish(Queued),
    /// PUBREL sent, awaiting PUBCOMP; the store key of the delivery.
    Release(Option<u64>),
}

/// What a PUBREC found.
#[derive(Debug)]
pub enum Released {
    /// The QoS 2 PUBLISH it acknowledges; now awaiting PUBCOMP.
    Published(Queued),
    /// PUBREL was already sent (a repeated PUBREC).
    Again,
    /// No such packet id.
    Unknown,
}

/// Outgoing inflight window, in packet id order of sending.
#[derive(Debug, Default)]
pub struct Inflight {
    /// By packet id; `order` keeps the sending order for retransmission.
    entries: BTreeMap<u16, OutFlight>,
    order: Vec<u16>,
    next_id: u16,
    /// Payload bytes of the PUBLISHes in flight (`limits.max_inflight_bytes`).
    bytes: usize,
}

/// The payload bytes an entry holds in flight.
fn payload_bytes(entry: &OutFlight) -> usize {
    match entry {
        OutFlight::Publish(item) => item.message.payload.len(),
        OutFlight::Release(_) => 0,
    }
}

impl Inflight {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Payload bytes of the PUBLISHes in flight.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// A packet id not in use, or `None` when all 65,535 are taken.
    pub fn allocate_id(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            self.next_id = self.next_id.wrapping_add(1);
            if self.next_id == 0 {
                self.next_id = 1;
            }
            if !self.entries.contains_key(&self.next_id) {
                return Some(self.next_id);
            }
        }
        None
    }

    /// Records a PUBLISH sent with `id`.
    pub fn insert(&mut self, id: u16, entry: OutFlight) {
        self.bytes += payload_bytes(&entry);
        match self.entries.insert(id, entry) {
            None => self.order.push(id),
            Some(old) => self.bytes = self.bytes.saturating_sub(payload_bytes(&old)),
        }
    }

    pub fn get(&self, id: u16) -> Option<&OutFlight> {
        self.entries.get(&id)
    }

    /// PUBREC received: the message is delivered, the release begins.
    pub fn mark_released(&mut self, id: u16) -> Released {
        let Some(entry) = self.entries.get_mut(&id) else {
            return Released::Unknown;
        };
        let seq = match entry {
            OutFlight::Release(_) => return Released::Again,
            OutFlight::Publish(item) => item.seq,
        };
        match std::mem::replace(entry, OutFlight::Release(seq)) {
            OutFlight::Publish(item) => {
                self.bytes = self.bytes.saturating_sub(item.message.payload.len());
                Released::Published(item)
            }
            OutFlight::Release(_) => Released::Again,
        }
    }

    /// PUBACK/PUBCOMP received (or a failed PUBREC): the id is free.
    pub fn remove(&mut self, id: u16) -> Option<OutFlight> {
        let removed = self.entries.remove(&id)?;
        self.bytes = self.bytes.saturating_sub(payload_bytes(&removed));
        self.order.retain(|&other| other != id);
        Some(removed)
    }

    /// Entries in the order they were first sent, for retransmission.
    pub fn in_order(&self) -> impl Iterator<Item = (u16, &OutFlight)> {
        self.order
            .iter()
            .filter_map(|id| self.entries.get(id).map(|entry| (*id, entry)))
    }

    pub fn clear(&mut self) {
        self.bytes = 0;
        self.entries.clear();
        self.order.clear();
    }
}
