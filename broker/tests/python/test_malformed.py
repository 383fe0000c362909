"""Malformed and forbidden input over raw sockets. The offending client
is disconnected (5.0: after a DISCONNECT with the reason code the
specification names) and a well-behaved client connected the whole time
keeps publishing and receiving."""

import struct

import pytest

import rawmqtt
from mqttclient import V311, V5

MALFORMED, PROTOCOL_ERROR, TOPIC_NAME_INVALID, PACKET_TOO_LARGE = 0x81, 0x82, 0x90, 0x95
SMALL_PACKET_LIMIT = 1024


@pytest.fixture
def bystander(connect):
    """A 5.0 client that must not notice anything; call it to check."""
    client = connect("bystander", V5)
    client.subscribe("bystander/#", 1)
    client.publish("bystander/before", b"ok", 1)
    assert client.expect_one().payload == b"ok"

    def still_fine():
        assert not client.is_disconnected, "the bystander was disconnected"
        for i in range(3):
            client.publish(f"bystander/after/{i}", f"ok {i}".encode(), 1)
        assert [m.payload for m in client.expect(3)] == [b"ok 0", b"ok 1", b"ok 2"]

    return still_fine


def _bad_client(broker, version, client_id="bad"):
    raw = rawmqtt.RawClient(broker.host, broker.port, version)
    assert raw.connect(client_id).reason == 0
    return raw


def _assert_disconnected(raw, version, expected_reasons, broker, broker_kind, log_kind=None):
    """The broker closes the connection; a 5.0 client first gets a
    DISCONNECT whose reason code is one of `expected_reasons`."""
    try:
        before_close = raw.wait_closed(timeout=3.0)
    finally:
        raw.close()
    if version == 5:
        assert len(before_close) == 1 and before_close[0].kind == rawmqtt.DISCONNECT, \
            f"expected a DISCONNECT before the close, got {before_close}"
        reason = rawmqtt.disconnect_reason(before_close[0])
        assert reason in expected_reasons, f"reason 0x{reason:02X}, expected " + \
            " or ".join(f"0x{r:02X}" for r in expected_reasons)
    else:
        assert before_close == [], f"3.1.1 has no DISCONNECT from the server: {before_close}"
    if log_kind and broker_kind == "fleetmq":
        broker.wait_for_log(rf"Client bad disconnected due to {log_kind}: ")


VERSIONS = pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
# Where Mosquitto 2.0.11 closes a 5.0 connection without the DISCONNECT.
NO_DISCONNECT_V5 = "closes the 5.0 connection without DISCONNECT and reason code"


def test_garbage_before_connect(broker, bystander):
    raw = rawmqtt.RawClient(broker.host, broker.port)
    try:
        raw.send(b"\xff\xfe\x00garbage\x00\x01\x02\x03" * 4)
        assert raw.wait_closed(timeout=3.0) == []
    finally:
        raw.close()
    bystander()


def test_http_request_instead_of_connect(broker, bystander):
    raw = rawmqtt.RawClient(broker.host, broker.port)
    try:
        raw.send(b"GET / HTTP/1.1\r\nHost: broker\r\n\r\n")
        assert raw.wait_closed(timeout=3.0) == []
    finally:
        raw.close()
    bystander()


def _cases():
    """(id, builder(version) -> bytes, expected 5.0 reasons, log kind,
    whether Mosquitto omits the 5.0 DISCONNECT)."""
    return [
        # Remaining Length with a fifth continuation byte.
        ("bad_remaining_length",
         lambda v: b"\x30\xff\xff\xff\xff\x01" + b"\x00" * 8, (MALFORMED,), "malformed packet", True),
        # Topic name bytes that are not UTF-8.
        ("invalid_utf8_topic",
         lambda v: rawmqtt.packet(0x30, b"\x00\x04a/\xff\xfe" + (b"\x00" if v == 5 else b"")
                                  + b"payload"), (MALFORMED,), "malformed packet", False),
        # UTF-8 topic containing U+0000, forbidden in every MQTT string.
        ("nul_in_topic",
         lambda v: rawmqtt.packet(0x30, b"\x00\x03a\x00b" + (b"\x00" if v == 5 else b"")),
         (MALFORMED,), "malformed packet", False),
        # SUBSCRIBE must have fixed-header flags 0b0010.
        ("subscribe_reserved_flags",
         lambda v: rawmqtt.subscribe_packet(1, [("t", 0)], v, flags=0x00),
         (MALFORMED,), "malformed packet", False),
        # PUBLISH with both QoS bits set.
        ("publish_qos3",
         lambda v: rawmqtt.packet(0x36, b"\x00\x01t\x00\x01" + (b"\x00" if v == 5 else b"")),
         (MALFORMED,), "malformed packet", False),
        # Wildcards are forbidden in a topic name (MQTT-3.3.2-2). The
        # specification names no single code; these are the defensible ones.
        ("publish_wildcard_topic",
         lambda v: rawmqtt.publish_packet("sensors/+/temp", b"x", 0, version=v),
         (TOPIC_NAME_INVALID, MALFORMED, PROTOCOL_ERROR), None, False),
        ("publish_hash_topic",
         lambda v: rawmqtt.publish_packet("sensors/#", b"x", 1, version=v),
         (TOPIC_NAME_INVALID, MALFORMED, PROTOCOL_ERROR), None, False),
        # A second CONNECT is a Protocol Error (MQTT-3.1.0-2).
        ("second_connect",
         lambda v: rawmqtt.connect_packet("bad", v), (PROTOCOL_ERROR,), "protocol error", True),
    ]


