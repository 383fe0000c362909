//! MQTT decoding of hostile bytes, 3.1, 3.1.1 and 5.0: `decode_packet` must
//! never panic, and framing must not depend on how the bytes arrive: fed in
//! chunks (as a socket delivers them), the input decodes to the same
//! packets and the same error as fed whole.
//!
//! Input: byte 0 picks the state (before CONNECT, or after it as 3.1,
//! 3.1.1 or 5.0), byte 1 the packet size limit and the chunk size, the
//! rest is what the peer sends.
#![no_main]

use bytes::BytesMut;
use fleetmq_codec::{decode_packet, DecodeError, Packet, ProtocolVersion};
use libfuzzer_sys::fuzz_target;

/// Packets decoded until the buffer ran dry or an error, and that error.
type Outcome = (Vec<Packet>, Option<String>);

fn version_of(selector: u8) -> Option<ProtocolVersion> {
    match selector % 4 {
        0 => None,
        1 => Some(ProtocolVersion::V3_1),
        2 => Some(ProtocolVersion::V3_1_1),
        _ => Some(ProtocolVersion::V5),
    }
}

/// Decodes everything in `buf` the way a connection does: the version
/// comes from the CONNECT once it is decoded.
fn drain(
    buf: &mut BytesMut,
    version: &mut Option<ProtocolVersion>,
    max: u32,
    out: &mut Vec<Packet>,
) -> Result<(), DecodeError> {
    loop {
        let before = buf.len();
        match decode_packet(buf, *version, max)? {
            Some(packet) => {
                assert!(buf.len() < before, "a decoded packet consumed no bytes");
                if let Packet::Connect(connect) = &packet {
                    *version = Some(connect.protocol);
                }
                out.push(packet);
            }
            None => {
                assert_eq!(buf.len(), before, "an incomplete packet consumed bytes");
                return Ok(());
            }
        }
    }
}

fn whole(data: &[u8], version: Option<ProtocolVersion>, max: u32) -> Outcome {
    let mut buf = BytesMut::from(data);
    let mut version = version;
    let mut packets = Vec::new();
    let error = drain(&mut buf, &mut version, max, &mut packets).err();
    (packets, error.map(|e| e.to_string()))
}

fn chunked(data: &[u8], version: Option<ProtocolVersion>, max: u32, chunk: usize) -> Outcome {
    let mut buf = BytesMut::new();
    let mut version = version;
    let mut packets = Vec::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        if let Err(error) = drain(&mut buf, &mut version, max, &mut packets) {
            return (packets, Some(error.to_string()));
        }
    }
    (packets, None)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let version = version_of(data[0]);
    let max = [64, 300, 4096, 268_435_460][usize::from(data[1] & 3)];
    let chunk = usize::from(data[1] >> 2) + 1;
    let body = &data[2..];
    let at_once = whole(body, version, max);
    let in_pieces = chunked(body, version, max, chunk);
    assert_eq!(at_once, in_pieces, "chunk size {chunk} changed the outcome");
});
