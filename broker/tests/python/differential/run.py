"""Playing every script against both brokers, comparing, summarising.

Answers are compared packet by packet after masking what is random in
both brokers (the bytes of an Assigned Client Identifier) and folding the
two ways a connection ends after the broker's last word (EOF, or a reset
because the client's unread input was discarded, which also fails the
client's next write: fleetmq lingers where Mosquitto resets,
docs/mosquitto-differences.md "Closing after the broker's last word").
"""

import fnmatch
import sys

import rawmqtt
import tempfile
from concurrent.futures import ThreadPoolExecutor

from . import features, flows, persist, scripts, tls
from .brokers import Broker
from .differences import DOCUMENTED
from .player import EOF_MARK, RESET_MARK, WRITE_FAILED, play

# Configurations both brokers run: their mosquitto.conf lines (or a
# function of the work folder that writes the files they name and returns
# them), and which scripts they play: "all" is every general script.
CONFIGS = {
    "default": ([], "all"),
    "limits": (["max_qos 1", "retain_available false", "max_keepalive 120",
                "max_packet_size 2000", "max_inflight_messages 2",
                "max_topic_alias 4"], "all"),
    "legacy": (["max_queued_messages 2",
                "queue_qos0_messages true", "allow_zero_length_clientid false",
                "auto_id_prefix lab-"], "all"),
    "auth": (features.auth_files, "auth"),
    "size": ([f"message_size_limit {features.SIZE_LIMIT}"], "size"),
    "tls": (tls.tls_files, "tls"),
}
WORKERS = 24


def all_scripts():
    """Script lists by name: "all" (every general script), "auth", "size"."""
    counter_state = [0]

    def counter():
        counter_state[0] += 1
        return f"d{counter_state[0]:04d}"

    general = []
    for make in (scripts.connect_scripts, scripts.first_packet_scripts,
                 scripts.session_scripts, flows.pubsub_scripts, flows.retained_scripts,
                 flows.will_scripts, flows.subscribe_scripts, flows.publish_error_scripts,
                 features.feature_scripts, features.interrupted_scripts):
        general.extend(make(counter))
    return {"all": general, "auth": features.auth_scripts(counter),
            "size": features.size_scripts(counter),
            "persist": persist.persist_scripts(counter), "tls": tls.tls_scripts(counter)}


def _mask_connack(packet):
    """A CONNACK with the Assigned Client Identifier's characters as 'X'."""
    if packet[:1] != b"\x20" or len(packet) < 6:
        return packet
    data = bytearray(packet)
    at = data.find(b"\x12\x00")
    if at < 0:
        return packet
    length = int.from_bytes(data[at + 1:at + 3], "big")
    data[at + 3:at + 3 + length] = b"X" * length
    return bytes(data)


# Remaining Message Expiry Intervals are compared within this many
# seconds: each broker counts whole seconds from its own clock.
EXPIRY_TOLERANCE = 5


def _expiry_rounded(packet):
    """A 5.0 PUBLISH with its Message Expiry Interval rounded to
    EXPIRY_TOLERANCE seconds; anything else (or what does not parse as a
    5.0 PUBLISH) unchanged."""
    if not packet or packet[0] >> 4 != 3:
        return packet
    try:
        _length, at = rawmqtt._decode_varint(packet, 1)
        topic_length = int.from_bytes(packet[at:at + 2], "big")
        at += 2 + topic_length + (2 if (packet[0] >> 1) & 3 else 0)
        props_length, at = rawmqtt._decode_varint(packet, at)
        end, data = at + props_length, bytearray(packet)
        while at < end:
            ident, at = rawmqtt._decode_varint(packet, at)
            kind = rawmqtt._PROPERTY_TYPES[ident]
            if ident == 0x02:
                value = int.from_bytes(packet[at:at + 4], "big")
                rounded = min(0xFFFFFFFF, round(value / EXPIRY_TOLERANCE) * EXPIRY_TOLERANCE)
                data[at:at + 4] = rounded.to_bytes(4, "big")
            if kind in (rawmqtt._BYTE, rawmqtt._U16, rawmqtt._U32):
                at += {rawmqtt._BYTE: 1, rawmqtt._U16: 2, rawmqtt._U32: 4}[kind]
            elif kind == rawmqtt._VARINT:
                _, at = rawmqtt._decode_varint(packet, at)
            else:
                for _ in range(2 if kind == rawmqtt._PAIR else 1):
                    at += 2 + int.from_bytes(packet[at:at + 2], "big")
        return bytes(data)
    except (IndexError, KeyError, ValueError):
        return packet


