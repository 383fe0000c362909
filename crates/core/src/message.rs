//! One application message as the broker holds it after accepting a PUBLISH.
//!
//! A message is built once per incoming PUBLISH and shared as
//! `Arc<Message>` by the retained store and every session queue that
//! receives it: the payload `Bytes` and the topic `Arc<str>` are never copied
//! per subscriber. Per-subscriber facts (granted QoS, retain flag, packet id,
//! subscription identifiers) live beside the `Arc`, in a [`Queued`]
//! delivery: the session queues it and the store records it, so it is
//! defined here, below both (no session <-> store cycle).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use fleetmq_codec::{PublishProperties, QoS};

/// An accepted application message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The topic name, never empty and never an alias.
    pub topic: Arc<str>,
    pub payload: Bytes,
    /// QoS as published; subscribers receive at most their granted QoS.
    pub qos: QoS,
    /// RETAIN flag as published.
    pub retain: bool,
    /// 5.0 properties to forward (no topic alias, no subscription ids).
    pub properties: PublishProperties,
    /// When the Message Expiry Interval runs out, if one was given.
    pub expires_at: Option<Instant>,
    /// Client id of the publisher, for no-local; `None` for the broker's own
    /// messages ($SYS, wills are attributed to their client).
    pub publisher: Option<Arc<str>>,
}

impl Message {
    /// True once the message expiry interval has elapsed.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// Whole seconds left before expiry (rounded up), for the Message Expiry
    /// Interval forwarded to subscribers [MQTT-3.3.2-6].
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
    }

    /// The deadline for a Message Expiry Interval received now.
    pub fn expiry_deadline(interval_secs: Option<u32>, now: Instant) -> Option<Instant> {
        interval_secs.map(|secs| now + Duration::from_secs(u64::from(secs)))
    }

    /// Payload size in bytes, the unit of the per-session byte quota.
    pub fn size(&self) -> usize {
        self.payload.len() + self.topic.len()
    }
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
