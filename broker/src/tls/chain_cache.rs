//! A client-certificate verifier that remembers which chains it has
//! verified, so a fleet reconnecting with the same few thousand
//! certificates does not pay a chain verification (one ECDSA verify, about
//! 40 µs of the 164 µs of broker CPU a mutual-TLS handshake costs, see
//! `bench/results/PROFILING.md`) on every connect.
//!
//! It owns, per listener configuration, a bounded table from the SHA-256 of
//! a presented chain to the instant that chain stops being valid. It must
//! not skip anything but the chain check: the device's CertificateVerify
//! signature (`verify_tls12_signature` / `verify_tls13_signature`), which
//! proves it holds the private key, is delegated on every handshake.
//!
//! Why a cached answer is sound: whether a chain verifies depends only on
//! the chain, the trust anchors, the CRLs and the time.
//! - The chain is the key (length-prefixed DER of the end entity and every
//!   intermediate, so two different chains cannot concatenate alike).
//! - Anchors and CRLs change only when the listener's files are reloaded,
//!   and a reload builds a new verifier with an empty cache
//!   (`TlsListener::reload`), so a certificate revoked by a new CRL is
//!   refused from the first handshake after SIGHUP.
//! - Time: an entry expires at the earliest `not_after` of the chain; its
//!   `not_before` had passed already when it was first verified. The CRLs'
//!   `nextUpdate` is not enforced by the verifier we wrap (built without
//!   `enforce_revocation_expiration`), so it plays no part in the answer
//!   either.
//! - Failures are never cached: a refused chain is checked again in full.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sha2::{Digest, Sha256};

/// How many verified chains a listener remembers. A lab fleet is a few
/// thousand devices; 65,536 entries of 40 bytes stay under 4 MiB with the
/// map's overhead, whatever a flood of distinct valid certificates does.
pub const MAX_CACHED_CHAINS: usize = 65_536;

/// Cache hits and misses of one listener, kept across reloads (each reload
/// gets a new, empty cache but the same counters) and read by `/metrics`.
#[derive(Debug, Default)]
pub struct ChainCacheCounters {
    /// Chains accepted from the cache, without verification.
    pub hits: AtomicU64,
    /// Chains handed to the inner verifier (whether it accepted them or not).
    pub misses: AtomicU64,
}

impl ChainCacheCounters {
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

/// SHA-256 over a presented chain.
type ChainKey = [u8; 32];

/// Wraps a verifier (webpki's) and caches its successful chain checks.
pub struct CachingClientVerifier {
    /// The verifier that decides; consulted on every miss and for every
    /// handshake signature.
    inner: Arc<dyn ClientCertVerifier>,
    /// Verified chains and when each stops being valid (its earliest
    /// `not_after`). A plain mutex: the critical sections are a hash lookup
    /// or insert, never IO, and verification is synchronous anyway.
    verified: Mutex<HashMap<ChainKey, UnixTime>>,
    /// Upper bound on `verified`.
    capacity: usize,
    counters: Arc<ChainCacheCounters>,
}

impl CachingClientVerifier {
    pub fn new(
        inner: Arc<dyn ClientCertVerifier>,
        capacity: usize,
        counters: Arc<ChainCacheCounters>,
    ) -> CachingClientVerifier {
        CachingClientVerifier {
            inner,
            verified: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            counters,
        }
    }

    /// Entries held now (expired ones included until evicted).
    pub fn entries(&self) -> usize {
        self.verified.lock().len()
    }

    fn cached(&self, key: &ChainKey, now: UnixTime) -> bool {
        let mut verified = self.verified.lock();
        match verified.get(key) {
            Some(expiry) if expiry.as_secs() > now.as_secs() => true,
            Some(_) => {
                verified.remove(key);
                false
            }
            None => false,
        }
    }

    /// Remembers a verified chain. When the table is full, expired entries
    /// go first; if that frees nothing, about half of the entries go, in the
    /// map's (randomly seeded) iteration order. Evicting too much only costs
    /// a full verification later, never a wrong answer.
    fn remember(&self, key: ChainKey, expiry: UnixTime, now: UnixTime) {
        let mut verified = self.verified.lock();
        if verified.len() >= self.capacity && !verified.contains_key(&key) {
            verified.retain(|_, expiry| expiry.as_secs() > now.as_secs());
            if verified.len() >= self.capacity {
                let keep = self.capacity / 2;
                let mut seen = 0;
                verified.retain(|_, _| {
                    seen += 1;
                    seen <= keep
                });
            }
        }
        verified.insert(key, expiry);
    }
}

impl fmt::Debug for CachingClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingClientVerifier")
            .field("inner", &self.inner)
            .field("entries", &self.entries())
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// The cache key: every certificate length-prefixed, end entity first.
fn chain_key(end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> ChainKey {
    let mut hasher = Sha256::new();
    for cert in std::iter::once(end_entity).chain(intermediates) {
        hasher.update((cert.len() as u64).to_be_bytes());
        hasher.update(cert.as_ref());
    }
    hasher.finalize().into()
}

/// The earliest `not_after` of the chain; None when a certificate does not
/// parse or expires before 1970 (then the chain is not cached).
fn earliest_not_after(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Option<UnixTime> {
    let mut earliest: Option<u64> = None;
    for cert in std::iter::once(end_entity).chain(intermediates) {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
        let not_after = u64::try_from(parsed.validity().not_after.timestamp()).ok()?;
        earliest = Some(earliest.map_or(not_after, |e| e.min(not_after)));
    }
    earliest.map(|secs| UnixTime::since_unix_epoch(Duration::from_secs(secs)))
}

impl ClientCertVerifier for CachingClientVerifier {
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
        let key = chain_key(end_entity, intermediates);
        if self.cached(&key, now) {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(ClientCertVerified::assertion());
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        match earliest_not_after(end_entity, intermediates) {
            Some(expiry) => self.remember(key, expiry, now),
            None => tracing::debug!(
                "Verified client certificate chain not cached: a certificate's validity does not parse."
            ),
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

#[cfg(test)]
#[path = "chain_cache_tests.rs"]
mod tests;
