//! Reaching a bridge's remote: name resolution, TCP and TLS, each failure
//! named in the words a lab user greps for (refused, unknown host, the
//! certificate problem).
//!
//! It must not speak MQTT: the link does, over the stream this returns.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream to the remote, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Connects to `host:port`, with TLS when `tls` is given, within `limit`.
pub async fn connect(
    host: &str,
    port: u16,
    tls: Option<&Arc<ClientConfig>>,
    limit: Duration,
) -> Result<Box<dyn Io>, String> {
    let addresses: Vec<_> =
        match tokio::time::timeout(limit, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(found)) => found.collect(),
            Ok(Err(error)) => return Err(format!("unknown host {host}: {error}")),
            Err(_) => {
                return Err(format!(
                    "unknown host {host}: no answer within {} s",
                    limit.as_secs()
                ))
            }
        };
    let mut last = format!("unknown host {host}: no address");
    let mut stream = None;
    for address in addresses {
        match tokio::time::timeout(limit, TcpStream::connect(address)).await {
            Ok(Ok(tcp)) => {
                stream = Some(tcp);
                break;
            }
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = format!("connection refused by {address}");
            }
            Ok(Err(error)) => last = format!("cannot connect to {address}: {error}"),
            Err(_) => last = format!("no answer from {address} within {} s", limit.as_secs()),
        }
    }
    let Some(tcp) = stream else {
        return Err(last);
    };
    let _ = tcp.set_nodelay(true);
    let Some(config) = tls else {
        return Ok(Box::new(tcp));
    };
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| format!("{host:?} cannot be checked against a certificate"))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
    match tokio::time::timeout(limit, connector.connect(name, tcp)).await {
        Ok(Ok(tls)) => Ok(Box::new(tls)),
        Ok(Err(error)) => Err(format!(
            "TLS handshake with {host}:{port} failed: {}",
            tls_reason(&error)
        )),
        Err(_) => Err(format!(
            "TLS handshake with {host}:{port} took over {} s",
            limit.as_secs()
        )),
    }
}

/// The rustls error inside an IO error, as its own words.
fn tls_reason(error: &std::io::Error) -> String {
    tls_problem(error).unwrap_or_else(|| error.to_string())
}

/// What a TLS error inside an IO error says about the link, if it is one:
/// the remote's certificate refused here, or ours refused there (with
/// TLS 1.3 that alert arrives after the handshake, at the first read).
pub fn tls_problem(error: &std::io::Error) -> Option<String> {
    match error.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(problem) => Some(format!(
            "the remote's certificate is not trusted ({problem:?}); check bridge_cafile / tls.ca_file"
        )),
        rustls::Error::AlertReceived(alert) => Some(format!(
            "the remote refused us ({alert:?}); check the bridge's certificate and key"
        )),
        other => Some(other.to_string()),
    }
}
