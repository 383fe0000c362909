//! What a client certificate says about its holder: subject CN and DN,
//! SANs, serial, SHA-256 fingerprint, issuer and validity.
//!
//! Parsing happens once per mutual-TLS handshake, after rustls verified the
//! chain; nothing here decides trust.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use super::dn::{name_text, shared_issuer, shared_units};

/// The facts of a verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerCertificate {
    /// Subject common name (the device id in a fleetmq lab PKI).
    /// Shared with the connection's `Identity` and its session's owner
    /// when the CN is the identity (the default).
    pub cn: Option<Arc<str>>,
    /// The whole subject DN, RFC 4514 style (`CN=dev-a, OU=ops`).
    pub subject: String,
    /// Organizational units of the subject (certificate groups): one list
    /// for every certificate with the same units ([`super::dn::shared_units`]).
    pub organizational_units: Arc<[Arc<str>]>,
    pub san_dns: Vec<String>,
    pub san_uri: Vec<String>,
    pub san_email: Vec<String>,
    /// Serial number, upper-case hex. Shared with the session's
    /// [`super::CertificateSerial`] (revocation checks).
    pub serial: Arc<str>,
    /// SHA-256 of the DER certificate, lower-case hex. Shared with the
    /// connection's `Identity` (one allocation per held connection).
    pub fingerprint_sha256: Arc<str>,
    /// Issuer DN: one string for every certificate of an issuer
    /// ([`super::dn::shared_issuer`]; a fleet has one or a few), shared
    /// with the session's [`super::CertificateSerial`].
    pub issuer: Arc<str>,
    /// Validity, seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// X.509 version: 1 (accepted only where the listener allows it,
    /// decision 0090) or 3.
    pub version: u32,
    /// What makes it weak, if anything: an RSA key under 2048 bits or a
    /// SHA-1 signature (the dashboard marks such devices).
    pub weakness: Option<String>,
    /// The key's algorithm and size: `ECDSA P-256`, `RSA-2048`, `Ed25519`
    /// (what the device signs its handshakes with, which sets its time).
    /// Static for the usual algorithms: every held connection keeps one.
    pub key_type: Cow<'static, str>,
}

/// Why a certificate could not be read (after rustls accepted it, this
/// means an encoding x509-parser does not handle).
#[derive(Debug, thiserror::Error)]
#[error("cannot parse the client certificate: {0}")]
pub struct CertificateParseError(String);

impl PeerCertificate {
    /// Reads the facts of a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<PeerCertificate, CertificateParseError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| CertificateParseError(e.to_string()))?;
        let subject = cert.subject();
        let cn = subject
            .iter_common_name()
            .next()
            .and_then(|attr| attr.as_str().ok())
            .map(Arc::from);
        let organizational_units = shared_units(
            subject
                .iter_organizational_unit()
                .filter_map(|attr| attr.as_str().ok()),
        );
        let mut san_dns = Vec::new();
        let mut san_uri = Vec::new();
        let mut san_email = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => san_dns.push((*dns).to_string()),
                    GeneralName::URI(uri) => san_uri.push((*uri).to_string()),
                    GeneralName::RFC822Name(email) => san_email.push((*email).to_string()),
                    _ => {}
                }
            }
        }
        // A first push reserves room for four names; a held connection
        // keeps these for its lifetime.
        san_dns.shrink_to_fit();
        san_uri.shrink_to_fit();
        san_email.shrink_to_fit();
        let fingerprint = Sha256::digest(der);
        // Parsed once for both the key type and the weakness check.
        let key = cert.public_key().parsed().ok();
        Ok(PeerCertificate {
            cn,
            subject: name_text(subject),
            organizational_units,
            san_dns,
            san_uri,
            san_email,
            serial: serial_hex(cert.raw_serial()).into(),
            fingerprint_sha256: hex(&fingerprint).into(),
            issuer: shared_issuer(cert.issuer()),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            version: cert.version().0.saturating_add(1),
            weakness: weakness(&cert, key.as_ref()),
            key_type: key_type(&cert, key.as_ref()),
        })
    }
}

