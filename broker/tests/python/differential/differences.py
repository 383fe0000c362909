"""Documented differences between fleetmq and Mosquitto 2.0.11 under the
same mosquitto.conf: script name patterns (fnmatch, `CONFIG/GROUP/vN/NAME`)
and why they differ. Each reason is also in docs/mosquitto-differences.md
("Wire differences found by the differential run"). A script that differs
and matches none of these fails the run.

Each pattern names the scripts it excuses as narrowly as the generator's
names allow: a new script that differs must earn its own line.
"""

_ECHO_ORDER = (
    "a PUBLISH whose sender also subscribes to its topic: fleetmq writes the "
    "answer to the PUBLISH (PUBACK/PUBREC) before the copy routed back to the "
    "sender, Mosquitto the copy first; MQTT orders neither (fleetmq answers a "
    "packet before writing what its routing queued)")
_QOS2_ON_RECEIPT = (
    "QoS 2 from a client: fleetmq delivers on PUBLISH, Mosquitto on PUBREL "
    "(both allowed by MQTT 4.3.3); the copy to a subscribed sender comes "
    "before PUBREC in fleetmq, after PUBREL in Mosquitto")
_DISCONNECT_REASON = (
    "protocol violation after CONNECT: both close; fleetmq first sends a 5.0 "
    "DISCONNECT with the reason code (MQTT 5.0 4.13.1 allows it), Mosquitto "
    "closes without a word or with another code (0x81 for 0x82 or the reverse)")
_STRICT_FLAGS = (
    "reserved bits or flags that MQTT requires to be 0 (PINGREQ/DISCONNECT/"
    "PUBREL/SUBSCRIBE fixed-header flags, CONNECT reserved bit, will flags "
    "without a will, QoS 0 with DUP) or a client-sent Subscription Identifier: "
    "fleetmq closes as the specification requires (malformed packet); "
    "Mosquitto accepts them (for MQTT 3.1, also in CONNECT)")
_FILTER_REFUSED = (
    "an invalid topic filter in SUBSCRIBE/UNSUBSCRIBE: fleetmq refuses that "
    "filter (SUBACK 0x80 / 0x8F) and keeps the client, Mosquitto disconnects; "
    "a device's other subscriptions keep working (decision 0137)")
_EMPTY_PAYLOAD = (
    "SUBSCRIBE/UNSUBSCRIBE without any filter: fleetmq closes (MQTT-3.8.3-3, "
    "3.10.3-2: protocol violation), Mosquitto 2.0.11 answers an empty SUBACK "
    "or UNSUBACK to MQTT 3.1 clients")
_WILL_REFUSED_311 = (
    "a will the configuration refuses (retained while retain_available is "
    "false, QoS above max_qos) from a 3.1/3.1.1 client: fleetmq answers CONNACK "
    "3 (server unavailable) before closing, Mosquitto closes without a word")
_WILL_TOPIC_5 = (
    "a 5.0 will topic with a wildcard or empty: fleetmq answers CONNACK 0x90 "
    "(Topic Name invalid) before closing, Mosquitto closes without a word")
_TAKEOVER = (
    "take-over and second CONNECT: fleetmq sends the old 5.0 connection "
    "DISCONNECT 0x8E (MQTT-3.1.4-3) and a second CONNECT DISCONNECT 0x82; "
    "Mosquitto 2.0.11 closes without a word")
_ACK_REASONS = (
    "5.0 acknowledgement reason codes: fleetmq answers PUBREC/PUBREL for an "
    "unknown packet id with 0x92 (Packet Identifier not found) and a QoS 2 "
    "PUBLISH without subscribers with PUBREC 0x10, Mosquitto with 0x00; "
    "publishing to a wildcard or empty topic is DISCONNECT 0x90 (Topic Name "
    "invalid) in fleetmq, 0x82 in Mosquitto; topic alias 0 is 0x94 (Topic "
    "Alias invalid) in fleetmq, 0x81 in Mosquitto")
