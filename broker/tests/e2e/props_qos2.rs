//! Property tests of the QoS 2 state machine, in process: a real
//! [`fleetmq::connection::serve`] per connection over an in-memory duplex
//! stream, a publisher and a subscriber with persistent sessions, and a
//! random sequence of PUBLISH (new or repeated), PUBREL, PUBREC, PUBCOMP,
//! lost acknowledgements and reconnects on both sides.
//!
//! Property: once every exchange is completed, each message the publisher
//! sent reached the subscriber's application exactly once: never twice
//! (the broker's incoming packet ids, its outgoing inflight state and the
//! receiver's own ids), never lost (across reconnects of either side).
//! The subscriber follows the specification's receiver rules (4.3.3:
//! deliver on the first PUBLISH of an id, ignore repeats until PUBREL).
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fleetmq::connection::{serve, Origin};
use fleetmq_codec::{
    decode_packet, encode_packet, Connect, ConnectProperties, Packet, ProtocolVersion, PubResponse,
    Publish, QoS, Subscribe, SubscriptionOptions,
};
use fleetmq_core::config::Config;
use fleetmq_core::engine::Engine;
use fleetmq_core::peer::ConnectClock;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;

const V: ProtocolVersion = ProtocolVersion::V3_1_1;
/// How long a read waits before deciding nothing more is coming.
const SETTLE: Duration = Duration::from_millis(20);

/// One client connection over a duplex stream to a `serve` task.
struct Wire {
    stream: DuplexStream,
    buf: BytesMut,
}

impl Wire {
    async fn open(broker: &Arc<Engine>, shutdown: &watch::Receiver<bool>, client_id: &str) -> Wire {
        let (client, server) = tokio::io::duplex(1 << 20);
        let origin = Origin {
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            listener: Arc::from("props"),
            over_limit: false,
            clock: ConnectClock::start(),
            tls: None,
            settings: Arc::new(fleetmq_core::config::ListenerConfig::default()),
        };
        tokio::spawn(serve(
            Box::new((server, origin)),
            Arc::clone(broker),
            shutdown.clone(),
        ));
        let mut wire = Wire {
            stream: client,
            buf: BytesMut::new(),
        };
        wire.send(&Packet::Connect(Box::new(Connect {
            protocol: V,
            clean_start: false,
            keep_alive: 0,
            client_id: client_id.to_string(),
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
        })))
        .await;
        match wire.recv().await {
            Some(Packet::ConnAck(connack)) => assert!(connack.reason.0 == 0),
            other => panic!("no CONNACK for {client_id}: {other:?}"),
        }
        wire
    }

