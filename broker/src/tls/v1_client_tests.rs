#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn algs() -> WebPkiSupportedAlgorithms {
    rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms
}

#[test]
fn der_lengths_past_the_input_are_refused() {
    assert_eq!(tlv(&[0x30, 0x03, 1, 2]), None);
    assert_eq!(tlv(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    assert_eq!(tlv(&[0x30, 0x80]), None, "indefinite length is not DER");
    assert_eq!(
        tlv(&[0x30, 0x02, 1, 2, 9]),
        Some((0x30, &[1u8, 2][..], &[9u8][..]))
    );
}

#[test]
fn garbage_is_refused_not_panicked_on() {
    let trust = V1Trust::new(&[CertificateDer::from(vec![0x30, 0x00])], &[]);
    for input in [&[][..], &[0x30], &[0x30, 0x00], &[0x30, 0x82, 0x01]] {
        let refused = verify_v1_leaf(input, &trust, 0, &algs()).unwrap_err();
        assert_eq!(refused.problem.reason(), "bad_certificate");
    }
}

#[test]
fn a_v3_certificate_is_not_taken_for_v1() {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["dev".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der = cert.der().to_vec();
    let trust = V1Trust::new(&[cert.der().clone()], &[]);
    let refused = verify_v1_leaf(&der, &trust, 0, &algs()).unwrap_err();
    assert_eq!(
        refused.problem,
        CertificateProblem::Other("not a version 1 certificate".into())
    );
    assert!(v1_spki(&der).is_none());
}

/// The fuzz seed: `[len u16][CA DER][v1 leaf DER]`, made with
/// `openssl req -x509` and `openssl x509 -req` (no extension file), both
/// valid 2026-2036.
const SEED: &[u8] = include_bytes!("../../../fuzz/seeds/v1_client_cert/ca-and-v1-leaf-p256.bin");
/// 2027-01-01T00:00:00Z, the fuzz target's clock.
const NOW: i64 = 1_798_761_600;

fn seed() -> (Vec<u8>, Vec<u8>) {
    let len = usize::from(u16::from_be_bytes([SEED[0], SEED[1]]));
    (SEED[2..2 + len].to_vec(), SEED[2 + len..].to_vec())
}

#[test]
fn an_openssl_v1_leaf_is_checked_against_its_ca_signature_and_dates() {
    let (ca, leaf) = seed();
    let trust = V1Trust::new(&[CertificateDer::from(ca)], &[]);
    verify_v1_leaf(&leaf, &trust, NOW, &algs()).unwrap();

    let mut forged = leaf.clone();
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    let refused = verify_v1_leaf(&forged, &trust, NOW, &algs()).unwrap_err();
    assert_eq!(refused.problem.reason(), "unknown_ca", "{refused}");

    let later = NOW + 20 * 365 * 86_400;
    let refused = verify_v1_leaf(&leaf, &trust, later, &algs()).unwrap_err();
    assert!(
        matches!(refused.problem, CertificateProblem::Expired { .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("CN=seed dev"), "{refused}");

    let nobody = V1Trust::default();
    let refused = verify_v1_leaf(&leaf, &nobody, NOW, &algs()).unwrap_err();
    assert_eq!(refused.problem.reason(), "unknown_ca");
}
