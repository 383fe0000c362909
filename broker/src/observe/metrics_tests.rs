#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime};

use super::*;
use crate::observe::registry::RegistryLimits;
use fleetmq_core::config::Config;
use fleetmq_core::events::{ClientCounters, Connected};
use fleetmq_core::peer::{HandshakeTiming, TlsInfo};

fn setup() -> (Arc<Engine>, Arc<Registry>, Metrics) {
    let broker = Arc::new(Engine::new(
        Arc::new(Config::default()),
        None,
        Default::default(),
    ));
    let registry = Arc::new(Registry::new(RegistryLimits {
        recent_disconnects: 10,
        connect_history: 10,
    }));
    let listeners = [
        ListenerLabel {
            name: Arc::from("plain"),
            tls: false,
            transport: "mqtt",
            chain_cache: None,
        },
        ListenerLabel {
            name: Arc::from("mtls"),
            tls: true,
            transport: "mqtt",
            chain_cache: Some(Default::default()),
        },
    ];
    let metrics = Metrics::new(Arc::clone(&broker), Arc::clone(&registry), &listeners).unwrap();
    (broker, registry, metrics)
}

fn tls_connect(id: &str, connection: u64, auth: AuthMode, resumed: bool, ms: u64) -> Event {
    Event::Connected(Arc::new(Connected {
        client_id: Arc::from(id),
        connection,
        peer: "127.0.0.1:4000".parse().unwrap(),
        listener: Arc::from("mtls"),
        transport: fleetmq_core::config::ListenerProtocol::Mqtt,
        protocol: 4,
        clean_start: true,
        keep_alive: 30,
        username: None,
        tls: Some(TlsInfo {
            version: "TLSv1.3".into(),
            cipher_suite: "TLS13_AES_256_GCM_SHA384".into(),
            kx_group: None,
            resumed,
            auth,
            server_name: None,
            client_cert: None,
        }),
        timing: HandshakeTiming {
            accepted_at: SystemTime::now(),
            client_hello: Some(Duration::from_millis(1)),
            tls_handshake: Some(Duration::from_millis(ms - 1)),
            tls_total: Some(Duration::from_millis(ms)),
            split: None,
            connect: Some(Duration::from_millis(1)),
            connack: Some(Duration::from_micros(300)),
            total: Some(Duration::from_millis(ms + 2)),
        },
        counters: Arc::new(ClientCounters::default()),
    }))
}

