//! "A device is its certificate", end to end over mutual TLS: device dev-a
//! (CN=dev-a) publishes under `devices/dev-a/` and reads its own commands,
//! and nothing it sends (a wildcard, a shared subscription, a will) gets it
//! another device's data; the operator certificate (OU=ops) reads
//! everything, `$SYS` included. Client ids and usernames: `auth_identity.rs`.
//!
//! Clients are the byte-level `RawClient` over rustls (for exact reason
//! codes) and rumqttc over rustls; `acl_mosquitto_clients.rs` does the
//! same with the Mosquitto command-line clients.

use std::time::Duration;

use crate::harness;
use crate::harness::fleet::{set, topics, Fleet, POLICY_TOML};
use crate::harness::tls::{self, ANY_VERSION};
use crate::harness::{skip_on_mosquitto, ConnectBuilder, ReasonCode, QUIET, WAIT};

const SKIP: &str = "identities and ACLs are configured the fleetmq way";

/// Subscription options byte: QoS 1.
const QOS1: u8 = 1;

/// The policy plus "everyone may *subscribe* to anything": wide filters
/// are admitted, and only the per-message read check stands between a
/// device and other devices' data.
fn policy_with_wide_subscriptions() -> String {
    format!(
        "[[acl]]\naccess = \"subscribe\"\ntopic = \"#\"\n\n\
         [[acl]]\naccess = \"subscribe\"\ntopic = \"$SYS/#\"\n{POLICY_TOML}"
    )
}

#[test]
fn device_publishes_and_reads_only_its_own_topics() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start_toml_policy();
    let mut ops = fleet.connect_v5(&broker, "ops-1");
    assert_eq!(ops.subscribe("#"), ReasonCode(1));
    let mut dev_a = fleet.connect_v5(&broker, "dev-a");

    // Its own data: accepted and delivered.
    assert_eq!(
        dev_a.publish("devices/dev-a/data", b"21.5", 1, false),
        ReasonCode::SUCCESS
    );
    assert_eq!(
        &ops.expect_publish_on("devices/dev-a/data").payload[..],
        b"21.5"
    );
    // Another device's topics: PUBACK 0x87, and nobody receives it.
    for topic in ["devices/dev-b/data", "devices/dev-b/cmd/reboot", "other/x"] {
        assert_eq!(
            dev_a.publish(topic, b"forged", 1, false),
            ReasonCode::NOT_AUTHORIZED,
            "publish to {topic}"
        );
    }
    // QoS 2: PUBREC 0x87 ends the exchange.
    assert_eq!(
        dev_a.publish("devices/dev-b/data", b"forged", 2, false),
        ReasonCode::NOT_AUTHORIZED
    );
    assert_eq!(ops.drain(QUIET), []);

    // Reading: its own commands yes, dev-b's no.
    assert_eq!(dev_a.subscribe("devices/dev-a/cmd/#"), ReasonCode(1));
    for filter in [
        "devices/dev-b/cmd/#",
        "devices/dev-b/data",
        "devices/dev-a/#",
    ] {
        assert_eq!(
            dev_a.subscribe(filter),
            ReasonCode::NOT_AUTHORIZED,
            "subscribe to {filter}"
        );
    }
    assert_eq!(
        ops.publish("devices/dev-a/cmd/reboot", b"now", 1, false),
        ReasonCode::SUCCESS
    );
    assert_eq!(
        &dev_a.expect_publish_on("devices/dev-a/cmd/reboot").payload[..],
        b"now"
    );
    assert_eq!(
        ops.publish("devices/dev-b/cmd/reboot", b"now", 1, false),
        ReasonCode::SUCCESS
    );
    assert_eq!(dev_a.drain(QUIET), []);
    dev_a.ping();
}

#[test]
fn denials_in_3_1_1_are_acknowledged_and_dropped_and_suback_says_0x80() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start_toml_policy();
    let mut ops = fleet.connect_v311(&broker, "ops-1");
    assert_eq!(ops.subscribe("#"), ReasonCode(1));
    let mut dev_a = fleet.connect_v311(&broker, "dev-a");

    // 3.1.1 has no way to say "not authorized" in a PUBACK: the message
    // is acknowledged, dropped, and the connection stays.
    assert_eq!(
        dev_a.publish("devices/dev-b/data", b"forged", 1, false),
        ReasonCode::SUCCESS
    );
    assert_eq!(
        dev_a.publish("devices/dev-a/data", b"real", 1, false),
        ReasonCode::SUCCESS
    );
    let got = ops.drain(QUIET);
    assert_eq!(topics(&got), set(&["devices/dev-a/data"]));

    // SUBACK: one return code per filter, 0x80 for each refused one.
    dev_a.raw.send(&harness::subscribe(
        5,
        &[
            ("devices/dev-a/cmd/#", QOS1),
            ("devices/dev-b/#", QOS1),
            ("#", 0),
        ],
        false,
        &[],
    ));
    let suback = dev_a.raw.recv_exact(7, WAIT);
    assert_eq!(suback, [0x90, 0x05, 0x00, 0x05, 0x01, 0x80, 0x80]);
    dev_a.ping();
}

