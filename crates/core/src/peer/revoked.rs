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
//! else. Reading the CRL files (PEM, DER) is fleetmq's `tls::crl`; this is
//! the set they produce, which the engine checks connections against.

use std::collections::HashSet;
use std::sync::Arc;

use super::certificate::PeerCertificate;

/// What a CRL names a certificate by: its issuer and serial.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertificateSerial {
    /// Issuer DN, as [`PeerCertificate::issuer`] (the same string, for a
    /// connection's certificate).
    pub issuer: Arc<str>,
    /// Serial number, upper-case hex without separators.
    pub serial: Arc<str>,
}

impl CertificateSerial {
    /// The issuer and serial of a verified client certificate.
    pub fn of(cert: &PeerCertificate) -> CertificateSerial {
        CertificateSerial {
            issuer: Arc::clone(&cert.issuer),
            serial: Arc::clone(&cert.serial),
        }
    }
}

/// Every certificate some CRLs revoke.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RevokedSerials {
    revoked: HashSet<CertificateSerial>,
}

impl RevokedSerials {
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
