//! The engine's cluster session moves (decisions 0172, 0173) at the level
//! of the shared broker state: a session adopted from another node's
//! record resumes with its subscriptions, a replayed message goes to that
//! session alone, and a released client id closes with 0x8E (end to end:
//! `broker/tests/e2e/cluster_sessions.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use bytes::Bytes;
use fleetmq_codec::{PublishProperties, QoS, ReasonCode, SubscriptionOptions};

use super::Engine;
use crate::auth::Identity;
use crate::config::{Config, ListenerConfig};
use crate::message::Message;
use crate::router::Subscription;
use crate::session::Control;

fn broker() -> Arc<Engine> {
    Arc::new(Engine::new(
        Arc::new(Config::default()),
        None,
        Default::default(),
    ))
}

fn anonymous(client_id: &str) -> Arc<Identity> {
    Arc::new(Identity::build(
        &ListenerConfig::default_tls(),
        "tls".into(),
        &[],
        None,
        client_id,
        None,
    ))
}

fn message(topic: &str) -> Arc<Message> {
    Arc::new(Message {
        topic: Arc::from(topic),
        payload: Bytes::from_static(b"x"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: PublishProperties::default(),
        expires_at: None,
        publisher: None,
    })
}

fn subscription() -> Subscription {
    Subscription {
        options: SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            no_local: false,
            retain_as_published: false,
            retain_handling: 0,
        },
        identifier: None,
    }
}

#[tokio::test]
async fn an_adopted_session_resumes_and_gets_only_its_replayed_messages() {
    // Node a: a persistent session with one subscription, then offline.
    let a = broker();
    let held = a.attach("dev", false, 300, anonymous("dev"), None).unwrap();
    a.subscribe(&held.session, "fleet/dev/#", subscription())
        .unwrap();
    let meta = held.session.lock().meta(Some(crate::store::now_ms()));

    // Node c adopts its record, beside a session of its own.
    let c = broker();
    let other = c
        .attach("other", false, 300, anonymous("other"), None)
        .unwrap();
    c.subscribe(&other.session, "fleet/#", subscription())
        .unwrap();
    c.adopt_from_cluster("dev", meta);
    let resumed = c.attach("dev", false, 300, anonymous("dev"), None).unwrap();
    assert!(resumed.session_present);
    assert_eq!(c.subscription_count(), 2);

    // A replayed message reaches the adopted session only.
    let outcome = c.route_to_session("dev", message("fleet/dev/cmd"));
    assert_eq!(outcome.matched, 1);
    assert_eq!(resumed.session.lock().queue_len(), 1);
    assert_eq!(other.session.lock().queue_len(), 0);
    assert_eq!(c.route_to_session("dev", message("elsewhere")).matched, 0);
    assert_eq!(c.route_to_session("nobody", message("fleet/x")).matched, 0);
}

#[tokio::test]
async fn a_released_client_id_closes_with_0x8e_and_leaves_no_subscription() {
    let broker = broker();
    let mut held = broker
        .attach("dev", false, 300, anonymous("dev"), None)
        .unwrap();
    broker
        .subscribe(&held.session, "fleet/dev/#", subscription())
        .unwrap();
    assert!(broker.release_to_cluster("dev"));
    assert_eq!(
        held.control.recv().await,
        Some(Control::Disconnect(ReasonCode::SESSION_TAKEN_OVER))
    );
    assert!(broker.session("dev").is_none());
    assert_eq!(broker.subscription_count(), 0);
    assert!(!broker.release_to_cluster("dev"));
}
