//! The broker's side of firmware updates that lives in the core: the
//! reserved topics, who may use them, and the hand-off of a device's
//! message to the service that answers it (docs/ota.md, decision 0163).
//!
//! Topics, per device (the client id is the device id):
//!
//! ```text
//! $fleetmq/ota/<client-id>/status   device -> broker  (taken, never routed)
//! $fleetmq/ota/<client-id>/fetch    device -> broker  (taken, never routed)
//! $fleetmq/ota/<client-id>/offer    broker -> device
//! $fleetmq/ota/<client-id>/chunk    broker -> device
//! ```
//!
//! Only a client that presented a verified certificate whose identity is
//! its client id may use its own OTA topics: it may subscribe to (and
//! receive) its own `offer` and `chunk`, and its publishes to its own
//! `status` and `fetch` are handed to the service. Nobody may publish to
//! an OTA topic through the router, so nobody can forge an offer or a
//! chunk, and nobody reads another device's topics.
//!
//! Owns: topic names, the access override, the [`OtaService`] seam.
//! Must not: parse a message, read images or touch files (the broker's
//! `ota` module does, off the data path).

use std::sync::Arc;

use bytes::Bytes;

use crate::auth::{Action, Identity};
use crate::config::Config;

/// Every OTA topic starts with this.
pub const OTA_PREFIX: &str = "$fleetmq/ota/";

/// Largest device message taken (a status or a fetch is under 300 bytes).
pub const MAX_DEVICE_MESSAGE_BYTES: usize = 2 * 1024;

/// Where the broker offers an update to `client_id`.
pub fn offer_topic(client_id: &str) -> String {
    format!("{OTA_PREFIX}{client_id}/offer")
}

/// Where the broker sends `client_id` the chunks it fetched.
pub fn chunk_topic(client_id: &str) -> String {
    format!("{OTA_PREFIX}{client_id}/chunk")
}

/// What a device sends on its own topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceMessageKind {
    /// `$fleetmq/ota/<id>/status`: where the device stands.
    Status,
    /// `$fleetmq/ota/<id>/fetch`: one chunk asked for.
    Fetch,
}

/// Whether `identity` may use OTA topics at all: a verified certificate
/// naming the client id (decision 0163).
pub fn is_ota_device(identity: &Identity) -> bool {
    identity.fingerprint.is_some()
        && identity.cert_identity.as_deref() == Some(&*identity.client_id)
}

/// Whether the listener `identity` connected through serves firmware
/// updates (`[ota] listeners`; all when the list is empty).
pub fn is_served(config: &Config, identity: &Identity) -> bool {
    config.ota.serves(&identity.listener)
}

/// The OTA rules that come before the ACL: `Some(allowed)` for an OTA
/// topic, `None` for any other topic (the ACL decides).
pub fn access(
    config: &Config,
    identity: &Identity,
    action: Action,
    topic: &str,
) -> Option<(bool, &'static str)> {
    let rest = topic.strip_prefix(OTA_PREFIX)?;
    if !is_served(config, identity) {
        return Some((false, "firmware updates are not served on this listener"));
    }
    let (device, leaf) = rest.rsplit_once('/').unwrap_or((rest, ""));
    let own = device == &*identity.client_id && is_ota_device(identity);
    Some(match action {
        Action::Subscribe | Action::Receive if own && matches!(leaf, "offer" | "chunk") => {
            (true, "")
        }
        Action::Publish => (false, "OTA topics are answered by the broker only"),
        _ if own => (
            false,
            "devices only subscribe to their offer and chunk topics",
        ),
        _ => (false, "another device's OTA topic"),
    })
}

/// Which device message `topic` is, when it is `client_id`'s own.
pub fn device_message(client_id: &str, topic: &str) -> Option<DeviceMessageKind> {
    let rest = topic.strip_prefix(OTA_PREFIX)?;
    let (device, leaf) = rest.rsplit_once('/')?;
    if device != client_id {
        return None;
    }
    match leaf {
        "status" => Some(DeviceMessageKind::Status),
        "fetch" => Some(DeviceMessageKind::Fetch),
        _ => None,
    }
}

