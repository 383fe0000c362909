"""Helpers for the TLS end-to-end tests in Python: a throw-away PKI made
with the openssl command line, and a fleetmq process with TLS listeners.

Fixtures (a test module loads them with `pytest_plugins = ["tls_helpers"]`):
- `pki`: a `Pki` in the test's tmp_path: `ca.crt`, `server.crt/.key`
  (localhost, 127.0.0.1), device certificates `dev-a`, `dev-b`.
- `tls_broker`: a `TlsBroker` with a one-way listener `tls-oneway`
  (client_certs = "none") and a mutual one `tls-mutual` ("required"),
  logging the per-client setup lines at debug.

These tests are fleetmq only: they skip when FLEETMQ_TEST_BROKER=mosquitto.
Every wait is bounded.
"""

import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT = 10.0
STOP_TIMEOUT = 3.0
LISTEN_LINE = re.compile(r'Opening listen socket on 127\.0\.0\.1:(\d+) for listener "([^"]+)"')
SETUP_LINE = re.compile(
    r"Client (?P<client>\S+) setup: TLS (?P<ms>[0-9.]+) ms \((?P<version>[^,]+), "
    r"(?P<suite>[^,]+), (?P<group>[^,]+), (?P<kind>full|resumed), (?P<auth>\w+)\)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def fleetmq_binary():
    return os.environ.get("FLEETMQ_BIN") or str(REPO_ROOT / "target" / "debug" / "fleetmq")


def broker_environment():
    """The environment for fleetmq: ours, without the harness's own FLEETMQ_
    variables, which the broker would reject as unknown settings."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("FLEETMQ_BIN", "FLEETMQ_TEST_BROKER")}
    env["NO_COLOR"] = "1"
    return env


def _openssl(*args, cwd):
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=30)
    if result.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


class Pki:
    """CA, server and device certificates made by the openssl CLI in `dir`."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.ca = self.dir / "ca.crt"
        self._make_ca()
        self.server = self._issue("server", "/CN=localhost",
                                  "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                  "extendedKeyUsage=serverAuth\n")
        self.dev_a = self._issue("dev-a", "/OU=sensors/CN=dev-a",
                                 "extendedKeyUsage=clientAuth\n")
        self.dev_b = self._issue("dev-b", "/OU=sensors/CN=dev-b",
                                 "extendedKeyUsage=clientAuth\n")

    def _make_ca(self):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
                 "-subj", "/O=fleetmq tests/CN=fleetmq python test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
                 cwd=self.dir)
        os.chmod(self.dir / "ca.key", 0o600)

    def _issue(self, name, subject, extensions):
        """`name.crt` and `name.key` (ECDSA P-256) signed by the CA."""
        (self.dir / f"{name}.ext").write_text(extensions)
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subject, cwd=self.dir)
        os.chmod(self.dir / f"{name}.key", 0o600)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-out", f"{name}.crt",
                 "-extfile", f"{name}.ext", cwd=self.dir)
        return (self.dir / f"{name}.crt", self.dir / f"{name}.key")


def _tls_listener(name, pki, policy):
    return "\n".join([
        "[[listener]]", f'name = "{name}"', 'bind = "127.0.0.1:0"',
        # One-way clients carry no certificate; TLS listeners refuse
        # anonymous clients unless told otherwise.
        "allow_anonymous = true", "",
        "[listener.tls]", f'cert = "{pki.server[0]}"', f'key = "{pki.server[1]}"',
        f'client_ca = "{pki.ca}"', f'client_certs = "{policy}"', ""])


class TlsBroker:
    """A fleetmq process with the listeners `test` (plain), `tls-oneway` and
    `tls-mutual`: `port(name)`, `logs()`, `wait_for_log()`, `setup_line()`."""

    LISTENERS = ("test", "tls-oneway", "tls-mutual")

    def __init__(self, workdir, pki):
        self._workdir = Path(workdir)
        self._pki = pki
        self._ports = {}
        self._lines = []
        self._lock = threading.Condition()
        self._proc = None
        self._reader = None

    def config_text(self):
        """The fleetmq.toml; subclasses with other LISTENERS override it."""
        return "\n".join([
            "[[listener]]", 'name = "test"', 'bind = "127.0.0.1:0"', "",
            _tls_listener("tls-oneway", self._pki, "none"),
            _tls_listener("tls-mutual", self._pki, "required"),
            "[log]", 'level = "info,fleetmq=debug"', ""])

    def start(self):
        config = self._workdir / "fleetmq.toml"
        config.write_text(self.config_text())
        binary = fleetmq_binary()
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            pytest.fail(f"broker binary {binary} not found (build it or set FLEETMQ_BIN)")
        self._proc = subprocess.Popen(
            [binary, "run", "--config", str(config)], cwd=self._workdir,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=broker_environment())
        self._reader = threading.Thread(target=self._read_output, args=(self._proc,),
                                        daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        with self._lock:
            while not all(name in self._ports for name in self.LISTENERS):
                if self._proc.poll() is not None:
                    self._fail(f"fleetmq exited with status {self._proc.returncode}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._fail(f"listeners not open within {START_TIMEOUT}s")
                self._lock.wait(min(remaining, 0.1))
        return self

    def _read_output(self, proc):
        for raw in proc.stdout:
            line = ANSI.sub("", raw.decode("utf-8", "replace")).rstrip("\n")
            with self._lock:
                match = LISTEN_LINE.search(line)
                if match:
                    self._ports[match.group(2)] = int(match.group(1))
                self._lines.append(line)
                self._lock.notify_all()
        with self._lock:
            self._lock.notify_all()

    def _fail(self, why):
        self.stop()
        pytest.fail(f"fleetmq did not start: {why}\n" + "\n".join(self._lines))

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
        proc.stdout.close()

    def port(self, name):
        return self._ports[name]

    def logs(self):
        with self._lock:
            return list(self._lines)

    def wait_for_log(self, pattern, timeout=3.0):
        """The first log line matching `pattern` (regex), within `timeout`."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for line in self._lines:
                    if regex.search(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no log line matching {pattern!r} within {timeout}s;"
                                         " log:\n" + "\n".join(self._lines[-40:]))
                self._lock.wait(min(remaining, 0.1))

    def setup_line(self, client_id, timeout=3.0):
        """The debug setup line of `client_id` as a dict: ms (float), version,
        suite, group, kind (full|resumed), auth (one_way|mutual)."""
        line = self.wait_for_log(rf"Client {re.escape(client_id)} setup: TLS ", timeout)
        match = SETUP_LINE.search(line)
        assert match, f"setup line does not parse: {line}"
        fields = match.groupdict()
        fields["ms"] = float(fields["ms"])
        return fields


@pytest.fixture
def pki(tmp_path):
    if os.environ.get("FLEETMQ_TEST_BROKER", "fleetmq").strip().lower() == "mosquitto":
        pytest.skip("fleetmq only: TLS listeners are configured the fleetmq way")
    directory = tmp_path / "pki"
    directory.mkdir()
    return Pki(directory)


@pytest.fixture
def tls_broker(tmp_path, pki):
    broker = TlsBroker(tmp_path, pki).start()
    yield broker
    broker.stop()
