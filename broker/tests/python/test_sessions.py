"""Sessions: persistent sessions queue QoS 1/2 while offline, clean
sessions and 5.0 Session Expiry discard, take-over, zero-length client ids."""

import time

import pytest

import rawmqtt
from mqttclient import V311, V5, props


def _persistent(make_client, protocol, client_id="dev", expiry=60):
    """A client whose session outlives its connection."""
    client = make_client(client_id, protocol, clean=False)
    connect_props = props("CONNECT", SessionExpiryInterval=expiry) if protocol == V5 else None
    return client, connect_props


def test_persistent_session_gets_messages_queued_while_offline(make_client, connect, protocol):
    client, connect_props = _persistent(make_client, protocol)
    assert client.connect(properties=connect_props)["session_present"] is False
    assert client.subscribe("cmd/dev/#", 2) == [2]
    client.disconnect()

    pub = connect("pub", protocol)
    pub.publish("cmd/dev/a", b"q1-first", 1)
    pub.publish("cmd/dev/b", b"q2-second", 2)
    pub.publish("cmd/dev/c", b"q1-third", 1)

    back, connect_props = _persistent(make_client, protocol)
    assert back.connect(properties=connect_props)["session_present"] is True
    got = back.expect(3)
    assert sorted((m.topic, m.payload, m.qos) for m in got) == [
        ("cmd/dev/a", b"q1-first", 1), ("cmd/dev/b", b"q2-second", 2),
        ("cmd/dev/c", b"q1-third", 1)]
    # Order is only promised within one QoS level.
    assert [m.payload for m in got if m.qos == 1] == [b"q1-first", b"q1-third"]
    # The subscription survived too: live messages arrive without resubscribing.
    pub.publish("cmd/dev/d", b"live", 1)
    assert back.expect_one().payload == b"live"


def test_clean_session_discards_state(make_client, connect, protocol):
    first = make_client("dev", protocol, clean=True)
    first.connect()
    first.subscribe("cmd/dev/#", 1)
    first.disconnect()
    pub = connect("pub", protocol)
    pub.publish("cmd/dev/a", b"lost", 1)

    back, connect_props = _persistent(make_client, protocol)
    assert back.connect(properties=connect_props)["session_present"] is False
    pub.publish("cmd/dev/b", b"not subscribed", 1)
    back.expect_none()


def test_clean_start_discards_existing_persistent_session(make_client, connect, protocol):
    client, connect_props = _persistent(make_client, protocol)
    client.connect(properties=connect_props)
    client.subscribe("cmd/dev/#", 1)
    client.disconnect()
    connect("pub", protocol).publish("cmd/dev/a", b"queued", 1)
    fresh = make_client("dev", protocol, clean=True)
    assert fresh.connect()["session_present"] is False
    fresh.expect_none()


def test_v5_session_expiry_zero_discards_at_disconnect(make_client, connect):
    client = make_client("dev", V5, clean=False)
    client.connect(properties=props("CONNECT", SessionExpiryInterval=0))
    client.subscribe("cmd/dev/#", 1)
    client.disconnect()
    connect("pub", V5).publish("cmd/dev/a", b"lost", 1)
    back = make_client("dev", V5, clean=False)
    assert back.connect(properties=props("CONNECT", SessionExpiryInterval=60))[
        "session_present"] is False
    back.expect_none()


def test_v5_session_expires_after_interval(make_client, connect):
    client = make_client("dev", V5, clean=False)
    client.connect(properties=props("CONNECT", SessionExpiryInterval=1))
    client.subscribe("cmd/dev/#", 1)
    client.disconnect()
    time.sleep(2.2)
    connect("pub", V5).publish("cmd/dev/a", b"lost", 1)
    back = make_client("dev", V5, clean=False)
    assert back.connect(properties=props("CONNECT", SessionExpiryInterval=60))[
        "session_present"] is False
    back.expect_none()


