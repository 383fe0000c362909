//! End-to-end tests of who a TLS listener lets in: the client-certificate
//! policies `required`, `optional` and `none`, CRLs, and the lowest TLS
//! version. Each refusal must be logged with the reason a lab engineer
//! greps for (`reason="unknown_ca"` and so on).
//!
//! Clients are rustls (`harness/tls.rs`) and `openssl s_client`; every
//! certificate comes from a PKI made for the test (`harness/pki/`).

use std::io::Write;
use std::sync::Arc;

use crate::harness;
use crate::harness::pki::{Issued, Pki};
use crate::harness::tls::{self, SetupLine, ANY_VERSION, DEBUG_LOG, TLS12_ONLY, TLS13_ONLY};
use crate::harness::tools::{self, S_CLIENT_CONNECTED};
use crate::harness::{
    skip_on_mosquitto, Broker, ConnectBuilder, ListenerSpec, RawClient, Transport, WAIT,
};
use rustls::{ClientConfig, SupportedProtocolVersion};

const SKIP: &str = "TLS listeners are configured the fleetmq way";

/// A broker with a TLS listener "tls" serving the ECDSA server certificate
/// under client-certificate `policy`, with `extra` `[listener.tls]` lines.
fn start(pki: &Pki, policy: &str, extra: &str) -> Broker {
    let toml = pki.listener_toml(&pki.server_ecdsa, policy) + extra;
    Broker::start_with_listeners(&[ListenerSpec::tls("tls", &toml)], DEBUG_LOG)
}

fn config(pki: &Pki, identity: Option<&Issued>) -> Arc<ClientConfig> {
    tls::client_config(&pki.ca.cert, identity, ANY_VERSION)
}

/// Connects over TLS and completes CONNECT/CONNACK as `client_id`;
/// returns the client and the broker's setup line for it.
fn connect(broker: &Broker, config: Arc<ClientConfig>, client_id: &str) -> (RawClient, SetupLine) {
    let transport = tls::connect(broker.addr_of("tls"), config)
        .unwrap_or_else(|e| panic!("{client_id}: TLS handshake failed: {e}"));
    let mut client = RawClient::over(transport);
    client.send_connect(&ConnectBuilder::v311(client_id));
    let connack = client.expect_connack();
    assert_eq!(connack.reason, harness::ReasonCode::SUCCESS, "CONNACK");
    let setup = tls::setup_line(broker, client_id, WAIT);
    (client, setup)
}

/// Asserts that `client_id` never gets a CONNACK: the handshake fails, or
/// (TLS 1.3, where the client finishes first) the broker closes the
/// connection instead of answering CONNECT.
fn assert_refused(broker: &Broker, config: Arc<ClientConfig>, client_id: &str) {
    let Ok(transport) = tls::connect(broker.addr_of("tls"), config) else {
        return;
    };
    let mut client = RawClient::over(transport);
    client.send_connect(&ConnectBuilder::v311(client_id));
    let got = client.recv_packet(WAIT);
    assert!(
        got.is_none() && client.is_closed(),
        "{client_id} was let in (got {got:?}); logs:\n{}",
        broker.logs()
    );
    assert!(!broker.logs().contains(&format!("Client {client_id} setup")));
}

/// Subscribes and publishes to itself: the session works end to end.
fn round_trip(client: &mut RawClient, topic: &str) {
    assert_eq!(
        client.subscribe(1, topic, 1),
        vec![harness::ReasonCode::GRANTED_QOS_1]
    );
    assert_eq!(
        client.publish(topic, b"over tls", 1, false),
        harness::ReasonCode::SUCCESS
    );
    let publish = client.expect_app_publish();
    assert_eq!(publish.topic.as_ref(), topic);
    assert_eq!(publish.payload.as_ref(), b"over tls");
}

#[test]
fn required_admits_a_device_certificate_as_mutual() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let broker = start(&pki, "required", "");
    let (mut client, setup) = connect(&broker, config(&pki, Some(&pki.dev_a)), "dev-a");
    assert_eq!(setup.auth, "mutual");
    assert!(!setup.resumed);
    round_trip(&mut client, "fleet/dev-a/temp");
}

