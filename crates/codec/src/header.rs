//! The fixed header (§2.1): packet type numbers, the flags each type must
//! carry, and the first byte of every packet.
//!
//! Owns the one table of type numbers both directions use. It must not read
//! past the first byte; the remaining length is a variable byte integer
//! handled by `wire`.

use super::packet::Packet;

pub(super) const CONNECT: u8 = 1;
pub(super) const CONNACK: u8 = 2;
pub(super) const PUBLISH: u8 = 3;
pub(super) const PUBACK: u8 = 4;
pub(super) const PUBREC: u8 = 5;
pub(super) const PUBREL: u8 = 6;
pub(super) const PUBCOMP: u8 = 7;
pub(super) const SUBSCRIBE: u8 = 8;
pub(super) const SUBACK: u8 = 9;
pub(super) const UNSUBSCRIBE: u8 = 10;
pub(super) const UNSUBACK: u8 = 11;
pub(super) const PINGREQ: u8 = 12;
pub(super) const PINGRESP: u8 = 13;
pub(super) const DISCONNECT: u8 = 14;
pub(super) const AUTH: u8 = 15;

/// The name of a packet type number, as [`Packet::name`] spells it.
pub(super) fn type_name(packet_type: u8) -> &'static str {
    match packet_type {
        CONNECT => "CONNECT",
        CONNACK => "CONNACK",
        PUBLISH => "PUBLISH",
        PUBACK => "PUBACK",
        PUBREC => "PUBREC",
        PUBREL => "PUBREL",
        PUBCOMP => "PUBCOMP",
        SUBSCRIBE => "SUBSCRIBE",
        SUBACK => "SUBACK",
        UNSUBSCRIBE => "UNSUBSCRIBE",
        UNSUBACK => "UNSUBACK",
        PINGREQ => "PINGREQ",
        PINGRESP => "PINGRESP",
        DISCONNECT => "DISCONNECT",
        AUTH => "AUTH",
        _ => "reserved packet type 0",
    }
}

/// The flags nibble a packet other than PUBLISH must carry [MQTT-2.2.2-1].
pub(super) fn required_flags(packet: &str) -> u8 {
    match packet {
        "PUBREL" | "SUBSCRIBE" | "UNSUBSCRIBE" => 0b0010,
        _ => 0,
    }
}

/// The first byte of the fixed header of `packet`: type and flags.
pub(super) fn first_byte(packet: &Packet) -> u8 {
    let packet_type = match packet {
        Packet::Connect(_) => CONNECT,
        Packet::ConnAck(_) => CONNACK,
        Packet::Publish(publish) => {
            let flags =
                u8::from(publish.dup) << 3 | (publish.qos as u8) << 1 | u8::from(publish.retain);
            return PUBLISH << 4 | flags;
        }
        Packet::PubAck(_) => PUBACK,
        Packet::PubRec(_) => PUBREC,
        Packet::PubRel(_) => PUBREL,
        Packet::PubComp(_) => PUBCOMP,
        Packet::Subscribe(_) => SUBSCRIBE,
        Packet::SubAck(_) => SUBACK,
        Packet::Unsubscribe(_) => UNSUBSCRIBE,
        Packet::UnsubAck(_) => UNSUBACK,
        Packet::PingReq => PINGREQ,
        Packet::PingResp => PINGRESP,
        Packet::Disconnect(_) => DISCONNECT,
        Packet::Auth(_) => AUTH,
    };
    packet_type << 4 | required_flags(packet.name())
}
