//! MQTT 5.0 properties (§2.2.2): identifiers, value types, value rules, and
//! the property block of every packet in both directions.
//!
//! Owns reading one property block into typed [`Property`] values (unknown
//! identifiers, value rules and repeats are rejected here, once for every
//! packet) and writing each packet's properties struct. Which properties a
//! packet allows is spelled out once per packet: by the `match` of its
//! `read_*` function in `read.rs`, and by what its [`Properties`] impl in
//! `write.rs` can write. This module must not read anything outside a
//! property block, and the codec never calls it for 3.1/3.1.1.

use bytes::Bytes;

use super::error::DecodeError;
use super::packet::QoS;
use super::wire::Reader;

mod read;
mod write;

pub(super) use read::*;
pub(super) use write::*;

const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
const CONTENT_TYPE: u8 = 0x03;
const RESPONSE_TOPIC: u8 = 0x08;
const CORRELATION_DATA: u8 = 0x09;
const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
const SERVER_KEEP_ALIVE: u8 = 0x13;
const AUTHENTICATION_METHOD: u8 = 0x15;
const AUTHENTICATION_DATA: u8 = 0x16;
const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
const WILL_DELAY_INTERVAL: u8 = 0x18;
const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
const RESPONSE_INFORMATION: u8 = 0x1A;
const SERVER_REFERENCE: u8 = 0x1C;
const REASON_STRING: u8 = 0x1F;
const RECEIVE_MAXIMUM: u8 = 0x21;
const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
const TOPIC_ALIAS: u8 = 0x23;
const MAXIMUM_QOS: u8 = 0x24;
const RETAIN_AVAILABLE: u8 = 0x25;
const USER_PROPERTY: u8 = 0x26;
const MAXIMUM_PACKET_SIZE: u8 = 0x27;
const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
const SUBSCRIPTION_IDENTIFIERS_AVAILABLE: u8 = 0x29;
const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

/// One decoded property, its value already checked against the rules that
/// hold wherever it appears (non-zero, 0/1 flags).
#[derive(Debug)]
enum Property {
    PayloadFormatIndicator(u8),
    MessageExpiryInterval(u32),
    ContentType(String),
    ResponseTopic(String),
    CorrelationData(Bytes),
    SubscriptionIdentifier(u32),
    SessionExpiryInterval(u32),
    AssignedClientIdentifier(String),
    ServerKeepAlive(u16),
    AuthenticationMethod(String),
    AuthenticationData(Bytes),
    RequestProblemInformation(bool),
    WillDelayInterval(u32),
    RequestResponseInformation(bool),
    ResponseInformation(String),
    ServerReference(String),
    ReasonString(String),
    ReceiveMaximum(u16),
    TopicAliasMaximum(u16),
    TopicAlias(u16),
    MaximumQoS(QoS),
    RetainAvailable(bool),
    User(String, String),
    MaximumPacketSize(u32),
    WildcardSubscriptionAvailable(bool),
    SubscriptionIdentifiersAvailable(bool),
    SharedSubscriptionAvailable(bool),
}

impl Property {
    /// The name the specification gives this property, for errors.
    fn name(&self) -> &'static str {
        use Property::*;
        match self {
            PayloadFormatIndicator(_) => "Payload Format Indicator",
            MessageExpiryInterval(_) => "Message Expiry Interval",
            ContentType(_) => "Content Type",
            ResponseTopic(_) => "Response Topic",
            CorrelationData(_) => "Correlation Data",
            SubscriptionIdentifier(_) => "Subscription Identifier",
            SessionExpiryInterval(_) => "Session Expiry Interval",
            AssignedClientIdentifier(_) => "Assigned Client Identifier",
            ServerKeepAlive(_) => "Server Keep Alive",
            AuthenticationMethod(_) => "Authentication Method",
            AuthenticationData(_) => "Authentication Data",
            RequestProblemInformation(_) => "Request Problem Information",
            WillDelayInterval(_) => "Will Delay Interval",
            RequestResponseInformation(_) => "Request Response Information",
            ResponseInformation(_) => "Response Information",
            ServerReference(_) => "Server Reference",
            ReasonString(_) => "Reason String",
            ReceiveMaximum(_) => "Receive Maximum",
            TopicAliasMaximum(_) => "Topic Alias Maximum",
            TopicAlias(_) => "Topic Alias",
            MaximumQoS(_) => "Maximum QoS",
            RetainAvailable(_) => "Retain Available",
            User(..) => "User Property",
            MaximumPacketSize(_) => "Maximum Packet Size",
            WildcardSubscriptionAvailable(_) => "Wildcard Subscription Available",
            SubscriptionIdentifiersAvailable(_) => "Subscription Identifier Available",
            SharedSubscriptionAvailable(_) => "Shared Subscription Available",
        }
    }

    /// The error for this property appearing on `packet`.
    fn not_allowed(&self, packet: &'static str) -> DecodeError {
        DecodeError::PropertyNotAllowed {
            property: self.name(),
            packet,
        }
    }

    /// User Property may repeat everywhere; Subscription Identifier may
    /// repeat on PUBLISH only, which its reader checks.
    fn may_repeat(&self) -> bool {
        matches!(
            self,
            Property::User(..) | Property::SubscriptionIdentifier(_)
        )
    }
}

