//! [`Packet`] to bytes, for a client of a given protocol version.
//!
//! Owns [`encode_packet`] and [`encoded_len`], and everything that makes one
//! packet type fit each version: 3.1/3.1.1 get no properties, CONNACK
//! return codes instead of reasons, 0x80 for every SUBACK failure, an
//! UNSUBACK without payload; 5.0 acks drop a success reason and empty
//! properties as the specification allows. Each body is written by one
//! function run twice, into a [`Counter`] for its length and then into the
//! buffer, so a packet is sized, reserved and written once (a PUBLISH
//! payload is copied exactly once, into the output buffer). It must not
//! decide what to send (reason codes, limits a client announced).

use bytes::{BufMut, BytesMut};

use super::error::EncodeError;
use super::header::first_byte;
use super::packet::{
    ConnAck, Connect, Packet, ProtocolVersion, PubResponse, Publish, QoS, SubAck, Subscribe,
    SubscriptionOptions, UnsubAck, Unsubscribe,
};
use super::properties::{
    put_properties, Properties, SubscribeProperties, UserProperties, WillProperties,
};
use super::reason::ReasonCode;
use super::wire::{var_int_len, Counter, Sink, MAX_VAR_INT};

/// Appends `packet`, encoded for a client speaking `version`, to `buf`.
///
/// On error nothing is appended.
pub fn encode_packet(
    packet: &Packet,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let body_len = body_len(packet, version)?;
    let start = buf.len();
    buf.reserve(1 + var_int_len(body_len) + body_len);
    BufMut::put_u8(buf, first_byte(packet));
    let written = u32::try_from(body_len)
        .map_err(|_| EncodeError::PacketTooLarge { size: body_len })
        .and_then(|len| buf.put_var_int(len))
        .and_then(|()| put_body(packet, version, buf));
    if written.is_err() {
        buf.truncate(start);
    }
    written
}

/// The size of the whole encoded packet, fixed header included: what a
/// client's Maximum Packet Size is compared with.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> Result<usize, EncodeError> {
    let body_len = body_len(packet, version)?;
    Ok(1 + var_int_len(body_len) + body_len)
}

/// The remaining length of `packet`, checked against the protocol limit.
fn body_len(packet: &Packet, version: ProtocolVersion) -> Result<usize, EncodeError> {
    let mut counter = Counter::default();
    put_body(packet, version, &mut counter)?;
    if counter.0 > MAX_VAR_INT as usize {
        return Err(EncodeError::PacketTooLarge { size: counter.0 });
    }
    Ok(counter.0)
}

/// Writes everything after the fixed header.
fn put_body<S: Sink>(
    packet: &Packet,
    version: ProtocolVersion,
    sink: &mut S,
) -> Result<(), EncodeError> {
    let v5 = version.is_v5();
    match packet {
        Packet::Connect(connect) => put_connect(connect, version, sink),
        Packet::ConnAck(connack) => put_connack(connack, version, sink),
        Packet::Publish(publish) => put_publish(publish, v5, sink),
        Packet::PubAck(response)
        | Packet::PubRec(response)
        | Packet::PubRel(response)
        | Packet::PubComp(response) => put_response(response, v5, sink),
        Packet::Subscribe(subscribe) => put_subscribe(subscribe, v5, sink),
        Packet::SubAck(suback) => put_suback(suback, v5, sink),
        Packet::Unsubscribe(unsubscribe) => put_unsubscribe(unsubscribe, v5, sink),
        Packet::UnsubAck(unsuback) => put_unsuback(unsuback, v5, sink),
        Packet::PingReq | Packet::PingResp => Ok(()),
        Packet::Disconnect(disconnect) if v5 => {
            put_reason_and_properties(disconnect.reason, &disconnect.properties, sink)
        }
        Packet::Disconnect(_) => Ok(()),
        Packet::Auth(auth) if v5 => put_reason_and_properties(auth.reason, auth, sink),
        Packet::Auth(_) => Err(EncodeError::NotInVersion {
            packet: "AUTH",
            version,
        }),
    }
}

/// A 5.0 reason code and properties that the specification lets a sender
/// leave out: both when the reason is success and there are no properties,
/// the property length alone when there are no properties (§3.4.2.1).
fn put_reason_and_properties<S: Sink>(
    reason: ReasonCode,
    properties: &impl Properties,
    sink: &mut S,
) -> Result<(), EncodeError> {
    let has_properties = properties.len()? > 0;
    if reason == ReasonCode::SUCCESS && !has_properties {
        return Ok(());
    }
    sink.put_u8(reason.0);
    if has_properties {
        put_properties(sink, properties)?;
    }
    Ok(())
}

