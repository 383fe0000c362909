//! One client connection: from the first byte to the close.
//!
//! [`serve`] reads the CONNECT (within `limits.connect_timeout_secs`),
//! attaches the session and answers CONNACK ([`handshake`]), then runs one
//! loop that reads packets ([`inbound`]), writes what the session has queued
//! within the inflight window ([`outbound`]), watches keep alive, and obeys
//! take-over and shutdown requests; [`close`] handles the will and the
//! session when the loop ends.
//!
//! The stream is generic so TLS streams use the same code. Socket writes
//! are batched: everything produced by one turn of the loop goes out in one
//! `write_all`. No lock is held across an `.await`.

mod close;
mod handshake;
mod inbound;
mod outbound;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::auth::Identity;
use crate::broker::{Broker, Stats};
use crate::codec::{self, LastWill, Packet, ProtocolVersion, ReasonCode};
use crate::config::ListenerConfig;
use crate::observe::ClientCounters;
use crate::session::{Control, Session};
use crate::tls::{ConnectClock, TlsInfo};

/// Where a connection came from, for logs and limits.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The peer's socket address.
    pub peer: SocketAddr,
    /// The listener's name.
    pub listener: Arc<str>,
    /// True when the connection exceeds a connection limit: its CONNECT is
    /// answered with "server busy" and the connection closed.
    pub over_limit: bool,
    /// Setup instants so far (TCP accept, TLS steps).
    pub clock: ConnectClock,
    /// The TLS session, on TLS listeners.
    pub tls: Option<TlsInfo>,
    /// The listener's settings (authentication options).
    pub settings: Arc<ListenerConfig>,
}

/// Why a connection's loop ended.
#[derive(Debug)]
enum Exit {
    /// The client sent DISCONNECT; `publish_will` for 5.0 reason 0x04.
    ClientDisconnect { publish_will: bool },
    /// The client closed the socket without DISCONNECT.
    Closed,
    /// Reading or writing failed.
    Io(std::io::Error),
    /// Nothing arrived within 1.5 times the keep alive [MQTT-3.1.2-24].
    KeepAliveTimeout,
    /// The client broke the protocol; 5.0 clients get DISCONNECT `reason`.
    Violation { reason: ReasonCode, detail: String },
    /// The broker asked the connection to close (take-over, shutdown).
    Control(ReasonCode),
}

impl Exit {
    fn violation(reason: ReasonCode, detail: impl Into<String>) -> Exit {
        Exit::Violation {
            reason,
            detail: detail.into(),
        }
    }
}

/// The most bytes one turn of the loop moves from the session queue into
/// the write buffer, so one busy subscriber cannot grow it without bound.
const WRITE_BUDGET: usize = 64 * 1024;

/// A connected, CONNACKed client.
struct Client<S> {
    stream: S,
    broker: Arc<Broker>,
    origin: Origin,
    /// Bytes read but not yet decoded.
    read_buf: BytesMut,
    /// Encoded packets not yet written.
    write_buf: BytesMut,
    version: ProtocolVersion,
    client_id: Arc<str>,
    /// Who the client is, for every access decision.
    identity: Arc<Identity>,
    session: Arc<Session>,
    generation: u64,
    /// Keep alive enforced by the broker; zero disables it.
    keep_alive: Duration,
    will: Option<LastWill>,
    /// Unacknowledged QoS 1/2 PUBLISHes we may have out at once: the
    /// client's Receive Maximum, capped by `limits.max_inflight`.
    send_window: usize,
    /// The client's Maximum Packet Size; larger messages are not sent to it.
    client_max_packet: usize,
    /// Topic aliases the client defined (5.0).
    topic_aliases: HashMap<u16, Arc<str>>,
    control: mpsc::UnboundedReceiver<Control>,
    /// Traffic of this connection, shared with watchers.
    counters: Arc<ClientCounters>,
    /// Acknowledgements waiting for their store ticket to commit, in the
    /// order their PUBLISHes arrived [MQTT-4.6.0-2].
    pending_acks: VecDeque<(u64, Packet)>,
    /// The store's committed ticket, when acknowledgements wait for it.
    committed: Option<watch::Receiver<u64>>,
}

