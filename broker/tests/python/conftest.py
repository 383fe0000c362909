"""Harness: start the broker under test, hand tests connected clients.

`FLEETMQ_TEST_BROKER` picks the broker: `fleetmq` (default; binary from
`FLEETMQ_BIN`, else `<repo>/target/debug/fleetmq`) or `mosquitto` (the
reference the suite is checked against). Each test gets its own broker
process, so retained messages, sessions and `$SYS` counters never leak
between tests; per-test settings come from `@pytest.mark.broker_config`.

Markers:
- `broker_config(fleetmq={"limits": {...}}, mosquitto=["option value"])`
- `fleetmq_only(reason)`: skipped against Mosquitto.
- `mosquitto_deviation(reason)`: Mosquitto breaks the specification here;
  expected to fail against it, must pass against fleetmq.
"""

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

# Test modules import tls_helpers' classes as well as load it as a plugin:
# rewrite its asserts whichever comes first.
pytest.register_assert_rewrite("tls_helpers")

from mqttclient import V311, V5, TestClient

REPO_ROOT = Path(__file__).resolve().parents[3]
BROKER_KIND = os.environ.get("FLEETMQ_TEST_BROKER", "fleetmq").strip().lower()
START_TIMEOUT = 10.0
STOP_TIMEOUT = 3.0
LISTEN_LINE = re.compile(
    r'Opening listen socket on 127\.0\.0\.1:(\d+) for listener "test"( \([^)]*\))?\.')
ANSI = re.compile(r"\x1b\[[0-9;]*m")

if BROKER_KIND not in ("fleetmq", "mosquitto"):
    raise pytest.UsageError(
        f"FLEETMQ_TEST_BROKER={BROKER_KIND!r}: expected 'fleetmq' or 'mosquitto'")


def pytest_configure(config):
    config.addinivalue_line("markers", "broker_config(fleetmq=..., mosquitto=...): "
                            "per-test broker settings")
    config.addinivalue_line("markers", "fleetmq_only(reason): skip against Mosquitto")
    config.addinivalue_line("markers", "mosquitto_deviation(reason): Mosquitto "
                            "deviates from the specification; xfail against it")


def pytest_report_header(config):
    return f"broker under test: {BROKER_KIND} ({_binary()})"


def pytest_collection_modifyitems(config, items):
    if BROKER_KIND != "mosquitto":
        return
    for item in items:
        marker = item.get_closest_marker("fleetmq_only")
        if marker:
            reason = marker.args[0] if marker.args else "fleetmq-only feature"
            item.add_marker(pytest.mark.skip(reason=f"fleetmq only: {reason}"))
        marker = item.get_closest_marker("mosquitto_deviation")
        if marker:
            reason = marker.args[0] if marker.args else "Mosquitto deviates"
            item.add_marker(pytest.mark.xfail(reason=f"Mosquitto: {reason}", strict=False))


def _binary():
    if BROKER_KIND == "mosquitto":
        return shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    return os.environ.get("FLEETMQ_BIN") or str(REPO_ROOT / "target" / "debug" / "fleetmq")


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_fleetmq_config(port, overrides):
    """The fleetmq.toml for a test: the base listener and $SYS interval,
    merged with `overrides` ({"section": {"key": value}})."""
    sections = {"mqtt": {"sys_interval_secs": 1}}
    for section, values in (overrides or {}).items():
        sections.setdefault(section, {}).update(values)
    lines = ["[[listener]]", 'name = "test"', f'bind = "127.0.0.1:{port}"', ""]
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)