/// One device message as the connection received it.
#[derive(Debug, Clone)]
pub struct DeviceMessage {
    /// Who sent it (client id, certificate identity, groups, fingerprint).
    pub identity: Arc<Identity>,
    /// Status or fetch.
    pub kind: DeviceMessageKind,
    /// The document, as sent.
    pub payload: Bytes,
}

/// The service that answers devices (the broker's `ota` module).
/// `submit` is called on the connection's task: it must only queue.
pub trait OtaService: std::fmt::Debug + Send + Sync {
    /// Takes a message; false when it cannot (queue full, service
    /// stopped), in which case nothing was queued.
    fn submit(&self, message: DeviceMessage) -> bool;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn identity(client_id: &str, cert: Option<&str>) -> Identity {
        Identity {
            client_id: Arc::from(client_id),
            username: None,
            cert_identity: cert.map(Arc::from),
            groups: Vec::new(),
            listener: Arc::from("tls"),
            fingerprint: cert.map(|_| "ab".repeat(32).into()),
            password_verified: false,
            username_from_certificate: false,
            bridge: false,
        }
    }

    #[test]
    fn a_device_uses_only_its_own_topics_and_never_publishes_through_the_router() {
        let device = identity("esp32_1", Some("esp32_1"));
        for topic in [offer_topic("esp32_1"), chunk_topic("esp32_1")] {
            assert_eq!(
                access(&Config::default(), &device, Action::Subscribe, &topic).map(|d| d.0),
                Some(true)
            );
            assert_eq!(
                access(&Config::default(), &device, Action::Receive, &topic).map(|d| d.0),
                Some(true)
            );
            assert_eq!(
                access(&Config::default(), &device, Action::Publish, &topic).map(|d| d.0),
                Some(false)
            );
        }
        for topic in [
            offer_topic("esp32_2"),
            chunk_topic("esp32_2"),
            "$fleetmq/ota/#".into(),
        ] {
            assert_eq!(
                access(&Config::default(), &device, Action::Subscribe, &topic).map(|d| d.0),
                Some(false)
            );
        }
        assert_eq!(
            access(&Config::default(), &device, Action::Publish, "/this/test/x"),
            None
        );
    }

    #[test]
    fn a_client_without_its_own_certificate_has_no_ota_topics() {
        for who in [
            identity("esp32_1", None),
            identity("esp32_1", Some("esp32_9")),
        ] {
            let topic = offer_topic("esp32_1");
            assert_eq!(
                access(&Config::default(), &who, Action::Subscribe, &topic).map(|d| d.0),
                Some(false)
            );
        }
    }

    #[test]
    fn a_listener_left_out_of_ota_listeners_serves_no_ota_topic() {
        let mut config = Config::default();
        config.ota.listeners = vec!["devices".into()];
        let device = identity("esp32_1", Some("esp32_1"));
        assert!(!is_served(&config, &device));
        let topic = offer_topic("esp32_1");
        assert_eq!(
            access(&config, &device, Action::Subscribe, &topic),
            Some((false, "firmware updates are not served on this listener"))
        );
        config.ota.listeners.push("tls".into());
        assert_eq!(
            access(&config, &device, Action::Subscribe, &topic).map(|d| d.0),
            Some(true)
        );
        assert_eq!(
            access(&config, &device, Action::Publish, "/this/test/x"),
            None
        );
    }

    #[test]
    fn device_messages_are_recognised_on_the_own_topics_only() {
        assert_eq!(
            device_message("a", "$fleetmq/ota/a/status"),
            Some(DeviceMessageKind::Status)
        );
        assert_eq!(
            device_message("a", "$fleetmq/ota/a/fetch"),
            Some(DeviceMessageKind::Fetch)
        );
        assert_eq!(device_message("a", "$fleetmq/ota/b/fetch"), None);
        assert_eq!(device_message("a", "$fleetmq/ota/a/offer"), None);
    }
}
