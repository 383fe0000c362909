//! PROXY protocol headers (HAProxy's v1 text and v2 binary) at the start
//! of a connection, for listeners behind an L4 balancer (`proxy_protocol`
//! in `[[listener]]`, Mosquitto 2.1's `enable_proxy_protocol`; decisions
//! 0123 and 0124).
//!
//! [`read_header`] reads exactly one header off the socket (never a byte
//! of what follows it, so TLS or MQTT starts on the next byte), within
//! [`HEADER_TIMEOUT`] and [`MAX_V2_PAYLOAD`], and says which client address
//! replaces the socket's: the header's source for `PROXY` commands, the
//! socket's own for `LOCAL` (balancer health checks) and `UNKNOWN` /
//! `AF_UNSPEC`. [`stray_header_version`] tells, on a listener that reads
//! no header, whether a connection's first bytes were one anyway, so it is
//! refused with a clear line instead of failing as MQTT or TLS garbage
//! ([`sniff_stray_header`] peeks for it on plain WebSocket listeners).
//!
//! The parsing is the `ppp` crate's; only the framing (how many bytes to
//! read) and the v2 SSL TLV are read here. It must not decide admission or
//! log: the accept path does both with the address this returns.

use std::net::SocketAddr;
use std::time::Duration;

use ppp::v2;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use fleetmq_core::config::{ListenerConfig, ProxyProtocol};
use fleetmq_core::peer::{AuthMode, PeerCertificate, TlsInfo};

/// Longest wait for a whole header after accept. A balancer sends it with
/// its first segment; anything slower is not a balancer.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest v2 payload (addresses and TLVs) accepted. Addresses take at
/// most 216 bytes (AF_UNIX); HAProxy's SSL TLVs with a CN, version and
/// cipher stay well under this. The format allows 65,535: a bound keeps a
/// connection that is not yet admitted from making the broker hold more.
pub const MAX_V2_PAYLOAD: usize = 1024;

/// Longest v1 header, CRLF included (the specification's bound).
const MAX_V1_LENGTH: usize = 107;

const V1_SIGNATURE: &[u8] = b"PROXY ";
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// v2 fixed part: signature, version/command, family/protocol, length.
const V2_FIXED_LENGTH: usize = 16;

/// PP2_TYPE_SSL and its sub-types (HAProxy's proxy-protocol.txt, 2.2.5).
const PP2_TYPE_SSL: u8 = 0x20;
const PP2_SUBTYPE_SSL_VERSION: u8 = 0x21;
const PP2_SUBTYPE_SSL_CN: u8 = 0x22;
const PP2_SUBTYPE_SSL_CIPHER: u8 = 0x23;
/// The client connected over TLS.
const PP2_CLIENT_SSL: u8 = 0x01;
/// The client presented a certificate on this connection / in its session.
const PP2_CLIENT_CERT_CONN: u8 = 0x02;
const PP2_CLIENT_CERT_SESS: u8 = 0x04;

/// What a header said about the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxied {
    /// The address the connection counts as from.
    pub client: SocketAddr,
    /// 1 or 2.
    pub version: u8,
    /// True when the header names no client (`LOCAL`, `UNKNOWN`,
    /// `AF_UNSPEC`, AF_UNIX): `client` is the socket's address.
    pub kept_socket_address: bool,
    /// TLS as the balancer terminated it, from the v2 SSL TLV; only on
    /// listeners with `proxy_protocol_tls_identity`.
    pub tls: Option<TlsInfo>,
}

/// Why a connection's header was refused, in the peer's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Nothing whole within [`HEADER_TIMEOUT`].
    Timeout,
    /// The peer closed or broke the connection before sending a byte
    /// (a balancer's plain TCP health check): not worth a log line.
    Closed,
    /// The peer closed or broke the connection within the header.
    Truncated,
    /// The first bytes are no PROXY header (an MQTT or TLS client that
    /// reached the listener past the balancer, or a balancer not set up
    /// to send one).
    Missing,
    /// A header of the version the listener does not take.
    WrongVersion { got: u8, expected: ProxyProtocol },
    /// Longer than the bound.
    TooLong,
    /// Not a header the parser accepts.
    Malformed(String),
}

