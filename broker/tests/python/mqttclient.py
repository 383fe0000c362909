"""A synchronous face on paho-mqtt for tests.

Each call that has an acknowledgement (connect, subscribe, unsubscribe,
publish at QoS 1/2) waits for it with a bounded timeout and returns what the
broker answered, so tests can assert on reason codes. Received messages land
in a queue; `expect()` and `expect_none()` read it with bounded waits.
"""

import queue
import socket
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions as SubscriptionOptions

V311 = mqtt.MQTTv311
V5 = mqtt.MQTTv5
WAIT = 3.0  # seconds to wait for something that should happen
QUIET = 0.4  # seconds of silence that prove something did not happen

__all__ = ["V311", "V5", "TestClient", "Received", "props", "SubscriptionOptions"]


def props(packet_type, **values):
    """paho Properties for `packet_type` ("CONNECT", "PUBLISH", ...)."""
    result = Properties(getattr(PacketTypes, packet_type))
    for name, value in values.items():
        setattr(result, name, value)
    return result


def _props_dict(properties):
    if properties is None:
        return {}
    out = {}
    for name in properties.names:
        compact = name.replace(" ", "")
        if hasattr(properties, compact):
            out[compact] = getattr(properties, compact)
    return out


@dataclass
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    props: dict = field(default_factory=dict)


class _Acks:
    """Results keyed by message id, filled from paho's network thread."""

    def __init__(self):
        self._cond = threading.Condition()
        self._results = {}

    def put(self, mid, value):
        with self._cond:
            self._results[mid] = value
            self._cond.notify_all()

    def take(self, mid, timeout, what):
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._results, timeout):
                raise AssertionError(f"no {what} for message id {mid} within {timeout}s")
            return self._results.pop(mid)


class TestClient:
    """One paho client bound to the broker under test."""

    __test__ = False  # not a pytest test class

    def __init__(self, broker, client_id="", protocol=V5, clean=True):
        self.broker = broker
        self.protocol = protocol
        self.client_id = client_id
        self.clean = clean
        kwargs = {}
        if protocol != V5:
            kwargs["clean_session"] = clean
        self.paho = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                protocol=protocol, reconnect_on_failure=False, **kwargs)
        self.messages = queue.Queue()
        self.connack = None
        self._connected = threading.Event()
        self._disconnected = threading.Event()
        self.disconnect_reason = None
        self.disconnect_props = {}
        self._subacks = _Acks()
        self._unsubacks = _Acks()
        self._pubacks = _Acks()
        self.paho.on_connect = self._on_connect
        self.paho.on_disconnect = self._on_disconnect
        self.paho.on_message = self._on_message
        self.paho.on_subscribe = lambda c, u, mid, codes, p: self._subacks.put(
            mid, [int(code.value) for code in codes])
        self.paho.on_unsubscribe = lambda c, u, mid, codes, p: self._unsubacks.put(
            mid, [int(code.value) for code in codes])
        self.paho.on_publish = lambda c, u, mid, code, p: self._pubacks.put(
            mid, int(code.value))

    # callbacks (paho network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connack = {"session_present": bool(flags.session_present),
                        "reason": int(reason_code.value),
                        "props": _props_dict(properties)}
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.disconnect_reason = int(reason_code.value) if reason_code is not None else None
        self.disconnect_props = _props_dict(properties)
        self._disconnected.set()

    def _on_message(self, client, userdata, msg):
        self.messages.put(Received(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain),
                                   _props_dict(getattr(msg, "properties", None))))

    # operations
    def will_set(self, topic, payload=b"", qos=0, retain=False, properties=None):
        self.paho.will_set(topic, payload, qos, retain, properties)
        return self

    def connect(self, keepalive=30, properties=None, expect_success=True, timeout=WAIT):
        """Connect and return the CONNACK as a dict (session_present, reason, props)."""
        self._connected.clear()
        self._disconnected.clear()
        kwargs = {}
        if self.protocol == V5:
            kwargs["clean_start"] = self.clean
            kwargs["properties"] = properties
        self.paho.connect(self.broker.host, self.broker.port, keepalive, **kwargs)
        self.paho.loop_start()
        if not self._connected.wait(timeout):
            raise AssertionError(f"{self.client_id!r}: no CONNACK within {timeout}s")
        if expect_success:
            assert self.connack["reason"] == 0, f"CONNACK refused: {self.connack}"
        return self.connack

    def subscribe(self, topic, qos=0, options=None, properties=None, timeout=WAIT):
        """Subscribe (one filter, or a list of (filter, qos|options)); return reason codes."""
        if isinstance(topic, list):
            result, mid = self.paho.subscribe(topic, properties=properties)
        else:
            result, mid = self.paho.subscribe(topic, qos=qos, options=options,
                                              properties=properties)
        assert result == mqtt.MQTT_ERR_SUCCESS, result
        return self._subacks.take(mid, timeout, "SUBACK")

    def unsubscribe(self, topic, properties=None, timeout=WAIT):
        result, mid = self.paho.unsubscribe(topic, properties=properties)
        assert result == mqtt.MQTT_ERR_SUCCESS, result
        return self._unsubacks.take(mid, timeout, "UNSUBACK")

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None, timeout=WAIT):
        """Publish and wait until it is sent (QoS 0) or acknowledged; return
        the PUBACK/PUBREC reason code (0 for QoS 0 and 3.1.1)."""
        info = self.paho.publish(topic, payload, qos, retain, properties)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, info.rc
        return self._pubacks.take(info.mid, timeout, "publish acknowledgement")

    def expect(self, count=1, timeout=WAIT):
        """The next `count` messages, failing if they do not all arrive in time."""
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < count:
            try:
                got.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(
                    f"{self.client_id!r}: expected {count} message(s) within {timeout}s, "
                    f"got {len(got)}: {got}") from None
        return got

    def expect_one(self, timeout=WAIT):
        return self.expect(1, timeout)[0]

    def expect_none(self, timeout=QUIET):
        try:
            msg = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"{self.client_id!r}: expected no message, got {msg}")

    def drain(self, timeout=QUIET):
        """Every message that arrives within `timeout`."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                got.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                return got

    def wait_disconnected(self, timeout=WAIT):
        return self._disconnected.wait(timeout)

    @property
    def is_disconnected(self):
        return self._disconnected.is_set()

    def disconnect(self, reasoncode=None, properties=None, timeout=WAIT):
        """A clean DISCONNECT (optionally with a 5.0 reason code)."""
        rc = None
        if reasoncode is not None:
            from paho.mqtt.reasoncodes import ReasonCode
            rc = ReasonCode(PacketTypes.DISCONNECT, identifier=reasoncode)
        self.paho.disconnect(reasoncode=rc, properties=properties)
        self._disconnected.wait(timeout)
        self._stop_loop()

    def drop(self, timeout=WAIT):
        """Close the TCP connection without DISCONNECT (a network failure)."""
        sock = self.paho.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._disconnected.wait(timeout)
        self._stop_loop()

    def _stop_loop(self):
        # paho's loop_stop() joins without a timeout; bound it.
        thread = getattr(self.paho, "_thread", None)
        self.paho._thread_terminate = True
        if thread is not None and thread is not threading.current_thread():
            thread.join(WAIT)
        self.paho._thread = None

    def close(self):
        """Teardown: disconnect if still connected, never hang."""
        try:
            if self._connected.is_set() and not self._disconnected.is_set():
                self.paho.disconnect()
                self._disconnected.wait(1.0)
        except Exception:
            pass
        self._stop_loop()
        sock = self.paho.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
