//! Bytes to [`Packet`]: framing, then one strict parser per packet type.
//!
//! Owns [`decode_packet`]: finding where a packet ends, refusing it as early
//! as its fixed header allows (wrong first packet, reserved flags, too
//! large), and checking every field against the specification for the
//! connection's protocol version. It must not apply broker policy (topic
//! names, client ids, topic aliases, authorization), must not copy payloads
//! or binary data (they are `Bytes` slices of the frame), and must never
//! panic on what a peer sends.

use std::sync::Arc;

use bytes::{Buf, BytesMut};

use super::error::DecodeError;
use super::header::{self, required_flags, type_name};
use super::packet::{Auth, Disconnect, Packet, ProtocolVersion};
use super::properties;
use super::reason::ReasonCode;
use super::wire::{parse_var_int, Reader, VarInt};

mod connect;
mod publish;
mod subscribe;

/// Decodes one packet from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` does not yet hold a whole packet, leaving
/// `buf` untouched. On success the packet's bytes are split off `buf`; the
/// payload and binary fields of the packet share them.
///
/// `version` is `None` before CONNECT: only CONNECT is accepted then
/// ([`DecodeError::FirstPacketNotConnect`]) and it decides the version
/// itself. After it, `Some(version)` and a CONNECT is
/// [`DecodeError::SecondConnect`]. MQTT 3.1 is decoded like 3.1.1.
///
/// `max_packet_size` bounds the whole packet, fixed header included; a
/// fixed header announcing more fails as soon as it is readable, before the
/// body arrives, so a peer cannot make the broker buffer it.
///
/// After an error the connection must be closed: `buf` may or may not still
/// hold the offending bytes.
pub fn decode_packet(
    buf: &mut BytesMut,
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
) -> Result<Option<Packet>, DecodeError> {
    decode_packet_with(buf, version, max_packet_size, &mut TopicCache::default())
}

/// The last PUBLISH topic a connection sent, so that a device publishing
/// to the same topic again shares one `Arc<str>` instead of allocating a
/// new one per message (an allocation and a free per PUBLISH, and one copy
/// of the topic per queued message). Holds one topic.
#[derive(Debug, Default, Clone)]
pub struct TopicCache {
    last: Option<Arc<str>>,
}

impl TopicCache {
    /// The topic as an `Arc<str>`: the cached one when equal, else a new
    /// one that becomes the cached one.
    fn topic(&mut self, text: &str) -> Arc<str> {
        match &self.last {
            Some(last) if **last == *text => Arc::clone(last),
            _ => {
                let topic: Arc<str> = Arc::from(text);
                self.last = Some(Arc::clone(&topic));
                topic
            }
        }
    }

    /// Lets the cached topic go (a quiet connection keeps no copy).
    pub fn clear(&mut self) {
        self.last = None;
    }
}

/// [`decode_packet`], with PUBLISH topics shared through `topics` (one
/// cache per connection).
pub fn decode_packet_with(
    buf: &mut BytesMut,
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
    topics: &mut TopicCache,
) -> Result<Option<Packet>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let packet_type = first >> 4;
    let flags = first & 0x0F;
    let name = type_name(packet_type);
    let version = match version {
        None if packet_type != header::CONNECT => {
            return Err(DecodeError::FirstPacketNotConnect { packet: name })
        }
        None => None,
        Some(_) if packet_type == header::CONNECT => return Err(DecodeError::SecondConnect),
        Some(version) => {
            if packet_type == 0 || (packet_type == header::AUTH && !version.is_v5()) {
                return Err(DecodeError::ReservedPacketType { packet_type });
            }
            Some(version)
        }
    };
    if packet_type != header::PUBLISH && flags != required_flags(name) {
        return Err(DecodeError::ReservedFlags {
            packet: name,
            flags,
        });
    }

    let (remaining_len, header_len) = match parse_var_int(&buf[1..]) {
        VarInt::Complete { value, len } => (value as usize, 1 + len),
        VarInt::Incomplete => return Ok(None),
        VarInt::TooLong => return Err(DecodeError::RemainingLengthTooLong),
    };
    let size = header_len + remaining_len;
    if size as u64 > u64::from(max_packet_size) {
        return Err(DecodeError::PacketTooLarge {
            size,
            max: max_packet_size,
        });
    }
    if buf.len() < size {
        return Ok(None);
    }

    let mut frame = buf.split_to(size).freeze();
    frame.advance(header_len);
    let mut reader = Reader::new(frame);
    let packet = match version {
        None => connect::decode_connect(&mut reader)?,
        Some(version) => decode_body(packet_type, flags, version, &mut reader, topics)?,
    };
    reader.finish(name)?;
    Ok(Some(packet))
}

