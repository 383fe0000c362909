//! The byte layout of stored records.
//!
//! A message is stored as a small header (format version, absolute expiry,
//! publisher) followed by the message as an MQTT 5.0 PUBLISH packet, so the
//! codec that guards the wire also guards the disk: a damaged record fails
//! to decode and is reported, never half-read. Session metadata is JSON.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use crate::auth::SessionOwner;
use crate::message::Message;
use crate::message::Queued;
use crate::router::Subscription;
use fleetmq_codec::{self as codec, Packet, ProtocolVersion, Publish, QoS, SubscriptionOptions};

/// Layout version of message and item records.
const FORMAT: u8 = 1;

/// Why a stored record could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RecordError(pub String);

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A monotonic deadline as wall-clock milliseconds (0: none).
fn instant_to_ms(at: Option<Instant>) -> u64 {
    match at {
        None => 0,
        Some(at) => {
            let now = Instant::now();
            let wall = now_ms();
            if at >= now {
                wall + at.duration_since(now).as_millis() as u64
            } else {
                wall.saturating_sub(now.duration_since(at).as_millis() as u64)
            }
        }
    }
}

/// Wall-clock milliseconds back to a monotonic deadline.
fn ms_to_instant(ms: u64) -> Option<Instant> {
    if ms == 0 {
        return None;
    }
    let now = Instant::now();
    let wall = now_ms();
    Some(if ms >= wall {
        now + Duration::from_millis(ms - wall)
    } else {
        now.checked_sub(Duration::from_millis(wall - ms))
            .unwrap_or(now)
    })
}

/// Appends a message record.
pub fn put_message(out: &mut BytesMut, message: &Message) -> Result<(), RecordError> {
    out.put_u8(FORMAT);
    out.put_u64(instant_to_ms(message.expires_at));
    let publisher = message.publisher.as_deref().unwrap_or("");
    let len =
        u16::try_from(publisher.len()).map_err(|_| RecordError("publisher id too long".into()))?;
    out.put_u16(len);
    out.put_slice(publisher.as_bytes());
    let packet = Packet::Publish(Publish {
        dup: false,
        qos: message.qos,
        retain: message.retain,
        topic: Arc::clone(&message.topic),
        packet_id: (message.qos != QoS::AtMostOnce).then_some(1),
        payload: message.payload.clone(),
        properties: message.properties.clone(),
    });
    codec::encode_packet(&packet, ProtocolVersion::V5, out).map_err(|e| RecordError(e.to_string()))
}

/// Reads a message record.
pub fn get_message(bytes: &mut BytesMut) -> Result<Message, RecordError> {
    let short = || RecordError("record truncated".into());
    if bytes.remaining() < 11 {
        return Err(short());
    }
    let format = bytes.get_u8();
    if format != FORMAT {
        return Err(RecordError(format!("unknown record format {format}")));
    }
    let expires_ms = bytes.get_u64();
    let len = usize::from(bytes.get_u16());
    if bytes.remaining() < len {
        return Err(short());
    }
    let publisher = bytes.split_to(len);
    let publisher = std::str::from_utf8(&publisher)
        .map_err(|_| RecordError("publisher id is not UTF-8".into()))?;
    match codec::decode_packet(bytes, Some(ProtocolVersion::V5), u32::MAX) {
        Ok(Some(Packet::Publish(publish))) => Ok(Message {
            topic: publish.topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            properties: publish.properties,
            expires_at: ms_to_instant(expires_ms),
            publisher: (!publisher.is_empty()).then(|| Arc::from(publisher)),
        }),
        Ok(_) => Err(RecordError("record holds no PUBLISH".into())),
        Err(error) => Err(RecordError(format!(
            "stored message does not decode: {error}"
        ))),
    }
}

/// Where a stored delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemState {
    /// Not sent yet.
    Queued,
    /// QoS 2 PUBLISH sent with this packet id, no PUBREC yet.
    Sent(u16),
    /// PUBREC received for this packet id, PUBREL sent.
    Released(u16),
}

/// Appends a delivery record: its per-subscriber facts, then the message.
pub fn put_item(out: &mut BytesMut, item: &Queued, state: ItemState) -> Result<(), RecordError> {
    out.put_u8(FORMAT);
    out.put_u8(item.qos as u8);
    out.put_u8(u8::from(item.retain));
    let (tag, packet_id) = match state {
        ItemState::Queued => (0, 0),
        ItemState::Sent(id) => (1, id),
        ItemState::Released(id) => (2, id),
    };
    out.put_u8(tag);
    out.put_u16(packet_id);
    let ids = u16::try_from(item.subscription_ids.len())
        .map_err(|_| RecordError("too many subscription identifiers".into()))?;
    out.put_u16(ids);
    for id in &item.subscription_ids {
        out.put_u32(*id);
    }
    put_message(out, &item.message)
}

