//! End-to-end tests with TLS stacks other than the broker's own: the
//! Mosquitto command-line clients and `openssl s_client` (OpenSSL), and
//! rumqttc over rustls, one-way and mutual. `s_client` offers exactly the
//! cipher suites an ESP32 (mbedTLS) asks for by default, over TLS 1.2.

use std::time::Duration;

use crate::harness::pki::{Issued, Pki};
use crate::harness::tls::{self, ANY_VERSION, DEBUG_LOG};
use crate::harness::tools::{self, Tool, S_CLIENT_CONNECTED};
use crate::harness::{skip_on_mosquitto, Broker, ConnectBuilder, ListenerSpec, WAIT};
use rumqttc::{AsyncClient, Event, MqttOptions, QoS, TlsConfiguration, Transport};
use tokio::time::timeout;

const SKIP: &str = "TLS listeners are configured the fleetmq way";

/// How long a command-line client may take for its whole job.
const TOOL_WAIT: Duration = Duration::from_secs(10);

fn start(pki: &Pki, server: &Issued, policy: &str) -> Broker {
    let toml = pki.listener_toml(server, policy);
    Broker::start_with_listeners(&[ListenerSpec::tls("tls", &toml)], DEBUG_LOG)
}

/// `mosquitto_sub`/`mosquitto_pub` arguments for the TLS listener.
fn mosquitto_args(
    broker: &Broker,
    pki: &Pki,
    identity: Option<&Issued>,
    client_id: &str,
    rest: &[&str],
) -> Vec<String> {
    let port = broker.addr_of("tls").port().to_string();
    let mut args: Vec<String> = ["-h", "127.0.0.1", "-p", &port, "-i", client_id]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(tools::mosquitto_tls_args(&pki.ca.cert, identity));
    args.extend(rest.iter().map(|s| s.to_string()));
    args
}

fn spawn(program: &str, args: &[String]) -> Tool {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Tool::spawn_line_buffered(program, &args)
}

/// mosquitto_sub waits for one message, mosquitto_pub sends it: both over
/// TLS with the given identities. Returns the broker's view of the two.
fn mosquitto_round_trip(
    broker: &Broker,
    pki: &Pki,
    sub_identity: Option<&Issued>,
    pub_identity: Option<&Issued>,
    topic: &str,
) -> (tls::SetupLine, tls::SetupLine) {
    let sub = spawn(
        "mosquitto_sub",
        &mosquitto_args(
            broker,
            pki,
            sub_identity,
            "mosq-sub",
            &["-d", "-q", "1", "-C", "1", "-W", "10", "-t", topic],
        ),
    );
    sub.assert_output("received SUBACK", TOOL_WAIT);
    let publisher = spawn(
        "mosquitto_pub",
        &mosquitto_args(
            broker,
            pki,
            pub_identity,
            "mosq-pub",
            &["-q", "1", "-t", topic, "-m", "hello from openssl"],
        ),
    );
    publisher.finish_ok(TOOL_WAIT);
    let output = sub.finish_ok(TOOL_WAIT);
    assert!(
        output.contains("hello from openssl"),
        "mosquitto_sub did not print the message:\n{output}"
    );
    (
        tls::setup_line(broker, "mosq-sub", WAIT),
        tls::setup_line(broker, "mosq-pub", WAIT),
    )
}

#[test]
fn mosquitto_clients_one_way() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let broker = start(&pki, &pki.server_ecdsa, "none");
    let (sub, publisher) = mosquitto_round_trip(&broker, &pki, None, None, "fleet/one-way");
    assert_eq!(sub.auth, "one_way");
    assert_eq!(publisher.auth, "one_way");
}

#[test]
fn mosquitto_clients_mutual() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let broker = start(&pki, &pki.server_ecdsa, "required");
    let (sub, publisher) = mosquitto_round_trip(
        &broker,
        &pki,
        Some(&pki.dev_a),
        Some(&pki.dev_b),
        "fleet/mutual",
    );
    assert_eq!(sub.auth, "mutual");
    assert_eq!(publisher.auth, "mutual");
    // The same client without --cert/--key is turned away.
    let refused = spawn(
        "mosquitto_pub",
        &mosquitto_args(&broker, &pki, None, "mosq-anon", &["-t", "x", "-m", "x"]),
    );
    let (status, output) = refused.finish(TOOL_WAIT);
    assert!(
        status.is_some_and(|s| !s.success()),
        "mosquitto_pub without a certificate succeeded:\n{output}"
    );
    tls::assert_handshake_failed(&broker, "tls", "no_certificate");
}

