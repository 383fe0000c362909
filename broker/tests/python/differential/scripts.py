"""The generator: hundreds of scripts from a few dimensions (protocol
version, CONNECT fields and properties, malformed and boundary packets,
QoS flows, retained messages, wills, sessions). Each script has a unique
name (`group/vN/variant`), its own client ids and its own topics, so
scripts can run concurrently on one broker without seeing each other.
"""

import rawmqtt as r

from . import packets as p

VERSIONS = (3, 4, 5)


class Script:
    """Steps of one script; see `player` for their meaning."""

    def __init__(self, name, key):
        self.name = name
        self.key = key          # unique per script: prefix of ids and topics
        self.steps = []

    def id(self, suffix="c"):
        return f"{self.key}{suffix}"

    def topic(self, suffix="t"):
        return f"{self.key}/{suffix}"

    def open(self, conn="a", cert=None):
        """A new connection; over TLS (configurations with a PKI) with the
        named client certificate, or none."""
        self.steps.append(("open", conn, cert))
        return self

    def send(self, data, conn="a"):
        self.steps.append(("send", conn, data))
        return self

    def read(self, conn="a"):
        self.steps.append(("read", conn))
        return self

    def exchange(self, data, conn="a"):
        return self.send(data, conn).read(conn)

    def close(self, conn="a"):
        self.steps.append(("close", conn))
        return self

    def connect(self, version, conn="a", cert=None, **fields):
        fields.setdefault("client_id", self.id(conn))
        return self.open(conn, cert).exchange(p.connect(version=version, **fields), conn)

    def alive(self, conn="a"):
        """A PINGREQ: answered while the connection lives."""
        return self.exchange(p.PINGREQ, conn)


def _connect_variants(s, v):
    """(variant, CONNECT keyword fields) for protocol version `v`."""
    k = s.key

    def will(**fields):
        return dict({"topic": f"{k}/will", "payload": b"bye"}, **fields)

    variants = [
        ("plain", {}),
        ("keepalive-0", {"keepalive": 0}),
        ("keepalive-65535", {"keepalive": 65535}),
        ("persistent", {"clean": False}),
        ("empty-id-clean", {"client_id": ""}),
        ("empty-id-persistent", {"client_id": "", "clean": False}),
        ("id-23", {"client_id": (k + "x" * 30)[:23]}),
        ("id-24", {"client_id": (k + "x" * 30)[:24]}),
        ("id-300", {"client_id": k + "x" * 300}),
        ("id-nul", {"raw_client_id": r.utf8(k + "\x00")}),
        ("id-bad-utf8", {"raw_client_id": bytes([0, 3]) + b"a\xff\xfe"}),
        ("reserved-flag", {"flags_extra": 0x01}),
        ("will-qos1-no-will", {"flags_extra": 0x08}),
        ("will-retain-no-will", {"flags_extra": 0x20}),
        ("will-qos3", {"will": will(qos=3)}),
        ("will-wildcard", {"will": {"topic": f"{k}/#", "payload": b"x"}}),
        ("will-empty-topic", {"will": {"topic": "", "payload": b"x"}}),
        ("username", {"username": "user"}),
        ("username-password", {"username": "user", "password": b"pw"}),
        ("password-only", {"password": b"pw"}),
        ("protocol-name", {"name": "MQTX"}),
        ("level-7", {"level": 7}),
        ("level-0", {"level": 0}),
    ]
    for qos in (0, 1, 2):
        for retain in (False, True):
            variants.append((f"will-q{qos}-r{int(retain)}", {"will": will(qos=qos, retain=retain)}))
    if v == 5:
        variants += [
            ("session-expiry", {"props": [(0x11, 100)], "clean": False}),
            ("session-expiry-max", {"props": [(0x11, 0xFFFFFFFF)]}),
            ("receive-maximum-0", {"props": [(0x21, 0)]}),
            ("receive-maximum-1", {"props": [(0x21, 1)]}),
            ("max-packet-size-0", {"props": [(0x27, 0)]}),
            ("max-packet-size-20", {"props": [(0x27, 20)]}),
            ("topic-alias-max", {"props": [(0x22, 5)]}),
            ("problem-info-0", {"props": [(0x17, 0)]}),
            ("problem-info-2", {"props": [(0x17, 2)]}),
            ("response-info", {"props": [(0x19, 1)]}),
            ("user-property", {"props": [(0x26, ("k", "v"))]}),
            ("auth-method", {"props": [(0x15, "SCRAM-SHA-1")]}),
            ("duplicate-property", {"props": [(0x11, 1), (0x11, 2)]}),
            ("will-delay", {"will": will(props=[(0x18, 5)])}),
            ("will-bad-utf8-payload", {"will": dict(will(props=[(0x01, 1)]), payload=b"\xff")}),
            ("will-response-topic-wildcard", {"will": will(props=[(0x08, "a/#")])}),
        ]
    return variants


def connect_scripts(counter):
    """Every CONNECT variant, then a PINGREQ to see whether it stayed."""
    out = []
    for v in VERSIONS:
        probe = Script("", "")
        for variant, fields in _connect_variants(probe, v):
            s = Script(f"connect/v{v}/{variant}", counter())
            fields = dict(_connect_variants(s, v))[variant]
            s.connect(v, **fields).alive()
            out.append(s)
    return out


def first_packet_scripts(counter):
    """Packets other than CONNECT first, and CONNECT twice."""
    out = []
    for v in VERSIONS:
        for name, data in [
            ("pingreq-first", p.PINGREQ),
            ("publish-first", p.publish("x/y", version=min(v, 4))),
            ("subscribe-first", p.subscribe(1, [("x/y", 0)])),
            ("disconnect-first", p.disconnect()),
            ("empty-connect", bytes([0x10, 0])),
            ("truncated-length", bytes([0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])),
            ("reserved-type-0", bytes([0x00, 0])),
            ("connect-flags-nibble", bytes([0x11]) + p.connect("z", version=v)[1:]),
        ]:
            s = Script(f"first/v{v}/{name}", counter())
            s.open().exchange(data)
            out.append(s)
        s = Script(f"first/v{v}/connect-twice", counter())
        s.connect(v).exchange(p.connect(s.id("a"), version=v)).alive()
        out.append(s)
    return out


def session_scripts(counter):
    """Sessions: resume with and without clean start, take-over."""
    out = []
    for v in VERSIONS:
        props = [(0x11, 300)] if v == 5 else None
        s = Script(f"session/v{v}/resume", counter())
        s.connect(v, clean=False, props=props)
        s.exchange(p.subscribe(1, [(s.topic(), 1)], version=v)).send(p.disconnect(v)).close()
        s.connect(v, conn="b", client_id=s.id("a"), clean=False, props=props)
        out.append(s)
        s = Script(f"session/v{v}/takeover", counter())
        s.connect(v).connect(v, conn="b", client_id=s.id("a")).read("a")
        out.append(s)
        s = Script(f"session/v{v}/queued-offline", counter())
        s.connect(v, clean=False, props=props)
        s.exchange(p.subscribe(1, [(s.topic(), 1)], version=v)).send(p.disconnect(v)).close()
        s.connect(v, conn="pub").exchange(p.publish(s.topic(), b"q", 1, version=v), "pub")
        s.connect(v, conn="b", client_id=s.id("a"), clean=False, props=props)
        s.exchange(p.ack(r.PUBACK, 1, v), "b")
        out.append(s)
    return out
