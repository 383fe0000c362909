//! Password files in the format `mosquitto_passwd` writes, so a Mosquitto
//! `password_file` works unchanged (docs/decisions/0031-password-files.md).
//!
//! One `user:hash` per line; `#` comments and blank lines are skipped.
//! Hashes, as Mosquitto 2.0 reads them:
//!
//! - `$7$ITERATIONS$SALT$HASH`: PBKDF2-HMAC-SHA512 of the password, 64-byte
//!   result; what `mosquitto_passwd` 2.0 writes (101 iterations, 12-byte
//!   salt) and what [`hash_password`] writes.
//! - `$6$SALT$HASH`: SHA-512 of the password bytes followed by the salt
//!   bytes (Mosquitto 1.x).
//!
//! SALT and HASH are standard base64; the salt is decoded before hashing.

use std::collections::HashMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

use super::AuthError;

/// PBKDF2 iterations `mosquitto_passwd` 2.0 uses and we write.
pub const PBKDF2_ITERATIONS: u32 = 101;
/// Salt length `mosquitto_passwd` writes.
pub const SALT_LEN: usize = 12;
/// SHA-512 output length: every hash in the file is this long.
const HASH_LEN: usize = 64;
/// Refuse iteration counts that would let one CONNECT burn seconds of CPU
/// (a typo in a hand-edited file, not an attack: the file is trusted).
const MAX_ITERATIONS: u32 = 10_000_000;

/// A hashed password of one user.
#[derive(Clone, PartialEq, Eq)]
enum StoredHash {
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2 {
        iterations: u32,
        salt: Vec<u8>,
        hash: [u8; HASH_LEN],
    },
    /// `$6$`: SHA-512(password || salt).
    Sha512 { salt: Vec<u8>, hash: [u8; HASH_LEN] },
}

impl std::fmt::Debug for StoredHash {
    // Hashes stay out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoredHash::Pbkdf2 { iterations, .. } => write!(f, "Pbkdf2({iterations} iterations)"),
            StoredHash::Sha512 { .. } => write!(f, "Sha512"),
        }
    }
}

impl StoredHash {
    fn verify(&self, password: &[u8]) -> bool {
        let (computed, stored) = match self {
            StoredHash::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => (pbkdf2_sha512(password, salt, *iterations), hash),
            StoredHash::Sha512 { salt, hash } => (salted_sha512(password, salt), hash),
        };
        bool::from(computed.ct_eq(stored))
    }
}

/// The users of a password file and their hashes.
#[derive(Debug, Clone, Default)]
pub struct PasswordFile {
    /// Username to hash. A `HashMap` lookup time does not depend on how
    /// similar a guessed name is to a real one.
    users: HashMap<String, StoredHash>,
    /// Compared against when the user is unknown, so an unknown user costs
    /// the same PBKDF2 as a known one and response times do not tell which
    /// usernames exist.
    decoy: StoredHash,
}

impl Default for StoredHash {
    fn default() -> Self {
        StoredHash::Pbkdf2 {
            iterations: PBKDF2_ITERATIONS,
            salt: vec![0x5a; SALT_LEN],
            hash: [0; HASH_LEN],
        }
    }
}

impl PasswordFile {
    /// Reads and parses a password file.
    pub fn load(path: &Path) -> Result<PasswordFile, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
            action: "cannot read password file",
            path: path.to_path_buf(),
            source,
        })?;
        PasswordFile::parse(&text, &path.display().to_string())
    }

    /// Parses the text of a password file; `origin` names it in errors.
    /// Unlike Mosquitto, which logs and drops a malformed entry, any
    /// malformed line is an error, so a typo cannot lock a user out silently.
    pub fn parse(text: &str, origin: &str) -> Result<PasswordFile, AuthError> {
        let mut users: HashMap<String, StoredHash> = HashMap::new();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |problem: String| AuthError::PasswordFile {
                origin: origin.to_string(),
                line: number,
                problem,
            };
            let Some((user, hash)) = line.split_once(':') else {
                return Err(error(
                    "no ':' between user and password hash (each line is user:hash; \
                     add users with `fleetmq passwd FILE USER`)"
                        .to_string(),
                ));
            };
            let user = user.trim();
            if user.is_empty() {
                return Err(error("empty username before ':'".to_string()));
            }
            let stored = parse_hash(hash.trim()).map_err(|problem| {
                error(format!(
                    "user {user:?}: {problem} (re-create the entry with \
                     `fleetmq passwd FILE {user}` or `mosquitto_passwd FILE {user}`)"
                ))
            })?;
            if let Some(first) = first_line.insert(user.to_string(), number) {
                return Err(error(format!(
                    "user {user:?} is already defined on line {first} (keep one line per user)"
                )));
            }
            users.insert(user.to_string(), stored);
        }
        Ok(PasswordFile {
            users,
            decoy: StoredHash::default(),
        })
    }

    /// Whether `password` is the password of `user`. Constant-time in the
    /// comparison; an unknown user costs a hash too.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        match self.users.get(user) {
            Some(stored) => stored.verify(password),
            None => {
                // The decoy's hash matches no password; computed for timing.
                let _ = self.decoy.verify(password);
                false
            }
        }
    }

    /// Whether the file lists `user`.
    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file lists no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