/// `openssl s_client -tls1_2 -cipher SUITE` against `server`, then an MQTT
/// CONNECT through it: the broker must answer with CONNACK on that suite.
fn s_client_connects_with_suite(
    server: fn(&Pki) -> &Issued,
    openssl_suite: &str,
    iana_suite: &str,
) {
    let pki = Pki::new();
    let broker = start(&pki, server(&pki), "none");
    let mut s_client = tools::s_client(
        broker.addr_of("tls"),
        &pki.ca.cert,
        &["-tls1_2", "-cipher", openssl_suite],
    );
    s_client.assert_output(S_CLIENT_CONNECTED, WAIT);
    s_client.write_stdin(&ConnectBuilder::v311("esp32-like").build());
    // CONNACK, session not present, accepted.
    s_client.assert_output("\u{20}\u{02}\u{00}\u{00}", WAIT);
    let output = s_client.finish(WAIT).1;
    assert!(
        output.contains(&format!("Cipher is {openssl_suite}")),
        "s_client negotiated another suite:\n{output}"
    );
    assert!(
        output.contains("Verify return code: 0 (ok)"),
        "s_client did not verify the server:\n{output}"
    );
    let setup = tls::setup_line(&broker, "esp32-like", WAIT);
    assert_eq!(setup.version, "TLSv1.2");
    assert_eq!(setup.cipher_suite, iana_suite);
    assert_eq!(setup.auth, "one_way");
}

#[test]
fn openssl_tls12_ecdhe_rsa_aes128_gcm_against_rsa_certificate() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    s_client_connects_with_suite(
        |pki| &pki.server_rsa,
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    );
}

#[test]
fn openssl_tls12_ecdhe_ecdsa_aes128_gcm_against_ecdsa_certificate() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    s_client_connects_with_suite(
        |pki| &pki.server_ecdsa,
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    );
}

#[test]
fn openssl_ecdsa_only_suite_against_rsa_certificate_is_no_shared_cipher() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let broker = start(&pki, &pki.server_rsa, "none");
    let s_client = tools::s_client(
        broker.addr_of("tls"),
        &pki.ca.cert,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
    );
    let output = s_client.finish(WAIT).1;
    assert!(
        output.contains("Cipher is (NONE)") || !output.contains("Cipher is ECDHE"),
        "a session was established:\n{output}"
    );
    tls::assert_handshake_failed(&broker, "tls", "no_shared_cipher");
}

#[tokio::test]
async fn rumqttc_rustls_mutual_round_trip() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let pki = Pki::new();
    let broker = start(&pki, &pki.server_ecdsa, "required");
    let mut options = MqttOptions::new("rumqttc-dev-a", "127.0.0.1", broker.addr_of("tls").port());
    options.set_keep_alive(Duration::from_secs(30));
    let config = tls::client_config(&pki.ca.cert, Some(&pki.dev_a), ANY_VERSION);
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    let (client, mut event_loop) = AsyncClient::new(options, 16);
    let (sender, mut incoming) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        // Stop at the first error: rumqttc would otherwise reconnect.
        while let Ok(event) = event_loop.poll().await {
            if let Event::Incoming(packet) = event {
                if sender.send(packet).is_err() {
                    return;
                }
            }
        }
    });
    let topic = "fleet/dev-a/rumqttc";
    client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    client
        .publish(topic, QoS::AtLeastOnce, false, b"over rustls".to_vec())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let publish = loop {
        match timeout(deadline - tokio::time::Instant::now(), incoming.recv()).await {
            Ok(Some(rumqttc::Packet::Publish(publish))) => break publish,
            Ok(Some(_)) => {}
            other => panic!(
                "no PUBLISH back over TLS: {other:?}; logs:\n{}",
                broker.logs()
            ),
        }
    };
    assert_eq!(publish.payload.as_ref(), b"over rustls");
    let setup = tls::setup_line(&broker, "rumqttc-dev-a", WAIT);
    assert_eq!(setup.auth, "mutual");
    driver.abort();
}
