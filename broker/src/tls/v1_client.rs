//! X.509 version 1 client certificates (decision 0090).
//!
//! `openssl x509 -req -in dev.csr -CA ca.crt -CAkey ca.key` without an
//! extension file makes a v1 certificate; Mosquitto (OpenSSL) accepts it,
//! webpki refuses every one (`UnsupportedCertVersion`). A listener with
//! `tls.accept_v1_client_certificates` (on for listeners read from a
//! mosquitto.conf) accepts a v1 leaf **issued directly by a configured
//! CA**, checked as webpki checks a v3 one: the CA's signature with the
//! same algorithm set (so SHA-1 and RSA under 2048 bits are refused alike),
//! the validity period, the CRLs of that CA (whose own signature must
//! verify), and, on every handshake, the CertificateVerify signature
//! against the leaf's key. Intermediates stay v3-only: a v1 certificate
//! cannot say it is a CA, so presented intermediates are ignored here.
//!
//! It owns the [`V1ClientVerifier`] wrapping rustls's webpki verifier: the
//! webpki verifier decides every v3 chain; this module is consulted only
//! when it refused one, to accept a v1 leaf (when allowed) and to put any
//! refusal in the lab's words ([`CertificateRefused`]). It must not accept
//! anything webpki refused but a v1 leaf passing every check above.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, SignatureVerificationAlgorithm,
    SubjectPublicKeyInfoDer, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate, X509Version};
use x509_parser::public_key::PublicKey;
use x509_parser::revocation_list::CertificateRevocationList;

use super::refusal::{CertificateProblem, CertificateRefused};

/// RSA keys shorter than this are refused, as aws-lc-rs's webpki
/// algorithms refuse them for v3 certificates.
const MIN_RSA_BITS: usize = 2048;

/// A configured client CA, as the v1 path needs it.
#[derive(Debug, Clone)]
struct Anchor {
    /// The CA's subject, DER (compared byte for byte with an issuer, as
    /// webpki does).
    subject: Vec<u8>,
    /// The CA's SubjectPublicKeyInfo, DER.
    spki: Vec<u8>,
}

/// The client CAs and CRLs of a listener, for v1 leaves.
#[derive(Debug, Clone, Default)]
pub struct V1Trust {
    anchors: Vec<Anchor>,
    crls: Vec<Vec<u8>>,
}

impl V1Trust {
    /// From the listener's client CA certificates and CRLs (DER). CA
    /// certificates that do not parse are left out (rustls's root store
    /// refuses them when the listener is built anyway).
    pub fn new(cas: &[CertificateDer<'_>], crls: &[CertificateRevocationListDer<'_>]) -> V1Trust {
        let anchors = cas
            .iter()
            .filter_map(|der| {
                let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
                Some(Anchor {
                    subject: cert.subject().as_raw().to_vec(),
                    spki: cert.public_key().raw.to_vec(),
                })
            })
            .collect();
        V1Trust {
            anchors,
            crls: crls.iter().map(|crl| crl.as_ref().to_vec()).collect(),
        }
    }

    /// When (seconds since the epoch) a CRL of `issuer` revoked `serial`.
    fn revoked_since(
        &self,
        issuer: &[u8],
        serial: &[u8],
        issuer_spki: Option<&[u8]>,
        algs: &WebPkiSupportedAlgorithms,
    ) -> Result<Option<i64>, String> {
        for der in &self.crls {
            let Ok((_, crl)) = CertificateRevocationList::from_der(der) else {
                continue;
            };
            if crl.issuer().as_raw() != issuer {
                continue;
            }
            if let Some(spki) = issuer_spki {
                let signed = split_signed(der).ok_or("a CRL of its CA does not parse")?;
                verify_signed(&signed, spki, algs)
                    .map_err(|_| "the signature of its CA's CRL does not verify".to_string())?;
            }
            let since = crl
                .iter_revoked_certificates()
                .find(|entry| entry.raw_serial() == serial)
                .map(|entry| entry.revocation_date.timestamp());
            if since.is_some() {
                return Ok(since);
            }
        }
        Ok(None)
    }
}

