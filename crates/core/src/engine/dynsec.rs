//! The engine's side of dynamic security: running a command payload from a
//! client, answering it on `$CONTROL/dynamic-security/v1/response` (to its
//! subscribers, as Mosquitto 2.0.11 does), and disconnecting the clients
//! a change concerns so it takes effect at once (decision 0140).
//!
//! The decisions and the command protocol are in `auth::dynsec`; this file
//! only connects them to sessions. No lock is held while another is taken
//! out of order: the dynsec lock is released before any session is looked
//! at.

use std::sync::Arc;

use bytes::Bytes;
use fleetmq_codec::{QoS, ReasonCode};

use super::Engine;
use crate::auth::dynsec::command::RESPONSE_TOPIC;
use crate::auth::dynsec::{Access, Kick};
use crate::auth::{Identity, SessionOwner};
use crate::message::Message;
use crate::session::Session;

impl Engine {
    /// Whether `identity` may unsubscribe from `filter`: dynsec's
    /// `unsubscribe*` ACLs and default access where dynsec is configured;
    /// always otherwise (ACL rules have no unsubscribe right).
    pub fn may_unsubscribe(&self, identity: &Identity, filter: &str) -> bool {
        let Some(dynsec) = self.auth().dynsec.clone() else {
            return true;
        };
        let filter = crate::router::parse_filter(filter).filter();
        let verdict = dynsec.check_units(
            identity.dynsec_name(),
            &identity.client_id,
            &identity.groups,
            Access::Unsubscribe,
            filter,
        );
        if !verdict.allowed() {
            tracing::info!(
                client = %identity.client_id,
                "Denied unsubscribe from '{}' for client {}: {}.",
                filter.escape_debug(),
                identity.client_id,
                verdict.describe(),
            );
        }
        verdict.allowed()
    }

    /// Runs the dynsec commands in `payload` sent by `identity` (whose
    /// publish to the control topic the ACL already allowed), answers on
    /// the response topic, and disconnects whom the changes concern.
    /// Returns false when dynsec is not configured (nothing was done).
    pub fn dynsec_command(&self, identity: &Identity, payload: &[u8]) -> bool {
        let by = format!(
            "{}/{}",
            identity.client_id,
            identity.username.as_deref().unwrap_or("")
        );
        let Some(response) = self.dynsec_run(&by, payload) else {
            return false;
        };
        self.publish_response(Bytes::from(response));
        true
    }

    /// Runs a dynsec command payload on behalf of `by` (for the log: an
    /// MQTT client, or the dashboard), enforces it, and returns the JSON
    /// response; `None` when dynsec is not configured.
    pub fn dynsec_run(&self, by: &str, payload: &[u8]) -> Option<String> {
        let dynsec = self.auth().dynsec.clone()?;
        let outcome = dynsec.command(payload);
        tracing::info!(
            "dynsec: {by} | {} bytes of commands | configuration {}.",
            payload.len(),
            if outcome.changed {
                "changed"
            } else {
                "unchanged"
            },
        );
        self.recheck_subscriptions(&outcome.kicks);
        self.kick(&outcome.kicks);
        Some(outcome.response)
    }

    /// Replaces the dynsec configuration with `document` (another cluster
    /// node's, decision 0184) and enforces the change as if it had been
    /// made here: `kicks` lose what their roles no longer allow and are
    /// disconnected. `Ok(false)` when dynsec is not configured here.
    pub fn dynsec_replace(&self, document: &str, kicks: &[Kick]) -> Result<bool, String> {
        let Some(dynsec) = self.auth().dynsec.clone() else {
            return Ok(false);
        };
        dynsec.replace(document)?;
        self.recheck_subscriptions(kicks);
        self.kick(kicks);
        Ok(true)
    }

