#![allow(clippy::unwrap_used, clippy::panic)]

use alloc::vec;
use alloc::vec::Vec;

use super::*;

#[test]
fn connect_with_will_user_and_password_matches_the_spec_bytes() {
    let bytes = connect(&Connect {
        client_id: "esp32_807A98",
        keep_alive: 60,
        clean_session: true,
        will: Some(Will {
            topic: "s",
            message: b"offline",
            qos: 1,
            retain: true,
        }),
        username: Some("u"),
        password: Some(b"p"),
    });
    let mut expected = vec![
        0x10,
        42,
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        4,
        0b1110_1110,
        0,
        60,
    ];
    expected.extend_from_slice(&[0, 12]);
    expected.extend_from_slice(b"esp32_807A98");
    expected.extend_from_slice(&[0, 1, b's', 0, 7]);
    expected.extend_from_slice(b"offline");
    expected.extend_from_slice(&[0, 1, b'u', 0, 1, b'p']);
    assert_eq!(bytes, expected);
}

#[test]
fn publish_and_subscribe_bytes() {
    assert_eq!(
        publish("a/b", b"hi", 1, true, 7),
        vec![0x33, 9, 0, 3, b'a', b'/', b'b', 0, 7, b'h', b'i']
    );
    assert_eq!(publish("t", b"", 0, false, 7), vec![0x30, 3, 0, 1, b't']);
    assert_eq!(subscribe(2, "c", 1), vec![0x82, 6, 0, 2, 0, 1, b'c', 1]);
    assert_eq!(ack(0x40, 258), vec![0x40, 2, 1, 2]);
    assert_eq!(pingreq(), vec![0xC0, 0]);
    assert_eq!(disconnect(), vec![0xE0, 0]);
}

#[test]
fn long_payloads_use_multi_byte_lengths_and_round_trip() {
    let payload: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    let bytes = publish("topic", &payload, 1, false, 9);
    assert_eq!(&bytes[..3], &[0x32, 0xB5, 0x02]); // 309 = 0x35 + 2*128
    let (packet, used) = decode(&bytes, 1024).unwrap().unwrap();
    assert_eq!(used, bytes.len());
    assert_eq!(
        packet,
        Packet::Publish {
            topic: "topic",
            payload: &payload,
            qos: 1,
            retain: false,
            packet_id: Some(9)
        }
    );
}

#[test]
fn broker_packets_decode() {
    let cases: Vec<(Vec<u8>, Packet<'static>)> = vec![
        (
            vec![0x20, 2, 0, 0],
            Packet::ConnAck {
                session_present: false,
                code: 0,
            },
        ),
        (
            vec![0x20, 2, 1, 5],
            Packet::ConnAck {
                session_present: true,
                code: 5,
            },
        ),
        (vec![0x40, 2, 0, 1], Packet::PubAck(1)),
        (vec![0x62, 2, 0, 3], Packet::PubRel(3)),
        (
            vec![0x90, 3, 0, 2, 0x80],
            Packet::SubAck {
                packet_id: 2,
                codes: &[0x80],
            },
        ),
        (vec![0xB0, 2, 0, 4], Packet::UnsubAck(4)),
        (vec![0xD0, 0], Packet::PingResp),
    ];
    for (bytes, want) in cases {
        let (got, used) = decode(&bytes, 64).unwrap().unwrap();
        assert_eq!((got, used), (want, bytes.len()));
    }
}

#[test]
fn partial_packets_wait_for_more() {
    let bytes = publish("a", b"xyz", 0, false, 0);
    for cut in 0..bytes.len() {
        assert_eq!(decode(&bytes[..cut], 64), Ok(None), "cut at {cut}");
    }
}

#[test]
fn malformed_packets_are_errors_not_panics() {
    let bad: [&[u8]; 10] = [
        &[0x21, 2, 0, 0],             // CONNACK flags
        &[0x20, 3, 0, 0, 0],          // CONNACK length
        &[0x20, 2, 2, 0],             // CONNACK reserved ack flag
        &[0x36, 5, 0, 1, b'a', 0, 1], // QoS 3
        &[0x30, 3, 0, 5, b'a'],       // topic longer than body
        &[0x30, 3, 0, 1, b'#'],       // wildcard in topic name
        &[0x40, 2, 0, 0],             // packet id 0
        &[0x90, 3, 0, 1, 7],          // bad SUBACK code
        &[0x10, 0],                   // CONNECT from a server
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF],
    ];
    for bytes in bad {
        assert!(decode(bytes, 1 << 20).is_err(), "{bytes:?} accepted");
    }
    assert_eq!(
        decode(&[0x30, 0x80, 0x01], 64),
        Err(DecodeError::TooLarge(131))
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut seed = 0x9E37_79B9u32;
    for _ in 0..20_000 {
        let mut buf = [0u8; 12];
        for b in &mut buf {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            *b = seed as u8;
        }
        let _ = decode(&buf, 64);
    }
}
