"""WebSocket listeners from real clients: paho-mqtt 2.x with
`transport="websockets"` over ws and over wss with mutual TLS (a device
certificate of the test CA), and MQTT.js (npm `mqtt`, its browser bundle)
in a real headless Chromium over ws and wss (one-way TLS) with a username
and password, publishing and subscribing through fleetmq.

The browser trusts the test server for wss through Chromium's
`--ignore-certificate-errors-spki-list` with the SHA-256 hash of the test
server key's SubjectPublicKeyInfo: only that key is accepted, not any
certificate (a blanket `--ignore-certificate-errors` is not used).

MQTT.js is installed at test time with npm into `target/npm` (pinned to
MQTT_JS_VERSION) and served with the page by a local HTTP server. These
tests are fleetmq only (the `pki` fixture skips them on Mosquitto).
"""

import base64
import functools
import http.server
import queue
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

# `pki` is the fixture of tls_helpers (imported, not loaded as a plugin:
# this module also uses its classes).
from tls_helpers import REPO_ROOT, TlsBroker, broker_environment, fleetmq_binary
from tls_helpers import pki  # noqa: F401

WAIT = 5.0
MQTT_JS_VERSION = "5.16.0"
NPM_PREFIX = REPO_ROOT / "target" / "npm"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
USER, PASSWORD = "browser", "s3cret-ws-pass"


class WsBroker(TlsBroker):
    """fleetmq with `test` (plain MQTT), `ws` (WebSockets, path /mqtt),
    `wss-mutual` (client certificate required, its CN is the username) and
    `wss-oneway` (no client certificate); a password file with USER."""

    LISTENERS = ("test", "ws", "wss-mutual", "wss-oneway")

    def config_text(self):
        pki = self._pki
        passwd = self._workdir / "passwd"
        subprocess.run([fleetmq_binary(), "passwd", "--stdin", "-c", str(passwd), USER],
                       input=PASSWORD + "\n", text=True, check=True, timeout=30,
                       env=broker_environment(), capture_output=True)

        def tls(policy):
            return ["[listener.tls]", f'cert = "{pki.server[0]}"', f'key = "{pki.server[1]}"',
                    f'client_ca = "{pki.ca}"', f'client_certs = "{policy}"', ""]

        return "\n".join([
            "[[listener]]", 'name = "test"', 'bind = "127.0.0.1:0"',
            "allow_anonymous = true", "",
            "[[listener]]", 'name = "ws"', 'bind = "127.0.0.1:0"',
            'protocol = "websockets"', 'path = "/mqtt"', "",
            "[[listener]]", 'name = "wss-mutual"', 'bind = "127.0.0.1:0"',
            'protocol = "websockets"', "use_identity_as_username = true", "",
            *tls("required"),
            "[[listener]]", 'name = "wss-oneway"', 'bind = "127.0.0.1:0"',
            'protocol = "websockets"', "",
            *tls("none"),
            "[auth]", f'password_file = "{passwd}"', "",
            "[log]", 'level = "info,fleetmq=debug"', ""])


@pytest.fixture
def ws_broker(tmp_path, pki):
    broker = WsBroker(tmp_path, pki).start()
    yield broker
    broker.stop()


# paho-mqtt

def paho_ws(client_id, pki=None, identity=None, credentials=None, path="/mqtt"):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv311, transport="websockets")
    client.ws_set_options(path=path)
    if pki is not None:
        certfile, keyfile = identity if identity else (None, None)
        client.tls_set(ca_certs=str(pki.ca), certfile=certfile and str(certfile),
                       keyfile=keyfile and str(keyfile))
    if credentials:
        client.username_pw_set(*credentials)
    events = queue.Queue()
    client.on_connect = lambda c, u, flags, reason, props: events.put(("connack", reason))
    client.on_subscribe = lambda c, u, mid, reasons, props: events.put(("suback", reasons))
    client.on_message = lambda c, u, message: events.put(("message", message))
    client.events = events
    return client


def expect(client, kind, timeout=WAIT):
    while True:
        try:
            got, value = client.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{client._client_id!r}: no {kind} within {timeout}s") from None
        if got == kind:
            return value


def connect(client, port, host="127.0.0.1"):
    client.connect(host, port, keepalive=30)
    client.loop_start()
    reason = expect(client, "connack")
    assert not reason.is_failure, f"CONNACK {reason}"


def round_trip(subscriber, publisher, port, topic, host="127.0.0.1"):
    try:
        connect(subscriber, port, host)
        subscriber.subscribe(topic, qos=1)
        assert [r.value for r in expect(subscriber, "suback")] == [1]
        connect(publisher, port, host)
        publisher.publish(topic, b"hello over websockets", qos=1).wait_for_publish(WAIT)
        message = expect(subscriber, "message")
        assert (message.topic, message.payload) == (topic, b"hello over websockets")
    finally:
        for client in (subscriber, publisher):
            client.disconnect()
            client.loop_stop()


def test_paho_over_ws_with_password(ws_broker):
    credentials = (USER, PASSWORD)
    round_trip(paho_ws("paho-ws-sub", credentials=credentials),
               paho_ws("paho-ws-pub", credentials=credentials),
               ws_broker.port("ws"), "lab/paho/ws")
    ws_broker.wait_for_log(r"New client connected from 127\.0\.0\.1:\d+ as paho-ws-pub")


