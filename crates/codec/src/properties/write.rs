//! The property block of each packet, written from its properties struct.
//!
//! Every block is written twice, once into a [`Counter`] to learn the
//! property length that prefixes it and once for real, by the same
//! [`Properties::put`], so the announced length is always right.

use super::super::error::EncodeError;
use super::super::packet::{
    AckProperties, Auth, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, UserProperty,
};
use super::super::wire::{Counter, Sink, MAX_VAR_INT};
use super::*;

/// A packet's properties, writable as a property block.
pub(in super::super) trait Properties {
    /// Writes the properties without the length prefix.
    fn put<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError>;

    /// The length of the properties without the length prefix.
    fn len(&self) -> Result<usize, EncodeError> {
        let mut counter = Counter::default();
        self.put(&mut counter)?;
        Ok(counter.0)
    }
}

/// Writes the property block of `properties`: its length, then itself.
pub(in super::super) fn put_properties<S: Sink>(
    sink: &mut S,
    properties: &impl Properties,
) -> Result<(), EncodeError> {
    let len = properties.len()?;
    match u32::try_from(len) {
        Ok(len) if len <= MAX_VAR_INT => sink.put_var_int(len)?,
        _ => return Err(EncodeError::PacketTooLarge { size: len }),
    }
    properties.put(sink)
}

fn put_u8<S: Sink>(sink: &mut S, id: u8, value: Option<u8>) {
    if let Some(value) = value {
        sink.put_u8(id);
        sink.put_u8(value);
    }
}

fn put_bool<S: Sink>(sink: &mut S, id: u8, value: Option<bool>) {
    put_u8(sink, id, value.map(u8::from));
}

fn put_u16<S: Sink>(sink: &mut S, id: u8, value: Option<u16>) {
    if let Some(value) = value {
        sink.put_u8(id);
        sink.put_u16(value);
    }
}

fn put_u32<S: Sink>(sink: &mut S, id: u8, value: Option<u32>) {
    if let Some(value) = value {
        sink.put_u8(id);
        sink.put_u32(value);
    }
}

fn put_var_int<S: Sink>(sink: &mut S, id: u8, value: u32) -> Result<(), EncodeError> {
    sink.put_u8(id);
    sink.put_var_int(value)
}

fn put_string<S: Sink>(sink: &mut S, id: u8, value: &Option<String>) -> Result<(), EncodeError> {
    if let Some(value) = value {
        sink.put_u8(id);
        sink.put_string(value)?;
    }
    Ok(())
}

fn put_binary<S: Sink>(
    sink: &mut S,
    id: u8,
    value: &Option<bytes::Bytes>,
) -> Result<(), EncodeError> {
    if let Some(value) = value {
        sink.put_u8(id);
        sink.put_binary(value)?;
    }
    Ok(())
}

fn put_users<S: Sink>(sink: &mut S, users: &[UserProperty]) -> Result<(), EncodeError> {
    for (name, value) in users {
        sink.put_u8(USER_PROPERTY);
        sink.put_string(name)?;
        sink.put_string(value)?;
    }
    Ok(())
}

