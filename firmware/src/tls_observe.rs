//! What the TLS handshake negotiated, read from the handshake bytes.
//!
//! mbedtls-rs 0.3 does not expose the negotiated cipher suite or whether a
//! session was resumed, but both travel in the clear: the ClientHello carries
//! the offered session id, the ServerHello the chosen suite, the echoed
//! session id (TLS 1.2 resumption) and, for TLS 1.3, the `supported_versions`
//! and `pre_shared_key` extensions. [`HandshakeObserver`] watches the first
//! bytes in each direction and answers those questions, which gives the lab
//! its familiar `ciphersuite: TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256` line.
//! It never influences the handshake; garbage yields "unknown".

use alloc::vec::Vec;

/// How many bytes of each direction are kept (a ServerHello is ~100 bytes).
const KEEP: usize = 512;

/// The observed outcome of a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeSummary {
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: &'static str,
    /// IANA cipher suite number.
    pub suite: u16,
    /// The server accepted the offered session (id, ticket or PSK).
    pub resumed: bool,
}

impl HandshakeSummary {
    /// The suite in mbedTLS's spelling (what Mongoose-OS logs).
    pub fn suite_name(&self) -> SuiteName {
        SuiteName(self.suite)
    }
}

/// Displays a cipher suite by name, or its number when unknown.
#[derive(Debug, Clone, Copy)]
pub struct SuiteName(pub u16);

impl core::fmt::Display for SuiteName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match self.0 {
            0x009C => "TLS-RSA-WITH-AES-128-GCM-SHA256",
            0x009D => "TLS-RSA-WITH-AES-256-GCM-SHA384",
            0xC02B => "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256",
            0xC02C => "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384",
            0xC02F => "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256",
            0xC030 => "TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384",
            0xCCA8 => "TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256",
            0xCCA9 => "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256",
            0x1301 => "TLS1-3-AES-128-GCM-SHA256",
            0x1302 => "TLS1-3-AES-256-GCM-SHA384",
            0x1303 => "TLS1-3-CHACHA20-POLY1305-SHA256",
            other => return write!(f, "0x{other:04X}"),
        };
        f.write_str(name)
    }
}

/// Collects the start of both directions of a handshake.
#[derive(Debug, Default)]
pub struct HandshakeObserver {
    client: Vec<u8>,
    server: Vec<u8>,
}

impl HandshakeObserver {
    /// An observer that has seen nothing.
    pub fn new() -> HandshakeObserver {
        HandshakeObserver::default()
    }

    /// Bytes the client wrote.
    pub fn client_bytes(&mut self, bytes: &[u8]) {
        keep(&mut self.client, bytes);
    }

    /// Bytes the server sent.
    pub fn server_bytes(&mut self, bytes: &[u8]) {
        keep(&mut self.server, bytes);
    }

    /// True once the answer is known or cannot come any more (no need to
    /// copy more bytes).
    pub fn is_complete(&self) -> bool {
        self.server.len() >= KEEP || self.summary().is_some()
    }

    /// The negotiated version, suite and resumption, once the ServerHello
    /// has been seen; `None` if the bytes do not parse.
    pub fn summary(&self) -> Option<HandshakeSummary> {
        let client = first_handshake(&self.client, 1)?;
        let server = first_handshake(&self.server, 2)?;
        let offered_id = session_id(client)?;
        let hello = parse_server_hello(server)?;
        let tls13 = hello.supported_version == Some(0x0304);
        let resumed = if tls13 {
            hello.pre_shared_key
        } else {
            !offered_id.is_empty() && offered_id == hello.session_id
        };
        Some(HandshakeSummary {
            version: if tls13 { "TLSv1.3" } else { "TLSv1.2" },
            suite: hello.suite,
            resumed,
        })
    }
}

fn keep(buffer: &mut Vec<u8>, bytes: &[u8]) {
    let room = KEEP.saturating_sub(buffer.len());
    buffer.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

/// The body of the first handshake message in the first record, if it has
/// type `msg_type`; only its kept prefix when it is longer than [`KEEP`] (a
/// ClientHello carrying a session ticket is, and its session id comes
/// first).
fn first_handshake(stream: &[u8], msg_type: u8) -> Option<&[u8]> {
    // Record: type 22 (handshake), version (2), length (2).
    let (&content_type, rest) = stream.split_first()?;
    if content_type != 22 {
        return None;
    }
    let record_len = usize::from(u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]));
    let record = rest.get(4..4 + record_len.min(rest.len().saturating_sub(4)))?;
    let (&kind, rest) = record.split_first()?;
    if kind != msg_type {
        return None;
    }
    let len = (usize::from(*rest.first()?) << 16)
        | (usize::from(*rest.get(1)?) << 8)
        | usize::from(*rest.get(2)?);
    let body = rest.get(3..)?;
    Some(&body[..len.min(body.len())])
}

/// The session id of a ClientHello or ServerHello body.
fn session_id(hello: &[u8]) -> Option<&[u8]> {
    let len = usize::from(*hello.get(34)?);
    hello.get(35..35 + len)
}

struct ServerHello<'a> {
    session_id: &'a [u8],
    suite: u16,
    supported_version: Option<u16>,
    pre_shared_key: bool,
}

fn parse_server_hello(body: &[u8]) -> Option<ServerHello<'_>> {
    let sid = session_id(body)?;
    let at = 35 + sid.len();
    let suite = u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]);
    let mut hello = ServerHello {
        session_id: sid,
        suite,
        supported_version: None,
        pre_shared_key: false,
    };
    // Extensions (optional in TLS 1.2).
    let Some(ext_len) = body.get(at + 3..at + 5) else {
        return Some(hello);
    };
    let ext_len = usize::from(u16::from_be_bytes([ext_len[0], ext_len[1]]));
    let mut extensions = body.get(at + 5..at + 5 + ext_len)?;
    while extensions.len() >= 4 {
        let kind = u16::from_be_bytes([extensions[0], extensions[1]]);
        let len = usize::from(u16::from_be_bytes([extensions[2], extensions[3]]));
        let data = extensions.get(4..4 + len)?;
        match kind {
            43 if data.len() == 2 => {
                hello.supported_version = Some(u16::from_be_bytes([data[0], data[1]]));
            }
            41 => hello.pre_shared_key = true,
            _ => {}
        }
        extensions = &extensions[4 + len..];
    }
    Some(hello)
}

#[cfg(test)]
#[path = "tls_observe_tests.rs"]
mod tests;