_SYS = (
    "$SYS/broker/version names the broker; fleetmq also answers it when "
    "retain_available is false (its $SYS topics are not client retained "
    "messages)")
_RETAINED_ORDER = (
    "several retained messages matching one wildcard filter: Mosquitto sends "
    "them in its topic tree's order, fleetmq in its retained index's; MQTT "
    "defines no order")
_EMPTY_ID_5 = (
    "an empty client id with allow_zero_length_clientid false (5.0): fleetmq "
    "refuses with CONNACK 0x85 (Client Identifier not valid), Mosquitto "
    "2.0.11 with 0x80 (unspecified error); 3.1.1 gets return code 2 from both")
_KEEPALIVE_311 = (
    "max_keepalive with a 3.1/3.1.1 client asking for more: refused with "
    "identifier rejected as Mosquitto 2.0.12 and later do (CVE-2020-13849); "
    "2.0.11 accepted it (decision 0126)")
_SUBSCRIBE_CHECKED = (
    "a SUBSCRIBE filter that the ACL's read rules do not cover: fleetmq "
    "refuses that filter in SUBACK (0x80, 5.0 0x87 Not authorized), "
    "Mosquitto 2.0.11 grants every filter and filters each delivery; the "
    "device learns of a wrong filter at once (decision 0030)")
_BAD_CREDENTIALS = (
    "a wrong password, an unknown user or a username without password: "
    "fleetmq answers CONNACK 4 / 0x86 (Bad User Name or Password, the code "
    "MQTT defines for it), Mosquitto 5 / 0x87 (Not authorized); both answer "
    "an unknown user as a wrong password, so neither tells which names exist")
_OVERLAP_ONE_COPY = (
    "a 5.0 client whose two subscriptions with identifiers match one "
    "message: fleetmq sends one copy carrying both Subscription Identifiers, "
    "Mosquitto one copy per subscription; MQTT-3.3.4-2/-3 allow both")
_QOS1_RESEND_AFTER_RESTART = (
    "a QoS 1 message sent but not acknowledged when the broker restarted: "
    "fleetmq sends it again without DUP (it records packet ids in its store "
    "for QoS 2 deliveries only: one write less per QoS 1 delivery), "
    "Mosquitto with DUP; a QoS 1 receiver treats both alike (MQTT 4.3.2: "
    "DUP does not make it a duplicate), and the message still arrives")
_QOS2_REUSE_AFTER_DUP = (
    "a QoS 2 packet id sent again without DUP after its DUP copy, before "
    "PUBREL: fleetmq answers PUBREC again and delivers once (MQTT-4.3.3), "
    "Mosquitto 2.0.11 closes the connection as a protocol error")

