//! Clients for the dashboard tests: a minimal blocking HTTP/1.1 client
//! (plain or over rustls) and an MQTT client over rustls that can present a
//! client certificate and resume TLS sessions.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::{decode_packet, ConnAck, ConnectBuilder, Packet, ProtocolVersion, WAIT};

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends one request (`Connection: close`) and reads the whole response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect to HTTP");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    exchange(stream, addr, method, path, headers, body)
}

/// `GET path` with an optional bearer token.
pub fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    request(addr, "GET", path, &headers, "")
}

/// `GET path` over HTTPS, trusting what `config` trusts.
pub fn https_get(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    path: &str,
    token: Option<&str>,
) -> Response {
    let tcp = TcpStream::connect_timeout(&addr, WAIT).expect("connect to HTTPS");
    tcp.set_read_timeout(Some(WAIT)).expect("timeout");
    let name = ServerName::try_from("localhost").expect("name");
    let connection = ClientConnection::new(Arc::clone(config), name).expect("TLS client");
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    exchange(
        StreamOwned::new(connection, tcp),
        addr,
        "GET",
        path,
        &headers,
        "",
    )
}

fn exchange<S: Read + Write>(
    mut stream: S,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    // A `Host` among `headers` replaces the default one (DNS rebinding tests).
    let host = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("host"))
        .map_or_else(|| addr.to_string(), |(_, value)| value.to_string());
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("host"))
    {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write request");
    stream.write_all(body.as_bytes()).expect("write body");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response head in {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || tail.len() < size {
            break;
        }
        body.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    body
}

/// Polls `check` every 50 ms until it returns Some, for up to `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A rustls client configuration trusting `ca`, presenting `identity`
/// (cert, key) when given. Reuse one configuration to resume sessions.
pub fn tls_client_config(ca: &Path, identity: Option<(&Path, &Path)>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read CA") {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let builder = ClientConfig::builder().with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .expect("read client cert")
                .map(|c| c.expect("cert PEM"))
                .collect();
            let key = PrivateKeyDer::from_pem_file(key).expect("read client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client cert and key")
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// An MQTT connection over TLS.
pub struct TlsMqtt {
    stream: StreamOwned<ClientConnection, TcpStream>,
    read_buf: BytesMut,
    version: ProtocolVersion,
    /// The client's own address, as the broker sees it.
    pub local_addr: SocketAddr,
}

impl TlsMqtt {
    /// TLS handshake, CONNECT, CONNACK; then a PINGREQ round trip so TLS
    /// 1.3 session tickets sent after the handshake are stored for the next
    /// connection.
    pub fn connect(
        addr: SocketAddr,
        config: &Arc<ClientConfig>,
        connect: &ConnectBuilder,
    ) -> TlsMqtt {
        let mut client = TlsMqtt::try_connect(addr, config, connect).expect("TLS MQTT connect");
        client.ping();
        client
    }

    /// Like [`TlsMqtt::connect`] but returns the error of a refused
    /// handshake instead of panicking.
    pub fn try_connect(
        addr: SocketAddr,
        config: &Arc<ClientConfig>,
        connect: &ConnectBuilder,
    ) -> Result<TlsMqtt, String> {
        let tcp = TcpStream::connect_timeout(&addr, WAIT).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(WAIT))
            .map_err(|e| e.to_string())?;
        let local_addr = tcp.local_addr().map_err(|e| e.to_string())?;
        let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let connection =
            ClientConnection::new(Arc::clone(config), name).map_err(|e| e.to_string())?;
        let mut client = TlsMqtt {
            stream: StreamOwned::new(connection, tcp),
            read_buf: BytesMut::new(),
            version: if connect.level == 5 {
                ProtocolVersion::V5
            } else {
                ProtocolVersion::V3_1_1
            },
            local_addr,
        };
        client
            .stream
            .write_all(&connect.build())
            .map_err(|e| e.to_string())?;
        match client.recv().map_err(|e| e.to_string())? {
            Some(Packet::ConnAck(ConnAck { reason, .. })) if reason.0 == 0 => Ok(client),
            other => Err(format!("expected CONNACK success, got {other:?}")),
        }
    }

    fn recv(&mut self) -> std::io::Result<Option<Packet>> {
        loop {
            if let Ok(Some(packet)) =
                decode_packet(&mut self.read_buf, Some(self.version), u32::MAX)
            {
                return Ok(Some(packet));
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk)? {
                0 => return Ok(None),
                n => self.read_buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    pub fn ping(&mut self) {
        self.stream.write_all(&[0xC0, 0x00]).expect("PINGREQ");
        match self.recv() {
            Ok(Some(Packet::PingResp)) => {}
            other => panic!("expected PINGRESP, got {other:?}"),
        }
    }

    /// DISCONNECT, then TLS close_notify.
    pub fn disconnect(mut self) {
        let _ = self.stream.write_all(&[0xE0, 0x00]);
        self.stream.conn.send_close_notify();
        let _ = self.stream.flush();
    }
}
