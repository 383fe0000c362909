//! What a TLS handshake negotiated and who the peer is, as plain data: the
//! connection events, the device registry and the dashboard show it. The
//! handshake itself (rustls) is fleetmq's `tls`; this module must not
//! depend on rustls.

use std::borrow::Cow;

use serde::Serialize;

use super::certificate::PeerCertificate;
use super::timing::AuthMode;

/// What the handshake negotiated, and who the peer is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsInfo {
    /// `TLSv1.2` or `TLSv1.3`. The names of the version, the suite and
    /// the group are rustls's static strings, not copies: every held
    /// connection keeps its `TlsInfo` (issue 22, memory per device).
    pub version: Cow<'static, str>,
    /// IANA name, e.g. `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`.
    pub cipher_suite: Cow<'static, str>,
    /// Key exchange group, e.g. `X25519`, `secp256r1`.
    pub kx_group: Option<Cow<'static, str>>,
    /// True when an earlier session was resumed (no full handshake).
    pub resumed: bool,
    pub auth: AuthMode,
    /// Server name the client asked for (SNI).
    pub server_name: Option<String>,
    /// The verified client certificate, when one was presented.
    pub client_cert: Option<PeerCertificate>,
}
