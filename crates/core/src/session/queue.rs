//! The bounded queue of messages waiting to be sent to one client.
//!
//! Bounds come from `limits.max_queued_messages` and `max_queued_bytes`.
//! When full, a message for an attached client is still taken (past the
//! bound) if the queue has been full for less than
//! `limits.queue_full_wait_ms`: the publisher is then held back until
//! there is room (see `connection`), so a subscriber that keeps reading
//! loses nothing. Otherwise (offline, or full for longer: a stalled
//! reader) the new message is dropped and the oldest queued messages keep
//! their place, as Mosquitto does; every drop is counted so that it shows
//! in `$SYS` and logs. How far past the bound a queue can go is bounded by
//! what each publisher had already read when it was told to wait.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::message::Queued;

/// Limits of one session queue; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
    /// How long a full queue may hold publishers back before its reader
    /// counts as stalled; zero: never, drop at once.
    pub full_wait: Duration,
    /// Keep QoS 0 messages for the session while it is offline
    /// (`mqtt.queue_qos0_messages`, Mosquitto's `queue_qos0_messages`).
    pub offline_qos0: bool,
}

/// Whether a message found room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueOutcome {
    Queued,
    /// Taken past a full bound: the publisher must wait for room.
    Pressured,
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
    /// Since when the queue has been full without getting back under its
    /// bounds.
    full_since: Option<Instant>,
    /// A message was taken past the bounds: publishers wait for room.
    pressured: bool,
}

impl Queue {
    pub fn new(limits: QueueLimits) -> Queue {
        Queue {
            items: VecDeque::new(),
            bytes: 0,
            limits,
            dropped: 0,
            full_since: None,
            pressured: false,
        }
    }

    /// Replaces the bounds (a bridge's own `max_queued_messages`); what is
    /// queued already stays.
    pub fn set_limits(&mut self, limits: QueueLimits) {
        self.limits = limits;
    }

    /// Whether QoS 0 messages are kept while the session is offline.
    pub fn keeps_offline_qos0(&self) -> bool {
        self.limits.offline_qos0
    }

    /// Appends unless a bound would be exceeded.
    pub fn push(&mut self, item: Queued) -> EnqueueOutcome {
        match self.try_push(item) {
            Ok(()) => EnqueueOutcome::Queued,
            Err(_) => {
                self.dropped += 1;
                EnqueueOutcome::Dropped
            }
        }
    }

    /// Appends within the bounds, or hands the item back.
    fn try_push(&mut self, item: Queued) -> Result<(), Queued> {
        let size = item.message.size();
        let count_full =
            self.limits.max_messages != 0 && self.items.len() >= self.limits.max_messages;
        let bytes_full = self.limits.max_bytes != 0
            && !self.items.is_empty()
            && self.bytes + size > self.limits.max_bytes;
        if count_full || bytes_full {
            return Err(item);
        }
        self.bytes += size;
        self.items.push_back(item);
        Ok(())
    }

    /// Appends; when full, takes a message for an attached client past the
    /// bounds unless the queue has been full for longer than
    /// `full_wait` (module doc), else drops it.
    pub fn push_or_press(&mut self, item: Queued, attached: bool) -> EnqueueOutcome {
        let item = match self.try_push(item) {
            Ok(()) => return EnqueueOutcome::Queued,
            Err(item) => item,
        };
        let now = Instant::now();
        let since = *self.full_since.get_or_insert(now);
        let wait = self.limits.full_wait;
        if attached && now.duration_since(since) < wait {
            self.bytes += item.message.size();
            self.items.push_back(item);
            self.pressured = true;
            return EnqueueOutcome::Pressured;
        }
        self.dropped += 1;
        EnqueueOutcome::Dropped
    }

    /// True while a count or byte bound is reached.
    pub fn is_full(&self) -> bool {
        (self.limits.max_messages != 0 && self.items.len() >= self.limits.max_messages)
            || (self.limits.max_bytes != 0 && self.bytes >= self.limits.max_bytes)
    }

    /// True when the queue has been full for `full_wait` or longer: its
    /// reader is not keeping up, publishers stop waiting for it.
    pub fn is_stalled(&self, now: Instant) -> bool {
        self.full_since
            .is_some_and(|since| now.duration_since(since) >= self.limits.full_wait)
    }

    /// A publisher waits for room: [`Queue::settle`] will say so.
    pub fn note_waiter(&mut self) {
        self.pressured = true;
    }

    /// Called after the reader took messages: when the queue is under its
    /// bounds again it is no longer full, and the return value says whether
    /// publishers waiting for room should be woken.
    pub fn settle(&mut self) -> bool {
        if self.is_full() {
            return false;
        }
        self.full_since = None;
        std::mem::take(&mut self.pressured)
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
    use crate::message::Message;
    use bytes::Bytes;
    use fleetmq_codec::QoS;
    use std::sync::Arc;

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
            full_wait: Duration::ZERO,
            offline_qos0: false,
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
            full_wait: Duration::ZERO,
            offline_qos0: false,
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

    fn qos0(payload: &'static [u8]) -> Queued {
        Queued {
            qos: QoS::AtMostOnce,
            ..item(payload)
        }
    }

    #[test]
    fn a_full_queue_takes_messages_for_an_attached_reader_until_it_stalls() {
        let mut q = Queue::new(QueueLimits {
            max_messages: 1,
            max_bytes: 0,
            full_wait: Duration::from_millis(200),
            offline_qos0: false,
        });
        assert_eq!(q.push_or_press(item(b"1"), true), EnqueueOutcome::Queued);
        assert_eq!(q.push_or_press(item(b"2"), true), EnqueueOutcome::Pressured);
        assert_eq!(q.push_or_press(qos0(b"3"), true), EnqueueOutcome::Pressured);
        // An offline session never goes past the bound.
        assert_eq!(q.push_or_press(item(b"4"), false), EnqueueOutcome::Dropped);
        assert_eq!(q.len(), 3);
        assert!(q.is_full());
        assert!(!q.is_stalled(Instant::now()));
        // The reader takes two: still at the bound, nobody is woken.
        q.pop();
        q.pop();
        assert!(!q.settle());
        // It takes the last: room again, publishers are woken once.
        q.pop();
        assert!(q.settle());
        assert!(!q.settle());
        // Full for longer than the wait: stalled, new messages dropped.
        assert_eq!(q.push_or_press(item(b"5"), true), EnqueueOutcome::Queued);
        assert_eq!(q.push_or_press(item(b"6"), true), EnqueueOutcome::Pressured);
        std::thread::sleep(Duration::from_millis(250));
        assert!(q.is_stalled(Instant::now()));
        assert_eq!(q.push_or_press(item(b"7"), true), EnqueueOutcome::Dropped);
        assert_eq!(q.dropped, 2);
        // Drained under the bound: a fresh episode may hold publishers again.
        q.pop();
        q.pop();
        assert!(q.settle());
        assert!(!q.is_stalled(Instant::now()));
        assert_eq!(q.push_or_press(item(b"8"), true), EnqueueOutcome::Queued);
        assert_eq!(q.push_or_press(item(b"9"), true), EnqueueOutcome::Pressured);
    }

    #[test]
    fn a_zero_wait_drops_at_once_like_mosquitto() {
        let mut q = Queue::new(QueueLimits {
            max_messages: 1,
            max_bytes: 0,
            full_wait: Duration::ZERO,
            offline_qos0: false,
        });
        assert_eq!(q.push_or_press(item(b"1"), true), EnqueueOutcome::Queued);
        assert_eq!(q.push_or_press(item(b"2"), true), EnqueueOutcome::Dropped);
    }
}
