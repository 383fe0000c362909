//! End-to-end tests of the cache of verified client-certificate chains: a
//! device that connects again is not re-verified against the CA, yet it
//! must still prove it holds its key, and a CRL reload (SIGHUP) refuses a
//! revoked certificate at once, for new and for resumed sessions alike.
//! The cache's hits and misses are read from `/metrics`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::harness;
use crate::harness::pki::{self, Issued, Pki};
use crate::harness::tls::{self, ANY_VERSION, DEBUG_LOG, TLS12_ONLY, TLS13_ONLY};
use crate::harness::web::get;
use crate::harness::{
    skip_on_mosquitto, Broker, ConnectBuilder, ListenerSpec, RawClient, ReasonCode, WAIT,
};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, SignatureScheme, SupportedProtocolVersion};

mod v1_leaf;

const SKIP: &str = "the chain cache is fleetmq's";

/// A broker whose `tls` listener requires client certificates and reads
/// its CRL from a file the test rewrites.
fn start(pki: &Pki) -> (Broker, PathBuf) {
    let crl = pki.dir().join("live-crl.pem");
    std::fs::copy(&pki.crl_empty, &crl).expect("copy crl");
    let toml = format!(
        "cert = {}\nkey = {}\nclient_ca = {}\nclient_certs = \"required\"\ncrl = [{}]\n",
        pki::toml_path(&pki.server_ecdsa.cert),
        pki::toml_path(&pki.server_ecdsa.key),
        pki::toml_path(&pki.ca.cert),
        pki::toml_path(&crl),
    );
    let broker = Broker::start_with_listeners(&[ListenerSpec::tls("tls", &toml)], DEBUG_LOG);
    // SIGHUP before the broker listens for it would end the process.
    broker.assert_log("running.", WAIT);
    (broker, crl)
}

/// An MQTT session over mutual TLS with `config`; panics when refused.
fn connect(broker: &Broker, config: &Arc<ClientConfig>, client_id: &str) -> RawClient {
    let transport = tls::connect(broker.addr_of("tls"), Arc::clone(config))
        .unwrap_or_else(|e| panic!("{client_id}: handshake failed: {e}"));
    let mut client = RawClient::over(transport);
    client.send_connect(&ConnectBuilder::v311(client_id));
    assert_eq!(client.expect_connack().reason, ReasonCode::SUCCESS);
    client
}

/// Connects as `identity` with a fresh client configuration (no session to
/// resume, so the broker sees the certificate) and leaves.
fn connect_fresh(broker: &Broker, pki: &Pki, identity: &Issued, client_id: &str) {
    let config = tls::client_config(&pki.ca.cert, Some(identity), ANY_VERSION);
    connect(broker, &config, client_id).send(&harness::disconnect(None));
}

/// Asserts that `config` gets no MQTT session (refused in the handshake,
/// or, with TLS 1.3, on the first read after it).
fn assert_refused(broker: &Broker, config: &Arc<ClientConfig>, client_id: &str) {
    let Ok(transport) = tls::connect(broker.addr_of("tls"), Arc::clone(config)) else {
        return;
    };
    let mut client = RawClient::over(transport);
    client.send_connect(&ConnectBuilder::v311(client_id));
    let got = client.recv_packet(WAIT);
    assert!(
        got.is_none() && client.is_closed(),
        "{client_id} was let in: {got:?}"
    );
}

/// The chain cache counters of listener `tls`: (hits, misses).
fn cache_counters(broker: &Broker) -> (u64, u64) {
    let body = get(broker.http_addr(), "/metrics", None).body;
    let read = |name: &str| {
        let prefix = format!("{name}{{listener=\"tls\"}} ");
        body.lines()
            .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in /metrics:\n{body}"))
    };
    (
        read("fleetmq_tls_chain_cache_hits_total"),
        read("fleetmq_tls_chain_cache_misses_total"),
    )
}