def _case_params():
    params = []
    for case in _cases():
        for version, label in ((4, "v311"), (5, "v5")):
            marks = [pytest.mark.mosquitto_deviation(NO_DISCONNECT_V5)] \
                if version == 5 and case[4] else []
            params.append(pytest.param(case, version, id=f"{case[0]}-{label}", marks=marks))
    return params


@pytest.mark.parametrize("case,version", _case_params())
def test_malformed_packet_disconnects_only_the_offender(broker, broker_kind, bystander,
                                                        version, case):
    name, build, reasons, log_kind, _ = case
    raw = _bad_client(broker, version)
    raw.send(build(version))
    _assert_disconnected(raw, version, reasons, broker, broker_kind, log_kind)
    bystander()


@pytest.mark.broker_config(fleetmq={"limits": {"max_packet_size": SMALL_PACKET_LIMIT}},
                           mosquitto=[f"max_packet_size {SMALL_PACKET_LIMIT}"])
@VERSIONS
def test_oversize_packet(broker, broker_kind, bystander, version):
    raw = _bad_client(broker, version)
    raw.send(rawmqtt.publish_packet("big", b"X" * (2 * SMALL_PACKET_LIMIT), 0, version=version))
    _assert_disconnected(raw, version, (PACKET_TOO_LARGE,), broker, broker_kind)
    bystander()


@pytest.mark.broker_config(fleetmq={"limits": {"max_packet_size": SMALL_PACKET_LIMIT}},
                           mosquitto=[f"max_packet_size {SMALL_PACKET_LIMIT}"])
def test_v5_connack_announces_maximum_packet_size(broker):
    raw = rawmqtt.RawClient(broker.host, broker.port, 5)
    try:
        connack = raw.connect("announced")
        assert connack.props.get(rawmqtt.MAXIMUM_PACKET_SIZE) == SMALL_PACKET_LIMIT
    finally:
        raw.close()


@pytest.mark.fleetmq_only("Mosquitto's default max_packet_size is unlimited")
@VERSIONS
def test_oversize_remaining_length_is_not_buffered(broker, broker_kind, bystander, version):
    """With the default 1 MiB limit, a header announcing a 200 MB packet
    must be refused from the header, not after waiting for the body."""
    raw = _bad_client(broker, version)
    raw.send(b"\x30" + rawmqtt.varint(200 * 1024 * 1024) + b"\x00\x01t")
    _assert_disconnected(raw, version, (PACKET_TOO_LARGE,), broker, broker_kind)
    bystander()


def test_connect_with_reserved_flag_is_refused(broker, bystander):
    raw = rawmqtt.RawClient(broker.host, broker.port, 4)
    try:
        raw.send(rawmqtt.connect_packet("bad", 4, flags_extra=0x01))
        packets = raw.wait_closed(timeout=3.0)
        assert all(p.kind == rawmqtt.CONNACK and p.body[1] != 0 for p in packets), packets
    finally:
        raw.close()
    bystander()


def test_unknown_protocol_level_refused(broker, bystander):
    raw = rawmqtt.RawClient(broker.host, broker.port, 4)
    try:
        body = rawmqtt.utf8("MQTT") + bytes([9, 0x02]) + struct.pack("!H", 30) + rawmqtt.utf8("x")
        raw.send(rawmqtt.packet(0x10, body))
        packets = raw.wait_closed(timeout=3.0)
        # 3.1.1 answers CONNACK 0x01 (unacceptable protocol version) and closes.
        assert [(p.kind, p.body[1]) for p in packets] in ([], [(rawmqtt.CONNACK, 0x01)]), packets
    finally:
        raw.close()
    bystander()


def test_publish_before_connect_closes(broker, bystander):
    raw = rawmqtt.RawClient(broker.host, broker.port, 4)
    try:
        raw.send(rawmqtt.publish_packet("t", b"x", 0))
        assert raw.wait_closed(timeout=3.0) == []
    finally:
        raw.close()
    bystander()
