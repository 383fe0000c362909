//! Signing a device certificate for a public key the CA never held: what
//! the provisioning service does with a checked CSR (decision 0151). The
//! certificate has the same profile as `fleetmq certs device` (CN = id,
//! OU = group, URI SAN, clientAuth, digitalSignature), whatever the CSR
//! asked for; the CSR's checks are the caller's (`provision::csr`).
//!
//! It writes `devices/<ID>/<ID>.crt` and `devices/<ID>/ca.crt` (public
//! files, replaced on renewal) and records the certificate in the index.
//! It must not write a private key: there is none here.

use rcgen::PublicKeyData;
use time::Duration;

use super::files::{self, Secrecy};
use super::index::{Entry, Index};
use super::{inspect, profile, CertError, CertKind, IssuedCert, KeyType, Pki};

/// What the provisioning service asks the CA for.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    /// The device id: CN, URI SAN and file name.
    pub id: String,
    /// The certificate group (OU), if any.
    pub group: Option<String>,
    /// How long the certificate is valid from now.
    pub validity: Duration,
    /// Recorded in the index: `claim`, `token`, `approval`, `renewal`.
    pub issued_by: &'static str,
    /// The serial a renewal replaces.
    pub replaces: Option<String>,
}

/// A certificate signed for a device's own key.
#[derive(Debug, Clone)]
pub struct IssuedForKey {
    /// The certificate then the CA certificate, PEM: the chain the device
    /// presents is its first part, the trust anchor its second.
    pub chain_pem: String,
    /// Serial, lowercase hex as the index records it.
    pub serial: String,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub fingerprint: String,
    /// End of validity.
    pub not_after: time::OffsetDateTime,
}

impl Pki {
    /// Signs a device certificate for `public_key` (ECDSA P-256) as
    /// `request` says, writes it next to the device's other files and
    /// records it. The index is written before the answer leaves: a
    /// certificate nobody recorded cannot be revoked.
    pub fn issue_for_key(
        &self,
        request: &KeyRequest,
        public_key: &impl PublicKeyData,
    ) -> Result<IssuedForKey, CertError> {
        profile::check_name("device", &request.id)?;
        let mut params =
            profile::device_params(&request.id, request.group.as_deref(), KeyType::EcdsaP256, 1)?;
        params.not_after = params.not_before + Duration::hours(1) + request.validity;
        // rcgen derives the serial from the public key, and a renewal may
        // keep its key: without a random serial the renewed certificate
        // would share the replaced one's serial, and revoking the old
        // would revoke the new.
        params.serial_number = Some(random_serial()?);
        let cert = params
            .signed_by(public_key, self.issuer())
            .map_err(CertError::crypto("certificate"))?;
        let layout = self.layout();
        let cert_path = layout.device_cert(&request.id);
        let facts = inspect::facts_from_der(cert.der(), &cert_path)?;
        let index_path = layout.index();
        let mut index = Index::load(&index_path)?;
        files::write_file(&cert_path, cert.pem().as_bytes(), Secrecy::Public)?;
        files::write_file(
            &layout.device_ca(&request.id),
            self.ca_cert_pem().as_bytes(),
            Secrecy::Public,
        )?;
        index.certs.push(Entry {
            kind: CertKind::Device,
            id: request.id.clone(),
            group: request.group.clone(),
            key: KeyType::EcdsaP256,
            serial: facts.serial.clone(),
            fingerprint_sha256: facts.fingerprint.clone(),
            issued_at: profile::now(),
            not_after: facts.not_after,
            revoked_at: None,
            cert: layout.relative(&cert_path),
            issued_by: Some(request.issued_by.to_owned()),
            replaces: request.replaces.clone(),
        });
        index.save(&index_path)?;
        Ok(IssuedForKey {
            chain_pem: format!("{}{}", cert.pem(), self.ca_cert_pem()),
            serial: facts.serial,
            fingerprint: facts.fingerprint,
            not_after: facts.not_after,
        })
    }

    /// The certificate with this SHA-256 fingerprint (lowercase hex).
    pub fn find_by_fingerprint(&self, fingerprint: &str) -> Result<Option<IssuedCert>, CertError> {
        Ok(self
            .list()?
            .into_iter()
            .find(|cert| cert.fingerprint.eq_ignore_ascii_case(fingerprint)))
    }

    /// Every device certificate of `id`, oldest first.
    pub fn device_history(&self, id: &str) -> Result<Vec<IssuedCert>, CertError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|cert| cert.kind == CertKind::Device && cert.id == id)
            .collect())
    }

    /// The public key (raw EC point) of a certificate this CA recorded,
    /// read from its file: to recognise a device asking again with the
    /// key it already has a certificate for.
    pub fn public_key_of(&self, cert: &IssuedCert) -> Result<Vec<u8>, CertError> {
        let path = self.dir().join(&cert.cert_path);
        let pem = files::read_text(&path)?;
        let der = inspect::der_from_pem(&pem, &path)?;
        Ok(inspect::facts_from_der(&der, &path)?.public_key)
    }

    /// The chain (certificate then CA, PEM) of a certificate this CA
    /// recorded, as [`Pki::issue_for_key`] returned it.
    pub fn chain_of(&self, cert: &IssuedCert) -> Result<String, CertError> {
        let path = self.dir().join(&cert.cert_path);
        Ok(format!(
            "{}{}",
            files::read_text(&path)?,
            self.ca_cert_pem()
        ))
    }
}

/// Checks that `id` is usable as a device id (and so as a file name), for
/// callers outside `certs` (the provisioning service, approvals).
pub fn device_name_check(id: &str) -> Result<(), String> {
    profile::check_name("device", id).map_err(|error| error.to_string())
}

/// 16 random bytes, top bit clear (a positive DER integer).
fn random_serial() -> Result<rcgen::SerialNumber, CertError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| CertError::Crypto {
        what: "serial number",
        source: rcgen::Error::RingUnspecified,
    })?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(rcgen::SerialNumber::from_slice(&bytes))
}
