//! What a Mosquitto persistence file means in fleetmq's terms: retained
//! messages, persistent sessions (expiry, subscriptions) and their queued
//! or in-flight deliveries, checked whole before anything is written.
//!
//! A record fleetmq could not store faithfully (a topic that is not UTF-8,
//! properties that do not decode, an unknown delivery state) is an error
//! naming its chunk and offset: nothing is imported. What Mosquitto itself
//! would drop on loading (expired messages and sessions, references to
//! messages it no longer holds) and what fleetmq cannot carry over is
//! listed in [`Plan::skipped`] with the reason. This module must not touch
//! the store; `import` writes the plan.
//!
//! Owners (decision 0131): a migrated session gets no owner, so the first
//! client that attaches to it claims it, as for sessions fleetmq stored
//! before owners existed (decision 0088). The username in the file is not
//! used: Mosquitto has no certificate kind (with `use_identity_as_username`
//! a certificate's CN is stored as a username, which fleetmq would treat as
//! another principal), and Mosquitto 2.0.11 writes a session without a
//! username with the previous session's username length and stale memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use fleetmq_codec::{self as codec, Packet, ProtocolVersion, QoS, SubscriptionOptions};
use fleetmq_core::message::{Message, Queued};
use fleetmq_core::router::{validate_topic_filter, validate_topic_name, Subscription, TopicLimits};
use fleetmq_core::store::{ItemState, SessionMeta, StoredSubscription};

use super::reader::{BaseMsg, ClientMsg, MosquittoDb, ReadError};

/// Mosquitto's `mosq_ms_*` states that matter for an outgoing message.
mod state {
    pub const PUBLISH_QOS0: u8 = 1;
    pub const PUBLISH_QOS1: u8 = 2;
    pub const WAIT_FOR_PUBACK: u8 = 3;
    pub const PUBLISH_QOS2: u8 = 4;
    pub const WAIT_FOR_PUBREC: u8 = 5;
    pub const RESEND_PUBREL: u8 = 6;
    pub const WAIT_FOR_PUBCOMP: u8 = 9;
    pub const QUEUED: u8 = 11;
}

/// Topics and filters as long as MQTT allows; fleetmq's configured limits
/// apply to what clients send, not to state carried over.
const LIMITS: TopicLimits = TopicLimits {
    max_length: 65_535,
    max_levels: 65_535,
};

/// A persistent session ready to store.
#[derive(Debug)]
pub struct PlannedSession {
    pub client_id: Arc<str>,
    pub meta: SessionMeta,
    /// Deliveries in the order Mosquitto held them.
    pub items: Vec<(Queued, ItemState)>,
}

/// Everything to import, and what is left behind with the reason.
#[derive(Debug, Default)]
pub struct Plan {
    pub retained: Vec<Arc<Message>>,
    pub sessions: Vec<PlannedSession>,
    pub skipped: Vec<String>,
}

fn error(offset: usize, chunk: &'static str, detail: impl Into<String>) -> ReadError {
    ReadError {
        offset,
        chunk,
        detail: detail.into(),
    }
}

fn utf8(
    bytes: &Bytes,
    offset: usize,
    chunk: &'static str,
    what: &str,
) -> Result<Arc<str>, ReadError> {
    std::str::from_utf8(bytes)
        .map(Arc::from)
        .map_err(|_| error(offset, chunk, format!("{what} is not UTF-8")))
}

