//! `queue_qos0_messages`: QoS 0 messages for an offline persistent session
//! are kept (true) or dropped (false, Mosquitto's default). Runs against
//! Mosquitto 2.0.11 too.

use super::ConfBroker;
use crate::harness::{ConnectBuilder, RawClient, QUIET};

/// Subscribes a persistent 3.1.1 session to `q/#`, goes away, has a QoS 0
/// message published, comes back: the payloads it then receives.
fn offline_qos0_delivered(queue: bool) -> Vec<Vec<u8>> {
    let broker = ConfBroker::start(|port, _| {
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nqueue_qos0_messages {queue}\n")
    });
    let (mut device, _) = RawClient::connect_v311(broker.addr(), "q0-device", false);
    device.subscribe(1, "q/#", 0);
    device.send(&crate::harness::disconnect(None));
    assert!(device.expect_closed(crate::harness::WAIT));
    let (mut publisher, _) = RawClient::connect_v311(broker.addr(), "q0-pub", true);
    publisher.publish("q/status", b"while away", 0, false);
    publisher.ping();
    let (mut back, connack) = RawClient::connect_with(
        broker.addr(),
        ConnectBuilder::v311("q0-device").clean(false),
    );
    assert!(connack.session_present);
    let mut got = Vec::new();
    while let Some(crate::harness::Packet::Publish(publish)) = back.recv_packet(QUIET) {
        got.push(publish.payload.to_vec());
    }
    got
}

#[test]
fn queue_qos0_messages_true_keeps_them_for_offline_sessions() {
    assert_eq!(offline_qos0_delivered(true), vec![b"while away".to_vec()]);
}

#[test]
fn queue_qos0_messages_false_drops_them_as_mosquitto_does() {
    assert!(offline_qos0_delivered(false).is_empty());
}

/// A QoS 1 subscriber that does not acknowledge, and three 60-byte
/// messages: how many arrive before it acknowledges.
fn unacknowledged_deliveries(conf: &str) -> usize {
    let broker = ConfBroker::start(|port, _| {
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n{conf}\n")
    });
    let (mut reader, _) = RawClient::connect_v311(broker.addr(), "ib-reader", true);
    reader.subscribe(1, "ib/#", 1);
    let (mut publisher, _) = RawClient::connect_v311(broker.addr(), "ib-pub", true);
    for n in 0..3u8 {
        publisher.publish("ib/data", &[n; 60], 1, false);
    }
    let mut got = Vec::new();
    while let Some(crate::harness::Packet::Publish(publish)) = reader.recv_packet(QUIET) {
        got.push(publish);
    }
    // Acknowledging the first lets the next one go.
    if let Some(id) = got.first().and_then(|p| p.packet_id) {
        reader.send(&crate::harness::ack(0x40, id));
        let next = reader.recv_packet(crate::harness::WAIT);
        assert!(
            matches!(next, Some(crate::harness::Packet::Publish(_))) || got.len() == 3,
            "{next:?}"
        );
    }
    got.len()
}

#[test]
fn max_inflight_bytes_holds_messages_until_acknowledged() {
    assert_eq!(unacknowledged_deliveries(""), 3);
    if crate::harness::is_mosquitto() {
        // 2.0.11 holds messages back too, one later than the manual's rule
        // (2 of 60 bytes under a limit of 60; decision 0128).
        assert_eq!(unacknowledged_deliveries("max_inflight_bytes 60"), 2);
        return;
    }
    // A message goes while the bytes in flight are below the limit, so the
    // last one may cross it (one message over the limit always may go).
    assert_eq!(unacknowledged_deliveries("max_inflight_bytes 60"), 1);
    assert_eq!(unacknowledged_deliveries("max_inflight_bytes 100"), 2);
    assert_eq!(unacknowledged_deliveries("max_inflight_bytes 120"), 2);
}
