//! The end of a connection: the log line, the DISCONNECT a 5.0 client is
//! owed (and the lingering close that makes it arrive), the will message,
//! and handing the session back to the broker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::{lingering_close, Client, Exit};
use crate::auth::Action;
use crate::broker::{PendingWill, Stats};
use crate::codec::{Disconnect, Packet, ReasonCode};
use crate::observe::Event;

/// How long a closing connection may spend writing its last packets.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

impl<S> Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Logs why the connection ends, tells a 5.0 client where the
    /// specification asks for it, then settles the will and the session.
    pub(super) async fn close(mut self, exit: Exit) {
        let id = Arc::clone(&self.client_id);
        let mut disconnect_reason = None;
        let mut publish_will = true;
        let why: String = match &exit {
            Exit::ClientDisconnect { .. } => "disconnected".into(),
            Exit::Closed => "closed its connection".into(),
            Exit::Io(error) => format!("socket error: {error}"),
            Exit::KeepAliveTimeout => "keep alive timeout".into(),
            Exit::WriteStalled(stall) => format!("not reading for {} s", stall.as_secs()),
            Exit::Violation { reason, detail } => format!("{}: {detail}", reason.name()),
            Exit::Control(reason) => reason.name().to_string(),
            Exit::StoreFailed(packet) => format!("store cannot commit its {packet}"),
        };
        match &exit {
            Exit::ClientDisconnect {
                publish_will: with_will,
            } => {
                publish_will = *with_will;
                tracing::info!(client = %id, "Client {id} disconnected.");
            }
            Exit::Closed => tracing::info!(client = %id, "Client {id} closed its connection."),
            Exit::Io(error) => {
                tracing::info!(client = %id, "Socket error on client {id}, disconnecting: {error}.")
            }
            Exit::KeepAliveTimeout => {
                disconnect_reason = Some(ReasonCode::KEEP_ALIVE_TIMEOUT);
                tracing::info!(client = %id, "Client {id} has exceeded timeout, disconnecting.");
            }
            Exit::WriteStalled(stall) => tracing::info!(
                client = %id,
                peer = %self.origin.peer,
                "Client {id} has not read for {} s (its TCP window stayed closed), disconnecting.",
                stall.as_secs()
            ),
            Exit::Violation { reason, detail } => {
                Stats::add(&self.broker.stats.protocol_errors, 1);
                disconnect_reason = Some(*reason);
                tracing::info!(
                    client = %id,
                    peer = %self.origin.peer,
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
        }
        if self.version.is_v5() {
            if let Some(reason) = disconnect_reason {
                self.send(&Packet::Disconnect(Disconnect {
                    reason,
                    ..Disconnect::default()
                }));
            }
        }
        // The session is settled before the socket closes: a client that
        // reconnects the moment it sees the close must find a clean
        // session already gone [MQTT-3.2.2-1].
        let was_attached = self.broker.detach(&self.session, self.generation);
        // A reason the peer is owed must not be lost to a reset: linger
        // (not at shutdown, which should not wait on peers).
        let linger = self.version.is_v5()
            && disconnect_reason.is_some_and(|reason| reason != ReasonCode::SERVER_SHUTTING_DOWN);
        let mut written = false;
        if !matches!(exit, Exit::Io(_) | Exit::WriteStalled(_)) {
            let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, async {
                written = self.flush().await.is_ok();
                if !linger {
                    let _ = self.stream.shutdown().await;
                }
            })
            .await;
        }
        self.broker.events.emit(Event::Disconnected {
            client_id: Arc::clone(&id),
            connection: self.generation,
            reason: why,
        });
        let will = if publish_will { self.will.take() } else { None };
        // A will is checked like any publish, when it would be published.
        let will = will.filter(|will| {
            self.broker
                .allows(&self.identity, Action::Publish, &will.topic)
        });
        if let Some(will) = will {
            self.broker.schedule_will(PendingWill::new(
                Arc::clone(&self.session),
                self.generation,
                will,
                was_attached,
                Instant::now(),
            ));
        }
        if linger && written {
            lingering_close(self.stream).await;
        }
    }
}
