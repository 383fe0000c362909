//! What the transport tells the core about a peer, as plain data: the
//! client certificate's facts ([`PeerCertificate`]), the issuer and serial
//! a CRL names it by and the set of revoked ones ([`CertificateSerial`],
//! [`RevokedSerials`]), what the TLS handshake negotiated ([`TlsInfo`]) and
//! how long each setup step took ([`ConnectClock`], [`HandshakeTiming`]).
//!
//! Auth, sessions, the engine and the events use these types. The TLS
//! handshake, certificate verification and reading CRL files stay in
//! fleetmq's `tls`: this module must not depend on rustls and decides no
//! trust.

mod certificate;
mod dn;
mod revoked;
mod timing;
mod tls_info;

pub use certificate::{serial_hex, CertificateParseError, PeerCertificate};
pub use revoked::{CertificateSerial, RevokedSerials};
pub use timing::{millis, AuthMode, ConnectClock, HandshakeSplit, HandshakeTiming};
pub use tls_info::TlsInfo;
