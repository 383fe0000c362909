//! A device cannot pose as another: over mutual TLS the certificate names
//! the client, and a client id or username naming another device is
//! refused (`clientid_must_match_identity`, CONNACK 0x85 / return code 2;
//! a foreign username 0x86 / 4) without disturbing the real device, or
//! replaced by the certificate's name (`identity_as_clientid`). Where any
//! client id is accepted, a session still belongs to the certificate that
//! made it: another one can neither take it over, resume nor wipe it
//! (CONNACK 0x87 / return code 5).

use crate::harness;
use crate::harness::fleet::{Fleet, Peer, LISTENER, POLICY_TOML};
use crate::harness::tls::{self, ANY_VERSION};
use crate::harness::{
    prop, skip_on_mosquitto, Broker, ConnectBuilder, RawClient, ReasonCode, WAIT,
};

const SKIP: &str = "identities and ACLs are configured the fleetmq way";

/// The 3.1.1 CONNACK bytes the broker answers `connect` with, for a
/// client presenting dev-a's certificate.
fn connack_v311_as_dev_a(fleet: &Fleet, broker: &Broker, connect: &ConnectBuilder) -> Vec<u8> {
    let config = tls::client_config(&fleet.pki.ca.cert, Some(fleet.dev_a()), ANY_VERSION);
    let mut raw = RawClient::over(tls::connect(broker.addr_of(LISTENER), config).unwrap());
    raw.send_connect(connect);
    raw.recv_exact(4, WAIT)
}

#[test]
fn device_cannot_take_another_devices_client_id() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start_toml_policy();
    let mut dev_b = fleet.connect_v5(&broker, "dev-b");
    assert_eq!(dev_b.subscribe("devices/dev-b/cmd/#"), ReasonCode(1));

    // 5.0: 0x85 Client Identifier not valid.
    let (mut impostor, connack) =
        fleet.try_connect(&broker, fleet.dev_a(), &ConnectBuilder::v5("dev-b"));
    assert_eq!(connack.reason, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
    assert!(impostor.expect_closed(WAIT), "refused client left open");
    broker.assert_log(
        "as dev-b: client id differs from the client's identity",
        WAIT,
    );
    // 3.1.1: CONNACK return code 2, identifier rejected.
    let (mut impostor, connack) =
        fleet.try_connect(&broker, fleet.dev_a(), &ConnectBuilder::v311("dev-b"));
    assert_eq!(connack.reason, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
    assert!(impostor.expect_closed(WAIT));
    assert_eq!(
        connack_v311_as_dev_a(&fleet, &broker, &ConnectBuilder::v311("dev-b").clean(false)),
        [0x20, 0x02, 0x00, 0x02]
    );

    // The real dev-b was not taken over and still gets its commands.
    let mut ops = fleet.connect_v5(&broker, "ops-1");
    ops.publish("devices/dev-b/cmd/ping", b"1", 1, false);
    dev_b.expect_publish_on("devices/dev-b/cmd/ping");
    assert_eq!(
        broker.count_log_lines(&["already connected, closing old connection"]),
        0,
        "{}",
        broker.logs()
    );
    // Its own name is fine, with either version.
    fleet.connect_v311(&broker, "dev-a").ping();
}

#[test]
fn device_cannot_claim_another_devices_username() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start_toml_policy();
    let mut connect = ConnectBuilder::v5("dev-a");
    connect.username = Some("dev-b".to_string());
    let (_, connack) = fleet.try_connect(&broker, fleet.dev_a(), &connect);
    assert_eq!(connack.reason, ReasonCode::BAD_USER_NAME_OR_PASSWORD);
    let mut connect = ConnectBuilder::v311("dev-a");
    connect.username = Some("dev-b".to_string());
    assert_eq!(
        connack_v311_as_dev_a(&fleet, &broker, &connect),
        [0x20, 0x02, 0x00, 0x04]
    );
    // Its own name as username is accepted.
    let mut connect = ConnectBuilder::v5("dev-a");
    connect.username = Some("dev-a".to_string());
    fleet.connect_as(&broker, "dev-a", connect).ping();
}

#[test]
fn identity_as_clientid_replaces_whatever_client_id_is_sent() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start("identity_as_clientid = true", POLICY_TOML);
    let mut dev_b = fleet.connect_v5(&broker, "dev-b");
    assert_eq!(dev_b.subscribe("devices/dev-b/cmd/#"), ReasonCode(1));

    // dev-a asks for dev-b's client id and gets its own: no takeover.
    let mut dev_a = fleet.connect_as(&broker, "dev-a", ConnectBuilder::v5("dev-b"));
    broker.assert_log(" as dev-a (p5", WAIT);
    assert_eq!(
        broker.count_log_lines(&["already connected, closing old connection"]),
        0,
        "{}",
        broker.logs()
    );
    // Its rights are dev-a's, and dev-b still gets its own commands.
    assert_eq!(dev_a.subscribe("devices/dev-a/cmd/#"), ReasonCode(1));
    assert_eq!(
        dev_a.subscribe("devices/dev-b/cmd/#"),
        ReasonCode::NOT_AUTHORIZED
    );
    let mut ops = fleet.connect_v5(&broker, "ops-1");
    ops.publish("devices/dev-b/cmd/ping", b"1", 1, false);
    dev_b.expect_publish_on("devices/dev-b/cmd/ping");
    assert_eq!(dev_a.drain(harness::QUIET), []);
}

