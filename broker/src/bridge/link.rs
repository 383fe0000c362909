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

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::remote::{self, Io};
use super::status::BridgeStatus;
use super::topics;
use crate::connection::{wait_commit, wait_for_room};
use fleetmq_codec::{
    self as codec, Connect, ConnectProperties, Disconnect, LastWill, Packet, ProtocolVersion,
    PubResponse, Publish, PublishProperties, QoS, ReasonCode, Subscribe, SubscriptionOptions,
    Unsubscribe,
};
use fleetmq_core::auth::Identity;
use fleetmq_core::config::{split_address, BridgeConfig, BridgeProtocol};
use fleetmq_core::engine::Engine;
use fleetmq_core::message::Message;
use fleetmq_core::protocol::{ClientProtocol, Exit, Setup};

/// Packet ids of the link's own SUBSCRIBE and UNSUBSCRIBE to the remote,
/// sent before the local session resumes: far from the ids the session
/// hands out first.
const SUBSCRIBE_ID: u16 = u16::MAX;
const UNSUBSCRIBE_ID: u16 = u16::MAX - 1;
/// Longest wait for the remote to connect, answer CONNECT or SUBSCRIBE.
const SETUP_LIMIT: Duration = Duration::from_secs(10);
/// Unacknowledged messages a 3.1.1 link sends at once (Mosquitto's
/// default `max_inflight_messages`).
const V311_WINDOW: u16 = 20;
/// Largest packet MQTT can carry.
const MQTT_MAX: u32 = 268_435_455;

/// How a connected session ended.
enum Ended {
    Shutdown,
}

/// Why a session ended otherwise, and whether it had connected.
struct Failure {
    why: String,
    connected: bool,
}

