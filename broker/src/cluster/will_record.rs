//! A will as the `FLEETMQ_WILLS` bucket holds it (decision 0183): the
//! message with its properties, the node and instance that answer for it,
//! and its due time once its connection has ended. It owns the encoding
//! only; who writes, deletes or publishes a record is `wills`' business.

use std::sync::Arc;
use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use fleetmq_codec::{PublishProperties, QoS};
use fleetmq_core::message::Message;

/// The value of a will entry: the message and who answers for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct WillRecord {
    pub(super) node: String,
    pub(super) instance: String,
    pub(super) client: String,
    pub(super) topic: String,
    /// base64url.
    pub(super) payload: String,
    pub(super) qos: u8,
    pub(super) retain: bool,
    /// Seconds from the end of the connection, capped by session expiry.
    pub(super) delay: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) expiry_interval: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) payload_format: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) response_topic: Option<String>,
    /// base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) correlation: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) user_properties: Vec<(String, String)>,
    /// Wall clock (ms) when it is due; `None` while its connection lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) due_ms: Option<u64>,
}

impl WillRecord {
    pub(super) fn new(
        node: &str,
        instance: &str,
        message: &Message,
        delay: u32,
        expiry: Option<u32>,
    ) -> Self {
        let properties = &message.properties;
        WillRecord {
            node: node.to_owned(),
            instance: instance.to_owned(),
            client: message.publisher.as_deref().unwrap_or_default().to_owned(),
            topic: message.topic.to_string(),
            payload: URL_SAFE_NO_PAD.encode(&message.payload),
            qos: message.qos as u8,
            retain: message.retain,
            delay,
            expiry_interval: expiry,
            payload_format: properties.payload_format_indicator,
            content_type: properties.content_type.clone(),
            response_topic: properties.response_topic.clone(),
            correlation: properties
                .correlation_data
                .as_ref()
                .map(|data| URL_SAFE_NO_PAD.encode(data)),
            user_properties: properties.user_properties.clone(),
            due_ms: None,
        }
    }

    /// The message to publish now; `None` when the record is damaged.
    pub(super) fn message(&self) -> Option<Arc<Message>> {
        let now = Instant::now();
        let properties = PublishProperties {
            payload_format_indicator: self.payload_format,
            message_expiry_interval: self.expiry_interval,
            content_type: self.content_type.clone(),
            response_topic: self.response_topic.clone(),
            correlation_data: match &self.correlation {
                Some(text) => Some(URL_SAFE_NO_PAD.decode(text).ok()?.into()),
                None => None,
            },
            user_properties: self.user_properties.clone(),
            ..PublishProperties::default()
        };
        Some(Arc::new(Message {
            topic: Arc::from(self.topic.as_str()),
            payload: URL_SAFE_NO_PAD.decode(&self.payload).ok()?.into(),
            qos: QoS::from_u8(self.qos)?,
            retain: self.retain,
            expires_at: Message::expiry_deadline(self.expiry_interval, now),
            properties,
            publisher: Some(Arc::from(self.client.as_str())),
        }))
    }

    pub(super) fn encode(&self) -> Option<bytes::Bytes> {
        serde_json::to_vec(self).ok().map(Into::into)
    }
}

pub(super) fn decode(value: &[u8]) -> Option<WillRecord> {
    serde_json::from_slice(value).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_will_record_gives_back_the_message() {
        let message = Message {
            topic: Arc::from("lab/dev/status"),
            payload: bytes::Bytes::from_static(b"gone \xff"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: PublishProperties {
                content_type: Some("text/plain".into()),
                correlation_data: Some(bytes::Bytes::from_static(b"\x00\x01")),
                user_properties: vec![("k".into(), "v".into())],
                ..PublishProperties::default()
            },
            expires_at: None,
            publisher: Some(Arc::from("dev")),
        };
        let record = WillRecord::new("a", "1-2", &message, 5, Some(60));
        let Some(decoded) = record.encode().and_then(|bytes| decode(&bytes)) else {
            panic!("record did not round-trip");
        };
        let Some(back) = decoded.message() else {
            panic!("no message");
        };
        assert_eq!(back.topic, message.topic);
        assert_eq!(back.payload, message.payload);
        assert_eq!((back.qos, back.retain), (QoS::AtLeastOnce, true));
        assert_eq!(
            back.properties.content_type,
            message.properties.content_type
        );
        assert_eq!(
            back.properties.correlation_data,
            message.properties.correlation_data
        );
        assert_eq!(
            back.properties.user_properties,
            message.properties.user_properties
        );
        assert_eq!(back.properties.message_expiry_interval, Some(60));
        assert!(back.expires_at.is_some());
        assert_eq!(back.publisher.as_deref(), Some("dev"));
        assert_eq!(decoded.delay, 5);
    }
}
