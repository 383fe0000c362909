"""Retained messages: set, replace, clear, the retain flag on delivery,
and the 5.0 Retain Handling / Retain As Published options."""

import pytest

from mqttclient import V5, SubscriptionOptions


def test_retained_set_replace_clear(connect, protocol):
    pub = connect("pub", protocol)
    pub.publish("r/state", b"one", 1, retain=True)
    first = connect("first", protocol)
    first.subscribe("r/state", 1)
    msg = first.expect_one()
    assert (msg.payload, msg.retain, msg.qos) == (b"one", True, 1)

    pub.publish("r/state", b"two", 1, retain=True)
    second = connect("second", protocol)
    second.subscribe("r/state", 1)
    msg = second.expect_one()
    assert (msg.payload, msg.retain) == (b"two", True)
    second.expect_none()

    pub.publish("r/state", b"", 1, retain=True)  # clear
    third = connect("third", protocol)
    third.subscribe("r/state", 1)
    third.expect_none(1.0)


def test_live_delivery_clears_retain_flag(connect, protocol):
    sub = connect("sub", protocol)
    sub.subscribe("r/live", 1)
    connect("pub", protocol).publish("r/live", b"now", 1, retain=True)
    msg = sub.expect_one()
    assert msg.payload == b"now" and msg.retain is False


def test_retained_on_wildcard_subscribe_with_binary_payloads(connect, protocol):
    pub = connect("pub", protocol)
    values = {"dev/1/fw": b"\x00\x01", "dev/2/fw": bytes(range(200)), "dev/3/other": b"x"}
    for topic, payload in values.items():
        pub.publish(topic, payload, 1, retain=True)
    sub = connect("sub", protocol)
    sub.subscribe("dev/+/fw", 1)
    got = sub.drain(0.6)
    assert {m.topic: m.payload for m in got} == {k: v for k, v in values.items()
                                                 if k.endswith("/fw")}
    assert all(m.retain for m in got)


def test_retained_qos_is_downgraded_to_subscription(connect, protocol):
    connect("pub", protocol).publish("r/q", b"q2", 2, retain=True)
    sub = connect("sub", protocol)
    sub.subscribe("r/q", 0)
    msg = sub.expect_one()
    assert (msg.payload, msg.qos, msg.retain) == (b"q2", 0, True)


def _resubscribe_counts(connect, retain_handling):
    connect("pub", V5).publish("rh/t", b"kept", 1, retain=True)
    sub = connect("sub", V5)
    options = SubscriptionOptions(qos=1, retainHandling=retain_handling)
    sub.subscribe("rh/t", options=options)
    first = sub.drain(0.5)
    sub.subscribe("rh/t", options=options)  # the subscription now exists
    second = sub.drain(0.5)
    return first, second


@pytest.mark.parametrize("retain_handling,on_new,on_existing", [
    (0, 1, 1),  # send retained at every subscribe
    (1, 1, 0),  # only if the subscription did not exist
    (2, 0, 0),  # never
])
def test_v5_retain_handling(connect, retain_handling, on_new, on_existing):
    first, second = _resubscribe_counts(connect, retain_handling)
    assert len(first) == on_new, first
    assert len(second) == on_existing, second
    assert all(m.payload == b"kept" and m.retain for m in first + second)


@pytest.mark.parametrize("retain_as_published", [False, True])
def test_v5_retain_as_published(connect, retain_as_published):
    sub = connect("sub", V5)
    sub.subscribe("rap/t", options=SubscriptionOptions(
        qos=1, retainAsPublished=retain_as_published))
    pub = connect("pub", V5)
    pub.publish("rap/t", b"retained", 1, retain=True)
    pub.publish("rap/t", b"plain", 1, retain=False)
    got = sub.expect(2)
    assert [(m.payload, m.retain) for m in got] == [
        (b"retained", retain_as_published), (b"plain", False)]
