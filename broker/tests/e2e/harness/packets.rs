//! Byte builders: tests build client packets by hand so that malformed and
//! unusual packets are exactly what they look like, independent of the
//! broker's own encoder. [`ConnectBuilder`] and [`PublishBuilder`] for the
//! packets with many fields, functions for the others, [`prop`] for 5.0
//! properties.

// ---------------------------------------------------------------------------
// Byte builders. Tests build client packets by hand so that malformed and
// unusual packets are exactly what they look like, independent of the
// broker's own encoder.
// ---------------------------------------------------------------------------

/// Appends a variable byte integer.
pub fn varint(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            break;
        }
    }
}

/// Appends a length-prefixed UTF-8 string (or any bytes).
pub fn string(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
}

/// A whole packet: first byte, remaining length, body.
pub fn packet(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    varint(&mut out, body.len() as u32);
    out.extend_from_slice(body);
    out
}

/// 5.0 property encoders (identifier then value).
pub mod prop {
    pub fn u16(id: u8, value: u16) -> Vec<u8> {
        let mut out = vec![id];
        out.extend_from_slice(&value.to_be_bytes());
        out
    }
    pub fn u32(id: u8, value: u32) -> Vec<u8> {
        let mut out = vec![id];
        out.extend_from_slice(&value.to_be_bytes());
        out
    }
    pub fn varint(id: u8, value: u32) -> Vec<u8> {
        let mut out = vec![id];
        super::varint(&mut out, value);
        out
    }

    pub const MESSAGE_EXPIRY: u8 = 0x02;
    pub const SUBSCRIPTION_ID: u8 = 0x0B;
    pub const SESSION_EXPIRY: u8 = 0x11;
    pub const WILL_DELAY: u8 = 0x18;
    pub const TOPIC_ALIAS: u8 = 0x23;
}

/// Appends a 5.0 property block (length then properties).
fn properties(out: &mut Vec<u8>, props: &[u8]) {
    varint(out, props.len() as u32);
    out.extend_from_slice(props);
}

/// The will of a [`ConnectBuilder`]: (topic, payload, qos, retain, raw 5.0
/// will properties).
pub type WillSpec = (String, Vec<u8>, u8, bool, Vec<u8>);

/// Builds CONNECT bytes for 3.1.1 or 5.0.
#[derive(Clone, Debug)]
pub struct ConnectBuilder {
    pub protocol_name: Vec<u8>,
    pub level: u8,
    pub client_id: String,
    pub clean: bool,
    pub keep_alive: u16,
    /// Raw 5.0 CONNECT properties.
    pub properties: Vec<u8>,
    pub will: Option<WillSpec>,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    /// ORed into the connect flags byte (to set the reserved bit).
    pub extra_flags: u8,
}

impl ConnectBuilder {
    pub fn v311(client_id: &str) -> ConnectBuilder {
        ConnectBuilder {
            protocol_name: b"MQTT".to_vec(),
            level: 4,
            client_id: client_id.to_string(),
            clean: true,
            keep_alive: 60,
            properties: Vec::new(),
            will: None,
            username: None,
            password: None,
            extra_flags: 0,
        }
    }

    pub fn v5(client_id: &str) -> ConnectBuilder {
        ConnectBuilder {
            level: 5,
            ..ConnectBuilder::v311(client_id)
        }
    }

    pub fn clean(mut self, clean: bool) -> Self {
        self.clean = clean;
        self
    }

    pub fn keep_alive(mut self, seconds: u16) -> Self {
        self.keep_alive = seconds;
        self
    }

    pub fn property(mut self, bytes: Vec<u8>) -> Self {
        self.properties.extend_from_slice(&bytes);
        self
    }

