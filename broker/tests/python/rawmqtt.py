"""A minimal MQTT 3.1.1 / 5.0 codec over a plain socket.

paho refuses to send broken packets and hides the exact bytes a broker
answers with, so the tests that need either (malformed input, keep alive
silence, Receive Maximum, zero-length client ids) use this instead. It builds
packets byte by byte and reads the broker's answers with a bounded wait.
"""

import socket
import struct
import time
from dataclasses import dataclass, field

# Control packet types (high nibble of the first byte).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = (
    8, 9, 10, 11, 12, 13, 14)

# MQTT 5.0 property identifiers and their wire types.
PAYLOAD_FORMAT_INDICATOR = 0x01
MESSAGE_EXPIRY_INTERVAL = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_IDENTIFIER = 0x0B
SESSION_EXPIRY_INTERVAL = 0x11
ASSIGNED_CLIENT_IDENTIFIER = 0x12
SERVER_KEEP_ALIVE = 0x13
REQUEST_PROBLEM_INFORMATION = 0x17
WILL_DELAY_INTERVAL = 0x18
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27

_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
_PROPERTY_TYPES = {
    0x01: _BYTE, 0x02: _U32, 0x03: _STR, 0x08: _STR, 0x09: _BIN,
    0x0B: _VARINT, 0x11: _U32, 0x12: _STR, 0x13: _U16, 0x15: _STR,
    0x16: _BIN, 0x17: _BYTE, 0x18: _U32, 0x19: _BYTE, 0x1A: _STR,
    0x1C: _STR, 0x1F: _STR, 0x21: _U16, 0x22: _U16, 0x23: _U16,
    0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _U32, 0x28: _BYTE,
    0x29: _BYTE, 0x2A: _BYTE,
}
_REPEATABLE = {SUBSCRIPTION_IDENTIFIER, USER_PROPERTY}


class BrokerClosed(Exception):
    """The broker closed the connection."""


def varint(value):
    out = bytearray()
    while True:
        byte = value % 128
        value //= 128
        if value:
            byte |= 0x80
        out.append(byte)
        if not value:
            return bytes(out)


def utf8(text):
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return struct.pack("!H", len(data)) + data


def binary(data):
    return struct.pack("!H", len(data)) + bytes(data)


def properties(props):
    """Encode a list of (identifier, value) pairs as a 5.0 property block."""
    body = bytearray()
    for ident, value in props or []:
        body += varint(ident)
        kind = _PROPERTY_TYPES[ident]
        if kind == _BYTE:
            body.append(value)
        elif kind == _U16:
            body += struct.pack("!H", value)
        elif kind == _U32:
            body += struct.pack("!I", value)
        elif kind == _VARINT:
            body += varint(value)
        elif kind == _STR:
            body += utf8(value)
        elif kind == _BIN:
            body += binary(value)
        else:
            body += utf8(value[0]) + utf8(value[1])
    return varint(len(body)) + bytes(body)


def packet(first_byte, body):
    return bytes([first_byte]) + varint(len(body)) + bytes(body)


def connect_packet(client_id, version=4, clean=True, keepalive=60, will=None,
                   props=None, flags_extra=0):
    """CONNECT. `will` is a dict: topic, payload, qos, retain, props."""
    flags = (0x02 if clean else 0) | flags_extra
    if will:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
    body = bytearray(utf8("MQTT") + bytes([version, flags]) + struct.pack("!H", keepalive))
    if version == 5:
        body += properties(props)
    body += utf8(client_id)
    if will:
        if version == 5:
            body += properties(will.get("props"))
        body += utf8(will["topic"]) + binary(will.get("payload", b""))
    return packet(CONNECT << 4, body)


def publish_packet(topic, payload=b"", qos=0, retain=False, packet_id=1,
                   version=4, props=None, dup=False):
    first = (PUBLISH << 4) | (qos << 1) | (0x01 if retain else 0) | (0x08 if dup else 0)
    body = bytearray(utf8(topic))
    if qos:
        body += struct.pack("!H", packet_id)
    if version == 5:
        body += properties(props)
    body += payload
    return packet(first, body)


def ack_packet(kind, packet_id, version=4, reason=0):
    """PUBACK, PUBREC, PUBREL or PUBCOMP."""
    first = (kind << 4) | (0x02 if kind == PUBREL else 0)
    body = struct.pack("!H", packet_id)
    if version == 5 and reason:
        body += bytes([reason])
    return packet(first, body)


def subscribe_packet(packet_id, filters, version=4, props=None, flags=0x02):
    """SUBSCRIBE; `filters` is a list of (filter, options byte)."""
    body = bytearray(struct.pack("!H", packet_id))
    if version == 5:
        body += properties(props)
    for topic_filter, options in filters:
        body += utf8(topic_filter) + bytes([options])
    return packet((SUBSCRIBE << 4) | flags, body)


def disconnect_packet(version=4, reason=0, props=None):
    if version == 5 and (reason or props):
        return packet(DISCONNECT << 4, bytes([reason]) + properties(props))
    return packet(DISCONNECT << 4, b"")