def normalise(transcript, version=None):
    out = []
    for index, conn, item in transcript:
        if item == WRITE_FAILED:
            # A write after Mosquitto's reset fails; fleetmq's lingering
            # close reads it: the same end, seen one step later.
            continue
        if item in (EOF_MARK, RESET_MARK):
            item = "CLOSED"
        elif isinstance(item, bytes):
            item = _mask_connack(item)
            if version == 5:
                item = _expiry_rounded(item)
        out.append((index, conn, item))
    return out


def script_version(name):
    """The protocol level in a script name (`group/vN/...`)."""
    for part in name.split("/"):
        if len(part) == 2 and part[0] == "v" and part[1].isdigit():
            return int(part[1])
    return None


def documented_reason(name):
    for pattern, reason in DOCUMENTED.items():
        if fnmatch.fnmatch(name, pattern):
            return reason
    return None


def compare_config(config, lines, script_list, workdir, tls_clients=None):
    mosquitto = Broker("mosquitto", workdir, lines)
    try:
        fleetmq = Broker("fleetmq", workdir, lines)
    except Exception:
        mosquitto.stop()
        raise
    results = []
    try:
        def one(script):
            version = script_version(script.name)
            return (script,
                    normalise(play(mosquitto.port, script.steps, tls_clients), version),
                    normalise(play(fleetmq.port, script.steps, tls_clients), version))
        with ThreadPoolExecutor(WORKERS) as pool:
            for script, want, got in pool.map(one, script_list):
                results.append((f"{config}/{script.name}", want, got))
    finally:
        fleetmq.stop()
        mosquitto.stop()
    return results


def run(out=sys.stdout):
    """Plays everything; returns (summary line, undocumented names, details)."""
    lists = all_scripts()
    counts = {"identical": 0, "documented": 0}
    undocumented, details, names = [], [], []

    def tally(name, want, got):
        if want == got:
            counts["identical"] += 1
        elif documented_reason(name):
            counts["documented"] += 1
        else:
            undocumented.append(name)
            details.append(f"{name}\n  mosquitto: {describe(want)}\n"
                           f"  fleetmq:   {describe(got)}")

    with tempfile.TemporaryDirectory() as workdir:
        for config, (lines, which) in CONFIGS.items():
            tls_clients = None
            if callable(lines):
                lines = lines(workdir)
                if isinstance(lines, tuple):
                    lines, tls_clients = lines
            names += [f"{config}/{script.name}" for script in lists[which]]
            for name, want, got in compare_config(config, lines, lists[which], workdir,
                                                  tls_clients):
                tally(name, want, got)
        # Across a restart of both brokers (persistence true).
        names += [f"persist/{before.name.split('#')[0]}" for before, _ in lists["persist"]]
        for name, want, got in persist.compare(lists["persist"], workdir, WORKERS):
            version = script_version(name)
            tally(f"persist/{name}", normalise(want, version), normalise(got, version))
    total = counts["identical"] + counts["documented"] + len(undocumented)
    for pattern in DOCUMENTED:
        if not any(fnmatch.fnmatch(name, pattern) for name in names):
            # A stale entry would excuse a future script by accident.
            undocumented.append(f"differences.py entry {pattern!r} names no script")
            details.append(f"differences.py entry {pattern!r} names no script")
    line = (f"differential: {total} scripts run, {counts['identical']} identical answers, "
            f"{counts['documented']} documented differences, {len(undocumented)} "
            f"undocumented differences")
    return line, undocumented, details


def describe(transcript):
    return " ".join(f"{i}{c}:{item.hex() if isinstance(item, bytes) else item}"
                    for i, c, item in transcript)


if __name__ == "__main__":
    summary, names, details = run()
    print("\n".join(details))
    print(summary)
