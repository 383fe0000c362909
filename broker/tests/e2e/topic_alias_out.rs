//! Outbound topic aliases (decision 0129): a 5.0 client that announces a
//! Topic Alias Maximum receives a topic once with an alias, then the alias
//! alone. Checked on the wire with the raw client and with rumqttc's 5.0
//! client (which resolves aliases and disconnects on one it does not know).
//! Under `--mosquitto-conf` none are sent without Mosquitto 2.1's
//! `max_topic_alias_broker`: `mosquitto_sub` 2.0.11 announcing a maximum
//! gets the same from fleetmq as from Mosquitto 2.0.11. Mosquitto 2.0 sends
//! no aliases: these tests are skipped against it.

use std::process::Command;
use std::time::Duration;

use crate::harness::service::{fleetmq, free_port, Process};
use crate::harness::tools::Tool;
use crate::harness::*;
use rumqttc::v5::mqttbytes::v5::Packet as V5Packet;
use rumqttc::v5::mqttbytes::QoS as V5QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::time::timeout;

/// CONNECT property: how many aliases the client accepts.
const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;

/// A 5.0 subscriber to `filter` announcing `maximum` aliases.
fn subscriber(broker: &Broker, id: &str, maximum: u16, filter: &str) -> RawClient {
    let connect = ConnectBuilder::v5(id).property(prop::u16(TOPIC_ALIAS_MAXIMUM, maximum));
    let (mut client, _) = RawClient::connect_with(broker.addr(), connect);
    assert_eq!(client.subscribe(1, filter, 0), [ReasonCode(0)]);
    client
}

fn publisher(broker: &Broker) -> RawClient {
    RawClient::connect_v5(broker.addr(), "alias-publisher", true).0
}

/// The bytes of a QoS 0 PUBLISH as the broker must send it.
fn expected(topic: &str, alias: u16, payload: &[u8]) -> Vec<u8> {
    publish(topic, payload)
        .v5(true)
        .properties(&prop::u16(prop::TOPIC_ALIAS, alias))
        .build()
}

#[test]
fn the_topic_goes_once_then_the_alias_alone() {
    if skip_on_mosquitto("Mosquitto 2.0 sends no topic aliases") {
        return;
    }
    let broker = Broker::start();
    let mut device = subscriber(&broker, "alias-device", 4, "lab/#");
    let mut app = publisher(&broker);
    for payload in [b"21.5", b"21.6"] {
        app.publish("lab/device/temperature", payload, 0, false);
    }
    app.publish("lab/device/humidity", b"40", 0, false);
    app.publish("lab/device/temperature", b"21.7", 0, false);
    let wanted = [
        expected("lab/device/temperature", 1, b"21.5"),
        expected("", 1, b"21.6"),
        expected("lab/device/humidity", 2, b"40"),
        expected("", 1, b"21.7"),
    ];
    for (n, packet) in wanted.iter().enumerate() {
        assert_eq!(
            &device.recv_exact(packet.len(), WAIT),
            packet,
            "PUBLISH {n} on the wire"
        );
    }
    // The aliased PUBLISH carries an empty topic: 2 bytes of length instead
    // of 2 + 22.
    assert_eq!(wanted[1].len() + 22, wanted[0].len());
    device.ping();
}

#[test]
fn no_aliases_beyond_the_limit_or_when_disabled() {
    if skip_on_mosquitto("Mosquitto 2.0 sends no topic aliases") {
        return;
    }
    // The client accepts 65535; the broker uses at most 2.
    let broker = Broker::start_with("[limits]\nmax_outbound_topic_aliases = 2\n");
    let mut device = subscriber(&broker, "alias-device", u16::MAX, "lab/#");
    let mut app = publisher(&broker);
    let topics = ["lab/a/1", "lab/a/2", "lab/a/3", "lab/a/1", "lab/a/3"];
    for topic in topics {
        app.publish(topic, b"x", 0, false);
    }
    let mut aliases = Vec::new();
    for _ in topics {
        aliases.push(device.expect_app_publish().properties.topic_alias);
    }
    // lab/a/1 gave alias 1 to lab/a/3, then took alias 2 from lab/a/2.
    assert_eq!(aliases, [Some(1), Some(2), Some(1), Some(2), Some(1)]);
    drop(broker);

    let broker = Broker::start_with("[limits]\nmax_outbound_topic_aliases = 0\n");
    let mut device = subscriber(&broker, "alias-device", 10, "lab/#");
    let mut app = publisher(&broker);
    for _ in 0..2 {
        app.publish("lab/a/1", b"x", 0, false);
    }
    for _ in 0..2 {
        let publish = device.expect_app_publish();
        assert_eq!(
            (&*publish.topic, publish.properties.topic_alias),
            ("lab/a/1", None)
        );
    }
}

