//! End-to-end tests of the session ticket keys kept in
//! `<data_dir>/tls-ticket-keys`: a device that got a ticket before the
//! broker restarted resumes its TLS session afterwards (TLS 1.3 and 1.2),
//! still as the identity of its certificate; a device revoked while the
//! broker was down does not.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use crate::harness;
use crate::harness::pki::Pki;
use crate::harness::tls::{self, DEBUG_LOG, TLS12_ONLY, TLS13_ONLY};
use crate::harness::web::{eventually, get};
use crate::harness::{skip_on_mosquitto, Broker, ConnectBuilder, ListenerSpec, RawClient, WAIT};
use rustls::{ClientConfig, SupportedProtocolVersion};

const SKIP: &str = "ticket keys are fleetmq's";

fn start(pki: &Pki) -> Broker {
    let toml = pki.listener_toml(&pki.server_ecdsa, "required");
    let broker = Broker::start_with_listeners(&[ListenerSpec::tls("tls", &toml)], DEBUG_LOG);
    broker.assert_log("running.", WAIT);
    broker
}

/// An MQTT session over TLS as `client_id`: returns the client (still
/// connected) and whether rustls resumed; None when refused.
fn try_connect(
    broker: &Broker,
    config: &Arc<ClientConfig>,
    client_id: &str,
) -> Option<(RawClient, bool)> {
    let transport = tls::connect(broker.addr_of("tls"), Arc::clone(config)).ok()?;
    let mut client = RawClient::over(transport);
    client.send_connect(&ConnectBuilder::v311(client_id));
    client.recv_packet(WAIT)?;
    let resumed = client.transport().resumed();
    Some((client, resumed))
}

fn restart(broker: &mut Broker) {
    broker.sigterm();
    broker.restart();
    broker.assert_log("running.", WAIT);
}

fn resumes_after_a_restart(versions: &[&'static SupportedProtocolVersion]) {
    let pki = Pki::new();
    let mut broker = start(&pki);
    let key_file = broker.dir().join("fleetmq-data").join("tls-ticket-keys");
    let config = tls::client_config(&pki.ca.cert, Some(&pki.dev_a), versions);
    let (mut first, resumed) = try_connect(&broker, &config, "dev-a-before").unwrap();
    assert!(!resumed);
    // Closing after CONNACK makes the client read the TLS 1.3 tickets.
    first.send(&harness::disconnect(None));
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    restart(&mut broker);
    let (_held, resumed) = try_connect(&broker, &config, "dev-a-after").unwrap();
    assert!(resumed, "rustls did not resume after the restart");
    let setup = tls::setup_line(&broker, "dev-a-after", WAIT);
    assert!(setup.resumed, "broker logged a full handshake: {setup:?}");
    assert_eq!(setup.auth, "mutual");
    // The resumed session still carries the device's certificate identity.
    let http = broker.http_addr();
    let detail = eventually(WAIT, "the device in the API", || {
        let detail = get(http, "/api/clients/dev-a-after", None).json();
        (detail["connected"] == true).then_some(detail)
    });
    assert_eq!(detail["tls"]["resumed"], true, "{detail:#}");
    assert_eq!(detail["tls"]["client_cert"]["cn"], "dev-a", "{detail:#}");
    assert_eq!(detail["identity"], "dev-a", "{detail:#}");
    assert!(!broker
        .logs()
        .contains(&std::fs::read_to_string(&key_file).unwrap()));
}

#[test]
fn tls13_resumes_after_a_restart() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    resumes_after_a_restart(TLS13_ONLY);
}

#[test]
fn tls12_resumes_after_a_restart() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    resumes_after_a_restart(TLS12_ONLY);
}

#[test]
fn a_device_revoked_during_a_restart_does_not_resume() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let mut broker = start(&pki);
    let dev_a = tls::client_config(&pki.ca.cert, Some(&pki.dev_a), TLS13_ONLY);
    let (mut first, _) = try_connect(&broker, &dev_a, "dev-a-before").unwrap();
    first.send(&harness::disconnect(None));

    broker.sigterm();
    pki.write_crl(&pki.crl, 3, &[&pki.dev_revoked, &pki.dev_a]);
    broker.restart();
    broker.assert_log("running.", WAIT);
    assert!(
        try_connect(&broker, &dev_a, "dev-a-after").is_none(),
        "a revoked device resumed"
    );
    tls::assert_handshake_failed(&broker, "tls", "revoked");
    let dev_b = tls::client_config(&pki.ca.cert, Some(&pki.dev_b), TLS13_ONLY);
    assert!(try_connect(&broker, &dev_b, "dev-b").is_some());
}

#[test]
fn a_damaged_key_file_means_full_handshakes_not_a_failed_start() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let mut broker = start(&pki);
    let config = tls::client_config(&pki.ca.cert, Some(&pki.dev_a), TLS13_ONLY);
    let (mut first, _) = try_connect(&broker, &config, "dev-a-before").unwrap();
    first.send(&harness::disconnect(None));

    broker.sigterm();
    let key_file = broker.dir().join("fleetmq-data").join("tls-ticket-keys");
    std::fs::write(&key_file, b"not keys\n").unwrap();
    broker.restart();
    broker.assert_log("are damaged; starting with fresh keys", WAIT);
    let (_client, resumed) = try_connect(&broker, &config, "dev-a-after").unwrap();
    assert!(!resumed, "resumed with keys that were thrown away");
}
