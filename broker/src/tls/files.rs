//! Which files a TLS listener uses: those its configuration names, and for
//! what it leaves out, the broker's own lab PKI in `<data_dir>/pki`.

use std::path::{Path, PathBuf};

use super::server_config::{TlsError, TlsFiles};
use fleetmq_core::config::{ClientCertPolicy, TlsConfig};

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
                complete_chain_from: chain_pool(settings, settings.client_ca.as_ref()),
                client_ca: settings.client_ca.clone(),
                crls: settings.crl.clone(),
            })
        }
        (None, None) => {
            let pki = crate::certs::ensure_dev_pki(data_dir)
                .map_err(|error| TlsError::LabPki(error.to_string()))?;
            if pki.created {
                tracing::info!(
                    "Created a lab CA and server certificate; devices need {} and a certificate from `fleetmq certs device ID --dir {}`.",
                    pki.ca_cert.display(),
                    data_dir.join("pki").display()
                );
            }
            Ok(TlsFiles {
                cert: pki.server_cert,
                key: pki.server_key,
                chain: settings.chain.clone(),
                complete_chain_from: chain_pool(settings, Some(&pki.ca_cert)),
                client_ca: Some(settings.client_ca.clone().unwrap_or(pki.ca_cert)),
                crls: if settings.crl.is_empty() {
                    vec![pki.crl]
                } else {
                    settings.crl.clone()
                },
            })
        }
        _ => Err(TlsError::CertWithoutKey),
    }
}

/// Where a leaf-only certificate's chain is completed from: the files the
/// listener names, else its client CA (decision 0136).
fn chain_pool(settings: &TlsConfig, client_ca: Option<&PathBuf>) -> Vec<PathBuf> {
    if settings.complete_chain_from.is_empty() {
        client_ca.cloned().into_iter().collect()
    } else {
        settings.complete_chain_from.clone()
    }
}
