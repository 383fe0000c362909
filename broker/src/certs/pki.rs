//! [`Pki`]: one lab CA folder — creating it, issuing from it, revoking, and
//! re-signing its CRL.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair,
    PublicKeyData, RevokedCertParams, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::files::{self, Layout, Secrecy};
use super::index::{Entry, Index};
use super::inspect::{self, CertFacts};
use super::profile::{self, check_days, check_name};
use super::{
    CaOptions, CertError, CertKind, Issued, IssuedCert, KeyType, Revoked, CRL_VALIDITY_DAYS,
};

/// An opened lab CA folder, ready to issue certificates.
pub struct Pki {
    /// Where every file lives.
    layout: Layout,
    /// Signs certificates and CRLs: the CA's subject, key identifier and key.
    issuer: Issuer<'static, KeyPair>,
    /// `ca.crt` as written, copied next to each device's files.
    ca_cert_pem: String,
    /// The CA's subjectKeyIdentifier, which every CRL must repeat as its
    /// authorityKeyIdentifier for verifiers to match the two.
    ca_key_id: Option<Vec<u8>>,
    /// Replace existing certificate and key files instead of refusing (the
    /// CLI's `--force`). Off by default: overwriting a device's key by
    /// mistake means re-flashing it.
    overwrite: bool,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.layout.dir)
            .field("overwrite", &self.overwrite)
            .finish_non_exhaustive()
    }
}

/// What [`Pki::issue`] needs besides the CA.
struct Leaf<'a> {
    kind: CertKind,
    id: &'a str,
    group: Option<&'a str>,
    key: KeyType,
    params: CertificateParams,
    cert_path: PathBuf,
    key_path: PathBuf,
    ca_copy_path: Option<PathBuf>,
}

impl Pki {
    /// Creates a new CA in `dir` (created with mode 0700 if missing): `ca.key`
    /// (0600), `ca.crt`, an empty `crl.pem` and a fresh `index.toml`.
    /// Refuses to replace an existing CA unless `options.force`.
    pub fn init(dir: &Path, options: &CaOptions) -> Result<Pki, CertError> {
        check_days(options.days)?;
        let layout = Layout::new(dir);
        let (ca_cert, ca_key) = (layout.ca_cert(), layout.ca_key());
        files::refuse_existing([ca_cert.as_path(), ca_key.as_path()], options.force)?;
        files::create_private_dir(dir)?;

        let key = profile::generate_key(options.key)?;
        let params = profile::ca_params(&options.common_name, options.days);
        let cert = params
            .self_signed(&key)
            .map_err(CertError::crypto("CA certificate"))?;
        let facts = inspect::facts_from_der(cert.der(), &ca_cert)?;
        files::write_file(&ca_key, key.serialize_pem().as_bytes(), Secrecy::Private)?;
        files::write_file(&ca_cert, cert.pem().as_bytes(), Secrecy::Public)?;

        let pki = Pki {
            layout,
            issuer: Issuer::new(params, key),
            ca_cert_pem: cert.pem(),
            ca_key_id: facts.subject_key_id,
            overwrite: false,
        };
        // A new CA starts a new history: nothing an earlier CA issued
        // verifies against it, so its index entries would only mislead.
        let mut index = Index::default();
        let crl = pki.sign_crl(&mut index)?;
        index.save(&pki.layout.index())?;
        files::write_file(&pki.crl_path(), crl.as_bytes(), Secrecy::Public)?;
        Ok(pki)
    }

