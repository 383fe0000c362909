"""Across a restart (issue 15): both brokers run with `persistence true`,
every script's first half is played, both brokers are stopped with SIGTERM
(Mosquitto saves its database on the way out, fleetmq's store has
committed what it acknowledged) and started again from the same files, and
every script's second half is played. Each half is a `Script`; the pair
shares its ids and topics.

What must come back: persistent sessions and their subscriptions, queued
QoS 1 and 2 messages, an unacknowledged outgoing QoS 1 message (resent
with DUP), an incoming QoS 2 message waiting for PUBREL, retained
messages; what must not: clean sessions, retained messages cleared before
the restart.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import rawmqtt as r

from . import packets as p
from .brokers import Broker
from .player import play
from .scripts import Script, VERSIONS

LINES = ["persistence true", "persistence_location ./", "autosave_interval 1800"]


def _pair(name, key):
    return Script(f"{name}#before", key), Script(f"{name}#after", key)


def persist_scripts(counter):
    """(before, after) script pairs."""
    out = []
    for v in VERSIONS:
        props = [(0x11, 3600)] if v == 5 else None

        def back(script, conn="b"):
            return script.connect(v, conn=conn, client_id=script.id("a"), clean=False,
                                  props=props)

        before, after = _pair(f"persist/v{v}/queued-qos1-and-qos2", counter())
        before.connect(v, clean=False, props=props)
        before.exchange(p.subscribe(1, [(before.topic(), 2)], version=v))
        before.send(p.disconnect(v)).close()
        before.connect(v, conn="pub")
        before.exchange(p.publish(before.topic(), b"one", 1, packet_id=1, version=v), "pub")
        before.exchange(p.publish(before.topic(), b"two", 2, packet_id=2, version=v), "pub")
        before.exchange(p.ack(r.PUBREL, 2, v), "pub")
        back(after).exchange(p.ack(r.PUBACK, 1, v), "b")
        after.exchange(p.ack(r.PUBREC, 2, v), "b").exchange(p.ack(r.PUBCOMP, 2, v), "b")
        out.append((before, after))

        before, after = _pair(f"persist/v{v}/inflight-resent", counter())
        before.connect(v, clean=False, props=props)
        before.exchange(p.subscribe(1, [(before.topic(), 1)], version=v))
        before.connect(v, conn="pub")
        before.exchange(p.publish(before.topic(), b"unacked", 1, packet_id=3, version=v), "pub")
        before.read("a").close("a")
        back(after).exchange(p.ack(r.PUBACK, 1, v), "b")
        out.append((before, after))

        before, after = _pair(f"persist/v{v}/incoming-qos2-awaits-pubrel", counter())
        before.connect(v, conn="w").exchange(p.subscribe(1, [(before.topic(), 0)], version=v),
                                             "w")
        before.connect(v, clean=False, props=props)
        before.exchange(p.publish(before.topic(), b"q2", 2, packet_id=9, version=v))
        before.close("a")
        back(after).exchange(p.ack(r.PUBREL, 9, v), "b")
        out.append((before, after))

        before, after = _pair(f"persist/v{v}/subscription-kept", counter())
        before.connect(v, clean=False, props=props)
        before.exchange(p.subscribe(1, [(before.topic("#"), 1)], version=v))
        before.send(p.disconnect(v)).close()
        back(after).connect(v, conn="pub")
        after.exchange(p.publish(after.topic("x"), b"live", 1, packet_id=4, version=v), "pub")
        after.read("b")
        out.append((before, after))

        before, after = _pair(f"persist/v{v}/clean-session-gone", counter())
        before.connect(v).exchange(p.subscribe(1, [(before.topic(), 1)], version=v))
        before.send(p.disconnect(v)).close()
        after.connect(v, clean=False, props=props)
        out.append((before, after))

        before, after = _pair(f"persist/v{v}/retained", counter())
        before.connect(v)
        before.exchange(p.publish(before.topic("kept"), b"r", 1, True, 5, version=v))
        before.exchange(p.publish(before.topic("cleared"), b"r", 1, True, 6, version=v))
        before.exchange(p.publish(before.topic("cleared"), b"", 1, True, 7, version=v))
        after.connect(v).exchange(p.subscribe(1, [(after.topic("+"), 1)], version=v))
        after.exchange(p.ack(r.PUBACK, 1, v))
        out.append((before, after))
    return out


def _broker(kind, folder):
    folder.mkdir(exist_ok=True)
    # Mosquitto started as root writes its database as its own user.
    os.chmod(folder, 0o777)
    return Broker(kind, folder, LINES)


def compare(script_pairs, workdir, workers):
    """(name, mosquitto transcript, fleetmq transcript) of each pair; the
    transcripts are raw (the caller normalises) and span the restart."""
    folders = {kind: Path(workdir) / f"persist-{kind}" for kind in ("mosquitto", "fleetmq")}
    halves = {}
    for phase in (0, 1):
        brokers = {}
        try:
            for kind, folder in folders.items():
                brokers[kind] = _broker(kind, folder)

            def one(pair, brokers=brokers):
                script = pair[phase]
                return {kind: play(broker.port, script.steps) for kind, broker in brokers.items()}

            with ThreadPoolExecutor(workers) as pool:
                for pair, got in zip(script_pairs, pool.map(one, script_pairs)):
                    for kind, transcript in got.items():
                        halves.setdefault((pair[0].key, kind), []).append(
                            [(f"{phase}.{i}", c, item) for i, c, item in transcript])
        finally:
            for broker in brokers.values():
                broker.stop()
    out = []
    for before, _after in script_pairs:
        name = before.name.split("#")[0]
        want = [step for half in halves[(before.key, "mosquitto")] for step in half]
        got = [step for half in halves[(before.key, "fleetmq")] for step in half]
        out.append((name, want, got))
    return out


__all__ = ["persist_scripts", "compare", "VERSIONS"]
