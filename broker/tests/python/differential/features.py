"""Scripts for what the first generator left out (issue 15): shared
subscriptions, subscription identifiers, no-local between clients, receive
maximum, message expiry, topic aliases reused, and -- under their own
configurations -- password and ACL denials and `message_size_limit`.

Like `scripts` and `flows`, each script uses its own ids and topics, so
scripts run concurrently on one broker without seeing each other.
"""

import rawmqtt as r

from . import packets as p
from .scripts import Script, VERSIONS

# The users and rules of the "auth" configuration (see `auth_files`).
USERS = {"alice": "alice-pw", "bob": "bob-pw"}
ACL = """\
user alice
topic readwrite lab/alice/#
topic read lab/shared/#

user bob
topic write lab/bob/#
topic read lab/alice/#

pattern readwrite lab/clients/%c/#
"""


def feature_scripts(counter):
    """Played under every configuration."""
    out = []
    for v in VERSIONS:
        # Two clients, one publisher: no-local concerns only the publisher.
        s = Script(f"features/v{v}/other-client-gets-copy", counter())
        opts = 0x04 | 1 if v == 5 else 1
        s.connect(v, conn="a").exchange(p.subscribe(1, [(s.topic(), opts)], version=v), "a")
        s.connect(v, conn="b").exchange(p.subscribe(1, [(s.topic(), opts)], version=v), "b")
        s.exchange(p.publish(s.topic(), b"n", 1, packet_id=5, version=v), "a")
        s.read("b").exchange(p.ack(r.PUBACK, 1, v), "b")
        out.append(s)

        # A shared subscription with one member beside a plain subscriber.
        s = Script(f"features/v{v}/shared-and-plain", counter())
        s.connect(v, conn="m").exchange(
            p.subscribe(1, [(f"$share/g{s.key}/{s.topic()}", 1)], version=v), "m")
        s.connect(v, conn="n").exchange(p.subscribe(1, [(s.topic(), 0)], version=v), "n")
        s.connect(v, conn="pub").exchange(p.publish(s.topic(), b"s", 1, packet_id=2,
                                                    version=v), "pub")
        s.read("m").read("n").exchange(p.ack(r.PUBACK, 1, v), "m")
        out.append(s)

        # Unsubscribed: nothing more arrives.
        s = Script(f"features/v{v}/unsubscribe-then-publish", counter())
        s.connect(v).exchange(p.subscribe(1, [(s.topic(), 0)], version=v))
        s.exchange(p.unsubscribe(2, [s.topic()], version=v))
        s.exchange(p.publish(s.topic(), b"u", version=v))
        out.append(s)

        # Overlapping filters of one client: one copy at the highest QoS
        # (5.0 with both subscription identifiers).
        s = Script(f"features/v{v}/overlapping-filters", counter())
        s.connect(v, conn="a")
        if v == 5:
            s.exchange(p.subscribe(1, [(s.topic("#"), 0)], version=5,
                                   props=[(0x0B, 7)]), "a")
            s.exchange(p.subscribe(2, [(s.topic("+"), 1)], version=5,
                                   props=[(0x0B, 9)]), "a")
        else:
            s.exchange(p.subscribe(1, [(s.topic("#"), 0), (s.topic("+"), 1)], version=v), "a")
        s.connect(v, conn="pub").exchange(p.publish(s.topic("x"), b"o", version=v), "pub")
        s.read("a")
        out.append(s)

        # A queued QoS 1 message for a session that comes back.
        s = Script(f"features/v{v}/queued-qos0-dropped", counter())
        props = [(0x11, 300)] if v == 5 else None
        s.connect(v, clean=False, props=props)
        s.exchange(p.subscribe(1, [(s.topic(), 0)], version=v)).send(p.disconnect(v)).close()
        s.connect(v, conn="pub").exchange(p.publish(s.topic(), b"z", version=v), "pub")
        s.connect(v, conn="b", client_id=s.id("a"), clean=False, props=props)
        out.append(s)

    # 5.0 only.
    s = Script("features/v5/subscription-identifier", counter())
    s.connect(5).exchange(p.subscribe(1, [(s.topic(), 1)], version=5, props=[(0x0B, 300)]))
    s.connect(5, conn="pub").exchange(p.publish(s.topic(), b"i", 1, packet_id=3, version=5),
                                      "pub")
    s.read("a").exchange(p.ack(r.PUBACK, 1, 5))
    out.append(s)

    s = Script("features/v5/subscription-identifier-0", counter())
    s.connect(5).exchange(p.subscribe(1, [(s.topic(), 0)], version=5, props=[(0x0B, 0)]))
    out.append(s)

    s = Script("features/v5/receive-maximum-1", counter())
    s.connect(5, props=[(0x21, 1)])
    s.exchange(p.subscribe(1, [(s.topic(), 1)], version=5))
    s.connect(5, conn="pub")
    for pid in (1, 2, 3):
        s.exchange(p.publish(s.topic(), bytes([48 + pid]), 1, packet_id=pid, version=5), "pub")
    s.read("a").exchange(p.ack(r.PUBACK, 1, 5)).exchange(p.ack(r.PUBACK, 2, 5))
    s.exchange(p.ack(r.PUBACK, 3, 5))
    out.append(s)

    s = Script("features/v5/message-expired-while-offline", counter())
    s.connect(5, clean=False, props=[(0x11, 300)])
    s.exchange(p.subscribe(1, [(s.topic(), 1)], version=5)).send(p.disconnect(5)).close()
    s.connect(5, conn="pub").exchange(
        p.publish(s.topic(), b"e", 1, packet_id=4, version=5, props=[(0x02, 1)]), "pub")
    s.steps.append(("sleep", "a", 2.2))
    s.connect(5, conn="b", client_id=s.id("a"), clean=False, props=[(0x11, 300)])
    out.append(s)

    s = Script("features/v5/message-expiry-kept-while-live", counter())
    s.connect(5).exchange(p.subscribe(1, [(s.topic(), 0)], version=5))
    s.connect(5, conn="pub").exchange(
        p.publish(s.topic(), b"e", version=5, props=[(0x02, 3600)]), "pub")
    s.read("a")
    out.append(s)

    s = Script("features/v5/topic-alias-remapped", counter())
    s.connect(5).exchange(p.subscribe(1, [(s.topic("#"), 0)], version=5))
    s.exchange(p.publish(s.topic("one"), b"1", props=[(0x23, 1)], version=5))
    s.exchange(p.publish("", b"2", props=[(0x23, 1)], version=5))
    s.exchange(p.publish(s.topic("two"), b"3", props=[(0x23, 1)], version=5))
    s.exchange(p.publish("", b"4", props=[(0x23, 1)], version=5))
    out.append(s)

    # 5.0 properties carried from publisher to subscriber.
    for name, props in [
        ("payload-format", [(0x01, 1)]),
        ("content-type", [(0x03, "application/json")]),
        ("response-topic", [(0x08, "replies/x")]),
        ("correlation-data", [(0x09, b"\x00\x01corr")]),
        ("user-properties", [(0x26, ("a", "1")), (0x26, ("b", "2")), (0x26, ("a", "3"))]),
        ("all", [(0x01, 1), (0x02, 3600), (0x03, "text/plain"), (0x08, "r/t"),
                 (0x09, b"c"), (0x26, ("k", "v"))]),
    ]:
        s = Script(f"features/v5/forwarded-{name}", counter())
        s.connect(5).exchange(p.subscribe(1, [(s.topic(), 1)], version=5))
        s.connect(5, conn="pub").exchange(
            p.publish(s.topic(), b"{}", 1, packet_id=2, version=5, props=props), "pub")
        s.read("a").exchange(p.ack(r.PUBACK, 1, 5))
        out.append(s)

    # A retained message that expires, and one that is kept with its
    # remaining expiry.
    s = Script("features/v5/retained-expired", counter())
    s.connect(5).exchange(p.publish(s.topic(), b"x", 0, True, version=5, props=[(0x02, 1)]))
    s.steps.append(("sleep", "a", 2.2))
    s.exchange(p.subscribe(1, [(s.topic(), 0)], version=5))
    out.append(s)
    s = Script("features/v5/retained-expiry-kept", counter())
    s.connect(5).exchange(p.publish(s.topic(), b"x", 0, True, version=5, props=[(0x02, 3600)]))
    s.exchange(p.subscribe(1, [(s.topic(), 0)], version=5))
    out.append(s)

    # A will with a message expiry and properties, delivered to a watcher.
    s = Script("features/v5/will-with-properties", counter())
    will = {"topic": s.topic("will"), "payload": b"w", "qos": 1,
            "props": [(0x02, 3600), (0x03, "text/plain"), (0x26, ("why", "gone"))]}
    s.connect(5, conn="watch").exchange(p.subscribe(1, [(s.topic("will"), 1)], version=5),
                                        "watch")
    s.connect(5, will=will).close()
    s.read("watch")
    out.append(s)

    s = Script("features/v5/will-delay-cancelled-by-return", counter())
    will = {"topic": s.topic("will"), "payload": b"w", "props": [(0x18, 2)]}
    s.connect(5, conn="watch").exchange(p.subscribe(1, [(s.topic("will"), 0)], version=5),
                                        "watch")
    s.connect(5, will=will, clean=False, props=[(0x11, 60)]).close()
    s.connect(5, conn="b", client_id=s.id("a"), clean=False, props=[(0x11, 60)])
    s.steps.append(("sleep", "watch", 2.5))
    s.read("watch")
    out.append(s)
    return out


