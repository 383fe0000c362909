#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use super::*;
use fleetmq_core::events::ClientCounters;
use fleetmq_core::peer::{AuthMode, HandshakeTiming, PeerCertificate, TlsInfo};

fn limits() -> RegistryLimits {
    RegistryLimits {
        recent_disconnects: 3,
        connect_history: 2,
    }
}

fn cert(cn: &str, not_after: i64) -> PeerCertificate {
    PeerCertificate {
        cn: Some(cn.into()),
        subject: format!("CN={cn}, OU=lab"),
        organizational_units: ["lab".into()].into(),
        san_dns: vec![],
        san_uri: vec![],
        san_email: vec![],
        serial: "0A1B".into(),
        fingerprint_sha256: "ab".repeat(32).into(),
        issuer: "CN=lab CA".into(),
        not_before: 0,
        not_after,
        version: 3,
        weakness: None,
        key_type: "".into(),
    }
}

fn tls(auth: AuthMode, resumed: bool, cert: Option<PeerCertificate>) -> TlsInfo {
    TlsInfo {
        version: "TLSv1.3".into(),
        cipher_suite: "TLS13_AES_128_GCM_SHA256".into(),
        kx_group: Some("X25519".into()),
        resumed,
        auth,
        server_name: None,
        client_cert: cert,
    }
}

fn connected(id: &str, connection: u64, tls: Option<TlsInfo>) -> Event {
    let ms = Duration::from_millis;
    Event::Connected(Arc::new(Connected {
        client_id: Arc::from(id),
        connection,
        peer: "127.0.0.1:5000".parse().unwrap(),
        listener: Arc::from("tls"),
        transport: fleetmq_core::config::ListenerProtocol::Mqtt,
        protocol: 5,
        clean_start: true,
        keep_alive: 60,
        username: None,
        timing: HandshakeTiming {
            accepted_at: SystemTime::now(),
            client_hello: tls.as_ref().map(|_| ms(1)),
            tls_handshake: tls.as_ref().map(|_| ms(20)),
            tls_total: tls.as_ref().map(|_| ms(21)),
            split: None,
            connect: Some(ms(2)),
            connack: Some(ms(1)),
            total: Some(ms(24)),
        },
        tls,
        counters: Arc::new(ClientCounters::default()),
    }))
}

fn disconnected(id: &str, connection: u64, reason: &str) -> Event {
    Event::Disconnected {
        client_id: Arc::from(id),
        connection,
        reason: reason.to_string(),
    }
}

fn ids(views: &[ClientView]) -> Vec<&str> {
    views.iter().map(|v| v.client_id.as_str()).collect()
}

#[test]
fn connect_and_disconnect_move_a_client_to_recent() {
    let registry = Registry::new(limits());
    let changes = registry.watch();
    registry.record(&connected("dev-a", 1, None));
    assert!(changes.has_changed().unwrap());
    assert_eq!(ids(&registry.clients()), ["dev-a"]);
    registry.record(&disconnected("dev-a", 1, "keep alive timeout"));
    assert!(registry.clients().is_empty());
    let recent = registry.disconnected();
    assert_eq!(ids(&recent), ["dev-a"]);
    assert!(!recent[0].connected);
    assert_eq!(
        recent[0].disconnect_reason.as_deref(),
        Some("keep alive timeout")
    );
    let detail = registry.client("dev-a").unwrap();
    assert_eq!(
        detail.history[0].disconnect_reason.as_deref(),
        Some("keep alive timeout")
    );
}

#[test]
fn take_over_keeps_the_new_connection_whatever_the_event_order() {
    let registry = Registry::new(limits());
    // The new connection reports before the old one's disconnect.
    registry.record(&connected("dev-a", 1, None));
    registry.record(&connected("dev-a", 2, None));
    registry.record(&disconnected("dev-a", 1, "session taken over"));
    let clients = registry.clients();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].connection, 2);
    assert_eq!(registry.disconnected()[0].connection, 1);
    // And the other order.
    registry.record(&disconnected("dev-a", 2, "closed its connection"));
    registry.record(&connected("dev-a", 3, None));
    assert_eq!(registry.clients()[0].connection, 3);
}

