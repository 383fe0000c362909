//! SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK (§3.8-3.11).
//!
//! Topic filters are decoded as strings only: whether a filter is valid
//! (wildcard placement, `$share` syntax, length) is the router's call.

use super::super::error::DecodeError;
use super::super::packet::{
    AckProperties, ProtocolVersion, QoS, SubAck, Subscribe, SubscriptionOptions, UnsubAck,
    Unsubscribe,
};
use super::super::properties;
use super::super::reason::ReasonCode;
use super::super::wire::Reader;
use super::packet_id;

/// Subscription options (5.0) or requested QoS (3.1.1) byte.
fn subscription_options(
    options: u8,
    version: ProtocolVersion,
) -> Result<SubscriptionOptions, DecodeError> {
    if version.is_v5() {
        if options & 0b1100_0000 != 0 {
            return Err(DecodeError::SubscriptionOptionsReservedBits { options });
        }
    } else if options & 0b1111_1100 != 0 {
        return Err(DecodeError::SubscribeReservedBits { options });
    }
    let retain_handling = (options >> 4) & 0b11;
    if retain_handling == 3 {
        return Err(DecodeError::InvalidRetainHandling);
    }
    Ok(SubscriptionOptions {
        qos: QoS::from_u8(options & 0b11).ok_or(DecodeError::InvalidSubscriptionQoS)?,
        no_local: options & 0b0100 != 0,
        retain_as_published: options & 0b1000 != 0,
        retain_handling,
    })
}

/// SUBSCRIBE: packet id, properties, then at least one (filter, options).
pub(super) fn decode_subscribe(
    version: ProtocolVersion,
    reader: &mut Reader,
) -> Result<Subscribe, DecodeError> {
    let packet_id = packet_id(reader, "SUBSCRIBE")?;
    let (subscription_identifier, user_properties) = if version.is_v5() {
        properties::read_subscribe(reader)?
    } else {
        (None, Vec::new())
    };
    let mut filters = Vec::new();
    while !reader.is_empty() {
        let filter = reader.string()?;
        let options = subscription_options(reader.u8()?, version)?;
        filters.push((filter, options));
    }
    if filters.is_empty() {
        return Err(DecodeError::NoTopicFilters {
            packet: "SUBSCRIBE",
        });
    }
    Ok(Subscribe {
        packet_id,
        filters,
        subscription_identifier,
        user_properties,
    })
}

/// SUBACK: packet id, properties, one return code or reason per filter.
pub(super) fn decode_suback(
    version: ProtocolVersion,
    reader: &mut Reader,
) -> Result<SubAck, DecodeError> {
    let packet_id = packet_id(reader, "SUBACK")?;
    let properties = if version.is_v5() {
        properties::read_ack(reader, "SUBACK")?
    } else {
        AckProperties::default()
    };
    let mut reasons = Vec::with_capacity(reader.remaining());
    while !reader.is_empty() {
        let code = reader.u8()?;
        if !version.is_v5() && !matches!(code, 0 | 1 | 2 | 0x80) {
            return Err(DecodeError::InvalidSubAckReturnCode { code });
        }
        reasons.push(ReasonCode(code));
    }
    Ok(SubAck {
        packet_id,
        reasons,
        properties,
    })
}

/// UNSUBSCRIBE: packet id, properties, then at least one filter.
pub(super) fn decode_unsubscribe(
    version: ProtocolVersion,
    reader: &mut Reader,
) -> Result<Unsubscribe, DecodeError> {
    let packet_id = packet_id(reader, "UNSUBSCRIBE")?;
    let user_properties = if version.is_v5() {
        properties::read_unsubscribe(reader)?
    } else {
        Vec::new()
    };
    let mut filters = Vec::new();
    while !reader.is_empty() {
        filters.push(reader.string()?);
    }
    if filters.is_empty() {
        return Err(DecodeError::NoTopicFilters {
            packet: "UNSUBSCRIBE",
        });
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        user_properties,
    })
}

/// UNSUBACK: packet id; in 5.0 properties and one reason per filter.
pub(super) fn decode_unsuback(
    version: ProtocolVersion,
    reader: &mut Reader,
) -> Result<UnsubAck, DecodeError> {
    let packet_id = packet_id(reader, "UNSUBACK")?;
    let mut unsuback = UnsubAck {
        packet_id,
        reasons: Vec::new(),
        properties: AckProperties::default(),
    };
    if version.is_v5() {
        unsuback.properties = properties::read_ack(reader, "UNSUBACK")?;
        while !reader.is_empty() {
            unsuback.reasons.push(ReasonCode(reader.u8()?));
        }
    }
    Ok(unsuback)
}
