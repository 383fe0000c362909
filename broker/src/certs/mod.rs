//! The lab PKI: a certificate authority, server and device certificates, and
//! the CRL the broker checks device certificates against.
//!
//! This module owns one folder (by default `fleetmq-data/pki`):
//!
//! ```text
//! ca.crt  ca.key (0600)  crl.pem  index.toml
//! server/<NAME>.crt  server/<NAME>.key (0600)
//! devices/<ID>/<ID>.crt  devices/<ID>/<ID>.key (0600)  devices/<ID>/ca.crt
//! ```
//!
//! `devices/<ID>/` holds exactly what one device needs, ready to copy to the
//! firmware's `fs/` folder. `index.toml` records every certificate issued
//! (kind, id, serial, SHA-256 fingerprint, expiry, revocation), so that
//! `revoke` can find a certificate by device id and `crl.pem` can be
//! rebuilt from the whole history.
//!
//! Keys are ECDSA P-256 unless RSA-2048 is asked for: the ESP32's default
//! TLS cipher suite (ECDHE-RSA-AES128-GCM-SHA256) needs an RSA server
//! certificate. Private keys are created with mode 0600 (never loosened
//! afterwards) in folders created with mode 0700, and nothing is
//! overwritten unless the caller asks for it (`--force`).
//!
//! It must not: touch sockets or the broker's TLS state (the `tls` module
//! loads these files, and reloads `crl.pem` on SIGHUP), or write anywhere
//! outside its folder except where a caller names a destination (`--out`).
//! It is Unix-only (file modes), like the rest of the broker.
//!
//! [`Pki`] is the library API; [`ensure_dev_pki`] is what the embedded
//! default configuration calls at start-up; [`cli`] is `fleetmq certs`.

pub mod audit;
pub mod audit_target;
pub mod cli;
mod cli_provision;
mod dev;
mod error;
mod files;
mod index;
mod inspect;
mod pki;
mod profile;
pub mod shared_crl;
mod signing;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use dev::{ensure_dev_pki, DevPki};
pub use error::CertError;
pub use pki::Pki;
pub use signing::{device_name_check, IssuedForKey, KeyRequest};

/// The lab PKI folder of a running broker: `provision.pki_dir`, default
/// `<data_dir>/pki` (what provisioning signs with and the revocation API
/// and the cluster's shared CRL write).
pub fn lab_pki_dir(config: &fleetmq_core::config::Config) -> PathBuf {
    (config.provision.pki_dir.clone()).unwrap_or_else(|| config.data_dir.join("pki"))
}

/// Where `fleetmq certs` keeps the lab PKI unless `--dir` says otherwise.
pub const DEFAULT_PKI_DIR: &str = "fleetmq-data/pki";
/// Validity of a new CA: ten years, so a lab never has to re-flash every
/// device because its trust anchor expired.
pub const DEFAULT_CA_DAYS: u32 = 3650;
/// Validity of a server certificate: about two years; servers are easy to
/// re-issue.
pub const DEFAULT_SERVER_DAYS: u32 = 825;
/// Validity of a device certificate: five years, because re-issuing means
/// re-flashing the device.
pub const DEFAULT_DEVICE_DAYS: u32 = 1825;
/// How long a CRL stays current; it is re-signed on every revocation and
/// by `fleetmq certs crl`.
pub const CRL_VALIDITY_DAYS: u32 = 30;
/// Longest validity accepted for anything, to catch typos like `--days 36500000`.
pub const MAX_DAYS: u32 = 36_500;

/// The key algorithm of a new key pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256: small, fast to generate and to verify;
    /// what rustls prefers.
    #[default]
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    /// RSA with a 2048-bit modulus (PKCS#1 v1.5 SHA-256 signatures): what
    /// the ESP32's default cipher suite ECDHE-RSA-AES128-GCM-SHA256 needs
    /// from the server.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::Rsa2048 => "rsa-2048",
        })
    }
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertKind {
    /// A broker's TLS server certificate (serverAuth).
    Server,
    /// A device's TLS client certificate (clientAuth).
    Device,
}

impl fmt::Display for CertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertKind::Server => "server",
            CertKind::Device => "device",
        })
    }
}

/// How to create the lab CA.
#[derive(Debug, Clone)]
pub struct CaOptions {
    /// Subject common name; devices show it when verification fails.
    pub common_name: String,
    /// Key algorithm of the CA key, which also decides the signature
    /// algorithm of everything the CA signs.
    pub key: KeyType,
    /// Validity in days.
    pub days: u32,
    /// Replace an existing CA. Every certificate it issued stops verifying.
    pub force: bool,
}

impl Default for CaOptions {
    fn default() -> Self {
        CaOptions {
            common_name: "fleetmq lab CA".to_owned(),
            key: KeyType::EcdsaP256,
            days: DEFAULT_CA_DAYS,
            force: false,
        }
    }
}

/// A certificate just issued, and where its files are.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Server or device.
    pub kind: CertKind,
    /// Device id or server name.
    pub id: String,
    /// The certificate (PEM).
    pub cert_path: PathBuf,
    /// Its private key (PKCS#8 PEM, mode 0600).
    pub key_path: PathBuf,
    /// For devices, the copy of the CA certificate next to the device's
    /// files (`devices/<ID>/ca.crt`), so that the folder is self-contained.
    pub ca_copy_path: Option<PathBuf>,
    /// Serial number, lowercase hex (the form `revoke` accepts).
    pub serial: String,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub fingerprint: String,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Serials of earlier certificates for the same id that are still
    /// valid: replacing files does not revoke them.
    pub still_valid_earlier: Vec<String>,
}

/// One entry of the index, as `list` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// Server or device.
    pub kind: CertKind,
    /// Device id or server name.
    pub id: String,
    /// The device's group (certificate OU), if any.
    pub group: Option<String>,
    /// Key algorithm.
    pub key: KeyType,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub fingerprint: String,
    /// When it was issued.
    pub issued_at: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Whole days from now until `not_after` (negative once expired).
    pub days_left: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
    /// The certificate file, relative to the PKI folder.
    pub cert_path: PathBuf,
    /// How the provisioning service issued it (`claim`, `token`,
    /// `approval`, `renewal`); `None` for `fleetmq certs`.
    pub issued_by: Option<String>,
    /// The serial a renewal replaces.
    pub replaces: Option<String>,
}

/// The outcome of a revocation.
#[derive(Debug, Clone)]
pub struct Revoked {
    /// The certificates revoked by this call.
    pub certs: Vec<IssuedCert>,
    /// The CRL, re-signed with every revoked serial.
    pub crl_path: PathBuf,
}
