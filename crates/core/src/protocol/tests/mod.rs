//! Synchronous tests of [`ClientProtocol`]: packets in, bytes decoded back
//! out; no socket, and no runtime except where the engine's timers (will
//! delay, session expiry) are under test, on paused time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cluster;
mod connect;
mod flows;
mod props;
mod topic_alias_out;
mod wills;

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;

use super::{ClientProtocol, Exit, Setup};
use crate::auth::Identity;
use crate::config::{Config, ListenerConfig};
use crate::engine::Engine;
use crate::session::ControlReceiver;
use crate::store::Progress;
use fleetmq_codec::{
    self, LastWill, Packet, ProtocolVersion, PubResponse, Publish, QoS, Subscribe,
    SubscriptionOptions,
};

/// A broker without a store (tickets are 0) and its default rules.
fn broker_with(edit: impl FnOnce(&mut Config)) -> Arc<Engine> {
    let mut config = Config::default();
    edit(&mut config);
    Arc::new(Engine::new(Arc::new(config), None, Default::default()))
}

fn broker() -> Arc<Engine> {
    broker_with(|_| {})
}

/// How a test client connects.
struct Connect {
    client_id: &'static str,
    version: ProtocolVersion,
    clean_start: bool,
    expiry: u32,
    receive_maximum: Option<u16>,
    /// The Topic Alias Maximum the client announces.
    topic_alias_maximum: Option<u16>,
    maximum_packet_size: Option<u32>,
    will: Option<LastWill>,
    /// Replaces the store's progress (acknowledgement gating).
    committed: Option<watch::Receiver<Progress>>,
}

impl Connect {
    fn v5(client_id: &'static str) -> Connect {
        Connect {
            client_id,
            version: ProtocolVersion::V5,
            clean_start: true,
            expiry: 0,
            receive_maximum: None,
            topic_alias_maximum: None,
            maximum_packet_size: None,
            will: None,
            committed: None,
        }
    }
}

/// A connected client as the IO loop would hold it.
struct Client {
    protocol: ClientProtocol,
    /// Kept so take-over requests have a receiver.
    _control: ControlReceiver,
    session_present: bool,
}

fn connect(broker: &Arc<Engine>, how: Connect) -> Client {
    let identity = Arc::new(Identity::build(
        &ListenerConfig::default_tls(),
        "test".into(),
        &[],
        None,
        how.client_id,
        Some("lab"),
    ));
    let attached = broker
        .attach(
            how.client_id,
            how.clean_start,
            how.expiry,
            Arc::clone(&identity),
            None,
        )
        .unwrap();
    let protocol = ClientProtocol::new(Setup {
        broker: Arc::clone(broker),
        version: how.version,
        identity,
        session: attached.session,
        generation: attached.generation,
        peer: "127.0.0.1:1883".parse().unwrap(),
        will: how.will,
        receive_maximum: how.receive_maximum,
        maximum_packet_size: how.maximum_packet_size,
        topic_alias_maximum: how.topic_alias_maximum,
        committed: how.committed,
        mount_point: None,
    });
    Client {
        protocol,
        _control: attached.control,
        session_present: attached.session_present,
    }
}

impl Client {
    /// Feeds one packet, as the IO loop does, then lets the protocol drain
    /// the session queue.
    fn feed(&mut self, packet: Packet) -> Result<(), Exit> {
        let now = Instant::now();
        self.protocol.on_packet(packet, now)?;
        self.protocol.drain(now);
        Ok(())
    }

    /// Packets the protocol wrote since the last call.
    fn written(&mut self) -> Vec<Packet> {
        let version = self.protocol.version();
        let out = self.protocol.output();
        let mut bytes = out.split();
        let mut packets = Vec::new();
        while let Some(packet) =
            fleetmq_codec::decode_packet(&mut bytes, Some(version), u32::MAX).unwrap()
        {
            packets.push(packet);
        }
        assert!(bytes.is_empty(), "a partial packet was written");
        packets
    }

    fn drain(&mut self) -> Vec<Packet> {
        self.protocol.drain(Instant::now());
        self.written()
    }

    fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.feed(Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![(
                filter.to_string(),
                SubscriptionOptions {
                    qos,
                    ..SubscriptionOptions::default()
                },
            )],
            subscription_identifier: None,
            user_properties: Vec::new(),
        }))
        .unwrap();
        assert!(matches!(self.written()[..], [Packet::SubAck(_)]));
    }
}

fn publish(topic: &str, qos: QoS, packet_id: Option<u16>, payload: &'static [u8]) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: Arc::from(topic),
        packet_id,
        payload: Bytes::from_static(payload),
        properties: Default::default(),
    })
}

fn ack(id: u16) -> PubResponse {
    PubResponse::success(id)
}

/// Packet ids and payloads of the PUBLISHes among `packets`.
fn publishes(packets: &[Packet]) -> Vec<(Option<u16>, Bytes)> {
    packets
        .iter()
        .filter_map(|packet| match packet {
            Packet::Publish(p) => Some((p.packet_id, p.payload.clone())),
            _ => None,
        })
        .collect()
}

/// The bytes of `packet` as `version` encodes it (for `on_input`).
fn encoded(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut buf = BytesMut::new();
    fleetmq_codec::encode_packet(packet, version, &mut buf).unwrap();
    buf
}