fn parse_hash(text: &str) -> Result<StoredHash, String> {
    let Some(rest) = text.strip_prefix('$') else {
        return Err(if text.is_empty() {
            "no password hash".to_string()
        } else {
            "the password is not hashed (plain-text passwords are not accepted; \
             `mosquitto_passwd -U FILE` hashes a whole file)"
                .to_string()
        });
    };
    let fields: Vec<&str> = rest.split('$').collect();
    match fields.as_slice() {
        ["7", iterations, salt, hash] => {
            let iterations: u32 = iterations
                .parse()
                .map_err(|_| format!("iteration count {iterations:?} is not a number"))?;
            if !(1..=MAX_ITERATIONS).contains(&iterations) {
                return Err(format!(
                    "iteration count {iterations} is outside 1..={MAX_ITERATIONS}"
                ));
            }
            Ok(StoredHash::Pbkdf2 {
                iterations,
                salt: decode_salt(salt)?,
                hash: decode_hash(hash)?,
            })
        }
        ["6", salt, hash] => Ok(StoredHash::Sha512 {
            salt: decode_salt(salt)?,
            hash: decode_hash(hash)?,
        }),
        [kind, ..] if *kind != "6" && *kind != "7" => Err(format!(
            "unknown hash type ${kind}$ (only $7$ PBKDF2-SHA512 and $6$ SHA-512 are read)"
        )),
        _ => Err("malformed hash (expected $7$ITERATIONS$SALT$HASH or $6$SALT$HASH)".to_string()),
    }
}

fn decode_salt(text: &str) -> Result<Vec<u8>, String> {
    let salt = BASE64
        .decode(text)
        .map_err(|e| format!("salt is not base64: {e}"))?;
    if salt.is_empty() {
        return Err("empty salt".to_string());
    }
    Ok(salt)
}

fn decode_hash(text: &str) -> Result<[u8; HASH_LEN], String> {
    let hash = BASE64
        .decode(text)
        .map_err(|e| format!("hash is not base64: {e}"))?;
    <[u8; HASH_LEN]>::try_from(hash.as_slice())
        .map_err(|_| format!("hash is {} bytes, SHA-512 gives {HASH_LEN}", hash.len()))
}

fn pbkdf2_sha512(password: &[u8], salt: &[u8], iterations: u32) -> [u8; HASH_LEN] {
    let mut out = [0u8; HASH_LEN];
    pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
    out
}

fn salted_sha512(password: &[u8], salt: &[u8]) -> [u8; HASH_LEN] {
    let mut digest = Sha512::new();
    digest.update(password);
    digest.update(salt);
    digest.finalize().into()
}

/// Hashes a password the way `mosquitto_passwd` 2.0 does:
/// `$7$101$<salt>$<hash>`, PBKDF2-HMAC-SHA512 with 101 iterations and a
/// random 12-byte salt, standard base64. Fails only when the operating
/// system has no randomness to give.
pub fn hash_password(password: &[u8]) -> Result<String, AuthError> {
    let mut salt = [0u8; SALT_LEN];
    // aws-lc-rs's CSPRNG, the one rustls's default provider uses: already
    // linked by fleetmq, and the core does not depend on rustls.
    aws_lc_rs::rand::fill(&mut salt).map_err(|e| AuthError::Random(format!("{e:?}")))?;
    Ok(hash_with_salt(password, &salt))
}

fn hash_with_salt(password: &[u8], salt: &[u8]) -> String {
    let hash = pbkdf2_sha512(password, salt, PBKDF2_ITERATIONS);
    format!(
        "$7${PBKDF2_ITERATIONS}${}${}",
        BASE64.encode(salt),
        BASE64.encode(hash)
    )
}

#[cfg(test)]
#[path = "password_tests.rs"]
mod tests;
