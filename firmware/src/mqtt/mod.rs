//! A small MQTT 3.1.1 client: what one device needs and nothing more.
//!
//! [`codec`] turns packets into bytes and back (strictly: a malformed packet
//! from the broker is an error, never a panic); [`session`] is the client's
//! protocol logic without any IO (CONNECT/CONNACK, the retained status, the
//! command subscription, keepalive), so every rule is tested on the host and
//! the same code drives the device and the simulation.

pub mod codec;
pub mod session;

pub use codec::{decode, DecodeError, Packet};
pub use session::{MqttSession, Output, SessionError};