/// dev-b's persistent 5.0 session (expiry 300 s, clean start off).
fn dev_b_resuming() -> ConnectBuilder {
    ConnectBuilder::v5("dev-b")
        .clean(false)
        .property(prop::u32(prop::SESSION_EXPIRY, 300))
}

#[test]
fn another_principal_cannot_take_over_resume_or_wipe_a_session() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    // No clientid_must_match_identity: any client id is accepted, as in a
    // lab migrated from Mosquitto; the session's owner is what protects it.
    let mut broker = fleet.start("", POLICY_TOML);
    let mut ops = fleet.connect_v5(&broker, "ops-1");
    let (raw, connack) = fleet.try_connect(&broker, fleet.dev_b(), &dev_b_resuming());
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    let mut dev_b = Peer::new(raw);
    assert_eq!(dev_b.subscribe("devices/dev-b/cmd/#"), ReasonCode(1));

    // A live take-over by dev-a's certificate: refused, dev-b stays.
    let (mut impostor, connack) =
        fleet.try_connect(&broker, fleet.dev_a(), &ConnectBuilder::v5("dev-b"));
    assert_eq!(connack.reason, ReasonCode::NOT_AUTHORIZED);
    assert!(impostor.expect_closed(WAIT), "refused client left open");
    broker.assert_log(
        "as dev-b: the session belongs to certificate 'dev-b', not to certificate 'dev-a'.",
        WAIT,
    );
    dev_b.ping();

    // One message in flight (received, never acknowledged), then offline,
    // and one more queued while offline.
    ops.publish("devices/dev-b/cmd/first", b"1", 1, false);
    let first = dev_b.raw.expect_publish();
    assert_eq!(&*first.topic, "devices/dev-b/cmd/first");
    dev_b.drop_connection();
    broker.assert_log("on client dev-b, disconnecting", WAIT);
    ops.publish("devices/dev-b/cmd/second", b"2", 1, false);

    // Resuming (which would resend the unacknowledged message) and a clean
    // start (which would wipe the queue) are refused alike, in 5.0 and 3.1.1.
    for connect in [
        ConnectBuilder::v5("dev-b").clean(false),
        ConnectBuilder::v5("dev-b").clean(true),
    ] {
        let (mut impostor, connack) = fleet.try_connect(&broker, fleet.dev_a(), &connect);
        assert_eq!(connack.reason, ReasonCode::NOT_AUTHORIZED);
        assert!(!connack.session_present);
        assert!(impostor.expect_closed(WAIT), "refused client left open");
    }
    assert_eq!(
        connack_v311_as_dev_a(&fleet, &broker, &ConnectBuilder::v311("dev-b").clean(false)),
        [0x20, 0x02, 0x00, 0x05]
    );

    // The owner gets both messages: the first again (DUP), then the second.
    let (mut owner, connack) = fleet.try_connect(&broker, fleet.dev_b(), &dev_b_resuming());
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    assert!(connack.session_present, "{}", broker.logs());
    let again = owner.expect_publish();
    assert_eq!(
        (&*again.topic, again.dup),
        ("devices/dev-b/cmd/first", true)
    );
    let second = owner.expect_publish();
    assert_eq!(&*second.topic, "devices/dev-b/cmd/second");

    // The owner is stored with the session: still refused after a crash.
    owner.drop_connection();
    broker.restart();
    let (_, connack) = fleet.try_connect(&broker, fleet.dev_a(), &dev_b_resuming());
    assert_eq!(
        connack.reason,
        ReasonCode::NOT_AUTHORIZED,
        "{}",
        broker.logs()
    );
    let (_, connack) = fleet.try_connect(&broker, fleet.dev_b(), &dev_b_resuming());
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    assert!(connack.session_present, "{}", broker.logs());
}

/// The certificate name that replaces the client id is held to the same
/// `limits.max_client_id_length` as a client id sent in CONNECT.
#[test]
fn identity_as_clientid_obeys_max_client_id_length() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    // "dev-a" is 5 bytes; the client sends a 1-byte id.
    let limits = "[mqtt]\nauto_id_prefix = \"a\"\n\n[limits]\nmax_client_id_length = 4\n";
    let broker = fleet.start(
        "identity_as_clientid = true",
        &format!("{limits}{POLICY_TOML}"),
    );
    let (mut client, connack) = fleet.try_connect(&broker, fleet.dev_a(), &ConnectBuilder::v5("x"));
    assert_eq!(connack.reason, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
    assert!(client.expect_closed(WAIT), "refused client left open");
    broker.assert_log(
        "certificate identity of 5 bytes (identity_as_clientid) exceeds limits.max_client_id_length 4",
        WAIT,
    );
    assert_eq!(
        connack_v311_as_dev_a(&fleet, &broker, &ConnectBuilder::v311("x")),
        [0x20, 0x02, 0x00, 0x02]
    );
    assert_eq!(
        broker.count_log_lines(&[" as dev-a (p"]),
        0,
        "{}",
        broker.logs()
    );
}