/// Reads a delivery record.
pub fn get_item(bytes: &mut BytesMut, seq: u64) -> Result<(Queued, ItemState), RecordError> {
    let short = || RecordError("record truncated".into());
    if bytes.remaining() < 8 {
        return Err(short());
    }
    if bytes.get_u8() != FORMAT {
        return Err(RecordError("unknown record format".into()));
    }
    let qos = QoS::from_u8(bytes.get_u8()).ok_or_else(|| RecordError("bad QoS".into()))?;
    let retain = bytes.get_u8() != 0;
    let tag = bytes.get_u8();
    let packet_id = bytes.get_u16();
    let state = match tag {
        0 => ItemState::Queued,
        1 => ItemState::Sent(packet_id),
        2 => ItemState::Released(packet_id),
        other => return Err(RecordError(format!("bad delivery state {other}"))),
    };
    let count = usize::from(bytes.get_u16());
    if bytes.remaining() < count * 4 {
        return Err(short());
    }
    let subscription_ids = (0..count).map(|_| bytes.get_u32()).collect();
    let message = Arc::new(get_message(bytes)?);
    Ok((
        Queued {
            message,
            qos,
            retain,
            subscription_ids,
            seq: Some(seq),
        },
        state,
    ))
}

/// A subscription as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSubscription {
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: u8,
    pub identifier: Option<u32>,
}

impl From<&Subscription> for StoredSubscription {
    fn from(sub: &Subscription) -> Self {
        StoredSubscription {
            qos: sub.options.qos as u8,
            no_local: sub.options.no_local,
            retain_as_published: sub.options.retain_as_published,
            retain_handling: sub.options.retain_handling,
            identifier: sub.identifier,
        }
    }
}

impl StoredSubscription {
    pub fn to_subscription(self) -> Subscription {
        Subscription {
            options: SubscriptionOptions {
                qos: QoS::from_u8(self.qos).unwrap_or(QoS::AtMostOnce),
                no_local: self.no_local,
                retain_as_published: self.retain_as_published,
                retain_handling: self.retain_handling,
            },
            identifier: self.identifier,
        }
    }
}

/// A persistent session's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionMeta {
    /// Who may attach to the session (decision 0088). Absent in records
    /// written before owners were recorded: the next attach claims those.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<SessionOwner>,
    /// Session Expiry Interval in seconds (`u32::MAX`: never).
    pub expiry_interval: u32,
    /// When the client disconnected (ms since the epoch); `None` while
    /// connected (a crash then counts as a disconnect at restart).
    pub disconnected_at_ms: Option<u64>,
    pub subscriptions: Vec<(String, StoredSubscription)>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn message() -> Message {
        Message {
            topic: Arc::from("devices/dev-a/state"),
            payload: Bytes::from_static(b"\x00\x01online"),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties: Default::default(),
            expires_at: Some(Instant::now() + Duration::from_secs(60)),
            publisher: Some(Arc::from("dev-a")),
        }
    }

    #[test]
    fn item_round_trips_with_state_and_expiry() {
        let item = Queued {
            message: Arc::new(message()),
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: vec![7, 9],
            seq: Some(42),
        };
        let mut buf = BytesMut::new();
        put_item(&mut buf, &item, ItemState::Released(513)).unwrap();
        let (back, state) = get_item(&mut buf, 42).unwrap();
        assert_eq!(state, ItemState::Released(513));
        assert_eq!(back.subscription_ids, vec![7, 9]);
        assert_eq!(back.message.payload, item.message.payload);
        assert_eq!(back.message.publisher.as_deref(), Some("dev-a"));
        let left = back.message.remaining_expiry(Instant::now()).unwrap();
        assert!((58..=60).contains(&left), "{left}");
    }

    #[test]
    fn session_records_keep_their_owner_and_old_records_read_without_one() {
        let meta = SessionMeta {
            owner: Some(SessionOwner::Certificate("dev-b".into())),
            expiry_interval: 60,
            disconnected_at_ms: None,
            subscriptions: Vec::new(),
        };
        let json = serde_json::to_vec(&meta).unwrap();
        let back: SessionMeta = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, meta);
        // As written by fleetmq before owners were recorded.
        let old: SessionMeta = serde_json::from_str(
            r#"{"expiry_interval":60,"disconnected_at_ms":1,"subscriptions":[]}"#,
        )
        .unwrap();
        assert_eq!(old.owner, None);
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let mut buf = BytesMut::new();
        put_message(&mut buf, &message()).unwrap();
        for cut in 0..buf.len() {
            let mut part = BytesMut::from(&buf[..cut]);
            assert!(get_message(&mut part).is_err(), "cut at {cut}");
        }
        let mut flipped = buf.clone();
        flipped[0] = 9;
        assert!(get_message(&mut flipped).is_err());
    }
}
