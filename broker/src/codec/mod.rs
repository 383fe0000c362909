//! The MQTT wire format: bytes to [`Packet`] and back, for 3.1, 3.1.1 and 5.0.
//!
//! Owns framing (fixed header, remaining length), strict validation of every
//! packet against the specification (reserved flags, UTF-8 rules, property
//! sets per packet type, packet size limits) and the mapping of 5.0 reason
//! codes onto 3.1.1. It must not know about sessions, subscriptions or
//! sockets, and must not copy payloads: a decoded payload is a `Bytes` slice
//! of the read buffer.

mod decode;
mod encode;
mod error;
mod packet;
mod reason;

pub use decode::decode_packet;
pub use encode::{encode_packet, encoded_len};
pub use error::{DecodeError, EncodeError};
pub use packet::*;
pub use reason::ReasonCode;