    /// Drops the subscriptions the clients a change concerns may no longer
    /// hold, so a resumed session does not keep what its roles now deny.
    /// A connected session is judged by its connection's identity, an
    /// offline one by its owner (a username, a certificate identity, or
    /// anonymous); sessions owned by a bare certificate fingerprint are
    /// left alone (no name dynsec could know).
    fn recheck_subscriptions(&self, kicks: &[Kick]) {
        let Some(dynsec) = self.auth().dynsec.clone() else {
            return;
        };
        if kicks.is_empty() {
            return;
        }
        let sessions: Vec<Arc<Session>> = self.sessions.read().values().cloned().collect();
        for session in sessions {
            let denied: Vec<String> = {
                let state = session.lock();
                // A bridge's local session is part of the broker.
                if matches!(state.owner(), Some(SessionOwner::Bridge(_))) {
                    continue;
                }
                // Its dynsec name and certificate units (offline: none known).
                let (username, units): (Option<String>, Vec<String>) =
                    match (state.attachment(), state.owner()) {
                        (Some(attachment), _) => (
                            attachment.identity.dynsec_name().map(str::to_string),
                            attachment.identity.groups.clone(),
                        ),
                        (None, Some(SessionOwner::Username(name))) => {
                            (Some(name.clone()), Vec::new())
                        }
                        (None, Some(SessionOwner::Certificate(name))) => {
                            (Some(name.to_string()), Vec::new())
                        }
                        (None, Some(SessionOwner::Anonymous)) => (None, Vec::new()),
                        (None, _) => continue,
                    };
                let concerned = kicks.iter().any(|kick| match kick {
                    Kick::Username(name) => username.as_deref() == Some(name.as_str()),
                    Kick::Anonymous => username.is_none(),
                    Kick::Unit(unit) => units.contains(unit),
                });
                if !concerned {
                    continue;
                }
                state
                    .subscriptions()
                    .map(|(filter, _)| filter)
                    .filter(|filter| {
                        let plain = crate::router::parse_filter(filter).filter();
                        !dynsec
                            .check_units(
                                username.as_deref(),
                                &session.client_id,
                                &units,
                                Access::Subscribe,
                                plain,
                            )
                            .allowed()
                    })
                    .cloned()
                    .collect()
            };
            for filter in denied {
                self.unsubscribe(&session, &filter);
                tracing::info!(
                    client = %session.client_id,
                    "Client {} lost its subscription to '{}': its dynamic security roles no longer allow it.",
                    session.client_id,
                    filter.escape_debug()
                );
            }
        }
    }

    /// Publishes a response on the response topic to every subscriber
    /// (as Mosquitto 2.0.11 does: whoever may subscribe to it and read it
    /// hears every answer; the admin role grants both).
    fn publish_response(&self, payload: Bytes) {
        let message = Arc::new(Message {
            topic: Arc::from(RESPONSE_TOPIC),
            payload,
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Default::default(),
            expires_at: None,
            publisher: None,
        });
        self.publish(message);
    }

    /// Asks the connections of the given usernames (or the anonymous
    /// ones) to close: 5.0 DISCONNECT 0x98 Administrative action. Returns
    /// how many were asked.
    pub fn kick(&self, kicks: &[Kick]) -> usize {
        if kicks.is_empty() {
            return 0;
        }
        self.disconnect_where(
            ReasonCode::ADMINISTRATIVE_ACTION,
            |attachment| {
                let identity = &attachment.identity;
                let username = identity.dynsec_name();
                !identity.bridge
                    && kicks.iter().any(|kick| match kick {
                        Kick::Username(name) => username == Some(name.as_str()),
                        Kick::Anonymous => username.is_none(),
                        Kick::Unit(unit) => {
                            identity.has_certificate() && identity.groups.contains(unit)
                        }
                    })
            },
            |session, _| {
                tracing::info!(
                    client = %session.client_id,
                    "Client {} disconnected: its dynamic security configuration changed.",
                    session.client_id
                );
            },
        )
    }
}
