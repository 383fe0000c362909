"""Keep alive: a silent client is closed after 1.5 x keep alive and its
will is published; a client that pings stays connected."""

import time

import pytest

import rawmqtt
from mqttclient import V5


def _silent_client(broker, protocol, close_timeout):
    """CONNECT with keep alive 1 and a will, then say nothing. Returns the
    seconds until the broker closed and the packets it sent before."""
    version = 5 if protocol == V5 else 4
    raw = rawmqtt.RawClient(broker.host, broker.port, version)
    try:
        will = {"topic": "will/silent", "payload": b"timed out", "qos": 1}
        assert raw.connect("silent", keepalive=1, will=will).reason == 0
        connected_at = time.monotonic()
        before_close = raw.wait_closed(timeout=close_timeout)
        return time.monotonic() - connected_at, before_close
    finally:
        raw.close()


@pytest.mark.mosquitto_deviation("2.0.11 closes a keep-alive-1 client only after ~5 s")
def test_silent_client_closed_after_one_and_a_half_keepalive(broker, protocol):
    elapsed, before_close = _silent_client(broker, protocol, close_timeout=3.0)
    assert 1.0 <= elapsed <= 2.6, f"closed after {elapsed:.2f}s, expected ~1.5s"
    if protocol == V5:  # DISCONNECT 0x8D Keep Alive timeout may precede the close
        assert [rawmqtt.disconnect_reason(p) for p in before_close] in ([], [0x8D])
    else:
        assert before_close == []


def test_keepalive_timeout_publishes_will(broker, connect, protocol):
    watcher = connect("watcher", protocol)
    watcher.subscribe("will/#", 1)
    _silent_client(broker, protocol, close_timeout=6.0)
    msg = watcher.expect_one()
    assert (msg.topic, msg.payload, msg.qos) == ("will/silent", b"timed out", 1)
    broker.wait_for_log(r"Client silent has exceeded timeout, disconnecting\.")


def test_pinging_client_stays_connected(broker, protocol):
    version = 5 if protocol == V5 else 4
    raw = rawmqtt.RawClient(broker.host, broker.port, version)
    try:
        assert raw.connect("pinger", keepalive=1).reason == 0
        pongs = 0
        for _ in range(4):
            time.sleep(0.5)
            raw.send(rawmqtt.PINGREQ_PACKET)
            assert raw.recv(1.0).kind == rawmqtt.PINGRESP
            pongs += 1
        assert pongs == 4
        assert raw.subscribe([("still/here", 0)]) == [0]
    finally:
        raw.close()