def test_session_take_over(make_client, connect, protocol, broker):
    old = connect("twin", protocol)
    old.subscribe("twin/in", 1)
    new = connect("twin", protocol)
    assert old.wait_disconnected(), "the first connection was not closed"
    broker.wait_for_log(r"Client twin already connected, closing old connection\.")
    new.subscribe("twin/in", 1)
    connect("pub", protocol).publish("twin/in", b"for the new one", 1)
    assert new.expect_one().payload == b"for the new one"
    assert not new.is_disconnected


@pytest.mark.mosquitto_deviation("2.0.11 closes the old connection without DISCONNECT 0x8E")
def test_v5_session_take_over_sends_disconnect_0x8e(broker):
    old = rawmqtt.RawClient(broker.host, broker.port, version=5)
    new = rawmqtt.RawClient(broker.host, broker.port, version=5)
    try:
        assert old.connect("twin").reason == 0
        assert new.connect("twin").reason == 0
        before_close = old.wait_closed()
        assert [p.kind for p in before_close] == [rawmqtt.DISCONNECT], before_close
        assert rawmqtt.disconnect_reason(before_close[0]) == 0x8E
    finally:
        old.close()
        new.close()


def test_v311_zero_length_client_id_with_clean_session_accepted(broker):
    raw = rawmqtt.RawClient(broker.host, broker.port, version=4)
    try:
        connack = raw.connect("", clean=True)
        assert (connack.reason, connack.session_present) == (0, False)
        assert raw.subscribe([("z/t", 1)]) == [1]
    finally:
        raw.close()


def test_v311_zero_length_client_id_without_clean_session_refused(broker):
    raw = rawmqtt.RawClient(broker.host, broker.port, version=4)
    try:
        connack = raw.connect("", clean=False)
        assert connack.reason == 2, "expected CONNACK 0x02 identifier rejected"
        raw.wait_closed()
    finally:
        raw.close()


def test_v5_zero_length_client_id_gets_assigned_identifier(make_client, connect):
    client = make_client("", V5)
    connack = client.connect()
    assigned = connack["props"].get("AssignedClientIdentifier")
    assert assigned, f"no Assigned Client Identifier in {connack}"
    other = make_client("", V5)
    assert other.connect()["props"].get("AssignedClientIdentifier") not in (None, assigned)
    client.subscribe("z/t", 1)
    connect("pub", V5).publish("z/t", b"hi", 1)
    assert client.expect_one().payload == b"hi"


@pytest.mark.parametrize("protocol", [V311, V5], ids=["v311", "v5"])
def test_qos1_redelivered_after_reconnect_when_unacknowledged(broker, connect, protocol):
    version = 5 if protocol == V5 else 4
    session = [(rawmqtt.SESSION_EXPIRY_INTERVAL, 60)] if version == 5 else None
    raw = rawmqtt.RawClient(broker.host, broker.port, version)
    raw.connect("acker", clean=False, props=session)
    raw.subscribe([("redo/t", 1)])
    connect("pub", protocol).publish("redo/t", b"unacked", 1)
    first = raw.parse_publish(raw.recv_kind(rawmqtt.PUBLISH))
    assert first.payload == b"unacked"
    raw.close()  # no PUBACK, no DISCONNECT
    time.sleep(0.2)
    again = rawmqtt.RawClient(broker.host, broker.port, version)
    try:
        assert again.connect("acker", clean=False, props=session).session_present
        redelivered = again.parse_publish(again.recv_kind(rawmqtt.PUBLISH))
        assert (redelivered.payload, redelivered.dup) == (b"unacked", True)
    finally:
        again.close()


def test_broker_restart_keeps_port_and_accepts_clients(broker, connect, protocol):
    first = connect("before", protocol)
    port = broker.port
    broker.restart()
    assert first.wait_disconnected(), "client survived a broker restart"
    assert broker.port == port
    sub = connect("after-sub", protocol)
    sub.subscribe("restart/t", 1)
    connect("after-pub", protocol).publish("restart/t", b"back", 1)
    assert sub.expect_one().payload == b"back"
