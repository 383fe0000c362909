//! `index.toml`: the record of every certificate the lab CA issued, and the
//! CRL number. It is the source `revoke` searches and `crl.pem` is rebuilt
//! from; certificates themselves are never parsed to answer `list`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::files::{self, Secrecy};
use super::{CertError, CertKind, IssuedCert, KeyType};

/// Written at the top of the file for whoever opens it.
const HEADER: &str = "# Certificates issued by the fleetmq lab CA; written by `fleetmq certs`.\n\
                      # Revoke with `fleetmq certs revoke ID|SERIAL`, not by editing this file.\n\n";

/// The whole index file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Index {
    /// Number of the last CRL signed; CRL numbers must only grow
    /// (RFC 5280 §5.2.3), so it survives across runs here.
    #[serde(default)]
    pub(crate) crl_number: u64,
    /// When the current `crl.pem` stops being current.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) crl_next_update: Option<OffsetDateTime>,
    /// Every certificate issued, oldest first.
    #[serde(default, rename = "cert")]
    pub(crate) certs: Vec<Entry>,
    /// Certificates another cluster node revoked that this index does not
    /// list (issued there), learned from the cluster's CRL (decision
    /// 0188): every CRL signed here keeps revoking them.
    #[serde(
        default,
        rename = "revoked_elsewhere",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) revoked_elsewhere: Vec<RevokedElsewhere>,
}

/// A serial revoked by another node's CRL, unknown to this index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RevokedElsewhere {
    /// Lowercase hex, as in [`Entry::serial`].
    pub(crate) serial: String,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) revoked_at: OffsetDateTime,
}

/// One issued certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) kind: CertKind,
    /// Device id or server name.
    pub(crate) id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) group: Option<String>,
    pub(crate) key: KeyType,
    /// Lowercase hex, as `revoke` accepts it.
    pub(crate) serial: String,
    pub(crate) fingerprint_sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) issued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) not_after: OffsetDateTime,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) revoked_at: Option<OffsetDateTime>,
    /// The certificate file, relative to the PKI folder.
    pub(crate) cert: PathBuf,
    /// How it was issued when not by `fleetmq certs`: `claim`, `token`,
    /// `approval`, `renewal` (the provisioning service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) issued_by: Option<String>,
    /// For a renewal: the serial of the certificate it replaces, revoked
    /// per `provision.revoke_replaced`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) replaces: Option<String>,
}

impl Entry {
    /// The public view, with days left counted from `now`.
    pub(crate) fn to_issued_cert(&self, now: OffsetDateTime) -> IssuedCert {
        IssuedCert {
            kind: self.kind,
            id: self.id.clone(),
            group: self.group.clone(),
            key: self.key,
            serial: self.serial.clone(),
            fingerprint: self.fingerprint_sha256.clone(),
            issued_at: self.issued_at,
            not_after: self.not_after,
            days_left: (self.not_after - now).whole_days(),
            revoked_at: self.revoked_at,
            cert_path: self.cert.clone(),
            issued_by: self.issued_by.clone(),
            replaces: self.replaces.clone(),
        }
    }
}

impl Index {
    /// Reads the index; a missing file is an empty index (a CA made by
    /// hand, or by an older version, has none yet).
    pub(crate) fn load(path: &Path) -> Result<Index, CertError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Index::default())
            }
            Err(source) => {
                return Err(CertError::Io {
                    path: path.to_path_buf(),
                    action: "read",
                    source,
                })
            }
        };
        toml::from_str(&text).map_err(|error| CertError::BadIndex {
            path: path.to_path_buf(),
            reason: error.to_string().trim_end().to_owned(),
        })
    }

    /// Writes the index atomically.
    pub(crate) fn save(&self, path: &Path) -> Result<(), CertError> {
        let body = toml::to_string(self).map_err(|error| CertError::BadIndex {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
        files::write_file(path, format!("{HEADER}{body}").as_bytes(), Secrecy::Public)
    }

    /// Serials of certificates for `kind`/`id` that are not revoked.
    pub(crate) fn unrevoked_serials(&self, kind: CertKind, id: &str) -> Vec<String> {
        self.certs
            .iter()
            .filter(|entry| entry.kind == kind && entry.id == id && entry.revoked_at.is_none())
            .map(|entry| entry.serial.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn entry(id: &str, revoked: bool) -> Entry {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        Entry {
            kind: CertKind::Device,
            id: id.to_owned(),
            group: Some("lab".to_owned()),
            key: KeyType::EcdsaP256,
            serial: "0a1b".to_owned(),
            fingerprint_sha256: "ff".repeat(32),
            issued_at: at,
            not_after: at + time::Duration::days(10),
            revoked_at: revoked.then_some(at),
            cert: PathBuf::from(format!("devices/{id}/{id}.crt")),
            issued_by: None,
            replaces: None,
        }
    }

    #[test]
    fn round_trips_through_the_file() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("index.toml");
        let index = Index {
            crl_number: 3,
            crl_next_update: None,
            certs: vec![entry("esp32_1", false), entry("esp32_2", true)],
            revoked_elsewhere: vec![RevokedElsewhere {
                serial: "77".to_owned(),
                revoked_at: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            }],
        };
        index.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("[[cert]]"), "{text}");
        assert!(
            text.contains("not_after = \"2023-11-24T22:13:20Z\""),
            "{text}"
        );
        let loaded = Index::load(&path).unwrap();
        assert_eq!(loaded.crl_number, 3);
        assert_eq!(loaded.certs, index.certs);
        assert_eq!(loaded.revoked_elsewhere, index.revoked_elsewhere);
        assert_eq!(
            loaded.unrevoked_serials(CertKind::Device, "esp32_1"),
            ["0a1b"]
        );
        assert!(loaded
            .unrevoked_serials(CertKind::Device, "esp32_2")
            .is_empty());
    }

    #[test]
    fn missing_is_empty_and_broken_names_the_file() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("index.toml");
        assert!(Index::load(&path).unwrap().certs.is_empty());
        std::fs::write(&path, "[[cert]]\nkind = \"toaster\"\n").unwrap();
        let error = Index::load(&path).unwrap_err().to_string();
        assert!(error.contains("index.toml"), "{error}");
    }

    #[test]
    fn days_left_counts_whole_days() {
        let entry = entry("a", false);
        let view = entry.to_issued_cert(entry.issued_at + time::Duration::hours(36));
        assert_eq!(view.days_left, 8);
    }
}
