//! End-to-end tests of SIGHUP: the broker re-reads the certificate, key, CA
//! and CRL files of its TLS listeners without dropping a connection. New
//! handshakes see the new files; held connections carry on; a bad file is
//! refused and the certificates in force stay.

use std::path::PathBuf;
use std::sync::Arc;

use crate::harness;
use crate::harness::pki::{self, Issued, Pki};
use crate::harness::tls::{self, ANY_VERSION, DEBUG_LOG};
use crate::harness::{
    skip_on_mosquitto, Broker, ConnectBuilder, ListenerSpec, RawClient, ReasonCode, QUIET, WAIT,
};

const SKIP: &str = "TLS listeners are configured the fleetmq way";

/// The files the broker is configured with, which a test rewrites.
struct LiveFiles {
    cert: PathBuf,
    key: PathBuf,
    crl: PathBuf,
}

impl LiveFiles {
    /// Installs `server` as the live certificate and the empty CRL.
    fn new(pki: &Pki, server: &Issued) -> LiveFiles {
        let live = LiveFiles {
            cert: pki.dir().join("live-server.crt"),
            key: pki.dir().join("live-server.key"),
            crl: pki.dir().join("live-crl.pem"),
        };
        live.install(server);
        std::fs::copy(&pki.crl_empty, &live.crl).expect("copy crl");
        live
    }

    /// Replaces the live certificate and key with `server`'s.
    fn install(&self, server: &Issued) {
        let read = |path: &PathBuf| std::fs::read(path).expect("read");
        pki::write_atomic(&self.cert, &read(&server.cert), 0o644);
        pki::write_atomic(&self.key, &read(&server.key), 0o600);
    }

    fn listener_toml(&self, pki: &Pki) -> String {
        format!(
            "cert = {}\nkey = {}\nclient_ca = {}\nclient_certs = \"required\"\ncrl = [{}]\n",
            pki::toml_path(&self.cert),
            pki::toml_path(&self.key),
            pki::toml_path(&pki.ca.cert),
            pki::toml_path(&self.crl),
        )
    }
}

fn start(pki: &Pki, live: &LiveFiles) -> Broker {
    let broker = Broker::start_with_listeners(
        &[ListenerSpec::tls("tls", &live.listener_toml(pki))],
        DEBUG_LOG,
    );
    // SIGHUP before the broker listens for it would end the process.
    broker.assert_log("running.", WAIT);
    broker
}

/// A fresh mutual-TLS MQTT connection (its own session cache, so it sees
/// the server certificate, never a resumed session).
fn connect(broker: &Broker, pki: &Pki, identity: &Issued, client_id: &str) -> RawClient {
    let config = tls::client_config(&pki.ca.cert, Some(identity), ANY_VERSION);
    let transport = tls::connect(broker.addr_of("tls"), config)
        .unwrap_or_else(|e| panic!("{client_id}: handshake failed: {e}"));
    let mut client = RawClient::over(transport);
    client.send_connect(&ConnectBuilder::v311(client_id));
    let connack = client.expect_connack();
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    client
}

/// Asserts that a new connection is presented `expected`.
fn assert_server_cert(broker: &Broker, pki: &Pki, expected: &Issued, client_id: &str) {
    let client = connect(broker, pki, &pki.dev_a, client_id);
    let presented = client.transport().server_cert();
    assert_eq!(
        pki::serial_of(&presented),
        expected.serial,
        "server certificate serial"
    );
    assert!(presented == expected.der, "same serial, other certificate");
}

