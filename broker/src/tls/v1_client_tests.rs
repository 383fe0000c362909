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