/// Checks a v1 client certificate `der` at `now_secs`: issued directly by
/// an anchor of `trust`, signed with an algorithm of `algs`, within its
/// validity period, not on its CA's CRL, RSA keys of 2048 bits or more.
pub fn verify_v1_leaf(
    der: &[u8],
    trust: &V1Trust,
    now_secs: i64,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<(), CertificateRefused> {
    let cert = match X509Certificate::from_der(der) {
        Ok(([], cert)) => cert,
        _ => {
            return Err(CertificateRefused {
                subject: "(unreadable)".into(),
                serial: String::new(),
                problem: CertificateProblem::Other("the certificate does not parse".into()),
            })
        }
    };
    let refuse = |problem| refusal(&cert, problem);
    if cert.version() != X509Version::V1 {
        return Err(refuse(CertificateProblem::Other(
            "not a version 1 certificate".into(),
        )));
    }
    // A v1 certificate has no extensions; one that carries some (critical
    // ones perhaps) is not what the CA meant, and nothing here reads them.
    if !cert.extensions().is_empty() {
        return Err(refuse(CertificateProblem::Other(
            "a version 1 certificate with extensions".into(),
        )));
    }
    if let Some(bits) = weak_rsa_bits(&cert) {
        return Err(refuse(CertificateProblem::KeyTooWeak { bits }));
    }
    let signed = split_signed(der).ok_or_else(|| {
        refuse(CertificateProblem::Other(
            "the certificate does not parse".into(),
        ))
    })?;
    if cert.tbs_certificate.signature != cert.signature_algorithm {
        return Err(refuse(CertificateProblem::Other(
            "its two signature algorithm fields differ".into(),
        )));
    }
    if !algs
        .all
        .iter()
        .any(|alg| alg.signature_alg_id().as_ref() == signed.algorithm)
    {
        return Err(refuse(CertificateProblem::SignatureAlgorithmRefused));
    }
    let issuer = cert.issuer().as_raw();
    let anchor = trust
        .anchors
        .iter()
        .filter(|anchor| anchor.subject == issuer)
        .find(|anchor| verify_signed(&signed, &anchor.spki, algs).is_ok())
        .ok_or_else(|| {
            refuse(CertificateProblem::UnknownCa {
                issuer: cert.issuer().to_string(),
            })
        })?;
    let validity = cert.validity();
    if now_secs < validity.not_before.timestamp() {
        return Err(refuse(CertificateProblem::NotYetValid {
            not_before: validity.not_before.timestamp(),
        }));
    }
    if now_secs > validity.not_after.timestamp() {
        return Err(refuse(CertificateProblem::Expired {
            not_after: validity.not_after.timestamp(),
        }));
    }
    match trust.revoked_since(issuer, cert.raw_serial(), Some(&anchor.spki), algs) {
        Ok(None) => Ok(()),
        Ok(Some(since)) => Err(refuse(CertificateProblem::Revoked { since })),
        Err(detail) => Err(refuse(CertificateProblem::Other(detail))),
    }
}

fn refusal(cert: &X509Certificate<'_>, problem: CertificateProblem) -> CertificateRefused {
    CertificateRefused {
        subject: cert.subject().to_string(),
        serial: fleetmq_core::peer::serial_hex(cert.raw_serial()),
        problem,
    }
}

/// The size of an RSA key under [`MIN_RSA_BITS`].
fn weak_rsa_bits(cert: &X509Certificate<'_>) -> Option<usize> {
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) if rsa.key_size() < MIN_RSA_BITS => Some(rsa.key_size()),
        _ => None,
    }
}

/// A signed DER structure (certificate or CRL): `SEQUENCE { tbs,
/// AlgorithmIdentifier, BIT STRING }`.
struct Signed<'a> {
    /// The signed bytes: the whole `tbs` element.
    tbs: &'a [u8],
    /// The contents of the AlgorithmIdentifier (as webpki compares them).
    algorithm: &'a [u8],
    signature: &'a [u8],
}