/// Builds the import from a file's records; `now_secs` is the wall clock
/// (seconds since the epoch) that expiry times are measured against.
pub fn plan(db: &MosquittoDb, now_secs: i64) -> Result<Plan, ReadError> {
    let mut out = Plan::default();
    let now = Instant::now();
    let mut messages = std::collections::HashMap::new();
    for base in &db.base_msgs {
        let message = message(base, now_secs, now)?;
        if messages
            .insert(base.store_id, (base.offset, message))
            .is_some()
        {
            return Err(error(
                base.offset,
                "MSG_STORE chunk",
                format!("message id {} stored twice", base.store_id),
            ));
        }
    }
    for (offset, id) in &db.retained {
        match messages.get(id) {
            Some((_, Some(message))) if message.topic.starts_with('$') => out.skipped.push(format!(
                "retained message on {} (offset {offset}): topics starting with '$' belong to the broker",
                message.topic
            )),
            Some((_, Some(message))) => {
                let mut retained = Message::clone(message);
                retained.retain = true;
                out.retained.push(Arc::new(retained));
            }
            Some((_, None)) => out
                .skipped
                .push(format!("retained message at offset {offset}: expired")),
            None => out.skipped.push(format!(
                "retained message at offset {offset}: message id {id} is not in the file (Mosquitto drops it too)"
            )),
        }
    }
    let mut index = std::collections::HashMap::new();
    for client in &db.clients {
        let chunk = "CLIENT chunk";
        if client.client_id.is_empty() {
            out.skipped.push(format!(
                "session at offset {}: empty client id (Mosquitto ignores it too)",
                client.offset
            ));
            continue;
        }
        let id = utf8(&client.client_id, client.offset, chunk, "the client id")?;
        if index.contains_key(&id) {
            return Err(error(
                client.offset,
                chunk,
                format!("session {id} stored twice"),
            ));
        }
        let interval = client.session_expiry_interval;
        let disconnected_at_ms = if client.session_expiry_time > 0 {
            if client.session_expiry_time <= now_secs {
                out.skipped
                    .push(format!("session {id}: expired before the import"));
                continue;
            }
            let since = client
                .session_expiry_time
                .saturating_sub(i64::from(interval))
                .clamp(0, now_secs);
            since as u64 * 1000
        } else {
            now_secs.max(0) as u64 * 1000
        };
        index.insert(Arc::clone(&id), out.sessions.len());
        out.sessions.push(PlannedSession {
            client_id: id,
            meta: SessionMeta {
                owner: None,
                expiry_interval: interval,
                disconnected_at_ms: Some(disconnected_at_ms),
                subscriptions: Vec::new(),
            },
            items: Vec::new(),
        });
    }
    for sub in &db.subscriptions {
        let chunk = "SUB chunk";
        let id = utf8(&sub.client_id, sub.offset, chunk, "the client id")?;
        let filter = utf8(&sub.topic, sub.offset, chunk, "the topic filter")?;
        validate_topic_filter(&filter, &LIMITS)
            .map_err(|e| error(sub.offset, chunk, format!("topic filter {filter:?}: {e}")))?;
        let Some(&at) = index.get(&id) else {
            out.skipped.push(format!(
                "subscription {filter} of {id} (offset {}): no session of that client in the file",
                sub.offset
            ));
            continue;
        };
        let stored = StoredSubscription::from(&Subscription {
            options: SubscriptionOptions {
                qos: QoS::from_u8(sub.qos).unwrap_or(QoS::AtMostOnce),
                no_local: sub.options & 0x04 != 0,
                retain_as_published: sub.options & 0x08 != 0,
                retain_handling: (sub.options >> 4) & 0x03,
            },
            identifier: (sub.identifier != 0).then_some(sub.identifier),
        });
        let subs = &mut out.sessions[at].meta.subscriptions;
        subs.retain(|(f, _)| **f != *filter);
        subs.push((filter.to_string(), stored));
    }
    for msg in &db.client_msgs {
        let id = utf8(
            &msg.client_id,
            msg.offset,
            "CLIENT_MSG chunk",
            "the client id",
        )?;
        let Some(&at) = index.get(&id) else {
            out.skipped.push(format!(
                "message for {id} (offset {}): no session of that client in the file",
                msg.offset
            ));
            continue;
        };
        if let Some(item) = delivery(msg, &id, &messages, &mut out.skipped)? {
            out.sessions[at].items.push(item);
        }
    }
    Ok(out)
}

/// One client message as a stored delivery, or `None` (with the reason in
/// `skipped`) when fleetmq keeps no such thing.
fn delivery(
    msg: &ClientMsg,
    id: &str,
    messages: &std::collections::HashMap<u64, (usize, Option<Arc<Message>>)>,
    skipped: &mut Vec<String>,
) -> Result<Option<(Queued, ItemState)>, ReadError> {
    let chunk = "CLIENT_MSG chunk";
    let at = msg.offset;
    if msg.direction == 0 {
        skipped.push(format!(
            "incoming QoS {} message from {id} (offset {at}) awaiting PUBREL: Mosquitto had not \
             published it yet and fleetmq publishes on receipt; the client's PUBREL will be answered \
             without it",
            msg.qos
        ));
        return Ok(None);
    }
    let message = match messages.get(&msg.store_id) {
        Some((_, Some(message))) => Arc::clone(message),
        Some((_, None)) => {
            skipped.push(format!("message for {id} (offset {at}): expired"));
            return Ok(None);
        }
        None => {
            skipped.push(format!(
                "message for {id} (offset {at}): message id {} is not in the file (Mosquitto drops it too)",
                msg.store_id
            ));
            return Ok(None);
        }
    };
    if msg.qos == 0 {
        skipped.push(format!(
            "QoS 0 message for {id} on {} (offset {at}): fleetmq keeps QoS 0 deliveries in memory only",
            message.topic
        ));
        return Ok(None);
    }
    let item_state = match msg.state {
        state::QUEUED
        | state::PUBLISH_QOS0
        | state::PUBLISH_QOS1
        | state::PUBLISH_QOS2
        | state::WAIT_FOR_PUBACK => ItemState::Queued,
        state::WAIT_FOR_PUBREC => ItemState::Sent(msg.mid),
        state::RESEND_PUBREL | state::WAIT_FOR_PUBCOMP => ItemState::Released(msg.mid),
        other => {
            return Err(error(
                at,
                chunk,
                format!("outgoing message in state {other}, which Mosquitto does not use for one"),
            ))
        }
    };
    if matches!(item_state, ItemState::Sent(0) | ItemState::Released(0)) {
        return Err(error(
            at,
            chunk,
            "a QoS 2 message in flight with packet id 0",
        ));
    }
    let subscription_ids = subscription_id(&msg.properties)
        .map_err(|detail| error(at, chunk, detail))?
        .into_iter()
        .collect();
    let qos = QoS::from_u8(msg.qos).unwrap_or(QoS::AtLeastOnce);
    Ok(Some((
        Queued {
            message,
            qos,
            retain: msg.retain,
            subscription_ids,
            seq: None,
        },
        item_state,
    )))
}

