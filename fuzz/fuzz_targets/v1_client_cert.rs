//! The X.509 version 1 client-certificate path (`fleetmq::tls::verify_v1_leaf`,
//! decision 0090) on hostile DER: input is `[len_hi, len_lo, CA DER
//! (len bytes), leaf DER (the rest)]`, checked at a fixed time against the
//! provider's algorithms. It may refuse anything, never panic; an accepted
//! leaf is a v1 certificate whose issuer is the CA's subject, within its
//! validity period.
#![no_main]

use fleetmq::tls::{verify_v1_leaf, V1Trust};
use libfuzzer_sys::fuzz_target;
use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate, X509Version};

/// 2027-01-01T00:00:00Z (the seed is valid 2026-12-03 to 2036).
const NOW: i64 = 1_798_761_600;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
    let (ca, leaf) = rest.split_at(len);
    let trust = V1Trust::new(&[CertificateDer::from(ca)], &[]);
    let algs = rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms;
    if verify_v1_leaf(leaf, &trust, NOW, &algs).is_ok() {
        let (_, cert) = X509Certificate::from_der(leaf).expect("an accepted leaf parses");
        let (_, ca) = X509Certificate::from_der(ca).expect("its CA parses");
        assert_eq!(cert.version(), X509Version::V1);
        assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw());
        assert!(cert.validity().not_before.timestamp() <= NOW);
        assert!(NOW <= cert.validity().not_after.timestamp());
    }
});
