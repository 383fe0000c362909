//! TLS material for mbedTLS, prepared once at boot from the configuration,
//! and mbedTLS errors explained in the lab's terms.

use alloc::ffi::CString;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use mbedtls_rs::{
    AuthMode, Certificate, ClientSessionConfig, Credentials, PrivateKey, SessionError, TlsVersion,
    X509,
};

use crate::config::TlsFiles;

/// Parsed certificates and key, reused by every connection.
pub struct TlsSetup {
    ca: Certificate<'static>,
    creds: Option<Credentials<'static>>,
    server_name: CString,
    /// `mqtt.ssl_cipher_suites` as IANA ids, in order (`None`: mbedTLS's
    /// default list).
    cipher_suites: Option<Vec<i32>>,
}

impl TlsSetup {
    /// Parses the PEM files with mbedTLS; errors name the configuration key.
    pub fn new(files: &TlsFiles) -> Result<TlsSetup, String> {
        let ca = Certificate::new(X509::PEM(&pem_cstr("mqtt.ssl_ca_cert", &files.ca_pem)?))
            .map_err(|e| format!("mqtt.ssl_ca_cert: mbedTLS cannot parse it: {e}"))?;
        let creds = match &files.client {
            None => None,
            Some(client) => {
                let cert_pem = pem_cstr("mqtt.ssl_cert", &client.cert_pem)?;
                let key_pem = pem_cstr("mqtt.ssl_key", &client.key_pem)?;
                Some(Credentials {
                    certificate: Certificate::new(X509::PEM(&cert_pem))
                        .map_err(|e| format!("mqtt.ssl_cert: mbedTLS cannot parse it: {e}"))?,
                    private_key: PrivateKey::new(X509::PEM(&key_pem), None).map_err(|e| {
                        format!("mqtt.ssl_key: mbedTLS cannot parse it (encrypted keys are not supported): {e}")
                    })?,
                })
            }
        };
        let server_name = CString::new(files.server_name.as_bytes())
            .map_err(|_| String::from("mqtt.ssl_server_name contains a NUL byte"))?;
        Ok(TlsSetup {
            ca,
            creds,
            server_name,
            cipher_suites: cipher_suite_ids(&files.cipher_suites)?,
        })
    }

    /// True when the device presents a client certificate.
    pub fn is_mutual(&self) -> bool {
        self.creds.is_some()
    }

    /// The client configuration: TLS 1.2 (what the lab's devices speak, and
    /// what lets mbedTLS yield during ECC on the device), the broker's
    /// certificate checked against the CA and the server name.
    pub fn client_config(&self) -> ClientSessionConfig<'_> {
        ClientSessionConfig {
            ca_chain: Some(self.ca.clone()),
            creds: self.creds.clone(),
            server_name: Some(&self.server_name),
            auth_mode: AuthMode::Required,
            min_version: TlsVersion::Tls1_2,
            max_version: Some(TlsVersion::Tls1_2),
            ciphersuites: self.cipher_suites.as_deref(),
            ..ClientSessionConfig::new()
        }
    }
}

/// The TLS 1.2 suites this firmware's mbedTLS build has (ECDHE with RSA
/// or ECDSA certificates, AES-GCM; no ChaCha20, no CBC, decision 0020),
/// by IANA id; their names are `tls_observe`'s (the `ciphersuite:` line).
pub const CIPHER_SUITES: [u16; 4] = [0xC02F, 0xC030, 0xC02B, 0xC02C];

/// The ids of `mqtt.ssl_cipher_suites`' names (`None`: empty, mbedTLS's
/// default order). An unknown name is refused, not silently dropped.
fn cipher_suite_ids(names: &[String]) -> Result<Option<Vec<i32>>, String> {
    use crate::tls_observe::SuiteName;
    if names.is_empty() {
        return Ok(None);
    }
    let mut ids = Vec::new();
    for name in names {
        let Some(id) = CIPHER_SUITES
            .iter()
            .find(|id| format!("{}", SuiteName(**id)) == *name)
        else {
            let known: Vec<String> = CIPHER_SUITES
                .iter()
                .map(|id| format!("{}", SuiteName(*id)))
                .collect();
            return Err(format!(
                "mqtt.ssl_cipher_suites: `{name}` is not a cipher suite of this firmware (it has {})",
                known.join(", ")
            ));
        };
        ids.push(i32::from(*id));
    }
    Ok(Some(ids))
}

#[cfg(test)]
#[test]
fn cipher_suites_are_named_as_the_console_names_them() {
    #![allow(clippy::unwrap_used)]
    let names = |list: &[&str]| list.iter().map(|n| String::from(*n)).collect::<Vec<_>>();
    assert_eq!(cipher_suite_ids(&[]).unwrap(), None);
    assert_eq!(
        cipher_suite_ids(&names(&[
            "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256",
            "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384"
        ]))
        .unwrap(),
        Some(alloc::vec![0xC02F, 0xC02C])
    );
    let error =
        cipher_suite_ids(&names(&["TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256"])).unwrap_err();
    assert!(
        error.contains("not a cipher suite of this firmware"),
        "{error}"
    );
}

/// PEM bytes as the NUL-terminated string mbedTLS parses.
fn pem_cstr(key: &str, pem: &[u8]) -> Result<CString, String> {
    let mut bytes: Vec<u8> = pem.to_vec();
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    CString::new(bytes).map_err(|_| format!("{key}: the PEM file contains a NUL byte"))
}

/// What an mbedTLS handshake error most likely means.
pub fn explain(error: &SessionError, mutual: bool) -> &'static str {
    let SessionError::MbedTls(e) = error else {
        return "the connection failed during the handshake";
    };
    match e.code() {
        -0x2700 => "the broker's certificate is not trusted: check mqtt.ssl_ca_cert, mqtt.ssl_server_name and the clock",
        -0x7780 if mutual => "the broker refused the handshake (fatal alert): if this device's certificate is revoked or from another CA, the broker's log says which",
        -0x7780 => "the broker refused the handshake (fatal alert): does its listener require a client certificate? set mqtt.ssl_cert and mqtt.ssl_key",
        -0x7280 | -0x7900 => "the broker closed the connection during the handshake",
        -0x7100 => "the saved TLS session does not match this server",
        _ => "TLS handshake failed",
    }
}
