//! One bridge link: connect to the remote (with failover and backoff),
//! then relay packets between the remote socket and the bridge's local
//! session, which is an ordinary persistent session of the engine driven
//! through the socket-free [`ClientProtocol`] (decision 0144).
//!
//! The relay keeps each direction's packet identifiers: a message the
//! local session sends to the bridge (an `out` topic) goes to the remote
//! under the session's own packet id, and the remote's PUBACK / PUBREC /
//! PUBCOMP go back to the session unchanged; a message from the remote
//! (`in`) enters the session as a client PUBLISH with the remote's id and
//! the session's acknowledgements go back to the remote. So the session's
//! durable state (queue, inflight, QoS 2 release) is the bridge's store
//! and forward, resends after a reconnect carry DUP and PUBREL as the
//! session decides, and an `in` message is acknowledged to the remote only
//! once it is durable here.
//!
//! It must not block other clients: every wait is on this link's socket,
//! its session or a timer, and no lock is held across an `.await`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::ClientConfig;
use tokio::sync::watch;

use super::status::BridgeStatus;
use fleetmq_codec::{ProtocolVersion, PublishProperties, QoS};
use fleetmq_core::config::{BridgeConfig, BridgeProtocol};
use fleetmq_core::engine::Engine;
use fleetmq_core::message::Message;

/// Longest wait for the remote to connect, answer CONNECT or SUBSCRIBE.
pub(super) const SETUP_LIMIT: Duration = Duration::from_secs(10);
/// Unacknowledged messages a 3.1.1 link sends at once (Mosquitto's
/// default `max_inflight_messages`).
pub(super) const V311_WINDOW: u16 = 20;
/// Largest packet MQTT can carry.
pub(super) const MQTT_MAX: u32 = 268_435_455;

/// How a connected session ended.
pub(super) enum Ended {
    Shutdown,
}

/// Why a session ended otherwise, and whether it had connected.
pub(super) struct Failure {
    pub(super) why: String,
    pub(super) connected: bool,
}

impl Failure {
    pub(super) fn before(why: impl Into<String>) -> Failure {
        Failure {
            why: why.into(),
            connected: false,
        }
    }
    pub(super) fn after(why: impl Into<String>) -> Failure {
        Failure {
            why: why.into(),
            connected: true,
        }
    }
}

/// One bridge and what it learned across connects.
pub struct Link {
    pub(super) broker: Arc<Engine>,
    pub(super) config: BridgeConfig,
    pub(super) status: Arc<BridgeStatus>,
    pub(super) tls: Option<Arc<ClientConfig>>,
    pub(super) remote_id: String,
    pub(super) local_id: String,
    pub(super) notification_topic: String,
    /// Still announcing the bridge bit (`try_private`): cleared when the
    /// remote refuses it, as Mosquitto does.
    pub(super) private: bool,
    pub(super) address_index: usize,
}

impl Link {
    pub(super) fn remote_version(&self) -> ProtocolVersion {
        match self.config.protocol_version {
            BridgeProtocol::V311 => ProtocolVersion::V3_1_1,
            BridgeProtocol::V5 => ProtocolVersion::V5,
        }
    }

    /// Connects, relays, reconnects with backoff, until shutdown.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let name = self.config.name.clone();
        self.notify_local(false);
        let mut failures: u32 = 0;
        let mut dropped = 0;
        loop {
            if *shutdown.borrow() {
                return;
            }
            // Validation guarantees one address at least; a bridge without
            // any simply never connects.
            let Some(address) = self.config.addresses.get(self.address_index).cloned() else {
                tracing::error!(bridge = %name, "Bridge {name} has no address.");
                return;
            };
            *self.status.remote.lock() = address.clone();
            let failure = match self.session(&address, &mut shutdown).await {
                Ok(Ended::Shutdown) => return,
                Err(failure) => failure,
            };
            self.status.fail(failure.why.clone());
            self.notify_local(false);
            if failure.connected {
                failures = 0;
                if !self.config.round_robin {
                    self.address_index = 0;
                }
            } else {
                failures = failures.saturating_add(1);
                BridgeStatus::add(&self.status.failures, 1);
                self.address_index = (self.address_index + 1) % self.config.addresses.len().max(1);
            }
            self.log_drops(&mut dropped);
            let wait = self.backoff(failures);
            if failure.connected {
                tracing::warn!(bridge = %name, "Bridge {name} lost {address}: {}; reconnecting in {} s.", failure.why, wait.as_secs());
            } else {
                tracing::warn!(bridge = %name, "Bridge {name} cannot connect to {address}: {}; retrying in {} s.", failure.why, wait.as_secs());
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Logs messages the local queue dropped since the last look.
    fn log_drops(&self, seen: &mut u64) {
        let now = self.status.dropped(&self.broker);
        if now > *seen {
            let name = &self.config.name;
            tracing::warn!(
                bridge = %name,
                "Bridge {name}: {} messages for the remote dropped, its local queue is full (bridge max_queued_messages / max_queued_bytes, else limits).",
                now - *seen
            );
        }
        *seen = now;
    }

    /// `restart_timeout`: constant, or doubling from the base to the cap
    /// with each failed connect in a row.
    fn backoff(&self, failures: u32) -> Duration {
        let base = self.config.restart_secs.max(1);
        let secs = match self.config.restart_max_secs {
            None => base,
            Some(cap) => {
                let doublings = failures.saturating_sub(1).min(16);
                base.saturating_mul(1 << doublings).min(cap.max(base))
            }
        };
        Duration::from_secs(secs)
    }

    /// The link's state, retained on the notification topic (Mosquitto's
    /// `$SYS/broker/connection/<remote id>/state`).
    pub(super) fn notify_local(&self, up: bool) {
        if !self.config.notifications {
            return;
        }
        self.broker.publish(Arc::new(Message {
            topic: Arc::from(self.notification_topic.as_str()),
            payload: Bytes::from_static(if up { b"1" } else { b"0" }),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: PublishProperties::default(),
            expires_at: None,
            publisher: None,
        }));
    }
}