#[test]
fn wildcards_shared_subscriptions_and_sys_are_refused_to_devices() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start_toml_policy();
    let mut dev_a = fleet.connect_v5(&broker, "dev-a");
    for filter in [
        "#",
        "+/+/#",
        "devices/+/data",
        "devices/#",
        "$share/g/#",
        "$share/g/devices/dev-b/#",
        "$SYS/#",
        "$SYS/broker/uptime",
    ] {
        assert_eq!(
            dev_a.subscribe(filter),
            ReasonCode::NOT_AUTHORIZED,
            "subscribe to {filter}"
        );
    }
    // A shared subscription within its own commands is fine.
    assert_eq!(
        dev_a.subscribe("$share/g/devices/dev-a/cmd/#"),
        ReasonCode(1)
    );
    let mut dev_b = fleet.connect_v5(&broker, "dev-b");
    dev_b.publish("devices/dev-b/data", b"b", 1, true);
    assert_eq!(dev_a.drain(QUIET), []);
}

#[test]
fn wide_subscriptions_deliver_only_what_read_rules_allow() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start(
        harness::fleet::MATCH_CLIENT_ID,
        &policy_with_wide_subscriptions(),
    );
    let mut dev_b = fleet.connect_v5(&broker, "dev-b");
    let mut ops = fleet.connect_v5(&broker, "ops-1");
    // Retained before dev-a subscribes: one forbidden, one its own.
    dev_b.publish("devices/dev-b/data", b"b-retained", 1, true);
    ops.publish("devices/dev-a/cmd/config", b"a-retained", 1, true);

    let mut dev_a = fleet.connect_v5(&broker, "dev-a");
    for filter in [
        "#",
        "+/+/#",
        "devices/dev-b/#",
        "$share/g/#",
        "$share/h/devices/+/data",
        "$SYS/#",
    ] {
        assert_eq!(
            dev_a.subscribe(filter),
            ReasonCode(1),
            "subscribe-only rule admits {filter}"
        );
    }
    dev_b.publish("devices/dev-b/data", b"b-live", 1, false);
    dev_b.publish("devices/dev-b/cmd/reboot", b"b-cmd", 1, false);
    ops.publish("devices/dev-a/cmd/reboot", b"a-cmd", 1, false);

    // Only its own commands arrive (retained and live), through any of
    // the filters; dev-b's data does not, retained or not.
    let got = dev_a.drain(Duration::from_millis(500));
    assert_eq!(
        topics(&got),
        set(&["devices/dev-a/cmd/config", "devices/dev-a/cmd/reboot"]),
        "dev-a received {got:?}"
    );
    // Nor anything from $SYS, which the broker publishes every second:
    // two ticks reach an operator, none reaches dev-a.
    assert_eq!(ops.subscribe("$SYS/#"), ReasonCode(1));
    ops.expect_sys_publish();
    ops.expect_sys_publish();
    assert_eq!(dev_a.drain_all(Duration::from_millis(1200)), []);
    broker.assert_log(
        "Denied receive on 'devices/dev-b/data' for client dev-a",
        WAIT,
    );
}

#[test]
fn operator_reads_everything_and_sys() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start_toml_policy();
    let mut dev_a = fleet.connect_v5(&broker, "dev-a");
    let mut dev_b = fleet.connect_v5(&broker, "dev-b");
    dev_b.publish("devices/dev-b/data", b"retained", 1, true);

    let mut ops = fleet.connect_v5(&broker, "ops-1");
    assert_eq!(ops.subscribe("#"), ReasonCode(1));
    assert_eq!(ops.subscribe("$share/ops/devices/+/data"), ReasonCode(1));
    // The retained message of another device arrives on subscribe.
    let retained = ops.expect_publish_on("devices/dev-b/data");
    assert!(retained.retain);
    dev_a.publish("devices/dev-a/data", b"a", 1, false);
    dev_b.publish("devices/dev-b/status", b"b", 1, false);
    let got = ops.drain(QUIET);
    assert!(
        topics(&got).is_superset(&set(&["devices/dev-a/data", "devices/dev-b/status"])),
        "ops received {got:?}"
    );
    // $SYS with its explicit rule; a device without one is refused.
    assert_eq!(ops.subscribe("$SYS/#"), ReasonCode(1));
    ops.expect_sys_publish();
    assert_eq!(dev_a.subscribe("$SYS/#"), ReasonCode::NOT_AUTHORIZED);
    // Nobody may write $SYS, operators included.
    assert_eq!(
        ops.publish("$SYS/broker/forged", b"x", 1, false),
        ReasonCode::NOT_AUTHORIZED
    );
}

