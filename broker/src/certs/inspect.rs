//! Reading certificates back (with x509-parser), so that what the index
//! records — serial, fingerprint, expiry — is what the file really says.

use std::path::Path;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::CertError;

/// The facts about one certificate that the PKI records.
#[derive(Debug, Clone)]
pub(crate) struct CertFacts {
    /// Serial number, lowercase hex without leading zero bytes.
    pub(crate) serial: String,
    /// SHA-256 of the DER encoding, lowercase hex.
    pub(crate) fingerprint: String,
    /// End of validity.
    pub(crate) not_after: OffsetDateTime,
    /// The subjectKeyIdentifier, which a CRL's authorityKeyIdentifier must
    /// repeat.
    pub(crate) subject_key_id: Option<Vec<u8>>,
    /// The raw public key (EC point or PKCS#1 RSA key), to check that a
    /// key file belongs to this certificate.
    pub(crate) public_key: Vec<u8>,
}

/// Facts about a DER certificate; `path` only names it in errors.
pub(crate) fn facts_from_der(der: &[u8], path: &Path) -> Result<CertFacts, CertError> {
    let bad = |reason: String| CertError::BadCertificate {
        path: path.to_path_buf(),
        reason,
    };
    let (_, cert) = X509Certificate::from_der(der).map_err(|error| bad(error.to_string()))?;
    let subject_key_id =
        cert.extensions()
            .iter()
            .find_map(|extension| match extension.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(key_id) => Some(key_id.0.to_vec()),
                _ => None,
            });
    Ok(CertFacts {
        serial: serial_hex(cert.raw_serial()),
        fingerprint: hex(&Sha256::digest(der)),
        not_after: cert.validity().not_after.to_datetime(),
        subject_key_id,
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

/// The DER bytes inside a PEM certificate.
pub(crate) fn der_from_pem(pem: &str, path: &Path) -> Result<Vec<u8>, CertError> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|error| {
        CertError::BadCertificate {
            path: path.to_path_buf(),
            reason: error.to_string(),
        }
    })?;
    if parsed.label != "CERTIFICATE" {
        return Err(CertError::BadCertificate {
            path: path.to_path_buf(),
            reason: format!("PEM block is {:?}, not CERTIFICATE", parsed.label),
        });
    }
    Ok(parsed.contents)
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

/// A serial as hex, without the sign-padding zero bytes DER may add.
pub(crate) fn serial_hex(raw: &[u8]) -> String {
    let first = raw
        .iter()
        .position(|&byte| byte != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex(raw.get(first..).unwrap_or(raw))
}

/// A serial as a user may type it (`3A:0F:...`, `0x3a0f...`, any case) in
/// the form [`serial_hex`] produces; `None` if it is not hex at all.
pub(crate) fn normalize_serial(input: &str) -> Option<String> {
    let trimmed = input.trim();
    let digits = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed);
    let digits: String = digits.chars().filter(|&c| c != ':').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let digits = digits.to_ascii_lowercase();
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some("00".to_owned());
    }
    // Whole bytes, as serial_hex prints them.
    Some(if digits.len() % 2 == 1 {
        format!("0{digits}")
    } else {
        digits.to_owned()
    })
}

/// Bytes of a hex string produced by [`serial_hex`].
pub(crate) fn serial_bytes(serial: &str) -> Option<Vec<u8>> {
    let normalized = normalize_serial(serial)?;
    (0..normalized.len())
        .step_by(2)
        .map(|at| {
            normalized
                .get(at..at + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn serial_forms_normalize_alike() {
        let expected = Some("3a0f".to_owned());
        for input in ["3a0f", "3A0F", "3A:0F", "0x3a0f", "003a0f", " 3a:0f "] {
            assert_eq!(normalize_serial(input), expected, "{input:?}");
        }
        assert_eq!(normalize_serial("a0f"), Some("0a0f".to_owned()));
        assert_eq!(normalize_serial("esp32_1"), None);
        assert_eq!(normalize_serial(""), None);
    }

    #[test]
    fn serial_hex_drops_sign_padding() {
        assert_eq!(serial_hex(&[0x00, 0x80, 0x01]), "8001");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_bytes("8001"), Some(vec![0x80, 0x01]));
    }

    #[test]
    fn garbage_is_a_bad_certificate_naming_the_file() {
        let path = Path::new("/tmp/x.crt");
        let error = der_from_pem("not a pem", path).unwrap_err();
        assert!(error.to_string().contains("/tmp/x.crt"), "{error}");
        let error = facts_from_der(b"\x30\x03\x02\x01\x01", path).unwrap_err();
        assert!(error.to_string().contains("/tmp/x.crt"), "{error}");
    }
}
