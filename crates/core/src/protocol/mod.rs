//! One client's MQTT conversation after CONNACK, without IO.
//!
//! A [`ClientProtocol`] takes bytes read from the client
//! ([`ClientProtocol::on_input`]) or decoded packets
//! ([`ClientProtocol::on_packet`]), the time they arrived, and the store's
//! progress ([`ClientProtocol::on_commit`]); it answers with bytes to write
//! (its outbox, [`ClientProtocol::output`]), acknowledgements that wait in
//! order for the commit ticket of the records they promise ([`acks`]),
//! sessions whose full queues hold this publisher back
//! ([`ClientProtocol::pressure`]), an [`Exit`] that says the connection must
//! close and why, and at the close a [`PendingWill`] to schedule
//! ([`close`]). Store ops come from the session's and the engine's methods
//! and are submitted through the engine (a channel send); the protocol
//! never waits: the IO loop waits for tickets, room, keep alive, the socket
//! and take-over requests, then calls back in (decision 0105).
//!
//! [`connect`] holds what the broker decides about a CONNECT once its
//! client is known (will checks, keep alive, session expiry, CONNACK
//! properties); reading it and authenticating stay with the IO side.
//!
//! It must not touch sockets, TLS, listeners or `tokio::io`, and has no
//! `.await`: everything here runs synchronously, and its tests drive it
//! without a runtime.

mod acks;
mod close;
pub mod connect;
pub mod device_report;
mod exit;
mod inbound;
mod mount;
mod ota_message;
mod outbound;
mod provision_request;
mod refusal;
#[cfg(test)]
mod tests;
mod topic_alias_out;

pub use close::Closing;
pub use exit::Exit;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::sync::watch;

use crate::auth::Identity;
use crate::engine::{Engine, PendingWill, Stats};
use crate::events::ClientCounters;
use crate::session::Session;
use crate::store::Progress;
use fleetmq_codec::{self as codec, LastWill, Packet, ProtocolVersion};

/// The most bytes one drain moves from the session queue into the
/// outbox, so one busy subscriber cannot grow it without bound.
pub const WRITE_BUDGET: usize = 64 * 1024;

/// What a [`ClientProtocol`] starts from: the accepted CONNECT and the
/// session it attached to.
#[derive(Debug)]
pub struct Setup {
    pub broker: Arc<Engine>,
    pub version: ProtocolVersion,
    /// Who the client is, for every access decision.
    pub identity: Arc<Identity>,
    pub session: Arc<Session>,
    /// This connection's generation (see `session::Attachment`).
    pub generation: u64,
    /// For log lines.
    pub peer: SocketAddr,
    pub will: Option<LastWill>,
    /// The client's Receive Maximum (5.0), if it sent one.
    pub receive_maximum: Option<u16>,
    /// The client's Maximum Packet Size (5.0), if it sent one.
    pub maximum_packet_size: Option<u32>,
    /// The client's Topic Alias Maximum (5.0), if it sent one: how many
    /// aliases the broker may use towards it.
    pub topic_alias_maximum: Option<u16>,
    /// The store's progress, when acknowledgements wait for it
    /// ([`ClientProtocol::store_progress`]).
    pub committed: Option<watch::Receiver<Progress>>,
    /// The listener's mount point (`mount_point`), if any.
    pub mount_point: Option<Arc<str>>,
}

/// One connected client's protocol state.
#[derive(Debug)]
pub struct ClientProtocol {
    broker: Arc<Engine>,
    version: ProtocolVersion,
    client_id: Arc<str>,
    identity: Arc<Identity>,
    session: Arc<Session>,
    generation: u64,
    peer: SocketAddr,
    /// Boxed: 216 bytes inline in every held connection, will or not.
    will: Option<Box<LastWill>>,
    /// Unacknowledged QoS 1/2 PUBLISHes we may have out at once: the
    /// client's Receive Maximum, capped by `limits.max_inflight`.
    send_window: usize,
    /// The client's Maximum Packet Size; larger messages are not sent to it.
    client_max_packet: usize,
    /// Topic aliases the client defined (5.0); boxed and made at the first
    /// one, as most devices define none (48 bytes in every held connection
    /// otherwise; the box is the point, hence the lint's exception).
    #[allow(clippy::box_collection)]
    topic_aliases: Option<Box<HashMap<u16, Arc<str>>>>,
    /// Topic aliases the broker gives to topics it sends (5.0), only when
    /// the client announced a Topic Alias Maximum: boxed so a connection
    /// without them pays one pointer.
    outbound_aliases: Option<Box<topic_alias_out::OutboundAliases>>,
    /// Traffic of this connection, shared with watchers.
    counters: Arc<ClientCounters>,
    /// Encoded packets not yet written.
    out: BytesMut,
    /// Acknowledgements waiting for their store ticket to commit, in the
    /// order their packets arrived [MQTT-4.6.0-2].
    pending_acks: VecDeque<acks::PendingAck>,
    /// The store's progress, when acknowledgements wait for it.
    committed: Option<watch::Receiver<Progress>>,
    /// Sessions whose full queues took this client's messages: the IO
    /// loop stops reading until they have room.
    pressure: Vec<Arc<Session>>,
    /// Topic prefix of this listener's clients (see `mount.rs`).
    mount_point: Option<Arc<str>>,
    /// The device sent its report already (see `device_report.rs`).
    reported: bool,
    /// The last PUBLISH topic, shared by the next PUBLISH to the same
    /// topic (decision 0191); let go while the connection is quiet.
    topics: codec::TopicCache,
}

