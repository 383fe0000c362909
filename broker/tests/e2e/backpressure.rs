//! Back-pressure instead of loss: publishers (QoS 1 and QoS 0) that outrun
//! a subscriber which keeps reading are held back (their sockets are not read) while its
//! queue is full, so every acknowledged message reaches it; with
//! `queue_full_wait_ms = 0` the same load loses messages at the queue, as
//! Mosquitto does, which shows the load really fills the queue.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{publish, skip_on_mosquitto, Broker, Packet, PubResponse, RawClient};

const PUBLISHERS: usize = 10;
const PER_PUBLISHER: usize = 300;
/// QoS 1 PUBLISHes a publisher sends before it reads their PUBACKs.
const BURST: usize = 30;

/// Runs the load against a broker with `wait_ms`; returns (sent and
/// acknowledged (QoS 1) or answered by a PINGRESP behind them (QoS 0),
/// received by the subscriber, dropped as counted by the broker).
fn fan_in(wait_ms: u64, qos: u8) -> (usize, usize, u64) {
    let broker = Broker::start_with(&format!(
        "[limits]\nmax_queued_messages = 10\nmax_inflight = 2\nqueue_full_wait_ms = {wait_ms}\n"
    ));
    let addr = broker.addr();
    let (mut subscriber, _) = RawClient::connect_v311(addr, "sink", true);
    subscriber.subscribe(1, "fan/#", 1);
    let received = Arc::new(Mutex::new(HashSet::new()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let received = Arc::clone(&received);
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut quiet_since = Instant::now();
            loop {
                match subscriber.recv_packet(Duration::from_millis(100)) {
                    Some(Packet::Publish(p)) => {
                        quiet_since = Instant::now();
                        if let Some(id) = p.packet_id {
                            let ack = Packet::PubAck(PubResponse::success(id));
                            subscriber.send_packet(&ack, subscriber.version);
                        }
                        received.lock().unwrap().insert(p.payload.to_vec());
                    }
                    Some(_) => {}
                    None => {
                        let idle = quiet_since.elapsed() > Duration::from_secs(2);
                        if done.load(std::sync::atomic::Ordering::Relaxed) && idle {
                            return;
                        }
                    }
                }
            }
        })
    };
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|n| {
            thread::spawn(move || {
                let (mut client, _) = RawClient::connect_v311(addr, &format!("pub-{n}"), true);
                let mut acked = 0;
                for burst in 0..PER_PUBLISHER / BURST {
                    for i in 0..BURST {
                        let seq = burst * BURST + i;
                        let payload = format!("{n}-{seq}");
                        // The packet id is written for QoS > 0 only.
                        let packet = publish("fan/in", payload.as_bytes())
                            .qos(qos)
                            .packet_id((i + 1) as u16)
                            .build();
                        client.send(&packet);
                    }
                    if qos == 0 {
                        // PINGRESP comes after the burst was handled.
                        client.send(&[0xC0, 0x00]);
                        match client.recv_packet(Duration::from_secs(20)) {
                            Some(Packet::PingResp) => acked += BURST,
                            other => panic!("expected PINGRESP, got {other:?}"),
                        }
                        continue;
                    }
                    for _ in 0..BURST {
                        // Generous: a paused publisher waits for the
                        // subscriber, and CI runs tests side by side.
                        match client.recv_packet(Duration::from_secs(20)) {
                            Some(Packet::PubAck(_)) => acked += 1,
                            other => panic!("expected PUBACK, got {other:?}"),
                        }
                    }
                }
                acked
            })
        })
        .collect();
    let acked: usize = publishers.into_iter().map(|p| p.join().unwrap()).sum();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    let got = received.lock().unwrap().len();
    (acked, got, dropped_count(&broker))
}

/// The broker's `$SYS/broker/publish/messages/dropped` (retained, updated
/// every second in tests).
fn dropped_count(broker: &Broker) -> u64 {
    thread::sleep(Duration::from_millis(2500));
    let (mut client, _) = RawClient::connect_v311(broker.addr(), "sys-reader", true);
    client.subscribe(1, "$SYS/broker/publish/messages/dropped", 0);
    let value = client.expect_publish();
    String::from_utf8_lossy(&value.payload).parse().unwrap()
}

#[test]
fn qos1_publishers_wait_for_a_reading_subscriber_instead_of_losing_messages() {
    if skip_on_mosquitto("fleetmq back-pressure") {
        return;
    }
    let (acked, got, dropped) = fan_in(1000, 1);
    eprintln!("with back-pressure: {acked} acknowledged, {got} received, {dropped} dropped");
    assert_eq!(acked, PUBLISHERS * PER_PUBLISHER);
    assert_eq!(got, acked, "acknowledged messages were lost");
    assert_eq!(dropped, 0);
}

#[test]
fn without_back_pressure_the_same_load_overflows_the_queue() {
    if skip_on_mosquitto("fleetmq back-pressure") {
        return;
    }
    let (acked, got, dropped) = fan_in(0, 1);
    eprintln!("without back-pressure: {acked} acknowledged, {got} received, {dropped} dropped");
    assert_eq!(acked, PUBLISHERS * PER_PUBLISHER);
    assert!(
        got < acked,
        "the load never filled the queue: the other test proves nothing"
    );
    assert!(dropped > 0);
}

#[test]
fn qos0_publishers_wait_for_a_reading_subscriber_too() {
    if skip_on_mosquitto("fleetmq back-pressure") {
        return;
    }
    let (sent, got, dropped) = fan_in(1000, 0);
    eprintln!("QoS 0 with back-pressure: {sent} sent, {got} received, {dropped} dropped");
    assert_eq!(sent, PUBLISHERS * PER_PUBLISHER);
    assert_eq!(got, sent, "messages were lost");
    assert_eq!(dropped, 0);
}