#[test]
fn identity_prefers_the_certificate_cn() {
    let registry = Registry::new(limits());
    registry.record(&connected(
        "esp32_807A98",
        1,
        Some(tls(AuthMode::Mutual, false, Some(cert("device-7", 0)))),
    ));
    registry.record(&connected(
        "plain-1",
        2,
        Some(tls(AuthMode::OneWay, false, None)),
    ));
    let clients = registry.clients();
    assert_eq!(clients[0].identity, "device-7");
    assert_eq!(clients[0].identity_source, "certificate_cn");
    assert_eq!(clients[1].identity, "plain-1");
    assert_eq!(clients[1].identity_source, "client_id");
    assert!(clients[1].tls.as_ref().unwrap().client_cert.is_none());
    let json = serde_json::to_value(&clients[0]).unwrap();
    assert_eq!(json["tls"]["client_cert"]["cn"], "device-7");
    assert_eq!(json["timings_ms"]["tls_handshake"], 21.0);
    assert_eq!(json["timings_ms"]["connect_to_connack"], 1.0);
    assert_eq!(json["timings_ms"]["total"], 24.0);
    assert_eq!(json["protocol"], "5.0");
}

#[test]
fn subscriptions_follow_events_and_restores() {
    let registry = Registry::new(limits());
    registry.record(&connected("dev-a", 1, None));
    registry.restore_subscriptions("dev-a", 1, BTreeMap::from([("old/#".to_string(), 1)]));
    registry.restore_subscriptions("dev-a", 99, BTreeMap::from([("stale".to_string(), 0)]));
    registry.record(&Event::Subscribed {
        client_id: Arc::from("dev-a"),
        filter: "cmd/+".into(),
        qos: 2,
    });
    registry.record(&Event::Unsubscribed {
        client_id: Arc::from("dev-a"),
        filter: "old/#".into(),
    });
    let subs = &registry.clients()[0].subscriptions;
    assert_eq!(subs.len(), 1);
    assert_eq!((subs[0].filter.as_str(), subs[0].qos), ("cmd/+", 2));
}

#[test]
fn recent_disconnects_and_history_are_bounded() {
    let registry = Registry::new(limits());
    for n in 1..=5 {
        registry.record(&connected("dev-a", n, None));
        registry.record(&disconnected("dev-a", n, "closed"));
    }
    let recent = registry.disconnected();
    assert_eq!(recent.len(), 3);
    assert_eq!(recent[0].connection, 5, "newest first");
    let history = registry.client("dev-a").unwrap().history;
    let connections: Vec<u64> = history.iter().map(|r| r.connection).collect();
    assert_eq!(connections, [5, 4]);
}

#[test]
fn history_forgets_the_client_whose_last_connect_is_oldest() {
    let registry = Registry::new(limits());
    let mut connection = 0;
    let mut connect = |id: &str| {
        connection += 1;
        registry.record(&connected(id, connection, None));
        registry.record(&disconnected(id, connection, "closed"));
    };
    connect("early");
    connect("reconnects");
    for n in 0..HISTORY_CLIENTS - 2 {
        connect(&format!("dev-{n}"));
    }
    // "reconnects" connects again: its last connect is now the newest.
    connect("reconnects");
    connect("one-too-many");
    let kept = |id: &str| registry.state.lock().history.get(id).map(VecDeque::len);
    assert_eq!(kept("early"), None);
    assert_eq!(kept("reconnects"), Some(2));
    connect("two-too-many");
    assert_eq!(kept("dev-0"), None);
    assert_eq!(kept("dev-1"), Some(1));
    let state = registry.state.lock();
    assert_eq!(state.history.len(), HISTORY_CLIENTS);
    assert!(state.history_order.len() <= 2 * HISTORY_CLIENTS + 64);
}

