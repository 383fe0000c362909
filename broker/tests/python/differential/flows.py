"""Scripts after a successful CONNECT: QoS 0/1/2 flows in both directions,
retained messages, wills, subscriptions and their errors, malformed
PUBLISH, SUBSCRIBE and acknowledgements, 5.0 topic aliases."""

import rawmqtt as r

from . import packets as p
from .scripts import Script, VERSIONS


def pubsub_scripts(counter):
    """Subscribe at QoS sq, publish at QoS pq (retained or not) on the same
    connection, then complete every handshake."""
    out = []
    for v in VERSIONS:
        for sq in (0, 1, 2):
            for pq in (0, 1, 2):
                for retain in (False, True):
                    s = Script(f"pubsub/v{v}/sub{sq}-pub{pq}-r{int(retain)}", counter())
                    s.connect(v).exchange(p.subscribe(1, [(s.topic(), sq)], version=v))
                    s.exchange(p.publish(s.topic(), b"m", pq, retain, 7, version=v))
                    delivered = min(sq, pq)
                    if pq == 2:
                        s.exchange(p.ack(r.PUBREL, 7, v))
                    if delivered == 1:
                        s.exchange(p.ack(r.PUBACK, 1, v))
                    if delivered == 2:
                        s.exchange(p.ack(r.PUBREC, 1, v)).exchange(p.ack(r.PUBCOMP, 1, v))
                    if retain:
                        s.connect(v, conn="late")
                        s.exchange(p.subscribe(2, [(s.topic(), 0)], version=v), "late")
                    out.append(s)
    return out


def retained_scripts(counter):
    out = []
    for v in VERSIONS:
        s = Script(f"retained/v{v}/clear", counter())
        s.connect(v).exchange(p.publish(s.topic(), b"keep", 0, True, version=v))
        s.exchange(p.publish(s.topic(), b"", 0, True, version=v))
        s.exchange(p.subscribe(1, [(s.topic(), 0)], version=v))
        out.append(s)
        s = Script(f"retained/v{v}/wildcard", counter())
        s.connect(v)
        for leaf in ("a", "b/c"):
            s.exchange(p.publish(s.topic(leaf), leaf.encode(), 1, True, 3, version=v))
        s.exchange(p.subscribe(1, [(s.topic("#"), 0)], version=v))
        out.append(s)
        if v == 5:
            for handling in (0, 1, 2):
                s = Script(f"retained/v5/handling-{handling}", counter())
                s.connect(5).exchange(p.publish(s.topic(), b"k", 0, True, version=5))
                opts = handling << 4
                s.exchange(p.subscribe(1, [(s.topic(), opts)], version=5))
                s.exchange(p.subscribe(2, [(s.topic(), opts)], version=5))
                out.append(s)
            s = Script("retained/v5/retain-as-published", counter())
            s.connect(5).exchange(p.subscribe(1, [(s.topic(), 0x08)], version=5))
            s.exchange(p.publish(s.topic(), b"k", 0, True, version=5))
            out.append(s)
            s = Script("retained/v5/no-local", counter())
            s.connect(5).exchange(p.subscribe(1, [(s.topic(), 0x04)], version=5))
            s.exchange(p.publish(s.topic(), b"k", 0, False, version=5))
            out.append(s)
    return out


def will_scripts(counter):
    """A watcher subscribed to the will topic; the client goes away."""
    out = []
    for v in VERSIONS:
        for ending in ("drop", "disconnect", "disconnect-with-will", "keepalive"):
            if ending == "disconnect-with-will" and v != 5:
                continue
            s = Script(f"will/v{v}/{ending}", counter())
            will = {"topic": s.topic("will"), "payload": b"gone", "qos": 1}
            s.connect(v, conn="watch")
            s.exchange(p.subscribe(1, [(s.topic("will"), 1)], version=v), "watch")
            s.connect(v, will=will, keepalive=1 if ending == "keepalive" else 60)
            if ending == "disconnect":
                s.send(p.disconnect(v))
            elif ending == "disconnect-with-will":
                s.send(p.disconnect(5, reason=4))
            if ending == "keepalive":
                s.steps.append(("sleep", "a", 1.8))
            s.close()
            s.read("watch")
            out.append(s)
    return out