/// One DER element: (tag, contents, what follows). Definite lengths of up
/// to four bytes only, as DER allows.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, after) = rest.split_at(count);
        rest = after;
        bytes
            .iter()
            .fold(0usize, |len, b| (len << 8) | usize::from(*b))
    };
    if rest.len() < len {
        return None;
    }
    let (contents, after) = rest.split_at(len);
    Some((tag, contents, after))
}

const SEQUENCE: u8 = 0x30;
const BIT_STRING: u8 = 0x03;

fn split_signed(der: &[u8]) -> Option<Signed<'_>> {
    let (SEQUENCE, outer, _) = tlv(der)? else {
        return None;
    };
    let (SEQUENCE, _, after_tbs) = tlv(outer)? else {
        return None;
    };
    let tbs = &outer[..outer.len() - after_tbs.len()];
    let (SEQUENCE, algorithm, after_alg) = tlv(after_tbs)? else {
        return None;
    };
    let (BIT_STRING, bits, rest) = tlv(after_alg)? else {
        return None;
    };
    let (0, signature) = bits.split_first()? else {
        return None;
    };
    rest.is_empty().then_some(Signed {
        tbs,
        algorithm,
        signature,
    })
}

/// A SubjectPublicKeyInfo: (AlgorithmIdentifier contents, key bits).
fn split_spki(spki: &[u8]) -> Option<(&[u8], &[u8])> {
    let (SEQUENCE, inner, _) = tlv(spki)? else {
        return None;
    };
    let (SEQUENCE, algorithm, after) = tlv(inner)? else {
        return None;
    };
    let (BIT_STRING, bits, _) = tlv(after)? else {
        return None;
    };
    let (0, key) = bits.split_first()? else {
        return None;
    };
    Some((algorithm, key))
}

/// Verifies `signature` over `message` with the key `spki`, by the first of
/// `candidates` made for that key's algorithm.
fn verify_with_spki(
    spki: &[u8],
    candidates: &[&'static dyn SignatureVerificationAlgorithm],
    message: &[u8],
    signature: &[u8],
) -> Result<(), CertificateError> {
    let (key_algorithm, key) = split_spki(spki).ok_or(CertificateError::BadEncoding)?;
    let mut any = false;
    for alg in candidates
        .iter()
        .filter(|alg| alg.public_key_alg_id().as_ref() == key_algorithm)
    {
        any = true;
        if alg.verify_signature(key, message, signature).is_ok() {
            return Ok(());
        }
    }
    Err(if any {
        CertificateError::BadSignature
    } else {
        #[allow(deprecated)]
        CertificateError::UnsupportedSignatureAlgorithm
    })
}

/// The CA signature on a certificate or CRL, with the algorithm it names.
fn verify_signed(
    signed: &Signed<'_>,
    issuer_spki: &[u8],
    algs: &WebPkiSupportedAlgorithms,
) -> Result<(), CertificateError> {
    let candidates: Vec<_> = algs
        .all
        .iter()
        .copied()
        .filter(|alg| alg.signature_alg_id().as_ref() == signed.algorithm)
        .collect();
    verify_with_spki(issuer_spki, &candidates, signed.tbs, signed.signature)
}

/// The leaf's SubjectPublicKeyInfo when it is a v1 certificate.
fn v1_spki(der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    (cert.version() == X509Version::V1).then(|| cert.public_key().raw.to_vec())
}

/// webpki's verifier, plus v1 leaves and refusals in the lab's words.
#[derive(Debug)]
pub struct V1ClientVerifier {
    /// Decides every v3 chain.
    inner: Arc<dyn ClientCertVerifier>,
    /// Whether v1 leaves are accepted (`tls.accept_v1_client_certificates`).
    accept_v1: bool,
    trust: V1Trust,
    /// The provider's algorithms, the ones webpki uses for v3.
    algs: WebPkiSupportedAlgorithms,
}

impl V1ClientVerifier {
    pub fn new(
        inner: Arc<dyn ClientCertVerifier>,
        accept_v1: bool,
        trust: V1Trust,
        algs: WebPkiSupportedAlgorithms,
    ) -> V1ClientVerifier {
        V1ClientVerifier {
            inner,
            accept_v1,
            trust,
            algs,
        }
    }

    /// webpki's refusal of a v3 certificate, with subject, serial and dates.
    fn explain(&self, error: rustls::Error, cert: &X509Certificate<'_>) -> rustls::Error {
        let rustls::Error::InvalidCertificate(reason) = &error else {
            return error;
        };
        let validity = cert.validity();
        let problem = match reason {
            CertificateError::UnknownIssuer => CertificateProblem::UnknownCa {
                issuer: cert.issuer().to_string(),
            },
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                CertificateProblem::Expired {
                    not_after: validity.not_after.timestamp(),
                }
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                CertificateProblem::NotYetValid {
                    not_before: validity.not_before.timestamp(),
                }
            }
            CertificateError::Revoked => {
                match self.trust.revoked_since(
                    cert.issuer().as_raw(),
                    cert.raw_serial(),
                    None,
                    &self.algs,
                ) {
                    Ok(Some(since)) => CertificateProblem::Revoked { since },
                    _ => return error,
                }
            }
            CertificateError::UnsupportedSignatureAlgorithmContext { .. }
            | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                CertificateProblem::SignatureAlgorithmRefused
            }
            #[allow(deprecated)]
            CertificateError::UnsupportedSignatureAlgorithm => {
                CertificateProblem::SignatureAlgorithmRefused
            }
            _ => return error,
        };
        refusal(cert, problem).into_rustls(Some(error))
    }

    /// The CertificateVerify of a v1 leaf, when v1 leaves are accepted.
    fn v1_handshake_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        tls13: bool,
    ) -> Option<Result<HandshakeSignatureValid, rustls::Error>> {
        if !self.accept_v1 {
            return None;
        }
        let spki = v1_spki(cert.as_ref())?;
        if tls13 {
            return Some(rustls::crypto::verify_tls13_signature_with_raw_key(
                message,
                &SubjectPublicKeyInfoDer::from(spki.as_slice()),
                dss,
                &self.algs,
            ));
        }
        let candidates = self
            .algs
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map_or(&[][..], |(_, algs)| *algs);
        Some(
            verify_with_spki(&spki, candidates, message, dss.signature())
                .map(|()| HandshakeSignatureValid::assertion())
                .map_err(rustls::Error::InvalidCertificate),
        )
    }
}

