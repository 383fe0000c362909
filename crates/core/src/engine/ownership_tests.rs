//! Who may attach to a session, and which connections a CRL closes, at the
//! level of the shared broker state (end to end: `broker/tests/e2e/auth_identity.rs`,
//! `broker/tests/e2e/tls_reload.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use super::Engine;
use crate::auth::identity::tests::cert;
use crate::auth::Identity;
use crate::config::{Config, ListenerConfig};
use crate::peer::{CertificateSerial, PeerCertificate, RevokedSerials};
use crate::session::{Control, SessionOwner};

fn broker() -> Engine {
    Engine::new(Arc::new(Config::default()), None, Default::default())
}

fn device(cn: &str) -> (Arc<Identity>, PeerCertificate) {
    let cert = cert(cn, &[]);
    let identity = Identity::build(
        &ListenerConfig::default_tls(),
        "tls".into(),
        &[],
        Some(&cert),
        "dev-b",
        None,
    );
    (Arc::new(identity), cert)
}

#[tokio::test]
async fn a_foreign_attach_touches_nothing_and_a_legacy_session_is_claimed_once() {
    let broker = broker();
    let (owner, _) = device("dev-b");
    let (intruder, _) = device("dev-a");
    let mut first = broker
        .attach("dev-b", false, 60, Arc::clone(&owner), None)
        .unwrap();
    let refused = broker
        .attach("dev-b", true, 60, Arc::clone(&intruder), None)
        .unwrap_err();
    assert_eq!(refused.owner, SessionOwner::Certificate("dev-b".into()));
    assert_eq!(refused.claimant, SessionOwner::Certificate("dev-a".into()));
    // The owner's connection was not asked to leave, and is still attached.
    assert!(first.session.lock().is_attached(first.generation));
    let asked = tokio::time::timeout(std::time::Duration::from_millis(50), first.control.recv());
    assert!(asked.await.is_err(), "the owner was kicked");

    // A session restored from an older record has no owner: the next
    // attach claims it, and from then on it is owned again.
    first.session.lock().forget_owner();
    let again = broker.attach("dev-b", false, 60, owner, None).unwrap();
    assert!(again.session_present);
    assert!(broker.attach("dev-b", false, 60, intruder, None).is_err());
}

#[tokio::test]
async fn a_crl_closes_only_the_connections_it_revokes() {
    let broker = broker();
    let (dev_a, cert_a) = device("dev-a");
    let (dev_b, cert_b) = device("dev-b");
    // The test certificates share serial 01; dev-b's gets another.
    let mut cert_b = cert_b;
    cert_b.serial = "02".into();
    let mut revoked_client = broker
        .attach("a", true, 0, dev_a, Some(CertificateSerial::of(&cert_a)))
        .unwrap();
    let mut kept_client = broker
        .attach("b", true, 0, dev_b, Some(CertificateSerial::of(&cert_b)))
        .unwrap();

    let revoked = RevokedSerials::from_entries([CertificateSerial::of(&cert_a)]);
    assert_eq!(broker.disconnect_revoked(&revoked), 1);
    assert_eq!(
        revoked_client.control.recv().await,
        Some(Control::Disconnect(
            fleetmq_codec::ReasonCode::NOT_AUTHORIZED
        ))
    );
    let asked = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        kept_client.control.recv(),
    );
    assert!(asked.await.is_err(), "dev-b was closed too");
    assert_eq!(
        crate::engine::Stats::get(&broker.stats.revoked_disconnects),
        1
    );
}
