//! The end of a connection: the log line, the DISCONNECT a 5.0 client is
//! owed (and the lingering close that makes it arrive), the will message,
//! and handing the session back to the broker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::{lingering_close, Client, Exit};
use crate::auth::Action;
use crate::broker::{Broker, Stats};
use crate::codec::{Disconnect, LastWill, Packet, ReasonCode};
use crate::message::Message;
use crate::observe::Event;
use crate::session::Session;
use crate::store::Op;

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
            schedule_will(
                &self.broker,
                &self.session,
                self.generation,
                &id,
                will,
                was_attached,
            );
        }
        if linger && written {
            lingering_close(self.stream).await;
        }
    }
}

/// Publishes a will now, or after its Will Delay Interval unless the
/// session was resumed by a new connection in the meantime [MQTT-3.1.3-9].
/// The delay is capped by the session expiry: a session that ends
/// publishes its will [MQTT-3.1.2-8].
fn schedule_will(
    broker: &Arc<Broker>,
    session: &Arc<Session>,
    generation: u64,
    client_id: &Arc<str>,
    will: LastWill,
    was_attached: bool,
) {
    let expiry = session.lock().expiry_interval();
    let delay = will.delay_interval.unwrap_or(0).min(expiry);
    let message = will_message(client_id, will);
    if delay == 0 {
        broker.publish(message);
        return;
    }
    if !was_attached {
        // Taken over: a connection that resumed the session keeps the will
        // unsent; one that started clean ended the session, so it goes now.
        if !session.lock().is_alive() {
            broker.publish(message);
        }
        return;
    }
    // Kept on disk too, so a broker restart during the delay still
    // publishes it.
    let publish_at_ms = crate::store::now_ms() + u64::from(delay) * 1000;
    broker.persist(|| Op::WillPut(Arc::clone(client_id), Arc::clone(&message), publish_at_ms));
    let broker = Arc::clone(broker);
    let session = Arc::clone(session);
    let client_id = Arc::clone(client_id);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(u64::from(delay))).await;
        let resumed = session.lock().resumed_since(generation);
        if !resumed {
            broker.publish(message);
        }
        broker.persist(|| Op::WillClear(client_id));
    });
}

fn will_message(client_id: &Arc<str>, will: LastWill) -> Arc<Message> {
    let now = Instant::now();
    Arc::new(Message {
        expires_at: Message::expiry_deadline(will.properties.message_expiry_interval, now),
        topic: Arc::from(will.topic),
        payload: will.payload,
        qos: will.qos,
        retain: will.retain,
        properties: will.properties,
        publisher: Some(Arc::clone(client_id)),
    })
}