#[test]
fn a_resent_message_names_its_topic_and_a_new_connection_starts_afresh() {
    if skip_on_mosquitto("Mosquitto 2.0 sends no topic aliases") {
        return;
    }
    let broker = Broker::start();
    let connect = || {
        ConnectBuilder::v5("alias-device")
            .clean(false)
            .property(prop::u16(TOPIC_ALIAS_MAXIMUM, 4))
            .property(prop::u32(prop::SESSION_EXPIRY, 3600))
    };
    let (mut device, _) = RawClient::connect_with(broker.addr(), connect());
    assert_eq!(device.subscribe(1, "lab/#", 1), [ReasonCode::GRANTED_QOS_1]);
    let mut app = publisher(&broker);
    app.publish("lab/device/temperature", b"1", 1, false);
    app.publish("lab/device/temperature", b"2", 1, false);
    let first = device.expect_app_publish();
    let second = device.expect_app_publish();
    assert_eq!(
        (&*first.topic, first.properties.topic_alias),
        ("lab/device/temperature", Some(1))
    );
    assert_eq!(
        (&*second.topic, second.properties.topic_alias),
        ("", Some(1))
    );
    // Neither acknowledged: the device's link drops.
    device.drop_connection();

    let (mut device, connack) = RawClient::connect_with(broker.addr(), connect());
    assert!(connack.session_present);
    for (payload, original) in [(b"1", &first), (b"2", &second)] {
        let resent = device.expect_app_publish();
        assert!(resent.dup);
        assert_eq!(resent.packet_id, original.packet_id);
        assert_eq!(&*resent.topic, "lab/device/temperature");
        assert_eq!(resent.properties.topic_alias, None);
        assert_eq!(&resent.payload[..], payload);
        device.send(&ack(0x40, resent.packet_id.unwrap()));
    }
    // The new connection's table is empty: the topic is taught again.
    app.publish("lab/device/temperature", b"3", 1, false);
    let fresh = device.expect_app_publish();
    assert!(!fresh.dup);
    assert_eq!(
        (&*fresh.topic, fresh.properties.topic_alias),
        ("lab/device/temperature", Some(1))
    );
}

/// What `mosquitto_sub -v` prints for [`TOPICS`] sent in order with their
/// index as payload, by a subscriber announcing a Topic Alias Maximum of 2.
fn mosquitto_sub_receives(port: u16) -> Vec<String> {
    let port_text = port.to_string();
    let sub = Tool::spawn_line_buffered(
        "mosquitto_sub",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port_text,
            "-V",
            "5",
            "-D",
            "connect",
            "topic-alias-maximum",
            "2",
            "-i",
            "alias-sub",
            "-t",
            "lab/#",
            "-v",
            "-d",
            "-C",
            "7",
        ],
    );
    sub.assert_output("SUBACK", WAIT);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let (mut app, _) = RawClient::connect_v5(addr, "alias-publisher", true);
    for (n, topic) in TOPICS.iter().enumerate() {
        app.publish(topic, n.to_string().as_bytes(), 0, false);
    }
    let (_, output) = sub.finish(WAIT);
    output
        .lines()
        .filter(|line| line.starts_with("lab/"))
        .map(str::to_string)
        .collect()
}

/// Topics that make a 2-alias table reuse aliases.
const TOPICS: [&str; 7] = [
    "lab/a", "lab/b", "lab/a", "lab/c", "lab/a", "lab/b", "lab/c",
];