DOCUMENTED = {
    # QoS 1 echo order.
    "*/pubsub/v*/sub[12]-pub1-r*": _ECHO_ORDER,
    "*/pubsub/v*/sub0-pub1-r*": _ECHO_ORDER,
    "*/pubsub/v*/sub[012]-pub2-r*": _QOS2_ON_RECEIPT,
    # Closing with a reason code where Mosquitto closes silently.
    "*/publish/v5/auth-packet": _DISCONNECT_REASON,
    "*/publish/v5/disconnect-flags": _DISCONNECT_REASON,
    "*/publish/v5/length-overlong": _DISCONNECT_REASON,
    "*/publish/v5/reserved-type-0": _DISCONNECT_REASON,
    "*/publish/v5/reserved-type-15": _DISCONNECT_REASON,
    "*/subscribe/v5/qos-3": _DISCONNECT_REASON,
    "*/subscribe/v5/packet-id-0": _DISCONNECT_REASON,
    "*/subscribe/v5/no-filters": _DISCONNECT_REASON,
    "*/unsubscribe/v5/none": _DISCONNECT_REASON,
    # Strictness on reserved flags.
    "*/publish/v*/pingreq-flags": _STRICT_FLAGS,
    "*/publish/v*/qos0-dup": _STRICT_FLAGS,
    "*/publish/v[34]/pubrel-flags-0": _STRICT_FLAGS,
    "*/publish/v5/pubrel-flags-0": _DISCONNECT_REASON,
    "*/publish/v5/subscription-id": _STRICT_FLAGS,
    "*/connect/v3/reserved-flag": _STRICT_FLAGS,
    "*/connect/v3/will-qos1-no-will": _STRICT_FLAGS,
    "*/connect/v3/will-retain-no-will": _STRICT_FLAGS,
    "*/first/v3/connect-flags-nibble": _STRICT_FLAGS,
    "*/subscribe/v3/flags-0": _STRICT_FLAGS,
    # Filters.
    "*/subscribe/v*/bad-hash": _FILTER_REFUSED,
    "*/subscribe/v*/bad-plus": _FILTER_REFUSED,
    "*/subscribe/v*/empty-filter": _FILTER_REFUSED,
    "*/subscribe/v*/shared-bad": _FILTER_REFUSED,
    "*/unsubscribe/v*/bad-filter": _FILTER_REFUSED,
    "*/subscribe/v3/no-filters": _EMPTY_PAYLOAD,
    "*/unsubscribe/v3/none": _EMPTY_PAYLOAD,
    # CONNECT refusals.
    "limits/connect/v[34]/will-q[012]-r1": _WILL_REFUSED_311,
    "limits/connect/v[34]/will-q2-r0": _WILL_REFUSED_311,
    "*/connect/v5/will-wildcard": _WILL_TOPIC_5,
    "*/connect/v5/will-empty-topic": _WILL_TOPIC_5,
    "limits/connect/v[34]/keepalive-65535": _KEEPALIVE_311,
    "*/session/v5/takeover": _TAKEOVER,
    "*/first/v5/connect-twice": _TAKEOVER,
    # Reason codes.
    "*/publish/v5/pubrec-unknown": _ACK_REASONS,
    "*/publish/v5/pubrel-unknown": _ACK_REASONS,
    "*/publish/v5/qos2-twice": _ACK_REASONS,
    "*/publish/v5/topic-plus": _ACK_REASONS,
    "*/publish/v5/topic-hash": _ACK_REASONS,
    "*/publish/v5/topic-empty": _ACK_REASONS,
    "*/publish/v5/alias-0": _ACK_REASONS,
    "*/subscribe/v*/sys": _SYS,
    "*/retained/v*/wildcard": _RETAINED_ORDER,
    "legacy/connect/v5/empty-id-*": _EMPTY_ID_5,
    # Features, auth and size configurations.
    "*/features/v[34]/other-client-gets-copy": _ECHO_ORDER,
    "*/features/v5/overlapping-filters": _OVERLAP_ONE_COPY,
    "*/features/v5/subscription-identifier-0": _DISCONNECT_REASON,
    "auth/auth/v*/connect-wrong-password": _BAD_CREDENTIALS,
    "auth/auth/v*/connect-unknown-user": _BAD_CREDENTIALS,
    "auth/auth/v*/connect-username-only": _BAD_CREDENTIALS,
    "auth/auth/v*/subscribe-denied": _SUBSCRIBE_CHECKED,
    "auth/auth/v*/receive-filtered": _SUBSCRIBE_CHECKED,
    "auth/auth/v*/pattern-own-and-other": _SUBSCRIBE_CHECKED,
    "auth/auth/v5/publish-denied-q2": _ACK_REASONS,
    "size/size/v5/q2-101": _ACK_REASONS,
    "persist/persist/v*/inflight-resent": _QOS1_RESEND_AFTER_RESTART,
    "tls/tls/v*/pattern-u": _SUBSCRIBE_CHECKED,
    # max_qos 1 refused the QoS 2 PUBLISH: the PUBREC/PUBREL that follow
    # name an unknown packet id.
    "limits/interrupted/v5/out-q2-after-*": _ACK_REASONS,
    "limits/interrupted/v5/in-q2-before-pubrel": _ACK_REASONS,
    "*/publish/v*/qos2-dup-then-new": _QOS2_REUSE_AFTER_DUP,
}