impl Properties for ConnectProperties {
    fn put<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError> {
        put_u32(sink, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        put_u16(sink, RECEIVE_MAXIMUM, self.receive_maximum);
        put_u32(sink, MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        put_u16(sink, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        put_bool(
            sink,
            REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
        );
        put_bool(
            sink,
            REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
        );
        put_users(sink, &self.user_properties)?;
        put_string(sink, AUTHENTICATION_METHOD, &self.authentication_method)?;
        put_binary(sink, AUTHENTICATION_DATA, &self.authentication_data)
    }
}

/// CONNACK properties in the order Mosquitto 2.0 writes them (captured
/// from Debian's 2.0.11, decision 0135): what `handle_connect.c` adds
/// (Topic Alias Maximum, Server Keep Alive, Assigned Client Identifier,
/// authentication), then what `send_connack.c` adds (Retain Available,
/// Maximum Packet Size, Receive Maximum, Maximum QoS), then the rest.
/// MQTT 5.0 defines no order; one order everywhere keeps fleetmq's answers
/// byte for byte equal to Mosquitto's under either configuration format.
impl Properties for ConnAckProperties {
    fn put<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError> {
        put_u16(sink, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        put_u16(sink, SERVER_KEEP_ALIVE, self.server_keep_alive);
        put_string(
            sink,
            ASSIGNED_CLIENT_IDENTIFIER,
            &self.assigned_client_identifier,
        )?;
        put_string(sink, AUTHENTICATION_METHOD, &self.authentication_method)?;
        put_binary(sink, AUTHENTICATION_DATA, &self.authentication_data)?;
        put_bool(sink, RETAIN_AVAILABLE, self.retain_available);
        put_u32(sink, MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        put_u16(sink, RECEIVE_MAXIMUM, self.receive_maximum);
        let maximum_qos = self.maximum_qos.map(|qos| qos as u8);
        put_u8(sink, MAXIMUM_QOS, maximum_qos);
        put_u32(sink, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        put_string(sink, REASON_STRING, &self.reason_string)?;
        put_users(sink, &self.user_properties)?;
        put_bool(
            sink,
            WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
        );
        put_bool(
            sink,
            SUBSCRIPTION_IDENTIFIERS_AVAILABLE,
            self.subscription_identifiers_available,
        );
        put_bool(
            sink,
            SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
        );
        put_string(sink, RESPONSE_INFORMATION, &self.response_information)?;
        put_string(sink, SERVER_REFERENCE, &self.server_reference)
    }
}

/// The properties PUBLISH and the will share.
fn put_message<S: Sink>(sink: &mut S, p: &PublishProperties) -> Result<(), EncodeError> {
    put_u8(sink, PAYLOAD_FORMAT_INDICATOR, p.payload_format_indicator);
    put_u32(sink, MESSAGE_EXPIRY_INTERVAL, p.message_expiry_interval);
    put_string(sink, CONTENT_TYPE, &p.content_type)?;
    put_string(sink, RESPONSE_TOPIC, &p.response_topic)?;
    put_binary(sink, CORRELATION_DATA, &p.correlation_data)?;
    put_users(sink, &p.user_properties)
}

/// PUBLISH in Mosquitto 2.0's order, so that byte-for-byte comparisons
/// hold (issue 15): Subscription Identifiers first, the message's own
/// properties in ascending id order (Mosquitto keeps the publisher's
/// order; publishers that send them ascending, as client libraries do, get
/// the same bytes), and the Message Expiry Interval, which the broker
/// rewrites on the way out, last.
impl Properties for PublishProperties {
    fn put<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError> {
        for identifier in &self.subscription_identifiers {
            put_var_int(sink, SUBSCRIPTION_IDENTIFIER, *identifier)?;
        }
        put_u8(
            sink,
            PAYLOAD_FORMAT_INDICATOR,
            self.payload_format_indicator,
        );
        put_string(sink, CONTENT_TYPE, &self.content_type)?;
        put_string(sink, RESPONSE_TOPIC, &self.response_topic)?;
        put_binary(sink, CORRELATION_DATA, &self.correlation_data)?;
        put_u16(sink, TOPIC_ALIAS, self.topic_alias);
        put_users(sink, &self.user_properties)?;
        put_u32(sink, MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        Ok(())
    }
}

/// The will properties of CONNECT (topic alias and subscription
/// identifiers do not exist there and are not written).
pub(in super::super) struct WillProperties<'a> {
    pub(in super::super) delay_interval: Option<u32>,
    pub(in super::super) message: &'a PublishProperties,
}

impl Properties for WillProperties<'_> {
    fn put<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError> {
        put_u32(sink, WILL_DELAY_INTERVAL, self.delay_interval);
        put_message(sink, self.message)
    }
}

impl Properties for AckProperties {
    fn put<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError> {
        put_string(sink, REASON_STRING, &self.reason_string)?;
        put_users(sink, &self.user_properties)
    }
}

/// The SUBSCRIBE properties.
pub(in super::super) struct SubscribeProperties<'a> {
    pub(in super::super) subscription_identifier: Option<u32>,
    pub(in super::super) user_properties: &'a [UserProperty],
}

impl Properties for SubscribeProperties<'_> {
    fn put<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError> {
        if let Some(identifier) = self.subscription_identifier {
            put_var_int(sink, SUBSCRIPTION_IDENTIFIER, identifier)?;
        }
        put_users(sink, self.user_properties)
    }
}

/// Properties made of user properties only (UNSUBSCRIBE).
pub(in super::super) struct UserProperties<'a>(pub(in super::super) &'a [UserProperty]);

impl Properties for UserProperties<'_> {
    fn put<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError> {
        put_users(sink, self.0)
    }
}

impl Properties for DisconnectProperties {
    fn put<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError> {
        put_u32(sink, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        put_string(sink, REASON_STRING, &self.reason_string)?;
        put_users(sink, &self.user_properties)?;
        put_string(sink, SERVER_REFERENCE, &self.server_reference)
    }
}

impl Properties for Auth {
    fn put<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError> {
        put_string(sink, AUTHENTICATION_METHOD, &self.authentication_method)?;
        put_binary(sink, AUTHENTICATION_DATA, &self.authentication_data)?;
        put_string(sink, REASON_STRING, &self.reason_string)?;
        put_users(sink, &self.user_properties)
    }
}
