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