impl HeaderError {
    /// A short label for logs and the event stream.
    pub fn reason(&self) -> &'static str {
        match self {
            HeaderError::Timeout => "proxy_header_timeout",
            HeaderError::Closed => "closed_before_proxy_header",
            HeaderError::Truncated => "proxy_header_truncated",
            HeaderError::Missing => "proxy_header_missing",
            HeaderError::WrongVersion { .. } => "proxy_header_wrong_version",
            HeaderError::TooLong => "proxy_header_too_long",
            HeaderError::Malformed(_) => "proxy_header_malformed",
        }
    }

    /// What went wrong, for the log line.
    pub fn describe(&self) -> String {
        match self {
            HeaderError::Timeout => format!(
                "no whole PROXY protocol header within {}s",
                HEADER_TIMEOUT.as_secs()
            ),
            HeaderError::Closed => "the connection closed before sending anything".into(),
            HeaderError::Truncated => "the connection closed before its PROXY header ended".into(),
            HeaderError::Missing => "the connection did not start with a PROXY protocol header, \
                 which this listener requires (proxy_protocol); is the client bypassing the \
                 balancer?"
                .into(),
            HeaderError::WrongVersion { got, expected } => format!(
                "a PROXY protocol v{got} header, but the listener takes {}",
                expected_name(*expected)
            ),
            HeaderError::TooLong => format!(
                "a PROXY protocol header longer than {MAX_V1_LENGTH} bytes (v1) or \
                 {MAX_V2_PAYLOAD} bytes of addresses and TLVs (v2)"
            ),
            HeaderError::Malformed(why) => format!("a malformed PROXY protocol header: {why}"),
        }
    }
}

fn expected_name(expected: ProxyProtocol) -> &'static str {
    match expected {
        ProxyProtocol::Off => "none",
        ProxyProtocol::V1 => "v1 only",
        ProxyProtocol::V2 => "v2 only",
        ProxyProtocol::Any => "v1 or v2",
    }
}

/// Reads the header the listener requires, by `deadline` at the latest.
pub async fn read_header(
    stream: &mut TcpStream,
    socket_peer: SocketAddr,
    settings: &ListenerConfig,
    deadline: Instant,
) -> Result<Proxied, HeaderError> {
    let read = read_header_bytes(stream, settings.proxy_protocol);
    let bytes = match tokio::time::timeout_at(deadline, read).await {
        Err(_) => return Err(HeaderError::Timeout),
        Ok(bytes) => bytes?,
    };
    parse(&bytes, socket_peer, settings.proxy_protocol_tls_identity)
}

/// The header's bytes: exactly one header, nothing after it.
async fn read_header_bytes(
    stream: &mut TcpStream,
    expected: ProxyProtocol,
) -> Result<Vec<u8>, HeaderError> {
    let mut first = [0u8; 1];
    if stream.read_exact(&mut first).await.is_err() {
        return Err(HeaderError::Closed);
    }
    let version = match first[0] {
        b'P' => 1,
        b'\r' => 2,
        _ => return Err(HeaderError::Missing),
    };
    let allowed = match expected {
        ProxyProtocol::Off => false,
        ProxyProtocol::V1 => version == 1,
        ProxyProtocol::V2 => version == 2,
        ProxyProtocol::Any => true,
    };
    if !allowed {
        return Err(HeaderError::WrongVersion {
            got: version,
            expected,
        });
    }
    let mut bytes = Vec::with_capacity(if version == 1 {
        MAX_V1_LENGTH
    } else {
        V2_FIXED_LENGTH
    });
    bytes.push(first[0]);
    if version == 1 {
        // Never past the CRLF: at least two more bytes are due unless the
        // last one read was the CR.
        while !bytes.ends_with(b"\r\n") {
            let due = if bytes.ends_with(b"\r") { 1 } else { 2 };
            if bytes.len() + due > MAX_V1_LENGTH {
                return Err(HeaderError::TooLong);
            }
            let start = bytes.len();
            bytes.resize(start + due, 0);
            read_exact(stream, &mut bytes[start..]).await?;
            if !V1_SIGNATURE.starts_with(&bytes[..bytes.len().min(V1_SIGNATURE.len())]) {
                return Err(HeaderError::Missing);
            }
        }
        return Ok(bytes);
    }
    bytes.resize(V2_FIXED_LENGTH, 0);
    read_exact(stream, &mut bytes[1..]).await?;
    if &bytes[..V2_SIGNATURE.len()] != V2_SIGNATURE {
        return Err(HeaderError::Missing);
    }
    let length = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    if length > MAX_V2_PAYLOAD {
        return Err(HeaderError::TooLong);
    }
    bytes.resize(V2_FIXED_LENGTH + length, 0);
    read_exact(stream, &mut bytes[V2_FIXED_LENGTH..]).await?;
    Ok(bytes)
}