/// The certificate key's algorithm and size, as a lab names it. Known
/// curves and algorithms are matched as OIDs, without formatting them:
/// this runs on every mutual-TLS handshake.
fn key_type(cert: &X509Certificate<'_>, key: Option<&PublicKey<'_>>) -> Cow<'static, str> {
    use x509_parser::oid_registry::{
        OID_EC_P256, OID_NIST_EC_P384, OID_NIST_EC_P521, OID_SIG_ED25519, OID_SIG_ED448,
    };
    let info = cert.public_key();
    match key {
        Some(PublicKey::RSA(rsa)) => match rsa.key_size() {
            2048 => "RSA-2048".into(),
            3072 => "RSA-3072".into(),
            4096 => "RSA-4096".into(),
            other => format!("RSA-{other}").into(),
        },
        Some(PublicKey::EC(_)) => {
            match info
                .algorithm
                .parameters
                .as_ref()
                .and_then(|parameters| parameters.as_oid().ok())
            {
                Some(curve) if curve == OID_EC_P256 => "ECDSA P-256".into(),
                Some(curve) if curve == OID_NIST_EC_P384 => "ECDSA P-384".into(),
                Some(curve) if curve == OID_NIST_EC_P521 => "ECDSA P-521".into(),
                Some(other) => format!("ECDSA {}", other.to_id_string()).into(),
                None => "ECDSA".into(),
            }
        }
        _ => match &info.algorithm.algorithm {
            oid if *oid == OID_SIG_ED25519 => "Ed25519".into(),
            oid if *oid == OID_SIG_ED448 => "Ed448".into(),
            other => other.to_id_string().into(),
        },
    }
}

/// An RSA key under 2048 bits or a SHA-1 signature, in words.
fn weakness(cert: &X509Certificate<'_>, key: Option<&PublicKey<'_>>) -> Option<String> {
    if let Some(PublicKey::RSA(rsa)) = key {
        if rsa.key_size() < 2048 {
            return Some(format!("RSA {} bits", rsa.key_size()));
        }
    }
    let signature = x509_parser::objects::oid2sn(
        &cert.signature_algorithm.algorithm,
        x509_parser::objects::oid_registry(),
    )
    .unwrap_or_default();
    signature
        .as_bytes()
        .windows(4)
        .any(|window| window.eq_ignore_ascii_case(b"sha1"))
        .then(|| format!("SHA-1 signature ({signature})"))
}

/// `text` without spare capacity: x509-parser builds names by appending,
/// and a held connection keeps its certificate's names for its lifetime.
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// `bytes` as hex digits from `digits`, two per byte.
fn hex_with(bytes: &[u8], digits: &[u8; 16]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(digits[usize::from(byte >> 4)]));
        out.push(char::from(digits[usize::from(byte & 0x0f)]));
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    hex_with(bytes, HEX_LOWER)
}

/// A certificate serial as `openssl x509 -serial` prints it: upper-case
/// hex, whole bytes, without the zero byte DER puts before a serial whose
/// top bit is set. Every place that shows or matches a serial (the peer,
/// CRL entries, logs, the certificate audit) uses this one form.
pub fn serial_hex(raw: &[u8]) -> String {
    let first = raw
        .iter()
        .position(|&byte| byte != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex_with(raw.get(first..).unwrap_or(raw), HEX_UPPER)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod serial_tests {
    use super::{hex, serial_hex};

    #[test]
    fn serials_print_as_openssl_prints_them() {
        // DER's sign byte before a serial whose top bit is set goes.
        assert_eq!(serial_hex(&[0x00, 0xE0, 0x06, 0x7D]), "E0067D");
        assert_eq!(serial_hex(&[0x0A, 0xBC]), "0ABC");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[]), "");
    }

    /// A self-signed certificate with `key`, parsed.
    fn facts(key: &rcgen::KeyPair) -> super::PeerCertificate {
        let cert = rcgen::CertificateParams::new(vec!["dev-1".to_string()])
            .unwrap()
            .self_signed(key)
            .unwrap();
        super::PeerCertificate::from_der(cert.der()).unwrap()
    }

    #[test]
    fn key_types_are_named_as_a_lab_names_them() {
        use rcgen::{KeyPair, RsaKeySize, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384};
        use rcgen::{PKCS_ED25519, PKCS_RSA_SHA256};
        let p256 = facts(&KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap());
        assert_eq!(p256.key_type, "ECDSA P-256");
        assert_eq!(p256.weakness, None);
        assert_eq!(p256.fingerprint_sha256.len(), 64);
        assert!(p256
            .fingerprint_sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        let p384 = facts(&KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap());
        assert_eq!(p384.key_type, "ECDSA P-384");
        assert_eq!(
            facts(&KeyPair::generate_for(&PKCS_ED25519).unwrap()).key_type,
            "Ed25519"
        );
        let rsa = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).unwrap();
        let rsa = facts(&rsa);
        assert_eq!(rsa.key_type, "RSA-2048");
        assert_eq!(rsa.weakness, None);
    }

    #[test]
    fn fingerprints_are_lower_case_hex_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff, 0x10]), "000fa5ff10");
        assert_eq!(hex(&[]), "");
    }
}