/// A variable byte integer at the start of `bytes`: (value, its length).
fn varint(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut value = 0u32;
    for (i, byte) in bytes.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The subscription identifier of a client message's properties (the only
/// property Mosquitto stores there).
fn subscription_id(properties: &[u8]) -> Result<Option<u32>, String> {
    if properties.is_empty() {
        return Ok(None);
    }
    let bad = || "the properties do not decode".to_string();
    let (len, at) = varint(properties).ok_or_else(bad)?;
    let body = &properties[at..];
    if body.len() != len as usize {
        return Err(bad());
    }
    match body.split_first() {
        None => Ok(None),
        Some((&0x0B, rest)) => match varint(rest) {
            Some((id, used)) if used == rest.len() && id > 0 => Ok(Some(id)),
            _ => Err(bad()),
        },
        Some((other, _)) => Err(format!("unexpected property 0x{other:02X}")),
    }
}

/// A stored message as fleetmq's [`Message`] (`None` when it has expired),
/// decoded by the codec from the PUBLISH it was, so the checks that guard
/// the wire guard the import.
fn message(base: &BaseMsg, now_secs: i64, now: Instant) -> Result<Option<Arc<Message>>, ReadError> {
    let chunk = "MSG_STORE chunk";
    let at = base.offset;
    let expires_at = if base.expiry_time > 0 {
        let left = base.expiry_time.saturating_sub(now_secs);
        if left <= 0 {
            return Ok(None);
        }
        Some(now + Duration::from_secs(left as u64))
    } else {
        None
    };
    let topic = utf8(&base.topic, at, chunk, "the topic")?;
    validate_topic_name(&topic, &LIMITS)
        .map_err(|e| error(at, chunk, format!("topic {topic:?}: {e}")))?;
    let publisher = if base.source_id.is_empty() {
        None
    } else {
        Some(utf8(
            &base.source_id,
            at,
            chunk,
            "the publisher's client id",
        )?)
    };
    let properties: &[u8] = if base.properties.is_empty() {
        &[0]
    } else {
        &base.properties
    };
    let id_len = if base.qos > 0 { 2 } else { 0 };
    let remaining = 2 + base.topic.len() + id_len + properties.len() + base.payload.len();
    let mut wire = BytesMut::with_capacity(remaining + 5);
    wire.put_u8(0x30 | (base.qos << 1) | u8::from(base.retain));
    let mut left = remaining;
    loop {
        let byte = (left % 128) as u8;
        left /= 128;
        if left == 0 {
            wire.put_u8(byte);
            break;
        }
        wire.put_u8(byte | 0x80);
    }
    wire.put_u16(base.topic.len() as u16);
    wire.put_slice(&base.topic);
    if base.qos > 0 {
        wire.put_u16(1);
    }
    wire.put_slice(properties);
    wire.put_slice(&base.payload);
    let publish = match codec::decode_packet(&mut wire, Some(ProtocolVersion::V5), u32::MAX) {
        Ok(Some(Packet::Publish(publish))) if wire.is_empty() => publish,
        Ok(_) => {
            return Err(error(
                at,
                chunk,
                "the message does not decode as one PUBLISH",
            ))
        }
        Err(e) => {
            return Err(error(
                at,
                chunk,
                format!("the message does not decode: {e}"),
            ))
        }
    };
    let mut properties = publish.properties;
    properties.message_expiry_interval = None;
    properties.topic_alias = None;
    properties.subscription_identifiers.clear();
    Ok(Some(Arc::new(Message {
        topic,
        payload: base.payload.clone(),
        qos: publish.qos,
        retain: base.retain,
        properties,
        expires_at,
        publisher,
    })))
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