#[test]
fn retained_messages_on_forbidden_topics_are_not_delivered_on_subscribe() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start_toml_policy();
    let mut dev_b = fleet.connect_v5(&broker, "dev-b");
    dev_b.publish("devices/dev-b/data", b"data", 1, true);
    dev_b.publish("devices/dev-b/secret/key", b"k3y", 1, true);

    // Operators may subscribe to "#" but never read device secrets.
    let mut ops = fleet.connect_v5(&broker, "ops-1");
    assert_eq!(ops.subscribe("#"), ReasonCode(1));
    let got = ops.drain(QUIET);
    assert_eq!(
        topics(&got),
        set(&["devices/dev-b/data"]),
        "ops received {got:?}"
    );
    assert_eq!(
        ops.subscribe("devices/+/secret/#"),
        ReasonCode::NOT_AUTHORIZED
    );
    broker.assert_log(
        "Denied receive on 'devices/dev-b/secret/key' for client ops-1 (identity ops-1): \
         [[acl]] #1: deny readwrite devices/+/secret/# (group ops).",
        WAIT,
    );
}

#[test]
fn shared_group_member_that_may_not_read_does_not_receive() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start(
        harness::fleet::MATCH_CLIENT_ID,
        &policy_with_wide_subscriptions(),
    );
    let mut dev_a = fleet.connect_v5(&broker, "dev-a");
    let mut ops = fleet.connect_v5(&broker, "ops-1");
    assert_eq!(dev_a.subscribe("$share/g/#"), ReasonCode(1));
    assert_eq!(ops.subscribe("$share/g/#"), ReasonCode(1));
    let mut dev_b = fleet.connect_v5(&broker, "dev-b");
    for n in 0..10 {
        dev_b.publish(&format!("devices/dev-b/data/{n}"), b"b", 1, false);
    }
    assert_eq!(dev_a.drain(QUIET), []);
}

/// Known gap, kept visible: the group member is picked before the read
/// check, so a message that member may not read is dropped instead of
/// going to a member that may.
#[test]
fn shared_group_member_that_may_not_read_does_not_swallow_messages() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start(
        harness::fleet::MATCH_CLIENT_ID,
        &policy_with_wide_subscriptions(),
    );
    let mut dev_a = fleet.connect_v5(&broker, "dev-a");
    let mut ops = fleet.connect_v5(&broker, "ops-1");
    assert_eq!(dev_a.subscribe("$share/g/#"), ReasonCode(1));
    assert_eq!(ops.subscribe("$share/g/#"), ReasonCode(1));
    let mut dev_b = fleet.connect_v5(&broker, "dev-b");
    for n in 0..10 {
        dev_b.publish(&format!("devices/dev-b/data/{n}"), b"b", 1, false);
    }
    let got = ops.drain(QUIET);
    assert_eq!(got.len(), 10, "ops received {:?}", topics(&got));
}

#[test]
fn will_to_a_forbidden_topic_is_not_published() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start_toml_policy();
    let mut ops = fleet.connect_v5(&broker, "ops-1");
    assert_eq!(ops.subscribe("#"), ReasonCode(1));

    // The will is accepted at CONNECT and checked when it would be sent.
    // (One topic per version: a denial is logged once per topic.)
    for (connect, topic) in [
        (ConnectBuilder::v5("dev-a"), "devices/dev-b/status"),
        (ConnectBuilder::v311("dev-a"), "devices/dev-b/lwt"),
    ] {
        let connect = connect.will(topic, b"dev-b is gone", 1, true);
        fleet
            .connect_as(&broker, "dev-a", connect)
            .drop_connection();
        let denied = format!("Denied publish on '{topic}' for client dev-a");
        broker.assert_log(&denied, WAIT);
        assert_eq!(ops.drain(QUIET), [], "will on {topic}");
    }
    // Nor was it retained: a new subscription finds nothing.
    assert_eq!(ops.subscribe("devices/dev-b/#"), ReasonCode(1));
    assert_eq!(ops.drain(QUIET), []);

    // A will on its own topic goes out as usual.
    let connect = ConnectBuilder::v5("dev-a").will("devices/dev-a/status", b"gone", 1, false);
    fleet
        .connect_as(&broker, "dev-a", connect)
        .drop_connection();
    assert_eq!(
        &ops.expect_publish_on("devices/dev-a/status").payload[..],
        b"gone"
    );
}