/// Asserts that `identity` gets no MQTT session.
fn assert_refused(broker: &Broker, pki: &Pki, identity: &Issued, client_id: &str) {
    let config = tls::client_config(&pki.ca.cert, Some(identity), ANY_VERSION);
    let Ok(transport) = tls::connect(broker.addr_of("tls"), Arc::clone(&config)) else {
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

/// Waits for the failed-reload line, which must mention `detail` (the file
/// at fault, or what is wrong with it).
fn assert_reload_failed(broker: &Broker, detail: &str) {
    let needles = [
        "Reload of listener \"tls\" failed, keeping its current certificates",
        detail,
    ];
    assert_eq!(
        broker.wait_for_log_lines(&needles, 1, WAIT),
        1,
        "expected one failed reload naming {detail:?}; logs:\n{}",
        broker.logs()
    );
}

#[test]
fn sighup_rotates_the_certificate_and_crl_and_keeps_connections() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let live = LiveFiles::new(&pki, &pki.server_ecdsa);
    let broker = start(&pki, &live);
    assert_ne!(pki.server_ecdsa.serial, pki.server_b.serial);

    let mut held = connect(&broker, &pki, &pki.dev_a, "held");
    assert_eq!(
        held.subscribe(1, "fleet/held", 1),
        vec![ReasonCode::GRANTED_QOS_1]
    );
    assert_server_cert(&broker, &pki, &pki.server_ecdsa, "before-rotation");
    connect(&broker, &pki, &pki.dev_b, "dev-b-before").send(&harness::disconnect(None));

    live.install(&pki.server_b);
    pki.write_crl(&live.crl, 3, &[&pki.dev_b]);
    broker.sighup();
    broker.assert_log("Reloaded TLS certificates of listener \"tls\".", WAIT);

    assert_server_cert(&broker, &pki, &pki.server_b, "after-rotation");
    assert_refused(&broker, &pki, &pki.dev_b, "dev-b-after");
    tls::assert_handshake_failed(&broker, "tls", "revoked");

    // The connection made before the reload still carries messages both ways.
    let mut publisher = connect(&broker, &pki, &pki.dev_a, "publisher");
    assert_eq!(
        publisher.publish("fleet/held", b"after reload", 1, false),
        ReasonCode::SUCCESS
    );
    let publish = held.expect_app_publish();
    assert_eq!(publish.payload.as_ref(), b"after reload");
    assert_eq!(
        held.publish("fleet/held", b"from held", 1, false),
        ReasonCode::SUCCESS
    );
    assert_eq!(held.expect_app_publish().payload.as_ref(), b"from held");
    held.ping();
}

#[test]
fn sighup_with_a_garbage_key_keeps_the_current_certificate() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let live = LiveFiles::new(&pki, &pki.server_ecdsa);
    let broker = start(&pki, &live);
    let mut held = connect(&broker, &pki, &pki.dev_a, "held");

    live.install(&pki.server_b);
    pki::write_atomic(
        &live.key,
        b"-----BEGIN PRIVATE KEY-----\nnot a key\n",
        0o600,
    );
    broker.sighup();
    assert_reload_failed(&broker, "live-server.key");
    assert!(!broker.logs().contains("Reloaded TLS certificates"));

    assert_server_cert(&broker, &pki, &pki.server_ecdsa, "after-bad-reload");
    held.ping();

    // Fixing the file and signalling again completes the rotation.
    live.install(&pki.server_b);
    broker.sighup();
    broker.assert_log("Reloaded TLS certificates of listener \"tls\".", WAIT);
    assert_server_cert(&broker, &pki, &pki.server_b, "after-good-reload");
}

#[test]
fn sighup_with_a_key_of_another_certificate_keeps_the_current_one() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let live = LiveFiles::new(&pki, &pki.server_ecdsa);
    let broker = start(&pki, &live);

    // Certificate B with key A: both files parse, but they are no pair.
    let cert_b = std::fs::read(&pki.server_b.cert).expect("read cert b");
    pki::write_atomic(&live.cert, &cert_b, 0o644);
    broker.sighup();
    assert_reload_failed(&broker, "do not form a usable pair");
    assert_server_cert(&broker, &pki, &pki.server_ecdsa, "after-mismatched-reload");
}

#[test]
fn sighup_with_a_garbage_crl_keeps_the_current_one() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let live = LiveFiles::new(&pki, &pki.server_ecdsa);
    pki.write_crl(&live.crl, 2, &[&pki.dev_revoked]);
    let broker = start(&pki, &live);

    pki::write_atomic(&live.crl, b"this is no CRL\n", 0o644);
    broker.sighup();
    assert_reload_failed(&broker, "live-crl.pem");
    // The CRL in force still revokes, and other devices still get in.
    assert_refused(&broker, &pki, &pki.dev_revoked, "dev-revoked");
    tls::assert_handshake_failed(&broker, "tls", "revoked");
    connect(&broker, &pki, &pki.dev_b, "dev-b");
}

