//! TLS for MQTT listeners: rustls server configurations per listener with
//! the client-certificate policy `none | optional | required`, CRLs, session
//! resumption (TLS 1.2 session ids and tickets, TLS 1.3 tickets), bounded
//! and timed handshakes, and the identity a client certificate carries.
//!
//! It must not know MQTT: it hands a finished `TlsStream` plus [`TlsInfo`]
//! and the [`ConnectClock`] to the connection code.

mod accept;
mod files;
mod identity;
mod server_config;
mod timing;

pub use accept::{handshake, HandshakeFailure, TlsInfo};
pub use files::resolve_files;
pub use identity::{CertificateParseError, PeerCertificate};
pub use server_config::{read_certs, read_key, TlsError, TlsFiles, TlsListener};
pub use timing::{millis, AuthMode, ConnectClock, HandshakeTiming};
