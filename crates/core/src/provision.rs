//! The broker's side of certificate provisioning that lives in the core:
//! the reserved topics, who may use them, and the hand-off of a request to
//! the service that answers it (docs/provisioning.md, decision 0150).
//!
//! Topics, per device (the client id is the device id):
//!
//! ```text
//! $fleetmq/provision/<client-id>/request    device -> broker (never routed)
//! $fleetmq/provision/<client-id>/response   broker -> device
//! ```
//!
//! A client presenting a *claim certificate* (one whose groups contain
//! `provision.claim_group`) may publish to its own request topic and
//! subscribe to its own response topic, and nothing else, whatever the
//! ACL says. No client may publish to a provisioning topic through the
//! router, so nobody can forge an answer.
//!
//! Owns: topic names, the access override, the [`ProvisionService`] seam.
//! Must not: parse a request, sign anything or touch files (the broker's
//! `provision` module does, off the data path).

use std::sync::Arc;

use bytes::Bytes;

use crate::auth::{Action, Identity};
use crate::config::Config;

/// Every provisioning topic starts with this.
pub const PROVISION_PREFIX: &str = "$fleetmq/provision/";

/// Largest request payload taken (a P-256 CSR in PEM is about 500 bytes).
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Where `client_id` sends its requests.
pub fn request_topic(client_id: &str) -> String {
    format!("{PROVISION_PREFIX}{client_id}/request")
}

/// Where `client_id` receives its answers.
pub fn response_topic(client_id: &str) -> String {
    format!("{PROVISION_PREFIX}{client_id}/response")
}

/// Whether `identity` presented a claim certificate.
pub fn is_claim(config: &Config, identity: &Identity) -> bool {
    identity.fingerprint.is_some() && identity.groups.contains(&config.provision.claim_group)
}

/// Whether `identity` may take over a session whose attached connection
/// is `attached`, though the session's owner differs: a device's own
/// certificate (identity = client id) replacing the connection its claim
/// certificate opened to provision itself, which may not have closed yet
/// when the device reconnects (decision 0150). The claim session is then
/// discarded, never resumed.
pub fn replaces_claim_session(
    config: &Config,
    attached: Option<&Identity>,
    identity: &Identity,
) -> bool {
    attached.is_some_and(|claim| is_claim(config, claim))
        && !is_claim(config, identity)
        && identity.fingerprint.is_some()
        && identity.cert_identity.as_deref() == Some(&*identity.client_id)
}

/// The provisioning rules that come before the ACL: `Some(allowed)` when
/// they decide, `None` when the ACL does.
pub fn access(
    config: &Config,
    identity: &Identity,
    action: Action,
    topic: &str,
) -> Option<(bool, &'static str)> {
    if let Some(rest) = topic.strip_prefix(PROVISION_PREFIX) {
        let own_response = rest
            .strip_suffix("/response")
            .is_some_and(|id| id == &*identity.client_id);
        return Some(match action {
            Action::Subscribe | Action::Receive if own_response => (true, ""),
            Action::Publish => (false, "provisioning topics are answered by the broker only"),
            _ => (false, "another device's provisioning topic"),
        });
    }
    if is_claim(config, identity) {
        return Some((
            false,
            "a claim certificate may only use its provisioning topics",
        ));
    }
    None
}

/// One request as the connection received it.
#[derive(Debug, Clone)]
pub struct ProvisionRequest {
    /// Who sent it (client id, certificate identity, groups, fingerprint,
    /// listener).
    pub identity: Arc<Identity>,
    /// The request document, as sent.
    pub payload: Bytes,
}

/// The service that answers requests (the broker's `provision` module).
/// `submit` is called on the connection's task: it must only queue.
pub trait ProvisionService: std::fmt::Debug + Send + Sync {
    /// Takes a request; false when it cannot (queue full, service
    /// stopped), in which case nothing was queued.
    fn submit(&self, request: ProvisionRequest) -> bool;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn identity(client_id: &str, groups: &[&str]) -> Identity {
        Identity {
            client_id: Arc::from(client_id),
            username: None,
            cert_identity: Some("claim-batch1".into()),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            listener: Arc::from("tls"),
            fingerprint: Some("ab".repeat(32).into()),
            password_verified: false,
            username_from_certificate: false,
            bridge: false,
        }
    }

    #[test]
    fn a_claim_certificate_is_confined_to_its_own_topics() {
        let config = Config::default();
        let claim = identity("esp32_1", &["fleetmq-claim"]);
        let own = response_topic("esp32_1");
        assert_eq!(
            access(&config, &claim, Action::Subscribe, &own).map(|d| d.0),
            Some(true)
        );
        assert_eq!(
            access(&config, &claim, Action::Receive, &own).map(|d| d.0),
            Some(true)
        );
        for (action, topic) in [
            (Action::Subscribe, response_topic("esp32_2")),
            (Action::Publish, own.clone()),
            (Action::Publish, request_topic("esp32_2")),
            (Action::Publish, "/this/test/esp32_1".to_owned()),
            (Action::Subscribe, "#".to_owned()),
        ] {
            assert_eq!(
                access(&config, &claim, action, &topic).map(|d| d.0),
                Some(false),
                "{action} {topic}"
            );
        }
    }

    #[test]
    fn only_the_device_itself_replaces_its_claim_session() {
        let config = Config::default();
        let claim = identity("esp32_1", &["fleetmq-claim"]);
        let mut own = identity("esp32_1", &[]);
        own.cert_identity = Some("esp32_1".into());
        assert!(replaces_claim_session(&config, Some(&claim), &own));
        // Not while nothing (or a device) is attached, not another device,
        // not another claim holder.
        assert!(!replaces_claim_session(&config, None, &own));
        assert!(!replaces_claim_session(&config, Some(&own), &own));
        let mut other = own.clone();
        other.cert_identity = Some("esp32_2".into());
        assert!(!replaces_claim_session(&config, Some(&claim), &other));
        assert!(!replaces_claim_session(&config, Some(&claim), &claim));
    }

    #[test]
    fn other_clients_fall_through_to_the_acl() {
        let config = Config::default();
        let device = identity("esp32_1", &["lab"]);
        assert!(access(&config, &device, Action::Publish, "/this/test/esp32_1").is_none());
        assert_eq!(
            access(
                &config,
                &device,
                Action::Subscribe,
                &response_topic("esp32_1")
            )
            .map(|d| d.0),
            Some(true)
        );
        let mut no_cert = identity("x", &["fleetmq-claim"]);
        no_cert.fingerprint = None;
        assert!(!is_claim(&config, &no_cert));
    }
}
