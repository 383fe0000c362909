//! Taking a CRL another cluster node signed into this node's copy of the
//! lab PKI (decision 0188). Every node of a cluster holds its own PKI
//! folder of the same CA; the cluster shares `crl.pem`, and this module
//! is what writes a shared CRL into a folder, so that revocations only
//! ever add up:
//!
//! - a CRL that revokes everything the folder's own CRL revokes replaces
//!   it (atomically, mode 0644 like every CRL the PKI writes);
//! - a folder that revoked something the shared CRL lacks (a revocation
//!   made while this node was cut off from NATS) re-signs its CRL with
//!   both, for the caller to share in turn;
//! - either way `index.toml` learns the shared revocations (certificates
//!   it lists are marked revoked, the others kept in `revoked_elsewhere`)
//!   and the CRL number never goes back, so a later revocation made here
//!   keeps every earlier one of the cluster.
//!
//! It refuses a CRL whose issuer is not this folder's CA. It does not
//! check the CRL's signature: the TLS verifier does at every handshake,
//! and the shared CRL comes only from the cluster's own NATS account.

use std::collections::BTreeMap;
use std::path::Path;

use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::files::{self, Layout, Secrecy};
use super::index::{Index, RevokedElsewhere};
use super::inspect;
use super::{CertError, Pki};

/// What a CRL says, as two CRLs of one CA are compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlSummary {
    /// Its CRL number (0 when it has none).
    pub number: u64,
    /// Revoked serials (as `index.toml` writes them) and when.
    pub revoked: BTreeMap<String, OffsetDateTime>,
    /// When it stops being current.
    pub next_update: Option<OffsetDateTime>,
    /// The issuer's name, DER.
    issuer: Vec<u8>,
    /// Its authorityKeyIdentifier: which CA key signed it.
    authority_key_id: Option<Vec<u8>>,
}

/// What [`adopt`] did to the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adopted {
    /// `crl.pem` already was that CRL.
    Unchanged,
    /// `crl.pem` replaced by the shared CRL. `dropped` lists serials the
    /// old one revoked that the new one does not, when this folder could
    /// not re-sign (no CA key here): then the shared CRL wins.
    Replaced { dropped: Vec<String> },
    /// This folder revoked certificates the shared CRL does not: `crl.pem`
    /// re-signed here with both; the caller shares it.
    Merged { added: Vec<String> },
}

fn bad(reason: impl std::fmt::Display) -> CertError {
    CertError::Provision(format!("shared CRL: {reason}"))
}

/// Reads one PEM CRL.
pub fn summarize(pem: &[u8]) -> Result<CrlSummary, CertError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(bad)?;
    if block.label != "X509 CRL" {
        return Err(bad(format!("PEM block is {:?}, not X509 CRL", block.label)));
    }
    let (_, crl) = CertificateRevocationList::from_der(&block.contents).map_err(bad)?;
    let number = crl
        .crl_number()
        .map(|number| number.to_u64_digits())
        .map(|digits| match digits.as_slice() {
            [] => 0,
            [one] => *one,
            _ => u64::MAX,
        })
        .unwrap_or(0);
    let mut revoked = BTreeMap::new();
    for entry in crl.iter_revoked_certificates() {
        let serial = inspect::serial_hex(entry.raw_serial());
        let at = OffsetDateTime::from_unix_timestamp(entry.revocation_date.timestamp())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        revoked.insert(serial, at);
    }
    let next_update = crl
        .next_update()
        .and_then(|at| OffsetDateTime::from_unix_timestamp(at.timestamp()).ok());
    let authority_key_id =
        crl.extensions()
            .iter()
            .find_map(|extension| match extension.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(key) => {
                    key.key_identifier.as_ref().map(|id| id.0.to_vec())
                }
                _ => None,
            });
    Ok(CrlSummary {
        number,
        revoked,
        next_update,
        issuer: crl.issuer().as_raw().to_vec(),
        authority_key_id,
    })
}

