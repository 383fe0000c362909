//! The relay of one connected bridge link: the bridge's local session,
//! attached like a client's and driven through the socket-free
//! [`ClientProtocol`], and the remote socket, with packets passed between
//! them under each direction's own packet ids (see [`super::link`]).
//!
//! It must not block other clients: every wait is on this link's socket,
//! its session or a timer, and no lock is held across an `.await`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::remote::Io;
use super::status::BridgeStatus;
use super::topics;
use crate::connection::{wait_commit, wait_for_room};
use fleetmq_codec::{
    self as codec, Disconnect, Packet, ProtocolVersion, PubResponse, QoS, ReasonCode, Subscribe,
    SubscriptionOptions, Unsubscribe,
};
use fleetmq_core::auth::Identity;
use fleetmq_core::protocol::{ClientProtocol, Exit, Setup};
use fleetmq_core::session::QueueLimits;

use super::connect::{socket_error, write};
use super::link::{Ended, Failure, Link};

impl Link {
    /// Resumes the local session and relays until the link fails or the
    /// broker stops.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn relay(
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
    pub(super) fn prime_local(&self) -> Result<(), String> {
        if self.config.local_clean() {
            return Ok(());
        }
        let (mut protocol, _control, _) = self.attach_local(None, None).map_err(|f| f.why)?;
        let subscribed = self.subscribe_local(&mut protocol, std::time::Instant::now());
        let closing = protocol.begin_close(&Exit::Control(ReasonCode::SUCCESS));
        let _ = protocol.finish_close(closing, std::time::Instant::now());
        subscribed.map_err(|f| f.why)
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
        let limits = &self.broker.config.limits;
        attached.session.lock().set_queue_limits(QueueLimits {
            max_messages: self
                .config
                .max_queued_messages
                .unwrap_or(limits.max_queued_messages),
            max_bytes: self
                .config
                .max_queued_bytes
                .unwrap_or(limits.max_queued_bytes),
            full_wait: Duration::from_millis(limits.queue_full_wait_ms),
            offline_qos0: self.broker.config.mqtt.queue_qos0_messages,
        });
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
                // Keep alive is the client's duty to send [MQTT-3.1.2-23]:
                // a link that only receives still pings.
                None => last_sent + keep_alive,
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
                    Err(error) => return Err(Failure::after(socket_error(&error))),
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

pub(super) fn qos_of(qos: u8) -> QoS {
    match qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

pub(super) fn encode(packet: &Packet, version: ProtocolVersion, out: &mut BytesMut) {
    if let Err(error) = codec::encode_packet(packet, version, out) {
        tracing::error!("Bridge: could not encode {}: {error}.", packet.name());
    }
}