/// The value of the sample line `name_and_labels VALUE`.
fn sample(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name_and_labels} in:\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn every_documented_metric_is_exported() {
    let (_, registry, metrics) = setup();
    // The certificate gauge appears once a certificate was seen.
    let mut event = tls_connect("dev", 1, AuthMode::Mutual, false, 30);
    if let Event::Connected(connected) = &mut event {
        let tls = Arc::make_mut(connected).tls.as_mut().unwrap();
        tls.client_cert = Some(fleetmq_core::peer::PeerCertificate {
            cn: Some("dev".into()),
            subject: "CN=dev".into(),
            organizational_units: [].into(),
            san_dns: vec![],
            san_uri: vec![],
            san_email: vec![],
            serial: "01".into(),
            fingerprint_sha256: "".into(),
            issuer: "CN=ca".into(),
            not_before: 0,
            not_after: super::super::clock::now_secs() + 3600,
            version: 1,
            weakness: None,
            key_type: "".into(),
        });
    }
    registry.record(&event);
    let text = metrics.render().unwrap();
    for name in [
        "# TYPE fleetmq_connections gauge",
        "# TYPE fleetmq_connects_total counter",
        "# TYPE fleetmq_tls_handshake_seconds histogram",
        "# TYPE fleetmq_tls_handshake_failures_total counter",
        "# TYPE fleetmq_tls_chain_cache_hits_total counter",
        "# TYPE fleetmq_tls_chain_cache_misses_total counter",
        "# TYPE fleetmq_connect_to_connack_seconds histogram",
        "# TYPE fleetmq_messages_received_total counter",
        "# TYPE fleetmq_messages_sent_total counter",
        "# TYPE fleetmq_bytes_received_total counter",
        "# TYPE fleetmq_bytes_sent_total counter",
        "# TYPE fleetmq_acl_denied_total counter",
        "# TYPE fleetmq_retained_messages gauge",
        "# TYPE fleetmq_subscriptions gauge",
        "# TYPE fleetmq_queued_messages gauge",
        "# TYPE fleetmq_client_cert_expiry_seconds gauge",
        "# TYPE process_resident_memory_bytes gauge",
    ] {
        assert!(text.contains(name), "missing {name:?} in:\n{text}");
    }
    let expiry = sample(&text, "fleetmq_client_cert_expiry_seconds");
    assert!((3590.0..=3600.0).contains(&expiry), "{expiry}");
    assert_eq!(
        sample(
            &text,
            "fleetmq_connections{listener=\"mtls\",transport=\"mqtt\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "fleetmq_connections{listener=\"plain\",transport=\"mqtt\"}"
        ),
        0.0
    );
}

#[test]
fn known_label_values_start_at_zero() {
    let (_, _, metrics) = setup();
    let text = metrics.render().unwrap();
    assert_eq!(
        sample(
            &text,
            "fleetmq_tls_handshake_failures_total{listener=\"mtls\",reason=\"unknown_ca\"}"
        ),
        0.0
    );
    assert_eq!(
        sample(
            &text,
            "fleetmq_tls_handshake_seconds_count{auth=\"mutual\",listener=\"mtls\",resumed=\"true\"}"
        ),
        0.0
    );
    assert_eq!(
        sample(
            &text,
            "fleetmq_connects_total{auth=\"plain\",listener=\"plain\"}"
        ),
        0.0
    );
    assert_eq!(
        sample(&text, "fleetmq_acl_denied_total{action=\"publish\"}"),
        0.0
    );
    assert!(
        !text.contains("listener=\"plain\",reason="),
        "plain listeners have no TLS failures"
    );
}

#[test]
fn events_feed_counters_and_histograms() {
    let (broker, _, metrics) = setup();
    metrics.record(&tls_connect("a", 1, AuthMode::Mutual, false, 30));
    metrics.record(&tls_connect("b", 2, AuthMode::Mutual, true, 2));
    metrics.record(&tls_connect("c", 3, AuthMode::OneWay, false, 1500));
    metrics.record(&Event::HandshakeFailed {
        listener: Arc::from("mtls"),
        peer: "127.0.0.1:1".parse().unwrap(),
        reason: "unknown_ca",
        detail: String::new(),
    });
    broker.events.acl_denied(AclAction::Subscribe);
    Stats::add(&broker.stats.publish_received, 5);
    let text = metrics.render().unwrap();
    let mutual_full = "{auth=\"mutual\",listener=\"mtls\",resumed=\"false\"}";
    assert_eq!(
        sample(
            &text,
            &format!("fleetmq_tls_handshake_seconds_count{mutual_full}")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "fleetmq_tls_handshake_seconds_bucket{auth=\"one_way\",listener=\"mtls\",resumed=\"false\",le=\"1\"}"
        ),
        0.0
    );
    assert_eq!(
        sample(
            &text,
            "fleetmq_tls_handshake_seconds_bucket{auth=\"one_way\",listener=\"mtls\",resumed=\"false\",le=\"2\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "fleetmq_connects_total{auth=\"mutual\",listener=\"mtls\"}"
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            "fleetmq_connect_to_connack_seconds_count{auth=\"mutual\",listener=\"mtls\"}"
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            "fleetmq_tls_handshake_failures_total{listener=\"mtls\",reason=\"unknown_ca\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(&text, "fleetmq_acl_denied_total{action=\"subscribe\"}"),
        1.0
    );
    assert_eq!(sample(&text, "fleetmq_messages_received_total"), 5.0);
}

#[test]
fn failure_reasons_match_the_tls_module() {
    use crate::tls::HandshakeFailure as F;
    let refused = |problem| {
        F::Certificate(crate::tls::CertificateRefused {
            subject: "CN=dev".into(),
            serial: "01".into(),
            problem,
        })
    };
    let all = [
        F::Timeout,
        F::ReplyTimeout(std::time::Duration::from_secs(5)),
        F::UnknownCa,
        F::Expired,
        F::Revoked,
        F::NoCertificate,
        F::BadCertificate(String::new()),
        refused(crate::tls::CertificateProblem::Version1Refused),
        refused(crate::tls::CertificateProblem::KeyTooWeak { bits: 1024 }),
        refused(crate::tls::CertificateProblem::SignatureAlgorithmRefused),
        F::ProtocolVersion(String::new()),
        F::NoSharedCipher(String::new()),
        F::PeerAlert(String::new()),
        F::Closed,
        F::Malformed(String::new()),
        F::Io(String::new()),
    ];
    let reasons: Vec<&str> = all.iter().map(F::reason).collect();
    assert_eq!(reasons, FAILURE_REASONS);
}

/// `tls_connect` with a handshake split (no kernel round trip) on
/// `listener`.
fn split_connect(listener: &str, resumed: bool) -> Event {
    let Event::Connected(connected) = tls_connect("s", 9, AuthMode::Mutual, resumed, 20) else {
        unreachable!()
    };
    let mut connected = (*connected).clone();
    connected.listener = Arc::from(listener);
    connected.timing.split = Some(fleetmq_core::peer::HandshakeSplit {
        broker_flight: Duration::from_millis(1),
        client_wait: Duration::from_millis(5),
        network_rtt: None,
        broker_verify: Duration::from_millis(1),
        broker_queue: Duration::ZERO,
        broker_scheduling: Duration::ZERO,
    });
    Event::Connected(Arc::new(connected))
}

#[test]
fn connect_series_are_looked_up_once_per_label_set_and_stay_exact() {
    let (_, _, metrics) = setup();
    metrics.record(&split_connect("mtls", false));
    metrics.record(&split_connect("mtls", false));
    metrics.record(&split_connect("mtls", true));
    let part = |text: &str, part: &str, resumed: &str| {
        sample(
            text,
            &format!(
                "fleetmq_tls_handshake_part_seconds_count{{auth=\"mutual\",key_type=\"none\",\
                 listener=\"mtls\",part=\"{part}\",resumed=\"{resumed}\",version=\"TLSv1.3\"}}"
            ),
        )
    };
    let text = metrics.render().unwrap();
    assert_eq!(part(&text, "broker_flight", "false"), 2.0);
    assert_eq!(part(&text, "client_wait", "true"), 1.0);
    assert_eq!(part(&text, "broker_scheduling", "false"), 2.0);
    // A part that was never observed has no series, as before the table.
    assert!(!text.contains("part=\"network_rtt\""), "{text}");
    assert_eq!(metrics.connect_series.lock().len(), 2);
    // More label sets than the table keeps: it starts over, and every
    // count stays right.
    for n in 0..super::super::connect_series::MAX_LABEL_SETS + 10 {
        metrics.record(&split_connect(&format!("l{n}"), false));
    }
    assert!(metrics.connect_series.lock().len() <= super::super::connect_series::MAX_LABEL_SETS);
    metrics.record(&split_connect("mtls", false));
    metrics.record(&split_connect("l0", false));
    let text = metrics.render().unwrap();
    assert_eq!(part(&text, "broker_flight", "false"), 3.0);
    assert_eq!(
        sample(
            &text,
            "fleetmq_connects_total{auth=\"mutual\",listener=\"mtls\"}"
        ),
        4.0
    );
    assert_eq!(
        sample(
            &text,
            "fleetmq_connects_total{auth=\"mutual\",listener=\"l0\"}"
        ),
        2.0
    );
}
