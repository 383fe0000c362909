//! The MQTT wire format: bytes to [`Packet`] and back, for 3.1, 3.1.1 and 5.0.
//!
//! Owns framing (fixed header, remaining length), strict validation of every
//! packet against the specification (reserved flags, UTF-8 rules, property
//! sets per packet type, packet size limits) and the mapping of 5.0 reason
//! codes onto 3.1.1. It must not know about sessions, subscriptions or
//! sockets, and must not copy payloads: a decoded payload is a `Bytes` slice
//! of the read buffer.
//!
//! Layout of this crate (`fleetmq-codec`, packets and bytes only: it depends
//! on `bytes` and `thiserror`, never on tokio, rustls, axum or redb):
//!
//! - `header`: packet type numbers, the first byte, remaining length.
//! - `wire`: integers, strings, binary data.
//! - `properties`: 5.0 property blocks, read and written.
//! - `decode` and `encode`: one function per packet type
//!   ([`decode_packet`], [`encode_packet`], [`encoded_len`]).
//! - `packet`: the [`Packet`] types; `reason`: [`ReasonCode`] and its 3.1.1
//!   mapping; `error`: [`DecodeError`] and [`EncodeError`], each variant
//!   citing the normative statement it enforces.

mod decode;
mod encode;
mod error;
mod header;
mod packet;
mod properties;
mod reason;
mod wire;

#[cfg(test)]
mod tests;

pub use decode::{decode_packet, decode_packet_with, TopicCache};
pub use encode::{encode_packet, encoded_len};
pub use error::{DecodeError, EncodeError};
pub use packet::*;
pub use reason::ReasonCode;
