//! Errors from loading password files and ACLs: each names the file and
//! line (or the `[[acl]]` rule) and says what to do.

use std::path::PathBuf;

/// Why a password file or an ACL could not be loaded or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A file could not be read or written.
    #[error("{action} {path}: {source} (check the path and the file's permissions)")]
    Io {
        /// "cannot read" or "cannot write".
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A line of a password file is malformed.
    #[error("{origin}:{line}: {problem}")]
    PasswordFile {
        origin: String,
        line: usize,
        problem: String,
    },
    /// A line of a Mosquitto `acl_file` is malformed.
    #[error("{origin}:{line}: {problem}")]
    AclFile {
        origin: String,
        line: usize,
        problem: String,
    },
    /// An `[[acl]]` rule of `fleetmq.toml` is malformed (1-based number).
    #[error("[[acl]] rule #{number}: {problem}")]
    AclRule { number: usize, problem: String },
    /// A `dynamic-security.json` is malformed.
    #[error("{path}: {problem} (fix the file, or re-create it with `mosquitto_ctrl dynsec init FILE ADMIN`)")]
    Dynsec { path: PathBuf, problem: String },
    /// The operating system gave no random bytes for a password salt.
    #[error("cannot get random bytes for a password salt: {0}")]
    Random(String),
}