def auth_files(workdir):
    """Writes the password file (with Debian's mosquitto_passwd) and the ACL
    file of the "auth" configuration; returns its mosquitto.conf lines."""
    import subprocess
    from pathlib import Path

    workdir = Path(workdir)
    passwd = workdir / "passwd"
    passwd.write_text("")
    for user, password in USERS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (workdir / "acl").write_text(ACL)
    # Mosquitto started as root reads these after dropping to its own user.
    workdir.chmod(0o755)
    for name in ("passwd", "acl"):
        (workdir / name).chmod(0o644)
    return ["allow_anonymous false", f"password_file {passwd}", f"acl_file {workdir / 'acl'}"]


def auth_scripts(counter):
    """Played only under the "auth" configuration."""
    out = []
    for v in VERSIONS:
        def creds(user, password=None):
            return {"username": user,
                    "password": (password if password is not None else USERS[user]).encode()}

        for name, fields in [
            ("anonymous", {}),
            ("wrong-password", creds("alice", "nope")),
            ("unknown-user", creds("mallory", "x")),
            ("username-only", {"username": "alice"}),
            ("good", creds("alice")),
        ]:
            s = Script(f"auth/v{v}/connect-{name}", counter())
            s.connect(v, **fields).alive()
            out.append(s)

        for qos in (0, 1, 2):
            s = Script(f"auth/v{v}/publish-denied-q{qos}", counter())
            s.connect(v, conn="w", **creds("alice"))
            s.exchange(p.subscribe(1, [(f"lab/shared/{s.key}", qos)], version=v), "w")
            s.connect(v, **creds("alice"))
            s.exchange(p.publish(f"lab/shared/{s.key}", b"d", qos, packet_id=6, version=v))
            if qos == 2:
                s.exchange(p.ack(r.PUBREL, 6, v))
            s.alive().read("w")
            out.append(s)

            s = Script(f"auth/v{v}/publish-allowed-q{qos}", counter())
            s.connect(v, conn="w", **creds("bob"))
            s.exchange(p.subscribe(1, [(f"lab/alice/{s.key}", qos)], version=v), "w")
            s.connect(v, **creds("alice"))
            s.exchange(p.publish(f"lab/alice/{s.key}", b"ok", qos, packet_id=6, version=v))
            if qos == 2:
                s.exchange(p.ack(r.PUBREL, 6, v))
            s.read("w")
            out.append(s)

        s = Script(f"auth/v{v}/subscribe-denied", counter())
        s.connect(v, **creds("bob"))
        s.exchange(p.subscribe(1, [(f"lab/bob/{s.key}", 1), (f"lab/alice/{s.key}", 1),
                                   (f"lab/{s.key}/#", 0)], version=v)).alive()
        out.append(s)

        # Subscribed to a wildcard wider than the read rights: only the
        # topics it may read are delivered.
        s = Script(f"auth/v{v}/receive-filtered", counter())
        s.connect(v, conn="w", **creds("alice"))
        s.exchange(p.subscribe(1, [(f"lab/+/{s.key}", 0)], version=v), "w")
        s.connect(v, **creds("bob"))
        s.exchange(p.publish(f"lab/bob/{s.key}", b"hidden", version=v))
        s.connect(v, conn="a2", **creds("alice"))
        s.exchange(p.publish(f"lab/alice/{s.key}", b"seen", version=v), "a2")
        s.read("w")
        out.append(s)

        # The %c pattern: a client's own subtree, not another's.
        s = Script(f"auth/v{v}/pattern-own-and-other", counter())
        s.connect(v, **creds("bob"))
        own = f"lab/clients/{s.id('a')}/x"
        s.exchange(p.subscribe(1, [(own, 1), (f"lab/clients/{s.key}other/x", 1)], version=v))
        s.exchange(p.publish(own, b"mine", 1, packet_id=9, version=v))
        s.exchange(p.ack(r.PUBACK, 1, v))
        out.append(s)
    return out