/// The subject of `ca.crt` in `dir` (DER) and its subjectKeyIdentifier.
fn ca_identity(layout: &Layout) -> Result<(Vec<u8>, Option<Vec<u8>>), CertError> {
    let path = layout.ca_cert();
    if !path.exists() {
        return Err(CertError::NoCa {
            dir: layout.dir.clone(),
        });
    }
    let der = inspect::der_from_pem(&files::read_text(&path)?, &path)?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|error| CertError::BadCertificate {
            path: path.clone(),
            reason: error.to_string(),
        })?;
    let key_id = inspect::facts_from_der(&der, &path)?.subject_key_id;
    Ok((cert.subject().as_raw().to_vec(), key_id))
}

/// The serial as `index.toml` may spell it, normalized for comparison.
fn same_serial(index_serial: &str) -> String {
    inspect::normalize_serial(index_serial).unwrap_or_else(|| index_serial.to_owned())
}

/// Records `shared`'s revocations in the folder's index (when it has
/// one); the CRL number is raised to the shared one.
fn learn(layout: &Layout, shared: &CrlSummary) -> Result<(), CertError> {
    let path = layout.index();
    if !path.exists() {
        return Ok(());
    }
    let mut index = Index::load(&path)?;
    let mut changed = false;
    for (serial, at) in &shared.revoked {
        let serial = same_serial(serial);
        let listed = (index.certs.iter_mut()).find(|entry| same_serial(&entry.serial) == serial);
        match listed {
            Some(entry) if entry.revoked_at.is_none() => {
                entry.revoked_at = Some(*at);
                changed = true;
            }
            Some(_) => {}
            None => {
                let known =
                    (index.revoked_elsewhere.iter()).any(|e| same_serial(&e.serial) == serial);
                if !known {
                    index.revoked_elsewhere.push(RevokedElsewhere {
                        serial,
                        revoked_at: *at,
                    });
                    changed = true;
                }
            }
        }
    }
    if shared.number > index.crl_number {
        index.crl_number = shared.number;
        index.crl_next_update = shared.next_update;
        changed = true;
    }
    if changed {
        index.save(&path)?;
    }
    Ok(())
}

