//! The few MQTT 3.1.1 packets a load generator needs, encoded into a
//! caller's buffer and decoded without allocating.
//!
//! Deliberately independent of the broker's own codec: a bug there must
//! not hide itself by being on both ends of the wire. Every broker under
//! test speaks 3.1.1, so that is the only version here.

use anyhow::{bail, Result};

/// The stamp every bench payload starts with: when it was sent (nanoseconds
/// since [`crate::stats::epoch`]) and a tag (publisher and sequence), so the
/// receiver measures latency and spots loss without a side channel.
pub const STAMP_LEN: usize = 16;

/// One decoded packet, reduced to what the scenarios look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet {
    ConnAck {
        return_code: u8,
        session_present: bool,
    },
    /// A PUBLISH; `stamp` and `tag` are the first 16 payload bytes (0 when
    /// the payload is shorter: not one of ours).
    Publish {
        qos: u8,
        packet_id: u16,
        stamp: u64,
        tag: u64,
    },
    PubAck {
        packet_id: u16,
    },
    /// QoS 2, step 1 answered: the receiver has the message.
    PubRec {
        packet_id: u16,
    },
    /// QoS 2, step 2: the sender may forget the packet id's message.
    PubRel {
        packet_id: u16,
    },
    /// QoS 2, the end of the exchange.
    PubComp {
        packet_id: u16,
    },
    SubAck {
        packet_id: u16,
        granted: u8,
    },
    PingResp,
    /// Any other packet type (first byte of the fixed header).
    Other(u8),
}

fn put_remaining_length(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// Appends a CONNECT (3.1.1, no will, no credentials).
pub fn connect(out: &mut Vec<u8>, client_id: &str, clean_session: bool, keep_alive_secs: u16) {
    let body_len = 10 + 2 + client_id.len();
    out.push(0x10);
    put_remaining_length(out, body_len);
    put_str(out, "MQTT");
    out.push(4);
    out.push(if clean_session { 0x02 } else { 0x00 });
    out.extend_from_slice(&keep_alive_secs.to_be_bytes());
    put_str(out, client_id);
}

/// Appends a PUBLISH whose payload is the stamp, then `payload_len - 16`
/// filler bytes (a payload shorter than the stamp carries the stamp anyway).
pub fn publish(
    out: &mut Vec<u8>,
    topic: &str,
    qos: u8,
    packet_id: u16,
    stamp: u64,
    tag: u64,
    payload_len: usize,
) {
    let payload_len = payload_len.max(STAMP_LEN);
    let id_len = if qos > 0 { 2 } else { 0 };
    out.push(0x30 | (qos << 1));
    put_remaining_length(out, 2 + topic.len() + id_len + payload_len);
    put_str(out, topic);
    if qos > 0 {
        out.extend_from_slice(&packet_id.to_be_bytes());
    }
    out.extend_from_slice(&stamp.to_be_bytes());
    out.extend_from_slice(&tag.to_be_bytes());
    out.resize(out.len() + payload_len - STAMP_LEN, b'x');
}

/// Appends a SUBSCRIBE to one filter.
pub fn subscribe(out: &mut Vec<u8>, packet_id: u16, filter: &str, qos: u8) {
    out.push(0x82);
    put_remaining_length(out, 2 + 2 + filter.len() + 1);
    out.extend_from_slice(&packet_id.to_be_bytes());
    put_str(out, filter);
    out.push(qos);
}

/// Appends a PUBACK.
pub fn puback(out: &mut Vec<u8>, packet_id: u16) {
    out.push(0x40);
    out.push(2);
    out.extend_from_slice(&packet_id.to_be_bytes());
}

/// Appends a PUBREC (QoS 2 receiver, step 1).
pub fn pubrec(out: &mut Vec<u8>, packet_id: u16) {
    out.push(0x50);
    out.push(2);
    out.extend_from_slice(&packet_id.to_be_bytes());
}

/// Appends a PUBREL (QoS 2 sender, step 2; flags 0b0010 as 3.1.1 requires).
pub fn pubrel(out: &mut Vec<u8>, packet_id: u16) {
    out.push(0x62);
    out.push(2);
    out.extend_from_slice(&packet_id.to_be_bytes());
}

/// Appends a PUBCOMP (QoS 2 receiver, the end).
pub fn pubcomp(out: &mut Vec<u8>, packet_id: u16) {
    out.push(0x70);
    out.push(2);
    out.extend_from_slice(&packet_id.to_be_bytes());
}

/// Appends a DISCONNECT.
pub fn disconnect(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0xE0, 0]);
}