def test_paho_over_ws_needs_the_password(ws_broker):
    client = paho_ws("paho-ws-anon")
    try:
        client.connect("127.0.0.1", ws_broker.port("ws"), keepalive=30)
        client.loop_start()
        assert expect(client, "connack").is_failure
    finally:
        client.loop_stop()


def test_paho_over_wss_with_mutual_tls(ws_broker, pki):
    round_trip(paho_ws("paho-wss-sub", pki, pki.dev_a, path="/"),
               paho_ws("paho-wss-pub", pki, pki.dev_b, path="/"),
               ws_broker.port("wss-mutual"), "lab/paho/wss", host="127.0.0.1")
    # Authenticated by the certificate (no password was sent), over TLS.
    ws_broker.wait_for_log(r"New client connected from .* as paho-wss-pub \(p2, c1, k30\)\.")
    assert ws_broker.setup_line("paho-wss-pub")["auth"] == "mutual"


def test_paho_over_wss_without_certificate_is_refused(ws_broker, pki):
    client = paho_ws("paho-wss-anon", pki, path="/")
    try:
        try:
            client.connect("127.0.0.1", ws_broker.port("wss-mutual"), keepalive=30)
            client.loop_start()
        except OSError:
            pass  # refused inside the TLS handshake
        ws_broker.wait_for_log(
            r'on listener "wss-mutual" failed: .*reason="no_certificate"')
    finally:
        client.loop_stop()


# MQTT.js in headless Chromium

@pytest.fixture(scope="session")
def mqtt_js():
    """The path of MQTT.js's browser bundle, installed with npm if needed."""
    bundle = NPM_PREFIX / "node_modules" / "mqtt" / "dist" / "mqtt.min.js"
    package = NPM_PREFIX / "node_modules" / "mqtt" / "package.json"
    if not (bundle.exists() and f'"version": "{MQTT_JS_VERSION}"' in package.read_text()):
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed to install MQTT.js (apt install npm)")
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix",
                        str(NPM_PREFIX), f"mqtt@{MQTT_JS_VERSION}"],
                       check=True, timeout=300, capture_output=True)
    return bundle


PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script src="mqtt.min.js"></script></head><body><p id="state">loading</p>
<script>
// Subscribes and publishes to itself over `url`; the outcome lands in window.outcome.
window.runMqtt = function (url, username, password, topic) {
  return new Promise(function (resolve) {
    var client = mqtt.connect(url, {
      username: username, password: password, clientId: "mqttjs-" + topic.split("/").pop(),
      protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 4000
    });
    var timer = setTimeout(function () { resolve("timeout"); client.end(true); }, 8000);
    client.on("error", function (e) { clearTimeout(timer); resolve("error: " + e.message); });
    client.on("message", function (t, payload) {
      clearTimeout(timer);
      resolve(t + " " + payload.toString());
      client.end();
    });
    client.on("connect", function () {
      client.subscribe(topic, {qos: 1}, function (err) {
        if (err) { resolve("suback error: " + err.message); return; }
        client.publish(topic, "hello from chromium", {qos: 1});
      });
    });
  });
};
document.getElementById("state").textContent = "ready";
</script></body></html>
"""


@pytest.fixture
def page_server(tmp_path, mqtt_js):
    """http://127.0.0.1:PORT/ serving the page and the bundle."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_text(PAGE)
    shutil.copy(mqtt_js, root / "mqtt.min.js")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()
    server.server_close()


def spki_hash(certificate):
    """base64(SHA-256(SubjectPublicKeyInfo)) of `certificate`, as Chromium's
    --ignore-certificate-errors-spki-list wants it."""
    pubkey = subprocess.run(["openssl", "x509", "-in", str(certificate), "-pubkey", "-noout"],
                            check=True, capture_output=True, timeout=30).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pubkey,
                         check=True, capture_output=True, timeout=30).stdout
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=der,
                            check=True, capture_output=True, timeout=30).stdout
    return base64.b64encode(digest).decode()


@pytest.fixture
def chromium(pki):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="fleetmq-ws-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                 f"--ignore-certificate-errors-spki-list={spki_hash(pki.server[0])}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(10)
    driver.set_script_timeout(15)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def run_in_page(driver, page, url, username, password, topic):
    driver.get(page)
    assert driver.find_element("id", "state").text == "ready", "MQTT.js did not load"
    return driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "window.runMqtt(arguments[0], arguments[1], arguments[2], arguments[3]).then(done);",
        url, username, password, topic)


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_mqtt_js_in_chromium(ws_broker, chromium, page_server, scheme):
    if scheme == "ws":
        url = f"ws://127.0.0.1:{ws_broker.port('ws')}/mqtt"
    else:
        url = f"wss://127.0.0.1:{ws_broker.port('wss-oneway')}/mqtt"
    topic = f"lab/browser/{scheme}"
    outcome = run_in_page(chromium, page_server, url, USER, PASSWORD, topic)
    assert outcome == f"{topic} hello from chromium", outcome
    ws_broker.wait_for_log(rf"as mqttjs-{scheme} .*u'{USER}'")


def test_mqtt_js_with_a_wrong_password_is_refused(ws_broker, chromium, page_server):
    url = f"ws://127.0.0.1:{ws_broker.port('ws')}/mqtt"
    outcome = run_in_page(chromium, page_server, url, USER, "wrong", "lab/browser/nope")
    assert outcome.startswith("error"), outcome
    ws_broker.wait_for_log(r"Refused connection from .* as mqttjs-nope")