/// Waits for the store to commit more (forever without a store).
async fn wait_commit(committed: &mut Option<watch::Receiver<u64>>) {
    match committed {
        Some(receiver) => {
            if receiver.changed().await.is_err() {
                // The writer is gone (shutdown): nothing more will commit.
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

/// Serves one accepted connection until it closes.
pub async fn serve<S>(
    stream: S,
    origin: Origin,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let Some(mut client) = handshake::accept(stream, origin, broker, &mut shutdown).await else {
        return;
    };
    let exit = client.run(&mut shutdown).await;
    client.close(exit).await;
}

impl<S> Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// The read / write / keep-alive loop.
    async fn run(&mut self, shutdown: &mut watch::Receiver<bool>) -> Exit {
        let mut last_read = Instant::now();
        loop {
            if let Err(exit) = self.drain_queue() {
                return exit;
            }
            if let Err(error) = self.flush().await {
                return Exit::Io(error);
            }
            let deadline = last_read + self.keep_alive.mul_f32(1.5);
            let session = Arc::clone(&self.session);
            self.read_buf.reserve(4096);
            tokio::select! {
                biased;
                request = self.control.recv() => {
                    match request {
                        Some(Control::Disconnect(reason)) => return Exit::Control(reason),
                        // The broker dropped the sender: treat as shutdown.
                        None => return Exit::Control(ReasonCode::SERVER_SHUTTING_DOWN),
                    }
                }
                _ = shutdown.changed() => return Exit::Control(ReasonCode::SERVER_SHUTTING_DOWN),
                read = self.stream.read_buf(&mut self.read_buf) => {
                    match read {
                        Ok(0) => return Exit::Closed,
                        Ok(n) => {
                            Stats::add(&self.broker.stats.bytes_received, n as u64);
                            ClientCounters::add(&self.counters.bytes_in, n as u64);
                            self.counters.touch();
                            last_read = Instant::now();
                            if let Err(exit) = self.process_input() {
                                return exit;
                            }
                        }
                        Err(error) => return Exit::Io(error),
                    }
                }
                _ = session.wakeup.notified() => {}
                _ = wait_commit(&mut self.committed), if !self.pending_acks.is_empty() => {
                    self.release_acks();
                }
                _ = tokio::time::sleep_until(deadline), if !self.keep_alive.is_zero() => {
                    return Exit::KeepAliveTimeout;
                }
            }
        }
    }

    /// Sends an acknowledgement once `ticket` is committed (at once for 0),
    /// never ahead of an earlier one.
    fn send_ack(&mut self, ticket: u64, packet: Packet) {
        let committed = self.committed.as_ref().map_or(u64::MAX, |c| *c.borrow());
        if self.pending_acks.is_empty() && ticket <= committed {
            self.send(&packet);
        } else {
            self.pending_acks.push_back((ticket, packet));
        }
    }

    /// Sends the acknowledgements whose records are now durable.
    fn release_acks(&mut self) {
        let committed = self.committed.as_ref().map_or(u64::MAX, |c| *c.borrow());
        while self
            .pending_acks
            .front()
            .is_some_and(|(ticket, _)| *ticket <= committed)
        {
            if let Some((_, packet)) = self.pending_acks.pop_front() {
                self.send(&packet);
            }
        }
    }

    /// Decodes and handles every whole packet in the read buffer.
    fn process_input(&mut self) -> Result<(), Exit> {
        let max = self.broker.config.limits.max_packet_size;
        loop {
            match codec::decode_packet(&mut self.read_buf, Some(self.version), max) {
                Ok(Some(packet)) => {
                    Stats::add(&self.broker.stats.messages_received, 1);
                    self.handle(packet)?;
                }
                Ok(None) => return Ok(()),
                Err(error) => return Err(Exit::violation(error.reason_code(), error.to_string())),
            }
        }
    }

    /// Encodes a packet into the write buffer.
    fn send(&mut self, packet: &Packet) {
        match codec::encode_packet(packet, self.version, &mut self.write_buf) {
            Ok(()) => Stats::add(&self.broker.stats.messages_sent, 1),
            // Only our own packets are encoded here; failing to encode one
            // is a bug worth a loud line, not a reason to drop the client.
            Err(error) => tracing::error!(
                client = %self.client_id,
                "Could not encode {} for client {}: {error}.",
                packet.name(),
                self.client_id
            ),
        }
    }

    /// Writes everything buffered.
    async fn flush(&mut self) -> std::io::Result<()> {
        if self.write_buf.is_empty() {
            return Ok(());
        }
        self.stream.write_all(&self.write_buf).await?;
        Stats::add(&self.broker.stats.bytes_sent, self.write_buf.len() as u64);
        ClientCounters::add(&self.counters.bytes_out, self.write_buf.len() as u64);
        self.write_buf.clear();
        Ok(())
    }
}
