#!/usr/bin/env python3
"""Soak benchmark for fleetmq: mixed load for a set time, with connects,
disconnects, client kills, broker kills (SIGKILL, restarted from its store)
and reloads (SIGHUP). Not run in CI.

Checks, at the end:
  * no acknowledged message is lost: every QoS 1 PUBLISH whose PUBACK the
    publisher got reaches every persistent subscriber (5.0 sessions with a
    one-hour expiry, queued across their own disconnects and across broker
    kills, since PUBACK waits for the store's commit);
  * no errors: the broker logs no ERROR line and no panic;
  * RSS flat: VmRSS sampled every second; for each broker lifetime longer
    than two and a half minutes, the mean of its last minute against a
    baseline minute: the middle one for lifetimes of 10 minutes or more
    (bounded caches such as the dashboard's 10,000 remembered client ids
    fill during the first minutes), else the second (the first is
    warm-up). Broker kills happen only during
    the kill phase (the first quarter of the run by default); the broker
    then lives to the end, so a run of 5 minutes or more always has at
    least one lifetime the check applies to, and the run fails if none
    had.

Usage: bench/soak/soak.py --broker target/release/fleetmq --minutes 5
Writes a JSON summary (and prints it); exits 1 when a check fails.
"""
import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

PUBLISHERS = 5
SUBSCRIBERS = 5
RATE_PER_PUBLISHER = 40  # QoS 1 messages per second
TRANSIENT_PER_SECOND = 20  # short-lived clients (connect, publish, drop)
SUBSCRIBER_BOUNCE_EVERY = 7.0  # seconds: one subscriber disconnects
BROKER_KILL_EVERY = 75.0  # seconds: SIGKILL and restart the broker
RELOAD_EVERY = 20.0  # seconds: SIGHUP


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class BrokerProcess:
    def __init__(self, binary, workdir, port):
        self.binary = binary
        self.workdir = workdir
        self.port = port
        self.config = os.path.join(workdir, "fleetmq.toml")
        with open(self.config, "w") as f:
            f.write(
                f'data_dir = "{workdir}/data"\n\n'
                f'[[listener]]\nname = "soak"\nbind = "127.0.0.1:{port}"\n\n'
                "[limits]\nmax_queued_messages = 100000\nmax_queued_bytes = 0\n"
                "connection_rate_per_ip = 0\n\n"
                "[store]\nenabled = true\nfsync = \"batch\"\n"
            )
        self.log = open(os.path.join(workdir, "broker.log"), "ab")
        self.proc = None
        self.lifetimes = []  # [(started, [(t, rss)])]

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary, "run", "--config", self.config],
            cwd=self.workdir,
            stdout=self.log,
            stderr=self.log,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("FLEETMQ_")}, "NO_COLOR": "1"},
        )
        self.lifetimes.append((time.time(), []))
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("broker did not start")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def sighup(self):
        self.proc.send_signal(signal.SIGHUP)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def sample(self):
        rss = rss_kib(self.proc.pid)
        if rss is not None:
            self.lifetimes[-1][1].append((time.time(), rss))


def v5_client(client_id, port, persistent, inflight=20):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.reconnect_delay_set(min_delay=0.1, max_delay=1)
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    props = Properties(PacketTypes.CONNECT)
    if persistent:
        props.SessionExpiryInterval = 3600
    client.connect_async("127.0.0.1", port, keepalive=30, clean_start=not persistent, properties=props)
    return client


class Subscriber:
    def __init__(self, n, port):
        self.id = f"soak-sub-{n}"
        self.port = port
        self.received = set()
        self.duplicates = 0
        self.lock = threading.Lock()
        self.client = None

    def on_message(self, client, userdata, message):
        key = message.payload.decode()
        with self.lock:
            if key in self.received:
                self.duplicates += 1
            self.received.add(key)

    def on_connect(self, client, userdata, flags, reason, properties):
        if not flags.session_present:
            client.subscribe("soak/data/#", qos=1)

    def connect(self):
        self.client = v5_client(self.id, self.port, persistent=True)
        self.client.on_message = self.on_message
        self.client.on_connect = self.on_connect
        self.client.loop_start()

    def disconnect(self):
        self.client.disconnect()
        self.client.loop_stop()


class Publisher:
    def __init__(self, n, port):
        self.n = n
        self.port = port
        self.seq = 0
        self.pending = {}
        self.acked = set()
        self.lock = threading.Lock()
        self.client = v5_client(f"soak-pub-{n}", port, persistent=True)
        self.client.on_publish = self.on_publish
        self.client.loop_start()

    def on_publish(self, client, userdata, mid, reason, properties):
        with self.lock:
            key = self.pending.pop(mid, None)
            if key is not None and not reason.is_failure:
                self.acked.add(key)

    def publish(self):
        self.seq += 1
        key = f"{self.n}:{self.seq}"
        info = self.client.publish(f"soak/data/{self.n}", key, qos=1)
        with self.lock:
            self.pending[info.mid] = key


