"""$SYS statistics: every documented topic appears, retained, and the
counters follow what clients do."""

import time

from mqttclient import V5

SYS_TOPICS = [
    "$SYS/broker/version", "$SYS/broker/uptime", "$SYS/broker/clients/connected",
    "$SYS/broker/clients/total", "$SYS/broker/messages/received",
    "$SYS/broker/messages/sent", "$SYS/broker/bytes/received", "$SYS/broker/bytes/sent",
    "$SYS/broker/subscriptions/count", "$SYS/broker/retained messages/count",
]
COUNTERS = SYS_TOPICS[2:]


def _number(text):
    return int(text.split()[0])


class SysView:
    """The latest value of every $SYS topic one client has seen."""

    def __init__(self, client):
        self.client = client
        self.values = {}

    def _poll(self):
        for msg in self.client.drain(0.1):
            self.values[msg.topic] = msg.payload.decode()

    def wait_all(self, topics, timeout=3.0):
        deadline = time.monotonic() + timeout
        while not set(topics) <= set(self.values) and time.monotonic() < deadline:
            self._poll()
        missing = set(topics) - set(self.values)
        assert not missing, f"$SYS topics never published: {sorted(missing)}"
        return {topic: self.values[topic] for topic in topics}

    def wait_for(self, topic, predicate, timeout=3.5):
        """Wait until `topic`'s numeric value satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.values.get(topic)
            if value is not None and predicate(_number(value)):
                return _number(value)
            if time.monotonic() >= deadline:
                raise AssertionError(f"{topic} never satisfied the condition; "
                                     f"last value {value!r}")
            self._poll()


def test_sys_topics_present_and_retained(connect, protocol):
    live = connect("live", protocol)
    live.subscribe("$SYS/broker/#", 0)
    view = SysView(live)
    values = view.wait_all(SYS_TOPICS)
    assert values["$SYS/broker/version"].strip()
    for topic in COUNTERS:
        assert values[topic].strip().isdigit(), (topic, values[topic])
    # Retained values may predate this client; within a refresh it is counted.
    view.wait_for("$SYS/broker/clients/connected", lambda n: n >= 1)
    late = connect("late", protocol)
    late.subscribe("$SYS/broker/version", 0)
    msg = late.expect_one()
    assert msg.retain and msg.payload.decode() == values["$SYS/broker/version"]


def test_sys_counters_change(connect):
    stats = connect("stats", V5)
    stats.subscribe("$SYS/broker/#", 0)
    view = SysView(stats)
    view.wait_all(COUNTERS)
    # Let one refresh pass so the baseline includes this client.
    view.wait_for("$SYS/broker/subscriptions/count", lambda n: n >= 1)
    before = {topic: _number(view.values[topic]) for topic in COUNTERS}

    others = [connect(f"extra-{i}", V5) for i in range(3)]
    for other in others:
        other.subscribe("count/me", 0)
    for i in range(5):
        others[0].publish(f"kept/{i}", b"r", 1, retain=True)

    def grew(topic, by):
        view.wait_for(topic, lambda n: n >= before[topic] + by)

    grew("$SYS/broker/clients/connected", 3)
    grew("$SYS/broker/clients/total", 3)
    grew("$SYS/broker/messages/received", 5)
    grew("$SYS/broker/subscriptions/count", 3)
    grew("$SYS/broker/retained messages/count", 5)
    grew("$SYS/broker/bytes/received", 1)
    grew("$SYS/broker/bytes/sent", 1)
    grew("$SYS/broker/messages/sent", 1)
    for other in others:
        other.disconnect()
    view.wait_for("$SYS/broker/clients/connected",
                  lambda n: n <= before["$SYS/broker/clients/connected"])


def test_sys_uptime_advances(connect):
    stats = connect("stats", V5)
    stats.subscribe("$SYS/broker/uptime", 0)
    view = SysView(stats)
    first = _number(view.wait_all(["$SYS/broker/uptime"])["$SYS/broker/uptime"])
    view.wait_for("$SYS/broker/uptime", lambda n: n > first, timeout=3.0)