#[test]
fn a_known_chain_is_not_verified_again_until_a_crl_reload_revokes_it() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let (broker, crl) = start(&pki);
    assert_eq!(cache_counters(&broker), (0, 0));
    connect_fresh(&broker, &pki, &pki.dev_a, "dev-a-first");
    assert_eq!(cache_counters(&broker), (0, 1), "first connect verifies");
    connect_fresh(&broker, &pki, &pki.dev_a, "dev-a-second");
    assert_eq!(cache_counters(&broker), (1, 1), "second connect is a hit");

    pki.write_crl(&crl, 3, &[&pki.dev_a]);
    broker.sighup();
    broker.assert_log("Reloaded TLS certificates of listener \"tls\".", WAIT);
    let dev_a = tls::client_config(&pki.ca.cert, Some(&pki.dev_a), ANY_VERSION);
    assert_refused(&broker, &dev_a, "dev-a-revoked");
    tls::assert_handshake_failed(&broker, "tls", "revoked");
    connect_fresh(&broker, &pki, &pki.dev_b, "dev-b");
    let (hits, misses) = cache_counters(&broker);
    assert_eq!(hits, 1, "nothing was served from the old cache");
    assert_eq!(misses, 3);
}

/// A session made before the revocation must not resume after it.
fn a_revoked_device_cannot_resume(versions: &[&'static SupportedProtocolVersion]) {
    let pki = Pki::new();
    let (broker, crl) = start(&pki);
    let dev_a = tls::client_config(&pki.ca.cert, Some(&pki.dev_a), versions);
    connect(&broker, &dev_a, "dev-a-first").send(&harness::disconnect(None));
    let resumed = connect(&broker, &dev_a, "dev-a-resumed");
    assert!(resumed.transport().resumed(), "the client resumes");
    resumed.drop_connection();

    pki.write_crl(&crl, 3, &[&pki.dev_a]);
    broker.sighup();
    broker.assert_log("Reloaded TLS certificates of listener \"tls\".", WAIT);
    assert_refused(&broker, &dev_a, "dev-a-after");
    tls::assert_handshake_failed(&broker, "tls", "revoked");
    let dev_b = tls::client_config(&pki.ca.cert, Some(&pki.dev_b), versions);
    connect(&broker, &dev_b, "dev-b");
}

#[test]
fn a_revoked_device_cannot_resume_a_tls13_session() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    a_revoked_device_cannot_resume(TLS13_ONLY);
}

#[test]
fn a_revoked_device_cannot_resume_a_tls12_session() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    a_revoked_device_cannot_resume(TLS12_ONLY);
}

/// Always presents one certificate with one key, whether they match or not.
#[derive(Debug)]
struct Presents(Arc<CertifiedKey>);

impl ResolvesClientCert for Presents {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A client presenting `cert`'s certificate but signing with `key`'s key.
fn mismatched_config(
    pki: &Pki,
    cert: &Issued,
    key: &Issued,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = CertificateDer::pem_file_iter(&cert.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let signing_key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::from_pem_file(&key.key).unwrap())
        .unwrap();
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&pki.ca.cert).unwrap() {
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

fn a_cached_certificate_without_its_key_is_refused(versions: &[&'static SupportedProtocolVersion]) {
    let pki = Pki::new();
    let (broker, _crl) = start(&pki);
    connect_fresh(&broker, &pki, &pki.dev_a, "dev-a");
    let impostor = mismatched_config(&pki, &pki.dev_a, &pki.dev_b, versions);
    assert_refused(&broker, &impostor, "impostor");
    tls::assert_handshake_failed(&broker, "tls", "bad_certificate");
    // The chain itself came from the cache: only the signature refused it.
    let (hits, _) = cache_counters(&broker);
    assert!(hits >= 1, "the impostor's chain was a cache hit");
    connect_fresh(&broker, &pki, &pki.dev_a, "dev-a-again");
}

#[test]
fn a_cached_certificate_without_its_key_is_refused_tls13() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    a_cached_certificate_without_its_key_is_refused(TLS13_ONLY);
}

#[test]
fn a_cached_certificate_without_its_key_is_refused_tls12() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    a_cached_certificate_without_its_key_is_refused(TLS12_ONLY);
}
