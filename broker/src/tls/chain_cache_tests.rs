#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::AtomicBool;

use rcgen::{date_time_ymd, CertificateParams, KeyPair};

use super::*;

/// An inner verifier that accepts or refuses as told and counts its calls.
#[derive(Debug, Default)]
struct Counting {
    calls: AtomicU64,
    refuse: AtomicBool,
}

impl ClientCertVerifier for Counting {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.refuse.load(Ordering::Relaxed) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked,
            ))
        } else {
            Ok(ClientCertVerified::assertion())
        }
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("signature checked".into()))
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("signature checked".into()))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ECDSA_NISTP256_SHA256]
    }
}

fn setup(
    capacity: usize,
) -> (
    Arc<Counting>,
    CachingClientVerifier,
    Arc<ChainCacheCounters>,
) {
    let inner = Arc::new(Counting::default());
    let counters = Arc::new(ChainCacheCounters::default());
    let cache = CachingClientVerifier::new(
        Arc::clone(&inner) as Arc<dyn ClientCertVerifier>,
        capacity,
        Arc::clone(&counters),
    );
    (inner, cache, counters)
}

/// A self-signed certificate valid until the start of `expiry_year`.
fn cert(name: &str, expiry_year: i32) -> CertificateDer<'static> {
    let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(expiry_year, 1, 1);
    let key = KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().clone()
}

fn year(year: i32) -> UnixTime {
    let secs = date_time_ymd(year, 1, 1).unix_timestamp();
    UnixTime::since_unix_epoch(Duration::from_secs(secs as u64))
}

fn calls(inner: &Counting) -> u64 {
    inner.calls.load(Ordering::Relaxed)
}

#[test]
fn a_verified_chain_is_not_verified_again() {
    let (inner, cache, counters) = setup(8);
    let device = cert("dev-a", 2099);
    cache.verify_client_cert(&device, &[], year(2025)).unwrap();
    cache.verify_client_cert(&device, &[], year(2025)).unwrap();
    assert_eq!(calls(&inner), 1);
    assert_eq!((counters.hits(), counters.misses()), (1, 1));
}

#[test]
fn a_refused_chain_is_checked_every_time() {
    let (inner, cache, counters) = setup(8);
    inner.refuse.store(true, Ordering::Relaxed);
    let device = cert("dev-a", 2099);
    assert!(cache.verify_client_cert(&device, &[], year(2025)).is_err());
    assert!(cache.verify_client_cert(&device, &[], year(2025)).is_err());
    assert_eq!(calls(&inner), 2);
    assert_eq!((counters.hits(), counters.misses()), (0, 2));
    assert_eq!(cache.entries(), 0);
}

#[test]
fn an_entry_expires_at_the_earliest_not_after_of_the_chain() {
    let (inner, cache, _) = setup(8);
    let device = cert("dev-a", 2099);
    let intermediate = cert("intermediate", 2040);
    let chain = [intermediate];
    cache
        .verify_client_cert(&device, &chain, year(2025))
        .unwrap();
    cache
        .verify_client_cert(&device, &chain, year(2039))
        .unwrap();
    assert_eq!(calls(&inner), 1, "hit before the intermediate expires");
    // The intermediate's not_after has passed: the inner verifier decides.
    inner.refuse.store(true, Ordering::Relaxed);
    assert!(cache
        .verify_client_cert(&device, &chain, year(2041))
        .is_err());
    assert_eq!(calls(&inner), 2);
}

#[test]
fn the_key_covers_the_intermediates_and_their_boundaries() {
    let (inner, cache, _) = setup(8);
    let device = cert("dev-a", 2099);
    let other = cert("other", 2099);
    cache.verify_client_cert(&device, &[], year(2025)).unwrap();
    cache
        .verify_client_cert(&device, std::slice::from_ref(&other), year(2025))
        .unwrap();
    assert_eq!(calls(&inner), 2);
    // The same bytes split differently between certificates differ too.
    let joined: Vec<u8> = [device.as_ref(), other.as_ref()].concat();
    assert_ne!(
        chain_key(&device, std::slice::from_ref(&other)),
        chain_key(&CertificateDer::from(joined), &[])
    );
}

#[test]
fn an_unparsable_certificate_is_not_cached() {
    let (inner, cache, _) = setup(8);
    let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
    cache.verify_client_cert(&garbage, &[], year(2025)).unwrap();
    cache.verify_client_cert(&garbage, &[], year(2025)).unwrap();
    assert_eq!(calls(&inner), 2);
    assert_eq!(cache.entries(), 0);
}

#[test]
fn the_table_never_exceeds_its_capacity() {
    let (_, cache, _) = setup(4);
    let devices: Vec<_> = (0..10).map(|i| cert(&format!("dev-{i}"), 2099)).collect();
    for device in &devices {
        cache.verify_client_cert(device, &[], year(2025)).unwrap();
        assert!(cache.entries() <= 4, "{} entries", cache.entries());
    }
    // The newest entry always survives the eviction its insert caused.
    let before = cache.counters.misses();
    cache
        .verify_client_cert(&devices[9], &[], year(2025))
        .unwrap();
    assert_eq!(cache.counters.misses(), before);
}

#[test]
fn eviction_drops_expired_entries_first() {
    let (inner, cache, _) = setup(2);
    let short = cert("short", 2030);
    let long = cert("long", 2099);
    cache.verify_client_cert(&short, &[], year(2025)).unwrap();
    cache.verify_client_cert(&long, &[], year(2025)).unwrap();
    // In 2035 `short` has expired: inserting a third keeps `long`.
    let third = cert("third", 2099);
    cache.verify_client_cert(&third, &[], year(2035)).unwrap();
    assert_eq!(cache.entries(), 2);
    let before = calls(&inner);
    cache.verify_client_cert(&long, &[], year(2035)).unwrap();
    assert_eq!(calls(&inner), before, "long was kept");
}