/// Runs `fleetmq certs ARGS... --dir pki`, the command an operator runs.
pub(crate) fn certs_cli(pki: &std::path::Path, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fleetmq"))
        .arg("certs")
        .arg("--dir")
        .arg(pki)
        .args(args)
        .output()
        .expect("the fleetmq binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "fleetmq certs {args:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A device of the CLI-made lab PKI, as the TLS client helpers want it.
pub(crate) fn lab_device(pki: &std::path::Path, id: &str) -> Issued {
    let dir = pki.join("devices").join(id);
    Issued {
        cert: dir.join(format!("{id}.crt")),
        key: dir.join(format!("{id}.key")),
        der: Vec::new(),
        serial: Vec::new(),
    }
}

/// A 5.0 mutual-TLS client of the lab PKI, or the reason it got none.
fn lab_connect(broker: &Broker, ca: &std::path::Path, device: &Issued, id: &str) -> RawClient {
    let config = tls::client_config(ca, Some(device), ANY_VERSION);
    let transport = tls::connect(broker.addr_of("tls"), config)
        .unwrap_or_else(|e| panic!("{id}: handshake failed: {e}"));
    let mut client = RawClient::over(transport);
    client.send_connect(&ConnectBuilder::v5(id));
    assert_eq!(client.expect_connack().reason, ReasonCode::SUCCESS);
    client
}

#[test]
fn revoking_a_connected_device_disconnects_it_and_keeps_it_out() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    certs_cli(&pki, &["init"]);
    certs_cli(
        &pki,
        &["server", "--name", "localhost", "--ip", "127.0.0.1"],
    );
    certs_cli(&pki, &["device", "dev-a", "dev-b"]);
    let ca = pki.join("ca.crt");
    let listener = format!(
        "cert = {}\nkey = {}\nclient_ca = {}\nclient_certs = \"required\"\ncrl = [{}]\n",
        pki::toml_path(&pki.join("server/localhost.crt")),
        pki::toml_path(&pki.join("server/localhost.key")),
        pki::toml_path(&ca),
        pki::toml_path(&pki.join("crl.pem")),
    );
    let broker = Broker::start_with_listeners(&[ListenerSpec::tls("tls", &listener)], DEBUG_LOG);
    broker.assert_log("running.", WAIT);
    let (dev_a, dev_b) = (lab_device(&pki, "dev-a"), lab_device(&pki, "dev-b"));

    let mut watcher = lab_connect(&broker, &ca, &dev_b, "dev-b");
    assert_eq!(
        watcher.subscribe(1, "fleet/#", 1),
        vec![ReasonCode::GRANTED_QOS_1]
    );
    let mut device = lab_connect(&broker, &ca, &dev_a, "dev-a");
    assert_eq!(
        device.publish("fleet/dev-a", b"before", 1, false),
        ReasonCode::SUCCESS
    );
    assert_eq!(watcher.expect_app_publish().payload.as_ref(), b"before");

    let out = certs_cli(&pki, &["revoke", "dev-a"]);
    assert!(out.contains("revoked device dev-a serial "), "{out}");
    broker.sighup();
    broker.assert_log("Reloaded TLS certificates of listener \"tls\".", WAIT);

    // The held connection is closed (5.0: DISCONNECT 0x87) within WAIT,
    // while the device keeps publishing.
    let deadline = std::time::Instant::now() + WAIT;
    let mut closed = None;
    while closed.is_none() && std::time::Instant::now() < deadline {
        if device
            .try_send(&harness::publish("fleet/dev-a", b"after").v5(true).build())
            .is_err()
        {
            break;
        }
        closed = device.wait_closed(std::time::Duration::from_millis(100));
    }
    let closed = closed
        .or_else(|| device.wait_closed(WAIT))
        .unwrap_or_else(|| panic!("revoked dev-a still connected; logs:\n{}", broker.logs()));
    assert_eq!(
        closed.disconnect_reason(),
        Some(ReasonCode::NOT_AUTHORIZED),
        "{:?}",
        closed.packets
    );
    broker.assert_log(
        "Client dev-a disconnected: certificate revoked (serial ",
        WAIT,
    );
    let metrics = harness::web::get(broker.http_addr(), "/metrics", None);
    assert!(
        metrics.body.contains("fleetmq_revoked_disconnects_total 1"),
        "{}",
        metrics.body
    );

    // It cannot come back; dev-b was never disturbed.
    assert_refused_lab(&broker, &ca, &dev_a);
    tls::assert_handshake_failed(&broker, "tls", "revoked");
    // What dev-a sent before it was cut off, then silence.
    while watcher.recv_packet(QUIET).is_some() {}
    assert_eq!(
        watcher.publish("fleet/dev-b", b"still here", 1, false),
        ReasonCode::SUCCESS
    );
    assert_eq!(watcher.expect_app_publish().payload.as_ref(), b"still here");
    assert_eq!(
        broker.count_log_lines(&["certificate revoked (serial "]),
        1,
        "{}",
        broker.logs()
    );
}

/// Asserts that `device` of the lab PKI gets no MQTT session.
fn assert_refused_lab(broker: &Broker, ca: &std::path::Path, device: &Issued) {
    let config = tls::client_config(ca, Some(device), ANY_VERSION);
    let Ok(transport) = tls::connect(broker.addr_of("tls"), config) else {
        return;
    };
    let mut client = RawClient::over(transport);
    client.send_connect(&ConnectBuilder::v5("dev-a"));
    let got = client.recv_packet(WAIT);
    assert!(
        got.is_none() && client.is_closed(),
        "revoked dev-a was let in: {got:?}"
    );
}
