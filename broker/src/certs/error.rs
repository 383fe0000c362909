//! Errors of the lab PKI. Each names the file involved and what to do.

use std::path::PathBuf;

use thiserror::Error;

/// Why a PKI operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CertError {
    /// `fleetmq certs audit` could not load the listener's CA or CRL files.
    #[error("cannot audit: {0} (check --ca and --crl)")]
    Audit(String),

    /// `fleetmq certs audit`: the folder or listener to audit is unclear.
    #[error("cannot audit: {0}")]
    AuditTarget(String),

    /// `fleetmq certs approve|deny|pending`: the provisioning state.
    #[error("provisioning: {0}")]
    Provision(String),

    /// A file or folder could not be read, written or created.
    #[error("{path}: cannot {action}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done ("write", "read", "create folder", ...).
        action: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The destination exists and the caller did not ask to replace it.
    #[error(
        "{path} already exists; pass --force to replace it \
         (a replaced certificate stays valid until you revoke it)"
    )]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },

    /// The folder has no CA to sign with.
    #[error(
        "{dir}: no lab CA here (ca.crt and ca.key); \
         create one with `fleetmq certs init --dir {dir}`"
    )]
    NoCa {
        /// The PKI folder.
        dir: PathBuf,
    },

    /// The CA key can be read by other users, so it may have leaked.
    #[error(
        "{path}: private key is readable by group or others (mode {mode:04o}); \
         run `chmod 600 {path}` and consider the CA compromised if others used the machine"
    )]
    KeyTooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// A certificate file is not a readable PEM X.509 certificate.
    #[error("{path}: not a readable PEM certificate ({reason}); restore it from a backup")]
    BadCertificate {
        /// The certificate file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },

    /// A key file is not a readable PKCS#8 PEM private key.
    #[error("{path}: not a readable PEM private key ({source}); restore it from a backup")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What rcgen said.
        source: rcgen::Error,
    },

    /// The CA key does not belong to the CA certificate.
    #[error(
        "{key} does not belong to {cert} (different public keys); \
         restore the pair from a backup"
    )]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },

    /// Key generation or signing failed inside the crypto library.
    #[error("cannot create the {what}: {source}")]
    Crypto {
        /// What was being made ("CA certificate", "key pair", "CRL", ...).
        what: &'static str,
        /// What rcgen said.
        source: rcgen::Error,
    },

    /// `index.toml` is not valid.
    #[error(
        "{path}: not a valid certificate index ({reason}); fix the entry by hand \
         or restore it from a backup"
    )]
    BadIndex {
        /// The index file.
        path: PathBuf,
        /// What the parser said (with line and column).
        reason: String,
    },

    /// A device id or server name cannot be used as a name and a file name.
    #[error(
        "{kind} name {name:?} is not usable: {reason}; use 1 to 64 letters, digits, \
         '.', '_' or '-', not starting with '.' or '-'"
    )]
    InvalidName {
        /// "device" or "server".
        kind: &'static str,
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },

    /// A `--dns` value is not a DNS name.
    #[error(
        "{name:?} is not a DNS name (letters, digits, '-' and '.', optionally starting with '*.')"
    )]
    InvalidDnsName {
        /// The rejected name.
        name: String,
    },

    /// A device group (OU) is empty, too long or has control characters.
    #[error("group {group:?} is not usable as an OU: use 1 to 64 printable characters")]
    InvalidGroup {
        /// The rejected group.
        group: String,
    },

    /// A validity outside 1..=MAX_DAYS.
    #[error("--days {days} is out of range: use 1 to {max}")]
    InvalidDays {
        /// The rejected value.
        days: u32,
        /// The largest accepted value.
        max: u32,
    },

    /// `revoke` found nothing with that id or serial.
    #[error(
        "no certificate with id or serial {query:?} in {index}; \
         `fleetmq certs list` shows what was issued"
    )]
    UnknownCertificate {
        /// What the caller asked for.
        query: String,
        /// The index searched.
        index: PathBuf,
    },

    /// Every certificate matching the query is already revoked.
    #[error("{query:?}: already revoked (nothing to do)")]
    AlreadyRevoked {
        /// What the caller asked for.
        query: String,
    },
}

impl CertError {
    /// An I/O error on `path` while doing `action`.
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
    ) -> impl FnOnce(std::io::Error) -> CertError {
        let path = path.into();
        move |source| CertError::Io {
            path,
            action,
            source,
        }
    }

    /// A crypto-library error while making `what`.
    pub(crate) fn crypto(what: &'static str) -> impl FnOnce(rcgen::Error) -> CertError {
        move |source| CertError::Crypto { what, source }
    }
}
