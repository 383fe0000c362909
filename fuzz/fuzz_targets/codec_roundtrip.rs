//! decode -> encode -> decode: every packet the decoder accepts encodes
//! (for the same protocol version) to bytes that decode to the same
//! packet, `encoded_len` is the encoded size, and the re-encoding is
//! byte-identical (the encoder is deterministic).
//!
//! Input: byte 0 picks before-CONNECT or 3.1 / 3.1.1 / 5.0, the rest is
//! decoded as one stream.
#![no_main]

use bytes::BytesMut;
use fleetmq_codec::{decode_packet, encode_packet, encoded_len, Packet, ProtocolVersion};
use libfuzzer_sys::fuzz_target;

const MAX: u32 = 268_435_460;

fn version_of(selector: u8) -> Option<ProtocolVersion> {
    match selector % 4 {
        0 => None,
        1 => Some(ProtocolVersion::V3_1),
        2 => Some(ProtocolVersion::V3_1_1),
        _ => Some(ProtocolVersion::V5),
    }
}

fn check(packet: &Packet, decoded_with: Option<ProtocolVersion>, version: ProtocolVersion) {
    let mut encoded = BytesMut::new();
    if let Err(error) = encode_packet(packet, version, &mut encoded) {
        panic!("decoded {packet:?} does not encode for {version:?}: {error}");
    }
    assert_eq!(
        encoded_len(packet, version).ok(),
        Some(encoded.len()),
        "encoded_len disagrees with encode_packet"
    );
    let bytes = encoded.clone();
    let again = match decode_packet(&mut encoded, decoded_with, MAX) {
        Ok(Some(again)) => again,
        other => panic!("re-encoded {packet:?} as {bytes:?} does not decode: {other:?}"),
    };
    assert!(encoded.is_empty(), "re-encoded packet left bytes over");
    assert_eq!(&again, packet, "round trip changed the packet ({bytes:?})");
    let mut twice = BytesMut::new();
    if encode_packet(&again, version, &mut twice).is_err() || twice != bytes {
        panic!("re-encoding is not deterministic for {packet:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let mut version = version_of(selector);
    let mut buf = BytesMut::from(body);
    while let Ok(Some(packet)) = decode_packet(&mut buf, version, MAX) {
        let decoded_with = version;
        let speaking = match &packet {
            Packet::Connect(connect) => connect.protocol,
            _ => match version {
                Some(v) => v,
                None => return,
            },
        };
        check(&packet, decoded_with, speaking);
        version = Some(speaking);
    }
});
