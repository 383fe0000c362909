"""`log_dest topic` (fleetmq: `log.topic = true`): log lines published on
$SYS/broker/log/..., checked against Mosquitto 2.0.11 the same way: the
connection notice of a client arrives on $SYS/broker/log/N at QoS 2, not
retained, expiring within 20 s, as `SECONDS: text`."""

import re
import time

import pytest

from mqttclient import V311, V5

LOG_CONFIG = pytest.mark.broker_config(
    fleetmq={"log": {"topic": True}},
    mosquitto=["log_dest topic"])


def _notice_about(watcher, client_id, timeout=3.0):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        for msg in watcher.drain(0.2):
            seen.append(msg)
            if msg.topic == "$SYS/broker/log/N" and client_id.encode() in msg.payload:
                return msg
    raise AssertionError(f"no notice about {client_id!r} on $SYS/broker/log/N; saw {seen}")


@LOG_CONFIG
def test_connection_notice_is_published_like_mosquitto(connect):
    watcher = connect("log-watcher", V5)
    watcher.subscribe("$SYS/broker/log/#", 2)
    subject = connect("log-subject-7", V311)
    subject.disconnect()
    notice = _notice_about(watcher, "log-subject-7")
    assert re.match(rb"^\d{10}: ", notice.payload), notice.payload
    seconds = int(notice.payload.split(b":", 1)[0])
    assert abs(seconds - time.time()) < 60, notice.payload
    assert notice.qos == 2
    assert not notice.retain
    expiry = notice.props.get("MessageExpiryInterval")
    assert expiry is not None and 0 < expiry <= 20, notice.props


@pytest.mark.broker_config(
    fleetmq={"log": {"topic": True, "level": "debug"}},
    mosquitto=["log_dest topic", "log_type all"])
def test_debug_lines_are_not_published(broker, connect):
    # A publish logged at debug would be a publish about a publish: neither
    # broker sends them, whatever the log level.
    watcher = connect("log-watcher", V5)
    watcher.subscribe("$SYS/broker/log/#", 0)
    publisher = connect("log-publisher", V5)
    for n in range(20):
        publisher.publish("lab/loop", f"{n}".encode(), qos=1)
    letters = {msg.topic.rsplit("/", 1)[-1] for msg in watcher.drain(1.0)
               if msg.topic.startswith("$SYS/broker/log/")}
    assert "D" not in letters, letters
    # The broker did log them: the filter let debug lines through.
    broker.wait_for_log(r"DEBUG|Received PUBLISH from", timeout=3.0)


def test_no_log_topic_unless_asked(connect):
    watcher = connect("log-watcher", V5)
    watcher.subscribe("$SYS/broker/log/#", 0)
    connect("log-subject-8", V311).disconnect()
    published = [msg for msg in watcher.drain(1.0) if msg.topic.startswith("$SYS/broker/log/")]
    assert not published, published