def transient(port, n):
    """A client that connects, publishes, and vanishes without DISCONNECT."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        cid = f"soak-t-{n}".encode()
        body = b"\x00\x04MQTT\x04\x02\x00\x0a" + len(cid).to_bytes(2, "big") + cid
        s.sendall(bytes([0x10, len(body)]) + body)
        s.recv(4)
        topic = b"soak/transient"
        pub = len(topic).to_bytes(2, "big") + topic + b"x"
        s.sendall(bytes([0x30, len(pub)]) + pub)
        s.close()
        return True
    except OSError:
        return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", default="target/release/fleetmq")
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--summary", default=None)
    parser.add_argument("--rate", type=float, default=RATE_PER_PUBLISHER,
                        help="QoS 1 messages per second per publisher")
    parser.add_argument("--kill-phase-minutes", type=float, default=None,
                        help="broker kills stop after this (default: a quarter of the run)")
    args = parser.parse_args()
    if args.kill_phase_minutes is None:
        args.kill_phase_minutes = args.minutes / 4
    duration = args.minutes * 60
    workdir = tempfile.mkdtemp(prefix="fleetmq-soak-")
    port = free_port()
    broker = BrokerProcess(os.path.abspath(args.broker), workdir, port)
    broker.start()
    try:
        run(args, broker, port, duration, workdir)
    finally:
        if broker.proc.poll() is None:
            broker.kill()


def run(args, broker, port, duration, workdir):

    subscribers = [Subscriber(n, port) for n in range(SUBSCRIBERS)]
    for s in subscribers:
        s.connect()
    time.sleep(1)
    publishers = [Publisher(n, port) for n in range(PUBLISHERS)]
    counts = {"broker_kills": 0, "reloads": 0, "subscriber_bounces": 0,
              "transient_ok": 0, "transient_failed": 0}
    started = time.time()
    next_kill = started + BROKER_KILL_EVERY
    next_reload = started + RELOAD_EVERY
    next_bounce = started + SUBSCRIBER_BOUNCE_EVERY
    next_sample = started
    tick = 1.0 / args.rate
    transient_n = 0
    while time.time() - started < duration:
        now = time.time()
        for p in publishers:
            p.publish()
        if now >= next_sample:
            broker.sample()
            for _ in range(TRANSIENT_PER_SECOND):
                transient_n += 1
                ok = transient(port, transient_n)
                counts["transient_ok" if ok else "transient_failed"] += 1
            next_sample += 1
        if now >= next_bounce:
            s = random.choice(subscribers)
            s.disconnect()
            time.sleep(random.uniform(0.2, 2.0))
            s.connect()
            counts["subscriber_bounces"] += 1
            next_bounce += SUBSCRIBER_BOUNCE_EVERY
        if now >= next_reload:
            broker.sighup()
            counts["reloads"] += 1
            next_reload += RELOAD_EVERY
        if now >= next_kill and now - started < args.kill_phase_minutes * 60:
            broker.kill()
            time.sleep(0.5)
            broker.start()
            counts["broker_kills"] += 1
            next_kill += BROKER_KILL_EVERY
        time.sleep(max(0.0, tick - (time.time() - now)))

    # Let the last acknowledgements and deliveries arrive.
    drain_until = time.time() + 60
    def lost():
        acked = set().union(*(p.acked for p in publishers))
        return {s.id: len(acked - s.received) for s in subscribers}, acked
    while time.time() < drain_until:
        broker.sample()
        missing, acked = lost()
        if all(v == 0 for v in missing.values()):
            break
        time.sleep(1)
    missing, acked = lost()
    for p in publishers:
        p.client.loop_stop()
    for s in subscribers:
        s.disconnect()
    broker.stop()
    broker.log.close()

    with open(os.path.join(workdir, "broker.log"), "rb") as f:
        log = f.read().decode("utf-8", "replace")
    errors = [l for l in log.splitlines() if " ERROR " in l or "panicked" in l]
    flat = []
    for born, samples in broker.lifetimes:
        if not samples or samples[-1][0] - born < 150:
            continue
        # The baseline is the middle minute of the lifetime (the second
        # for short ones): bounded caches fill during the first minutes
        # (the dashboard remembers 10,000 client ids: 8 minutes of
        # transient clients), and filling a bound is not growth.
        life = samples[-1][0] - born
        mid = max(60.0, (life // 120) * 60) if life >= 600 else 60.0
        second = [r for t, r in samples if mid <= t - born < mid + 60]
        last = [r for t, r in samples if samples[-1][0] - t < 60]
        per_minute = {}
        for t, r in samples:
            per_minute.setdefault(int((t - born) // 60), []).append(r)
        flat.append({
            "lifetime_s": round(samples[-1][0] - born),
            "minute_mean_kib": [round(sum(v) / len(v)) for _, v in sorted(per_minute.items())],
            "baseline_minute": int(mid // 60),
            "baseline_minute_mean_kib": round(sum(second) / len(second)),
            "last_minute_mean_kib": round(sum(last) / len(last)),
            "max_kib": max(r for _, r in samples),
        })
    all_rss = [r for _, samples in broker.lifetimes for _, r in samples]
    rss_checked = bool(flat) or args.minutes < 5
    summary = {
        "minutes": args.minutes,
        "published_acknowledged": len(acked),
        "published_total": sum(p.seq for p in publishers),
        "lost_acknowledged_per_subscriber": missing,
        "duplicates_per_subscriber": {s.id: s.duplicates for s in subscribers},
        "errors_logged": len(errors),
        "first_errors": errors[:5],
        "rss_kib_min": min(all_rss) if all_rss else None,
        "rss_kib_max": max(all_rss) if all_rss else None,
        "rss_flat_per_lifetime": flat,
        "rss_check_ran": rss_checked,
        **counts,
        "workdir": workdir,
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.summary:
        with open(args.summary, "w") as f:
            f.write(text + "\n")
    failed = not rss_checked or any(missing.values()) or errors or any(
        l["last_minute_mean_kib"] > l["baseline_minute_mean_kib"] * 1.25 + 8192 for l in flat)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
