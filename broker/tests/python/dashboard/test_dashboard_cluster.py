"""The dashboard's Cluster section in headless Chromium (issue 19, decision
0185): three Debian nats-servers in one JetStream cluster and three fleetmq
nodes on loopback; the page of node c lists the three nodes and shows the
device connected to node b as held by b. A broker without [cluster] says it
runs on its own."""

import shutil
import socket
import subprocess
import time

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

NATS = shutil.which("nats-server")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def nats_cluster(tmp_path):
    if NATS is None:
        pytest.skip("nats-server is not installed (apt-get install nats-server)")
    clients = [free_port() for _ in range(3)]
    routes = [free_port() for _ in range(3)]
    route_urls = ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes)
    procs = []
    for i in range(3):
        conf = tmp_path / f"n{i}.conf"
        conf.write_text(
            f"server_name: n{i}\nlisten: 127.0.0.1:{clients[i]}\n"
            f'jetstream {{ store_dir: "{tmp_path / f"js{i}"}", max_memory_store: 64MB, max_file_store: 256MB }}\n'
            f"cluster {{ name: fleetmq-dash, listen: 127.0.0.1:{routes[i]}, routes: [{route_urls}], no_advertise: true }}\n")
        log = open(tmp_path / f"n{i}.log", "wb")
        procs.append(subprocess.Popen([NATS, "-c", str(conf)], stdout=log, stderr=log))
    yield [f"nats://127.0.0.1:{p}" for p in clients]
    for proc in procs:
        proc.kill()
        proc.wait()


def connect(port, client_id):
    """A bare MQTT 3.1.1 CONNECT (clean session); the socket once CONNACKed."""
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(bytes([0x10, len(body)]) + body)
    assert sock.recv(4) == b"\x20\x02\x00\x00"
    return sock


def test_the_cluster_section_lists_nodes_and_devices(start_fleetmq, nats_cluster, browser):
    servers = ", ".join(f'"{url}"' for url in nats_cluster)
    nodes = {}
    for name in "abc":
        nodes[name] = start_fleetmq(
            f'[cluster]\nbackend = "nats"\nservers = [{servers}]\nnode_name = "{name}"\n'
            "replicas = 3\npublish_timeout_ms = 3000\n")
    for broker in nodes.values():
        broker.wait_for("accepting QoS 1/2 publishes", timeout=40)
    device = connect(nodes["b"].port("plain"), "dev-on-b")

    browser.get(nodes["c"].http + "/")
    # The card re-renders its tables every 3 s: read them in one script
    # each time, so that no element can go stale between lookup and read.
    wait = WebDriverWait(browser, 15, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,))
    holder = wait.until(lambda d: d.execute_script(
        "const r = document.querySelector("
        "'#cluster-devices tbody tr[data-client=\"dev-on-b\"]');"
        "return r ? r.cells[1].textContent : null;"))
    assert holder == "b"

    def nodes_table(d):
        return d.execute_script(
            "return Array.from(document.querySelectorAll('#cluster-nodes tbody tr'))"
            ".map(r => [r.getAttribute('data-node'), r.cells[1].textContent,"
            " r.cells[3].textContent]);")

    # b's client count arrives with its next status write (every 2 s).
    rows = wait.until(lambda d: (lambda t: t if len(t) == 3 and t[1][2] == "1" else None)(
        nodes_table(d)))
    assert [r[0] for r in rows] == ["a", "b", "c"]
    assert [r[1] for r in rows] == ["alive"] * 3
    assert "This is node c" in browser.find_element(By.ID, "cluster-summary").text
    device.close()


def test_a_broker_on_its_own_says_so(start_fleetmq, browser):
    broker = start_fleetmq()
    browser.get(broker.http + "/")
    WebDriverWait(browser, 5, poll_frequency=0.1).until(
        EC.text_to_be_present_in_element((By.ID, "cluster-summary"), "runs on its own"))
    assert browser.find_element(By.ID, "cluster-tables").is_displayed() is False
