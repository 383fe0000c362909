//! A clean restart (SIGTERM) keeps what MQTT promises: sessions,
//! subscriptions and queued messages survive; 5.0 clients are told the
//! server is shutting down (DISCONNECT 0x8B) before the broker exits 0;
//! session and message expiry count the time the broker was down.
//!
//! Each test names its store: `store.wal = false` (the redb file alone)
//! in the plain tests, `store.wal = true` (the write-ahead log of decision
//! 0178, the default) in the `_wal` one, so both paths stay tested.

use std::time::{Duration, Instant};

use crate::harness::store::{drain_session, store_toml};
use crate::harness::*;

const HOUR: u32 = 3600;

fn v5_session(client_id: &str, expiry: u32) -> ConnectBuilder {
    ConnectBuilder::v5(client_id)
        .clean(false)
        .property(prop::u32(prop::SESSION_EXPIRY, expiry))
}

/// Subscribes `filter` at QoS 1 and leaves with a normal DISCONNECT.
fn subscribe_and_leave(addr: std::net::SocketAddr, connect: ConnectBuilder, filter: &str) {
    let (mut client, _) = RawClient::connect_with(addr, connect);
    assert_eq!(client.subscribe(1, filter, 1), vec![ReasonCode(1)]);
    let v5 = client.version.is_v5();
    client.send(&disconnect(v5.then_some(0)));
    assert!(client.expect_closed(WAIT));
}

fn payloads(drained: &store::Drained) -> Vec<String> {
    drained
        .publishes
        .iter()
        .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
        .collect()
}

