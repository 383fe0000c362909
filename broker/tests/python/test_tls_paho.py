"""TLS end to end from Python: paho-mqtt 2.x over the `ssl` module
(OpenSSL), one-way and mutual, and TLS session resumption with plain `ssl`
sockets (`session=` of the first connection), TLS 1.2 and 1.3.

The broker's debug setup line tells how each client was authenticated and
whether its handshake was `full` or `resumed`.
"""

import queue
import socket
import ssl

import paho.mqtt.client as mqtt
import pytest

# The `pki` and `tls_broker` fixtures.
pytest_plugins = ["tls_helpers"]

WAIT = 5.0


def paho_client(client_id, pki, identity=None):
    """A paho client trusting the test CA, presenting `identity` (cert, key)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv311)
    certfile, keyfile = identity if identity else (None, None)
    client.tls_set(ca_certs=str(pki.ca), certfile=certfile and str(certfile),
                   keyfile=keyfile and str(keyfile))
    events = queue.Queue()
    client.on_connect = lambda c, u, flags, reason, props: events.put(("connack", reason))
    client.on_subscribe = lambda c, u, mid, reasons, props: events.put(("suback", reasons))
    client.on_message = lambda c, u, message: events.put(("message", message))
    client.events = events
    return client


def expect(client, kind, timeout=WAIT):
    """The next event of `kind` from `client`, skipping others, within `timeout`."""
    while True:
        try:
            got, value = client.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{client._client_id!r}: no {kind} within {timeout}s") from None
        if got == kind:
            return value


def connect(client, port):
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    reason = expect(client, "connack")
    assert not reason.is_failure, f"CONNACK {reason}"


def pub_sub_round_trip(broker, listener, pki, sub_identity, pub_identity):
    port = broker.port(listener)
    subscriber = paho_client("paho-sub", pki, sub_identity)
    publisher = paho_client("paho-pub", pki, pub_identity)
    try:
        connect(subscriber, port)
        subscriber.subscribe("fleet/paho", qos=1)
        reasons = expect(subscriber, "suback")
        assert [r.value for r in reasons] == [1]
        connect(publisher, port)
        publisher.publish("fleet/paho", b"hello from paho", qos=1).wait_for_publish(WAIT)
        message = expect(subscriber, "message")
        assert message.topic == "fleet/paho"
        assert message.payload == b"hello from paho"
    finally:
        for client in (subscriber, publisher):
            client.disconnect()
            client.loop_stop()
    return broker.setup_line("paho-sub"), broker.setup_line("paho-pub")


def test_paho_mutual_tls_pub_sub(tls_broker, pki):
    sub, pub = pub_sub_round_trip(tls_broker, "tls-mutual", pki, pki.dev_a, pki.dev_b)
    assert sub["auth"] == "mutual"
    assert pub["auth"] == "mutual"


def test_paho_one_way_tls_pub_sub(tls_broker, pki):
    sub, pub = pub_sub_round_trip(tls_broker, "tls-oneway", pki, None, None)
    assert sub["auth"] == "one_way"
    assert pub["auth"] == "one_way"


def test_paho_without_certificate_is_refused_by_mutual_listener(tls_broker, pki):
    client = paho_client("paho-anon", pki)
    try:
        try:
            client.connect("127.0.0.1", tls_broker.port("tls-mutual"), keepalive=30)
        except (ssl.SSLError, OSError):
            pass  # refused inside the handshake (TLS 1.2)
        else:
            client.loop_start()
        tls_broker.wait_for_log(r'on listener "tls-mutual" failed: .*reason="no_certificate"')
        connack = None
        try:
            connack = expect(client, "connack", timeout=0.5)
        except AssertionError:
            pass  # no CONNACK at all, as expected
        assert connack is None or connack.is_failure, "a client without certificate got in"
    finally:
        client.loop_stop()


CONNECT_TEMPLATE = bytes([0x00, 0x04]) + b"MQTT" + bytes([0x04, 0x02, 0x00, 0x1E])


def mqtt_connect(client_id):
    """A 3.1.1 CONNECT (clean session, keep alive 30)."""
    body = CONNECT_TEMPLATE + len(client_id).to_bytes(2, "big") + client_id.encode()
    return bytes([0x10, len(body)]) + body


def tls_connect_once(port, context, client_id, session=None):
    """CONNECT/CONNACK over a new TLS connection; returns (session, reused)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    with context.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
        tls.sendall(mqtt_connect(client_id))
        connack = b""
        while len(connack) < 4:
            chunk = tls.recv(4 - len(connack))
            assert chunk, f"{client_id}: connection closed before CONNACK"
            connack += chunk
        assert connack == b"\x20\x02\x00\x00", connack
        tls.sendall(b"\xe0\x00")  # DISCONNECT
        # TLS 1.3 tickets arrive after the handshake; reading CONNACK read them.
        return tls.session, tls.session_reused


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=["tls12", "tls13"])
def test_ssl_session_resumption(tls_broker, pki, version):
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(pki.dev_a[0]), str(pki.dev_a[1]))
    context.minimum_version = version
    context.maximum_version = version
    port = tls_broker.port("tls-mutual")
    session, reused = tls_connect_once(port, context, "py-first")
    assert not reused
    assert session is not None
    _, reused = tls_connect_once(port, context, "py-second", session=session)
    assert reused, "the ssl module did not resume the session"
    full = tls_broker.setup_line("py-first")
    resumed = tls_broker.setup_line("py-second")
    print(f"{full['version']}: full handshake {full['ms']:.3f} ms, "
          f"resumed {resumed['ms']:.3f} ms")
    assert full["kind"] == "full"
    assert resumed["kind"] == "resumed"
    assert resumed["auth"] == "mutual"
    assert resumed["version"] == full["version"]