#[test]
fn required_refuses_a_client_without_certificate() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let broker = start(&pki, "required", "");
    assert_refused(&broker, config(&pki, None), "anonymous");
    tls::assert_handshake_failed(&broker, "tls", "no_certificate");
}

#[test]
fn required_refuses_a_certificate_of_another_ca() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let broker = start(&pki, "required", "");
    assert_refused(&broker, config(&pki, Some(&pki.rogue)), "rogue");
    tls::assert_handshake_failed(&broker, "tls", "unknown_ca");
}

#[test]
fn required_refuses_an_expired_certificate() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let broker = start(&pki, "required", "");
    assert_refused(&broker, config(&pki, Some(&pki.dev_expired)), "dev-expired");
    tls::assert_handshake_failed(&broker, "tls", "expired");
}

#[test]
fn required_refuses_a_revoked_certificate() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let broker = start(&pki, "required", "");
    assert_refused(&broker, config(&pki, Some(&pki.dev_revoked)), "dev-revoked");
    tls::assert_handshake_failed(&broker, "tls", "revoked");
    // The CRL revokes one device, not the CA.
    connect(&broker, config(&pki, Some(&pki.dev_b)), "dev-b");
}

/// A device with a revoked certificate that goes on sending (TLS 1.3: its
/// side of the handshake is done before the broker checks the certificate,
/// so it writes CONNECT and more) reads the broker's alert, not a reset
/// (lingering close, decision 0087).
#[test]
fn a_revoked_device_still_sending_reads_the_alert_not_a_reset() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let broker = start(&pki, "required", "");
    let client_config = tls::client_config(&pki.ca.cert, Some(&pki.dev_revoked), TLS13_ONLY);
    let Transport::Tls(mut stream) =
        tls::connect(broker.addr_of("tls"), client_config).expect("client side of TLS 1.3")
    else {
        unreachable!("a TLS transport")
    };
    stream
        .sock
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    stream
        .write_all(&ConnectBuilder::v311("dev-revoked").build())
        .unwrap();
    let ping = [0xC0u8, 0x00];
    let ending = harness::linger::keep_sending_then_read(
        &mut *stream,
        &ping,
        std::time::Duration::from_millis(2),
        std::time::Duration::from_millis(400),
        std::time::Duration::from_secs(5),
    );
    let alert = ending
        .read_error
        .as_ref()
        .and_then(|e| e.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned();
    assert!(
        ending.write_error.is_none()
            && alert
                == Some(rustls::Error::AlertReceived(
                    rustls::AlertDescription::CertificateRevoked
                )),
        "the device saw a reset, not the alert: {} writes, then write error {:?}, read error \
         {:?}",
        ending.writes,
        ending.write_error,
        ending.read_error
    );
    tls::assert_handshake_failed(&broker, "tls", "revoked");
}

#[test]
fn required_refuses_over_tls12_too() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    // In TLS 1.2 the refusal comes inside the handshake.
    let pki = Pki::new();
    let broker = start(&pki, "required", "");
    let rogue = tls::client_config(&pki.ca.cert, Some(&pki.rogue), TLS12_ONLY);
    assert!(
        tls::connect(broker.addr_of("tls"), rogue).is_err(),
        "a TLS 1.2 handshake with a rogue certificate must fail"
    );
    tls::assert_handshake_failed(&broker, "tls", "unknown_ca");
    let dev_a = tls::client_config(&pki.ca.cert, Some(&pki.dev_a), TLS12_ONLY);
    let (_, setup) = connect(&broker, dev_a, "dev-a");
    assert_eq!(setup.version, "TLSv1.2");
    assert_eq!(setup.auth, "mutual");
}

#[test]
fn optional_admits_a_client_without_certificate_as_one_way() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let broker = start(&pki, "optional", "");
    let (mut client, setup) = connect(&broker, config(&pki, None), "no-cert");
    assert_eq!(setup.auth, "one_way");
    round_trip(&mut client, "fleet/no-cert/temp");
}

