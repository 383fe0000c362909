//! The property block of each packet, read into its properties struct.
//!
//! Each `read_*` function's `match` is that packet's allowed set (MQTT 5.0
//! table 2-4): anything else is [`DecodeError::PropertyNotAllowed`].

use super::super::error::DecodeError;
use super::super::packet::{
    AckProperties, Auth, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, UserProperty,
};
use super::super::wire::Reader;
use super::{read_properties, Property};

/// Reads the CONNECT properties.
pub(in super::super) fn read_connect(
    reader: &mut Reader,
) -> Result<ConnectProperties, DecodeError> {
    let mut p = ConnectProperties::default();
    read_properties(reader, |property| {
        match property {
            Property::SessionExpiryInterval(v) => p.session_expiry_interval = Some(v),
            Property::ReceiveMaximum(v) => p.receive_maximum = Some(v),
            Property::MaximumPacketSize(v) => p.maximum_packet_size = Some(v),
            Property::TopicAliasMaximum(v) => p.topic_alias_maximum = Some(v),
            Property::RequestResponseInformation(v) => p.request_response_information = Some(v),
            Property::RequestProblemInformation(v) => p.request_problem_information = Some(v),
            Property::User(k, v) => p.user_properties.push((k, v)),
            Property::AuthenticationMethod(v) => p.authentication_method = Some(v),
            Property::AuthenticationData(v) => p.authentication_data = Some(v),
            other => return Err(other.not_allowed("CONNECT")),
        }
        Ok(())
    })?;
    Ok(p)
}

/// Reads the CONNACK properties.
pub(in super::super) fn read_connack(
    reader: &mut Reader,
) -> Result<ConnAckProperties, DecodeError> {
    let mut p = ConnAckProperties::default();
    read_properties(reader, |property| {
        match property {
            Property::SessionExpiryInterval(v) => p.session_expiry_interval = Some(v),
            Property::ReceiveMaximum(v) => p.receive_maximum = Some(v),
            Property::MaximumQoS(v) => p.maximum_qos = Some(v),
            Property::RetainAvailable(v) => p.retain_available = Some(v),
            Property::MaximumPacketSize(v) => p.maximum_packet_size = Some(v),
            Property::AssignedClientIdentifier(v) => p.assigned_client_identifier = Some(v),
            Property::TopicAliasMaximum(v) => p.topic_alias_maximum = Some(v),
            Property::ReasonString(v) => p.reason_string = Some(v),
            Property::User(k, v) => p.user_properties.push((k, v)),
            Property::WildcardSubscriptionAvailable(v) => {
                p.wildcard_subscription_available = Some(v)
            }
            Property::SubscriptionIdentifiersAvailable(v) => {
                p.subscription_identifiers_available = Some(v)
            }
            Property::SharedSubscriptionAvailable(v) => p.shared_subscription_available = Some(v),
            Property::ServerKeepAlive(v) => p.server_keep_alive = Some(v),
            Property::ResponseInformation(v) => p.response_information = Some(v),
            Property::ServerReference(v) => p.server_reference = Some(v),
            Property::AuthenticationMethod(v) => p.authentication_method = Some(v),
            Property::AuthenticationData(v) => p.authentication_data = Some(v),
            other => return Err(other.not_allowed("CONNACK")),
        }
        Ok(())
    })?;
    Ok(p)
}

/// Stores a property that PUBLISH and the will share; hands back any other.
fn accept_message_property(p: &mut PublishProperties, property: Property) -> Option<Property> {
    match property {
        Property::PayloadFormatIndicator(v) => p.payload_format_indicator = Some(v),
        Property::MessageExpiryInterval(v) => p.message_expiry_interval = Some(v),
        Property::ContentType(v) => p.content_type = Some(v),
        Property::ResponseTopic(v) => p.response_topic = Some(v),
        Property::CorrelationData(v) => p.correlation_data = Some(v),
        Property::User(k, v) => p.user_properties.push((k, v)),
        other => return Some(other),
    }
    None
}

