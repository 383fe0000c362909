"""The two brokers of a differential run, started from one mosquitto.conf.

Owns starting and stopping the processes; knows nothing of scripts.
"""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT = 10.0
REPO_ROOT = Path(__file__).resolve().parents[4]


def fleetmq_binary():
    return os.environ.get("FLEETMQ_BIN") or str(REPO_ROOT / "target" / "debug" / "fleetmq")


def mosquitto_binary():
    return shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def conf_text(port, lines):
    """The mosquitto.conf both brokers read: one loopback listener."""
    persistence = [] if any(line.startswith("persistence ") for line in lines) \
        else ["persistence false"]
    return "\n".join([f"listener {port} 127.0.0.1", "allow_anonymous true",
                      *persistence, *lines, ""])


class Broker:
    """One broker process on a loopback port."""

    def __init__(self, kind, workdir, lines):
        self.kind = kind
        self.port = free_port()
        self.workdir = Path(workdir)
        conf = self.workdir / f"{kind}.conf"
        conf.write_text(conf_text(self.port, lines))
        if kind == "mosquitto":
            argv = [mosquitto_binary(), "-c", str(conf)]
        else:
            argv = [fleetmq_binary(), "run", "--mosquitto-conf", str(conf)]
        self.log = open(self.workdir / f"{kind}.log", "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=self.workdir,
                                     env=dict(os.environ, NO_COLOR="1"))
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{kind} exited with {self.proc.returncode}: "
                                   f"{self.logs()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{kind} not listening on {self.port}: {self.logs()}")
                time.sleep(0.05)

    def logs(self):
        self.log.flush()
        return (self.workdir / f"{self.kind}.log").read_text(errors="replace")[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=3)
        self.log.close()
