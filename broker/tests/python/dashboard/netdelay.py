"""Two network namespaces joined through a userspace link that delays
every packet by a known time each way: a real network path whose round
trip the kernel's TCP estimate (TCP_INFO) sees, for machines whose kernel
has no netem (this one has none).

Each namespace gets a TUN device; two threads per direction read IP packets
from one TUN device and write them to the other once `delay` has passed.
Threads in this process enter a namespace with setns(2) only for as long as
it takes to create a socket or a TUN device there (a socket stays in the
namespace it was made in).

Needs root (CI runs as root); `available()` says whether it can run.
"""

import collections
import contextlib
import ctypes
import fcntl
import os
import select
import struct
import subprocess
import threading
import time

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

_libc = ctypes.CDLL(None, use_errno=True)


def available():
    return os.geteuid() == 0 and os.path.exists("/dev/net/tun") and hasattr(_libc, "setns")


def _ip(*args):
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def in_namespace(name, action):
    """Runs `action()` on a thread inside namespace `name`; returns its result."""
    result = {}

    def run():
        try:
            with open(f"/run/netns/{name}") as ns:
                if _libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            result["value"] = action()
        except BaseException as error:  # handed to the caller
            result["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if "error" in result:
        raise result["error"]
    return result.get("value")


def _tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class DelayedLink:
    """Namespaces `<prefix>-a` (10.77.0.1) and `<prefix>-b` (10.77.0.2),
    every packet between them delayed by `delay` seconds."""

    A_ADDR = "10.77.0.1"
    B_ADDR = "10.77.0.2"

    def __init__(self, prefix, delay):
        self.a, self.b = f"{prefix}-a", f"{prefix}-b"
        self.delay = delay
        self._open = True
        for ns in (self.a, self.b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        self._fd_a = in_namespace(self.a, lambda: _tun("fqd-a"))
        self._fd_b = in_namespace(self.b, lambda: _tun("fqd-b"))
        for ns, dev, mine, other in ((self.a, "fqd-a", self.A_ADDR, self.B_ADDR),
                                     (self.b, "fqd-b", self.B_ADDR, self.A_ADDR)):
            _ip("-n", ns, "addr", "add", f"{mine}/32", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "route", "add", f"{other}/32", "dev", dev)
        self._threads = []
        for source, target in ((self._fd_a, self._fd_b), (self._fd_b, self._fd_a)):
            queue = collections.deque()
            ready = threading.Condition()
            self._threads.append(threading.Thread(target=self._read, args=(source, queue, ready), daemon=True))
            self._threads.append(threading.Thread(target=self._write, args=(target, queue, ready), daemon=True))
        for thread in self._threads:
            thread.start()

    def _read(self, fd, queue, ready):
        while self._open:
            # Never block in read(2): close() must be able to stop this
            # thread before the descriptor is closed (see close()).
            readable, _, _ = select.select([fd], [], [], 0.2)
            if not readable:
                continue
            try:
                packet = os.read(fd, 65535)
            except OSError:
                return
            with ready:
                queue.append((time.monotonic() + self.delay, packet))
                ready.notify()

    def _write(self, fd, queue, ready):
        while self._open:
            with ready:
                while not queue and self._open:
                    ready.wait(0.2)
                if not queue:
                    continue
                due, packet = queue.popleft()
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            if not self._open:
                return
            with contextlib.suppress(OSError):
                os.write(fd, packet)

    def close(self):
        # Every thread stops before its descriptor is closed: a thread still
        # holding a number after close(2) would read from, or write an IP
        # packet into, whatever the process opens next under that number (a
        # later test's MQTT socket saw a stray 0x45 byte that way).
        self._open = False
        for thread in self._threads:
            thread.join(self.delay + 5)
        stuck = [t for t in self._threads if t.is_alive()]
        if stuck:  # leave the descriptors open rather than let them be reused
            raise RuntimeError(f"{len(stuck)} link threads did not stop")
        for fd in (self._fd_a, self._fd_b):
            with contextlib.suppress(OSError):
                os.close(fd)
        for ns in (self.a, self.b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
