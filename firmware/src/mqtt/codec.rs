//! MQTT 3.1.1 packets on the wire: encoding what the client sends, decoding
//! what a broker sends to a client.
//!
//! Decoding borrows from the input buffer (no copy of payloads) and checks
//! lengths, flags and UTF-8 where the specification requires it.

use alloc::vec::Vec;

/// A packet the broker sends to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// CONNACK: session present flag and return code (0 = accepted).
    ConnAck {
        /// Broker kept a session for this client id.
        session_present: bool,
        /// 0 accepted; 1-5 refused (see [`connack_reason`]).
        code: u8,
    },
    /// An application message.
    Publish {
        /// Topic name.
        topic: &'a str,
        /// Payload bytes.
        payload: &'a [u8],
        /// 0, 1 or 2.
        qos: u8,
        /// Retained flag.
        retain: bool,
        /// Present for QoS 1 and 2.
        packet_id: Option<u16>,
    },
    /// PUBACK of our QoS 1 publish.
    PubAck(u16),
    /// PUBREC of a QoS 2 publish (the device does not send QoS 2).
    PubRec(u16),
    /// PUBREL for a QoS 2 publish the broker sent us.
    PubRel(u16),
    /// SUBACK: packet id and return codes (0x80 = refused).
    SubAck {
        /// The SUBSCRIBE's packet id.
        packet_id: u16,
        /// One code per filter.
        codes: &'a [u8],
    },
    /// UNSUBACK.
    UnsubAck(u16),
    /// PINGRESP.
    PingResp,
}

/// Why bytes from the broker are not a valid packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Remaining length uses more than four bytes.
    BadLength,
    /// A packet type a server never sends to a client (or reserved).
    UnexpectedType(u8),
    /// Fixed-header flags not allowed for this type.
    BadFlags(u8),
    /// The body is shorter or longer than its type requires.
    Malformed(&'static str),
    /// Larger than the receive buffer.
    TooLarge(usize),
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::BadLength => f.write_str("invalid remaining length"),
            DecodeError::UnexpectedType(t) => write!(f, "unexpected packet type {t}"),
            DecodeError::BadFlags(b) => write!(f, "invalid fixed header 0x{b:02X}"),
            DecodeError::Malformed(what) => write!(f, "malformed packet: {what}"),
            DecodeError::TooLarge(n) => write!(f, "packet of {n} bytes exceeds the buffer"),
        }
    }
}

/// The text of a refused CONNACK code.
pub fn connack_reason(code: u8) -> &'static str {
    match code {
        0 => "accepted",
        1 => "unacceptable protocol version",
        2 => "identifier rejected",
        3 => "server unavailable",
        4 => "bad user name or password",
        5 => "not authorized",
        _ => "unknown return code",
    }
}

/// Decodes one packet from the front of `buf`: `Ok(None)` when more bytes
/// are needed, else the packet and how many bytes it used. `max_len` bounds
/// the whole packet (the receive buffer size).
pub fn decode(buf: &[u8], max_len: usize) -> Result<Option<(Packet<'_>, usize)>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut remaining: usize = 0;
    let mut header_len = 1;
    loop {
        let Some(&byte) = buf.get(header_len) else {
            return Ok(None);
        };
        remaining |= usize::from(byte & 0x7F) << (7 * (header_len - 1));
        header_len += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if header_len > 4 {
            return Err(DecodeError::BadLength);
        }
    }
    let total = header_len + remaining;
    if total > max_len {
        return Err(DecodeError::TooLarge(total));
    }
    let Some(body) = buf.get(header_len..total) else {
        return Ok(None);
    };
    let packet_type = first >> 4;
    let flags = first & 0x0F;
    let expect_flags = |want: u8| {
        if flags == want {
            Ok(())
        } else {
            Err(DecodeError::BadFlags(first))
        }
    };
    let packet = match packet_type {
        2 => {
            expect_flags(0)?;
            match body {
                [ack_flags, code] if ack_flags & 0xFE == 0 => Packet::ConnAck {
                    session_present: ack_flags & 1 == 1,
                    code: *code,
                },
                _ => return Err(DecodeError::Malformed("CONNACK")),
            }
        }
        3 => decode_publish(flags, body)?,
        4 | 5 | 7 | 11 => {
            expect_flags(0)?;
            let id = packet_id(body)?;
            if body.len() != 2 {
                return Err(DecodeError::Malformed("acknowledgement length"));
            }
            match packet_type {
                4 => Packet::PubAck(id),
                5 => Packet::PubRec(id),
                7 => return Err(DecodeError::UnexpectedType(7)),
                _ => Packet::UnsubAck(id),
            }
        }
        6 => {
            expect_flags(2)?;
            if body.len() != 2 {
                return Err(DecodeError::Malformed("PUBREL length"));
            }
            Packet::PubRel(packet_id(body)?)
        }
        9 => {
            expect_flags(0)?;
            let id = packet_id(body)?;
            let codes = &body[2..];
            if codes.is_empty() || codes.iter().any(|c| !matches!(c, 0 | 1 | 2 | 0x80)) {
                return Err(DecodeError::Malformed("SUBACK return codes"));
            }
            Packet::SubAck {
                packet_id: id,
                codes,
            }
        }
        13 => {
            expect_flags(0)?;
            if !body.is_empty() {
                return Err(DecodeError::Malformed("PINGRESP length"));
            }
            Packet::PingResp
        }
        other => return Err(DecodeError::UnexpectedType(other)),
    };
    Ok(Some((packet, total)))
}

