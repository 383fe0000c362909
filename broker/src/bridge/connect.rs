//! Setting up one connection of a bridge link: TCP or TLS to the remote,
//! CONNECT (with Mosquitto's bridge bit under `try_private`), CONNACK,
//! then the remote subscriptions for `in` topics and the unsubscriptions
//! for `out`-only ones, before the local session resumes.
//!
//! It must not touch the local session: [`super::relay`] does.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::remote::{self, Io};
use super::status::BridgeStatus;
use fleetmq_codec::{
    self as codec, Connect, ConnectProperties, LastWill, Packet, ProtocolVersion, Publish,
    PublishProperties, QoS, ReasonCode, Subscribe, SubscriptionOptions, Unsubscribe,
};
use fleetmq_core::config::split_address;

use super::link::{Ended, Failure, Link, MQTT_MAX, SETUP_LIMIT, V311_WINDOW};
use super::relay::{encode, qos_of};

/// Packet ids of the link's own SUBSCRIBE and UNSUBSCRIBE to the remote,
/// sent before the local session resumes: far from the ids the session
/// hands out first.
const SUBSCRIBE_ID: u16 = u16::MAX;
const UNSUBSCRIBE_ID: u16 = u16::MAX - 1;

impl Link {
    /// One connection: connect, subscribe, resume the local session, relay.
    pub(super) async fn session(
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
                // A remote that does not know the bridge bit closes the
                // connection; a TLS alert or a reset is another matter.
                if self.private && version == ProtocolVersion::V3_1_1 && why == CLOSED {
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

    pub(super) fn in_filters(&self) -> impl Iterator<Item = (String, u8)> + '_ {
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

/// Why a connection ended when the remote closed it.
const CLOSED: &str = "the remote closed the connection";

/// A socket error in the remote's terms (a TLS alert names the problem).
pub(super) fn socket_error(error: &std::io::Error) -> String {
    match remote::tls_problem(error) {
        Some(problem) => problem,
        None => format!("socket error: {error}"),
    }
}

pub(super) async fn write(stream: &mut Box<dyn Io>, out: &mut BytesMut) -> Result<(), String> {
    if out.is_empty() {
        return Ok(());
    }
    stream.write_all(out).await.map_err(|e| socket_error(&e))?;
    stream.flush().await.map_err(|e| socket_error(&e))?;
    out.clear();
    Ok(())
}

pub(super) async fn read_packet(
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
            Ok(0) => return Err(CLOSED.into()),
            Ok(_) => {}
            Err(error) => return Err(socket_error(&error)),
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
        assert!(codec::encode_packet(&connect, ProtocolVersion::V3_1_1, &mut out).is_ok());
        set_bridge_bit(&mut out);
        assert_eq!(&out[2..9], b"\x00\x04MQTT\x84");
    }
}