#[test]
fn handshake_stats_and_failures_are_kept() {
    let registry = Registry::new(limits());
    registry.record(&connected(
        "a",
        1,
        Some(tls(AuthMode::Mutual, false, Some(cert("a", 0)))),
    ));
    registry.record(&connected("b", 2, Some(tls(AuthMode::OneWay, true, None))));
    registry.record(&connected("c", 3, None));
    registry.record(&Event::HandshakeFailed {
        listener: Arc::from("tls"),
        peer: "127.0.0.1:1".parse().unwrap(),
        reason: "unknown_ca",
        detail: String::new(),
    });
    let summary = registry.summary();
    let counts: Vec<(&str, bool, u64)> = summary
        .handshakes
        .groups
        .iter()
        .map(|g| (g.auth, g.resumed, g.count))
        .collect();
    assert_eq!(
        counts,
        [
            ("one_way", false, 0),
            ("one_way", true, 1),
            ("mutual", false, 1),
            ("mutual", true, 0)
        ]
    );
    assert_eq!(summary.handshakes.failures.get("unknown_ca"), Some(&1));
    assert_eq!(summary.connected, 3);
}

#[test]
fn expiring_certificates_come_from_the_last_connect() {
    let registry = Registry::new(limits());
    let now = now_secs();
    let soon = now + 5 * 86_400;
    let later = now + 400 * 86_400;
    registry.record(&connected(
        "dev-a",
        1,
        Some(tls(AuthMode::Mutual, false, Some(cert("dev-a", soon)))),
    ));
    registry.record(&connected(
        "dev-b",
        2,
        Some(tls(AuthMode::Mutual, false, Some(cert("dev-b", soon)))),
    ));
    registry.record(&disconnected("dev-b", 2, "closed"));
    // dev-b came back with a renewed certificate.
    registry.record(&connected(
        "dev-b",
        3,
        Some(tls(AuthMode::Mutual, false, Some(cert("dev-b", later)))),
    ));
    let expiring = registry.summary().expiring_certificates;
    assert_eq!(expiring.len(), 1);
    assert_eq!(expiring[0].client_id, "dev-a");
    assert!(expiring[0].connected);
    assert!((4.9..=5.0).contains(&expiring[0].days_left), "{expiring:?}");
    let min = registry.min_cert_expiry_secs().unwrap();
    assert!((soon - now - 2..=soon - now).contains(&min), "{min}");
}

#[test]
fn reconcile_drops_clients_whose_disconnect_was_lost() {
    let registry = Registry::new(limits());
    registry.record(&connected("gone", 1, None));
    registry.record(&connected("here", 2, None));
    registry.reconcile(7, |id, _| id == "here");
    assert_eq!(ids(&registry.clients()), ["here"]);
    assert_eq!(registry.disconnected()[0].client_id, "gone");
    assert_eq!(registry.summary().events_lost, 7);
}

#[test]
fn counters_are_read_live() {
    let registry = Registry::new(limits());
    let event = connected("dev-a", 1, None);
    let Event::Connected(info) = &event else {
        unreachable!()
    };
    let counters = Arc::clone(&info.counters);
    registry.record(&event);
    ClientCounters::add(&counters.messages_in, 3);
    ClientCounters::add(&counters.bytes_out, 100);
    counters.touch();
    let view = &registry.clients()[0];
    assert_eq!((view.messages_in, view.bytes_out), (3, 100));
    assert!(view.last_activity.is_some());
}

/// A held device's history entry shares the facts its device entry holds
/// (one copy per held connection: memory per device, issue 22), and its
/// view still says everything, including how it ended.
#[test]
fn the_history_of_a_held_device_shares_its_facts() {
    let registry = Registry::new(limits());
    let with_cert = tls(AuthMode::Mutual, false, Some(cert("dev-a", 4_000_000_000)));
    registry.record(&connected("dev-a", 1, Some(with_cert)));
    {
        let state = registry.state.lock();
        let device = &state.connected["dev-a"];
        let remembered = &state.history["dev-a"][0];
        assert!(Arc::ptr_eq(&device.info, &remembered.info));
    }
    let record = &registry.client("dev-a").unwrap().history[0];
    assert_eq!(
        record.client_cert.as_ref().unwrap().cn.as_deref(),
        Some("dev-a")
    );
    assert_eq!(record.tls_version.as_deref(), Some("TLSv1.3"));
    assert!(record.disconnected_at.is_none());
    registry.record(&disconnected("dev-a", 1, "keep alive timeout"));
    let record = &registry.client("dev-a").unwrap().history[0];
    assert!(record.disconnected_at.is_some());
    assert_eq!(
        record.disconnect_reason.as_deref(),
        Some("keep alive timeout")
    );
}