/// Decodes the variable header and payload of every type but CONNECT.
fn decode_body(
    packet_type: u8,
    flags: u8,
    version: ProtocolVersion,
    reader: &mut Reader,
    topics: &mut TopicCache,
) -> Result<Packet, DecodeError> {
    let packet = match packet_type {
        header::CONNACK => Packet::ConnAck(connect::decode_connack(reader, version)?),
        header::PUBLISH => {
            Packet::Publish(publish::decode_publish(flags, version, reader, topics)?)
        }
        header::PUBACK => Packet::PubAck(publish::decode_response("PUBACK", version, reader)?),
        header::PUBREC => Packet::PubRec(publish::decode_response("PUBREC", version, reader)?),
        header::PUBREL => Packet::PubRel(publish::decode_response("PUBREL", version, reader)?),
        header::PUBCOMP => Packet::PubComp(publish::decode_response("PUBCOMP", version, reader)?),
        header::SUBSCRIBE => Packet::Subscribe(subscribe::decode_subscribe(version, reader)?),
        header::SUBACK => Packet::SubAck(subscribe::decode_suback(version, reader)?),
        header::UNSUBSCRIBE => Packet::Unsubscribe(subscribe::decode_unsubscribe(version, reader)?),
        header::UNSUBACK => Packet::UnsubAck(subscribe::decode_unsuback(version, reader)?),
        header::PINGREQ => Packet::PingReq,
        header::PINGRESP => Packet::PingResp,
        header::DISCONNECT => Packet::Disconnect(decode_disconnect(version, reader)?),
        header::AUTH => Packet::Auth(decode_auth(reader)?),
        // CONNECT and the reserved types were refused from the fixed header.
        _ => return Err(DecodeError::ReservedPacketType { packet_type }),
    };
    Ok(packet)
}

/// A packet identifier that must not be 0 [MQTT-2.3.1-1].
fn packet_id(reader: &mut Reader, packet: &'static str) -> Result<u16, DecodeError> {
    match reader.u16()? {
        0 => Err(DecodeError::ZeroPacketId { packet }),
        id => Ok(id),
    }
}

/// DISCONNECT: empty in 3.1.1; in 5.0 the reason code and the properties
/// may each be left out (§3.14.2.1).
fn decode_disconnect(
    version: ProtocolVersion,
    reader: &mut Reader,
) -> Result<Disconnect, DecodeError> {
    let mut disconnect = Disconnect::default();
    if version.is_v5() && !reader.is_empty() {
        disconnect.reason = ReasonCode(reader.u8()?);
        if !reader.is_empty() {
            disconnect.properties = properties::read_disconnect(reader)?;
        }
    }
    Ok(disconnect)
}

/// AUTH (5.0 only): empty means success without properties (§3.15.2.1).
fn decode_auth(reader: &mut Reader) -> Result<Auth, DecodeError> {
    let mut auth = Auth::default();
    if !reader.is_empty() {
        auth.reason = ReasonCode(reader.u8()?);
        if !reader.is_empty() {
            properties::read_auth(reader, &mut auth)?;
        }
    }
    Ok(auth)
}