/// Reads a 0/1 byte property.
fn flag(reader: &mut Reader, name: &'static str) -> Result<bool, DecodeError> {
    match reader.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(DecodeError::InvalidPropertyValue {
            property: name,
            value,
        }),
    }
}

fn read_property(reader: &mut Reader) -> Result<(u8, Property), DecodeError> {
    use Property::*;
    let raw_id = reader.var_int()?;
    let id = u8::try_from(raw_id).map_err(|_| DecodeError::UnknownProperty { id: raw_id })?;
    let property = match id {
        PAYLOAD_FORMAT_INDICATOR => {
            PayloadFormatIndicator(u8::from(flag(reader, "Payload Format Indicator")?))
        }
        MESSAGE_EXPIRY_INTERVAL => MessageExpiryInterval(reader.u32()?),
        CONTENT_TYPE => ContentType(reader.string()?),
        RESPONSE_TOPIC => ResponseTopic(reader.string()?),
        CORRELATION_DATA => CorrelationData(reader.binary()?),
        SUBSCRIPTION_IDENTIFIER => match reader.var_int()? {
            0 => return Err(DecodeError::ZeroSubscriptionIdentifier),
            value => SubscriptionIdentifier(value),
        },
        SESSION_EXPIRY_INTERVAL => SessionExpiryInterval(reader.u32()?),
        ASSIGNED_CLIENT_IDENTIFIER => AssignedClientIdentifier(reader.string()?),
        SERVER_KEEP_ALIVE => ServerKeepAlive(reader.u16()?),
        AUTHENTICATION_METHOD => AuthenticationMethod(reader.string()?),
        AUTHENTICATION_DATA => AuthenticationData(reader.binary()?),
        REQUEST_PROBLEM_INFORMATION => {
            RequestProblemInformation(flag(reader, "Request Problem Information")?)
        }
        WILL_DELAY_INTERVAL => WillDelayInterval(reader.u32()?),
        REQUEST_RESPONSE_INFORMATION => {
            RequestResponseInformation(flag(reader, "Request Response Information")?)
        }
        RESPONSE_INFORMATION => ResponseInformation(reader.string()?),
        SERVER_REFERENCE => ServerReference(reader.string()?),
        REASON_STRING => ReasonString(reader.string()?),
        RECEIVE_MAXIMUM => match reader.u16()? {
            0 => return Err(DecodeError::ZeroReceiveMaximum),
            value => ReceiveMaximum(value),
        },
        TOPIC_ALIAS_MAXIMUM => TopicAliasMaximum(reader.u16()?),
        TOPIC_ALIAS => TopicAlias(reader.u16()?),
        MAXIMUM_QOS => match flag(reader, "Maximum QoS")? {
            false => MaximumQoS(QoS::AtMostOnce),
            true => MaximumQoS(QoS::AtLeastOnce),
        },
        RETAIN_AVAILABLE => RetainAvailable(flag(reader, "Retain Available")?),
        USER_PROPERTY => User(reader.string()?, reader.string()?),
        MAXIMUM_PACKET_SIZE => match reader.u32()? {
            0 => return Err(DecodeError::ZeroMaximumPacketSize),
            value => MaximumPacketSize(value),
        },
        WILDCARD_SUBSCRIPTION_AVAILABLE => {
            WildcardSubscriptionAvailable(flag(reader, "Wildcard Subscription Available")?)
        }
        SUBSCRIPTION_IDENTIFIERS_AVAILABLE => {
            SubscriptionIdentifiersAvailable(flag(reader, "Subscription Identifier Available")?)
        }
        SHARED_SUBSCRIPTION_AVAILABLE => {
            SharedSubscriptionAvailable(flag(reader, "Shared Subscription Available")?)
        }
        _ => return Err(DecodeError::UnknownProperty { id: raw_id }),
    };
    Ok((id, property))
}

/// Reads a property block (length, then properties) and hands each property
/// to `accept`, which rejects those its packet does not allow.
fn read_properties(
    reader: &mut Reader,
    mut accept: impl FnMut(Property) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let len = reader.var_int()? as usize;
    let mut block = Reader::new(reader.take(len)?);
    // Identifiers are below 64, so one bit each records what was seen.
    let mut seen: u64 = 0;
    while !block.is_empty() {
        let (id, property) = read_property(&mut block)?;
        let bit = 1u64 << id;
        if seen & bit != 0 && !property.may_repeat() {
            return Err(DecodeError::DuplicateProperty(property.name()));
        }
        seen |= bit;
        accept(property)?;
    }
    Ok(())
}
