//! A refused client certificate in the lab's words: which certificate
//! (subject, serial), what is wrong with it, and what to do.
//!
//! The client verifier ([`super::v1_client`]) returns rustls's own
//! `CertificateError` (so the peer gets the alert it always got:
//! `certificate_revoked`, `unknown_ca`, `certificate_expired`) and leaves
//! the refusal in a thread-local slot, which the handshake's failure
//! ([`super::HandshakeFailure::Certificate`]) takes to name the certificate
//! in the log and on the dashboard. rustls runs the verifier synchronously
//! inside the poll that returns the failure, on the same thread, so the
//! slot read right after it holds this handshake's refusal; the slot is
//! emptied at the start of every handshake. It decides nothing.

use std::cell::RefCell;
use std::fmt;

thread_local! {
    /// The last refusal made on this thread (see the module doc).
    static LAST: RefCell<Option<CertificateRefused>> = const { RefCell::new(None) };
}

/// Takes the refusal the verifier left on this thread, if any.
pub fn take_last() -> Option<CertificateRefused> {
    LAST.with(|last| last.borrow_mut().take())
}

use crate::observe::clock::rfc3339_secs;

/// What is wrong with a client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateProblem {
    /// Not issued by a CA in the listener's client CA file.
    UnknownCa { issuer: String },
    /// `not_after` (seconds since the epoch) has passed.
    Expired { not_after: i64 },
    /// `not_before` (seconds since the epoch) is still to come.
    NotYetValid { not_before: i64 },
    /// On a CRL of its CA since this date (seconds since the epoch).
    Revoked { since: i64 },
    /// An X.509 version 1 certificate, and this listener accepts only v3.
    Version1Refused,
    /// An RSA key shorter than 2048 bits.
    KeyTooWeak { bits: usize },
    /// Signed with an algorithm the broker does not accept (SHA-1, MD5, ...).
    SignatureAlgorithmRefused,
    /// The CA's signature on it does not verify.
    BadSignature,
    /// Anything else (the verifier's words).
    Other(String),
}

/// A client certificate the broker refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRefused {
    /// Subject DN (`CN=dev-a, OU=ops`), or `(unreadable)`.
    pub subject: String,
    /// Serial number, upper-case hex.
    pub serial: String,
    pub problem: CertificateProblem,
}

impl CertificateProblem {
    /// The `reason` label of the failed handshake (logs, metrics).
    pub fn reason(&self) -> &'static str {
        match self {
            CertificateProblem::UnknownCa { .. } => "unknown_ca",
            CertificateProblem::Expired { .. } | CertificateProblem::NotYetValid { .. } => {
                "expired"
            }
            CertificateProblem::Revoked { .. } => "revoked",
            CertificateProblem::Version1Refused => "v1_refused",
            CertificateProblem::KeyTooWeak { .. } => "weak_key",
            CertificateProblem::SignatureAlgorithmRefused => "signature_algorithm",
            CertificateProblem::BadSignature | CertificateProblem::Other(_) => "bad_certificate",
        }
    }

    /// What is wrong, then what to do.
    fn explain(&self) -> (String, &'static str) {
        match self {
            CertificateProblem::UnknownCa { issuer } => (
                format!("issued by an unknown CA ({issuer})"),
                "add that CA to the listener's client CA file (cafile / tls.client_ca), or issue the device a certificate from a configured CA",
            ),
            CertificateProblem::Expired { not_after } => (
                format!("expired on {}", rfc3339_secs(*not_after)),
                "issue the device a new certificate",
            ),
            CertificateProblem::NotYetValid { not_before } => (
                format!("not yet valid (valid from {})", rfc3339_secs(*not_before)),
                "check the broker's clock, or the dates the certificate was made with",
            ),
            CertificateProblem::Revoked { since } => (
                format!("revoked on {}", rfc3339_secs(*since)),
                "the lab revoked it: issue the device a new certificate if it should connect",
            ),
            CertificateProblem::Version1Refused => (
                "X.509 version 1, refused by this listener".to_string(),
                "set tls.accept_v1_client_certificates = true on this listener, or re-issue the certificate as v3 (openssl x509 -req ... -extfile with extendedKeyUsage=clientAuth)",
            ),
            CertificateProblem::KeyTooWeak { bits } => (
                format!("key too weak (RSA {bits} bits, 2048 needed)"),
                "issue the device a certificate with an RSA 2048+ or EC P-256 key",
            ),
            CertificateProblem::SignatureAlgorithmRefused => (
                "signature algorithm refused (SHA-1 or another weak or unknown algorithm)".to_string(),
                "re-issue the certificate signed with SHA-256 (openssl x509 -req -sha256)",
            ),
            CertificateProblem::BadSignature => (
                "signature does not verify with the CA's key".to_string(),
                "check that the client CA file holds the CA that signed it",
            ),
            CertificateProblem::Other(detail) => (detail.clone(), "check the certificate with `fleetmq certs` or openssl x509 -text"),
        }
    }
}

impl fmt::Display for CertificateRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, todo) = self.problem.explain();
        write!(
            f,
            "client certificate \"{}\" (serial {}) {what}; {todo}",
            self.subject, self.serial
        )
    }
}

impl std::error::Error for CertificateRefused {}

impl CertificateRefused {
    /// The rustls error (and so the alert) for this refusal; the refusal
    /// itself is left for [`take_last`]. `original` is the verifier's own
    /// error, kept when there is one so the wire does not change.
    pub fn into_rustls(self, original: Option<rustls::Error>) -> rustls::Error {
        use rustls::CertificateError as E;
        let error = original.unwrap_or_else(|| {
            rustls::Error::InvalidCertificate(match &self.problem {
                CertificateProblem::UnknownCa { .. } => E::UnknownIssuer,
                CertificateProblem::Expired { .. } => E::Expired,
                CertificateProblem::NotYetValid { .. } => E::NotValidYet,
                CertificateProblem::Revoked { .. } => E::Revoked,
                CertificateProblem::BadSignature => E::BadSignature,
                CertificateProblem::Version1Refused
                | CertificateProblem::KeyTooWeak { .. }
                | CertificateProblem::SignatureAlgorithmRefused
                | CertificateProblem::Other(_) => {
                    E::Other(rustls::OtherError(std::sync::Arc::new(self.clone())))
                }
            })
        });
        LAST.with(|last| *last.borrow_mut() = Some(self));
        error
    }
}
