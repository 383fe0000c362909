//! Which certificates a listener's CRLs revoke, by issuer and serial, so
//! that connections made before a CRL reload can be checked against it
//! (decision 0089).
//!
//! rustls checks a CRL only during a handshake; a device connected before
//! `fleetmq certs revoke` would otherwise keep its connection until it
//! drops. A connection keeps only its certificate's issuer and serial
//! ([`CertificateSerial`]), not the chain, so a held connection stays
//! small (decision 0065). The CRL files are the ones the listener was
//! (re)built from, whose signatures rustls checks on every new handshake;
//! this module trusts their content as configured and decides nothing
//! else.

use std::collections::HashSet;
use std::path::PathBuf;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateRevocationListDer;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::identity::PeerCertificate;
use super::server_config::TlsError;

/// What a CRL names a certificate by: its issuer and serial.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertificateSerial {
    /// Issuer DN, as [`PeerCertificate::issuer`].
    pub issuer: Box<str>,
    /// Serial number, upper-case hex without separators.
    pub serial: Box<str>,
}

impl CertificateSerial {
    /// The issuer and serial of a verified client certificate.
    pub fn of(cert: &PeerCertificate) -> CertificateSerial {
        CertificateSerial {
            issuer: cert.issuer.as_str().into(),
            serial: cert.serial.as_str().into(),
        }
    }
}

/// Every certificate some CRLs revoke.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RevokedSerials {
    revoked: HashSet<CertificateSerial>,
}

impl RevokedSerials {
    /// Reads the revoked serials of every CRL in `paths` (PEM).
    pub fn read(paths: &[PathBuf]) -> Result<RevokedSerials, TlsError> {
        let mut revoked = RevokedSerials::default();
        for path in paths {
            let pem = std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.clone(),
                source,
            })?;
            for der in CertificateRevocationListDer::pem_slice_iter(&pem) {
                let der = der.map_err(|e| TlsError::BadPem {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
                revoked.add_der(&der).map_err(|detail| TlsError::BadPem {
                    path: path.clone(),
                    detail,
                })?;
            }
        }
        Ok(revoked)
    }

    /// Adds the entries of one DER CRL.
    fn add_der(&mut self, der: &[u8]) -> Result<(), String> {
        let (_, crl) = CertificateRevocationList::from_der(der)
            .map_err(|e| format!("CRL does not parse: {e}"))?;
        let issuer: Box<str> = crl.issuer().to_string().into();
        for entry in crl.iter_revoked_certificates() {
            self.revoked.insert(CertificateSerial {
                issuer: issuer.clone(),
                serial: entry
                    .raw_serial_as_string()
                    .replace(':', "")
                    .to_uppercase()
                    .into(),
            });
        }
        Ok(())
    }

    /// A set of exactly these certificates.
    pub fn from_entries(entries: impl IntoIterator<Item = CertificateSerial>) -> RevokedSerials {
        RevokedSerials {
            revoked: entries.into_iter().collect(),
        }
    }

    /// Adds every entry of `other`.
    pub fn extend(&mut self, other: RevokedSerials) {
        self.revoked.extend(other.revoked);
    }

    /// Whether `certificate` is revoked.
    pub fn contains(&self, certificate: &CertificateSerial) -> bool {
        self.revoked.contains(certificate)
    }

    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }

    pub fn len(&self) -> usize {
        self.revoked.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
        DistinguishedName, DnType, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams,
        SerialNumber,
    };

    #[test]
    fn a_crl_revokes_its_serials_for_its_issuer_only() {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "lab CA");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let now = rcgen::date_time_ymd(2026, 1, 1);
        let crl = CertificateRevocationListParams {
            this_update: now,
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from_slice(&[0x0a, 0xbc]),
                revocation_time: now,
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&ca)
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crl.pem");
        std::fs::write(&path, crl.pem().unwrap()).unwrap();
        let revoked = RevokedSerials::read(&[path]).unwrap();
        assert_eq!(revoked.len(), 1);
        let serial = |issuer: &str, serial: &str| CertificateSerial {
            issuer: issuer.into(),
            serial: serial.into(),
        };
        assert!(revoked.contains(&serial("CN=lab CA", "0ABC")));
        assert!(!revoked.contains(&serial("CN=other CA", "0ABC")));
        assert!(!revoked.contains(&serial("CN=lab CA", "0ABD")));
    }
}
