//! X.509 version 1 client certificates on a fleetmq.toml listener
//! (decision 0090): accepted where `accept_v1_client_certificates = true`,
//! cached like v3 chains, still proving the key on every handshake;
//! refused in the lab's words where the listener keeps the v3-only default.

use std::path::Path;
use std::sync::Arc;

use super::{cache_counters, Presents, SKIP};
use crate::harness::pki::openssl_pki::{ClientCert, OpensslPki};
use crate::harness::pki::toml_path;
use crate::harness::tls::{self, DEBUG_LOG, TLS12_ONLY, TLS13_ONLY};
use crate::harness::{
    skip_on_mosquitto, Broker, ConnectBuilder, ListenerSpec, RawClient, ReasonCode, WAIT,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};

/// Listener `tls` accepts v1 client certificates, `strict` does not.
fn start(pki: &OpensslPki) -> Broker {
    let listener = |v1: bool| {
        format!(
            "cert = {}\nkey = {}\nclient_ca = {}\nclient_certs = \"required\"\n\
             accept_v1_client_certificates = {v1}\n",
            toml_path(&pki.server_cert),
            toml_path(&pki.server_key),
            toml_path(&pki.ca_cert),
        )
    };
    Broker::start_with_listeners(
        &[
            ListenerSpec::tls("tls", &listener(true)),
            ListenerSpec::tls("strict", &listener(false)),
        ],
        DEBUG_LOG,
    )
}

/// A client presenting `cert` and signing with `key` (a key file).
fn config(
    ca: &Path,
    cert: &ClientCert,
    key: &Path,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = CertificateDer::pem_file_iter(&cert.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let signing_key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::from_pem_file(key).unwrap())
        .unwrap();
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(Presents(Arc::new(CertifiedKey::new(
            chain,
            signing_key,
        )))));
    Arc::new(config)
}

/// CONNACK's reason for `client_id` on `listener`; None when refused.
fn connect(
    broker: &Broker,
    listener: &str,
    config: &Arc<ClientConfig>,
    client_id: &str,
) -> Option<ReasonCode> {
    let transport = tls::connect(broker.addr_of(listener), Arc::clone(config)).ok()?;
    let mut client = RawClient::over(transport);
    client.send_connect(&ConnectBuilder::v311(client_id));
    let connack = client.recv_packet(WAIT);
    match connack {
        Some(crate::harness::Packet::ConnAck(connack)) => Some(connack.reason),
        _ => None,
    }
}

fn v1_devices_prove_their_key(versions: &[&'static SupportedProtocolVersion]) {
    let dir = tempfile::tempdir().unwrap();
    let pki = OpensslPki::generate(dir.path());
    let dev_a = pki.client_v1("esp32-a");
    let dev_b = pki.client_v1("esp32-b");
    let broker = start(&pki);

    let good = config(&pki.ca_cert, &dev_a, &dev_a.key, versions);
    assert_eq!(
        connect(&broker, "tls", &good, "a-1"),
        Some(ReasonCode::SUCCESS)
    );
    broker.assert_log("New client connected from", WAIT);
    let fresh = config(&pki.ca_cert, &dev_a, &dev_a.key, versions);
    assert_eq!(
        connect(&broker, "tls", &fresh, "a-2"),
        Some(ReasonCode::SUCCESS)
    );
    assert_eq!(cache_counters(&broker), (1, 1), "the v1 chain was cached");
    let metrics = crate::harness::web::get(broker.http_addr(), "/metrics", None).body;
    assert!(
        metrics
            .contains("fleetmq_tls_client_certificates_total{listener=\"tls\",version=\"v1\"} 2"),
        "{metrics}"
    );

    // Identity from the subject, as for v3; the dashboard sees a v1 device.
    let transport = tls::connect(broker.addr_of("tls"), Arc::clone(&good)).unwrap();
    let mut held = RawClient::over(transport);
    held.send_connect(&ConnectBuilder::v311("a-held"));
    assert_eq!(held.expect_connack().reason, ReasonCode::SUCCESS);
    // The registry hears of the connect just after CONNACK: wait for it.
    let detail = crate::harness::web::eventually(WAIT, "a-held in /api/clients", || {
        let response = crate::harness::web::get(broker.http_addr(), "/api/clients/a-held", None);
        (response.status == 200).then(|| response.json())
    });
    assert_eq!(detail["identity"], "esp32-a", "{detail:#}");
    assert_eq!(detail["tls"]["client_cert"]["version"], 1, "{detail:#}");

    // dev-a's certificate, dev-b's key: the CertificateVerify is checked
    // against the v1 leaf's key, cache hit or not.
    let impostor = config(&pki.ca_cert, &dev_a, &dev_b.key, versions);
    assert_eq!(connect(&broker, "tls", &impostor, "impostor"), None);
    tls::assert_handshake_failed(&broker, "tls", "bad_certificate");

    // The v3-only listener names the certificate and what to do.
    let strict = config(&pki.ca_cert, &dev_b, &dev_b.key, versions);
    assert_eq!(connect(&broker, "strict", &strict, "b"), None);
    tls::assert_handshake_failed(&broker, "strict", "v1_refused");
    broker.assert_log(
        &format!(
            "client certificate \"CN=esp32-b\" (serial {}) X.509 version 1, refused by this listener; set tls.accept_v1_client_certificates = true",
            dev_b.serial
        ),
        WAIT,
    );
    // The dashboard's failed-handshakes panel says the same. The failure
    // reaches the registry through the event bus, after the log line:
    // ask again until it is there or the wait is over.
    let refused_v1 = |summary: &serde_json::Value| {
        summary["recent_failures"].as_array().is_some_and(|recent| {
            recent.iter().any(|f| {
                f["listener"] == "strict"
                    && f["reason"] == "v1_refused"
                    && f["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains("\"CN=esp32-b\"") && d.contains("version 1"))
            })
        })
    };
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let summary =
            crate::harness::web::get(broker.http_addr(), "/api/handshakes/summary", None).json();
        if refused_v1(&summary) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{summary:#}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn v1_devices_connect_and_prove_their_key_tls13() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    v1_devices_prove_their_key(TLS13_ONLY);
}

#[test]
fn v1_devices_connect_and_prove_their_key_tls12() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    v1_devices_prove_their_key(TLS12_ONLY);
}