impl V1ClientVerifier {
    /// After webpki refused `end_entity` with `error`: a v1 leaf this
    /// listener accepts, or the refusal in the lab's words.
    fn explain_or_accept_v1(
        &self,
        end_entity: &CertificateDer<'_>,
        error: rustls::Error,
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let Ok((_, cert)) = X509Certificate::from_der(end_entity.as_ref()) else {
            return Err(error);
        };
        if cert.version() != X509Version::V1 {
            return Err(self.explain(error, &cert));
        }
        if !self.accept_v1 {
            // The error webpki gave (and the alert) stay as they were.
            return Err(
                refusal(&cert, CertificateProblem::Version1Refused).into_rustls(Some(error))
            );
        }
        let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        verify_v1_leaf(end_entity.as_ref(), &self.trust, now_secs, &self.algs)
            .map(|()| ClientCertVerified::assertion())
            .map_err(|refused| refused.into_rustls(None))
    }
}

impl ClientCertVerifier for V1ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let error = match self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            Ok(verified) => return Ok(verified),
            Err(error) => error,
        };
        let result = self.explain_or_accept_v1(end_entity, error, now);
        if result.is_err() {
            // Kept for `certs audit --seen` (decision 0094).
            super::seen::note_refused_leaf(end_entity.as_ref());
        }
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match self.inner.verify_tls12_signature(message, cert, dss) {
            Ok(valid) => Ok(valid),
            Err(error) => self
                .v1_handshake_signature(message, cert, dss, false)
                .unwrap_or(Err(error)),
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match self.inner.verify_tls13_signature(message, cert, dss) {
            Ok(valid) => Ok(valid),
            Err(error) => self
                .v1_handshake_signature(message, cert, dss, true)
                .unwrap_or(Err(error)),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

#[cfg(test)]
#[path = "v1_client_tests.rs"]
mod tests;
