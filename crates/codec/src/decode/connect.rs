//! CONNECT and CONNACK (§3.1, §3.2).
//!
//! CONNECT is the one packet decoded without a known version: its protocol
//! name and level decide it, and an unknown level is reported only once the
//! name proved the peer speaks MQTT, so the broker can answer it with a
//! CONNACK the peer understands.

use super::super::error::DecodeError;
use super::super::packet::{
    ConnAck, Connect, ConnectProperties, LastWill, Packet, ProtocolVersion, PublishProperties, QoS,
};
use super::super::properties;
use super::super::reason::ReasonCode;
use super::super::wire::Reader;

const USERNAME_FLAG: u8 = 0x80;
const PASSWORD_FLAG: u8 = 0x40;
const WILL_RETAIN_FLAG: u8 = 0x20;
const WILL_QOS_SHIFT: u8 = 3;
const WILL_FLAG: u8 = 0x04;
const CLEAN_START_FLAG: u8 = 0x02;
const RESERVED_FLAG: u8 = 0x01;

/// Reads the protocol name and level into a version [MQTT-3.1.2-1/2].
fn protocol_version(reader: &mut Reader) -> Result<ProtocolVersion, DecodeError> {
    let name = reader.binary()?;
    let level = reader.u8()?;
    match (&name[..], level) {
        (b"MQTT", 4) => Ok(ProtocolVersion::V3_1_1),
        (b"MQTT", 5) => Ok(ProtocolVersion::V5),
        (b"MQIsdp", 3) => Ok(ProtocolVersion::V3_1),
        (b"MQTT" | b"MQIsdp", _) => Err(DecodeError::UnsupportedProtocolVersion { level }),
        _ => Err(DecodeError::InvalidProtocolName {
            name: String::from_utf8_lossy(&name).into_owned(),
        }),
    }
}

/// CONNECT: variable header then client id, will, user name, password.
pub(super) fn decode_connect(reader: &mut Reader) -> Result<Packet, DecodeError> {
    let protocol = protocol_version(reader)?;
    let flags = reader.u8()?;
    if flags & RESERVED_FLAG != 0 {
        return Err(DecodeError::ConnectReservedFlag);
    }
    let has_will = flags & WILL_FLAG != 0;
    let will_qos = (flags >> WILL_QOS_SHIFT) & 0b11;
    let will_retain = flags & WILL_RETAIN_FLAG != 0;
    if !has_will && will_qos != 0 {
        return Err(DecodeError::WillQoSWithoutWill { qos: will_qos });
    }
    if !has_will && will_retain {
        return Err(DecodeError::WillRetainWithoutWill);
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::InvalidWillQoS)?;
    let has_username = flags & USERNAME_FLAG != 0;
    let has_password = flags & PASSWORD_FLAG != 0;
    if has_password && !has_username && !protocol.is_v5() {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let keep_alive = reader.u16()?;
    let properties = if protocol.is_v5() {
        properties::read_connect(reader)?
    } else {
        ConnectProperties::default()
    };

    let client_id = reader.string()?;
    let will = if has_will {
        let (delay_interval, will_properties) = if protocol.is_v5() {
            properties::read_will(reader)?
        } else {
            (None, PublishProperties::default())
        };
        Some(LastWill {
            topic: reader.string()?,
            payload: reader.binary()?,
            qos: will_qos,
            retain: will_retain,
            delay_interval,
            properties: will_properties,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(reader.string()?)
    } else {
        None
    };
    let password = if has_password {
        Some(reader.binary()?)
    } else {
        None
    };

    Ok(Packet::Connect(Box::new(Connect {
        protocol,
        clean_start: flags & CLEAN_START_FLAG != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })))
}

/// The 5.0 reason code standing for a 3.1.1 CONNACK return code: the
/// inverse of [`ReasonCode::to_v3_connack_code`].
fn reason_from_v3_code(code: u8) -> Result<ReasonCode, DecodeError> {
    Ok(match code {
        0 => ReasonCode::SUCCESS,
        1 => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
        2 => ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
        3 => ReasonCode::SERVER_UNAVAILABLE,
        4 => ReasonCode::BAD_USER_NAME_OR_PASSWORD,
        5 => ReasonCode::NOT_AUTHORIZED,
        _ => return Err(DecodeError::InvalidConnAckReturnCode { code }),
    })
}

/// CONNACK: acknowledge flags, return code or reason, 5.0 properties.
pub(super) fn decode_connack(
    reader: &mut Reader,
    version: ProtocolVersion,
) -> Result<ConnAck, DecodeError> {
    let flags = reader.u8()?;
    if flags & !1 != 0 {
        return Err(DecodeError::ConnAckReservedFlags { flags });
    }
    let code = reader.u8()?;
    let mut connack = ConnAck {
        // MQTT 3.1 has no Session Present flag: its first byte is reserved,
        // and the encoder writes 0 there, so bit 0 is read as "no session".
        session_present: flags & 1 != 0 && version != ProtocolVersion::V3_1,
        ..ConnAck::default()
    };
    if version.is_v5() {
        connack.reason = ReasonCode(code);
        connack.properties = properties::read_connack(reader)?;
    } else {
        connack.reason = reason_from_v3_code(code)?;
    }
    if connack.session_present && connack.reason != ReasonCode::SUCCESS {
        return Err(DecodeError::ConnAckSessionPresentWithError { reason: code });
    }
    Ok(connack)
}