impl Failure {
    fn before(why: impl Into<String>) -> Failure {
        Failure {
            why: why.into(),
            connected: false,
        }
    }
    fn after(why: impl Into<String>) -> Failure {
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
    fn remote_version(&self) -> ProtocolVersion {
        match self.config.protocol_version {
            BridgeProtocol::V311 => ProtocolVersion::V3_1_1,
            BridgeProtocol::V5 => ProtocolVersion::V5,
        }
    }

    /// Connects, relays, reconnects with backoff, until shutdown.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let name = self.config.name.clone();
        self.notify_local(false);
        if let Err(failure) = self.prime_local() {
            tracing::error!(bridge = %name, "Bridge {name}: {}.", failure.why);
        }
        let mut failures: u32 = 0;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let address = self.config.addresses[self.address_index].clone();
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
                self.address_index = (self.address_index + 1) % self.config.addresses.len();
            }
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
    fn notify_local(&self, up: bool) {
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

    /// One connection: connect, subscribe, resume the local session, relay.
    async fn session(
        &mut self,
        address: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Ended, Failure> {
        let name = self.config.name.clone();
        let (host, port) = split_address(address)
            .ok_or_else(|| Failure::before(format!("{address:?} is not HOST:PORT")))?;
        tracing::info!(bridge = %name, "Connecting bridge {name} ({address}).");
        let mut stream = tokio::select! {
            connected = remote::connect(host, port, self.tls.as_ref(), SETUP_LIMIT) => connected.map_err(Failure::before)?,
            _ = shutdown.changed() => return Ok(Ended::Shutdown),
        };
        let version = self.remote_version();
        let mut out = BytesMut::new();
        self.encode_connect(&mut out)?;
        write(&mut stream, &mut out)
            .await
            .map_err(Failure::before)?;
        let max_in = match self.config.max_packet_size {
            0 => self.broker.config.limits.max_packet_size.min(MQTT_MAX),
            max => max,
        };
        let mut input = BytesMut::new();
        let first = tokio::time::timeout(
            SETUP_LIMIT,
            read_packet(&mut stream, &mut input, version, max_in),
        )
        .await;
        let connack = match first {
            Err(_) => return Err(Failure::before("no CONNACK within 10 s")),
            Ok(Err(why)) => {
                if self.private && version == ProtocolVersion::V3_1_1 {
                    self.private = false;
                    return Err(Failure::before(format!(
                        "{why} before CONNACK (next attempt without the bridge bit, try_private)"
                    )));
                }
                return Err(Failure::before(format!("{why} before CONNACK")));
            }
            Ok(Ok(Packet::ConnAck(connack))) => connack,
            Ok(Ok(other)) => {
                return Err(Failure::before(format!(
                    "the remote sent {} instead of CONNACK",
                    other.name()
                )))
            }
        };
        if connack.reason != ReasonCode::SUCCESS {
            if self.private && connack.reason == ReasonCode::UNSUPPORTED_PROTOCOL_VERSION {
                self.private = false;
            }
            return Err(Failure::before(format!(
                "the remote refused the connection: {}",
                connack.reason.name()
            )));
        }
        // Subscriptions first, while no message of ours is in flight.
        self.encode_subscriptions(&mut out);
        write(&mut stream, &mut out)
            .await
            .map_err(Failure::before)?;
        let mut early = Vec::new();
        let mut acks = 0;
        let mut unsub_expected = false;
        if self.config.attempt_unsubscribe && self.out_only_filters().next().is_some() {
            unsub_expected = true;
        }
        let wanted = self.in_filters().count().min(1) + usize::from(unsub_expected);
        while acks < wanted {
            let packet = tokio::time::timeout(
                SETUP_LIMIT,
                read_packet(&mut stream, &mut input, version, max_in),
            )
            .await
            .map_err(|_| Failure::before("no SUBACK within 10 s"))?
            .map_err(Failure::before)?;
            match packet {
                Packet::SubAck(suback) => {
                    acks += 1;
                    for (reason, (filter, _)) in suback.reasons.iter().zip(self.in_filters()) {
                        if reason.is_error() {
                            tracing::warn!(bridge = %name, "Bridge {name}: the remote refused the subscription {filter}: {}.", reason.name());
                        }
                    }
                }
                Packet::UnsubAck(_) => acks += 1,
                other => early.push(other),
            }
        }
        self.status
            .connected
            .store(true, std::sync::atomic::Ordering::Relaxed);
        BridgeStatus::add(&self.status.connects, 1);
        tracing::info!(bridge = %name, "Bridge {name} connected to {address} as {} (session present: {}).", self.remote_id, connack.session_present);
        self.notify_local(true);
        if !self.config.notifications_local_only && self.config.notifications {
            let up = Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: true,
                topic: Arc::from(self.notification_topic.as_str()),
                packet_id: None,
                payload: Bytes::from_static(b"1"),
                properties: PublishProperties::default(),
            });
            encode(&up, version, &mut out);
        }
        // A 3.1.1 remote announces no Receive Maximum but has one:
        // Mosquitto closes a client with more than its max_inflight_messages
        // (20 by default) QoS 2 messages open, so a 3.1.1 link keeps to that.
        let receive_maximum = match version {
            ProtocolVersion::V5 => connack.properties.receive_maximum,
            _ => Some(V311_WINDOW),
        };
        let remote_max_packet = match (
            connack.properties.maximum_packet_size,
            self.config.max_packet_size,
        ) {
            (Some(theirs), 0) => Some(theirs),
            (Some(theirs), ours) => Some(theirs.min(ours)),
            (None, 0) => None,
            (None, ours) => Some(ours),
        };
        self.relay(
            stream,
            input,
            out,
            early,
            receive_maximum,
            remote_max_packet,
            max_in,
            shutdown,
        )
        .await
    }

    /// CONNECT, with the bridge bit when `try_private` is on (3.1.1).
    fn encode_connect(&self, out: &mut BytesMut) -> Result<(), Failure> {
        let version = self.remote_version();
        let will =
            (self.config.notifications && !self.config.notifications_local_only).then(|| {
                LastWill {
                    topic: self.notification_topic.clone(),
                    payload: Bytes::from_static(b"0"),
                    qos: QoS::AtLeastOnce,
                    retain: true,
                    delay_interval: None,
                    properties: PublishProperties::default(),
                }
            });
        let mut properties = ConnectProperties::default();
        if version == ProtocolVersion::V5 {
            properties.session_expiry_interval =
                Some(self.config.session_expiry_interval).filter(|s| *s > 0);
            properties.receive_maximum = Some(self.config.receive_maximum).filter(|r| *r > 0);
            properties.maximum_packet_size = Some(self.config.max_packet_size).filter(|m| *m > 0);
        }
        let connect = Packet::Connect(Box::new(Connect {
            protocol: version,
            clean_start: self.config.clean_session,
            keep_alive: self.config.keepalive_secs,
            client_id: self.remote_id.clone(),
            will,
            username: self.config.remote_username.clone(),
            password: self.config.remote_password.clone().map(Bytes::from),
            properties,
        }));
        let start = out.len();
        codec::encode_packet(&connect, version, out)
            .map_err(|e| Failure::before(format!("cannot encode CONNECT: {e}")))?;
        if self.private && version == ProtocolVersion::V3_1_1 {
            set_bridge_bit(&mut out[start..]);
        }
        Ok(())
    }