fn packet_id(body: &[u8]) -> Result<u16, DecodeError> {
    match body {
        [hi, lo, ..] if (*hi, *lo) != (0, 0) => Ok(u16::from_be_bytes([*hi, *lo])),
        _ => Err(DecodeError::Malformed("packet identifier")),
    }
}

fn decode_publish(flags: u8, body: &[u8]) -> Result<Packet<'_>, DecodeError> {
    let qos = (flags >> 1) & 3;
    if qos == 3 {
        return Err(DecodeError::BadFlags(0x30 | flags));
    }
    let [hi, lo, rest @ ..] = body else {
        return Err(DecodeError::Malformed("PUBLISH topic length"));
    };
    let topic_len = usize::from(u16::from_be_bytes([*hi, *lo]));
    let topic = rest
        .get(..topic_len)
        .ok_or(DecodeError::Malformed("PUBLISH topic"))?;
    let topic = core::str::from_utf8(topic).map_err(|_| DecodeError::Malformed("topic UTF-8"))?;
    if topic.is_empty() || topic.contains(['+', '#', '\0']) {
        return Err(DecodeError::Malformed("PUBLISH topic name"));
    }
    let mut rest = &rest[topic_len..];
    let packet_id = if qos > 0 {
        let id = packet_id(rest)?;
        rest = &rest[2..];
        Some(id)
    } else {
        None
    };
    Ok(Packet::Publish {
        topic,
        payload: rest,
        qos,
        retain: flags & 1 == 1,
        packet_id,
    })
}

/// Appends the remaining-length encoding of `len`.
fn put_length(out: &mut Vec<u8>, mut len: usize) {
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

/// Appends a length-prefixed string (callers keep strings under 64 KiB:
/// topics and ids come from a checked configuration).
fn put_str(out: &mut Vec<u8>, value: &[u8]) {
    let len = value.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&value[..len]);
}

fn finish(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(first);
    put_length(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

/// A will message for CONNECT.
#[derive(Debug, Clone, Copy)]
pub struct Will<'a> {
    /// Will topic.
    pub topic: &'a str,
    /// Will payload.
    pub message: &'a [u8],
    /// QoS 0-2.
    pub qos: u8,
    /// Retain the will.
    pub retain: bool,
}

/// CONNECT options.
#[derive(Debug, Clone, Copy)]
pub struct Connect<'a> {
    /// Client identifier.
    pub client_id: &'a str,
    /// Keep alive seconds.
    pub keep_alive: u16,
    /// Clean session flag.
    pub clean_session: bool,
    /// Last will.
    pub will: Option<Will<'a>>,
    /// User name.
    pub username: Option<&'a str>,
    /// Password (only with a user name in 3.1.1).
    pub password: Option<&'a [u8]>,
}

/// CONNECT (protocol level 4).
pub fn connect(c: &Connect<'_>) -> Vec<u8> {
    let mut body = Vec::new();
    put_str(&mut body, b"MQTT");
    body.push(4);
    let mut flags = 0u8;
    if c.clean_session {
        flags |= 0x02;
    }
    if let Some(will) = &c.will {
        flags |= 0x04 | ((will.qos & 3) << 3);
        if will.retain {
            flags |= 0x20;
        }
    }
    if c.username.is_some() {
        flags |= 0x80;
        if c.password.is_some() {
            flags |= 0x40;
        }
    }
    body.push(flags);
    body.extend_from_slice(&c.keep_alive.to_be_bytes());
    put_str(&mut body, c.client_id.as_bytes());
    if let Some(will) = &c.will {
        put_str(&mut body, will.topic.as_bytes());
        put_str(&mut body, will.message);
    }
    if let Some(user) = c.username {
        put_str(&mut body, user.as_bytes());
        if let Some(pass) = c.password {
            put_str(&mut body, pass);
        }
    }
    finish(0x10, &body)
}

/// PUBLISH; `packet_id` is written for QoS 1 and 2 only.
pub fn publish(topic: &str, payload: &[u8], qos: u8, retain: bool, packet_id: u16) -> Vec<u8> {
    let mut body = Vec::with_capacity(topic.len() + payload.len() + 4);
    put_str(&mut body, topic.as_bytes());
    if qos > 0 {
        body.extend_from_slice(&packet_id.to_be_bytes());
    }
    body.extend_from_slice(payload);
    finish(0x30 | ((qos & 3) << 1) | u8::from(retain), &body)
}

/// SUBSCRIBE to one filter.
pub fn subscribe(packet_id: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&packet_id.to_be_bytes());
    put_str(&mut body, filter.as_bytes());
    body.push(qos & 3);
    finish(0x82, &body)
}

/// PUBACK (0x40), PUBREC (0x50), PUBREL (0x62) or PUBCOMP (0x70).
pub fn ack(first: u8, packet_id: u16) -> Vec<u8> {
    finish(first, &packet_id.to_be_bytes())
}

/// PINGREQ.
pub fn pingreq() -> Vec<u8> {
    alloc::vec![0xC0, 0x00]
}

/// DISCONNECT.
pub fn disconnect() -> Vec<u8> {
    alloc::vec![0xE0, 0x00]
}

#[cfg(test)]
mod tests;