PINGREQ_PACKET = bytes([PINGREQ << 4, 0])


@dataclass
class Packet:
    kind: int
    flags: int
    body: bytes


@dataclass
class Connack:
    session_present: bool
    reason: int
    props: dict = field(default_factory=dict)


@dataclass
class Publish:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    packet_id: int
    props: dict = field(default_factory=dict)


def _decode_varint(data, offset):
    value, shift = 0, 0
    for _ in range(4):
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7
    raise ValueError("variable byte integer longer than 4 bytes")


def _decode_str(data, offset):
    (length,) = struct.unpack_from("!H", data, offset)
    return bytes(data[offset + 2:offset + 2 + length]), offset + 2 + length


def decode_properties(data, offset):
    length, offset = _decode_varint(data, offset)
    end = offset + length
    props = {}
    while offset < end:
        ident, offset = _decode_varint(data, offset)
        kind = _PROPERTY_TYPES[ident]
        if kind == _BYTE:
            value = data[offset]
            offset += 1
        elif kind == _U16:
            (value,) = struct.unpack_from("!H", data, offset)
            offset += 2
        elif kind == _U32:
            (value,) = struct.unpack_from("!I", data, offset)
            offset += 4
        elif kind == _VARINT:
            value, offset = _decode_varint(data, offset)
        elif kind == _STR:
            raw, offset = _decode_str(data, offset)
            value = raw.decode("utf-8")
        elif kind == _BIN:
            value, offset = _decode_str(data, offset)
        else:
            key, offset = _decode_str(data, offset)
            val, offset = _decode_str(data, offset)
            value = (key.decode(), val.decode())
        if ident in _REPEATABLE:
            props.setdefault(ident, []).append(value)
        else:
            props[ident] = value
    return props, end


class RawClient:
    """One TCP connection speaking hand-built MQTT."""

    def __init__(self, host, port, version=4, timeout=3.0):
        self.version = version
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = bytearray()
        self.closed = False

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError from None
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.closed = True
            raise BrokerClosed
        self._buffer += chunk

    def recv(self, timeout=3.0):
        """The next packet. Raises TimeoutError or BrokerClosed."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self._buffer) >= 2:
                try:
                    length, start = _decode_varint(self._buffer, 1)
                except IndexError:
                    length = None
                if length is not None and len(self._buffer) >= start + length:
                    first = self._buffer[0]
                    body = bytes(self._buffer[start:start + length])
                    del self._buffer[:start + length]
                    return Packet(first >> 4, first & 0x0F, body)
            self._fill(deadline)

    def recv_kind(self, kind, timeout=3.0):
        """The next packet of `kind`, skipping others (e.g. PINGRESP)."""
        deadline = time.monotonic() + timeout
        while True:
            pkt = self.recv(max(0.0, deadline - time.monotonic()))
            if pkt.kind == kind:
                return pkt

    def wait_closed(self, timeout=3.0):
        """Read until the broker closes; returns the packets it sent first.
        Raises TimeoutError if it does not close in time."""
        deadline = time.monotonic() + timeout
        received = []
        while True:
            try:
                received.append(self.recv(max(0.0, deadline - time.monotonic())))
            except BrokerClosed:
                return received

    def connect(self, client_id, clean=True, keepalive=60, will=None, props=None):
        self.send(connect_packet(client_id, self.version, clean, keepalive, will, props))
        return self.parse_connack(self.recv_kind(CONNACK))

    def parse_connack(self, pkt):
        assert pkt.kind == CONNACK, pkt
        props = {}
        if self.version == 5 and len(pkt.body) > 2:
            props, _ = decode_properties(pkt.body, 2)
        return Connack(bool(pkt.body[0] & 1), pkt.body[1], props)

    def parse_publish(self, pkt):
        assert pkt.kind == PUBLISH, pkt
        qos = (pkt.flags >> 1) & 3
        topic, offset = _decode_str(pkt.body, 0)
        packet_id = 0
        if qos:
            (packet_id,) = struct.unpack_from("!H", pkt.body, offset)
            offset += 2
        props = {}
        if self.version == 5:
            props, offset = decode_properties(pkt.body, offset)
        return Publish(topic.decode("utf-8"), pkt.body[offset:], qos,
                       bool(pkt.flags & 1), bool(pkt.flags & 8), packet_id, props)

    def subscribe(self, filters, packet_id=1, props=None):
        """Subscribe and return the SUBACK reason codes."""
        self.send(subscribe_packet(packet_id, filters, self.version, props))
        pkt = self.recv_kind(SUBACK)
        offset = 2
        if self.version == 5:
            _, offset = decode_properties(pkt.body, offset)
        return list(pkt.body[offset:])

    def publish(self, topic, payload=b"", qos=0, retain=False, packet_id=1, props=None):
        self.send(publish_packet(topic, payload, qos, retain, packet_id, self.version, props))


def disconnect_reason(pkt):
    """Reason code of a DISCONNECT packet (0 when the body is empty)."""
    assert pkt.kind == DISCONNECT, pkt
    return pkt.body[0] if pkt.body else 0