fn wait_accepting(port: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn under_mosquitto_conf_aliases_wait_for_max_topic_alias_broker() {
    if skip_on_mosquitto("runs Mosquitto and fleetmq itself") {
        return;
    }
    // Debian's libmosquitto 2.0.11 announces a maximum when asked but
    // cannot resolve an alias (eclipse-mosquitto/mosquitto#1468): against
    // Mosquitto 2.0 it never has to. Under `--mosquitto-conf` without
    // `max_topic_alias_broker`, fleetmq sends none either.
    let sent: Vec<String> = TOPICS
        .iter()
        .enumerate()
        .map(|(n, topic)| format!("{topic} {n}"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for broker in ["mosquitto", "fleetmq"] {
        let port = free_port();
        let conf = dir.path().join(format!("{broker}.conf"));
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
        )
        .unwrap();
        let mut command = if broker == "mosquitto" {
            let mut command = Command::new("mosquitto");
            command.arg("-c").arg(&conf);
            command
        } else {
            let mut command = fleetmq();
            command.arg("run").arg("--mosquitto-conf").arg(&conf);
            command
        };
        command.current_dir(dir.path());
        let process = Process::spawn(command);
        wait_accepting(port);
        assert_eq!(
            mosquitto_sub_receives(port),
            sent,
            "{broker}: {}",
            process.logs()
        );
    }

    // Mosquitto 2.1's directive turns them on.
    let port = free_port();
    let conf = dir.path().join("aliases.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_topic_alias_broker 2\n"),
    )
    .unwrap();
    let mut command = fleetmq();
    command
        .arg("run")
        .arg("--mosquitto-conf")
        .arg(&conf)
        .current_dir(dir.path());
    let _process = Process::spawn(command);
    wait_accepting(port);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let connect = ConnectBuilder::v5("alias-device").property(prop::u16(TOPIC_ALIAS_MAXIMUM, 10));
    let (mut device, _) = RawClient::connect_with(addr, connect);
    assert_eq!(device.subscribe(1, "lab/#", 0), [ReasonCode(0)]);
    let (mut app, _) = RawClient::connect_v5(addr, "alias-publisher", true);
    for topic in TOPICS {
        app.publish(topic, b"x", 0, false);
    }
    let named: Vec<(String, Option<u16>)> = TOPICS
        .iter()
        .map(|_| {
            let publish = device.expect_app_publish();
            (publish.topic.to_string(), publish.properties.topic_alias)
        })
        .collect();
    let named: Vec<(&str, Option<u16>)> = named.iter().map(|(t, a)| (t.as_str(), *a)).collect();
    assert_eq!(
        named,
        [
            ("lab/a", Some(1)),
            ("lab/b", Some(2)),
            ("", Some(1)),
            ("lab/c", Some(2)),
            ("", Some(1)),
            ("lab/b", Some(2)),
            ("lab/c", Some(1)),
        ]
    );
}

#[tokio::test]
async fn rumqttc_follows_the_aliases() {
    if skip_on_mosquitto("Mosquitto 2.0 sends no topic aliases") {
        return;
    }
    let broker = Broker::start();
    let mut options = MqttOptions::new("alias-rumqttc", "127.0.0.1", broker.port());
    options.set_topic_alias_max(Some(2));
    let (client, mut event_loop) = AsyncClient::new(options, 64);
    let (sender, mut incoming) = tokio::sync::mpsc::unbounded_channel();
    let events = tokio::spawn(async move {
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(packet)) => {
                    if sender.send(Ok(packet)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    let _ = sender.send(Err(error.to_string()));
                    return;
                }
            }
        }
    });
    let mut next = async || match timeout(WAIT, incoming.recv()).await {
        Ok(Some(Ok(packet))) => packet,
        other => panic!("rumqttc: {other:?}"),
    };
    assert!(matches!(next().await, V5Packet::ConnAck(_)));
    client.subscribe("lab/#", V5QoS::AtLeastOnce).await.unwrap();
    assert!(matches!(next().await, V5Packet::SubAck(_)));

    let topics = [
        "lab/a", "lab/b", "lab/a", "lab/c", "lab/a", "lab/b", "lab/c", "lab/c",
    ];
    let mut app = publisher(&broker);
    for (n, topic) in topics.iter().enumerate() {
        app.publish(topic, n.to_string().as_bytes(), 1, false);
    }
    // rumqttc reports a PUBLISH as it came off the wire and resolves the
    // alias for itself (an unknown one would end its connection with a
    // protocol error); the test resolves it the same way.
    let mut table = std::collections::HashMap::new();
    let mut resolved = Vec::new();
    let mut aliased = 0;
    while resolved.len() < topics.len() {
        let V5Packet::Publish(publish) = next().await else {
            continue;
        };
        let alias = publish.properties.as_ref().and_then(|p| p.topic_alias);
        let alias = alias.expect("every topic here is long enough for an alias");
        assert!(
            (1..=2).contains(&alias),
            "alias {alias} above the client's maximum"
        );
        let topic = String::from_utf8(publish.topic.to_vec()).unwrap();
        if topic.is_empty() {
            aliased += 1;
        } else {
            table.insert(alias, topic);
        }
        let payload = String::from_utf8(publish.payload.to_vec()).unwrap();
        resolved.push(format!("{} {payload}", table[&alias]));
    }
    let sent: Vec<String> = topics
        .iter()
        .enumerate()
        .map(|(n, topic)| format!("{topic} {n}"))
        .collect();
    assert_eq!(resolved, sent);
    assert_eq!(aliased, 3, "lab/a twice and lab/c once went as aliases");
    // Still connected: rumqttc knew every alias it was sent.
    client
        .publish("lab/end", V5QoS::AtLeastOnce, false, b"end".to_vec())
        .await
        .unwrap();
    loop {
        if let V5Packet::Publish(publish) = next().await {
            assert_eq!(&publish.payload[..], b"end");
            break;
        }
    }
    client.disconnect().await.unwrap();
    let _ = timeout(WAIT, events).await;
}
