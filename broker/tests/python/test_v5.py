"""MQTT 5.0 features: topic aliases, message expiry, Receive Maximum,
Maximum Packet Size, properties pass-through, Server Keep Alive and the
reason codes of PUBACK/PUBREC, SUBACK and UNSUBACK."""

import time

import pytest

import rawmqtt
from mqttclient import V5, props


def test_topic_alias_from_client(connect):
    sub = connect("sub", V5)
    sub.subscribe("alias/long/topic/name", 1)
    pub = connect("pub", V5)
    assert pub.connack["props"].get("TopicAliasMaximum", 0) >= 1
    pub.publish("alias/long/topic/name", b"first", 1, properties=props("PUBLISH", TopicAlias=1))
    pub.publish("", b"second", 1, properties=props("PUBLISH", TopicAlias=1))
    got = sub.expect(2)
    assert [(m.topic, m.payload) for m in got] == [
        ("alias/long/topic/name", b"first"), ("alias/long/topic/name", b"second")]
    assert not pub.is_disconnected


def test_topic_alias_above_maximum_is_rejected(broker, connect):
    raw = rawmqtt.RawClient(broker.host, broker.port, version=5)
    try:
        maximum = raw.connect("aliaser").props.get(rawmqtt.TOPIC_ALIAS_MAXIMUM, 0)
        raw.publish("t", b"x", 0, props=[(rawmqtt.TOPIC_ALIAS, maximum + 1)])
        before_close = raw.wait_closed()
        assert [rawmqtt.disconnect_reason(p) for p in before_close] == [0x94]
    finally:
        raw.close()


def test_message_expiry_for_offline_session(make_client, connect):
    session = props("CONNECT", SessionExpiryInterval=60)
    client = make_client("dev", V5, clean=False)
    client.connect(properties=session)
    client.subscribe("exp/#", 1)
    client.disconnect()
    pub = connect("pub", V5)
    pub.publish("exp/short", b"expires", 1, properties=props("PUBLISH", MessageExpiryInterval=1))
    pub.publish("exp/long", b"stays", 1, properties=props("PUBLISH", MessageExpiryInterval=60))
    pub.publish("exp/none", b"forever", 1)
    time.sleep(2.2)
    back = make_client("dev", V5, clean=False)
    assert back.connect(properties=session)["session_present"] is True
    got = {m.topic: m for m in back.drain(0.8)}
    assert sorted(got) == ["exp/long", "exp/none"]
    # The forwarded expiry is the remaining lifetime, not the original.
    assert 50 <= got["exp/long"].props["MessageExpiryInterval"] <= 58
    assert "MessageExpiryInterval" not in got["exp/none"].props


def test_receive_maximum_from_client_is_respected(broker, connect):
    raw = rawmqtt.RawClient(broker.host, broker.port, version=5)
    try:
        raw.connect("slow", props=[(rawmqtt.RECEIVE_MAXIMUM, 1)])
        assert raw.subscribe([("rm/t", 1)]) == [1]
        pub = connect("pub", V5)
        for i in range(3):
            pub.publish("rm/t", f"m{i}".encode(), 1)
        received = []
        for _ in range(3):
            msg = raw.parse_publish(raw.recv_kind(rawmqtt.PUBLISH))
            received.append(msg.payload)
            # With one unacknowledged QoS 1 message the broker must wait.
            with pytest.raises(TimeoutError):
                raw.recv(0.4)
            raw.send(rawmqtt.ack_packet(rawmqtt.PUBACK, msg.packet_id, 5))
        assert received == [b"m0", b"m1", b"m2"]
    finally:
        raw.close()


def test_maximum_packet_size_from_client(connect):
    small = connect("small", V5, properties=props("CONNECT", MaximumPacketSize=128))
    small.subscribe("mps/#", 1)
    pub = connect("pub", V5)
    pub.publish("mps/big", b"B" * 500, 1)
    pub.publish("mps/small", b"tiny", 1)
    got = small.drain(0.8)
    assert [(m.topic, m.payload) for m in got] == [("mps/small", b"tiny")]
    assert not small.is_disconnected


def test_properties_passed_through(connect):
    sub = connect("sub", V5)
    sub.subscribe("pp/t", 1)
    user = [("fleet", "lab-3"), ("fw", "1.2.0"), ("fleet", "second value")]
    publish_props = props("PUBLISH", UserProperty=user, ContentType="application/cbor",
                          ResponseTopic="pp/reply", CorrelationData=b"\x01\x02\x03",
                          PayloadFormatIndicator=0)
    connect("pub", V5).publish("pp/t", b"\xa1\x01\x02", 1, properties=publish_props)
    msg = sub.expect_one()
    assert msg.payload == b"\xa1\x01\x02"
    assert msg.props["UserProperty"] == user
    assert msg.props["ContentType"] == "application/cbor"
    assert msg.props["ResponseTopic"] == "pp/reply"
    assert msg.props["CorrelationData"] == b"\x01\x02\x03"


@pytest.mark.broker_config(fleetmq={"limits": {"max_keepalive": 10}},
                           mosquitto=["max_keepalive 10"])
@pytest.mark.parametrize("asked,told", [(60, 10), (0, 10), (5, None)])
def test_server_keep_alive(make_client, asked, told):
    client = make_client("ka", V5)
    connack = client.connect(keepalive=asked)
    assert connack["props"].get("ServerKeepAlive") in ((told,) if told else (None, asked))


def test_puback_and_pubrec_reason_codes(connect):
    pub = connect("pub", V5)
    assert pub.publish("nobody/listens", b"x", 1) in (0x00, 0x10)
    assert pub.publish("nobody/listens", b"x", 2) in (0x00, 0x10)
    sub = connect("sub", V5)
    sub.subscribe("someone/listens", 2)
    assert pub.publish("someone/listens", b"x", 1) == 0x00
    assert pub.publish("someone/listens", b"y", 2) == 0x00
    assert [m.payload for m in sub.expect(2)] == [b"x", b"y"]


def test_suback_and_unsuback_reason_codes(connect):
    client = connect("sub", V5)
    assert client.subscribe([("s/0", 0), ("s/1", 1), ("s/2", 2)]) == [0, 1, 2]
    assert client.unsubscribe(["s/0", "s/never"]) == [0x00, 0x11]
    assert client.unsubscribe("s/1") == [0x00]
