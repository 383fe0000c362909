//! Reading a listener's CRL files (PEM) into the set of revoked
//! certificates ([`RevokedSerials`], defined in `fleetmq_core::peer`), so
//! that connections made before a CRL reload can be checked against it
//! (decision 0089). The set and the check live in the core; the files and
//! their PEM/DER parsing live here, next to the rest of TLS.

use std::path::PathBuf;

use fleetmq_core::peer::{CertificateSerial, RevokedSerials};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateRevocationListDer;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::server_config::TlsError;

/// Reads the revoked serials of every CRL in `paths` (PEM).
pub fn read_revoked(paths: &[PathBuf]) -> Result<RevokedSerials, TlsError> {
    let mut revoked = Vec::new();
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
            add_der(&mut revoked, &der).map_err(|detail| TlsError::BadPem {
                path: path.clone(),
                detail,
            })?;
        }
    }
    Ok(RevokedSerials::from_entries(revoked))
}

/// Adds the entries of one DER CRL.
fn add_der(revoked: &mut Vec<CertificateSerial>, der: &[u8]) -> Result<(), String> {
    let (_, crl) =
        CertificateRevocationList::from_der(der).map_err(|e| format!("CRL does not parse: {e}"))?;
    let issuer: std::sync::Arc<str> = crl.issuer().to_string().into();
    for entry in crl.iter_revoked_certificates() {
        revoked.push(CertificateSerial {
            issuer: issuer.clone(),
            serial: fleetmq_core::peer::serial_hex(entry.raw_serial()).into(),
        });
    }
    Ok(())
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
        let revoked = read_revoked(&[path]).unwrap();
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
