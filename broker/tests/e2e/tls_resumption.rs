//! End-to-end tests of TLS session resumption: a device that reconnects
//! with the session of its last connection skips the full handshake (on an
//! ESP32, the expensive part of connecting). TLS 1.3 tickets, TLS 1.2
//! tickets and TLS 1.2 session ids, from rustls and from OpenSSL.
//!
//! The broker's debug setup line says `full` or `resumed` and how long the
//! handshake took; the tests print both times (`--no-capture` shows them)
//! and only check that resuming is not absurdly slower than a full
//! handshake, since timings on a shared test machine are noise.

use std::sync::Arc;

use crate::harness;
use crate::harness::pki::Pki;
use crate::harness::tls::{self, SetupLine, DEBUG_LOG, TLS12_ONLY, TLS13_ONLY};
use crate::harness::tools::{self, S_CLIENT_CONNECTED};
use crate::harness::{skip_on_mosquitto, Broker, ConnectBuilder, ListenerSpec, RawClient, WAIT};
use rustls::{ClientConfig, SupportedProtocolVersion};

const SKIP: &str = "TLS listeners are configured the fleetmq way";

fn start(pki: &Pki, extra: &str) -> Broker {
    let toml = pki.listener_toml(&pki.server_ecdsa, "required") + extra;
    Broker::start_with_listeners(&[ListenerSpec::tls("tls", &toml)], DEBUG_LOG)
}

/// One MQTT connection over TLS as `client_id`, closed cleanly after
/// CONNACK (which also makes the client read the TLS 1.3 tickets sent
/// after the handshake). Returns whether rustls resumed, and the broker's
/// setup line.
fn connect_once(broker: &Broker, config: &Arc<ClientConfig>, client_id: &str) -> (bool, SetupLine) {
    let transport = tls::connect(broker.addr_of("tls"), Arc::clone(config))
        .unwrap_or_else(|e| panic!("{client_id}: handshake failed: {e}"));
    let mut client = RawClient::over(transport);
    client.send_connect(&ConnectBuilder::v311(client_id));
    client.expect_connack();
    let resumed = client.transport().resumed();
    client.send(&harness::disconnect(None));
    let setup = tls::setup_line(broker, client_id, WAIT);
    (resumed, setup)
}

/// Two connections sharing one client configuration (and so its session
/// cache): the first is a full handshake, the second resumes.
fn second_connection_resumes(versions: &[&'static SupportedProtocolVersion], extra: &str) {
    let pki = Pki::new();
    let broker = start(&pki, extra);
    let config = tls::client_config(&pki.ca.cert, Some(&pki.dev_a), versions);
    let (first_resumed, full) = connect_once(&broker, &config, "dev-a-first");
    let (second_resumed, resumed) = connect_once(&broker, &config, "dev-a-second");
    report(&full, &resumed);
    assert!(
        !first_resumed && !full.resumed,
        "first handshake resumed: {full:?}"
    );
    assert!(
        second_resumed,
        "rustls did not resume the second connection"
    );
    assert!(
        resumed.resumed,
        "broker logged a full handshake: {resumed:?}"
    );
    assert_eq!(resumed.version, full.version);
    // The resumed session keeps the client certificate it was made with.
    assert_eq!(resumed.auth, "mutual");
    assert_not_absurd(&full, &resumed);
}

fn report(full: &SetupLine, resumed: &SetupLine) {
    eprintln!(
        "{}: full handshake {:.3} ms, resumed {:.3} ms ({}, {})",
        full.version, full.tls_ms, resumed.tls_ms, full.cipher_suite, full.kx_group
    );
}

/// Resuming skips the certificate checks and signatures; five times slower
/// than the full handshake would mean it is not happening at all.
fn assert_not_absurd(full: &SetupLine, resumed: &SetupLine) {
    assert!(
        resumed.tls_ms <= full.tls_ms * 5.0,
        "resumed handshake {:.3} ms vs full {:.3} ms",
        resumed.tls_ms,
        full.tls_ms
    );
}

#[test]
fn tls13_resumes_with_a_ticket() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    second_connection_resumes(TLS13_ONLY, "");
}

#[test]
fn tls12_resumes_with_a_ticket() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    second_connection_resumes(TLS12_ONLY, "");
}

#[test]
fn tls12_resumes_with_a_session_id_when_tickets_are_off() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    second_connection_resumes(TLS12_ONLY, "session_tickets = false\n");
}

#[test]
fn tls13_resumes_from_the_session_cache_when_tickets_are_off() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    // Without a ticketer, TLS 1.3 can still resume from the server's
    // session cache (stateful tickets), as TLS 1.2 does with session ids.
    second_connection_resumes(TLS13_ONLY, "session_tickets = false\n");
}

#[test]
fn tls12_resumes_without_a_certificate_too() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    // One-way sessions resume as one-way sessions.
    let pki = Pki::new();
    let toml = pki.listener_toml(&pki.server_ecdsa, "optional");
    let broker = Broker::start_with_listeners(&[ListenerSpec::tls("tls", &toml)], DEBUG_LOG);
    let config = tls::client_config(&pki.ca.cert, None, TLS12_ONLY);
    let (_, full) = connect_once(&broker, &config, "anon-first");
    let (resumed_by_client, resumed) = connect_once(&broker, &config, "anon-second");
    assert!(
        resumed_by_client && resumed.resumed,
        "not resumed: {resumed:?}"
    );
    assert_eq!(full.auth, "one_way");
    assert_eq!(resumed.auth, "one_way");
}

/// `openssl s_client` saving its session to a file, then offering it
/// again, each time with an MQTT CONNECT through the connection.
fn openssl_resumes(version_flag: &str, cipher: &[&str]) {
    let pki = Pki::new();
    let toml = pki.listener_toml(&pki.server_rsa, "none");
    let broker = Broker::start_with_listeners(&[ListenerSpec::tls("tls", &toml)], DEBUG_LOG);
    let session = pki.dir().join("s_client.session");
    let session = session.display().to_string();
    let run = |client_id: &str, session_flag: &str| {
        let mut args = vec![version_flag, session_flag, session.as_str()];
        args.extend_from_slice(cipher);
        let mut s_client = tools::s_client(broker.addr_of("tls"), &pki.ca.cert, &args);
        s_client.assert_output(S_CLIENT_CONNECTED, WAIT);
        s_client.write_stdin(&ConnectBuilder::v311(client_id).build());
        // CONNACK: the TLS 1.3 tickets came before it.
        s_client.assert_output("\u{20}\u{02}\u{00}\u{00}", WAIT);
        let output = s_client.finish(WAIT).1;
        (output, tls::setup_line(&broker, client_id, WAIT))
    };
    let (first_output, full) = run("openssl-first", "-sess_out");
    let (second_output, resumed) = run("openssl-second", "-sess_in");
    report(&full, &resumed);
    assert!(first_output.contains("New, TLSv1."), "{first_output}");
    assert!(
        second_output.contains("Reused, TLSv1."),
        "s_client did not reuse its session:\n{second_output}"
    );
    assert!(!full.resumed);
    assert!(
        resumed.resumed,
        "broker logged a full handshake: {resumed:?}"
    );
    assert_not_absurd(&full, &resumed);
}

#[test]
fn openssl_tls12_esp32_suite_reuses_its_session() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    openssl_resumes("-tls1_2", &["-cipher", "ECDHE-RSA-AES128-GCM-SHA256"]);
}

#[test]
fn openssl_tls13_reuses_its_session() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    openssl_resumes("-tls1_3", &[]);
}
