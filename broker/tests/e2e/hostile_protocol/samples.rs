//! The inputs of the protocol attacks: deterministic garbage, and one
//! well-formed packet of every type a client sends (to be cut, flooded or
//! repeated by the tests). Built by hand with the harness's byte builders;
//! nothing here talks to a broker.

use crate::harness::{
    ack, packet, prop, publish, string, subscribe, unsubscribe, varint, ConnectBuilder,
};

/// A small deterministic generator for garbage (xorshift64*).
pub fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// One well-formed packet of every type a client sends, in both versions:
/// (name, needs a CONNECT first, 5.0, bytes).
pub fn sample_packets() -> Vec<(&'static str, bool, bool, Vec<u8>)> {
    let connect311 = ConnectBuilder::v311("trunc")
        .will("will/t", b"bye", 1, true)
        .build();
    let mut with_login = ConnectBuilder::v311("trunc-login");
    with_login.username = Some("user".into());
    with_login.password = Some(b"secret".to_vec());
    let connect5 = ConnectBuilder::v5("trunc5")
        .property(prop::u32(0x11, 60))
        .property(prop::u16(0x21, 10))
        .will("will/t", b"bye", 1, false)
        .will_property(prop::u32(0x18, 5))
        .build();
    let mut user_property = vec![0x26];
    string(&mut user_property, b"k");
    string(&mut user_property, b"v");
    let publish_props = [prop::u16(0x23, 3), prop::u32(0x02, 60), user_property].concat();
    let mut auth = vec![0x18];
    let mut auth_props = Vec::new();
    let mut method = vec![0x15];
    string(&mut method, b"SCRAM");
    varint(&mut auth_props, method.len() as u32);
    auth_props.extend_from_slice(&method);
    auth.extend_from_slice(&auth_props);
    vec![
        ("CONNECT 3.1.1", false, false, connect311),
        ("CONNECT 3.1.1 login", false, false, with_login.build()),
        ("CONNECT 5.0", false, true, connect5),
        (
            "PUBLISH 3.1.1 QoS 0",
            true,
            false,
            publish("t/a", b"payload").build(),
        ),
        (
            "PUBLISH 3.1.1 QoS 1",
            true,
            false,
            publish("t/a", b"payload").qos(1).packet_id(5).build(),
        ),
        (
            "PUBLISH 3.1.1 QoS 2",
            true,
            false,
            publish("t/a", b"payload")
                .qos(2)
                .packet_id(6)
                .retain(true)
                .build(),
        ),
        (
            "PUBLISH 5.0 QoS 1",
            true,
            true,
            publish("t/a", b"payload")
                .qos(1)
                .packet_id(7)
                .v5(true)
                .properties(&publish_props)
                .build(),
        ),
        ("PUBACK 3.1.1", true, false, ack(0x40, 1)),
        ("PUBREC 3.1.1", true, false, ack(0x50, 1)),
        ("PUBREL 3.1.1", true, false, ack(0x62, 1)),
        ("PUBCOMP 3.1.1", true, false, ack(0x70, 1)),
        (
            "PUBACK 5.0",
            true,
            true,
            packet(0x40, &[0, 1, 0x10, 3, 0x1F, 0, 0]),
        ),
        ("PUBREL 5.0", true, true, packet(0x62, &[0, 1, 0x92, 0])),
        (
            "SUBSCRIBE 3.1.1",
            true,
            false,
            subscribe(1, &[("a/+", 1), ("#", 2)], false, &[]),
        ),
        (
            "SUBSCRIBE 5.0",
            true,
            true,
            subscribe(2, &[("a/#", 0x2E)], true, &prop::varint(0x0B, 9)),
        ),
        (
            "UNSUBSCRIBE 3.1.1",
            true,
            false,
            unsubscribe(3, &["a/+", "b"], false),
        ),
        (
            "UNSUBSCRIBE 5.0",
            true,
            true,
            unsubscribe(4, &["a/#"], true),
        ),
        ("PINGREQ", true, false, vec![0xC0, 0x00]),
        ("DISCONNECT 3.1.1", true, false, vec![0xE0, 0x00]),
        (
            "DISCONNECT 5.0",
            true,
            true,
            packet(0xE0, &[0x04, 5, 0x11, 0, 0, 0, 0]),
        ),
        ("AUTH 5.0", true, true, packet(0xF0, &auth)),
    ]
}

/// Length of the fixed header of a packet we built (one-byte type plus the
/// variable byte integer).
pub fn header_len(bytes: &[u8]) -> usize {
    1 + bytes[1..].iter().position(|b| b & 0x80 == 0).unwrap() + 1
}
