//! One message as it travels between nodes: its subject (decision 0157)
//! and the NATS headers that carry what the payload cannot — origin node,
//! publisher, QoS, RETAIN, expiry as a wall-clock deadline, and the MQTT
//! 5.0 properties (decision 0156). Strings and bytes are base64url so any
//! UTF-8 survives a header.
//!
//! Pure conversions, no IO: a header a foreign or damaged message lacks is
//! an error, never a panic.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;

use fleetmq_codec::{PublishProperties, QoS};
use fleetmq_core::cluster::subject::{subject_to_topic, topic_to_subject, SubjectError};
use fleetmq_core::message::Message;

/// Subjects of the message stream.
pub const MESSAGES_PREFIX: &str = "fmq.m";
/// Subjects of the retained stream.
pub const RETAINED_PREFIX: &str = "fmq.r";

const NODE: &str = "Fmq-Node";
const CLIENT: &str = "Fmq-Client";
const QOS: &str = "Fmq-Qos";
const RETAIN: &str = "Fmq-Retain";
const EXPIRES_AT: &str = "Fmq-Expires-At";
const PAYLOAD_FORMAT: &str = "Fmq-Pfi";
const CONTENT_TYPE: &str = "Fmq-Content-Type";
const RESPONSE_TOPIC: &str = "Fmq-Response-Topic";
const CORRELATION: &str = "Fmq-Correlation";
const USER: &str = "Fmq-User";

/// Why a message from NATS cannot become an MQTT message.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("subject: {0}")]
    Subject(#[from] SubjectError),
    #[error("no headers")]
    NoHeaders,
    #[error("header {0} is missing or malformed")]
    Header(&'static str),
}

fn text(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(value.as_bytes())
}

fn untext(value: &str, name: &'static str) -> Result<String, WireError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| WireError::Header(name))?;
    String::from_utf8(bytes).map_err(|_| WireError::Header(name))
}

/// The headers of `message`, published by node `node` at `now`.
pub fn headers(message: &Message, node: &str, now: Instant) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(NODE, node);
    if let Some(publisher) = &message.publisher {
        headers.insert(CLIENT, text(publisher).as_str());
    }
    headers.insert(QOS, (message.qos as u8).to_string().as_str());
    if message.retain {
        headers.insert(RETAIN, "1");
    }
    if let Some(at) = message.expires_at {
        let left = at.saturating_duration_since(now);
        let deadline = SystemTime::now() + left;
        let millis = deadline
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        headers.insert(EXPIRES_AT, millis.to_string().as_str());
    }
    let properties = &message.properties;
    if let Some(indicator) = properties.payload_format_indicator {
        headers.insert(PAYLOAD_FORMAT, indicator.to_string().as_str());
    }
    if let Some(content_type) = &properties.content_type {
        headers.insert(CONTENT_TYPE, text(content_type).as_str());
    }
    if let Some(topic) = &properties.response_topic {
        headers.insert(RESPONSE_TOPIC, text(topic).as_str());
    }
    if let Some(data) = &properties.correlation_data {
        headers.insert(CORRELATION, URL_SAFE_NO_PAD.encode(data).as_str());
    }
    for (key, value) in &properties.user_properties {
        headers.append(USER, format!("{}.{}", text(key), text(value)).as_str());
    }
    headers
}

/// The subject of `message` under `prefix`.
pub fn subject(prefix: &str, message: &Message) -> String {
    topic_to_subject(prefix, &message.topic)
}

/// A message read from NATS, with the node that published it.
#[derive(Debug)]
pub struct Received {
    pub origin: String,
    /// `None` once expired on the way: nothing to deliver.
    pub message: Option<Arc<Message>>,
}

