//! Outbound topic aliases (decision 0129): what a 5.0 client that announces
//! a Topic Alias Maximum receives, decoded from the bytes the protocol
//! writes.

use super::*;

/// A subscriber to `lab/#` at `qos` announcing `maximum`, and a publisher.
fn pair(broker: &Arc<Engine>, maximum: Option<u16>, qos: QoS) -> (Client, Client) {
    let mut sub = connect(
        broker,
        Connect {
            topic_alias_maximum: maximum,
            ..Connect::v5("sub")
        },
    );
    sub.subscribe("lab/#", qos);
    (sub, connect(broker, Connect::v5("pub")))
}

/// Topic and alias of each PUBLISH `client` receives for `topics`, sent
/// one after the other at QoS 0.
fn deliver(
    publisher: &mut Client,
    sub: &mut Client,
    topics: &[&str],
) -> Vec<(String, Option<u16>)> {
    for topic in topics {
        publisher
            .feed(publish(topic, QoS::AtMostOnce, None, b"x"))
            .unwrap();
    }
    named(&sub.drain())
}

fn named(packets: &[Packet]) -> Vec<(String, Option<u16>)> {
    packets
        .iter()
        .filter_map(|packet| match packet {
            Packet::Publish(p) => Some((p.topic.to_string(), p.properties.topic_alias)),
            _ => None,
        })
        .collect()
}

fn full(topic: &str, alias: u16) -> (String, Option<u16>) {
    (topic.to_string(), Some(alias))
}

fn alias_only(alias: u16) -> (String, Option<u16>) {
    (String::new(), Some(alias))
}

#[test]
fn first_send_names_the_topic_and_later_sends_only_the_alias() {
    let broker = broker();
    let (mut sub, mut publisher) = pair(&broker, Some(5), QoS::AtMostOnce);
    assert_eq!(sub.protocol.outbound_topic_aliases(), 5);
    let got = deliver(
        &mut publisher,
        &mut sub,
        &["lab/temp", "lab/temp", "lab/hum", "lab/temp", "lab/hum"],
    );
    assert_eq!(
        got,
        [
            full("lab/temp", 1),
            alias_only(1),
            full("lab/hum", 2),
            alias_only(1),
            alias_only(2)
        ]
    );
}

#[test]
fn the_table_is_bounded_and_the_least_recently_sent_topic_gives_its_alias_away() {
    let broker = broker();
    let (mut sub, mut publisher) = pair(&broker, Some(2), QoS::AtMostOnce);
    let got = deliver(
        &mut publisher,
        &mut sub,
        &[
            "lab/a", "lab/b", "lab/a", "lab/c", "lab/a", "lab/b", "lab/c",
        ],
    );
    assert_eq!(
        got,
        [
            full("lab/a", 1),
            full("lab/b", 2),
            alias_only(1),
            full("lab/c", 2), // lab/b was the least recently sent
            alias_only(1),
            full("lab/b", 2), // lab/c was
            full("lab/c", 1), // lab/a was
        ]
    );
}

#[test]
fn aliases_stay_within_the_clients_maximum_and_the_brokers_limit() {
    let topics: Vec<String> = (0..40).map(|n| format!("lab/{n:02}")).collect();
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    for (client_maximum, limit, highest) in [(3, 10, 3), (65535, 4, 4), (10, 10, 10)] {
        let broker = broker_with(|config| config.limits.max_outbound_topic_aliases = limit);
        let (mut sub, mut publisher) = pair(&broker, Some(client_maximum), QoS::AtMostOnce);
        // Twice over, so the second round reuses aliases.
        let mut got = deliver(&mut publisher, &mut sub, &topics);
        got.extend(deliver(&mut publisher, &mut sub, &topics));
        let aliases: Vec<u16> = got.iter().filter_map(|(_, alias)| *alias).collect();
        assert_eq!(aliases.len(), 80);
        assert_eq!(
            aliases.iter().max(),
            Some(&highest),
            "{client_maximum} / {limit}"
        );
        assert!(aliases.iter().all(|&alias| alias >= 1));
    }
}