def subscribe_scripts(counter):
    out = []
    for v in VERSIONS:
        # Nobody publishes under this prefix: no script sees another's messages.
        k = "s" + counter()
        cases = [
            ("wildcards", [("+/x/#", 1)], 0x02),
            ("bad-hash", [(f"{k}/a/#/b", 0)], 0x02),
            ("bad-plus", [(f"{k}/a+", 0)], 0x02),
            ("empty-filter", [("", 0)], 0x02),
            ("qos-3", [(f"{k}/a/b", 3)], 0x02),
            ("options-reserved", [(f"{k}/a/b", 0xC0)], 0x02),
            ("no-filters", [], 0x02),
            ("flags-0", [(f"{k}/a/b", 0)], 0x00),
            ("many", [(f"{k}/m/{i}", i % 3) for i in range(8)], 0x02),
            ("sys", [("$SYS/broker/version", 0)], 0x02),
            ("shared", [(f"$share/g/{k}/a/b", 1)], 0x02),
            ("shared-bad", [(f"$share/g+/{k}", 1)], 0x02),
        ]
        for name, filters, flags in cases:
            s = Script(f"subscribe/v{v}/{name}", counter())
            s.connect(v).exchange(p.subscribe(1, filters, version=v, flags=flags)).alive()
            out.append(s)
        for name, filters in [("known", [f"{k}/a/b"]), ("unknown", [f"{k}/x/y"]), ("none", []),
                              ("bad-filter", [f"{k}/a/#/b"])]:
            s = Script(f"unsubscribe/v{v}/{name}", counter())
            s.connect(v).exchange(p.subscribe(1, [(f"{k}/a/b", 0)], version=v))
            s.exchange(p.unsubscribe(2, filters, version=v)).alive()
            out.append(s)
        s = Script(f"subscribe/v{v}/packet-id-0", counter())
        s.connect(v).exchange(p.subscribe(0, [(f"{k}/a/b", 0)], version=v)).alive()
        out.append(s)
    return out


def publish_error_scripts(counter):
    out = []
    for v in VERSIONS:
        # Nobody subscribes under this prefix.
        k = "p" + counter()
        cases = [
            ("topic-plus", p.publish(f"{k}/+", version=v)),
            ("topic-hash", p.publish(f"{k}/#", version=v)),
            ("topic-empty", p.publish("", version=v)),
            ("topic-nul", p.publish(f"{k}\x00b", version=v)),
            ("topic-dollar", p.publish("$SYS/x", version=v)),
            ("qos-3", bytes([0x36]) + p.publish(f"{k}/a/b", qos=1, version=v)[1:]),
            ("qos1-id-0", p.publish(f"{k}/a/b", qos=1, packet_id=0, version=v)),
            ("qos0-dup", p.publish(f"{k}/a/b", dup=True, version=v)),
            ("qos1-dup", p.publish(f"{k}/a/b", qos=1, dup=True, version=v)),
            ("puback-unknown", p.ack(r.PUBACK, 9, v)),
            ("pubrec-unknown", p.ack(r.PUBREC, 9, v)),
            ("pubrel-unknown", p.ack(r.PUBREL, 9, v)),
            ("pubcomp-unknown", p.ack(r.PUBCOMP, 9, v)),
            ("pubrel-flags-0", bytes([0x60, 2, 0, 9])),
            ("pingreq-flags", bytes([0xC1, 0])),
            ("disconnect-flags", bytes([0xE2, 0])),
            ("reserved-type-15", bytes([0xF0, 0])),
            ("reserved-type-0", bytes([0x00, 0])),
            ("length-overlong", bytes([0xC0, 0x80, 0x80, 0x80, 0x80, 0x01])),
            ("qos2-twice", p.publish(f"{k}/a/b", qos=2, packet_id=4, version=v) * 2),
            ("qos2-dup-then-new", p.publish(f"{k}/a/b", qos=2, packet_id=4, version=v)
             + p.publish(f"{k}/a/b", qos=2, packet_id=4, version=v, dup=True)
             + p.publish(f"{k}/a/b", qos=2, packet_id=4, version=v)),
            ("big-payload", p.publish(f"{k}/a/b", b"x" * 5000, version=v)),
        ]
        if v == 5:
            cases += [
                ("alias-set", p.publish(f"{k}/a/b", props=[(0x23, 1)], version=5)
                 + p.publish("", props=[(0x23, 1)], version=5)),
                ("alias-0", p.publish(f"{k}/a/b", props=[(0x23, 0)], version=5)),
                ("alias-above-max", p.publish(f"{k}/a/b", props=[(0x23, 11)], version=5)),
                ("alias-unknown", p.publish("", props=[(0x23, 3)], version=5)),
                ("subscription-id", p.publish(f"{k}/a/b", props=[(0x0B, 1)], version=5)),
                ("bad-utf8-payload", p.publish(f"{k}/a/b", b"\xff", props=[(0x01, 1)], version=5)),
                ("message-expiry", p.publish(f"{k}/a/b", props=[(0x02, 10)], version=5)),
                ("response-topic-wild", p.publish(f"{k}/a/b", props=[(0x08, "r/#")], version=5)),
                ("disconnect-0x04", p.disconnect(5, reason=4)),
                ("disconnect-bad-reason", p.disconnect(5, reason=0x03)),
                ("disconnect-expiry-from-0", p.disconnect(5, props=[(0x11, 10)])),
                ("auth-packet", bytes([0xF0, 2, 0x18, 0])),
            ]
        for name, data in cases:
            s = Script(f"publish/v{v}/{name}", counter())
            s.connect(v).exchange(data).alive()
            out.append(s)
    return out
