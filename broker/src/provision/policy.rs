//! The first-certificate policies that read files: the id pattern, the
//! allow-list, and one-time tokens whose use is recorded on disk before a
//! certificate leaves, so a restart never makes a used token valid again
//! (decision 0152).
//!
//! Owns `<data_dir>/provision/used-tokens` (SHA-256 of each used token,
//! one per line, fsynced). Must not: sign or answer.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::message::Refusal;

/// Whether `id` matches `pattern`, where `*` matches any run of
/// characters (possibly none) and everything else matches itself.
pub fn id_matches(pattern: &str, id: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut rest) = id.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Whether `id` is a line of the allow-list file (`#` starts a comment).
pub fn allow_listed(path: &Path, id: &str) -> Result<bool, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    Ok(text
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .any(|line| line == id))
}

/// The one-time tokens: the operator's file, and the record of used ones.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// `TOKEN` or `TOKEN DEVICE-ID` per line.
    pub file: PathBuf,
    /// SHA-256 (hex) of every used token, one per line.
    pub used: PathBuf,
}

impl Tokens {
    /// Checks `token` for `id` and records it used (fsynced) before
    /// returning Ok: the caller may then issue.
    pub fn consume(&self, token: Option<&str>, id: &str) -> Result<(), (Refusal, String)> {
        let internal = |detail: String| (Refusal::Internal, detail);
        let Some(token) = token.filter(|token| !token.is_empty()) else {
            return Err((
                Refusal::TokenInvalid,
                "this broker issues certificates for one-time tokens only; none was sent"
                    .to_owned(),
            ));
        };
        let text = std::fs::read_to_string(&self.file)
            .map_err(|error| internal(format!("cannot read {}: {error}", self.file.display())))?;
        let bound_to = text.lines().find_map(|line| {
            let mut words = line.split('#').next().unwrap_or("").split_whitespace();
            (words.next() == Some(token)).then(|| words.next().map(str::to_owned))
        });
        match bound_to {
            None => {
                return Err((Refusal::TokenInvalid, "unknown token".to_owned()));
            }
            Some(Some(other)) if other != id => {
                return Err((
                    Refusal::TokenInvalid,
                    "the token belongs to another device id".to_owned(),
                ));
            }
            Some(_) => {}
        }
        let hash = hex(&Sha256::digest(token.as_bytes()));
        let used = match std::fs::read_to_string(&self.used) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => {
                return Err(internal(format!(
                    "cannot read {}: {error}",
                    self.used.display()
                )))
            }
        };
        if used.lines().any(|line| line.trim() == hash) {
            return Err((
                Refusal::TokenUsed,
                "the token was used before; each token works once".to_owned(),
            ));
        }
        if let Some(parent) = self.used.parent() {
            std::fs::create_dir_all(parent).map_err(|error| internal(error.to_string()))?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.used)
            .and_then(|mut file| {
                file.write_all(format!("{hash}\n").as_bytes())?;
                file.sync_all()
            })
            .map_err(|error| {
                internal(format!(
                    "cannot record the token as used in {}: {error}",
                    self.used.display()
                ))
            })
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn patterns() {
        for (pattern, id, expected) in [
            ("*", "anything", true),
            ("esp32_*", "esp32_0A1B", true),
            ("esp32_*", "esp32_", true),
            ("esp32_*", "esp8266_1", false),
            ("esp32_*_lab", "esp32_1_lab", true),
            ("esp32_*_lab", "esp32_1_lab2", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "acb", false),
            ("exact", "exact", true),
            ("exact", "exact2", false),
            ("*ab*ab", "ab", false),
        ] {
            assert_eq!(id_matches(pattern, id), expected, "{pattern} {id}");
        }
    }

    #[test]
    fn a_token_works_once_even_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, "# lab batch\nT1\nT2 esp32_2\n").unwrap();
        let tokens = Tokens {
            file: file.clone(),
            used: dir.path().join("state/used-tokens"),
        };
        tokens.consume(Some("T1"), "esp32_1").unwrap();
        let again = Tokens {
            file,
            used: dir.path().join("state/used-tokens"),
        };
        assert_eq!(
            again.consume(Some("T1"), "esp32_9").unwrap_err().0,
            Refusal::TokenUsed
        );
        assert_eq!(
            again.consume(Some("T2"), "esp32_1").unwrap_err().0,
            Refusal::TokenInvalid
        );
        assert_eq!(
            again.consume(Some("T3"), "esp32_1").unwrap_err().0,
            Refusal::TokenInvalid
        );
        assert_eq!(
            again.consume(None, "esp32_1").unwrap_err().0,
            Refusal::TokenInvalid
        );
        again.consume(Some("T2"), "esp32_2").unwrap();
        let record = std::fs::read_to_string(dir.path().join("state/used-tokens")).unwrap();
        assert!(!record.contains("T1"), "only hashes are kept: {record}");
    }

    #[test]
    fn allow_list_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("allow");
        std::fs::write(&path, "esp32_1 # bench\n  esp32_2\n").unwrap();
        assert!(allow_listed(&path, "esp32_1").unwrap());
        assert!(allow_listed(&path, "esp32_2").unwrap());
        assert!(!allow_listed(&path, "esp32_3").unwrap());
    }
}