impl ClientProtocol {
    /// The protocol of a client whose CONNECT was accepted.
    pub fn new(setup: Setup) -> ClientProtocol {
        let limits = &setup.broker.config.limits;
        let send_window = usize::from(limits.max_inflight)
            .min(usize::from(setup.receive_maximum.unwrap_or(u16::MAX)))
            .max(1);
        let client_max_packet = setup
            .maximum_packet_size
            .map_or(usize::MAX, |max| max as usize);
        let outbound_aliases = match setup.version {
            ProtocolVersion::V5 => topic_alias_out::OutboundAliases::for_client(
                setup.topic_alias_maximum,
                limits.max_outbound_topic_aliases,
            ),
            _ => None,
        };
        ClientProtocol {
            client_id: Arc::clone(&setup.session.client_id),
            broker: setup.broker,
            version: setup.version,
            identity: setup.identity,
            session: setup.session,
            generation: setup.generation,
            peer: setup.peer,
            will: setup.will.map(|mut will| {
                if let Some(mount) = &setup.mount_point {
                    will.topic = format!("{mount}{}", will.topic);
                }
                Box::new(will)
            }),
            send_window,
            client_max_packet,
            topic_aliases: None,
            outbound_aliases,
            counters: Arc::new(ClientCounters::default()),
            out: BytesMut::new(),
            pending_acks: VecDeque::new(),
            committed: setup.committed,
            pressure: Vec::new(),
            mount_point: setup.mount_point,
            reported: false,
            topics: codec::TopicCache::default(),
        }
    }

    /// The store's progress, when its fsync policy makes acknowledgements
    /// wait for commits.
    pub fn store_progress(broker: &Engine) -> Option<watch::Receiver<Progress>> {
        broker
            .store
            .as_ref()
            .filter(|store| store.gates_acks())
            .map(|store| store.progress())
    }

    /// Bytes to write, in order; the IO loop writes from the front.
    pub fn output(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    /// Sessions holding this publisher back; the IO loop pops those that
    /// have room again.
    pub fn pressure(&mut self) -> &mut Vec<Arc<Session>> {
        &mut self.pressure
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    pub fn client_id(&self) -> &Arc<str> {
        &self.client_id
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    pub fn counters(&self) -> &Arc<ClientCounters> {
        &self.counters
    }

    /// Most topic aliases the broker uses towards this client (0: none):
    /// the client's Topic Alias Maximum capped by
    /// `limits.max_outbound_topic_aliases`.
    pub fn outbound_topic_aliases(&self) -> u16 {
        self.outbound_aliases
            .as_deref()
            .map_or(0, topic_alias_out::OutboundAliases::capacity)
    }

    /// Unacknowledged QoS 1/2 PUBLISHes allowed out at once.
    pub fn send_window(&self) -> usize {
        self.send_window
    }

    /// Decodes and handles every whole packet in `input` (bytes read and
    /// not yet decoded; what is left is an incomplete packet).
    pub fn on_input(&mut self, input: &mut BytesMut, now: Instant) -> Result<(), Exit> {
        let max = self.broker.config.limits.max_packet_size;
        loop {
            match codec::decode_packet_with(input, Some(self.version), max, &mut self.topics) {
                Ok(Some(packet)) => {
                    Stats::add(&self.broker.stats.messages_received, 1);
                    self.on_packet(packet, now)?;
                }
                Ok(None) => return Ok(()),
                Err(error) => return Err(Exit::violation(error.reason_code(), error.to_string())),
            }
        }
    }

    /// Lets go of the last PUBLISH topic kept for sharing: called when the
    /// connection goes quiet, so an idle device holds no copy of it.
    pub fn forget_last_topic(&mut self) {
        self.topics.clear();
    }

    /// Encodes a packet into the outbox.
    pub fn send(&mut self, packet: &Packet) {
        match codec::encode_packet(packet, self.version, &mut self.out) {
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

    /// The will to schedule when the connection ends (see [`close`]).
    fn take_will(&mut self, was_attached: bool, now: Instant) -> Option<PendingWill> {
        let will = self.will.take()?;
        Some(PendingWill::new(
            Arc::clone(&self.session),
            self.generation,
            *will,
            was_attached,
            now,
        ))
    }
}
