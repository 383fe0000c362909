"""Will messages: on network failure, not on clean DISCONNECT, 5.0
DISCONNECT 0x04, and the 5.0 Will Delay Interval."""

import time

from mqttclient import V5, props


def _with_will(make_client, protocol, client_id="dev", retain=False, will_props=None,
               clean=True, connect_props=None):
    client = make_client(client_id, protocol, clean)
    client.will_set("will/dev", b"\x00gone\xff", qos=1, retain=retain, properties=will_props)
    client.connect(properties=connect_props)
    return client


def test_will_published_on_network_drop(make_client, connect, protocol):
    watcher = connect("watcher", protocol)
    watcher.subscribe("will/#", 1)
    _with_will(make_client, protocol).drop()
    msg = watcher.expect_one()
    assert (msg.topic, msg.payload, msg.qos) == ("will/dev", b"\x00gone\xff", 1)


def test_retained_will_is_kept(make_client, connect, protocol):
    _with_will(make_client, protocol, retain=True).drop()
    time.sleep(0.3)
    late = connect("late", protocol)
    late.subscribe("will/dev", 1)
    msg = late.expect_one()
    assert (msg.payload, msg.retain) == (b"\x00gone\xff", True)


def test_no_will_on_clean_disconnect(make_client, connect, protocol):
    watcher = connect("watcher", protocol)
    watcher.subscribe("will/#", 1)
    _with_will(make_client, protocol).disconnect()
    watcher.expect_none(1.0)


def test_v5_disconnect_with_will_message_reason_publishes_will(make_client, connect):
    watcher = connect("watcher", V5)
    watcher.subscribe("will/#", 1)
    _with_will(make_client, V5).disconnect(reasoncode=0x04)
    assert watcher.expect_one().payload == b"\x00gone\xff"


def test_v5_will_delay_publishes_after_delay(make_client, connect):
    watcher = connect("watcher", V5)
    watcher.subscribe("will/#", 1)
    client = _with_will(make_client, V5, will_props=props("WILLMESSAGE", WillDelayInterval=2),
                        connect_props=props("CONNECT", SessionExpiryInterval=30))
    dropped_at = time.monotonic()
    client.drop()
    watcher.expect_none(1.0)
    msg = watcher.expect_one(4.0)
    elapsed = time.monotonic() - dropped_at
    assert msg.payload == b"\x00gone\xff"
    assert 1.5 <= elapsed <= 4.0, f"will arrived {elapsed:.2f}s after the drop"


def test_v5_will_delay_cancelled_by_reconnect(make_client, connect):
    watcher = connect("watcher", V5)
    watcher.subscribe("will/#", 1)
    session = props("CONNECT", SessionExpiryInterval=30)
    client = _with_will(make_client, V5, will_props=props("WILLMESSAGE", WillDelayInterval=2),
                        connect_props=session, clean=False)
    client.drop()
    time.sleep(0.3)
    back = make_client("dev", V5, clean=False)
    connack = back.connect(properties=props("CONNECT", SessionExpiryInterval=30))
    assert connack["session_present"] is True
    watcher.expect_none(3.0)


def test_v5_will_published_when_session_expiry_shorter_than_delay(make_client, connect):
    watcher = connect("watcher", V5)
    watcher.subscribe("will/#", 1)
    client = _with_will(make_client, V5, will_props=props("WILLMESSAGE", WillDelayInterval=30),
                        connect_props=props("CONNECT", SessionExpiryInterval=1))
    client.drop()
    # The session ends after 1 s, before the 30 s delay: the will goes then.
    assert watcher.expect_one(3.5).payload == b"\x00gone\xff"
