//! A folder of CA certificates as `tls.client_ca` (Mosquitto's `capath`):
//! every certificate file in it, read when the listener's verifier is built
//! (start and each reload, so a CA added to the folder counts after
//! SIGHUP).
//!
//! OpenSSL looks certificates up in such a folder by subject hash
//! (`3a9e1c2b.0`, made by `openssl rehash`); fleetmq reads those names and
//! `*.pem`/`*.crt` files, the same certificates once each (hash names are
//! usually links to the `.pem`). Other files (READMEs, `.r0` CRLs) are left
//! alone. A file it reads that is unreadable or holds no certificate is an
//! error naming the file: trusting less than the folder says would lock
//! devices out without a word. It does not verify anything itself.

use std::fs;
use std::path::Path;

use rustls::pki_types::CertificateDer;

use super::server_config::{read_certs, TlsError};

/// The CA certificates at `path`: a PEM file, or a folder of them.
pub fn read_ca_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    if !path.is_dir() {
        return read_certs(path);
    }
    let read_error = |source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(path).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if is_certificate_name(name) && !entry.path().is_dir() {
            files.push(entry.path());
        }
    }
    files.sort();
    let mut certs: Vec<CertificateDer<'static>> = Vec::new();
    for file in &files {
        for cert in read_certs(file)? {
            if !certs.contains(&cert) {
                certs.push(cert);
            }
        }
    }
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// `*.pem`, `*.crt`, or OpenSSL's `<8 hex digits>.<n>` certificate names.
fn is_certificate_name(name: &str) -> bool {
    if name.ends_with(".pem") || name.ends_with(".crt") {
        return true;
    }
    match name.split_once('.') {
        Some((hash, n)) => {
            hash.len() == 8
                && hash.bytes().all(|b| b.is_ascii_hexdigit())
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn certificate_names_are_pem_crt_and_openssl_hashes() {
        for name in ["ca.pem", "lab.crt", "3a9e1c2b.0", "3A9E1C2B.12"] {
            assert!(is_certificate_name(name), "{name}");
        }
        for name in ["README", "3a9e1c2b.r0", "3a9e1c2.0", "ca.key", "3a9e1c2b."] {
            assert!(!is_certificate_name(name), "{name}");
        }
    }

    #[test]
    fn an_empty_folder_and_a_bad_file_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("README"), "not a certificate").unwrap();
        let error = read_ca_certs(dir.path()).unwrap_err().to_string();
        assert!(error.contains("holds no PEM certificate"), "{error}");
        std::fs::write(dir.path().join("0badc0de.0"), "garbage").unwrap();
        let error = read_ca_certs(dir.path()).unwrap_err().to_string();
        assert!(error.contains("0badc0de.0"), "{error}");
    }
}
