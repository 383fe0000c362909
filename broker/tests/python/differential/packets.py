"""Packet bytes for the scripts, built field by field so that malformed and
boundary packets are as easy to write as valid ones. Valid ones come from
`rawmqtt`; this adds what it cannot say (3.1's protocol name, raw flags)."""

import struct

import rawmqtt as r

PROTOCOL = {3: "MQIsdp", 4: "MQTT", 5: "MQTT"}


def connect(client_id, version=4, clean=True, keepalive=60, will=None, props=None,
            username=None, password=None, flags_extra=0, name=None, level=None,
            raw_client_id=None):
    """CONNECT with every field settable; `will` as in rawmqtt."""
    flags = (0x02 if clean else 0) | flags_extra
    if will:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    body = bytearray(r.utf8(name if name is not None else PROTOCOL[version]))
    body += bytes([level if level is not None else version, flags])
    body += struct.pack("!H", keepalive)
    if version == 5:
        body += r.properties(props)
    body += raw_client_id if raw_client_id is not None else r.utf8(client_id)
    if will:
        if version == 5:
            body += r.properties(will.get("props"))
        body += r.utf8(will["topic"]) + r.binary(will.get("payload", b"w"))
    if username is not None:
        body += r.utf8(username)
    if password is not None:
        body += r.binary(password)
    return r.packet(r.CONNECT << 4, body)


def publish(topic, payload=b"p", qos=0, retain=False, packet_id=1, version=4, props=None,
            dup=False):
    return r.publish_packet(topic, payload, qos, retain, packet_id, version, props, dup)


def subscribe(packet_id, filters, version=4, props=None, flags=0x02):
    return r.subscribe_packet(packet_id, filters, version, props, flags)


def unsubscribe(packet_id, filters, version=4, props=None):
    body = bytearray(struct.pack("!H", packet_id))
    if version == 5:
        body += r.properties(props)
    for topic_filter in filters:
        body += r.utf8(topic_filter)
    return r.packet((r.UNSUBSCRIBE << 4) | 0x02, body)


def ack(kind, packet_id, version=4, reason=0):
    return r.ack_packet(kind, packet_id, version, reason)


def disconnect(version=4, reason=0, props=None):
    return r.disconnect_packet(version, reason, props)


PINGREQ = r.PINGREQ_PACKET
