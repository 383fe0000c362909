//! The device's own P-256 key: made from 32 bytes of the platform's true
//! random source (the ESP32's TRNG, the host's OS RNG in the simulation),
//! the CSR's signer, and its SEC1 PEM form for mbedTLS. p256 (RustCrypto)
//! does the arithmetic, with deterministic ECDSA nonces (RFC 6979), so a
//! weak RNG at signing time cannot leak the key (decision 0159).
//!
//! This module never stores or prints the secret; the caller keeps it in
//! flash ([`super::store`]).

use alloc::string::String;
use alloc::vec::Vec;

use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};

use super::csr::CsrSigner;
use super::der::{self, tlv, INTEGER, OID, SEQUENCE};

/// prime256v1 (1.2.840.10045.3.1.7).
const OID_PRIME256V1: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
/// OCTET STRING.
const OCTET_STRING: u8 = 0x04;
/// `[0]` and `[1]` explicit, constructed.
const EXPLICIT_0: u8 = 0xA0;
const EXPLICIT_1: u8 = 0xA1;

/// A P-256 private key that signs the device's CSR.
pub struct DeviceKey(SigningKey);

impl DeviceKey {
    /// A new key from `fill`, which must write 32 bytes from a true random
    /// source. A draw that is not a valid scalar (zero or at least the group
    /// order: about 2^-32) is drawn again; `None` after 8 bad draws, which
    /// means the source is broken, not unlucky.
    pub fn generate(mut fill: impl FnMut(&mut [u8; 32])) -> Option<DeviceKey> {
        for _ in 0..8 {
            let mut secret = [0u8; 32];
            fill(&mut secret);
            let key = DeviceKey::from_secret(&secret);
            secret.fill(0);
            if key.is_some() {
                return key;
            }
        }
        None
    }

    /// The key with this secret scalar (big-endian), `None` if it is not one.
    pub fn from_secret(secret: &[u8; 32]) -> Option<DeviceKey> {
        SigningKey::from_slice(secret).ok().map(DeviceKey)
    }

    /// The secret scalar, big-endian: what the flash record keeps.
    pub fn secret(&self) -> [u8; 32] {
        self.0.to_bytes().into()
    }

    /// `-----BEGIN EC PRIVATE KEY-----` (RFC 5915 ECPrivateKey with the
    /// curve and public key), which mbedTLS's `PrivateKey` parses.
    pub fn sec1_pem(&self) -> String {
        let secret = self.secret();
        let public = self.public_key();
        let body = tlv(
            SEQUENCE,
            &der::concat(&[
                &tlv(INTEGER, &[1]),
                &tlv(OCTET_STRING, &secret),
                &tlv(EXPLICIT_0, &tlv(OID, OID_PRIME256V1)),
                &tlv(EXPLICIT_1, &der::bit_string(&public)),
            ]),
        );
        pem("EC PRIVATE KEY", &body)
    }

    fn public_key(&self) -> [u8; 65] {
        let point = self.0.verifying_key().to_encoded_point(false);
        point.as_bytes().try_into().unwrap_or([0; 65])
    }
}

impl CsrSigner for DeviceKey {
    type Error = p256::ecdsa::Error;

    fn public_key(&self) -> [u8; 65] {
        DeviceKey::public_key(self)
    }

    fn sign_der(&mut self, message: &[u8]) -> Result<Vec<u8>, Self::Error> {
        let signature: Signature = self.0.try_sign(message)?;
        let (r, s) = signature.split_bytes();
        Ok(tlv(
            SEQUENCE,
            &der::concat(&[&unsigned_integer(&r), &unsigned_integer(&s)]),
        ))
    }
}

/// A DER INTEGER of a big-endian unsigned value: leading zeros dropped, one
/// zero kept in front of a high bit (so it does not read as negative).
fn unsigned_integer(bytes: &[u8]) -> Vec<u8> {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let trimmed = bytes.get(first..).unwrap_or(&[]);
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|&b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(INTEGER, &content)
}

/// PEM with `label`, base64 in 64-character lines.
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(core::str::from_utf8(line).unwrap_or(""));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::provision::csr;

    fn counter_fill(seed: u8) -> impl FnMut(&mut [u8; 32]) {
        let mut next = seed;
        move |out: &mut [u8; 32]| {
            for byte in out.iter_mut() {
                next = next.wrapping_mul(31).wrapping_add(7);
                *byte = next;
            }
        }
    }

    fn openssl(args: &[&str], input: &std::path::Path) -> String {
        let output = std::process::Command::new("openssl")
            .args(args)
            .arg(input)
            .output()
            .expect("openssl is installed (Debian's openssl)");
        let text = std::format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{text}");
        text
    }

    #[test]
    fn openssl_reads_the_key_and_verifies_a_csr_it_signed() {
        let mut key = DeviceKey::generate(counter_fill(3)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("device.key");
        std::fs::write(&key_path, key.sec1_pem()).unwrap();
        let text = openssl(&["ec", "-check", "-noout", "-in"], &key_path);
        assert!(text.contains("valid") || text.is_empty(), "{text}");
        let der = csr::build("esp32_807A98", &mut key).unwrap();
        let csr_path = dir.path().join("device.csr");
        std::fs::write(&csr_path, csr::pem(&der)).unwrap();
        let text = openssl(&["req", "-verify", "-noout", "-in"], &csr_path);
        assert!(text.contains("verify OK"), "{text}");
        // The CSR's public key is the key's own.
        let pubkey_csr = openssl(&["req", "-noout", "-pubkey", "-in"], &csr_path);
        let pubkey_key = openssl(&["ec", "-pubout", "-in"], &key_path);
        let pem_of = |text: &str| {
            text.lines()
                .skip_while(|l| !l.starts_with("-----BEGIN PUBLIC KEY"))
                .take_while(|l| !l.starts_with("-----END PUBLIC KEY"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(pem_of(&pubkey_csr), pem_of(&pubkey_key));
    }

    #[test]
    fn the_secret_round_trips_and_bad_scalars_are_refused() {
        let key = DeviceKey::generate(counter_fill(9)).unwrap();
        let again = DeviceKey::from_secret(&key.secret()).unwrap();
        assert_eq!(key.sec1_pem(), again.sec1_pem());
        assert!(DeviceKey::from_secret(&[0; 32]).is_none());
        assert!(DeviceKey::from_secret(&[0xFF; 32]).is_none());
        // A source stuck at zero never yields a key.
        assert!(DeviceKey::generate(|out| out.fill(0)).is_none());
    }

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(unsigned_integer(&[0, 0, 0x7F]), [INTEGER, 1, 0x7F]);
        assert_eq!(unsigned_integer(&[0, 0x80]), [INTEGER, 2, 0, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0]), [INTEGER, 1, 0]);
    }
}