#[test]
fn denials_are_logged_once_per_client_and_topic() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start_toml_policy();
    let mut dev_a = fleet.connect_v5(&broker, "dev-a");
    for _ in 0..50 {
        assert_eq!(
            dev_a.publish("devices/dev-b/x", b"forged", 1, false),
            ReasonCode::NOT_AUTHORIZED
        );
    }
    for _ in 0..50 {
        dev_a.publish("devices/dev-b/x", b"forged", 0, false);
    }
    // Another topic is another line; logged after all of the above, so
    // once it is there every earlier line is too.
    assert_eq!(
        dev_a.publish("devices/dev-b/y", b"forged", 1, false),
        ReasonCode::NOT_AUTHORIZED
    );
    broker.assert_log("Denied publish on 'devices/dev-b/y'", WAIT);
    let lines = broker.count_log_lines(&["Denied publish on 'devices/dev-b/x' for client dev-a"]);
    assert_eq!(lines, 1, "{}", broker.logs());
    broker.assert_log(
        "Denied publish on 'devices/dev-b/x' for client dev-a (identity dev-a): \
         default deny (rules exist).",
        WAIT,
    );
    // Another client denied the same topic gets its own line.
    let mut ops = fleet.connect_v5(&broker, "ops-1");
    ops.publish("devices/dev-b/x", b"x", 1, false);
    assert_eq!(
        broker.wait_for_log_lines(&["Denied publish on 'devices/dev-b/x'"], 2, WAIT),
        2,
        "{}",
        broker.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_over_rustls_keeps_to_its_own_topics() {
    use rumqttc::{AsyncClient, Event, MqttOptions, QoS, SubscribeReasonCode, TlsConfiguration};

    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start_toml_policy();
    let mut ops = fleet.connect_v5(&broker, "ops-1");
    assert_eq!(ops.subscribe("devices/#"), ReasonCode(1));

    let mut options = MqttOptions::new(
        "dev-a",
        "127.0.0.1",
        broker.addr_of(harness::fleet::LISTENER).port(),
    );
    options.set_keep_alive(Duration::from_secs(30));
    let config = tls::client_config(&fleet.pki.ca.cert, Some(fleet.dev_a()), ANY_VERSION);
    options.set_transport(rumqttc::Transport::tls_with_config(
        TlsConfiguration::Rustls(config),
    ));
    let (client, mut event_loop) = AsyncClient::new(options, 16);
    let (sender, mut incoming) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        // Stop at the first error: rumqttc would otherwise reconnect.
        while let Ok(event) = event_loop.poll().await {
            if let Event::Incoming(packet) = event {
                if sender.send(packet).is_err() {
                    return;
                }
            }
        }
    });
    client
        .subscribe("devices/dev-a/cmd/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let suback = next_suback_or_publish(&mut incoming).await.expect("SUBACK");
    assert_eq!(
        suback.return_codes,
        [SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    client
        .subscribe("devices/dev-b/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let suback = next_suback_or_publish(&mut incoming).await.expect("SUBACK");
    assert_eq!(suback.return_codes, [SubscribeReasonCode::Failure]);

    for topic in ["devices/dev-b/data", "devices/dev-a/data"] {
        client
            .publish(topic, QoS::AtLeastOnce, false, b"from rumqttc".to_vec())
            .await
            .unwrap();
    }
    let got = tokio::task::block_in_place(|| ops.drain(QUIET));
    assert_eq!(topics(&got), set(&["devices/dev-a/data"]));

    tokio::task::block_in_place(|| ops.publish("devices/dev-a/cmd/led", b"on", 1, false));
    let publish = next_suback_or_publish(&mut incoming)
        .await
        .expect_err("a PUBLISH");
    assert_eq!(publish.topic, "devices/dev-a/cmd/led");
    assert_eq!(publish.payload.as_ref(), b"on");
    driver.abort();
}

/// The next SUBACK (Ok) or PUBLISH (Err) rumqttc reports; panics after
/// [`WAIT`] without one.
async fn next_suback_or_publish(
    incoming: &mut tokio::sync::mpsc::UnboundedReceiver<rumqttc::Packet>,
) -> Result<rumqttc::SubAck, rumqttc::Publish> {
    loop {
        match tokio::time::timeout(WAIT, incoming.recv()).await {
            Ok(Some(rumqttc::Packet::SubAck(suback))) => return Ok(suback),
            Ok(Some(rumqttc::Packet::Publish(publish))) => return Err(publish),
            Ok(Some(_)) => {}
            other => panic!("rumqttc: nothing more from the broker: {other:?}"),
        }
    }
}