async fn read_exact(stream: &mut TcpStream, into: &mut [u8]) -> Result<(), HeaderError> {
    stream
        .read_exact(into)
        .await
        .map(drop)
        .map_err(|_| HeaderError::Truncated)
}

/// What a whole header says; `tls_identity`: whether the listener takes
/// the v2 SSL TLV's word for the client certificate.
pub fn parse(
    bytes: &[u8],
    socket_peer: SocketAddr,
    tls_identity: bool,
) -> Result<Proxied, HeaderError> {
    let socket = |version| Proxied {
        client: socket_peer,
        version,
        kept_socket_address: true,
        tls: None,
    };
    if bytes.starts_with(V1_SIGNATURE) {
        let header = ppp::v1::Header::try_from(bytes)
            .map_err(|error| HeaderError::Malformed(error.to_string()))?;
        if header.header.len() != bytes.len() {
            return Err(HeaderError::Malformed("bytes after the CRLF".into()));
        }
        let client = match header.addresses {
            ppp::v1::Addresses::Unknown => return Ok(socket(1)),
            ppp::v1::Addresses::Tcp4(ip) => SocketAddr::from((ip.source_address, ip.source_port)),
            ppp::v1::Addresses::Tcp6(ip) => SocketAddr::from((ip.source_address, ip.source_port)),
        };
        return Ok(Proxied {
            client,
            version: 1,
            kept_socket_address: false,
            tls: None,
        });
    }
    let header =
        v2::Header::try_from(bytes).map_err(|error| HeaderError::Malformed(error.to_string()))?;
    if header.len() != bytes.len() {
        return Err(HeaderError::Malformed("length does not match".into()));
    }
    if header.command == v2::Command::Local {
        return Ok(socket(2));
    }
    let client = match header.addresses {
        v2::Addresses::IPv4(ip) => SocketAddr::from((ip.source_address, ip.source_port)),
        v2::Addresses::IPv6(ip) => SocketAddr::from((ip.source_address, ip.source_port)),
        v2::Addresses::Unspecified | v2::Addresses::Unix(_) => return Ok(socket(2)),
    };
    let tls = if tls_identity {
        let mut ssl = None;
        for tlv in header.tlvs() {
            let tlv = tlv.map_err(|error| HeaderError::Malformed(error.to_string()))?;
            if tlv.kind == PP2_TYPE_SSL {
                ssl = Some(tlv.value.into_owned());
            }
        }
        match ssl {
            Some(value) => ssl_tls_info(&value)?,
            None => None,
        }
    } else {
        None
    };
    Ok(Proxied {
        client,
        version: 2,
        kept_socket_address: false,
        tls,
    })
}

