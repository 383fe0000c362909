//! The bounded queue of messages waiting to be sent to one client.
//!
//! Bounds come from `limits.max_queued_messages` and `max_queued_bytes`.
//! Publishers of an attached client are held back earlier, from its press
//! mark on: [`PRESS_AT`] messages, or the count bound when it is lower, or
//! the byte bound (decision 0189). A message for an attached client is
//! still taken (past the mark, and past the bound) if the queue has been
//! at its mark for less than `limits.queue_full_wait_ms`: the publisher is
//! then held back until the queue is under the mark again (see
//! `connection`), so a subscriber that keeps reading loses nothing and its
//! queue stays short (latency, cache). Otherwise (offline, or at the mark
//! for longer: a stalled reader) messages are taken up to the bounds, then
//! the new message is dropped and the oldest queued messages keep their
//! place, as Mosquitto does; every drop is counted so that it shows in
//! `$SYS` and logs. How far past the mark a queue can go is bounded by
//! what each publisher had already read when it was told to wait.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::message::Queued;

/// Most messages queued for an attached reader before its publishers are
/// held back, whatever `max_queued_messages` (when that is lower, it is
/// the mark): ten times the bench's inflight window of 100, enough that a
/// reader never finds its queue empty while publishers refill it, few
/// enough that a message waits milliseconds in it, not a hundred
/// (decision 0189). A queue without a count bound has no mark.
pub const PRESS_AT: usize = 1024;

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
    /// Since when the queue has been at its press mark (or a bound)
    /// without getting back under it.
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
        let item = if attached && self.is_pressing() {
            item
        } else {
            match self.try_push(item) {
                Ok(()) => return EnqueueOutcome::Queued,
                Err(item) => item,
            }
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
        // Offline, or a stalled reader: the bounds, not the mark.
        match self.try_push(item) {
            Ok(()) => EnqueueOutcome::Queued,
            Err(_) => {
                self.dropped += 1;
                EnqueueOutcome::Dropped
            }
        }
    }

    /// The queue length from which publishers of an attached reader are
    /// held back ([`PRESS_AT`]); 0 without a count bound.
    fn press_mark(&self) -> usize {
        self.limits.max_messages.min(PRESS_AT)
    }

    /// True from the press mark on, or while the byte bound is reached:
    /// publishers of an attached reader wait.
    pub fn is_pressing(&self) -> bool {
        let mark = self.press_mark();
        (mark != 0 && self.items.len() >= mark)
            || (self.limits.max_bytes != 0 && self.bytes >= self.limits.max_bytes)
    }

    /// True when the queue has been at its press mark for `full_wait` or
    /// longer: its reader is not keeping up, publishers stop waiting for
    /// it.
    pub fn is_stalled(&self, now: Instant) -> bool {
        self.full_since
            .is_some_and(|since| now.duration_since(since) >= self.limits.full_wait)
    }

    /// A publisher waits for room: [`Queue::settle`] will say so.
    pub fn note_waiter(&mut self) {
        self.pressured = true;
    }

    /// Called after the reader took messages: when the queue is under its
    /// press mark again it no longer holds publishers, and the return value
    /// says whether those waiting for room should be woken.
    pub fn settle(&mut self) -> bool {
        if self.is_pressing() {
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
        assert!(q.is_pressing());
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

    #[test]
    fn a_large_queue_presses_at_its_mark_and_fills_to_its_bound_only_when_stalled() {
        let bound = PRESS_AT + 10;
        let mut q = Queue::new(QueueLimits {
            max_messages: bound,
            max_bytes: 0,
            full_wait: Duration::from_millis(100),
            offline_qos0: false,
        });
        for _ in 0..PRESS_AT {
            assert_eq!(q.push_or_press(item(b"1"), true), EnqueueOutcome::Queued);
        }
        // At the mark, under the bound: taken, and the publisher waits.
        assert!(q.is_pressing());
        assert_eq!(q.push_or_press(item(b"2"), true), EnqueueOutcome::Pressured);
        // An offline session (or a retained delivery) fills to the bound.
        assert_eq!(q.push(item(b"3")), EnqueueOutcome::Queued);
        // The reader takes messages: still at the mark, nobody is woken;
        // under it, publishers are woken once.
        q.pop();
        assert!(!q.settle());
        q.pop();
        q.pop();
        assert!(q.settle());
        assert!(!q.settle());
        // A reader that stops: after the wait, messages fill the bound,
        // then are dropped.
        for _ in 0..3 {
            q.push_or_press(item(b"4"), true);
        }
        std::thread::sleep(Duration::from_millis(150));
        while q.len() < bound {
            assert_eq!(q.push_or_press(item(b"5"), true), EnqueueOutcome::Queued);
        }
        assert_eq!(q.push_or_press(item(b"6"), true), EnqueueOutcome::Dropped);
        assert_eq!(q.dropped, 1);
    }

    #[test]
    fn a_queue_without_a_count_bound_has_no_mark() {
        let mut q = Queue::new(QueueLimits {
            max_messages: 0,
            max_bytes: 0,
            full_wait: Duration::from_millis(100),
            offline_qos0: false,
        });
        for _ in 0..2 * PRESS_AT {
            assert_eq!(q.push_or_press(item(b"1"), true), EnqueueOutcome::Queued);
        }
        assert!(!q.is_pressing());
    }
}