/// The message a node published as `subject`, `headers`, `payload`.
pub fn message(
    prefix: &str,
    subject: &str,
    headers: Option<&HeaderMap>,
    payload: Bytes,
    now: Instant,
) -> Result<Received, WireError> {
    let topic = subject_to_topic(prefix, subject)?;
    let headers = headers.ok_or(WireError::NoHeaders)?;
    let get = |name: &'static str| headers.get(name).map(|value| value.as_str());
    let origin = get(NODE).ok_or(WireError::Header(NODE))?.to_owned();
    let publisher = match get(CLIENT) {
        Some(value) => Some(Arc::<str>::from(untext(value, CLIENT)?)),
        None => None,
    };
    let qos = get(QOS)
        .and_then(|value| value.parse::<u8>().ok())
        .and_then(QoS::from_u8)
        .ok_or(WireError::Header(QOS))?;
    let retain = get(RETAIN) == Some("1");
    let mut properties = PublishProperties::default();
    let mut expires_at = None;
    if let Some(value) = get(EXPIRES_AT) {
        let millis: u64 = value.parse().map_err(|_| WireError::Header(EXPIRES_AT))?;
        let deadline = UNIX_EPOCH + Duration::from_millis(millis);
        match deadline.duration_since(SystemTime::now()) {
            Ok(left) => {
                expires_at = Some(now + left);
                let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                properties.message_expiry_interval = Some(u32::try_from(secs).unwrap_or(u32::MAX));
            }
            Err(_) => {
                return Ok(Received {
                    origin,
                    message: None,
                })
            }
        }
    }
    if let Some(value) = get(PAYLOAD_FORMAT) {
        properties.payload_format_indicator = Some(
            value
                .parse()
                .map_err(|_| WireError::Header(PAYLOAD_FORMAT))?,
        );
    }
    if let Some(value) = get(CONTENT_TYPE) {
        properties.content_type = Some(untext(value, CONTENT_TYPE)?);
    }
    if let Some(value) = get(RESPONSE_TOPIC) {
        properties.response_topic = Some(untext(value, RESPONSE_TOPIC)?);
    }
    if let Some(value) = get(CORRELATION) {
        let data = URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|_| WireError::Header(CORRELATION))?;
        properties.correlation_data = Some(Bytes::from(data));
    }
    for value in headers.get_all(USER) {
        let (key, text) = value
            .as_str()
            .split_once('.')
            .ok_or(WireError::Header(USER))?;
        properties
            .user_properties
            .push((untext(key, USER)?, untext(text, USER)?));
    }
    Ok(Received {
        origin,
        message: Some(Arc::new(Message {
            topic: Arc::from(topic),
            payload,
            qos,
            retain,
            properties,
            expires_at,
            publisher,
        })),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_message_with_every_property_survives_the_trip() {
        let now = Instant::now();
        let original = Message {
            topic: Arc::from("lab/a.b/é x"),
            payload: Bytes::from_static(b"\x00\xffpayload"),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties: PublishProperties {
                payload_format_indicator: Some(1),
                message_expiry_interval: Some(60),
                response_topic: Some("reply/ä".into()),
                correlation_data: Some(Bytes::from_static(b"\x01\x02")),
                user_properties: vec![("k".into(), "v.1".into()), ("k".into(), "".into())],
                content_type: Some("text/plain; charset=utf-8".into()),
                ..PublishProperties::default()
            },
            expires_at: Some(now + Duration::from_secs(60)),
            publisher: Some(Arc::from("client/ü")),
        };
        let headers = headers(&original, "node-1", now);
        let subject = subject(MESSAGES_PREFIX, &original);
        let received = message(
            MESSAGES_PREFIX,
            &subject,
            Some(&headers),
            original.payload.clone(),
            now,
        );
        let Ok(received) = received else {
            panic!("not decoded: {received:?}");
        };
        assert_eq!(received.origin, "node-1");
        let Some(back) = received.message else {
            panic!("expired on the way");
        };
        assert_eq!(back.topic, original.topic);
        assert_eq!(back.payload, original.payload);
        assert_eq!(back.qos, original.qos);
        assert!(back.retain);
        assert_eq!(back.publisher, original.publisher);
        let mut expected = original.properties.clone();
        expected.message_expiry_interval = back.properties.message_expiry_interval;
        assert_eq!(back.properties, expected);
        assert!(back
            .properties
            .message_expiry_interval
            .is_some_and(|secs| (59..=61).contains(&secs)));
    }

    #[test]
    fn foreign_messages_are_errors() {
        let now = Instant::now();
        let empty = HeaderMap::new();
        assert!(message(MESSAGES_PREFIX, "fmq.m.a", None, Bytes::new(), now).is_err());
        assert!(message(MESSAGES_PREFIX, "fmq.m.a", Some(&empty), Bytes::new(), now).is_err());
        assert!(message(MESSAGES_PREFIX, "other.a", Some(&empty), Bytes::new(), now).is_err());
        let mut headers = HeaderMap::new();
        headers.insert(NODE, "n");
        headers.insert(QOS, "3");
        assert!(message(
            MESSAGES_PREFIX,
            "fmq.m.a",
            Some(&headers),
            Bytes::new(),
            now
        )
        .is_err());
        headers.insert(QOS, "1");
        headers.insert(CLIENT, "not base64!");
        assert!(message(
            MESSAGES_PREFIX,
            "fmq.m.a",
            Some(&headers),
            Bytes::new(),
            now
        )
        .is_err());
    }
}