fn sigterm_restart_keeps_sessions(fsync: &str, extra_store: &str) {
    let mut broker = Broker::start_with(&store_toml(fsync, extra_store));
    let addr = broker.addr();
    // Offline before the stop: a 5.0 session, a 3.1.1 clean-session-0 one.
    subscribe_and_leave(addr, v5_session("rs-v5", HOUR), "rs/#");
    subscribe_and_leave(addr, ConnectBuilder::v311("rs-v311").clean(false), "rs/#");
    // Online at the stop: a long 5.0 session and one that expires in 2 s.
    let (mut live, _) = RawClient::connect_with(addr, v5_session("rs-live", HOUR));
    assert_eq!(live.subscribe(1, "rs/#", 1), vec![ReasonCode(1)]);
    let (mut short, _) = RawClient::connect_with(addr, v5_session("rs-short", 2));
    assert_eq!(short.subscribe(1, "rs/#", 1), vec![ReasonCode(1)]);

    let (mut publisher, _) = RawClient::connect_v5(addr, "rs-pub", true);
    assert_eq!(
        publisher.publish("rs/kept", b"kept", 1, false),
        ReasonCode::SUCCESS
    );
    // Expires 1 s after it was published: gone after the 2 s restart.
    publisher.send(
        &publish("rs/expiring", b"expiring")
            .qos(1)
            .packet_id(9)
            .v5(true)
            .properties(&prop::u32(prop::MESSAGE_EXPIRY, 1))
            .build(),
    );
    match publisher.expect_packet("PUBACK") {
        Packet::PubAck(ack) => assert_eq!(ack.packet_id, 9),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    // The online ones take their copies now and do not acknowledge them:
    // unacknowledged QoS 1 must come again after the restart.
    for client in [&mut live, &mut short] {
        assert_eq!(&client.expect_app_publish().payload[..], b"kept");
        assert_eq!(&client.expect_app_publish().payload[..], b"expiring");
    }

    let stopped_at = Instant::now();
    let status = broker.sigterm();
    assert!(
        status.success(),
        "SIGTERM must end with exit 0, got {status}"
    );
    for (name, client) in [
        ("rs-live", &mut live),
        ("rs-short", &mut short),
        ("rs-pub", &mut publisher),
    ] {
        let closed = client
            .wait_closed(WAIT)
            .unwrap_or_else(|| panic!("{name}: connection still open after the broker exited"));
        assert_eq!(
            closed.disconnect_reason(),
            Some(ReasonCode::SERVER_SHUTTING_DOWN),
            "{name}: DISCONNECT 0x8B before the close; got {:?}",
            closed.packets
        );
    }

    // Stay away past the 2 s session expiry and the 1 s message expiry.
    std::thread::sleep(Duration::from_millis(2200).saturating_sub(stopped_at.elapsed()));
    broker.restart();
    let addr = broker.addr();
    let quiet = Duration::from_millis(500);
    let limit = Duration::from_secs(5);

    let v5 = drain_session(addr, v5_session("rs-v5", HOUR), quiet, limit);
    assert!(
        v5.session_present,
        "rs-v5: session present after the restart"
    );
    assert_eq!(
        payloads(&v5),
        ["kept"],
        "rs-v5: queued message, the expired one left out"
    );

    let v311 = drain_session(
        addr,
        ConnectBuilder::v311("rs-v311").clean(false),
        quiet,
        limit,
    );
    assert!(
        v311.session_present,
        "rs-v311: session present after the restart"
    );
    assert_eq!(payloads(&v311), ["kept"]);

    let live = drain_session(addr, v5_session("rs-live", HOUR), quiet, limit);
    assert!(
        live.session_present,
        "rs-live: session present after the restart"
    );
    assert_eq!(
        payloads(&live),
        ["kept"],
        "rs-live: the unacknowledged message again"
    );

    let short = drain_session(addr, v5_session("rs-short", 2), quiet, limit);
    assert!(
        !short.session_present,
        "rs-short: its 2 s session expiry passed while the broker was down"
    );
    assert!(
        short.publishes.is_empty(),
        "rs-short: nothing from an expired session"
    );

    // The restored subscriptions still route new messages.
    let (mut sub, connack) = RawClient::connect_with(addr, v5_session("rs-v5", HOUR));
    assert!(connack.session_present);
    let (mut publisher, _) = RawClient::connect_v311(addr, "rs-pub-2", true);
    assert_eq!(
        publisher.publish("rs/after", b"after", 1, false),
        ReasonCode::SUCCESS
    );
    let got = sub.expect_app_publish();
    assert_eq!(&got.payload[..], b"after");
    assert_eq!(&*got.topic, "rs/after");
}

#[test]
fn sigterm_restart_keeps_sessions_subscriptions_and_queues_batch() {
    if skip_on_mosquitto("fleetmq restart") {
        return;
    }
    sigterm_restart_keeps_sessions("batch", "wal = false");
}

#[test]
fn sigterm_restart_keeps_sessions_subscriptions_and_queues_always() {
    if skip_on_mosquitto("fleetmq restart") {
        return;
    }
    sigterm_restart_keeps_sessions("always", "wal = false");
}

#[test]
fn sigterm_restart_keeps_sessions_subscriptions_and_queues_wal() {
    if skip_on_mosquitto("fleetmq restart") {
        return;
    }
    sigterm_restart_keeps_sessions("batch", "wal = true");
}

/// `periodic` acknowledges before the commit, but a clean stop must still
/// commit everything: only a crash may lose the window.
#[test]
fn sigterm_restart_keeps_acknowledged_messages_with_periodic_fsync() {
    sigterm_restart_keeps_acknowledged_messages_periodic("wal = false");
}

#[test]
fn sigterm_restart_keeps_acknowledged_messages_with_periodic_fsync_wal() {
    sigterm_restart_keeps_acknowledged_messages_periodic("wal = true");
}

fn sigterm_restart_keeps_acknowledged_messages_periodic(wal: &str) {
    if skip_on_mosquitto("fleetmq restart") {
        return;
    }
    let mut broker = Broker::start_with(&store_toml(
        "periodic",
        &format!("periodic_interval_secs = 60\n{wal}"),
    ));
    let addr = broker.addr();
    subscribe_and_leave(addr, ConnectBuilder::v311("rp-sub").clean(false), "rp/#");
    let (mut publisher, _) = RawClient::connect_v311(addr, "rp-pub", true);
    for n in 0..20 {
        let payload = format!("m{n}");
        assert_eq!(
            publisher.publish("rp/q", payload.as_bytes(), 1, false),
            ReasonCode::SUCCESS
        );
    }
    assert_eq!(
        publisher.publish("rp/retained", b"r", 1, true),
        ReasonCode::SUCCESS
    );
    let status = broker.sigterm();
    assert!(status.success(), "exit {status}");
    broker.restart();
    let drained = drain_session(
        broker.addr(),
        ConnectBuilder::v311("rp-sub").clean(false),
        Duration::from_millis(500),
        Duration::from_secs(5),
    );
    assert!(drained.session_present);
    let expected: Vec<String> = (0..20)
        .map(|n| format!("m{n}"))
        .chain(["r".to_string()])
        .collect();
    assert_eq!(
        payloads(&drained),
        expected,
        "every acknowledged message after a clean stop"
    );
    let retained = store::retained_under(broker.addr(), "rp/#", Duration::from_millis(500));
    assert_eq!(
        retained.get("rp/retained").map(Vec::as_slice),
        Some(&b"r"[..])
    );
}

/// A subscription made by a connected persistent client must survive a
/// crash like its session does: a SUBSCRIBE records the session with its
/// new filter (`SessionState::subscribe` returns the `SessionPut`), so a
/// SIGKILL while the client is connected restores the session with it.
#[test]
fn sigkill_keeps_subscriptions_of_a_connected_session() {
    sigkill_keeps_subscriptions("wal = false");
}

#[test]
fn sigkill_keeps_subscriptions_of_a_connected_session_wal() {
    sigkill_keeps_subscriptions("wal = true");
}

fn sigkill_keeps_subscriptions(wal: &str) {
    if skip_on_mosquitto("fleetmq restart") {
        return;
    }
    let mut broker = Broker::start_with(&store_toml("always", wal));
    let (mut sub, _) = RawClient::connect_v311(broker.addr(), "rk-sub", false);
    assert_eq!(sub.subscribe(1, "rk/#", 1), vec![ReasonCode(1)]);
    // Something later in the store's order is committed: a QoS 1 message
    // to another persistent session, acknowledged.
    subscribe_and_leave(
        broker.addr(),
        ConnectBuilder::v311("rk-other").clean(false),
        "rk-other/#",
    );
    let (mut publisher, _) = RawClient::connect_v311(broker.addr(), "rk-pub", true);
    assert_eq!(
        publisher.publish("rk-other/x", b"x", 1, false),
        ReasonCode::SUCCESS
    );
    broker.kill9();
    broker.restart();
    let (mut sub, connack) =
        RawClient::connect_with(broker.addr(), ConnectBuilder::v311("rk-sub").clean(false));
    assert!(connack.session_present);
    let (mut publisher, _) = RawClient::connect_v311(broker.addr(), "rk-pub", true);
    assert_eq!(
        publisher.publish("rk/t", b"routed", 1, false),
        ReasonCode::SUCCESS
    );
    assert_eq!(&sub.expect_app_publish().payload[..], b"routed");
}