SIZE_LIMIT = 100


def size_scripts(counter):
    """Played only under the "size" configuration (message_size_limit)."""
    out = []
    for v in VERSIONS:
        for qos in (0, 1, 2):
            for size in (SIZE_LIMIT, SIZE_LIMIT + 1):
                s = Script(f"size/v{v}/q{qos}-{size}", counter())
                s.connect(v, conn="w").exchange(p.subscribe(1, [(s.topic(), 0)], version=v),
                                                "w")
                s.connect(v)
                s.exchange(p.publish(s.topic(), b"x" * size, qos, packet_id=3, version=v))
                if qos == 2:
                    s.exchange(p.ack(r.PUBREL, 3, v))
                s.alive().read("w")
                out.append(s)
        s = Script(f"size/v{v}/will-too-big", counter())
        s.connect(v, will={"topic": s.topic("w"), "payload": b"x" * (SIZE_LIMIT + 1)}).alive()
        out.append(s)
    return out


def interrupted_scripts(counter):
    """QoS 1 and 2 flows broken off at each step by the client's
    disconnect, then resumed by the same persistent session."""
    out = []
    for v in VERSIONS:
        props = [(0x11, 300)] if v == 5 else None

        def resume(s):
            return s.connect(v, conn="b", client_id=s.id("a"), clean=False, props=props)

        # Broker to client.
        for qos, steps in ((1, ("publish",)), (2, ("publish", "pubrec"))):
            for cut in steps:
                s = Script(f"interrupted/v{v}/out-q{qos}-after-{cut}", counter())
                s.connect(v, clean=False, props=props)
                s.exchange(p.subscribe(1, [(s.topic(), qos)], version=v))
                s.connect(v, conn="pub")
                s.exchange(p.publish(s.topic(), b"i", qos, packet_id=3, version=v), "pub")
                if qos == 2:
                    s.exchange(p.ack(r.PUBREL, 3, v), "pub")
                s.read("a")
                if cut == "pubrec":
                    s.exchange(p.ack(r.PUBREC, 1, v))
                s.close("a")
                resume(s)
                if qos == 1:
                    s.exchange(p.ack(r.PUBACK, 1, v), "b")
                elif cut == "publish":
                    s.exchange(p.ack(r.PUBREC, 1, v), "b").exchange(p.ack(r.PUBCOMP, 1, v), "b")
                else:
                    s.exchange(p.ack(r.PUBCOMP, 1, v), "b")
                s.alive("b")
                out.append(s)

        # Client to broker, QoS 2: PUBREL only after reconnecting.
        s = Script(f"interrupted/v{v}/in-q2-before-pubrel", counter())
        s.connect(v, conn="w").exchange(p.subscribe(1, [(s.topic(), 0)], version=v), "w")
        s.connect(v, clean=False, props=props)
        s.exchange(p.publish(s.topic(), b"q", 2, packet_id=8, version=v)).close("a")
        resume(s).exchange(p.ack(r.PUBREL, 8, v), "b")
        # The same packet id again: a new message now.
        s.exchange(p.publish(s.topic(), b"q2", 2, packet_id=8, version=v), "b")
        s.exchange(p.ack(r.PUBREL, 8, v), "b").read("w")
        out.append(s)

        # Client to broker, QoS 2: the PUBLISH resent with DUP after the cut.
        s = Script(f"interrupted/v{v}/in-q2-resent-with-dup", counter())
        s.connect(v, conn="w").exchange(p.subscribe(1, [(s.topic(), 0)], version=v), "w")
        s.connect(v, clean=False, props=props)
        s.exchange(p.publish(s.topic(), b"d", 2, packet_id=9, version=v)).close("a")
        resume(s).exchange(p.publish(s.topic(), b"d", 2, packet_id=9, version=v, dup=True), "b")
        s.exchange(p.ack(r.PUBREL, 9, v), "b").read("w")
        out.append(s)
    return out