/// The TLS the balancer terminated, from a PP2_TYPE_SSL value: `client`
/// bits, `verify` (0: the certificate was verified) and sub-TLVs. A client
/// certificate counts only when the balancer says it was presented and
/// verified and names its CN (decision 0124).
fn ssl_tls_info(value: &[u8]) -> Result<Option<TlsInfo>, HeaderError> {
    let malformed = || HeaderError::Malformed("a truncated PP2_TYPE_SSL TLV".into());
    let (&client, rest) = value.split_first().ok_or_else(malformed)?;
    let verify = rest.get(..4).ok_or_else(malformed)?;
    let verified = verify == [0, 0, 0, 0];
    let mut sub = rest.get(4..).ok_or_else(malformed)?;
    let (mut version, mut cn, mut cipher) = (None, None, None);
    while !sub.is_empty() {
        let (kind, length) = match sub {
            [kind, high, low, ..] => (*kind, usize::from(u16::from_be_bytes([*high, *low]))),
            _ => return Err(malformed()),
        };
        let field = sub.get(3..3 + length).ok_or_else(malformed)?;
        let text = String::from_utf8_lossy(field).into_owned();
        match kind {
            PP2_SUBTYPE_SSL_VERSION => version = Some(text),
            PP2_SUBTYPE_SSL_CN => cn = Some(text),
            PP2_SUBTYPE_SSL_CIPHER => cipher = Some(text),
            _ => {}
        }
        sub = &sub[3 + length..];
    }
    if client & PP2_CLIENT_SSL == 0 {
        return Ok(None);
    }
    let presented = client & (PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS) != 0;
    let client_cert = match cn {
        Some(cn) if presented && verified && !cn.is_empty() => Some(balancer_certificate(cn)),
        _ => None,
    };
    Ok(Some(TlsInfo {
        version: version.map_or("unknown (at the balancer)".into(), Into::into),
        cipher_suite: cipher.unwrap_or_default().into(),
        kx_group: None,
        resumed: false,
        auth: if client_cert.is_some() {
            AuthMode::Mutual
        } else {
            AuthMode::OneWay
        },
        server_name: None,
        client_cert,
    }))
}

/// A certificate known only by the CN the balancer vouched for: no serial,
/// fingerprint, OUs or SANs (so CRLs, fingerprint groups and OU groups do
/// not apply to it; the balancer is where revocation happens).
fn balancer_certificate(cn: String) -> PeerCertificate {
    PeerCertificate {
        subject: format!("CN={cn}"),
        cn: Some(cn.into()),
        organizational_units: [].into(),
        san_dns: Vec::new(),
        san_uri: Vec::new(),
        san_email: Vec::new(),
        serial: "".into(),
        fingerprint_sha256: "".into(),
        issuer: "(verified by the PROXY protocol balancer)".into(),
        not_before: 0,
        not_after: 0,
        version: 3,
        weakness: None,
        key_type: "unknown".into(),
    }
}

/// The version of the PROXY header that `first` (a connection's first
/// bytes) starts with, if it does: at least the 5 bytes `PROXY` of a v1
/// header or 8 of the v2 signature, so a byte or two of MQTT or TLS that
/// happen to match are not taken for one. Pure, for the places that see a
/// connection's first bytes anyway (the TLS ClientHello read, the MQTT
/// CONNECT read) and ask only when those bytes failed as TLS or MQTT.
pub fn stray_header_version(first: &[u8]) -> Option<u8> {
    let v1 = &first[..first.len().min(V1_SIGNATURE.len())];
    let v2 = &first[..first.len().min(V2_SIGNATURE.len())];
    if v1.len() >= 5 && V1_SIGNATURE.starts_with(v1) {
        Some(1)
    } else if v2.len() >= 8 && V2_SIGNATURE.starts_with(v2) {
        Some(2)
    } else {
        None
    }
}

/// On a plain WebSocket listener that reads no header: the version of the
/// PROXY header the connection starts with, if it does. Looks at the first
/// bytes without taking them, waiting for them until `deadline` at the
/// latest. (TLS and MQTT listeners ask [`stray_header_version`] only when
/// the first bytes failed, which costs nothing on a good connection;
/// the HTTP upgrade is parsed by a crate that does not hand its bytes back.)
pub async fn sniff_stray_header(stream: &TcpStream, deadline: Instant) -> Option<u8> {
    let mut first = [0u8; 12];
    let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut first))
        .await
        .ok()?
        .ok()?;
    stray_header_version(first.get(..peeked)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "proxy_protocol_tests.rs"]
mod tests;
