//! Outgoing QoS 1 and 2 messages awaiting acknowledgement, and packet ids.
//!
//! Kept in the session so that a client reconnecting with a persistent
//! session gets its unacknowledged PUBLISHes again (with DUP) and its
//! pending PUBRELs [MQTT-4.4.0-1].

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

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

/// Hashes a packet id by one multiplication. The broker chooses its
/// outgoing packet ids (a peer cannot pick colliding keys), and SipHash or
/// a B-tree cost hundreds of instructions per PUBLISH sent and per PUBACK
/// (PROFILING.md section 6, session 11).
#[derive(Debug, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u16(&mut self, id: u16) {
        self.0 = (u64::from(id) ^ self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Outgoing inflight window, in packet id order of sending.
#[derive(Debug, Default)]
pub struct Inflight {
    /// By packet id; `order` keeps the sending order for retransmission.
    entries: HashMap<u16, OutFlight, BuildHasherDefault<IdHasher>>,
    /// Acknowledgements mostly come in sending order: the id acknowledged
    /// is then at the front ([`Inflight::remove`]).
    order: VecDeque<u16>,
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
            None => self.order.push_back(id),
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
        // In-order acknowledgements find their id first; others search
        // from the front (ids are unique in `order`).
        if self.order.front() == Some(&id) {
            self.order.pop_front();
        } else if let Some(at) = self.order.iter().position(|&other| other == id) {
            self.order.remove(at);
        }
        if self.entries.is_empty() && self.entries.capacity() > 0 {
            // An empty window holds no table (as the B-tree it replaced):
            // a device that got a burst keeps no memory for it.
            self.entries = HashMap::default();
        }
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_acknowledgements_keep_the_sending_order_of_the_rest() {
        let mut inflight = Inflight::default();
        for id in [5, 3, 9, 1] {
            inflight.insert(id, OutFlight::Release(None));
        }
        assert!(inflight.remove(9).is_some());
        assert!(inflight.remove(5).is_some());
        assert!(inflight.remove(5).is_none());
        inflight.insert(7, OutFlight::Release(None));
        let order: Vec<u16> = inflight.in_order().map(|(id, _)| id).collect();
        assert_eq!(order, [3, 1, 7]);
        // A repeated insert replaces the entry and keeps its place.
        inflight.insert(3, OutFlight::Release(Some(1)));
        let order: Vec<u16> = inflight.in_order().map(|(id, _)| id).collect();
        assert_eq!(order, [3, 1, 7]);
        assert_eq!(inflight.len(), 3);
    }

    #[test]
    fn an_emptied_window_frees_its_table() {
        let mut inflight = Inflight::default();
        for id in 1..=40 {
            inflight.insert(id, OutFlight::Release(None));
        }
        for id in 1..=40 {
            assert!(inflight.remove(id).is_some());
        }
        assert!(inflight.is_empty());
        assert_eq!(inflight.entries.capacity(), 0);
        assert_eq!(inflight.allocate_id(), Some(1));
    }
}
