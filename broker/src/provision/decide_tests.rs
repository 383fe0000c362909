//! `Decider::decide` on a real lab CA in a temporary folder: the policy
//! paths and refusals without sockets (the e2e tests run the same over
//! TLS and MQTT).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::Arc;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use super::decide::Decider;
use super::message::{Answer, Refusal};
use crate::certs::{CaOptions, Pki};
use fleetmq_core::auth::Identity;
use fleetmq_core::config::{Config, ProvisionPolicy, RevokeReplaced};

struct Fixture {
    _temp: tempfile::TempDir,
    decider: Decider,
}

fn fixture(edit: impl FnOnce(&mut Config)) -> Fixture {
    let temp = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: temp.path().join("data"),
        ..Config::default()
    };
    config.provision.enabled = true;
    config.provision.policy = ProvisionPolicy::Pattern;
    config.provision.id_pattern = "esp32_*".into();
    edit(&mut config);
    Pki::init(&config.data_dir.join("pki"), &CaOptions::default()).unwrap();
    let listeners: HashSet<Arc<str>> = [Arc::from("tls")].into_iter().collect();
    Fixture {
        decider: Decider::open(&config, listeners).unwrap(),
        _temp: temp,
    }
}

fn identity(client_id: &str, claim: bool, fingerprint: &str) -> Identity {
    Identity {
        client_id: Arc::from(client_id),
        username: None,
        cert_identity: Some(if claim {
            "claim-b".into()
        } else {
            client_id.into()
        }),
        groups: if claim {
            vec!["fleetmq-claim".into()]
        } else {
            Vec::new()
        },
        listener: Arc::from("tls"),
        fingerprint: Some(fingerprint.into()),
        password_verified: false,
        username_from_certificate: false,
        bridge: false,
    }
}

fn csr(id: &str, key: &KeyPair) -> String {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, id);
    params.distinguished_name = name;
    params.serialize_request(key).unwrap().pem().unwrap()
}

fn request(id: &str, key: &KeyPair, token: Option<&str>) -> Vec<u8> {
    serde_json::json!({"device_id": id, "csr": csr(id, key), "token": token})
        .to_string()
        .into_bytes()
}

fn key() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

fn refused(answer: &Answer) -> Refusal {
    match answer {
        Answer::Refused { reason, .. } => *reason,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn claim_then_renewal_then_revocation() {
    let fixture = fixture(|config| {
        config.provision.validity_secs = 3600;
        config.provision.renew_before_secs = 3599;
        config.provision.revoke_replaced = RevokeReplaced::AtIssue;
    });
    let decider = &fixture.decider;
    let device_key = key();
    let claim = identity("esp32_1", true, "00");
    let (answer, _) = decider.decide(&claim, &request("esp32_1", &device_key, None));
    let Answer::Issued { serial, .. } = answer else {
        panic!("{answer:?}")
    };
    let issued = decider.pki.device_history("esp32_1").unwrap();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].issued_by.as_deref(), Some("claim"));

    // Renewal with the device's own certificate; the old one is revoked at issue.
    let own = identity("esp32_1", false, &issued[0].fingerprint);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (answer, effects) = decider.decide(&own, &request("esp32_1", &key(), None));
    assert!(matches!(answer, Answer::Issued { .. }), "{answer:?}");
    assert_eq!(effects.revoked, std::slice::from_ref(&serial));
    let history = decider.pki.device_history("esp32_1").unwrap();
    assert_eq!(history[1].replaces.as_deref(), Some(serial.as_str()));
    assert_ne!(history[1].serial, serial);

    // The revoked certificate cannot renew; the claim cannot bring the id back.
    let (answer, _) = decider.decide(&own, &request("esp32_1", &key(), None));
    assert_eq!(refused(&answer), Refusal::Revoked);
    let (answer, _) = decider.decide(&claim, &request("esp32_1", &key(), None));
    assert_eq!(refused(&answer), Refusal::Revoked);
}

#[test]
fn refusals_leave_the_index_as_it_was() {
    let fixture = fixture(|_| {});
    let decider = &fixture.decider;
    let claim = identity("esp32_1", true, "00");
    let device_key = key();
    let cases: Vec<(Identity, Vec<u8>, Refusal)> = vec![
        (claim.clone(), b"{".to_vec(), Refusal::MalformedRequest),
        (
            claim.clone(),
            request("esp32_2", &device_key, None),
            Refusal::IdMismatch,
        ),
        (
            identity("rogue", true, "00"),
            request("rogue", &device_key, None),
            Refusal::IdNotAllowed,
        ),
        (
            identity("esp32_1", false, "ff"),
            request("esp32_1", &device_key, None),
            Refusal::UnknownCertificate,
        ),
        (
            Identity {
                listener: Arc::from("plain"),
                ..claim.clone()
            },
            request("esp32_1", &device_key, None),
            Refusal::NotOnThisListener,
        ),
    ];
    for (who, body, expected) in cases {
        let (answer, effects) = decider.decide(&who, &body);
        assert_eq!(refused(&answer), expected, "{answer:?}");
        assert_eq!(effects, Default::default());
    }
    assert!(decider.pki.device_history("esp32_1").unwrap().is_empty());
}

#[test]
fn approval_waits_for_the_approved_key() {
    let fixture = fixture(|config| config.provision.policy = ProvisionPolicy::Approval);
    let decider = &fixture.decider;
    let claim = identity("esp32_1", true, "00");
    let device_key = key();
    let body = request("esp32_1", &device_key, None);
    assert!(matches!(
        decider.decide(&claim, &body).0,
        Answer::Pending { .. }
    ));
    assert_eq!(decider.approvals.list().unwrap().len(), 1);
    decider.approvals.approve("esp32_1").unwrap();
    // Another key (someone else with the claim certificate) is not approved.
    let other = request("esp32_1", &key(), None);
    assert!(matches!(
        decider.decide(&claim, &other).0,
        Answer::Pending { .. }
    ));
    // The approved key is issued, and nothing waits any more.
    let (answer, _) = decider.decide(&claim, &body);
    assert!(matches!(answer, Answer::Issued { .. }), "{answer:?}");
    assert!(decider.approvals.list().unwrap().is_empty());
    let history = decider.pki.device_history("esp32_1").unwrap();
    assert_eq!(history[0].issued_by.as_deref(), Some("approval"));
    // The other key now meets an id that has a certificate.
    assert_eq!(
        refused(&decider.decide(&claim, &other).0),
        Refusal::AlreadyProvisioned
    );
}
