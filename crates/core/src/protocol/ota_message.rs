//! Taking a publish on the client's own OTA `status` or `fetch` topic and
//! handing it to the OTA service (decision 0163). The topic belongs to the
//! broker: the message is acknowledged and never routed. Any other OTA
//! topic is not taken here: the access rules refuse it.
//!
//! Owns: recognising the topic. Must not: read the message (the service
//! does, off the connection's task).

use std::sync::Arc;

use bytes::Bytes;

use super::ClientProtocol;
use crate::ota::{
    device_message, is_ota_device, is_served, DeviceMessage, MAX_DEVICE_MESSAGE_BYTES,
};

impl ClientProtocol {
    /// True when `topic` is one of this client's OTA device topics; the
    /// message was then handed on, or dropped with a debug line (too
    /// large, no certificate of its own, no service, service busy: the
    /// device asks again).
    pub(super) fn take_ota_message(&mut self, topic: &str, payload: &Bytes) -> bool {
        let Some(kind) = device_message(&self.client_id, topic) else {
            return false;
        };
        if !is_served(&self.broker.config, &self.identity) {
            // Not taken: the access rules refuse it as any topic the
            // client may not publish to.
            return false;
        }
        let taken = payload.len() <= MAX_DEVICE_MESSAGE_BYTES
            && is_ota_device(&self.identity)
            && self.broker.submit_ota(DeviceMessage {
                identity: Arc::clone(&self.identity),
                kind,
                payload: payload.clone(),
            });
        if !taken {
            tracing::debug!(
                client = %self.client_id,
                "Client {} OTA message dropped ({} bytes): no OTA service, no certificate \
                 naming the client id, message too large, or too many waiting.",
                self.client_id,
                payload.len(),
            );
        }
        true
    }
}
