//! HTTPS for the dashboard: a rustls server configuration from
//! `[http.tls]`. Handshakes run in [`super::serve`]'s accept loop, on each
//! connection's own task, bounded by its connection cap and timeouts.

use std::sync::Arc;

use rustls::ServerConfig;

use crate::tls::{read_certs, read_key, TlsError};
use fleetmq_core::config::HttpTlsConfig;

/// The server configuration of the HTTPS dashboard (no client certificates;
/// HTTP/1.1 only, which is all the server speaks).
pub fn server_config(files: &HttpTlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = read_certs(&files.cert)?;
    let key = read_key(&files.key)?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|error| TlsError::CertKey {
            cert: files.cert.clone(),
            key: files.key.clone(),
            detail: error.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
