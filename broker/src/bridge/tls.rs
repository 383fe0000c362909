//! The rustls client configuration of a bridge link: the CAs the remote's
//! certificate must chain to (`ca_file`, `ca_path`, else Debian's system
//! bundle), the bridge's own certificate for mutual TLS, ALPN and the
//! lowest TLS version; `insecure` skips only the host name check, as
//! Mosquitto's `bridge_insecure` does.
//!
//! It must not open sockets: the link connects with what this builds.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::tls::{read_ca_certs, read_certs, read_key};
use fleetmq_core::config::{BridgeTls, TlsVersion};

/// Debian's bundle of system CAs, used when a bridge names no CA.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Builds the client configuration, or says which file is wrong.
pub fn client_config(tls: &BridgeTls) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    let mut add = |certs: Vec<CertificateDer<'static>>, from: &Path| -> Result<(), String> {
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!(
                "{}: no CA certificate rustls can use",
                from.display()
            ));
        }
        Ok(())
    };
    if let Some(file) = &tls.ca_file {
        add(read_certs(file).map_err(|e| e.to_string())?, file)?;
    }
    if let Some(dir) = &tls.ca_path {
        add(read_ca_certs(dir).map_err(|e| e.to_string())?, dir)?;
    }
    if tls.ca_file.is_none() && tls.ca_path.is_none() {
        let bundle = Path::new(SYSTEM_CA_BUNDLE);
        add(read_certs(bundle).map_err(|e| e.to_string())?, bundle)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = match tls.min_version {
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let roots = Arc::new(roots);
    let builder = if tls.insecure {
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| format!("CA certificates: {e}"))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyHostName { inner }))
    } else {
        builder.with_root_certificates(roots)
    };
    let mut config = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert).map_err(|e| e.to_string())?;
            let key = read_key(key).map_err(|e| e.to_string())?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("{}: {e}", cert.display()))?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(Arc::new(config))
}

/// `bridge_insecure`: the chain, dates and signatures are verified; a
/// certificate for another host name is accepted.
#[derive(Debug)]
struct AnyHostName {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