/// Reads the PUBLISH properties.
pub(in super::super) fn read_publish(
    reader: &mut Reader,
) -> Result<PublishProperties, DecodeError> {
    let mut p = PublishProperties::default();
    read_properties(reader, |property| {
        match accept_message_property(&mut p, property) {
            None => {}
            Some(Property::TopicAlias(v)) => p.topic_alias = Some(v),
            Some(Property::SubscriptionIdentifier(v)) => p.subscription_identifiers.push(v),
            Some(other) => return Err(other.not_allowed("PUBLISH")),
        }
        Ok(())
    })?;
    Ok(p)
}

/// Reads the will properties of CONNECT: the will delay and the rest.
pub(in super::super) fn read_will(
    reader: &mut Reader,
) -> Result<(Option<u32>, PublishProperties), DecodeError> {
    let mut p = PublishProperties::default();
    let mut delay = None;
    read_properties(reader, |property| {
        match accept_message_property(&mut p, property) {
            None => {}
            Some(Property::WillDelayInterval(v)) => delay = Some(v),
            Some(other) => return Err(other.not_allowed("CONNECT will properties")),
        }
        Ok(())
    })?;
    Ok((delay, p))
}

/// Reads the properties of the acks: PUBACK, PUBREC, PUBREL, PUBCOMP,
/// SUBACK, UNSUBACK.
pub(in super::super) fn read_ack(
    reader: &mut Reader,
    packet: &'static str,
) -> Result<AckProperties, DecodeError> {
    let mut p = AckProperties::default();
    read_properties(reader, |property| {
        match property {
            Property::ReasonString(v) => p.reason_string = Some(v),
            Property::User(k, v) => p.user_properties.push((k, v)),
            other => return Err(other.not_allowed(packet)),
        }
        Ok(())
    })?;
    Ok(p)
}

/// Reads the SUBSCRIBE properties: the subscription identifier and user
/// properties.
pub(in super::super) fn read_subscribe(
    reader: &mut Reader,
) -> Result<(Option<u32>, Vec<UserProperty>), DecodeError> {
    let mut identifier = None;
    let mut users = Vec::new();
    read_properties(reader, |property| {
        match property {
            Property::SubscriptionIdentifier(v) => {
                if identifier.replace(v).is_some() {
                    return Err(DecodeError::DuplicateProperty("Subscription Identifier"));
                }
            }
            Property::User(k, v) => users.push((k, v)),
            other => return Err(other.not_allowed("SUBSCRIBE")),
        }
        Ok(())
    })?;
    Ok((identifier, users))
}

/// Reads the UNSUBSCRIBE properties: user properties only.
pub(in super::super) fn read_unsubscribe(
    reader: &mut Reader,
) -> Result<Vec<UserProperty>, DecodeError> {
    let mut users = Vec::new();
    read_properties(reader, |property| {
        match property {
            Property::User(k, v) => users.push((k, v)),
            other => return Err(other.not_allowed("UNSUBSCRIBE")),
        }
        Ok(())
    })?;
    Ok(users)
}

/// Reads the DISCONNECT properties.
pub(in super::super) fn read_disconnect(
    reader: &mut Reader,
) -> Result<DisconnectProperties, DecodeError> {
    let mut p = DisconnectProperties::default();
    read_properties(reader, |property| {
        match property {
            Property::SessionExpiryInterval(v) => p.session_expiry_interval = Some(v),
            Property::ReasonString(v) => p.reason_string = Some(v),
            Property::User(k, v) => p.user_properties.push((k, v)),
            Property::ServerReference(v) => p.server_reference = Some(v),
            other => return Err(other.not_allowed("DISCONNECT")),
        }
        Ok(())
    })?;
    Ok(p)
}

/// Reads the AUTH properties into `auth`.
pub(in super::super) fn read_auth(reader: &mut Reader, auth: &mut Auth) -> Result<(), DecodeError> {
    read_properties(reader, |property| {
        match property {
            Property::AuthenticationMethod(v) => auth.authentication_method = Some(v),
            Property::AuthenticationData(v) => auth.authentication_data = Some(v),
            Property::ReasonString(v) => auth.reason_string = Some(v),
            Property::User(k, v) => auth.user_properties.push((k, v)),
            other => return Err(other.not_allowed("AUTH")),
        }
        Ok(())
    })
}
