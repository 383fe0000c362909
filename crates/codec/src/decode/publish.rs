//! PUBLISH and its acknowledgements PUBACK, PUBREC, PUBREL, PUBCOMP (§3.3-3.7).
//!
//! PUBLISH is the hot path: the topic goes straight from the frame into an
//! `Arc<str>` (the connection's previous one when it is the same topic,
//! [`super::TopicCache`]) and the payload is the rest of the frame, never
//! copied.

use super::super::error::DecodeError;
use super::super::packet::{
    AckProperties, ProtocolVersion, PubResponse, Publish, PublishProperties, QoS,
};
use super::super::properties;
use super::super::reason::ReasonCode;
use super::super::wire::Reader;
use super::{packet_id, TopicCache};

/// PUBLISH: flags from the fixed header, topic, packet id, properties, payload.
pub(super) fn decode_publish(
    flags: u8,
    version: ProtocolVersion,
    reader: &mut Reader,
    topics: &mut TopicCache,
) -> Result<Publish, DecodeError> {
    let dup = flags & 0b1000 != 0;
    let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(DecodeError::InvalidQoS)?;
    let retain = flags & 1 != 0;
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::DupWithQoS0);
    }
    let topic = reader.str_with(|text| topics.topic(text))?;
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        QoS::AtLeastOnce | QoS::ExactlyOnce => Some(packet_id(reader, "PUBLISH")?),
    };
    let properties = if version.is_v5() {
        properties::read_publish(reader)?
    } else {
        PublishProperties::default()
    };
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        packet_id,
        payload: reader.rest(),
        properties,
    })
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP: packet id; in 5.0 a reason code and
/// properties, each of which may be left out (§3.4.2.1).
pub(super) fn decode_response(
    packet: &'static str,
    version: ProtocolVersion,
    reader: &mut Reader,
) -> Result<PubResponse, DecodeError> {
    let packet_id = packet_id(reader, packet)?;
    let mut reason = ReasonCode::SUCCESS;
    let mut properties = AckProperties::default();
    if version.is_v5() && !reader.is_empty() {
        reason = ReasonCode(reader.u8()?);
        if !reader.is_empty() {
            properties = properties::read_ack(reader, packet)?;
        }
    }
    Ok(PubResponse {
        packet_id,
        reason,
        properties,
    })
}
