//! Clients for the store tests (`store_*.rs`): publishers that record
//! exactly which acknowledgements arrived before the broker died, and a
//! subscriber that drains a persistent session.
//!
//! Every read has a timeout and every loop a deadline.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ack, publish, ConnectBuilder, Packet, PubResponse, Publish, QoS, RawClient, WAIT};

/// `fleetmq.toml` text for a store test: the fsync policy, unbounded
/// session queues (a dropped message would look like a lost one), and
/// room for a pipelined publisher.
pub fn store_toml(fsync: &str, extra_store: &str) -> String {
    format!(
        "[store]\nfsync = \"{fsync}\"\n{extra_store}\n\n[limits]\nmax_queued_messages = 0\nmax_queued_bytes = 0\nmax_inflight = 100\n"
    )
}

/// A small deterministic generator (the tests print their seed, so a
/// failing run can be repeated with `FLEETMQ_TEST_SEED`).
pub struct Rng(u64);

impl Rng {
    pub fn from_env_or_time() -> Rng {
        let seed = std::env::var("FLEETMQ_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("seed {seed} (set FLEETMQ_TEST_SEED to repeat)");
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `low..high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }
}

/// One message a publisher sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sent {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// What a QoS 1 publisher saw before its connection ended.
#[derive(Debug, Default)]
pub struct Qos1Log {
    /// Messages whose PUBACK arrived, in order.
    pub acked: Vec<Sent>,
    /// Messages sent without a PUBACK (the broker died first).
    pub unacked: Vec<Sent>,
}

/// Publishes `next(n)` for n = `first`, `first + 1`, ... at QoS 1 with up
/// to `window` unacknowledged, until the broker closes the connection (or
/// `stop` is set and the last PUBACKs came in). Records each PUBACK.
pub fn qos1_publisher(
    addr: SocketAddr,
    client_id: &str,
    first: u64,
    window: usize,
    retain: bool,
    stop: &AtomicBool,
    next: impl Fn(u64) -> Sent,
) -> Qos1Log {
    let mut log = Qos1Log::default();
    let Some(mut client) = try_connect(addr, ConnectBuilder::v311(client_id)) else {
        return log;
    };
    let mut inflight: BTreeMap<u16, Sent> = BTreeMap::new();
    let mut n = first;
    let mut packet_id: u16 = 0;
    let mut stopping_since: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Relaxed) && stopping_since.is_none() {
            stopping_since = Some(Instant::now());
        }
        if stopping_since.is_none() {
            while inflight.len() < window {
                packet_id = packet_id.checked_add(1).unwrap_or(1);
                let message = next(n);
                n += 1;
                client.send(
                    &publish(&message.topic, &message.payload)
                        .qos(1)
                        .packet_id(packet_id)
                        .retain(retain)
                        .build(),
                );
                inflight.insert(packet_id, message);
            }
        }
        match client.recv_packet(Duration::from_millis(50)) {
            Some(Packet::PubAck(ack)) => {
                if let Some(message) = inflight.remove(&ack.packet_id) {
                    log.acked.push(message);
                }
            }
            Some(_) => {}
            None if client.is_closed() => break,
            None => {}
        }
        let drained = inflight.is_empty() || stopping_since.is_some_and(|at| at.elapsed() > WAIT);
        if stopping_since.is_some() && drained {
            break;
        }
    }
    log.unacked = inflight.into_values().collect();
    log
}

/// Connects, or None when the broker is gone or refuses.
fn try_connect(addr: SocketAddr, connect: ConnectBuilder) -> Option<RawClient> {
    let stream = std::net::TcpStream::connect_timeout(&addr, WAIT).ok()?;
    stream.set_nodelay(true).ok()?;
    let mut client = RawClient::over(super::Transport::Tcp(stream));
    client.send_connect(&connect);
    match client.recv_packet(WAIT) {
        Some(Packet::ConnAck(connack)) if connack.reason.0 == 0 => Some(client),
        _ => None,
    }
}

/// Where one QoS 2 message stands at its publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qos2Stage {
    /// PUBLISH sent, no PUBREC yet: resend PUBLISH (DUP) after reconnect.
    AwaitRec,
    /// PUBREC received, PUBREL sent: resend PUBREL after reconnect.
    AwaitComp,
}

/// A QoS 2 publisher with a persistent session (3.1.1, clean session 0)
/// that survives broker restarts: after each reconnect it resends what
/// the specification says [MQTT-4.4.0-1], so every flow it starts ends
/// with exactly one delivery.
pub struct Qos2Publisher {
    client_id: String,
    topic: String,
    inflight: BTreeMap<u16, (Vec<u8>, Qos2Stage)>,
    next_id: u16,
    next_n: u64,
    /// Every payload sent (first transmission), in order.
    pub sent: Vec<Vec<u8>>,
    /// Payloads whose PUBREC arrived: the broker owns them.
    pub received_pubrec: Vec<Vec<u8>>,
    /// Payloads whose PUBCOMP arrived.
    pub completed: usize,
    /// Reconnects whose CONNACK said session present 0 although the
    /// publisher had state: the broker lost the publisher's session.
    pub lost_sessions: usize,
    connected_once: bool,
}

impl Qos2Publisher {
    pub fn new(client_id: &str, topic: &str) -> Qos2Publisher {
        Qos2Publisher {
            client_id: client_id.to_string(),
            topic: topic.to_string(),
            inflight: BTreeMap::new(),
            next_id: 0,
            next_n: 0,
            sent: Vec::new(),
            received_pubrec: Vec::new(),
            completed: 0,
            lost_sessions: 0,
            connected_once: false,
        }
    }

    /// Flows not finished yet.
    pub fn pending(&self) -> usize {
        self.inflight.len()
    }

    /// Connects (clean session 0), resends the unfinished flows, then
    /// publishes new messages (while `publish_new`) with up to `window`
    /// flows open, until the broker closes the connection, or `stop` is set
    /// and the open flows are finished (bounded by `drain`).
    pub fn run(
        &mut self,
        addr: SocketAddr,
        window: usize,
        publish_new: bool,
        stop: &AtomicBool,
        drain: Duration,
    ) {
        let Some(mut client) = self.connect(addr) else {
            return;
        };
        let mut stopping_since: Option<Instant> = None;
        loop {
            if (stop.load(Ordering::Relaxed) || !publish_new) && stopping_since.is_none() {
                stopping_since = Some(Instant::now());
            }
            if stopping_since.is_none() {
                while self.inflight.len() < window {
                    self.next_id = self.next_id.checked_add(1).unwrap_or(1);
                    while self.inflight.contains_key(&self.next_id) {
                        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
                    }
                    let payload = format!("q2-{}", self.next_n).into_bytes();
                    self.next_n += 1;
                    client.send(
                        &publish(&self.topic, &payload)
                            .qos(2)
                            .packet_id(self.next_id)
                            .build(),
                    );
                    self.sent.push(payload.clone());
                    self.inflight
                        .insert(self.next_id, (payload, Qos2Stage::AwaitRec));
                }
            }
            match client.recv_packet(Duration::from_millis(50)) {
                Some(Packet::PubRec(rec)) => {
                    if let Some((payload, stage)) = self.inflight.get_mut(&rec.packet_id) {
                        if *stage == Qos2Stage::AwaitRec {
                            *stage = Qos2Stage::AwaitComp;
                            self.received_pubrec.push(payload.clone());
                        }
                        client.send(&ack(0x62, rec.packet_id));
                    }
                }
                Some(Packet::PubComp(comp)) => {
                    if let Some((_, Qos2Stage::AwaitComp)) = self.inflight.get(&comp.packet_id) {
                        self.inflight.remove(&comp.packet_id);
                        self.completed += 1;
                    }
                }
                Some(_) => {}
                None if client.is_closed() => return,
                None => {}
            }
            if let Some(at) = stopping_since {
                if self.inflight.is_empty() || at.elapsed() > drain {
                    client.send(&super::disconnect(None));
                    return;
                }
            }
        }
    }

    fn connect(&mut self, addr: SocketAddr) -> Option<RawClient> {
        let stream = std::net::TcpStream::connect_timeout(&addr, WAIT).ok()?;
        stream.set_nodelay(true).ok()?;
        let mut client = RawClient::over(super::Transport::Tcp(stream));
        client.send_connect(&ConnectBuilder::v311(&self.client_id).clean(false));
        let connack = match client.recv_packet(WAIT) {
            Some(Packet::ConnAck(connack)) if connack.reason.0 == 0 => connack,
            _ => return None,
        };
        let had_state = self.connected_once && !self.inflight.is_empty();
        if had_state && !connack.session_present {
            self.lost_sessions += 1;
        }
        self.connected_once = true;
        for (id, (payload, stage)) in &self.inflight {
            match stage {
                Qos2Stage::AwaitRec => client.send(
                    &publish(&self.topic, payload)
                        .qos(2)
                        .packet_id(*id)
                        .dup(true)
                        .build(),
                ),
                Qos2Stage::AwaitComp => client.send(&ack(0x62, *id)),
            }
        }
        Some(client)
    }
}

/// What a subscriber received when it resumed its session.
#[derive(Debug, Default)]
pub struct Drained {
    pub session_present: bool,
    /// Every PUBLISH, in arrival order.
    pub publishes: Vec<Publish>,
}

impl Drained {
    /// How often each payload arrived (QoS 2: counted once per packet id
    /// until its PUBREL, as a receiver using method B does).
    pub fn counts(&self) -> HashMap<Vec<u8>, usize> {
        let mut counts = HashMap::new();
        for publish in &self.publishes {
            *counts.entry(publish.payload.to_vec()).or_insert(0) += 1;
        }
        counts
    }
}

/// Resumes `connect`'s session and acknowledges everything (PUBACK, or
/// PUBREC then PUBCOMP) until nothing arrives for `quiet`, at most
/// `limit`. A QoS 2 PUBLISH repeated (DUP) for a packet id not yet
/// released is not counted again. Disconnects cleanly at the end.
pub fn drain_session(
    addr: SocketAddr,
    connect: ConnectBuilder,
    quiet: Duration,
    limit: Duration,
) -> Drained {
    let (mut client, connack) = RawClient::connect_with(addr, connect);
    let mut drained = Drained {
        session_present: connack.session_present,
        ..Drained::default()
    };
    let version = client.version;
    let mut unreleased: HashMap<u16, Vec<u8>> = HashMap::new();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match client.recv_packet(quiet) {
            Some(Packet::Publish(p)) => {
                let id = p.packet_id.unwrap_or(0);
                match p.qos {
                    QoS::AtMostOnce => drained.publishes.push(p),
                    QoS::AtLeastOnce => {
                        client.send_packet(&Packet::PubAck(PubResponse::success(id)), version);
                        drained.publishes.push(p);
                    }
                    QoS::ExactlyOnce => {
                        if let std::collections::hash_map::Entry::Vacant(entry) =
                            unreleased.entry(id)
                        {
                            entry.insert(p.payload.to_vec());
                            drained.publishes.push(p);
                        }
                        client.send_packet(&Packet::PubRec(PubResponse::success(id)), version);
                    }
                }
            }
            Some(Packet::PubRel(rel)) => {
                unreleased.remove(&rel.packet_id);
                client.send_packet(
                    &Packet::PubComp(PubResponse::success(rel.packet_id)),
                    version,
                );
            }
            Some(other) => panic!("unexpected {other:?} while draining"),
            None => break,
        }
    }
    client.send(&super::disconnect(if version.is_v5() {
        Some(0)
    } else {
        None
    }));
    drained
}

/// Retained messages under `filter`, as a new clean client sees them:
/// topic to payload.
pub fn retained_under(addr: SocketAddr, filter: &str, quiet: Duration) -> HashMap<String, Vec<u8>> {
    let (mut client, _) = RawClient::connect_v311(addr, "retained-reader", true);
    client.subscribe(1, filter, 0);
    let mut found = HashMap::new();
    while let Some(packet) = client.recv_packet(quiet) {
        if let Packet::Publish(p) = packet {
            assert!(p.retain, "a message sent on subscribe must carry RETAIN");
            found.insert(p.topic.to_string(), p.payload.to_vec());
        }
    }
    client.send(&super::disconnect(None));
    found
}

/// Runs `f` on a thread and returns its handle; the name shows in panics.
pub fn spawn_named<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .expect("spawn thread")
}

/// Shared stop flag.
pub fn stop_flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}
