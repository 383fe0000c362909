"""The stock Mosquitto command line clients against the broker: the tools
lab users already script with must keep working."""

import os
import shutil
import signal
import subprocess
import time

import pytest

from mqttclient import V5

TOOL_TIMEOUT = 8  # hard cap on any one mosquitto_pub/sub run

pytestmark = pytest.mark.skipif(
    not (shutil.which("mosquitto_pub") and shutil.which("mosquitto_sub")),
    reason="mosquitto_pub/mosquitto_sub not installed")


@pytest.fixture(params=["mqttv311", "mqttv5"])
def cli_version(request):
    return request.param


def _common(broker, version):
    return ["-h", broker.host, "-p", str(broker.port), "-V", version]


def pub(broker, version, *args):
    done = subprocess.run(["mosquitto_pub", *_common(broker, version), *args],
                          capture_output=True, timeout=TOOL_TIMEOUT)
    assert done.returncode == 0, done.stderr.decode()
    return done


def sub_start(broker, version, *args):
    return subprocess.Popen(["mosquitto_sub", *_common(broker, version), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def sub_run(broker, version, *args):
    return subprocess.run(["mosquitto_sub", *_common(broker, version), *args],
                          capture_output=True, timeout=TOOL_TIMEOUT)


def _wait_client_connected(broker, client_id, timeout=3.0):
    broker.wait_for_log(rf"New client connected from .* as {client_id} ", timeout)


def _finish(proc):
    try:
        out, err = proc.communicate(timeout=TOOL_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=TOOL_TIMEOUT)
    return proc.returncode, out, err


def _publish_until_received(broker, version, sub_proc, *pub_args, timeout=4.0):
    """mosquitto_sub has no "subscribed" signal: publish (non-retained) until
    the -C 1 subscriber exits, bounded."""
    deadline = time.monotonic() + timeout
    while sub_proc.poll() is None and time.monotonic() < deadline:
        pub(broker, version, *pub_args)
        time.sleep(0.2)
    return _finish(sub_proc)


def test_pub_sub(broker, cli_version):
    proc = sub_start(broker, cli_version, "-t", "cli/t", "-C", "1", "-W", "5", "-v")
    rc, out, err = _publish_until_received(broker, cli_version, proc,
                                           "-t", "cli/t", "-m", "hello lab")
    assert rc == 0, err.decode()
    assert out.decode().splitlines()[0] == "cli/t hello lab"


def test_qos2(broker, cli_version):
    proc = sub_start(broker, cli_version, "-t", "cli/q2", "-q", "2", "-C", "1", "-W", "5",
                     "-F", "%q %t %p")
    rc, out, err = _publish_until_received(broker, cli_version, proc,
                                           "-t", "cli/q2", "-q", "2", "-m", "exactly once")
    assert rc == 0, err.decode()
    assert out.decode().splitlines()[0] == "2 cli/q2 exactly once"


def test_retained(broker, cli_version):
    pub(broker, cli_version, "-t", "cli/r", "-r", "-q", "1", "-m", "kept")
    done = sub_run(broker, cli_version, "-t", "cli/r", "-C", "1", "-W", "3", "-F", "%r %p")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().splitlines() == ["1 kept"]
    pub(broker, cli_version, "-t", "cli/r", "-r", "-n")  # clear with a null message
    done = sub_run(broker, cli_version, "-t", "cli/r", "-C", "1", "-W", "1")
    assert done.stdout == b"", done.stdout
    assert done.returncode != 0  # timed out without a message


def test_binary_payload_from_file(broker, cli_version, connect, tmp_path):
    payload = bytes(range(256)) * 8
    source = tmp_path / "firmware.bin"
    source.write_bytes(payload)
    receiver = connect("receiver", V5)
    receiver.subscribe("cli/bin", 1)
    pub(broker, cli_version, "-t", "cli/bin", "-q", "1", "-f", str(source))
    msg = receiver.expect_one()
    assert msg.payload == payload and msg.qos == 1


def test_sub_receives_paho_publish_with_count(broker, cli_version, connect):
    proc = sub_start(broker, cli_version, "-t", "cli/count/#", "-C", "3", "-W", "5",
                     "-i", "counter", "-F", "%t=%p")
    _wait_client_connected(broker, "counter")
    sender = connect("sender", V5)
    time.sleep(0.3)  # the SUBSCRIBE follows the CONNECT
    for i in range(3):
        sender.publish(f"cli/count/{i}", f"v{i}".encode(), 1)
    rc, out, err = _finish(proc)
    assert rc == 0, err.decode()
    assert out.decode().splitlines() == ["cli/count/0=v0", "cli/count/1=v1", "cli/count/2=v2"]


def test_will_options(broker, cli_version, connect):
    watcher = connect("watcher", V5)
    watcher.subscribe("cli/will", 1)
    proc = sub_start(broker, cli_version, "-t", "cli/ignored", "-i", "willing", "-W", "10",
                     "--will-topic", "cli/will", "--will-payload", "sub died",
                     "--will-qos", "1", "--will-retain")
    try:
        _wait_client_connected(broker, "willing")
        watcher.expect_none(0.3)  # not while it lives
        os.kill(proc.pid, signal.SIGKILL)  # the OS closes the socket, no DISCONNECT
    finally:
        _finish(proc)
    msg = watcher.expect_one()
    assert (msg.topic, msg.payload, msg.qos) == ("cli/will", b"sub died", 1)
    late = connect("late", V5)
    late.subscribe("cli/will", 1)
    assert late.expect_one().retain is True