#[test]
fn no_alias_when_disabled_not_announced_or_for_3_1_1() {
    let off = broker_with(|config| config.limits.max_outbound_topic_aliases = 0);
    let (mut sub, mut publisher) = pair(&off, Some(10), QoS::AtMostOnce);
    assert_eq!(sub.protocol.outbound_topic_aliases(), 0);
    let got = deliver(&mut publisher, &mut sub, &["lab/temp", "lab/temp"]);
    assert_eq!(got, [("lab/temp".into(), None), ("lab/temp".into(), None)]);

    let broker = broker();
    for maximum in [None, Some(0)] {
        let (mut sub, mut publisher) = pair(&broker, maximum, QoS::AtMostOnce);
        let got = deliver(&mut publisher, &mut sub, &["lab/temp", "lab/temp"]);
        assert_eq!(got, [("lab/temp".into(), None), ("lab/temp".into(), None)]);
    }

    let mut old = connect(
        &broker,
        Connect {
            version: ProtocolVersion::V3_1_1,
            topic_alias_maximum: Some(10),
            ..Connect::v5("old")
        },
    );
    assert_eq!(old.protocol.outbound_topic_aliases(), 0);
    old.subscribe("lab/#", QoS::AtMostOnce);
    let mut publisher = connect(&broker, Connect::v5("pub2"));
    let got = deliver(&mut publisher, &mut old, &["lab/temp", "lab/temp"]);
    assert_eq!(got, [("lab/temp".into(), None), ("lab/temp".into(), None)]);
}

#[test]
fn short_topics_are_sent_whole() {
    let broker = broker();
    let mut sub = connect(
        &broker,
        Connect {
            topic_alias_maximum: Some(5),
            ..Connect::v5("sub")
        },
    );
    sub.subscribe("#", QoS::AtMostOnce);
    let mut publisher = connect(&broker, Connect::v5("pub"));
    let got = deliver(&mut publisher, &mut sub, &["a/b", "a/b", "a/bc", "a/bc"]);
    assert_eq!(
        got,
        [
            ("a/b".into(), None),
            ("a/b".into(), None),
            full("a/bc", 1),
            alias_only(1)
        ]
    );
}

/// A persistent session announcing 5 aliases.
fn persistent(clean_start: bool) -> Connect {
    Connect {
        clean_start,
        expiry: u32::MAX,
        topic_alias_maximum: Some(5),
        ..Connect::v5("dev")
    }
}

#[test]
fn a_new_connection_starts_without_aliases_and_resends_name_the_topic() {
    let broker = broker();
    let mut old = connect(&broker, persistent(true));
    old.subscribe("lab/#", QoS::AtLeastOnce);
    let mut publisher = connect(&broker, Connect::v5("pub"));
    for id in 1..=2 {
        publisher
            .feed(publish("lab/temp", QoS::AtLeastOnce, Some(id), b"m"))
            .unwrap();
    }
    let sent = old.drain();
    assert_eq!(named(&sent), [full("lab/temp", 1), alias_only(1)]);

    // The device reconnects (its old connection is taken over) without
    // having acknowledged either message.
    let mut new = connect(&broker, persistent(false));
    assert!(new.session_present);
    new.protocol.resend_inflight(Instant::now());
    let resent = new.written();
    for packet in &resent {
        match packet {
            Packet::Publish(p) => {
                assert!(p.dup);
                assert_eq!(&*p.topic, "lab/temp");
                assert_eq!(p.properties.topic_alias, None);
            }
            other => panic!("expected a PUBLISH, got {other:?}"),
        }
    }
    assert_eq!(resent.len(), 2);

    // A first send on the new connection teaches the alias again.
    publisher
        .feed(publish("lab/temp", QoS::AtLeastOnce, Some(3), b"m"))
        .unwrap();
    publisher
        .feed(publish("lab/temp", QoS::AtLeastOnce, Some(4), b"m"))
        .unwrap();
    assert_eq!(named(&new.drain()), [full("lab/temp", 1), alias_only(1)]);
}

#[test]
fn an_alias_that_would_not_fit_the_clients_maximum_packet_size_is_not_taught() {
    let broker = broker();
    // "lab/temp" with a 1-byte payload at QoS 0 is 14 bytes plain and 17
    // with a Topic Alias property.
    let mut sub = connect(
        &broker,
        Connect {
            topic_alias_maximum: Some(5),
            maximum_packet_size: Some(14),
            ..Connect::v5("sub")
        },
    );
    sub.subscribe("lab/#", QoS::AtMostOnce);
    let mut publisher = connect(&broker, Connect::v5("pub"));
    let got = deliver(
        &mut publisher,
        &mut sub,
        &["lab/temp", "lab/temp", "lab/temperature"],
    );
    // Sent plain, and the table learnt nothing it did not send; the last
    // one is too large either way and dropped.
    assert_eq!(got, [("lab/temp".into(), None), ("lab/temp".into(), None)]);
}