    async fn send(&mut self, packet: &Packet) {
        let mut out = BytesMut::new();
        encode_packet(packet, V, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next packet, or None when nothing arrives within [`SETTLE`].
    async fn recv(&mut self) -> Option<Packet> {
        loop {
            if let Some(packet) = decode_packet(&mut self.buf, Some(V), u32::MAX).unwrap() {
                return Some(packet);
            }
            let read = tokio::time::timeout(SETTLE, self.stream.read_buf(&mut self.buf)).await;
            match read {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }
}

/// What a test step does.
#[derive(Debug, Clone)]
enum Step {
    /// The publisher sends a new QoS 2 message.
    Publish,
    /// The publisher sends again (DUP) the PUBLISH of a message the broker
    /// has not acknowledged, or, hostile, of one it has (before PUBREL).
    RepeatPublish(usize),
    /// The publisher reads PUBRECs and answers with PUBREL.
    PublisherReads,
    /// The publisher reads and ignores what arrived (acks lost).
    PublisherLosesAcks,
    /// The subscriber reads: PUBREC for PUBLISH, PUBCOMP for PUBREL.
    SubscriberReads,
    /// The subscriber reads but its answers are lost.
    SubscriberLosesAnswers,
    /// The publisher's connection drops; it reconnects and resends.
    ReconnectPublisher,
    /// The subscriber's connection drops; it reconnects.
    ReconnectSubscriber,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Publish),
        2 => (0usize..8).prop_map(Step::RepeatPublish),
        3 => Just(Step::PublisherReads),
        1 => Just(Step::PublisherLosesAcks),
        3 => Just(Step::SubscriberReads),
        1 => Just(Step::SubscriberLosesAnswers),
        1 => Just(Step::ReconnectPublisher),
        1 => Just(Step::ReconnectSubscriber),
    ]
}

/// The publisher's side of the protocol.
#[derive(Default)]
struct Publisher {
    next_id: u16,
    /// Sent, no PUBREC seen: id -> payload.
    unacknowledged: BTreeMap<u16, Bytes>,
    /// PUBREC seen, PUBREL sent, no PUBCOMP yet.
    released: BTreeSet<u16>,
    sent: BTreeSet<Vec<u8>>,
}

/// The subscriber's side (receiver rules of 4.3.3, method B).
#[derive(Default)]
struct Subscriber {
    /// Ids whose PUBLISH was delivered and whose PUBREL has not come.
    holding: HashSet<u16>,
    delivered: Vec<Vec<u8>>,
}

fn publish_packet(id: u16, payload: Bytes, dup: bool) -> Packet {
    Packet::Publish(Publish {
        dup,
        qos: QoS::ExactlyOnce,
        retain: false,
        topic: Arc::from("props/qos2"),
        packet_id: Some(id),
        payload,
        properties: Default::default(),
    })
}

impl Publisher {
    async fn read(&mut self, wire: &mut Wire, answer: bool) {
        while let Some(packet) = wire.recv().await {
            match packet {
                Packet::PubRec(rec) => {
                    if answer && self.unacknowledged.remove(&rec.packet_id).is_some() {
                        self.released.insert(rec.packet_id);
                    }
                    if answer && self.released.contains(&rec.packet_id) {
                        wire.send(&Packet::PubRel(PubResponse::success(rec.packet_id)))
                            .await;
                    }
                }
                Packet::PubComp(comp) if answer => {
                    self.released.remove(&comp.packet_id);
                }
                _ => {}
            }
        }
    }

    /// After a reconnect: PUBLISH again (DUP) what has no PUBREC, PUBREL
    /// again what has [MQTT-4.4.0-1].
    async fn resend(&mut self, wire: &mut Wire) {
        for (id, payload) in &self.unacknowledged {
            wire.send(&publish_packet(*id, payload.clone(), true)).await;
        }
        for id in &self.released {
            wire.send(&Packet::PubRel(PubResponse::success(*id))).await;
        }
    }
}

impl Subscriber {
    async fn read(&mut self, wire: &mut Wire, answer: bool) {
        while let Some(packet) = wire.recv().await {
            match packet {
                Packet::Publish(publish) => {
                    let id = publish.packet_id.unwrap();
                    if self.holding.insert(id) {
                        self.delivered.push(publish.payload.to_vec());
                    }
                    if answer {
                        wire.send(&Packet::PubRec(PubResponse::success(id))).await;
                    }
                }
                // Release the id once PUBCOMP leaves: a lost PUBCOMP means
                // the PUBREL comes again, and the id is still held then (it
                // matters only while the PUBLISH can come again, which ends
                // with PUBREL).
                Packet::PubRel(rel) if answer => {
                    self.holding.remove(&rel.packet_id);
                    wire.send(&Packet::PubComp(PubResponse::success(rel.packet_id)))
                        .await;
                }
                _ => {}
            }
        }
    }
}

async fn run(steps: Vec<Step>) {
    let mut config = Config::default();
    config.store.enabled = false;
    config.limits.max_queued_messages = 0;
    config.limits.max_queued_bytes = 0;
    config.mqtt.sys_interval_secs = 0;
    let broker = Arc::new(Engine::new(Arc::new(config), None, Default::default()));
    let (_stop, shutdown) = watch::channel(false);

    let mut sub_wire = Wire::open(&broker, &shutdown, "sub").await;
    sub_wire
        .send(&Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![(
                "props/#".to_string(),
                SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    ..SubscriptionOptions::default()
                },
            )],
            subscription_identifier: None,
            user_properties: Vec::new(),
        }))
        .await;
    assert!(matches!(sub_wire.recv().await, Some(Packet::SubAck(_))));
    let mut pub_wire = Wire::open(&broker, &shutdown, "pub").await;
    let mut publisher = Publisher::default();
    let mut subscriber = Subscriber::default();

    for step in steps {
        match step {
            Step::Publish => {
                publisher.next_id = publisher.next_id % 60_000 + 1;
                let id = publisher.next_id;
                if publisher.unacknowledged.contains_key(&id) || publisher.released.contains(&id) {
                    continue;
                }
                let payload = Bytes::from(format!("message {}", publisher.sent.len()));
                publisher.sent.insert(payload.to_vec());
                publisher.unacknowledged.insert(id, payload.clone());
                pub_wire.send(&publish_packet(id, payload, false)).await;
            }
            Step::RepeatPublish(n) => {
                // Unacknowledged (allowed), or hostile: already PUBRECed.
                let known: Vec<(u16, Bytes)> = publisher
                    .unacknowledged
                    .iter()
                    .map(|(id, p)| (*id, p.clone()))
                    .collect();
                if let Some((id, payload)) = known.get(n % known.len().max(1)) {
                    pub_wire
                        .send(&publish_packet(*id, payload.clone(), true))
                        .await;
                }
            }
            Step::PublisherReads => publisher.read(&mut pub_wire, true).await,
            Step::PublisherLosesAcks => publisher.read(&mut pub_wire, false).await,
            Step::SubscriberReads => subscriber.read(&mut sub_wire, true).await,
            Step::SubscriberLosesAnswers => subscriber.read(&mut sub_wire, false).await,
            Step::ReconnectPublisher => {
                drop(pub_wire);
                pub_wire = Wire::open(&broker, &shutdown, "pub").await;
                publisher.resend(&mut pub_wire).await;
            }
            Step::ReconnectSubscriber => {
                drop(sub_wire);
                sub_wire = Wire::open(&broker, &shutdown, "sub").await;
            }
        }
    }
    // Complete every exchange.
    for _ in 0..50 {
        publisher.resend(&mut pub_wire).await;
        publisher.read(&mut pub_wire, true).await;
        subscriber.read(&mut sub_wire, true).await;
        if publisher.unacknowledged.is_empty() && publisher.released.is_empty() {
            subscriber.read(&mut sub_wire, true).await;
            break;
        }
    }
    assert!(
        publisher.unacknowledged.is_empty() && publisher.released.is_empty(),
        "exchanges did not complete"
    );
    let delivered: BTreeSet<Vec<u8>> = subscriber.delivered.iter().cloned().collect();
    assert_eq!(
        delivered.len(),
        subscriber.delivered.len(),
        "a message reached the subscriber twice"
    );
    assert_eq!(delivered, publisher.sent, "messages lost or invented");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn qos2_never_delivers_twice_nor_loses(steps in prop::collection::vec(step(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(steps));
    }
}
