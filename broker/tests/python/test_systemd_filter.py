"""fleetmq under the system call filter of its own systemd unit.

`config/fleetmq.service` confines the broker with `SystemCallFilter=` lines
(an allow list, then groups taken out and single calls put back) and
`SystemCallErrorNumber=`. Nothing ran the broker under that filter: the
unit denied `setpriority`, which the store's checkpoint thread calls as
the store starts, so under systemd the broker was killed (SIGSYS) at once
with the store on, as the embedded defaults have it (decision 0196).

This test builds the filter systemd builds from the unit: the groups
expanded by this machine's `systemd-analyze syscall-filter`, the lines
merged in order (the first names the allowed calls, `@default` with them;
a later `~` line removes, a later plain line adds back), refused calls
failing with `SystemCallErrorNumber=` or killing the process without it.
libseccomp loads it in a launcher that then execs the real binary; the
broker must then take, keep and deliver a durable QoS 1 message, run its
checkpoint thread under SCHED_IDLE at nice 19 (decision 0197) and stop
cleanly.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mqttclient import V311, TestClient

REPO_ROOT = Path(__file__).resolve().parents[3]
UNIT = REPO_ROOT / "config" / "fleetmq.service"
BINARY = os.environ.get("FLEETMQ_BIN") or str(REPO_ROOT / "target" / "debug" / "fleetmq")
LISTEN = re.compile(r'listen socket on 127\.0\.0\.1:(\d+) for listener "test"')

# libseccomp's actions (seccomp.h).
ACT_KILL_PROCESS = 0x80000000
ACT_ERRNO = 0x00050000

# Loads the filter described in argv[1] (JSON), then execs argv[2:].
LAUNCHER = r"""
import ctypes, json, os, sys
spec = json.load(open(sys.argv[1]))
lib = ctypes.CDLL("libseccomp.so.2")
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                 ctypes.c_uint]
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
ctx = lib.seccomp_init(spec["default_action"])
if not ctx:
    sys.exit("seccomp_init failed")
for name in spec["allow"]:
    number = lib.seccomp_syscall_resolve_name(name.encode())
    if number == -1:  # __NR_SCMP_ERROR: not a call libseccomp knows
        continue
    lib.seccomp_rule_add(ctx, 0x7FFF0000, number, 0)  # SCMP_ACT_ALLOW
if lib.seccomp_load(ctx) != 0:
    sys.exit("seccomp_load failed")
os.execv(sys.argv[2], sys.argv[2:])
"""


def syscall_groups():
    """{"@group": [members]} from `systemd-analyze syscall-filter`; a member
    may itself be a group."""
    listing = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"],
                             check=True, capture_output=True, text=True).stdout
    groups, current = {}, None
    for line in listing.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif not line.strip() or not line[0].isspace():
            current = None  # a blank line or the unlisted calls' heading
        elif current is not None and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def expand(name, groups, seen=None):
    seen = set() if seen is None else seen
    if not name.startswith("@"):
        return {name}
    if name in seen:
        return set()
    seen.add(name)
    if name not in groups:
        raise AssertionError(f"systemd-analyze does not know the group {name}")
    calls = set()
    for member in groups[name]:
        calls |= expand(member, groups, seen)
    return calls


def unit_filter(unit_text):
    """The allowed calls and the default action of the unit's filter."""
    groups = syscall_groups()
    allow, allow_list = None, True
    error = None
    for raw in unit_text.splitlines():
        key, _, value = raw.strip().partition("=")
        if key == "SystemCallErrorNumber":
            error = value.strip()
        if key != "SystemCallFilter":
            continue
        value = value.strip()
        deny = value.startswith("~")
        names = value.lstrip("~").split()
        if allow is None:
            assert not deny, "the unit's first SystemCallFilter= is an allow list"
            allow = expand("@default", groups)
        calls = set().union(*(expand(name, groups) for name in names))
        allow = allow - calls if deny else allow | calls
    assert allow, "the unit has no SystemCallFilter="
    if error is None:
        action = ACT_KILL_PROCESS
    else:
        number = getattr(__import__("errno"), error, None)
        assert isinstance(number, int), f"SystemCallErrorNumber={error}: not an errno name"
        action = ACT_ERRNO | number
    return {"allow": sorted(allow), "default_action": action}