    fn in_filters(&self) -> impl Iterator<Item = (String, u8)> + '_ {
        self.config
            .topics
            .iter()
            .filter(|t| t.is_in())
            .map(|t| (t.remote_filter(), t.qos))
    }

    fn out_only_filters(&self) -> impl Iterator<Item = String> + '_ {
        self.config
            .topics
            .iter()
            .filter(|t| t.is_out() && !t.is_in())
            .map(|t| t.remote_filter())
    }

    /// SUBSCRIBE for `in`/`both` topics (no-local with 5.0), UNSUBSCRIBE
    /// for `out`-only ones (`attempt_unsubscribe`).
    fn encode_subscriptions(&self, out: &mut BytesMut) {
        let version = self.remote_version();
        let filters: Vec<_> = self
            .in_filters()
            .map(|(filter, qos)| {
                (
                    filter,
                    SubscriptionOptions {
                        qos: qos_of(qos),
                        no_local: version == ProtocolVersion::V5,
                        retain_as_published: true,
                        retain_handling: 0,
                    },
                )
            })
            .collect();
        if !filters.is_empty() {
            let subscribe = Packet::Subscribe(Subscribe {
                packet_id: SUBSCRIBE_ID,
                filters,
                subscription_identifier: None,
                user_properties: Vec::new(),
            });
            encode(&subscribe, version, out);
        }
        let stale: Vec<String> = self.out_only_filters().collect();
        if self.config.attempt_unsubscribe && !stale.is_empty() {
            let unsubscribe = Packet::Unsubscribe(Unsubscribe {
                packet_id: UNSUBSCRIBE_ID,
                filters: stale,
                user_properties: Vec::new(),
            });
            encode(&unsubscribe, version, out);
        }
    }

    /// Resumes the local session and relays until the link fails or the
    /// broker stops.
    #[allow(clippy::too_many_arguments)]
    async fn relay(
        &mut self,
        mut stream: Box<dyn Io>,
        mut input: BytesMut,
        mut out: BytesMut,
        early: Vec<Packet>,
        receive_maximum: Option<u16>,
        remote_max_packet: Option<u32>,
        max_in: u32,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Ended, Failure> {
        let version = self.remote_version();
        let (mut protocol, mut control, session_present) =
            self.attach_local(receive_maximum, remote_max_packet)?;
        let mut committed = ClientProtocol::store_progress(&self.broker);
        let now = std::time::Instant::now();
        if session_present {
            protocol.resend_inflight(now);
        }
        let result = self
            .relay_loop(
                &mut stream,
                &mut input,
                &mut out,
                early,
                &mut protocol,
                &mut control,
                &mut committed,
                max_in,
                version,
                shutdown,
            )
            .await;
        let exit = match &result {
            Ok(Ended::Shutdown) => Exit::Control(ReasonCode::SERVER_SHUTTING_DOWN),
            Err(_) => Exit::Closed,
        };
        let closing = protocol.begin_close(&exit);
        let _ = protocol.finish_close(closing, std::time::Instant::now());
        if let Ok(Ended::Shutdown) = result {
            let disconnect = Packet::Disconnect(Disconnect::default());
            encode(&disconnect, version, &mut out);
            let _ =
                tokio::time::timeout(Duration::from_secs(1), write(&mut stream, &mut out)).await;
        }
        result
    }

    /// Makes the local session and its subscriptions before the first
    /// connect, so what is published while the remote is not reached yet
    /// waits in the session's queue instead of being lost.
    fn prime_local(&self) -> Result<(), Failure> {
        if self.config.local_clean() {
            return Ok(());
        }
        let (mut protocol, _control, _) = self.attach_local(None, None)?;
        let subscribed = self.subscribe_local(&mut protocol, std::time::Instant::now());
        let closing = protocol.begin_close(&Exit::Control(ReasonCode::SUCCESS));
        let _ = protocol.finish_close(closing, std::time::Instant::now());
        subscribed
    }

    /// Attaches the bridge's local session, as a client's CONNECT would.
    fn attach_local(
        &self,
        receive_maximum: Option<u16>,
        remote_max_packet: Option<u32>,
    ) -> Result<(ClientProtocol, fleetmq_core::session::ControlReceiver, bool), Failure> {
        let clean = self.config.local_clean();
        let identity = Arc::new(Identity::bridge(&self.config.name, &self.local_id));
        let expiry = if clean { 0 } else { u32::MAX };
        let attached = self
            .broker
            .attach(&self.local_id, clean, expiry, Arc::clone(&identity), None)
            .map_err(|foreign| {
                Failure::after(format!(
                    "the local session {} belongs to {}",
                    self.local_id, foreign.owner
                ))
            })?;
        let protocol = ClientProtocol::new(Setup {
            broker: Arc::clone(&self.broker),
            version: ProtocolVersion::V5,
            identity,
            session: attached.session,
            generation: attached.generation,
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            will: None,
            receive_maximum,
            maximum_packet_size: remote_max_packet,
            topic_alias_maximum: None,
            committed: ClientProtocol::store_progress(&self.broker),
            mount_point: None,
        });
        Ok((protocol, attached.control, attached.session_present))
    }

    /// Subscribes the local session to the `out` patterns (dropping
    /// patterns no longer configured).
    fn subscribe_local(
        &self,
        protocol: &mut ClientProtocol,
        now: std::time::Instant,
    ) -> Result<(), Failure> {
        let wanted: Vec<(String, SubscriptionOptions)> = self
            .config
            .topics
            .iter()
            .filter(|t| t.is_out())
            .map(|t| {
                (
                    t.local_filter(),
                    SubscriptionOptions {
                        qos: qos_of(t.qos),
                        // What came in through this bridge does not go back.
                        no_local: true,
                        retain_as_published: true,
                        // Retained messages reach the remote when published,
                        // not again at every reconnect.
                        retain_handling: 2,
                    },
                )
            })
            .collect();
        let stale: Vec<String> = protocol
            .session()
            .lock()
            .subscriptions()
            .map(|(filter, _)| filter.clone())
            .filter(|filter| !wanted.iter().any(|(w, _)| w == filter))
            .collect();
        if !stale.is_empty() {
            protocol
                .on_packet(
                    Packet::Unsubscribe(Unsubscribe {
                        packet_id: 2,
                        filters: stale,
                        user_properties: Vec::new(),
                    }),
                    now,
                )
                .map_err(|exit| Failure::after(format!("local session: {exit:?}")))?;
        }
        if !wanted.is_empty() {
            protocol
                .on_packet(
                    Packet::Subscribe(Subscribe {
                        packet_id: 1,
                        filters: wanted,
                        subscription_identifier: None,
                        user_properties: Vec::new(),
                    }),
                    now,
                )
                .map_err(|exit| Failure::after(format!("local session: {exit:?}")))?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn relay_loop(
        &mut self,
        stream: &mut Box<dyn Io>,
        input: &mut BytesMut,
        out: &mut BytesMut,
        early: Vec<Packet>,
        protocol: &mut ClientProtocol,
        control: &mut fleetmq_core::session::ControlReceiver,
        committed: &mut Option<watch::Receiver<fleetmq_core::store::Progress>>,
        max_in: u32,
        version: ProtocolVersion,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Ended, Failure> {
        self.subscribe_local(protocol, std::time::Instant::now())?;
        for packet in early {
            self.relay_remote(packet, protocol, out)?;
        }
        let keep_alive = Duration::from_secs(u64::from(self.config.keepalive_secs));
        let mut last_sent = Instant::now();
        let mut last_heard = Instant::now();
        let mut ping_sent: Option<Instant> = None;
        let recheck = Duration::from_millis(self.broker.config.limits.queue_full_wait_ms.max(1));
        let stall = Duration::from_secs(self.broker.config.limits.write_timeout_secs.max(1));
        loop {
            protocol.drain(std::time::Instant::now());
            self.relay_local(protocol, out)?;
            if !out.is_empty() {
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => return Ok(Ended::Shutdown),
                    written = tokio::time::timeout(stall, write(stream, out)) => match written {
                        Ok(Ok(())) => last_sent = Instant::now(),
                        Ok(Err(why)) => return Err(Failure::after(why)),
                        Err(_) => return Err(Failure::after(format!("the remote read nothing for {} s", stall.as_secs()))),
                    },
                }
            }
            let reading = protocol.pressure().is_empty();
            let session = Arc::clone(protocol.session());
            let ping_at = match ping_sent {
                Some(sent) => sent + keep_alive,
                None => last_sent.max(last_heard) + keep_alive,
            };
            tokio::select! {
                biased;
                _ = shutdown.changed() => return Ok(Ended::Shutdown),
                request = control.recv() => {
                    let reason = match request {
                        Some(fleetmq_core::session::Control::Disconnect(reason)) => reason.name(),
                        None => "gone",
                    };
                    return Err(Failure::after(format!("the local session was closed ({reason})")));
                }
                _ = wait_for_room(protocol.pressure(), recheck), if !reading => {}
                read = stream.read_buf(input), if reading => match read {
                    Ok(0) => return Err(Failure::after("the remote closed the connection")),
                    Ok(_) => {
                        last_heard = Instant::now();
                        loop {
                            match codec::decode_packet(input, Some(version), max_in) {
                                Ok(Some(packet)) => self.relay_remote(packet, protocol, out)?,
                                Ok(None) => break,
                                Err(error) => return Err(Failure::after(format!("the remote sent a bad packet: {error}"))),
                            }
                        }
                    }
                    Err(error) => return Err(Failure::after(format!("socket error: {error}"))),
                },
                _ = session.wakeup.notified() => {}
                _ = wait_commit(committed), if protocol.has_pending_acks() => {
                    protocol.on_commit().map_err(|exit| Failure::after(format!("local session: {exit:?}")))?;
                }
                _ = tokio::time::sleep_until(ping_at), if !keep_alive.is_zero() => {
                    if let Some(sent) = ping_sent {
                        if last_heard <= sent {
                            return Err(Failure::after(format!("no answer from the remote for {} s (keep alive)", keep_alive.as_secs())));
                        }
                    }
                    ping_sent = Some(Instant::now());
                    encode(&Packet::PingReq, version, out);
                }
            }
            if ping_sent.is_some_and(|sent| last_heard > sent) {
                ping_sent = None;
            }
        }
    }

    /// Moves what the local session wrote towards the remote.
    fn relay_local(
        &self,
        protocol: &mut ClientProtocol,
        out: &mut BytesMut,
    ) -> Result<(), Failure> {
        let version = self.remote_version();
        let name = &self.config.name;
        let now = std::time::Instant::now();
        let mut acks_here = Vec::new();
        loop {
            let packet = match codec::decode_packet(
                protocol.output(),
                Some(ProtocolVersion::V5),
                u32::MAX,
            ) {
                Ok(Some(packet)) => packet,
                Ok(None) => break,
                Err(error) => {
                    return Err(Failure::after(format!(
                        "local session wrote a bad packet: {error}"
                    )))
                }
            };
            match packet {
                Packet::Publish(mut publish) => {
                    let Some(remote_topic) = topics::to_remote(&self.config.topics, &publish.topic)
                    else {
                        tracing::debug!(bridge = %name, "Bridge {name}: no out topic maps {}, not forwarded.", publish.topic);
                        if let Some(id) = publish.packet_id {
                            acks_here.push(match publish.qos {
                                QoS::ExactlyOnce => Packet::PubRec(PubResponse::success(id)),
                                _ => Packet::PubAck(PubResponse::success(id)),
                            });
                        }
                        continue;
                    };
                    publish.topic = Arc::from(remote_topic);
                    if !self.config.outgoing_retain {
                        publish.retain = false;
                    }
                    publish.properties.topic_alias = None;
                    publish.properties.subscription_identifiers.clear();
                    encode(&Packet::Publish(publish), version, out);
                    BridgeStatus::add(&self.status.sent, 1);
                }
                packet @ (Packet::PubAck(_)
                | Packet::PubRec(_)
                | Packet::PubRel(_)
                | Packet::PubComp(_)) => {
                    encode(&packet, version, out);
                }
                Packet::SubAck(suback) => {
                    for reason in suback.reasons.iter().filter(|r| r.is_error()) {
                        tracing::warn!(bridge = %name, "Bridge {name}: a local subscription was refused: {}.", reason.name());
                    }
                }
                Packet::Disconnect(disconnect) => {
                    return Err(Failure::after(format!(
                        "the local session ended: {}",
                        disconnect.reason.name()
                    )));
                }
                _ => {}
            }
        }
        for ack in acks_here {
            protocol
                .on_packet(ack, now)
                .map_err(|exit| Failure::after(format!("local session: {exit:?}")))?;
        }
        Ok(())
    }

    /// Hands a packet of the remote to the local session.
    fn relay_remote(
        &self,
        packet: Packet,
        protocol: &mut ClientProtocol,
        out: &mut BytesMut,
    ) -> Result<(), Failure> {
        let name = &self.config.name;
        let now = std::time::Instant::now();
        let local = |exit: Exit| Failure::after(format!("local session: {exit:?}"));
        match packet {
            Packet::Publish(mut publish) => {
                BridgeStatus::add(&self.status.received, 1);
                let Some(local_topic) = topics::to_local(&self.config.topics, &publish.topic)
                else {
                    tracing::info!(bridge = %name, "Bridge {name}: the remote sent {}, which no in topic covers; acknowledged and dropped.", publish.topic);
                    if let Some(id) = publish.packet_id {
                        let ack = match publish.qos {
                            QoS::ExactlyOnce => Packet::PubRec(PubResponse::success(id)),
                            _ => Packet::PubAck(PubResponse::success(id)),
                        };
                        encode(&ack, self.remote_version(), out);
                    }
                    return Ok(());
                };
                publish.topic = Arc::from(local_topic);
                publish.properties.topic_alias = None;
                publish.properties.subscription_identifiers.clear();
                protocol
                    .on_packet(Packet::Publish(publish), now)
                    .map_err(local)
            }
            packet @ (Packet::PubAck(_)
            | Packet::PubRec(_)
            | Packet::PubRel(_)
            | Packet::PubComp(_)) => protocol.on_packet(packet, now).map_err(local),
            Packet::PingResp | Packet::SubAck(_) | Packet::UnsubAck(_) => Ok(()),
            Packet::Disconnect(disconnect) => Err(Failure::after(format!(
                "the remote disconnected: {}",
                disconnect.reason.name()
            ))),
            other => Err(Failure::after(format!(
                "the remote sent {}, which a server must not",
                other.name()
            ))),
        }
    }
}

fn qos_of(qos: u8) -> QoS {
    match qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn encode(packet: &Packet, version: ProtocolVersion, out: &mut BytesMut) {
    if let Err(error) = codec::encode_packet(packet, version, out) {
        tracing::error!("Bridge: could not encode {}: {error}.", packet.name());
    }
}

/// Sets Mosquitto's bridge bit (0x80) in a 3.1.1 CONNECT's protocol level.
fn set_bridge_bit(connect: &mut [u8]) {
    // Fixed header byte, remaining length (1-4 bytes), then 00 04 "MQTT" LEVEL.
    let mut index = 1;
    while index < connect.len() && connect[index] & 0x80 != 0 {
        index += 1;
    }
    let level = index + 1 + 6;
    if let Some(byte) = connect.get_mut(level) {
        *byte |= 0x80;
    }
}

async fn write(stream: &mut Box<dyn Io>, out: &mut BytesMut) -> Result<(), String> {
    if out.is_empty() {
        return Ok(());
    }
    stream
        .write_all(out)
        .await
        .map_err(|e| format!("socket error: {e}"))?;
    stream
        .flush()
        .await
        .map_err(|e| format!("socket error: {e}"))?;
    out.clear();
    Ok(())
}

async fn read_packet(
    stream: &mut Box<dyn Io>,
    input: &mut BytesMut,
    version: ProtocolVersion,
    max: u32,
) -> Result<Packet, String> {
    loop {
        match codec::decode_packet(input, Some(version), max) {
            Ok(Some(packet)) => return Ok(packet),
            Ok(None) => {}
            Err(error) => return Err(format!("the remote sent a bad packet: {error}")),
        }
        match stream.read_buf(input).await {
            Ok(0) => return Err("the remote closed the connection".into()),
            Ok(_) => {}
            Err(error) => return Err(format!("socket error: {error}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bridge_bit_lands_on_the_protocol_level() {
        let mut out = BytesMut::new();
        let connect = Packet::Connect(Box::new(Connect {
            protocol: ProtocolVersion::V3_1_1,
            clean_start: false,
            keep_alive: 60,
            client_id: "b".into(),
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
        }));
        codec::encode_packet(&connect, ProtocolVersion::V3_1_1, &mut out).unwrap_or_default();
        set_bridge_bit(&mut out);
        assert_eq!(&out[2..9], b"\x00\x04MQTT\x84");
    }
}