fn put_connect<S: Sink>(
    connect: &Connect,
    version: ProtocolVersion,
    sink: &mut S,
) -> Result<(), EncodeError> {
    let name = match version {
        ProtocolVersion::V3_1 => "MQIsdp",
        ProtocolVersion::V3_1_1 | ProtocolVersion::V5 => "MQTT",
    };
    sink.put_string(name)?;
    sink.put_u8(version.level());
    let mut flags = u8::from(connect.clean_start) << 1;
    if let Some(will) = &connect.will {
        flags |= 0x04 | (will.qos as u8) << 3 | u8::from(will.retain) << 5;
    }
    flags |= u8::from(connect.password.is_some()) << 6;
    flags |= u8::from(connect.username.is_some()) << 7;
    sink.put_u8(flags);
    sink.put_u16(connect.keep_alive);
    if version.is_v5() {
        put_properties(sink, &connect.properties)?;
    }
    sink.put_string(&connect.client_id)?;
    if let Some(will) = &connect.will {
        if version.is_v5() {
            let properties = WillProperties {
                delay_interval: will.delay_interval,
                message: &will.properties,
            };
            put_properties(sink, &properties)?;
        }
        sink.put_string(&will.topic)?;
        sink.put_binary(&will.payload)?;
    }
    if let Some(username) = &connect.username {
        sink.put_string(username)?;
    }
    if let Some(password) = &connect.password {
        sink.put_binary(password)?;
    }
    Ok(())
}

fn put_connack<S: Sink>(
    connack: &ConnAck,
    version: ProtocolVersion,
    sink: &mut S,
) -> Result<(), EncodeError> {
    // A refused connection never has a session [MQTT-3.2.2-4] (5.0: -6).
    // MQTT 3.1's CONNACK has no Session Present flag: its first byte is
    // reserved (0), as Mosquitto sends it.
    let session_present = connack.session_present
        && connack.reason == ReasonCode::SUCCESS
        && version != ProtocolVersion::V3_1;
    sink.put_u8(u8::from(session_present));
    if version.is_v5() {
        sink.put_u8(connack.reason.0);
        put_properties(sink, &connack.properties)
    } else {
        sink.put_u8(connack.reason.to_v3_connack_code());
        Ok(())
    }
}

fn put_publish<S: Sink>(publish: &Publish, v5: bool, sink: &mut S) -> Result<(), EncodeError> {
    sink.put_string(&publish.topic)?;
    match (publish.qos, publish.packet_id) {
        (QoS::AtMostOnce, None) => {}
        (QoS::AtLeastOnce | QoS::ExactlyOnce, Some(packet_id)) => sink.put_u16(packet_id),
        (qos, packet_id) => {
            return Err(EncodeError::PacketIdMismatch {
                qos: qos as u8,
                packet_id,
            })
        }
    }
    if v5 {
        put_properties(sink, &publish.properties)?;
    }
    sink.put_slice(&publish.payload);
    Ok(())
}

fn put_response<S: Sink>(
    response: &PubResponse,
    v5: bool,
    sink: &mut S,
) -> Result<(), EncodeError> {
    sink.put_u16(response.packet_id);
    if v5 {
        put_reason_and_properties(response.reason, &response.properties, sink)?;
    }
    Ok(())
}

/// The subscription options byte (5.0) or requested QoS byte (3.1.1).
fn options_byte(options: &SubscriptionOptions, v5: bool) -> u8 {
    let qos = options.qos as u8;
    if !v5 {
        return qos;
    }
    qos | u8::from(options.no_local) << 2
        | u8::from(options.retain_as_published) << 3
        | (options.retain_handling & 0b11) << 4
}

fn put_subscribe<S: Sink>(
    subscribe: &Subscribe,
    v5: bool,
    sink: &mut S,
) -> Result<(), EncodeError> {
    sink.put_u16(subscribe.packet_id);
    if v5 {
        let properties = SubscribeProperties {
            subscription_identifier: subscribe.subscription_identifier,
            user_properties: &subscribe.user_properties,
        };
        put_properties(sink, &properties)?;
    }
    for (filter, options) in &subscribe.filters {
        sink.put_string(filter)?;
        sink.put_u8(options_byte(options, v5));
    }
    Ok(())
}

fn put_suback<S: Sink>(suback: &SubAck, v5: bool, sink: &mut S) -> Result<(), EncodeError> {
    sink.put_u16(suback.packet_id);
    if v5 {
        put_properties(sink, &suback.properties)?;
    }
    for reason in &suback.reasons {
        // 3.1.1 knows a single failure code.
        let code = if !v5 && reason.is_error() {
            0x80
        } else {
            reason.0
        };
        sink.put_u8(code);
    }
    Ok(())
}

fn put_unsubscribe<S: Sink>(
    unsubscribe: &Unsubscribe,
    v5: bool,
    sink: &mut S,
) -> Result<(), EncodeError> {
    sink.put_u16(unsubscribe.packet_id);
    if v5 {
        put_properties(sink, &UserProperties(&unsubscribe.user_properties))?;
    }
    for filter in &unsubscribe.filters {
        sink.put_string(filter)?;
    }
    Ok(())
}

fn put_unsuback<S: Sink>(unsuback: &UnsubAck, v5: bool, sink: &mut S) -> Result<(), EncodeError> {
    sink.put_u16(unsuback.packet_id);
    if v5 {
        put_properties(sink, &unsuback.properties)?;
        for reason in &unsuback.reasons {
            sink.put_u8(reason.0);
        }
    }
    Ok(())
}
