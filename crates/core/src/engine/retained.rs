//! The broker's retained messages under their caps
//! (`limits.max_retained_messages`, `limits.max_retained_bytes`).
//!
//! Wraps the router's [`DefaultRetained`] (which knows nothing of messages)
//! with the byte count the caps need. Policy when full: a retained PUBLISH
//! to a topic that holds no retained message yet is not retained (it is
//! still delivered to current subscribers); replacing a topic's message
//! works while the byte cap allows the difference, and clearing always
//! works, so a full store can always be emptied. `$SYS/...` values are the
//! broker's own, a fixed set, and are not counted against the caps.

use std::sync::Arc;

use crate::message::Message;
use crate::router::{DefaultRetained, RetainedIndex};

/// Why a retained message was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetainRefused {
    /// `max_retained_messages` topics already hold a message.
    Count,
    /// Storing it would exceed `max_retained_bytes`.
    Bytes,
}

/// Retained messages with their total size.
#[derive(Debug, Default)]
pub struct Retained {
    store: DefaultRetained<Arc<Message>>,
    /// Stored messages outside `$SYS/`: what `max_messages` bounds.
    counted: usize,
    /// Sum of [`Message::size`] over those messages.
    bytes: usize,
    /// 0: no limit.
    max_messages: usize,
    /// 0: no limit.
    max_bytes: usize,
}

fn is_sys(topic: &str) -> bool {
    topic.starts_with("$SYS/")
}

impl Retained {
    pub fn new(max_messages: usize, max_bytes: usize) -> Retained {
        Retained {
            max_messages,
            max_bytes,
            ..Retained::default()
        }
    }

    /// Stores `message` as its topic's retained message, within the caps.
    pub fn set(&mut self, message: Arc<Message>) -> Result<(), RetainRefused> {
        if !is_sys(&message.topic) {
            let previous = self.store.get(&message.topic).map(|m| m.size());
            if previous.is_none() && self.max_messages != 0 && self.counted >= self.max_messages {
                return Err(RetainRefused::Count);
            }
            let after = self.bytes - previous.unwrap_or(0) + message.size();
            if self.max_bytes != 0 && after > self.max_bytes {
                return Err(RetainRefused::Bytes);
            }
        }
        self.set_restored(message);
        Ok(())
    }

    /// Stores `message` whatever the caps: a message read back from the
    /// durable store (the caps held when it was retained, or were raised
    /// since), or one [`Retained::set`] admitted.
    pub fn set_restored(&mut self, message: Arc<Message>) {
        let topic = Arc::clone(&message.topic);
        let size = message.size();
        let previous = self.store.set(&topic, message);
        if !is_sys(&topic) {
            match previous {
                Some(previous) => self.bytes -= previous.size(),
                None => self.counted += 1,
            }
            self.bytes += size;
        }
    }

    /// Clears `topic`; returns the message it held.
    pub fn remove(&mut self, topic: &str) -> Option<Arc<Message>> {
        let removed = self.store.remove(topic)?;
        if !is_sys(topic) {
            self.counted -= 1;
            self.bytes -= removed.size();
        }
        Some(removed)
    }

    /// Appends the messages whose topics match the plain `filter`.
    pub fn matching(&self, filter: &str, out: &mut Vec<Arc<Message>>) {
        self.store.matching(filter, out);
    }

    /// Keeps only the messages for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Message) -> bool) {
        let (mut freed, mut dropped) = (0, 0);
        self.store.retain(|topic, message| {
            let kept = keep(message);
            if !kept && !is_sys(topic) {
                freed += message.size();
                dropped += 1;
            }
            kept
        });
        self.bytes -= freed;
        self.counted -= dropped;
    }

    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Topic and payload bytes held outside `$SYS/`.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use fleetmq_codec::QoS;

    fn message(topic: &str, payload: &[u8]) -> Arc<Message> {
        Arc::new(Message {
            topic: Arc::from(topic),
            payload: Bytes::copy_from_slice(payload),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: Default::default(),
            expires_at: None,
            publisher: None,
        })
    }

    #[test]
    fn count_cap_refuses_new_topics_but_allows_replacing_and_clearing() {
        let mut retained = Retained::new(2, 0);
        retained.set(message("a", b"1")).unwrap();
        retained.set(message("b", b"1")).unwrap();
        assert_eq!(retained.set(message("c", b"1")), Err(RetainRefused::Count));
        retained.set(message("a", b"22")).unwrap();
        assert_eq!(retained.bytes(), 2 + 3);
        assert!(retained.remove("b").is_some());
        retained.set(message("c", b"1")).unwrap();
        assert_eq!(retained.len(), 2);
    }

    #[test]
    fn byte_cap_counts_the_difference_of_a_replacement() {
        let mut retained = Retained::new(0, 10);
        retained.set(message("a", b"1234")).unwrap(); // 5 bytes
        assert_eq!(
            retained.set(message("b", b"123456")),
            Err(RetainRefused::Bytes)
        );
        retained.set(message("a", b"12345678")).unwrap(); // 9 bytes
        assert_eq!(retained.bytes(), 9);
        assert_eq!(
            retained.set(message("a", b"123456789X")),
            Err(RetainRefused::Bytes)
        );
        retained.retain(|_| false);
        assert_eq!((retained.len(), retained.bytes()), (0, 0));
    }

    #[test]
    fn sys_topics_are_not_capped() {
        let mut retained = Retained::new(1, 4);
        retained
            .set(message("$SYS/broker/uptime", b"12345 s"))
            .unwrap();
        retained.set(message("a", b"1")).unwrap();
        assert_eq!(retained.len(), 2);
    }
}
