//! Taking a publish on the client's own provisioning request topic
//! (`$fleetmq/provision/<client-id>/request`) and handing it to the
//! provisioning service (decision 0150). The topic belongs to the broker:
//! the request is acknowledged and never routed. A publish to any other
//! provisioning topic is not taken here: the access rules refuse it.
//!
//! Owns: recognising the topic. Must not: read the request (the service
//! does, off the connection's task).

use std::sync::Arc;

use bytes::Bytes;

use super::ClientProtocol;
use crate::provision::{ProvisionRequest, MAX_REQUEST_BYTES, PROVISION_PREFIX};

impl ClientProtocol {
    /// True when `topic` is this client's request topic; the request was
    /// then handed on (or dropped with a log line when too large or the
    /// service is absent or busy: the device asks again later).
    pub(super) fn take_provision_request(&mut self, topic: &str, payload: &Bytes) -> bool {
        let Some(rest) = topic.strip_prefix(PROVISION_PREFIX) else {
            return false;
        };
        if rest.strip_suffix("/request") != Some(&*self.client_id) {
            return false;
        }
        let taken = payload.len() <= MAX_REQUEST_BYTES
            && self.broker.submit_provision(ProvisionRequest {
                identity: Arc::clone(&self.identity),
                payload: payload.clone(),
            });
        if !taken {
            // Debug, not info: a client repeating the request must not
            // flood the log.
            tracing::debug!(
                client = %self.client_id,
                "Client {} provisioning request dropped ({} bytes): no provisioning service \
                 on this broker, request too large, or too many requests waiting.",
                self.client_id,
                payload.len(),
            );
        }
        true
    }
}
