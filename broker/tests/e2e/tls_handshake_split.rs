//! Where a TLS handshake's time goes (decision 0142): a client that waits
//! on purpose before sending its reply to the broker's flight (standing in
//! for an ESP32 signing its CertificateVerify) must show that wait as the
//! device's part in the dashboard's API, not as network or broker time.
//!
//! The network part is the kernel's round trip for the socket; on loopback
//! it is tiny, and no test here can delay the kernel's packets (netem is
//! not in this machine's kernel), so only its presence and size are
//! checked.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection};
use serde_json::Value;

use crate::harness::pki::openssl_pki::OpensslPki;
use crate::harness::web::{eventually, get};
use crate::harness::*;

/// The device's stand-in for its signing time.
const DEVICE_DELAY: Duration = Duration::from_millis(400);
/// How far the reported device part may exceed the injected delay plus
/// what the same client takes without the delay (scheduling on a busy
/// 2-core CI machine).
const TOLERANCE_MS: f64 = 150.0;

/// TLS handshake with a pause of `delay` between receiving the broker's
/// flight and sending the reply, then CONNECT and CONNACK.
fn connect_with_pause(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    client_id: &str,
    delay: Duration,
) -> rustls::StreamOwned<ClientConnection, TcpStream> {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(config, name).unwrap();
    while conn.wants_write() {
        conn.write_tls(&mut tcp).unwrap();
    }
    // Read the broker's flight until the client has its reply ready.
    while !conn.wants_write() {
        let read = conn.read_tls(&mut tcp).unwrap();
        assert!(read > 0, "the broker closed during the handshake");
        conn.process_new_packets().unwrap();
    }
    std::thread::sleep(delay);
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    stream
        .write_all(&ConnectBuilder::v311(client_id).build())
        .unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0], "CONNACK");
    stream
}

fn timings(http: SocketAddr, client_id: &str) -> Value {
    eventually(Duration::from_secs(5), client_id, || {
        let response = get(http, "/api/clients", None);
        let list = response.json();
        list.as_array()?
            .iter()
            .find(|c| c["client_id"] == client_id)
            .map(|c| c["timings_ms"].clone())
    })
}

fn ms(timings: &Value, part: &str) -> f64 {
    timings[part]
        .as_f64()
        .unwrap_or_else(|| panic!("no {part} in {timings:#}"))
}

fn check_split(versions: &[&'static rustls::SupportedProtocolVersion], label: &str) {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = OpensslPki::generate(pki_dir.path());
    let device = pki.client("device-split", "sensors", 365);
    let broker = Broker::start_with(&format!(
        "[[listener]]\nname = \"mtls\"\nbind = \"127.0.0.1:0\"\n[listener.tls]\ncert = \"{}\"\n\
         key = \"{}\"\nclient_ca = \"{}\"\nclient_certs = \"required\"\nsession_tickets = false\n",
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.ca_cert.display()
    ));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&pki.ca_cert).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = ClientConfig::builder_with_protocol_versions(versions)
        .with_root_certificates(roots)
        .with_client_auth_cert(
            CertificateDer::pem_file_iter(&device.cert)
                .unwrap()
                .map(|c| c.unwrap())
                .collect(),
            PrivateKeyDer::from_pem_file(&device.key).unwrap(),
        )
        .unwrap();
    config.resumption = rustls::client::Resumption::disabled();
    let config = Arc::new(config);
    let addr = broker.listener_addr("mtls");
    let quick_id = format!("quick-{label}");
    let paused_id = format!("paused-{label}");
    let _quick = connect_with_pause(addr, Arc::clone(&config), &quick_id, Duration::ZERO);
    let _paused = connect_with_pause(addr, Arc::clone(&config), &paused_id, DEVICE_DELAY);
    let quick = timings(broker.http_addr(), &quick_id);
    let paused = timings(broker.http_addr(), &paused_id);
    eprintln!("{label}: quick {quick}\n{label}: paused {paused}");
    let injected = DEVICE_DELAY.as_secs_f64() * 1000.0;
    let device = ms(&paused, "device");
    let baseline = ms(&quick, "device");
    assert!(
        device >= injected && device <= injected + baseline + TOLERANCE_MS,
        "{label}: device {device} ms for {injected} ms injected (baseline {baseline}): {paused:#}"
    );
    assert!(ms(&paused, "client_wait") >= device, "{paused:#}");
    // Neither the network nor the broker took the device's time.
    let rtt = ms(&paused, "network_rtt");
    assert!(rtt > 0.0 && rtt < TOLERANCE_MS, "{label}: {paused:#}");
    let broker_flight = ms(&paused, "broker_flight");
    let broker_verify = ms(&paused, "broker_verify");
    assert!(
        broker_flight > 0.0 && broker_flight < TOLERANCE_MS,
        "{paused:#}"
    );
    assert!(
        broker_verify > 0.0 && broker_verify < TOLERANCE_MS,
        "{paused:#}"
    );
    // After the broker's flight, the time is the client's, the broker's
    // work or its queue: the parts add up to the handshake the broker saw
    // (ClientHello to done), give or take the scheduling before its flight.
    let whole = ms(&paused, "client_hello_to_tls_done");
    let parts =
        broker_flight + ms(&paused, "client_wait") + broker_verify + ms(&paused, "broker_queue");
    assert!(
        parts <= whole + 1.0 && whole - parts < TOLERANCE_MS,
        "{label}: parts {parts} of {whole}: {paused:#}"
    );
}

#[test]
fn a_slow_device_shows_as_device_time_over_tls13() {
    if skip_on_mosquitto("the handshake split is fleetmq's") {
        return;
    }
    check_split(&[&rustls::version::TLS13], "tls13");
}

#[test]
fn a_slow_device_shows_as_device_time_over_tls12() {
    if skip_on_mosquitto("the handshake split is fleetmq's") {
        return;
    }
    check_split(&[&rustls::version::TLS12], "tls12");
}