class Broker:
    """One broker process: `host`, `port`, `logs()`, `restart()`, `stop()`."""

    def __init__(self, kind, workdir, fleetmq_overrides=None, mosquitto_lines=()):
        self.kind = kind
        self.host = "127.0.0.1"
        self.port = 0
        self._workdir = Path(workdir)
        self._fleetmq_overrides = fleetmq_overrides or {}
        self._mosquitto_lines = list(mosquitto_lines)
        self._proc = None
        self._lines = []
        self._lock = threading.Condition()
        self._reader = None

    # lifecycle
    def start(self):
        if self.kind == "fleetmq":
            self._start_fleetmq()
        else:
            self._start_mosquitto()
        return self

    def _spawn(self, argv):
        binary = argv[0]
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            pytest.fail(f"broker binary {binary} not found or not executable "
                        f"(build it, or set FLEETMQ_BIN / FLEETMQ_TEST_BROKER)")
        env = dict(os.environ, NO_COLOR="1")
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, env=env,
                                      cwd=self._workdir)
        self._reader = threading.Thread(target=self._read_output, args=(self._proc,),
                                        daemon=True)
        self._reader.start()

    def _read_output(self, proc):
        for raw in proc.stdout:
            line = ANSI.sub("", raw.decode("utf-8", "replace")).rstrip("\n")
            with self._lock:
                self._lines.append(line)
                self._lock.notify_all()
        with self._lock:
            self._lock.notify_all()

    def _start_fleetmq(self):
        # Port 0 on first start; the same port on restart so clients can return.
        config = self._workdir / "fleetmq.toml"
        config.write_text(render_fleetmq_config(self.port, self._fleetmq_overrides))
        mark = len(self._lines)
        self._spawn([_binary(), "run", "--config", str(config)])
        deadline = time.monotonic() + START_TIMEOUT
        with self._lock:
            while True:
                for line in self._lines[mark:]:
                    match = LISTEN_LINE.search(line)
                    if match:
                        self.port = int(match.group(1))
                        return
                if self._proc.poll() is not None:
                    self._fail_start(f"fleetmq exited with status {self._proc.returncode}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._fail_start(f"no listen line within {START_TIMEOUT}s")
                self._lock.wait(min(remaining, 0.1))

    def _start_mosquitto(self):
        if not self.port:
            self.port = _free_port()
        config = self._workdir / "mosquitto.conf"
        config.write_text("\n".join([
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "sys_interval 1",
            "persistence false",
            "log_dest stderr",
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            *self._mosquitto_lines, ""]))
        self._spawn([_binary(), "-c", str(config)])
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._fail_start(f"mosquitto exited with status {self._proc.returncode}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self._fail_start(f"port {self.port} not accepting within {START_TIMEOUT}s")

    def _fail_start(self, why):
        self.stop()
        pytest.fail(f"{self.kind} did not start: {why}\n--- output ---\n" + "\n".join(self.logs()))

    def stop(self):
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT)
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT)

    def restart(self):
        self.stop()
        return self.start()

    @property
    def running(self):
        return self._proc is not None and self._proc.poll() is None

    # output
    def logs(self):
        with self._lock:
            return list(self._lines)

    def wait_for_log(self, pattern, timeout=3.0):
        """The first log line matching `pattern` (regex), waiting up to `timeout`."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for line in self._lines:
                    if regex.search(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no log line matching {pattern!r} within {timeout}s; log:\n"
                        + "\n".join(self._lines[-40:]))
                self._lock.wait(min(remaining, 0.1))


@pytest.fixture
def broker_kind():
    return BROKER_KIND


@pytest.fixture
def broker(request, tmp_path):
    marker = request.node.get_closest_marker("broker_config")
    fleetmq_overrides = marker.kwargs.get("fleetmq", {}) if marker else {}
    mosquitto_lines = marker.kwargs.get("mosquitto", []) if marker else []
    instance = Broker(BROKER_KIND, tmp_path, fleetmq_overrides, mosquitto_lines)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()
        if getattr(request.node, "rep_call_failed", False):
            print("--- broker output ---\n" + "\n".join(instance.logs()[-60:]))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call_failed = report.failed
    return report


@pytest.fixture
def make_client(broker):
    """Factory: make_client(client_id, protocol=V5, clean=True) -> TestClient
    (not yet connected). Every client is closed at teardown."""
    created = []
    counter = [0]

    def factory(client_id=None, protocol=V5, clean=True):
        if client_id is None:
            counter[0] += 1
            client_id = f"client-{counter[0]}"
        client = TestClient(broker, client_id, protocol, clean)
        created.append(client)
        return client

    yield factory
    for client in created:
        client.close()


@pytest.fixture
def connect(make_client):
    """connect(client_id, protocol=V5, clean=True, keepalive=30, properties=None)
    -> a connected TestClient."""

    def factory(client_id=None, protocol=V5, clean=True, keepalive=30, properties=None):
        client = make_client(client_id, protocol, clean)
        client.connect(keepalive=keepalive, properties=properties)
        return client

    return factory


@pytest.fixture(params=[V311, V5], ids=["v311", "v5"])
def protocol(request):
    """Run the test once with MQTT 3.1.1 and once with MQTT 5.0."""
    return request.param