/// Takes the shared CRL `pem` into the PKI folder `dir` (see the module
/// documentation).
pub fn adopt(dir: &Path, pem: &[u8]) -> Result<Adopted, CertError> {
    let layout = Layout::new(dir);
    let shared = summarize(pem)?;
    // Two lab CAs share their name ("fleetmq lab CA"): the key
    // identifier tells them apart.
    let (subject, key_id) = ca_identity(&layout)?;
    let same_key = match (&shared.authority_key_id, &key_id) {
        (Some(signer), Some(ca)) => signer == ca,
        _ => true,
    };
    if shared.issuer != subject || !same_key {
        return Err(bad("it was not issued by this folder's CA (ca.crt)"));
    }
    let crl_path = layout.crl();
    let current = std::fs::read(&crl_path).ok();
    if current.as_deref() == Some(pem) {
        learn(&layout, &shared)?;
        return Ok(Adopted::Unchanged);
    }
    // A damaged or missing local CRL revokes nothing worth keeping.
    let local = current.as_deref().and_then(|pem| summarize(pem).ok());
    let missing: Vec<String> = local
        .iter()
        .flat_map(|local| local.revoked.keys())
        .filter(|serial| !shared.revoked.contains_key(*serial))
        .cloned()
        .collect();
    learn(&layout, &shared)?;
    if !missing.is_empty() {
        // The index still holds this folder's own revocations: re-signing
        // from it gives both. Without the CA key, the shared CRL wins.
        if let Ok(pki) = Pki::open(dir) {
            pki.refresh_crl()?;
            return Ok(Adopted::Merged { added: missing });
        }
    }
    files::write_file(&crl_path, pem, Secrecy::Public)?;
    Ok(Adopted::Replaced { dropped: missing })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::certs::{CaOptions, KeyType};

    /// Two folders of one CA (the second a copy of the first), each with
    /// two devices issued before the copy.
    fn two_nodes() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let temp = tempfile::tempdir().unwrap();
        let a = temp.path().join("a");
        let pki = Pki::init(&a, &CaOptions::default()).unwrap();
        for id in ["dev-1", "dev-2", "dev-3"] {
            pki.issue_device(id, None, KeyType::EcdsaP256, 30).unwrap();
        }
        let b = temp.path().join("b");
        std::fs::create_dir(&b).unwrap();
        for file in ["ca.crt", "ca.key", "crl.pem", "index.toml"] {
            std::fs::copy(a.join(file), b.join(file)).unwrap();
        }
        (temp, a, b)
    }

    fn revoked(dir: &Path) -> Vec<String> {
        let crl = summarize(&std::fs::read(dir.join("crl.pem")).unwrap()).unwrap();
        crl.revoked.keys().cloned().collect()
    }

    #[test]
    fn revocations_of_two_nodes_add_up_and_numbers_only_grow() {
        let (_temp, a, b) = two_nodes();
        Pki::open(&a).unwrap().revoke("dev-1").unwrap();
        let shared = std::fs::read(a.join("crl.pem")).unwrap();
        // b had revoked nothing: it takes a's CRL as it is.
        assert_eq!(
            adopt(&b, &shared).unwrap(),
            Adopted::Replaced { dropped: vec![] }
        );
        assert_eq!(std::fs::read(b.join("crl.pem")).unwrap(), shared);
        assert_eq!(adopt(&b, &shared).unwrap(), Adopted::Unchanged);
        // b's next revocation keeps a's: its index learned it.
        Pki::open(&b).unwrap().revoke("dev-2").unwrap();
        assert_eq!(revoked(&b).len(), 2);
        let from_b = summarize(&std::fs::read(b.join("crl.pem")).unwrap()).unwrap();
        assert!(from_b.number > summarize(&shared).unwrap().number);
        // A revocation a made meanwhile is merged, not lost.
        Pki::open(&a).unwrap().revoke("dev-3").unwrap();
        let shared = std::fs::read(b.join("crl.pem")).unwrap();
        match adopt(&a, &shared).unwrap() {
            Adopted::Merged { added } => assert_eq!(added.len(), 1),
            other => panic!("{other:?}"),
        }
        assert_eq!(revoked(&a).len(), 3);
        let merged = std::fs::read(a.join("crl.pem")).unwrap();
        assert_eq!(
            adopt(&b, &merged).unwrap(),
            Adopted::Replaced { dropped: vec![] }
        );
        assert_eq!(revoked(&b), revoked(&a));
    }

    #[test]
    fn a_serial_issued_elsewhere_stays_revoked_here() {
        let (_temp, a, b) = two_nodes();
        let pki_a = Pki::open(&a).unwrap();
        pki_a
            .issue_device("only-on-a", None, KeyType::EcdsaP256, 30)
            .unwrap();
        pki_a.revoke("only-on-a").unwrap();
        adopt(&b, &std::fs::read(a.join("crl.pem")).unwrap()).unwrap();
        // b re-signs (a revocation of its own, or `certs crl`): still there.
        Pki::open(&b).unwrap().refresh_crl().unwrap();
        assert_eq!(revoked(&b), revoked(&a));
    }

    #[test]
    fn a_crl_of_another_ca_is_refused() {
        let (_temp, a, _b) = two_nodes();
        let other = tempfile::tempdir().unwrap();
        Pki::init(other.path(), &CaOptions::default()).unwrap();
        let foreign = std::fs::read(other.path().join("crl.pem")).unwrap();
        let before = std::fs::read(a.join("crl.pem")).unwrap();
        assert!(adopt(&a, &foreign).is_err());
        assert!(adopt(&a, b"not a crl").is_err());
        assert_eq!(std::fs::read(a.join("crl.pem")).unwrap(), before);
    }
}
