//! QoS 2 delivery state across a broker restart: a PUBLISH the subscriber
//! did not acknowledge comes again with DUP and the same packet id; once
//! it sent PUBREC, only the PUBREL comes again; the message is delivered
//! exactly once overall [MQTT-4.3.3, MQTT-4.4.0-1].

use std::time::Duration;

use crate::harness::store::store_toml;
use crate::harness::*;

#[derive(Clone, Copy, Debug)]
enum Stop {
    Term,
    Kill,
}

/// Stops the broker as `stop` says and starts it again. Before a SIGKILL
/// it waits a moment: the QoS 2 state changes (sent, released) are
/// recorded without holding any packet back, so they are durable within
/// one group commit, not before the packet leaves.
fn bounce(broker: &mut Broker, stop: Stop) {
    match stop {
        Stop::Term => {
            let status = broker.sigterm();
            assert!(status.success(), "exit {status}");
        }
        Stop::Kill => {
            std::thread::sleep(Duration::from_millis(300));
            broker.kill9();
        }
    }
    broker.restart();
}

fn session(client_id: &str, v5: bool) -> ConnectBuilder {
    if v5 {
        ConnectBuilder::v5(client_id)
            .clean(false)
            .property(prop::u32(prop::SESSION_EXPIRY, 3600))
    } else {
        ConnectBuilder::v311(client_id).clean(false)
    }
}

fn qos2_midflight(stop: Stop, v5: bool) {
    let mut broker = Broker::start_with(&store_toml("batch", ""));
    let sub_id = format!("q2m-sub-{stop:?}-{v5}");
    let (mut sub, _) = RawClient::connect_with(broker.addr(), session(&sub_id, v5));
    assert_eq!(sub.subscribe(1, "q2m/#", 2), vec![ReasonCode(2)]);
    let (mut publisher, _) = RawClient::connect_v311(broker.addr(), "q2m-pub", true);
    assert_eq!(
        publisher.publish("q2m/t", b"once", 2, false),
        ReasonCode::SUCCESS
    );
    let first = sub.expect_app_publish();
    assert_eq!(
        (first.qos, &first.payload[..], first.dup),
        (QoS::ExactlyOnce, &b"once"[..], false)
    );
    let id = first.packet_id.expect("QoS 2 has a packet id");

    // 1. PUBLISH received, no PUBREC sent: the broker goes down.
    bounce(&mut broker, stop);
    sub.wait_closed(WAIT);
    let (mut sub, connack) = RawClient::connect_with(broker.addr(), session(&sub_id, v5));
    assert!(connack.session_present, "session present after the restart");
    let again = sub.expect_app_publish();
    assert_eq!(&again.payload[..], b"once");
    assert!(again.dup, "a resent PUBLISH carries DUP [MQTT-3.3.1-1]");
    assert_eq!(again.packet_id, Some(id), "resent with the same packet id");
    assert_eq!(again.qos, QoS::ExactlyOnce);

    // 2. PUBREC sent, PUBREL received, no PUBCOMP: down again.
    sub.send(&ack(0x50, id));
    match sub.expect_packet("PUBREL") {
        Packet::PubRel(rel) => assert_eq!(rel.packet_id, id),
        other => panic!("expected PUBREL {id}, got {other:?}"),
    }
    bounce(&mut broker, stop);
    sub.wait_closed(WAIT);
    let (mut sub, connack) = RawClient::connect_with(broker.addr(), session(&sub_id, v5));
    assert!(connack.session_present);
    match sub.expect_packet("PUBREL resent") {
        Packet::PubRel(rel) => assert_eq!(rel.packet_id, id, "PUBREL for the same packet id"),
        other => panic!("expected only PUBREL {id} after PUBREC, got {other:?}"),
    }
    sub.send(&ack(0x70, id));
    assert!(
        sub.expect_silence(Duration::from_millis(500)).is_ok(),
        "nothing more after PUBCOMP: delivered exactly once"
    );
    sub.send(&disconnect(v5.then_some(0)));

    // 3. Finished flows stay finished across another restart.
    bounce(&mut broker, stop);
    let (mut sub, connack) = RawClient::connect_with(broker.addr(), session(&sub_id, v5));
    assert!(connack.session_present);
    if let Err(packet) = sub.expect_silence(Duration::from_millis(500)) {
        panic!("a completed QoS 2 delivery came back after a restart: {packet:?}");
    }
}

#[test]
fn qos2_midflight_across_sigterm_v5() {
    if skip_on_mosquitto("fleetmq restart") {
        return;
    }
    qos2_midflight(Stop::Term, true);
}

#[test]
fn qos2_midflight_across_sigkill_v5() {
    if skip_on_mosquitto("fleetmq restart") {
        return;
    }
    qos2_midflight(Stop::Kill, true);
}

#[test]
fn qos2_midflight_across_sigkill_v311() {
    if skip_on_mosquitto("fleetmq restart") {
        return;
    }
    qos2_midflight(Stop::Kill, false);
}
