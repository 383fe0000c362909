//! A dynsec client's password as `dynamic-security.json` stores it:
//! PBKDF2-HMAC-SHA512 of the password over the decoded salt, 64 bytes, with
//! `password`, `salt` (standard base64) and `iterations` fields.
//!
//! Owns hashing and verification; never logs or prints a hash.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha2::Sha512;
use subtle::ConstantTimeEq;

/// Iterations and salt length the 2.0 plugin writes.
pub const ITERATIONS: u32 = 101;
const SALT_LEN: usize = 12;
const HASH_LEN: usize = 64;
/// A file with more iterations would let one CONNECT burn seconds of CPU.
const MAX_ITERATIONS: u32 = 10_000_000;

/// A hashed password.
#[derive(Clone, PartialEq, Eq)]
pub struct DynsecPassword {
    hash: [u8; HASH_LEN],
    salt: Vec<u8>,
    iterations: u32,
}

impl std::fmt::Debug for DynsecPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DynsecPassword({} iterations)", self.iterations)
    }
}

impl DynsecPassword {
    /// Hashes `password` with a fresh random salt; `None` when the system
    /// has no randomness to give.
    pub fn new(password: &[u8]) -> Option<DynsecPassword> {
        let mut salt = [0u8; SALT_LEN];
        aws_lc_rs::rand::fill(&mut salt).ok()?;
        Some(DynsecPassword::with_salt(password, &salt, ITERATIONS))
    }

    fn with_salt(password: &[u8], salt: &[u8], iterations: u32) -> DynsecPassword {
        let mut hash = [0u8; HASH_LEN];
        pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut hash);
        DynsecPassword {
            hash,
            salt: salt.to_vec(),
            iterations,
        }
    }

    /// Reads the three JSON fields; the error says which is wrong.
    pub fn from_fields(hash: &str, salt: &str, iterations: i64) -> Result<DynsecPassword, String> {
        let iterations = u32::try_from(iterations)
            .ok()
            .filter(|n| (1..=MAX_ITERATIONS).contains(n))
            .ok_or_else(|| format!("iterations {iterations} is outside 1..={MAX_ITERATIONS}"))?;
        let salt = BASE64
            .decode(salt)
            .map_err(|e| format!("salt is not base64: {e}"))?;
        let hash = BASE64
            .decode(hash)
            .map_err(|e| format!("password hash is not base64: {e}"))?;
        let hash = <[u8; HASH_LEN]>::try_from(hash.as_slice())
            .map_err(|_| format!("password hash is {} bytes, not {HASH_LEN}", hash.len()))?;
        Ok(DynsecPassword {
            hash,
            salt,
            iterations,
        })
    }

    /// Costs what a verification costs and matches nothing: checked for
    /// unknown usernames, so response times do not tell which exist.
    pub fn decoy_verify(password: &[u8]) -> bool {
        let decoy = DynsecPassword {
            hash: [0; HASH_LEN],
            salt: vec![0x5a; SALT_LEN],
            iterations: ITERATIONS,
        };
        let _ = decoy.verify(password);
        false
    }

    /// Whether `password` is this one (constant-time comparison).
    pub fn verify(&self, password: &[u8]) -> bool {
        let computed = DynsecPassword::with_salt(password, &self.salt, self.iterations);
        bool::from(computed.hash.ct_eq(&self.hash))
    }

    /// `password` field (base64 hash).
    pub fn hash_base64(&self) -> String {
        BASE64.encode(self.hash)
    }

    /// `salt` field (base64).
    pub fn salt_base64(&self) -> String {
        BASE64.encode(&self.salt)
    }

    pub fn iterations(&self) -> u32 {
        self.iterations
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// Written by `mosquitto_ctrl dynsec init FILE admin adminpass` (2.0.11).
    #[test]
    fn verifies_a_hash_mosquitto_ctrl_wrote() {
        let stored = DynsecPassword::from_fields(
            "2CO5YtfQ+XPSjZRFW4YftUpfWGSZ3n27RHbD1HeLPF/SKEjgRT6NAZCkehYd32UaZA2nXJ0ofNqNpjoU/WsUUQ==",
            "YLjH/sw6jROrzhwJ",
            101,
        )
        .unwrap();
        assert!(stored.verify(b"adminpass"));
        assert!(!stored.verify(b"adminpasS"));
    }

    #[test]
    fn new_hashes_verify_and_round_trip() {
        let made = DynsecPassword::new(b"pw").unwrap();
        let read = DynsecPassword::from_fields(
            &made.hash_base64(),
            &made.salt_base64(),
            i64::from(made.iterations()),
        )
        .unwrap();
        assert!(read.verify(b"pw"));
        assert!(DynsecPassword::from_fields("AA==", "AA==", 0).is_err());
    }
}
