//! Deliveries held back from the attached connection because its read
//! rights do not cover them, kept for a later connection of the session's
//! owner that may read them.
//!
//! A denied delivery is neither sent nor forgotten (it stays in the store
//! too): the connection that drained it may hold another certificate of
//! the same owner (other groups), or the rules may change back. On the
//! next attach the held deliveries go back to the front of the queue and
//! are checked again. The same bounds as the queue
//! (`limits.max_queued_messages`, `max_queued_bytes`) keep a subscription
//! the client may no longer read from growing it without end: past them
//! the oldest held delivery is given up.

use std::collections::VecDeque;

use super::queue::{Queue, QueueLimits};
use crate::message::Queued;

/// Held deliveries, oldest first.
#[derive(Debug)]
pub struct Held {
    items: VecDeque<Queued>,
    bytes: usize,
    limits: QueueLimits,
}

impl Held {
    pub fn new(limits: QueueLimits) -> Held {
        Held {
            items: VecDeque::new(),
            bytes: 0,
            limits,
        }
    }

    /// Keeps `item`; returns the deliveries given up to stay in bounds
    /// (oldest first), which the caller forgets in the store.
    pub fn hold(&mut self, item: Queued) -> Vec<Queued> {
        self.bytes += item.message.size();
        self.items.push_back(item);
        let mut given_up = Vec::new();
        while self.items.len() > 1 && self.over_bounds() {
            let Some(oldest) = self.items.pop_front() else {
                break;
            };
            self.bytes -= oldest.message.size();
            given_up.push(oldest);
        }
        given_up
    }

    fn over_bounds(&self) -> bool {
        (self.limits.max_messages != 0 && self.items.len() > self.limits.max_messages)
            || (self.limits.max_bytes != 0 && self.bytes > self.limits.max_bytes)
    }

    /// Puts every held delivery back at the front of `queue`, in order
    /// (a new connection attached: its rights are checked again).
    pub fn release_into(&mut self, queue: &mut Queue) {
        while let Some(item) = self.items.pop_back() {
            queue.push_front(item);
        }
        self.bytes = 0;
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Drops everything (session discarded).
    pub fn clear(&mut self) {
        self.items.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::message::Message;
    use fleetmq_codec::QoS;

    fn item(n: u8) -> Queued {
        Queued {
            message: Arc::new(Message {
                topic: Arc::from("t"),
                payload: Bytes::from(vec![n]),
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: Default::default(),
                expires_at: None,
                publisher: None,
            }),
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: Vec::new(),
            seq: Some(u64::from(n)),
        }
    }

    #[test]
    fn held_items_go_back_in_front_of_the_queue_in_order_and_stay_bounded() {
        let limits = QueueLimits {
            max_messages: 2,
            max_bytes: 0,
            full_wait: Duration::ZERO,
            offline_qos0: false,
        };
        let mut held = Held::new(limits);
        assert!(held.hold(item(1)).is_empty());
        assert!(held.hold(item(2)).is_empty());
        let given_up = held.hold(item(3));
        assert_eq!(given_up.len(), 1);
        assert_eq!(given_up[0].seq, Some(1));
        let mut queue = Queue::new(limits);
        queue.push(item(4));
        held.release_into(&mut queue);
        assert!(held.is_empty());
        let order: Vec<Option<u64>> = std::iter::from_fn(|| queue.pop()).map(|i| i.seq).collect();
        assert_eq!(order, [Some(2), Some(3), Some(4)]);
    }
}
