"""Helpers for the dashboard tests: a throw-away PKI (openssl CLI), a
fleetmq process with TLS listeners and the dashboard on free ports, a tiny
MQTT-over-TLS client (ssl module, hand-built packets), HTTP helpers.

Every wait is bounded; a test that hangs is a failing test.
"""

import json
import os
import re
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[4]
START_TIMEOUT = 10.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def binary():
    return os.environ.get("FLEETMQ_BIN") or str(REPO_ROOT / "target" / "debug" / "fleetmq")


# ---------------------------------------------------------------------------
# PKI
# ---------------------------------------------------------------------------

def _openssl(cwd, *args):
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {done.stderr}")
    return done.stdout


class Pki:
    """A CA, a server certificate for 127.0.0.1/localhost, client certs."""

    def __init__(self, folder, ca_name="fleetmq test CA"):
        self.dir = Path(folder)
        self.dir.mkdir(parents=True, exist_ok=True)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        _openssl(self.dir, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt",
                 "-days", "365", "-subj", f"/CN={ca_name}/O=fleetmq tests",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        (self.dir / "server.ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        _openssl(self.dir, "req", *ec, "-keyout", "server.key", "-out", "server.csr",
                 "-subj", "/CN=localhost")
        _openssl(self.dir, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt",
                 "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt",
                 "-days", "365", "-extfile", "server.ext")
        self.ca = self.dir / "ca.crt"
        self.server_cert = self.dir / "server.crt"
        self.server_key = self.dir / "server.key"

    def client(self, cn, days=365):
        """(cert, key, serial) of a client certificate CN=cn."""
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        (self.dir / f"{cn}.ext").write_text("extendedKeyUsage=clientAuth\n")
        _openssl(self.dir, "req", *ec, "-keyout", f"{cn}.key", "-out", f"{cn}.csr",
                 "-subj", f"/CN={cn}/OU=devices")
        _openssl(self.dir, "x509", "-req", "-in", f"{cn}.csr", "-CA", "ca.crt",
                 "-CAkey", "ca.key", "-CAcreateserial", "-out", f"{cn}.crt",
                 "-days", str(days), "-extfile", f"{cn}.ext")
        serial = _openssl(self.dir, "x509", "-noout", "-serial", "-in", f"{cn}.crt")
        return (self.dir / f"{cn}.crt", self.dir / f"{cn}.key",
                serial.strip().split("=", 1)[1].upper())

    def listeners_toml(self):
        """An `mtls` listener (client certificates required) and a `oneway`
        one (never asks), both on free ports."""
        tls = f'cert = "{self.server_cert}"\nkey = "{self.server_key}"\n'
        return (
            '[[listener]]\nname = "mtls"\nbind = "127.0.0.1:0"\n[listener.tls]\n'
            f'{tls}client_ca = "{self.ca}"\nclient_certs = "required"\n\n'
            '[[listener]]\nname = "oneway"\nbind = "127.0.0.1:0"\nallow_anonymous = true\n[listener.tls]\n'
            f'{tls}client_certs = "none"\n\n')


# ---------------------------------------------------------------------------
# The broker process
# ---------------------------------------------------------------------------

class Fleetmq:
    """A fleetmq process; `http` is its dashboard's base URL."""

    def __init__(self, workdir, toml, prefix=()):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "fleetmq.toml"
        config.write_text(toml)
        self._lines = []
        self._cond = threading.Condition()
        # FLEETMQ_* variables would be read as settings (FLEETMQ_BIN too).
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETMQ_")}
        env.update(NO_COLOR="1", RUST_LOG="info")
        self._proc = subprocess.Popen(
            [*prefix, binary(), "run", "--config", str(config)], cwd=self.workdir,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=env)
        threading.Thread(target=self._read, daemon=True).start()
        match = self.wait_for(r"HTTP dashboard listening on (https?)://([^/]+)/")
        self.http = f"{match.group(1)}://{match.group(2)}"

    def _read(self):
        for raw in self._proc.stdout:
            with self._cond:
                self._lines.append(ANSI.sub("", raw.decode("utf-8", "replace")).rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def logs(self):
        with self._cond:
            return "\n".join(self._lines)

    def wait_for(self, pattern, timeout=START_TIMEOUT):
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines:
                    found = regex.search(line)
                    if found:
                        return found
                if self._proc.poll() is not None:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.1))
        status = self._proc.poll()
        why = (f"exited with status {status} before it could" if status is not None
               else f"did not, within {timeout}s,")
        raise AssertionError(f"fleetmq {why} log /{pattern}/:\n{self.logs()}")

    def port(self, listener):
        found = self.wait_for(
            rf'Opening listen socket on 127\.0\.0\.1:(\d+) for listener "{re.escape(listener)}"')
        return int(found.group(1))

    def stop(self):
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


# ---------------------------------------------------------------------------
# MQTT over TLS
# ---------------------------------------------------------------------------

def _utf8(text):
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def _packet(first, body):
    out, length = bytearray([first]), len(body)
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out) + body


def _read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed by the broker")
        data += chunk
    return data


def tls_context(pki, cert=None, key=None):
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert:
        context.load_cert_chain(str(cert), str(key))
    return context


class TlsClient:
    """An MQTT 3.1.1 client over TLS."""

    def __init__(self, port, context, client_id, session=None, keepalive=60, host="127.0.0.1"):
        raw = socket.create_connection((host, port), timeout=5)
        self.sock = context.wrap_socket(raw, server_hostname="localhost", session=session)
        self.local = "%s:%d" % self.sock.getsockname()[:2]
        body = _utf8("MQTT") + bytes([4, 0x02]) + struct.pack("!H", keepalive) + _utf8(client_id)
        self.sock.sendall(_packet(0x10, body))
        connack = _read_exact(self.sock, 4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"CONNACK refused: {connack!r}")
        # A round trip, so TLS 1.3 tickets sent after the handshake are read.
        self.ping()

    @property
    def session(self):
        return self.sock.session

    @property
    def resumed(self):
        return self.sock.session_reused

    def ping(self):
        self.sock.sendall(b"\xc0\x00")
        if _read_exact(self.sock, 2) != b"\xd0\x00":
            raise ConnectionError("no PINGRESP")

    def subscribe(self, topic_filter, qos=1):
        self.sock.sendall(_packet(0x82, struct.pack("!H", 1) + _utf8(topic_filter) + bytes([qos])))
        suback = _read_exact(self.sock, 5)
        if suback[0] != 0x90:
            raise ConnectionError(f"expected SUBACK, got {suback!r}")

    def wait_closed(self, timeout=5):
        """True when the broker closes the connection within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(4096):
                pass
            return True
        except (ssl.SSLError, ConnectionError, OSError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.sendall(b"\xe0\x00")
            self.sock.close()
        except OSError:
            pass


def refused(port, context, client_id):
    """True when the broker refuses the TLS handshake (or closes at once)."""
    try:
        client = TlsClient(port, context, client_id)
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    client.close()
    return False


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

def http(method, url, token=None, data=None, headers=None):
    """(status, headers, body text) without raising on 4xx/5xx."""
    request = urllib.request.Request(url, method=method, data=data, headers=dict(headers or {}))
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def get_json(url, token=None):
    status, _, body = http("GET", url, token)
    assert status == 200, f"GET {url}: {status} {body}"
    return json.loads(body)


def eventually(check, what, timeout=5.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