#[test]
fn optional_admits_a_valid_certificate_as_mutual() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let broker = start(&pki, "optional", "");
    let (_, setup) = connect(&broker, config(&pki, Some(&pki.dev_a)), "dev-a");
    assert_eq!(setup.auth, "mutual");
}

#[test]
fn optional_refuses_a_certificate_of_another_ca() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    // Optional means "may omit", not "may present anything".
    let pki = Pki::new();
    let broker = start(&pki, "optional", "");
    assert_refused(&broker, config(&pki, Some(&pki.rogue)), "rogue");
    tls::assert_handshake_failed(&broker, "tls", "unknown_ca");
}

#[test]
fn optional_refuses_an_expired_certificate() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let broker = start(&pki, "optional", "");
    assert_refused(&broker, config(&pki, Some(&pki.dev_expired)), "dev-expired");
    tls::assert_handshake_failed(&broker, "tls", "expired");
}

#[test]
fn none_never_asks_for_a_certificate() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let broker = start(&pki, "none", "");
    // A client holding a certificate is not asked for it...
    let (mut client, setup) = connect(&broker, config(&pki, Some(&pki.dev_a)), "dev-a");
    assert_eq!(setup.auth, "one_way");
    round_trip(&mut client, "fleet/dev-a/temp");
    // ...and even a rogue one gets in, since nothing is checked.
    let (_, setup) = connect(&broker, config(&pki, Some(&pki.rogue)), "rogue");
    assert_eq!(setup.auth, "one_way");
    // OpenSSL sees no CertificateRequest at all.
    let s_client = tools::s_client(broker.addr_of("tls"), &pki.ca.cert, &[]);
    s_client.assert_output(S_CLIENT_CONNECTED, WAIT);
    let output = s_client.finish(WAIT).1;
    assert!(
        output.contains("No client certificate CA names sent")
            && !output.contains("Acceptable client certificate CA names"),
        "s_client saw a certificate request:\n{output}"
    );
}

#[test]
fn required_asks_for_a_certificate_of_the_client_ca() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    // The counterpart of the s_client check above: the same probe does see
    // a CertificateRequest naming the test CA when certificates are required.
    let pki = Pki::new();
    let broker = start(&pki, "required", "");
    let s_client = tools::s_client(broker.addr_of("tls"), &pki.ca.cert, &[]);
    s_client.assert_output(S_CLIENT_CONNECTED, WAIT);
    let output = s_client.finish(WAIT).1;
    assert!(
        output.contains("Acceptable client certificate CA names")
            && output.contains("fleetmq test CA"),
        "s_client saw no request for the test CA:\n{output}"
    );
}

/// A listener with `min_version = "1.3"`.
fn start_tls13_only(pki: &Pki) -> Broker {
    start(pki, "required", "min_version = \"1.3\"\n")
}

#[test]
fn min_version_13_refuses_openssl_tls12() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let broker = start_tls13_only(&pki);
    let cert = pki.dev_a.cert.display().to_string();
    let key = pki.dev_a.key.display().to_string();
    let s_client = tools::s_client(
        broker.addr_of("tls"),
        &pki.ca.cert,
        &["-tls1_2", "-cert", &cert, "-key", &key],
    );
    let (_, output) = s_client.finish(WAIT);
    assert!(
        !output.contains("Cipher is ECDHE"),
        "a TLS 1.2 session was established:\n{output}"
    );
    tls::assert_handshake_failed(&broker, "tls", "protocol_version");
}

#[test]
fn min_version_13_refuses_rustls_tls12_and_admits_tls13() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let broker = start_tls13_only(&pki);
    let only = |versions: &[&'static SupportedProtocolVersion]| {
        tls::client_config(&pki.ca.cert, Some(&pki.dev_a), versions)
    };
    assert!(tls::connect(broker.addr_of("tls"), only(TLS12_ONLY)).is_err());
    tls::assert_handshake_failed(&broker, "tls", "protocol_version");
    let (_, setup) = connect(&broker, only(TLS13_ONLY), "dev-a");
    assert_eq!(setup.version, "TLSv1.3");
}