/// Decodes the first whole packet in `buf`: `Ok(Some((packet, used)))`,
/// `Ok(None)` when more bytes are needed, an error for a malformed header.
pub fn decode(buf: &[u8]) -> Result<Option<(Packet, usize)>> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut len = 0usize;
    let mut shift = 0;
    let mut pos = 1;
    loop {
        let Some(&byte) = buf.get(pos) else {
            return Ok(None);
        };
        len |= ((byte & 0x7f) as usize) << shift;
        pos += 1;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            bail!("remaining length longer than 4 bytes");
        }
    }
    let end = pos + len;
    let Some(body) = buf.get(pos..end) else {
        return Ok(None);
    };
    let u16_at = |at: usize| -> Result<u16> {
        match body.get(at..at + 2) {
            Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
            None => bail!("packet 0x{first:02x} too short ({} bytes)", body.len()),
        }
    };
    let packet = match first >> 4 {
        2 => Packet::ConnAck {
            session_present: body.first().is_some_and(|flags| flags & 1 == 1),
            return_code: body.get(1).copied().unwrap_or(0xff),
        },
        3 => {
            let qos = (first >> 1) & 3;
            let topic_len = u16_at(0)? as usize;
            let mut at = 2 + topic_len;
            let packet_id = if qos > 0 {
                let id = u16_at(at)?;
                at += 2;
                id
            } else {
                0
            };
            let (stamp, tag) = match body.get(at..at + STAMP_LEN) {
                Some(p) => (
                    u64::from_be_bytes([p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]]),
                    u64::from_be_bytes([p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15]]),
                ),
                None => (0, 0),
            };
            Packet::Publish {
                qos,
                packet_id,
                stamp,
                tag,
            }
        }
        4 => Packet::PubAck {
            packet_id: u16_at(0)?,
        },
        5 => Packet::PubRec {
            packet_id: u16_at(0)?,
        },
        6 => Packet::PubRel {
            packet_id: u16_at(0)?,
        },
        7 => Packet::PubComp {
            packet_id: u16_at(0)?,
        },
        9 => Packet::SubAck {
            packet_id: u16_at(0)?,
            granted: body.get(2).copied().unwrap_or(0x80),
        },
        13 => Packet::PingResp,
        _ => Packet::Other(first),
    };
    Ok(Some((packet, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_round_trips_stamp_and_tag() {
        let mut buf = Vec::new();
        publish(&mut buf, "bench/in/7", 1, 42, 123_456, 7 << 32 | 9, 64);
        let (packet, used) = decode(&buf).ok().flatten().unwrap_or((Packet::Other(0), 0));
        assert_eq!(used, buf.len());
        assert_eq!(
            packet,
            Packet::Publish {
                qos: 1,
                packet_id: 42,
                stamp: 123_456,
                tag: 7 << 32 | 9
            }
        );
    }

    #[test]
    fn long_remaining_length_and_partial_input() {
        let mut buf = Vec::new();
        publish(&mut buf, "t", 0, 0, 1, 2, 300);
        assert_eq!(buf[1] & 0x80, 0x80, "two-byte remaining length");
        assert!(matches!(decode(&buf[..buf.len() - 1]), Ok(None)));
        assert!(matches!(
            decode(&buf),
            Ok(Some((Packet::Publish { .. }, _)))
        ));
    }

    #[test]
    fn qos2_acknowledgements_round_trip() {
        let mut buf = Vec::new();
        pubrec(&mut buf, 1);
        pubrel(&mut buf, 2);
        pubcomp(&mut buf, 3);
        assert_eq!(&buf[..5], &[0x50, 2, 0, 1, 0x62], "PUBREL has flags 0b0010");
        let mut packets = Vec::new();
        let mut at = 0;
        while let Ok(Some((packet, used))) = decode(&buf[at..]) {
            packets.push(packet);
            at += used;
        }
        assert_eq!(
            packets,
            vec![
                Packet::PubRec { packet_id: 1 },
                Packet::PubRel { packet_id: 2 },
                Packet::PubComp { packet_id: 3 },
            ]
        );
    }

    #[test]
    fn connack_suback_puback() {
        let bytes = [0x20, 2, 1, 0, 0x90, 3, 0, 5, 1, 0x40, 2, 0, 9];
        let (first, a) = decode(&bytes)
            .ok()
            .flatten()
            .unwrap_or((Packet::Other(0), 0));
        assert_eq!(
            first,
            Packet::ConnAck {
                return_code: 0,
                session_present: true
            }
        );
        let (second, b) = decode(&bytes[a..])
            .ok()
            .flatten()
            .unwrap_or((Packet::Other(0), 0));
        assert_eq!(
            second,
            Packet::SubAck {
                packet_id: 5,
                granted: 1
            }
        );
        let third = decode(&bytes[a + b..]).ok().flatten().map(|(p, _)| p);
        assert_eq!(third, Some(Packet::PubAck { packet_id: 9 }));
    }

    #[test]
    fn connect_encodes_the_311_header() {
        let mut buf = Vec::new();
        connect(&mut buf, "dev-1", true, 60);
        assert_eq!(&buf[..2], &[0x10, 17]);
        assert_eq!(&buf[2..8], b"\x00\x04MQTT");
        assert_eq!(buf[8], 4);
    }
}
