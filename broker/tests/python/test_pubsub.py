"""Publish/subscribe: QoS levels, payload integrity, topic matching,
overlapping subscriptions, unsubscribe and shared subscriptions."""

import pytest

from mqttclient import V5, SubscriptionOptions, props

PAYLOADS = [b"hello fleet", bytes(range(256)) * 4, b"", b"\x00\xff\x00 null bytes \x00"]


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_subscribe_keeps_payload_bytes(connect, protocol, qos):
    sub = connect("sub", protocol)
    assert sub.subscribe("lab/esp32/+/data", qos) == [qos]
    pub = connect("pub", protocol)
    for payload in PAYLOADS:
        pub.publish("lab/esp32/7/data", payload, qos)
    got = sub.expect(len(PAYLOADS))
    assert [m.payload for m in got] == PAYLOADS
    assert all(m.topic == "lab/esp32/7/data" and m.qos == qos and not m.retain for m in got)
    sub.expect_none()


@pytest.mark.parametrize("sub_qos,pub_qos", [(0, 2), (1, 2), (2, 1), (0, 1)])
def test_delivery_qos_is_minimum_of_publish_and_subscription(connect, protocol, sub_qos, pub_qos):
    sub = connect("sub", protocol)
    assert sub.subscribe("q/t", sub_qos) == [sub_qos]
    connect("pub", protocol).publish("q/t", b"m", pub_qos)
    assert sub.expect_one().qos == min(sub_qos, pub_qos)


def test_wildcard_matching(connect, protocol):
    sub = connect("sub", protocol)
    sub.subscribe([("a/+/c", 0), ("x/#", 0), ("+/leaf", 0)])
    pub = connect("pub", protocol)
    matching = ["a/b/c", "a//c", "x", "x/y", "x/y/z", "m/leaf", "/leaf"]
    not_matching = ["a/b/c/d", "a/c", "b/b/c", "y/x", "leaf", "m/leaf/z", "m/n/leaf"]
    for topic in not_matching + matching:
        pub.publish(topic, topic.encode(), 1)
    got = sub.expect(len(matching))
    assert sorted(m.topic for m in got) == sorted(matching)
    sub.expect_none()


def test_overlapping_subscriptions_deliver_one_copy_at_highest_qos(connect, protocol,
                                                                   broker_kind):
    sub = connect("sub", protocol)
    assert sub.subscribe("a/#", 0) == [0]
    assert sub.subscribe("a/+", 2) == [2]
    connect("pub", protocol).publish("a/b", b"once", 2)
    got = sub.drain(0.6)
    # MQTT-3.3.4-2: a copy at the highest matching QoS is required.
    assert any(m.qos == 2 and m.payload == b"once" for m in got), got
    if broker_kind == "mosquitto" and protocol == V5:
        return  # Mosquitto sends a copy per subscription to 5.0 clients (a MAY).
    assert len(got) == 1, f"expected one copy, got {got}"


@pytest.mark.mosquitto_deviation("sends one copy per matching subscription, each with "
                                 "its own identifier (allowed), not one copy with both")
def test_v5_overlapping_subscriptions_carry_all_subscription_identifiers(connect):
    sub = connect("sub", V5)
    sub.subscribe("a/#", 0, properties=props("SUBSCRIBE", SubscriptionIdentifier=11))
    sub.subscribe("a/+", 1, properties=props("SUBSCRIBE", SubscriptionIdentifier=22))
    sub.subscribe("b/#", 1)  # no identifier
    pub = connect("pub", V5)
    pub.publish("a/b", b"x", 1)
    pub.publish("b/c", b"y", 1)
    got = sub.drain(0.6)
    assert [m.topic for m in got] == ["a/b", "b/c"], got
    assert got[0].qos == 1
    assert sorted(got[0].props.get("SubscriptionIdentifier", [])) == [11, 22]
    assert "SubscriptionIdentifier" not in got[1].props


def test_dollar_topics_not_matched_by_leading_wildcards(connect, protocol):
    wild = connect("wild", protocol)
    wild.subscribe([("#", 0), ("+/broker/#", 0), ("+/+/version", 0)])
    sys_sub = connect("sys", protocol)
    sys_sub.subscribe("$SYS/broker/#", 0)
    # $SYS topics are published every second and retained: the explicit
    # subscriber must see them while the wildcard one sees only ordinary topics.
    assert sys_sub.expect_one(3.0).topic.startswith("$SYS/")
    connect("pub", protocol).publish("plain/topic", b"p", 1)
    got = wild.drain(1.5)
    assert [m.topic for m in got] == ["plain/topic"], got


def test_unsubscribe_stops_delivery(connect, protocol):
    sub = connect("sub", protocol)
    sub.subscribe([("u/1", 1), ("u/2", 1)])
    pub = connect("pub", protocol)
    pub.publish("u/1", b"before", 1)
    assert sub.expect_one().payload == b"before"
    sub.unsubscribe("u/1")
    pub.publish("u/1", b"after", 1)
    pub.publish("u/2", b"still", 1)
    got = sub.drain(0.6)
    assert [(m.topic, m.payload) for m in got] == [("u/2", b"still")]


def test_shared_subscription_spreads_messages(connect, protocol):
    members = [connect(f"member-{i}", protocol) for i in range(3)]
    for member in members:
        assert member.subscribe("$share/g/jobs/+", 1) == [1]
    plain = connect("plain", protocol)
    plain.subscribe("jobs/+", 1)
    pub = connect("pub", protocol)
    sent = [f"job-{i}".encode() for i in range(30)]
    for payload in sent:
        pub.publish("jobs/x", payload, 1)
    assert sorted(m.payload for m in plain.expect(30)) == sorted(sent)
    received = [member.drain(0.6) for member in members]
    counts = [len(r) for r in received]
    payloads = [m.payload for r in received for m in r]
    assert sum(counts) == 30, counts
    assert sorted(payloads) == sorted(sent), "duplicates or losses"
    assert all(count > 0 for count in counts), counts
    assert all(m.topic == "jobs/x" for r in received for m in r)


def test_v5_no_local(connect):
    client = connect("self", V5)
    client.subscribe("nl/t", options=SubscriptionOptions(qos=1, noLocal=True))
    client.publish("nl/t", b"mine", 1)
    client.expect_none()
    connect("other", V5).publish("nl/t", b"theirs", 1)
    assert client.expect_one().payload == b"theirs"