    pub fn will(mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> Self {
        self.will = Some((topic.to_string(), payload.to_vec(), qos, retain, Vec::new()));
        self
    }

    pub fn will_property(mut self, bytes: Vec<u8>) -> Self {
        if let Some(will) = self.will.as_mut() {
            will.4.extend_from_slice(&bytes);
        }
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let v5 = self.level == 5;
        let mut body = Vec::new();
        string(&mut body, &self.protocol_name);
        body.push(self.level);
        let mut flags = self.extra_flags;
        if self.clean {
            flags |= 0x02;
        }
        if let Some((_, _, qos, retain, _)) = &self.will {
            flags |= 0x04 | (qos << 3);
            if *retain {
                flags |= 0x20;
            }
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        if self.username.is_some() {
            flags |= 0x80;
        }
        body.push(flags);
        body.extend_from_slice(&self.keep_alive.to_be_bytes());
        if v5 {
            properties(&mut body, &self.properties);
        }
        string(&mut body, self.client_id.as_bytes());
        if let Some((topic, payload, _, _, will_props)) = &self.will {
            if v5 {
                properties(&mut body, will_props);
            }
            string(&mut body, topic.as_bytes());
            string(&mut body, payload);
        }
        if let Some(username) = &self.username {
            string(&mut body, username.as_bytes());
        }
        if let Some(password) = &self.password {
            string(&mut body, password);
        }
        packet(0x10, &body)
    }
}

/// PUBLISH bytes: `publish(topic, payload)` is QoS 0, 3.1.1, no flags;
/// the setters add the rest, then [`PublishBuilder::build`].
pub fn publish(topic: &str, payload: &[u8]) -> PublishBuilder {
    PublishBuilder {
        topic: topic.to_string(),
        payload: payload.to_vec(),
        qos: 0,
        retain: false,
        dup: false,
        packet_id: None,
        v5: false,
        properties: Vec::new(),
    }
}

/// Builds PUBLISH bytes (see [`publish`]). Every field is written as given,
/// so a test can build what a well-behaved client never sends (QoS 3, DUP
/// on QoS 0, properties that contradict each other).
#[derive(Clone, Debug)]
pub struct PublishBuilder {
    topic: String,
    payload: Vec<u8>,
    /// The QoS bits of the first byte (0..=3; 3 is malformed).
    qos: u8,
    retain: bool,
    dup: bool,
    /// Written only for QoS > 0; 1 when QoS > 0 and none was given.
    packet_id: Option<u16>,
    /// Writes the 5.0 property block.
    v5: bool,
    /// Raw 5.0 properties (ignored for 3.1.1).
    properties: Vec<u8>,
}

impl PublishBuilder {
    pub fn qos(mut self, qos: u8) -> Self {
        self.qos = qos;
        self
    }

    pub fn packet_id(mut self, packet_id: u16) -> Self {
        self.packet_id = Some(packet_id);
        self
    }

    pub fn retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }

    pub fn dup(mut self, dup: bool) -> Self {
        self.dup = dup;
        self
    }

    /// The 5.0 form (a property block after the packet id).
    pub fn v5(mut self, v5: bool) -> Self {
        self.v5 = v5;
        self
    }

    /// Appends raw 5.0 properties (see [`prop`]).
    pub fn properties(mut self, bytes: &[u8]) -> Self {
        self.properties.extend_from_slice(bytes);
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let mut body = Vec::new();
        string(&mut body, self.topic.as_bytes());
        if self.qos > 0 {
            body.extend_from_slice(&self.packet_id.unwrap_or(1).to_be_bytes());
        }
        if self.v5 {
            properties(&mut body, &self.properties);
        }
        body.extend_from_slice(&self.payload);
        let first = 0x30 | (u8::from(self.dup) << 3) | (self.qos << 1) | u8::from(self.retain);
        packet(first, &body)
    }
}

/// SUBSCRIBE bytes: (filter, options byte) pairs; `props` raw 5.0 properties.
pub fn subscribe(packet_id: u16, filters: &[(&str, u8)], v5: bool, props: &[u8]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    if v5 {
        properties(&mut body, props);
    }
    for (filter, options) in filters {
        string(&mut body, filter.as_bytes());
        body.push(*options);
    }
    packet(0x82, &body)
}

/// UNSUBSCRIBE bytes.
pub fn unsubscribe(packet_id: u16, filters: &[&str], v5: bool) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    if v5 {
        properties(&mut body, &[]);
    }
    for filter in filters {
        string(&mut body, filter.as_bytes());
    }
    packet(0xA2, &body)
}

/// PUBACK/PUBREC/PUBREL/PUBCOMP bytes (first byte given, e.g. 0x62 for PUBREL).
pub fn ack(first_byte: u8, packet_id: u16) -> Vec<u8> {
    packet(first_byte, &packet_id.to_be_bytes())
}

/// DISCONNECT bytes; `reason` None gives the 3.1.1 form.
pub fn disconnect(reason: Option<u8>) -> Vec<u8> {
    match reason {
        None => vec![0xE0, 0x00],
        Some(code) => vec![0xE0, 0x02, code, 0x00],
    }
}
