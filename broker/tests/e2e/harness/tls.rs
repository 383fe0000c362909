//! The client side of the TLS tests: rustls client configurations from the
//! test PKI, a blocking TLS [`Transport`] for [`RawClient`](super::RawClient),
//! and the broker's TLS log lines read back as values.
//!
//! The client trusts only the test CA and checks the server name
//! `localhost`, as a device would.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, StreamOwned, SupportedProtocolVersion,
};

use super::pki::Issued;
use super::{Broker, WAIT};

/// TLS 1.3 and 1.2, as rustls offers by default.
pub const ANY_VERSION: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];
pub const TLS12_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
pub const TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// A client configuration trusting the CA in `ca`, presenting `identity`
/// when the server asks for a certificate. Sharing one configuration
/// between connections shares its session cache, so the later ones resume.
pub fn client_config(
    ca: &Path,
    identity: Option<&Issued>,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read ca") {
        roots.add(cert.expect("ca pem")).expect("add ca");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match identity {
        Some(identity) => {
            let chain = CertificateDer::pem_file_iter(&identity.cert)
                .expect("read cert")
                .collect::<Result<Vec<_>, _>>()
                .expect("cert pem");
            let key = PrivateKeyDer::from_pem_file(&identity.key).expect("read key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client cert and key")
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// What a [`RawClient`](super::RawClient) talks over.
pub enum Transport {
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Transport {
    /// The TCP socket underneath (timeouts, shutdown).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Tcp(stream) => stream,
            Transport::Tls(stream) => &stream.sock,
        }
    }

    /// The TLS session, if this is TLS.
    pub fn tls(&self) -> Option<&ClientConnection> {
        match self {
            Transport::Tcp(_) => None,
            Transport::Tls(stream) => Some(&stream.conn),
        }
    }

    /// The certificate the server presented (DER).
    pub fn server_cert(&self) -> Vec<u8> {
        let tls = self.tls().expect("a TLS transport");
        tls.peer_certificates()
            .and_then(|chain| chain.first())
            .map(|cert| cert.to_vec())
            .expect("server presented a certificate")
    }

    /// True when the handshake resumed an earlier session.
    pub fn resumed(&self) -> bool {
        let tls = self.tls().expect("a TLS transport");
        tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(stream) => stream.read(buf),
            Transport::Tls(stream) => stream.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(stream) => stream.write(buf),
            Transport::Tls(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Tcp(stream) => stream.flush(),
            Transport::Tls(stream) => stream.flush(),
        }
    }
}

/// Connects and completes the client side of a TLS handshake (server name
/// `localhost`) within [`WAIT`]. With TLS 1.3 the client finishes before the
/// server has checked its certificate: a rejection then shows on the first
/// read, not here.
pub fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> io::Result<Transport> {
    let mut tcp = TcpStream::connect_timeout(&addr, WAIT)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(WAIT))?;
    tcp.set_write_timeout(Some(WAIT))?;
    let name = ServerName::try_from("localhost").expect("server name");
    let mut conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    while conn.wants_write() {
        conn.write_tls(&mut tcp)?;
    }
    Ok(Transport::Tls(Box::new(StreamOwned::new(conn, tcp))))
}

/// The broker's debug line for one client's setup:
/// `Client ID setup: TLS 5.762 ms (TLSv1.3, SUITE, GROUP, full|resumed,
/// one_way|mutual), CONNECT after ..., CONNACK after ..., total ....`
#[derive(Debug, Clone, PartialEq)]
pub struct SetupLine {
    /// TCP accept to handshake done, in milliseconds.
    pub tls_ms: f64,
    pub version: String,
    pub cipher_suite: String,
    pub kx_group: String,
    pub resumed: bool,
    /// `one_way` or `mutual` (or `plain`).
    pub auth: String,
}

impl SetupLine {
    fn parse(line: &str, client_id: &str) -> Option<SetupLine> {
        let rest = line
            .split(&format!("Client {client_id} setup: TLS "))
            .nth(1)?;
        let (ms, rest) = rest.split_once(" ms (")?;
        let (inside, _) = rest.split_once(')')?;
        let parts: Vec<&str> = inside.split(", ").collect();
        let [version, suite, group, kind, auth] = parts.as_slice() else {
            return None;
        };
        Some(SetupLine {
            tls_ms: ms.parse().ok()?,
            version: version.to_string(),
            cipher_suite: suite.to_string(),
            kx_group: group.to_string(),
            resumed: match *kind {
                "resumed" => true,
                "full" => false,
                _ => return None,
            },
            auth: auth.to_string(),
        })
    }
}

/// The setup line of `client_id` (the broker must log at debug for
/// `fleetmq`, see [`DEBUG_LOG`]); panics with the logs after `timeout`.
pub fn setup_line(broker: &Broker, client_id: &str, timeout: Duration) -> SetupLine {
    let needle = format!("Client {client_id} setup: TLS ");
    broker.assert_log(&needle, timeout);
    broker
        .logs()
        .lines()
        .find_map(|line| SetupLine::parse(line, client_id))
        .unwrap_or_else(|| {
            panic!(
                "setup line of {client_id} does not parse; logs:\n{}",
                broker.logs()
            )
        })
}

/// Config text that makes the broker log setup lines.
pub const DEBUG_LOG: &str = "[log]\nlevel = \"info,fleetmq=debug\"\n";

/// Waits for a failed handshake on `listener` with `reason` in the log
/// (`reason=unknown_ca` etc.); panics with the logs after [`WAIT`].
pub fn assert_handshake_failed(broker: &Broker, listener: &str, reason: &str) {
    let needles = [
        &format!("on listener \"{listener}\" failed") as &str,
        &reason_field(reason),
    ];
    let seen = broker.wait_for_log_lines(&needles, 1, WAIT);
    assert!(
        seen >= 1,
        "no handshake failure with reason {reason} on {listener}; logs:\n{}",
        broker.logs()
    );
}

/// The `reason` field of a handshake failure line as the broker prints it.
pub fn reason_field(reason: &str) -> String {
    format!("reason=\"{reason}\"")
}
