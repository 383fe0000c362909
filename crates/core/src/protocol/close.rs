//! The end of a conversation: the log line, the DISCONNECT a 5.0 client
//! is owed, handing the session back to the engine, the Disconnected event
//! and the will. In two steps around the IO loop's last write:
//! [`ClientProtocol::begin_close`] before it, [`ClientProtocol::finish_close`]
//! after it (which returns the will for the engine's will scheduler).

use std::sync::Arc;
use std::time::Instant;

use super::{ClientProtocol, Exit};
use crate::auth::Action;
use crate::engine::{PendingWill, Stats};
use crate::events::Event;
use fleetmq_codec::{Disconnect, Packet, ReasonCode};

/// What the IO loop needs to finish a close.
#[derive(Debug)]
pub struct Closing {
    /// Why, for the Disconnected event.
    why: String,
    /// Whether the will is published (not after a normal DISCONNECT, nor
    /// at shutdown).
    publish_will: bool,
    /// False when the connection had been taken over.
    was_attached: bool,
    /// A reason the peer is owed must not be lost to a reset: the IO loop
    /// closes lingering (not at shutdown, which should not wait on peers).
    pub linger: bool,
    /// Whether the last bytes are worth writing (not after a socket error
    /// or a stalled peer).
    pub write_last: bool,
}

impl ClientProtocol {
    /// Logs why the connection ends, puts the DISCONNECT a 5.0 client is
    /// owed in the outbox, and detaches the session: it is settled before
    /// the socket closes, so a client that reconnects the moment it sees
    /// the close finds a clean session already gone [MQTT-3.2.2-1].
    pub fn begin_close(&mut self, exit: &Exit) -> Closing {
        let id = Arc::clone(&self.client_id);
        let mut disconnect_reason = None;
        let mut publish_will = true;
        let why: String = match exit {
            Exit::ClientDisconnect { .. } => "disconnected".into(),
            Exit::Closed => "closed its connection".into(),
            Exit::Io(error) => format!("socket error: {error}"),
            Exit::KeepAliveTimeout => "keep alive timeout".into(),
            Exit::WriteStalled(stall) => format!("not reading for {} s", stall.as_secs()),
            Exit::Violation { reason, detail } => format!("{}: {detail}", reason.name()),
            Exit::Control(reason) => reason.name().to_string(),
            Exit::StoreFailed(packet) => {
                format!("store cannot commit its {packet} (or, on a cluster node, NATS cannot)")
            }
            Exit::ClusterUnavailable(packet) => {
                format!("NATS JetStream cannot store its {packet}")
            }
        };
        // `log.connection_messages = false` leaves out ordinary goodbyes.
        let chatty = self.broker.config.log.connection_messages;
        match exit {
            Exit::ClientDisconnect {
                publish_will: with_will,
            } => {
                publish_will = *with_will;
                if chatty {
                    tracing::info!(client = %id, "Client {id} disconnected.");
                }
            }
            Exit::Closed if chatty => {
                tracing::info!(client = %id, "Client {id} closed its connection.")
            }
            Exit::Closed => {}
            Exit::Io(error) if chatty => {
                tracing::info!(client = %id, "Socket error on client {id}, disconnecting: {error}.")
            }
            Exit::Io(_) => {}
            Exit::KeepAliveTimeout => {
                disconnect_reason = Some(ReasonCode::KEEP_ALIVE_TIMEOUT);
                if chatty {
                    tracing::info!(client = %id, "Client {id} has exceeded timeout, disconnecting.");
                }
            }
            Exit::WriteStalled(stall) => tracing::info!(
                client = %id,
                peer = %self.peer,
                "Client {id} has not read for {} s (its TCP window stayed closed), disconnecting.",
                stall.as_secs()
            ),
            Exit::Violation { reason, detail } => {
                Stats::add(&self.broker.stats.protocol_errors, 1);
                disconnect_reason = Some(*reason);
                tracing::info!(
                    client = %id,
                    peer = %self.peer,
                    "Client {id} disconnected due to {}: {detail}.",
                    reason.name()
                );
            }
            Exit::Control(reason) => {
                disconnect_reason = Some(*reason);
                if *reason == ReasonCode::SERVER_SHUTTING_DOWN {
                    publish_will = false;
                }
                tracing::info!(client = %id, "Client {id} disconnected by the broker: {}.", reason.name());
            }
            Exit::StoreFailed(packet) => {
                disconnect_reason = Some(ReasonCode::UNSPECIFIED_ERROR);
                tracing::info!(
                    client = %id,
                    "Client {id} disconnected: the store cannot commit what its {packet} would                      acknowledge; it may resend after reconnecting."
                );
            }
            Exit::ClusterUnavailable(packet) => {
                disconnect_reason = Some(ReasonCode::UNSPECIFIED_ERROR);
                tracing::info!(
                    client = %id,
                    "Client {id} disconnected: this cluster node cannot reach NATS JetStream to keep its {packet}; it may resend after reconnecting."
                );
            }
        }
        if self.version.is_v5() {
            if let Some(reason) = disconnect_reason {
                self.send(&Packet::Disconnect(Disconnect {
                    reason,
                    ..Disconnect::default()
                }));
            }
        }
        let was_attached = self.broker.detach(&self.session, self.generation);
        Closing {
            why,
            publish_will,
            was_attached,
            linger: self.version.is_v5()
                && disconnect_reason
                    .is_some_and(|reason| reason != ReasonCode::SERVER_SHUTTING_DOWN),
            write_last: !matches!(exit, Exit::Io(_) | Exit::WriteStalled(_)),
        }
    }

    /// After the last write: tells watchers, and returns the will for the
    /// engine's will scheduler (`Engine::schedule_will`) when it is to be
    /// published and this client may publish on its topic (checked like
    /// any publish, when it would be published).
    pub fn finish_close(&mut self, closing: Closing, now: Instant) -> Option<PendingWill> {
        self.broker.events.emit(Event::Disconnected {
            client_id: Arc::clone(&self.client_id),
            connection: self.generation,
            reason: closing.why,
        });
        if !closing.publish_will {
            return None;
        }
        let allowed = self.will.as_ref().is_some_and(|will| {
            self.broker
                .allows(&self.identity, Action::Publish, &will.topic)
        });
        if !allowed {
            return None;
        }
        self.take_will(closing.was_attached, now)
    }
}
