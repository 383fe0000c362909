//! The signed manifest an offer carries, and its checks (docs/ota.md):
//!
//! ```text
//! fleetmq-ota-manifest-v1
//! version=1.1.0
//! chip=esp32c3
//! size=8192
//! sha256=<64 hex>
//! chunk_size=1024
//! signature=<128 hex>
//! ```
//!
//! The Ed25519 signature covers the exact bytes before `signature=`, so
//! nothing is re-encoded before checking. The device holds the broker's
//! public key; an offer whose signature does not verify is refused before
//! a byte is written.
//!
//! Owns: the format and the signature check. Must not fetch or write.

use alloc::string::String;
use ed25519_dalek::{Signature, VerifyingKey};

/// First line of a manifest.
pub const MANIFEST_HEADER: &str = "fleetmq-ota-manifest-v1";
/// First line of a withdrawal (the rollout was aborted).
pub const CANCEL_HEADER: &str = "fleetmq-ota-cancel-v1";

/// A manifest whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The image's version (also in its application descriptor).
    pub version: String,
    /// `esp32c3`, `esp32c6`, ...
    pub chip: String,
    /// Image bytes.
    pub size: u32,
    /// SHA-256 of the image.
    pub sha256: [u8; 32],
    /// Bytes per chunk (the last one may be shorter).
    pub chunk_size: u32,
}

impl Manifest {
    /// Number of chunks.
    pub fn chunks(&self) -> u32 {
        self.size.div_ceil(self.chunk_size.max(1))
    }
}

/// Why an offer was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestError {
    /// Not a manifest, or a field missing or malformed.
    Malformed(&'static str),
    /// The signature is not the broker's key's over these bytes.
    BadSignature,
}

impl core::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ManifestError::Malformed(why) => write!(f, "malformed manifest: {why}"),
            ManifestError::BadSignature => f.write_str("bad signature"),
        }
    }
}

/// What an offer topic carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// Update to this (verified) manifest.
    Update(Manifest),
    /// Stop the download of this version.
    Cancel(String),
}

/// Reads an offer and checks the manifest's signature with `key`.
pub fn parse_offer(payload: &[u8], key: &VerifyingKey) -> Result<Offer, ManifestError> {
    let text = core::str::from_utf8(payload).map_err(|_| ManifestError::Malformed("not UTF-8"))?;
    if let Some(rest) = text.strip_prefix(CANCEL_HEADER) {
        let version = rest
            .lines()
            .find_map(|line| line.strip_prefix("version="))
            .ok_or(ManifestError::Malformed("cancel without version"))?;
        return Ok(Offer::Cancel(String::from(version)));
    }
    let at = text
        .find("signature=")
        .ok_or(ManifestError::Malformed("no signature"))?;
    let (signed, signature) = text.split_at(at);
    let signature = signature.trim_start_matches("signature=").trim_end();
    let mut raw = [0u8; 64];
    hex_decode(signature, &mut raw).ok_or(ManifestError::Malformed("signature is not 128 hex"))?;
    let manifest = parse_fields(signed)?;
    key.verify_strict(signed.as_bytes(), &Signature::from_bytes(&raw))
        .map_err(|_| ManifestError::BadSignature)?;
    Ok(Offer::Update(manifest))
}

fn parse_fields(signed: &str) -> Result<Manifest, ManifestError> {
    let mut lines = signed.lines();
    if lines.next() != Some(MANIFEST_HEADER) {
        return Err(ManifestError::Malformed("not a fleetmq manifest"));
    }
    let (mut version, mut chip, mut size, mut sha, mut chunk) = (None, None, None, None, None);
    for line in lines {
        let (key, value) = line
            .split_once('=')
            .ok_or(ManifestError::Malformed("a line without `=`"))?;
        match key {
            "version" => version = Some(String::from(value)),
            "chip" => chip = Some(String::from(value)),
            "size" => size = value.parse::<u32>().ok(),
            "sha256" => {
                let mut out = [0u8; 32];
                sha = hex_decode(value, &mut out).map(|()| out);
            }
            "chunk_size" => chunk = value.parse::<u32>().ok().filter(|n| *n > 0),
            _ => return Err(ManifestError::Malformed("an unknown field")),
        }
    }
    Ok(Manifest {
        version: version.ok_or(ManifestError::Malformed("version"))?,
        chip: chip.ok_or(ManifestError::Malformed("chip"))?,
        size: size.ok_or(ManifestError::Malformed("size"))?,
        sha256: sha.ok_or(ManifestError::Malformed("sha256"))?,
        chunk_size: chunk.ok_or(ManifestError::Malformed("chunk_size"))?,
    })
}

/// Decodes `text` (exactly `out.len() * 2` hex digits) into `out`.
pub fn hex_decode(text: &str, out: &mut [u8]) -> Option<()> {
    if text.len() != out.len() * 2 {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks(2)) {
        let pair = core::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(())
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use core::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn signed(key: &SigningKey, body: &str) -> alloc::vec::Vec<u8> {
        let signature = key.sign(body.as_bytes());
        alloc::format!("{body}signature={}\n", hex(&signature.to_bytes())).into_bytes()
    }

    const BODY: &str = "fleetmq-ota-manifest-v1\nversion=1.1.0\nchip=esp32c3\nsize=5000\nsha256=0000000000000000000000000000000000000000000000000000000000000000\nchunk_size=1024\n";

    #[test]
    fn a_signed_manifest_verifies_and_a_tampered_one_does_not() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let payload = signed(&key, BODY);
        let Ok(Offer::Update(manifest)) = parse_offer(&payload, &key.verifying_key()) else {
            panic!("refused");
        };
        assert_eq!(manifest.version, "1.1.0");
        assert_eq!(manifest.chunks(), 5);
        let tampered = String::from_utf8(payload).unwrap().replace("5000", "5001");
        assert_eq!(
            parse_offer(tampered.as_bytes(), &key.verifying_key()),
            Err(ManifestError::BadSignature)
        );
        let other = SigningKey::from_bytes(&[8; 32]);
        assert_eq!(
            parse_offer(&signed(&other, BODY), &key.verifying_key()),
            Err(ManifestError::BadSignature)
        );
    }
}
