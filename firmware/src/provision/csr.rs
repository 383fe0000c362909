//! A PKCS#10 certification request (RFC 2986) for the device's P-256 key,
//! subject `CN=<device id>`, no attributes or extensions: exactly what the
//! broker accepts (decision 0151). Built by hand from [`super::der`]
//! because mbedtls-rs 0.3 exposes no CSR writing; checked against
//! `openssl req -verify` in the tests.

use alloc::string::String;
use alloc::vec::Vec;

use super::der::{self, tlv, CONTEXT_0, INTEGER, OID, SEQUENCE, SET, UTF8_STRING};

/// id-at-commonName (2.5.4.3).
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// id-ecPublicKey (1.2.840.10045.2.1).
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
/// prime256v1 (1.2.840.10045.3.1.7).
const OID_PRIME256V1: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
/// ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
const OID_ECDSA_SHA256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02];

/// What signs the request: the device's key, which never leaves it.
pub trait CsrSigner {
    type Error;
    /// The public key as an uncompressed point (0x04 || X || Y).
    fn public_key(&self) -> [u8; 65];
    /// ECDSA P-256 over SHA-256 of `message`, DER (`ECDSA-Sig-Value`).
    fn sign_der(&mut self, message: &[u8]) -> Result<Vec<u8>, Self::Error>;
}

/// Why no request was built.
#[derive(Debug, PartialEq, Eq)]
pub enum CsrError<E> {
    /// The id is empty or longer than 64 bytes (the broker refuses those).
    BadId,
    /// The key is not an uncompressed point.
    BadKey,
    /// The signer failed.
    Sign(E),
}

/// The DER request for `device_id`, signed by `signer`.
pub fn build<S: CsrSigner>(device_id: &str, signer: &mut S) -> Result<Vec<u8>, CsrError<S::Error>> {
    if device_id.is_empty() || device_id.len() > 64 {
        return Err(CsrError::BadId);
    }
    let point = signer.public_key();
    if point[0] != 0x04 {
        return Err(CsrError::BadKey);
    }
    let common_name = tlv(
        SEQUENCE,
        &der::concat(&[
            &tlv(OID, OID_COMMON_NAME),
            &tlv(UTF8_STRING, device_id.as_bytes()),
        ]),
    );
    let subject = tlv(SEQUENCE, &tlv(SET, &common_name));
    let algorithm = tlv(
        SEQUENCE,
        &der::concat(&[&tlv(OID, OID_EC_PUBLIC_KEY), &tlv(OID, OID_PRIME256V1)]),
    );
    let public_key = tlv(
        SEQUENCE,
        &der::concat(&[&algorithm, &der::bit_string(&point)]),
    );
    let info = tlv(
        SEQUENCE,
        &der::concat(&[
            &tlv(INTEGER, &[0]),
            &subject,
            &public_key,
            &tlv(CONTEXT_0, &[]),
        ]),
    );
    let signature = signer.sign_der(&info).map_err(CsrError::Sign)?;
    let signature_algorithm = tlv(SEQUENCE, &tlv(OID, OID_ECDSA_SHA256));
    Ok(tlv(
        SEQUENCE,
        &der::concat(&[&info, &signature_algorithm, &der::bit_string(&signature)]),
    ))
}

/// `-----BEGIN CERTIFICATE REQUEST-----`, base64 in 64-character lines.
pub fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 80);
    out.push_str("-----BEGIN CERTIFICATE REQUEST-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(core::str::from_utf8(line).unwrap_or(""));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE REQUEST-----\n");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use rcgen::{KeyPair, PublicKeyData, SigningKey};

    /// rcgen's P-256 key (aws-lc-rs) in the device's place.
    struct HostKey(KeyPair);

    impl CsrSigner for HostKey {
        type Error = rcgen::Error;
        fn public_key(&self) -> [u8; 65] {
            self.0.der_bytes().try_into().unwrap()
        }
        fn sign_der(&mut self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
            self.0.sign(message)
        }
    }

    fn host_key() -> HostKey {
        HostKey(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap())
    }

    #[test]
    fn openssl_verifies_the_request_and_reads_the_subject() {
        let mut key = host_key();
        let der = build("esp32_807A98", &mut key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.csr");
        std::fs::write(&path, pem(&der)).unwrap();
        let output = std::process::Command::new("openssl")
            .args(["req", "-verify", "-noout", "-subject", "-in"])
            .arg(&path)
            .output()
            .expect("openssl is installed (Debian's openssl)");
        let text = std::format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{text}");
        assert!(
            text.contains("verify OK")
                || text.contains("Certificate request self-signature verify OK"),
            "{text}"
        );
        assert!(
            text.contains("CN = esp32_807A98") || text.contains("CN=esp32_807A98"),
            "{text}"
        );
    }

    #[test]
    fn rcgen_parses_it_as_a_plain_request() {
        let mut key = host_key();
        let der = build("esp32_1", &mut key).unwrap();
        let request =
            rcgen::CertificateSigningRequestParams::from_der(&der.as_slice().into()).unwrap();
        assert!(request.params.key_usages.is_empty());
        assert!(request.params.subject_alt_names.is_empty());
        assert_eq!(request.public_key.der_bytes(), &key.public_key()[..]);
    }

    #[test]
    fn ids_the_broker_would_refuse_are_not_built() {
        let mut key = host_key();
        assert_eq!(build("", &mut key).unwrap_err(), CsrError::BadId);
        assert_eq!(
            build(&"x".repeat(65), &mut key).unwrap_err(),
            CsrError::BadId
        );
    }
}
