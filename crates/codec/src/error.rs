//! What can go wrong turning bytes into packets and packets into bytes.
//!
//! Owns the two error enums of the codec and the mapping of each decode
//! failure onto the 5.0 reason code the specification assigns to it
//! (Malformed Packet, Protocol Error, Packet Too Large, Unsupported Protocol
//! Version). Each message is written in the peer's terms and names the
//! normative statement broken where the specification numbers one (3.1.1
//! numbering unless the rule exists only in 5.0), so a log line is enough to
//! tell a device developer what their client did wrong. It must not decide
//! what the broker does about an error (which packet to send, when to close).

use thiserror::Error;

use super::header::required_flags;
use super::packet::ProtocolVersion;
use super::reason::ReasonCode;

/// Why the bytes a peer sent are not a valid MQTT packet.
///
/// Every variant is fatal for the connection: the broker answers with
/// [`DecodeError::reason_code`] where the protocol lets it, then closes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The first packet on a connection was not CONNECT.
    #[error("first packet is {packet}, not CONNECT [MQTT-3.1.0-1]")]
    FirstPacketNotConnect { packet: &'static str },

    /// A second CONNECT on an established connection.
    #[error("second CONNECT on the same connection [MQTT-3.1.0-2]")]
    SecondConnect,

    /// Packet type 0, or 15 (AUTH) in a protocol version without it.
    #[error("reserved packet type {packet_type} (MQTT §2.1.2)")]
    ReservedPacketType { packet_type: u8 },

    /// The flags nibble of the fixed header differs from what the packet
    /// type requires.
    #[error(
        "reserved flags {flags:#x} on {packet} (must be {:#x}) [{}]",
        required_flags(packet),
        reserved_flags_statement(packet)
    )]
    ReservedFlags { packet: &'static str, flags: u8 },

    /// The remaining length did not end within four bytes.
    #[error("remaining length longer than 4 bytes (MQTT §2.2.3)")]
    RemainingLengthTooLong,

    /// A variable byte integer inside the packet did not end within four bytes.
    #[error("variable byte integer longer than 4 bytes (MQTT 5.0 §1.5.5)")]
    VariableByteIntegerTooLong,

    /// The whole packet is larger than this side accepts.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge { size: usize, max: u32 },

    /// The packet ended inside a field.
    #[error("packet ends inside a field (remaining length too short)")]
    Truncated,

    /// Bytes left over after every field of the packet was read.
    #[error("{count} unexpected bytes at the end of {packet}")]
    TrailingBytes { packet: &'static str, count: usize },

    /// A UTF-8 encoded string is not well-formed UTF-8.
    #[error("string is not well-formed UTF-8 [MQTT-1.5.3-1]")]
    InvalidUtf8,

    /// A UTF-8 encoded string contains U+0000.
    #[error("string contains the null character U+0000 [MQTT-1.5.3-2]")]
    NulInString,

    /// CONNECT protocol name is neither "MQTT" nor "MQIsdp".
    #[error("protocol name {name:?} is neither \"MQTT\" nor \"MQIsdp\" [MQTT-3.1.2-1]")]
    InvalidProtocolName { name: String },

    /// A valid protocol name with a protocol level this broker does not
    /// speak. The broker answers with a CONNACK (3.1.1 return code 1, 5.0
    /// reason 0x84) before closing.
    #[error("unsupported protocol level {level} [MQTT-3.1.2-2]")]
    UnsupportedProtocolVersion { level: u8 },

    /// CONNECT flags bit 0 is set.
    #[error("reserved bit 0 of the CONNECT flags is set [MQTT-3.1.2-3]")]
    ConnectReservedFlag,

    /// Will QoS is not 0 although there is no will.
    #[error("will QoS {qos} without the will flag [MQTT-3.1.2-11] [MQTT-3.1.2-13]")]
    WillQoSWithoutWill { qos: u8 },

    /// Will Retain is set although there is no will.
    #[error("will retain without the will flag [MQTT-3.1.2-11] [MQTT-3.1.2-15]")]
    WillRetainWithoutWill,

    /// Will QoS 3.
    #[error("will QoS 3 [MQTT-3.1.2-14]")]
    InvalidWillQoS,

    /// 3.1/3.1.1 CONNECT with a password but no user name.
    #[error("password flag without user name flag [MQTT-3.1.2-22]")]
    PasswordWithoutUsername,

    /// CONNACK acknowledge flags with reserved bits set.
    #[error("reserved CONNACK acknowledge flags {flags:#x} [MQTT-3.2.2-1]")]
    ConnAckReservedFlags { flags: u8 },

    /// CONNACK with Session Present set and a refusal [MQTT-3.2.2-6]
    /// (3.1.1: [MQTT-3.2.2-4]). Found by fuzz/codec_roundtrip: the encoder
    /// clears the flag for a refusal, so the decoder accepting it broke the
    /// decode -> encode -> decode round trip.
    #[error("CONNACK refuses the connection (reason {reason:#04x}) but sets Session Present [MQTT-3.2.2-6]")]
    ConnAckSessionPresentWithError { reason: u8 },

    /// 3.1.1 CONNACK return code above 5.
    #[error("reserved CONNACK return code {code}")]
    InvalidConnAckReturnCode { code: u8 },

    /// PUBLISH with both QoS bits set.
    #[error("PUBLISH with QoS 3 [MQTT-3.3.1-4]")]
    InvalidQoS,

    /// PUBLISH QoS 0 with the DUP flag.
    #[error("DUP flag on a QoS 0 PUBLISH [MQTT-3.3.1-2]")]
    DupWithQoS0,

    /// Packet identifier 0 where a non-zero one is required.
    #[error("packet identifier 0 on {packet} [MQTT-2.3.1-1]")]
    ZeroPacketId { packet: &'static str },

    /// SUBSCRIBE or UNSUBSCRIBE without a single topic filter.
    #[error(
        "{packet} without topic filters [{}]",
        if *packet == "SUBSCRIBE" { "MQTT-3.8.3-3" } else { "MQTT-3.10.3-2" }
    )]
    NoTopicFilters { packet: &'static str },

    /// 3.1.1 SUBSCRIBE requested-QoS byte with its upper 6 bits set.
    #[error("reserved bits set in requested QoS byte {options:#x} [MQTT-3.8.3-4]")]
    SubscribeReservedBits { options: u8 },

    /// 5.0 subscription options with bits 6-7 set.
    #[error("reserved bits 6-7 set in subscription options {options:#x} [MQTT-3.8.3-5]")]
    SubscriptionOptionsReservedBits { options: u8 },

    /// A subscription asking for QoS 3.
    #[error("subscription with maximum QoS 3 [MQTT-3.8.3-4]")]
    InvalidSubscriptionQoS,

    /// 5.0 subscription options with Retain Handling 3.
    #[error("subscription with retain handling 3 (MQTT 5.0 §3.8.3.1)")]
    InvalidRetainHandling,

    /// 3.1.1 SUBACK return code other than 0, 1, 2 or 0x80.
    #[error("reserved SUBACK return code {code:#x} [MQTT-3.9.3-2]")]
    InvalidSubAckReturnCode { code: u8 },

    /// A property identifier the specification does not define.
    #[error("unknown property identifier {id:#x}")]
    UnknownProperty { id: u32 },

    /// A property the specification does not allow on this packet.
    #[error("property {property} is not allowed on {packet}")]
    PropertyNotAllowed {
        property: &'static str,
        packet: &'static str,
    },

    /// A property that may appear once appeared again.
    #[error("property {0} appears more than once")]
    DuplicateProperty(&'static str),

    /// Subscription Identifier 0.
    #[error("subscription identifier 0 (MQTT 5.0 §3.8.2.1.2)")]
    ZeroSubscriptionIdentifier,

    /// Receive Maximum 0.
    #[error("receive maximum 0 (MQTT 5.0 §3.1.2.11.3)")]
    ZeroReceiveMaximum,

    /// Maximum Packet Size 0.
    #[error("maximum packet size 0 (MQTT 5.0 §3.1.2.11.4)")]
    ZeroMaximumPacketSize,

    /// A byte property whose only valid values are 0 and 1 had another.
    #[error("property {property} has value {value}, must be 0 or 1")]
    InvalidPropertyValue { property: &'static str, value: u8 },
}

impl DecodeError {
    /// The 5.0 reason code for a DISCONNECT (or CONNACK) reporting this error.
    pub fn reason_code(&self) -> ReasonCode {
        use DecodeError::*;
        match self {
            PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            UnsupportedProtocolVersion { .. } => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            FirstPacketNotConnect { .. }
            | SecondConnect
            | InvalidProtocolName { .. }
            | WillQoSWithoutWill { .. }
            | WillRetainWithoutWill
            | ZeroPacketId { .. }
            | NoTopicFilters { .. }
            | InvalidSubscriptionQoS
            | InvalidRetainHandling
            | DuplicateProperty(_)
            | ZeroSubscriptionIdentifier
            | ZeroReceiveMaximum
            | ZeroMaximumPacketSize
            | InvalidPropertyValue { .. } => ReasonCode::PROTOCOL_ERROR,
            ReservedPacketType { .. }
            | ReservedFlags { .. }
            | RemainingLengthTooLong
            | VariableByteIntegerTooLong
            | Truncated
            | TrailingBytes { .. }
            | InvalidUtf8
            | NulInString
            | ConnectReservedFlag
            | InvalidWillQoS
            | PasswordWithoutUsername
            | ConnAckReservedFlags { .. }
            | ConnAckSessionPresentWithError { .. }
            | InvalidConnAckReturnCode { .. }
            | InvalidQoS
            | DupWithQoS0
            | SubscribeReservedBits { .. }
            | SubscriptionOptionsReservedBits { .. }
            | InvalidSubAckReturnCode { .. }
            | UnknownProperty { .. }
            | PropertyNotAllowed { .. } => ReasonCode::MALFORMED_PACKET,
        }
    }
}

/// The statement that fixes the flags of `packet`.
fn reserved_flags_statement(packet: &str) -> &'static str {
    match packet {
        "PUBREL" => "MQTT-3.6.1-1",
        "SUBSCRIBE" => "MQTT-3.8.1-1",
        "UNSUBSCRIBE" => "MQTT-3.10.1-1",
        _ => "MQTT-2.2.2-1",
    }
}

/// Why a packet cannot be written for a client.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The remaining length would exceed what four bytes can announce.
    #[error("packet body of {size} bytes exceeds the 268,435,455 byte limit")]
    PacketTooLarge { size: usize },

    /// A UTF-8 string field longer than its two-byte length prefix allows.
    #[error("string of {len} bytes exceeds the 65,535 byte limit")]
    StringTooLong { len: usize },

    /// A binary data field longer than its two-byte length prefix allows.
    #[error("binary data of {len} bytes exceeds the 65,535 byte limit")]
    BinaryTooLong { len: usize },

    /// A variable byte integer (e.g. a subscription identifier) above 268,435,455.
    #[error("value {value} does not fit a variable byte integer")]
    VariableByteIntegerTooLarge { value: u32 },

    /// The packet type does not exist in the client's protocol version.
    #[error("{packet} does not exist in MQTT {version:?}")]
    NotInVersion {
        packet: &'static str,
        version: ProtocolVersion,
    },

    /// A PUBLISH whose packet identifier does not match its QoS (one is
    /// required exactly for QoS 1 and 2).
    #[error("PUBLISH QoS {qos} with packet identifier {packet_id:?}")]
    PacketIdMismatch { qos: u8, packet_id: Option<u16> },
}