    /// Opens the CA in `dir`. Fails if `ca.key` is readable by others or
    /// does not belong to `ca.crt`.
    pub fn open(dir: &Path) -> Result<Pki, CertError> {
        let layout = Layout::new(dir);
        let (ca_cert, ca_key) = (layout.ca_cert(), layout.ca_key());
        if !ca_cert.exists() || !ca_key.exists() {
            return Err(CertError::NoCa {
                dir: dir.to_path_buf(),
            });
        }
        files::check_private_mode(&ca_key)?;
        let key =
            KeyPair::from_pem(&files::read_text(&ca_key)?).map_err(|source| CertError::BadKey {
                path: ca_key.clone(),
                source,
            })?;
        let ca_cert_pem = files::read_text(&ca_cert)?;
        let facts: CertFacts =
            inspect::facts_from_der(&inspect::der_from_pem(&ca_cert_pem, &ca_cert)?, &ca_cert)?;
        if facts.public_key != key.der_bytes() {
            return Err(CertError::KeyMismatch {
                key: ca_key,
                cert: ca_cert,
            });
        }
        let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, key).map_err(|error| {
            CertError::BadCertificate {
                path: ca_cert.clone(),
                reason: error.to_string(),
            }
        })?;
        Ok(Pki {
            layout,
            issuer,
            ca_cert_pem,
            ca_key_id: facts.subject_key_id,
            overwrite: false,
        })
    }

    /// The CA's signer, for `signing.rs`.
    pub(super) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// `ca.crt` as written, for `signing.rs`.
    pub(super) fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// The folder layout, for `signing.rs`.
    pub(super) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Whether issuing replaces existing certificate and key files (the
    /// CLI's `--force`). A replaced certificate stays valid until revoked.
    pub fn set_overwrite(&mut self, overwrite: bool) {
        self.overwrite = overwrite;
    }

    /// The PKI folder.
    pub fn dir(&self) -> &Path {
        &self.layout.dir
    }

    /// `ca.crt`: what devices and the broker trust.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.layout.ca_cert()
    }

    /// `crl.pem`: every revoked serial, signed by the CA.
    pub fn crl_path(&self) -> PathBuf {
        self.layout.crl()
    }

    /// `index.toml`: every certificate issued.
    pub fn index_path(&self) -> PathBuf {
        self.layout.index()
    }

    /// `server/<NAME>.crt`.
    pub fn server_cert_path(&self, name: &str) -> PathBuf {
        self.layout.server_cert(name)
    }

    /// `server/<NAME>.key`.
    pub fn server_key_path(&self, name: &str) -> PathBuf {
        self.layout.server_key(name)
    }

    /// Issues a TLS server certificate (serverAuth) `server/<NAME>.crt|.key`,
    /// valid for `name` itself (as a DNS name or IP address, when it is
    /// one), every name in `dns_names` and every address in `ips`.
    pub fn issue_server(
        &self,
        name: &str,
        dns_names: &[String],
        ips: &[IpAddr],
        key: KeyType,
        days: u32,
    ) -> Result<Issued, CertError> {
        check_name("server", name)?;
        check_days(days)?;
        let mut all_dns = Vec::with_capacity(dns_names.len() + 1);
        let mut all_ips = Vec::with_capacity(ips.len() + 1);
        match name.parse::<IpAddr>() {
            Ok(ip) => all_ips.push(ip),
            Err(_) if profile::check_dns_name(name).is_ok() => all_dns.push(name.to_owned()),
            Err(_) => {}
        }
        all_dns.extend_from_slice(dns_names);
        all_ips.extend_from_slice(ips);
        let params = profile::server_params(name, &all_dns, &all_ips, key, days)?;
        self.issue(Leaf {
            kind: CertKind::Server,
            id: name,
            group: None,
            key,
            params,
            cert_path: self.layout.server_cert(name),
            key_path: self.layout.server_key(name),
            ca_copy_path: None,
        })
    }

    /// Issues a device's TLS client certificate (clientAuth) with CN = `id`,
    /// OU = `group` and the URI SAN `urn:fleetmq:device:<id>`, into
    /// `devices/<ID>/` together with a copy of `ca.crt`.
    pub fn issue_device(
        &self,
        id: &str,
        group: Option<&str>,
        key: KeyType,
        days: u32,
    ) -> Result<Issued, CertError> {
        check_name("device", id)?;
        check_days(days)?;
        let params = profile::device_params(id, group, key, days)?;
        self.issue(Leaf {
            kind: CertKind::Device,
            id,
            group,
            key,
            params,
            cert_path: self.layout.device_cert(id),
            key_path: self.layout.device_key(id),
            ca_copy_path: Some(self.layout.device_ca(id)),
        })
    }

    /// Revokes by serial (hex, any case, colons allowed) or else by id
    /// (every unrevoked certificate of that device or server), then
    /// re-signs `crl.pem`. The broker picks the new CRL up on SIGHUP.
    pub fn revoke(&self, id_or_serial: &str) -> Result<Revoked, CertError> {
        let index_path = self.layout.index();
        let mut index = Index::load(&index_path)?;
        let serial = inspect::normalize_serial(id_or_serial);
        let positions = |matches: &dyn Fn(&Entry) -> bool| -> Vec<usize> {
            (index.certs.iter().enumerate())
                .filter(|(_, entry)| matches(entry))
                .map(|(at, _)| at)
                .collect()
        };
        let mut matching = positions(&|entry| Some(&entry.serial) == serial.as_ref());
        if matching.is_empty() {
            matching = positions(&|entry| entry.id == id_or_serial);
        }
        if matching.is_empty() {
            return Err(CertError::UnknownCertificate {
                query: id_or_serial.to_owned(),
                index: index_path,
            });
        }
        let now = profile::now();
        let mut revoked = Vec::new();
        for at in matching {
            if let Some(entry) = index.certs.get_mut(at) {
                if entry.revoked_at.is_none() {
                    entry.revoked_at = Some(now);
                    revoked.push(entry.to_issued_cert(now));
                }
            }
        }
        if revoked.is_empty() {
            return Err(CertError::AlreadyRevoked {
                query: id_or_serial.to_owned(),
            });
        }
        let crl = self.sign_crl(&mut index)?;
        // The index first: if writing the CRL then fails, `fleetmq certs
        // crl` rebuilds it from the index.
        index.save(&index_path)?;
        files::write_file(&self.crl_path(), crl.as_bytes(), Secrecy::Public)?;
        Ok(Revoked {
            certs: revoked,
            crl_path: self.crl_path(),
        })
    }

    /// Re-signs `crl.pem` from the index with a fresh next-update date.
    /// A CRL is current for [`CRL_VALIDITY_DAYS`]; run this (`fleetmq certs
    /// crl`) before then, e.g. from a timer.
    pub fn refresh_crl(&self) -> Result<PathBuf, CertError> {
        let index_path = self.layout.index();
        let mut index = Index::load(&index_path)?;
        let crl = self.sign_crl(&mut index)?;
        index.save(&index_path)?;
        files::write_file(&self.crl_path(), crl.as_bytes(), Secrecy::Public)?;
        Ok(self.crl_path())
    }

    /// When the current `crl.pem` stops being current, as the index
    /// records it (`None` for a folder made without this tool).
    pub fn crl_next_update(&self) -> Result<Option<OffsetDateTime>, CertError> {
        Ok(Index::load(&self.layout.index())?.crl_next_update)
    }

    /// Every certificate issued, oldest first, with days until expiry.
    pub fn list(&self) -> Result<Vec<IssuedCert>, CertError> {
        let now = profile::now();
        Ok(Index::load(&self.layout.index())?
            .certs
            .iter()
            .map(|entry| entry.to_issued_cert(now))
            .collect())
    }

    /// Generates a key, signs the certificate, writes the files and
    /// records it in the index. Nothing is written if a file exists (and
    /// overwriting is off) or the index cannot be read.
    fn issue(&self, leaf: Leaf<'_>) -> Result<Issued, CertError> {
        let mut destinations = vec![leaf.cert_path.as_path(), leaf.key_path.as_path()];
        destinations.extend(leaf.ca_copy_path.as_deref());
        files::refuse_existing(destinations, self.overwrite)?;
        let index_path = self.layout.index();
        let mut index = Index::load(&index_path)?;

        let key_pair = profile::generate_key(leaf.key)?;
        let cert = leaf
            .params
            .signed_by(&key_pair, &self.issuer)
            .map_err(CertError::crypto("certificate"))?;
        let facts = inspect::facts_from_der(cert.der(), &leaf.cert_path)?;
        files::write_file(
            &leaf.key_path,
            key_pair.serialize_pem().as_bytes(),
            Secrecy::Private,
        )?;
        files::write_file(&leaf.cert_path, cert.pem().as_bytes(), Secrecy::Public)?;
        if let Some(ca_copy) = &leaf.ca_copy_path {
            files::write_file(ca_copy, self.ca_cert_pem.as_bytes(), Secrecy::Public)?;
        }

        let still_valid_earlier = index.unrevoked_serials(leaf.kind, leaf.id);
        index.certs.push(Entry {
            kind: leaf.kind,
            id: leaf.id.to_owned(),
            group: leaf.group.map(str::to_owned),
            key: leaf.key,
            serial: facts.serial.clone(),
            fingerprint_sha256: facts.fingerprint.clone(),
            issued_at: profile::now(),
            not_after: facts.not_after,
            revoked_at: None,
            cert: self.layout.relative(&leaf.cert_path),
            issued_by: None,
            replaces: None,
        });
        index.save(&index_path)?;
        Ok(Issued {
            kind: leaf.kind,
            id: leaf.id.to_owned(),
            cert_path: leaf.cert_path,
            key_path: leaf.key_path,
            ca_copy_path: leaf.ca_copy_path,
            serial: facts.serial,
            fingerprint: facts.fingerprint,
            not_after: facts.not_after,
            still_valid_earlier,
        })
    }

    /// A CRL (PEM) listing every revoked serial in `index`, with the next
    /// CRL number; records number and next update in `index`.
    fn sign_crl(&self, index: &mut Index) -> Result<String, CertError> {
        let mut revoked_certs = Vec::new();
        for entry in &index.certs {
            let Some(revoked_at) = entry.revoked_at else {
                continue;
            };
            let serial =
                inspect::serial_bytes(&entry.serial).ok_or_else(|| CertError::BadIndex {
                    path: self.layout.index(),
                    reason: format!("serial {:?} of {:?} is not hex", entry.serial, entry.id),
                })?;
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: revoked_at,
                reason_code: None,
                invalidity_date: None,
            });
        }
        // Revoked by another cluster node (decision 0188).
        for elsewhere in &index.revoked_elsewhere {
            let Some(serial) = inspect::serial_bytes(&elsewhere.serial) else {
                continue;
            };
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: elsewhere.revoked_at,
                reason_code: None,
                invalidity_date: None,
            });
        }
        index.crl_number += 1;
        let number = index.crl_number.to_be_bytes();
        let first = number
            .iter()
            .position(|&byte| byte != 0)
            .unwrap_or(number.len() - 1);
        let this_update = profile::now();
        let next_update = this_update + Duration::days(i64::from(CRL_VALIDITY_DAYS));
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from_slice(number.get(first..).unwrap_or(&number)),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: match &self.ca_key_id {
                Some(key_id) => KeyIdMethod::PreSpecified(key_id.clone()),
                None => KeyIdMethod::Sha256,
            },
        };
        let crl = params
            .signed_by(&self.issuer)
            .and_then(|crl| crl.pem())
            .map_err(CertError::crypto("CRL"))?;
        index.crl_next_update = Some(next_update);
        Ok(crl)
    }
}
