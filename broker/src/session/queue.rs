//! The bounded queue of messages waiting to be sent to one client.
//!
//! Bounds come from `limits.max_queued_messages` and `max_queued_bytes`.
//! Drop policy when full: the new message is dropped (the oldest queued
//! messages keep their place), as Mosquitto does; every drop is counted so
//! that it shows in `$SYS` and logs.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::codec::QoS;
use crate::message::Message;

/// Limits of one session queue; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
}

/// A message as it will be delivered to one subscriber.
#[derive(Debug, Clone)]
pub struct Queued {
    pub message: Arc<Message>,
    /// min(published QoS, granted QoS).
    pub qos: QoS,
    /// RETAIN flag for this delivery.
    pub retain: bool,
    /// 5.0 subscription identifiers of the matching subscriptions.
    pub subscription_ids: Vec<u32>,
    /// Key of this delivery in the durable store, when it is stored
    /// (QoS 1/2 for a persistent session).
    pub seq: Option<u64>,
}

/// Whether a message found room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueOutcome {
    Queued,
    Dropped,
}

/// FIFO with message and byte bounds.
#[derive(Debug)]
pub struct Queue {
    items: VecDeque<Queued>,
    bytes: usize,
    limits: QueueLimits,
    /// Messages dropped because the queue was full, since the session began.
    pub dropped: u64,
}

impl Queue {
    pub fn new(limits: QueueLimits) -> Queue {
        Queue {
            items: VecDeque::new(),
            bytes: 0,
            limits,
            dropped: 0,
        }
    }

    /// Appends unless a bound would be exceeded.
    pub fn push(&mut self, item: Queued) -> EnqueueOutcome {
        let size = item.message.size();
        let count_full =
            self.limits.max_messages != 0 && self.items.len() >= self.limits.max_messages;
        let bytes_full = self.limits.max_bytes != 0
            && !self.items.is_empty()
            && self.bytes + size > self.limits.max_bytes;
        if count_full || bytes_full {
            self.dropped += 1;
            return EnqueueOutcome::Dropped;
        }
        self.bytes += size;
        self.items.push_back(item);
        EnqueueOutcome::Queued
    }

    /// Takes the oldest message.
    pub fn pop(&mut self) -> Option<Queued> {
        let item = self.items.pop_front()?;
        self.bytes -= item.message.size();
        Some(item)
    }

    /// Appends a delivery read back from the store, whatever the bounds
    /// (they held when it was queued).
    pub fn push_restored(&mut self, item: Queued) {
        self.bytes += item.message.size();
        self.items.push_back(item);
    }

    /// Puts a message back at the front (it could not be sent yet).
    pub fn push_front(&mut self, item: Queued) {
        self.bytes += item.message.size();
        self.items.push_front(item);
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Empties the queue (session discarded).
    pub fn clear(&mut self) {
        self.items.clear();
        self.bytes = 0;
    }

    /// Payload and topic bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn item(payload: &'static [u8]) -> Queued {
        Queued {
            message: Arc::new(Message {
                topic: Arc::from("t"),
                payload: Bytes::from_static(payload),
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: Default::default(),
                expires_at: None,
                publisher: None,
            }),
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: Vec::new(),
            seq: None,
        }
    }

    #[test]
    fn drops_newest_when_count_bound_reached() {
        let mut q = Queue::new(QueueLimits {
            max_messages: 2,
            max_bytes: 0,
        });
        assert_eq!(q.push(item(b"1")), EnqueueOutcome::Queued);
        assert_eq!(q.push(item(b"2")), EnqueueOutcome::Queued);
        assert_eq!(q.push(item(b"3")), EnqueueOutcome::Dropped);
        assert_eq!(q.dropped, 1);
        assert_eq!(&q.pop().unwrap().message.payload[..], b"1");
    }

    #[test]
    fn byte_bound_counts_topic_and_payload_and_admits_one_oversized() {
        let mut q = Queue::new(QueueLimits {
            max_messages: 0,
            max_bytes: 4,
        });
        // An empty queue always takes one message, so a large message can
        // still reach a client whose queue is otherwise idle.
        assert_eq!(q.push(item(b"123456")), EnqueueOutcome::Queued);
        assert_eq!(q.push(item(b"1")), EnqueueOutcome::Dropped);
        q.pop();
        assert_eq!(q.bytes(), 0);
        assert_eq!(q.push(item(b"12")), EnqueueOutcome::Queued);
        assert_eq!(q.bytes(), 3);
    }
}