class FilteredBroker:
    """fleetmq started through the launcher, with its store on: `host`,
    `port` (what `TestClient` needs), `proc`, `logs()`."""

    def __init__(self, workdir, spec):
        self.host = "127.0.0.1"
        self.port = 0
        self._lines = []
        spec_file = workdir / "filter.json"
        spec_file.write_text(json.dumps(spec))
        config = workdir / "fleetmq.toml"
        config.write_text(
            f'data_dir = "{workdir / "data"}"\n\n[[listener]]\nname = "test"\n'
            f'bind = "127.0.0.1:0"\n\n[store]\nenabled = true\n')
        assert os.access(BINARY, os.X_OK), f"{BINARY} not built (or set FLEETMQ_BIN)"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(spec_file), BINARY,
             "run", "--config", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=dict(os.environ, NO_COLOR="1"), cwd=workdir)
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 10
        while not self.port:
            for line in list(self._lines):
                match = LISTEN.search(line)
                if match:
                    self.port = int(match.group(1))
            if self.port:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"fleetmq did not start (status {self.proc.returncode}; -31 is "
                            "SIGSYS: the filter refused a system call and killed it):\n"
                            + "\n".join(self._lines[-20:]))
            time.sleep(0.05)

    def _read(self):
        for raw in self.proc.stdout:
            self._lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def logs(self):
        return list(self._lines)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


# sched.h: the scheduling policy of a thread that only runs when nothing
# else of the normal policy is runnable.
SCHED_IDLE = 5


def thread_stat(pid, comm_prefix):
    """The fields after the name in /proc/PID/task/TID/stat of the
    process's thread whose name starts so (field 3 first)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        stat = open(f"/proc/{pid}/task/{task}/stat").read()
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        if comm.startswith(comm_prefix):
            return stat[stat.rindex(")") + 2:].split()
    raise AssertionError(f"no thread named {comm_prefix}* in {pid}")


def thread_nice(pid, comm_prefix):
    """The nice value (field 19) of the thread whose name starts so."""
    return int(thread_stat(pid, comm_prefix)[19 - 3])


def thread_policy(pid, comm_prefix):
    """The scheduling policy (field 41) of the thread whose name starts so."""
    return int(thread_stat(pid, comm_prefix)[41 - 3])


@pytest.mark.fleetmq_only("fleetmq's own systemd unit")
def test_the_store_runs_under_the_units_system_call_filter(tmp_path):
    broker = FilteredBroker(tmp_path, unit_filter(UNIT.read_text()))
    proc = broker.proc
    try:
        exercise(broker, proc)
    except (AssertionError, OSError):
        if proc.poll() is not None:
            pytest.fail(f"the broker died with status {proc.returncode} (-31 is SIGSYS: "
                        "the filter refused a system call and killed it)\n"
                        + "\n".join(broker.logs()[-20:]))
        raise
    finally:
        broker.stop()


def exercise(broker, proc):
    """A durable message kept for an offline session and delivered; the
    checkpoint thread under SCHED_IDLE at nice 19; a clean stop."""
    pid = proc.pid
    holder = TestClient(broker, "unit-filter-holder", V311, clean=False)
    holder.connect()
    holder.subscribe("unit/filter", 1)
    holder.disconnect()
    sender = TestClient(broker, "unit-filter-sender", V311)
    sender.connect()
    assert sender.publish("unit/filter", b"durable", qos=1) == 0
    sender.disconnect()
    # The checkpoint thread lowered itself: `sched_setscheduler` and
    # `setpriority` are allowed.
    assert thread_policy(pid, "fleetmq-checkpo") == SCHED_IDLE
    assert thread_nice(pid, "fleetmq-checkpo") == 19
    back = TestClient(broker, "unit-filter-holder", V311, clean=False)
    back.connect()
    assert back.expect_one().payload == b"durable"
    back.disconnect()
    for client in (holder, sender, back):
        client.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0, "\n".join(broker.logs()[-30:])
