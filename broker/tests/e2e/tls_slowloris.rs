//! End-to-end test of a TLS listener under a slowloris storm: hundreds of
//! peers that open TCP connections and never finish a handshake (silent,
//! or dribbling a ClientHello one byte at a time). The handshake timeout
//! must cut every one of them off, and a real device must still get in.
//!
//! The storm is sized against `max_concurrent_handshakes = 64`: the 350
//! stalled peers hold every handshake slot and fill the queue behind them,
//! so a device arriving among them waits its turn and may be cut off once
//! with them; like any device it retries, and must be through within a few
//! seconds.
//!
//! A peer that sends its whole ClientHello and then stalls is cut off at
//! `client_flight_timeout_secs`, while a device slow to answer (as an
//! ESP32 is) within it still gets in (decision 0086).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness;
use crate::harness::pki::Pki;
use crate::harness::tls::{self, ANY_VERSION, DEBUG_LOG};
use crate::harness::{
    skip_on_mosquitto, Broker, ConnectBuilder, ListenerSpec, RawClient, ReasonCode,
};
use rustls::pki_types::ServerName;
use rustls::ClientConnection;

const SILENT_PEERS: usize = 300;
const DRIBBLING_PEERS: usize = 50;
const DRIBBLE_EVERY: Duration = Duration::from_millis(200);
/// `handshake_timeout_secs` of the listener.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the real device may take, retries included.
const DEVICE_DEADLINE: Duration = Duration::from_secs(8);
/// The whole test.
const TEST_DEADLINE: Duration = Duration::from_secs(15);

/// The first bytes of a real ClientHello record (never the whole of it).
fn client_hello_prefix(pki: &Pki) -> Vec<u8> {
    let config = tls::client_config(&pki.ca.cert, None, ANY_VERSION);
    let name = ServerName::try_from("localhost").unwrap();
    let mut connection = ClientConnection::new(config, name).unwrap();
    let mut hello = Vec::new();
    connection.write_tls(&mut hello).unwrap();
    assert!(hello.len() > 100, "ClientHello of {} bytes", hello.len());
    hello.truncate(40);
    hello
}

/// Writes one byte of `prefix` to each peer every [`DRIBBLE_EVERY`] until
/// `stop`, the prefix runs out, or the broker closed the peer. Returns the
/// peers it saw no close on.
fn dribble(
    peers: Vec<TcpStream>,
    prefix: Vec<u8>,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<Vec<TcpStream>> {
    thread::spawn(move || {
        let mut open: Vec<TcpStream> = peers;
        for byte in prefix {
            if stop.load(Ordering::Relaxed) || open.is_empty() {
                break;
            }
            open.retain(|mut peer| peer.write_all(&[byte]).is_ok() && !closed_by_peer(peer));
            thread::sleep(DRIBBLE_EVERY);
        }
        open
    })
}

/// True when the other side has closed the connection (EOF or reset).
fn closed_by_peer(mut stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let closed = match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

/// One attempt of the device: handshake, CONNECT, a QoS 1 round trip.
fn device_round_trip(addr: SocketAddr, pki: &Pki) -> Result<(), String> {
    let config = tls::client_config(&pki.ca.cert, Some(&pki.dev_a), ANY_VERSION);
    let transport = tls::connect(addr, config).map_err(|e| format!("handshake: {e}"))?;
    let mut client = RawClient::over(transport);
    client.send_connect(&ConnectBuilder::v311("dev-a"));
    match client.recv_packet(harness::WAIT) {
        Some(harness::Packet::ConnAck(connack)) if connack.reason == ReasonCode::SUCCESS => {}
        other => return Err(format!("no CONNACK: {other:?}")),
    }
    assert_eq!(
        client.subscribe(1, "fleet/dev-a/storm", 1),
        vec![ReasonCode::GRANTED_QOS_1]
    );
    assert_eq!(
        client.publish("fleet/dev-a/storm", b"still here", 1, false),
        ReasonCode::SUCCESS
    );
    assert_eq!(client.expect_app_publish().payload.as_ref(), b"still here");
    Ok(())
}

#[test]
fn stalled_handshakes_time_out_and_a_device_still_connects() {
    if skip_on_mosquitto("TLS listeners are configured the fleetmq way") {
        return;
    }
    let test_started = Instant::now();
    let pki = Pki::new();
    let toml = pki.listener_toml(&pki.server_ecdsa, "required")
        + "handshake_timeout_secs = 2\nmax_concurrent_handshakes = 64\n";
    let broker = Broker::start_with_listeners(&[ListenerSpec::tls("tls", &toml)], DEBUG_LOG);
    let addr = broker.addr_of("tls");

    let storm_started = Instant::now();
    let connect = || TcpStream::connect_timeout(&addr, harness::WAIT).expect("storm connect");
    let silent: Vec<TcpStream> = (0..SILENT_PEERS).map(|_| connect()).collect();
    let dribblers: Vec<TcpStream> = (0..DRIBBLING_PEERS).map(|_| connect()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let dribbling = dribble(dribblers, client_hello_prefix(&pki), Arc::clone(&stop));

    // The device arrives in the middle of the storm, and retries as a
    // device does until it is through.
    let device_started = Instant::now();
    let mut failures = Vec::new();
    let connected_after = loop {
        match device_round_trip(addr, &pki) {
            Ok(()) => break device_started.elapsed(),
            Err(error) => failures.push(format!("{:?}: {error}", device_started.elapsed())),
        }
        assert!(
            device_started.elapsed() < DEVICE_DEADLINE,
            "device did not get through within {DEVICE_DEADLINE:?}: {failures:?}"
        );
        thread::sleep(Duration::from_millis(100));
    };
    let setup = tls::setup_line(&broker, "dev-a", harness::WAIT);
    eprintln!(
        "device through after {connected_after:?} ({} failed attempts: {failures:?}); \
         handshake {:.3} ms after accept",
        failures.len(),
        setup.tls_ms
    );

    // Every stalled peer is cut off with reason timeout, soon after the
    // timeout (the device's failed attempts may add a few).
    let stalled = SILENT_PEERS + DRIBBLING_PEERS;
    let needles = [
        "on listener \"tls\" failed",
        &tls::reason_field("timeout") as &str,
    ];
    let wait = (storm_started + HANDSHAKE_TIMEOUT + Duration::from_secs(3))
        .saturating_duration_since(Instant::now());
    let timed_out = broker.wait_for_log_lines(&needles, stalled, wait);
    assert!(
        timed_out >= stalled,
        "{timed_out} handshakes timed out, expected {stalled}"
    );
    let cut_off_after = storm_started.elapsed();
    assert!(
        cut_off_after >= HANDSHAKE_TIMEOUT,
        "stalled peers cut off after {cut_off_after:?}, before the timeout"
    );
    let still_open = silent.iter().filter(|s| !closed_by_peer(s)).count();
    assert_eq!(still_open, 0, "silent peers the broker did not close");
    stop.store(true, Ordering::Relaxed);
    let dribblers_open = dribbling
        .join()
        .unwrap()
        .iter()
        .filter(|s| !closed_by_peer(s))
        .count();
    assert_eq!(
        dribblers_open, 0,
        "dribbling peers the broker did not close"
    );
    // Nothing else failed, except perhaps the device's own failed attempts.
    let other_failures = broker.count_log_lines(&["on listener \"tls\" failed"]) - timed_out;
    assert!(
        other_failures <= failures.len(),
        "{other_failures} failures other than timeouts:\n{}",
        broker.logs()
    );
    assert!(
        test_started.elapsed() < TEST_DEADLINE,
        "storm test took {:?}",
        test_started.elapsed()
    );
}

#[test]
fn silent_peers_do_not_hold_handshake_slots() {
    if skip_on_mosquitto("TLS listeners are configured the fleetmq way") {
        return;
    }
    // Silent peers cost the broker a socket, not cryptography: a device
    // that sends its ClientHello should not queue behind them.
    let pki = Pki::new();
    let toml = pki.listener_toml(&pki.server_ecdsa, "required")
        + "handshake_timeout_secs = 2\nmax_concurrent_handshakes = 64\n";
    let broker = Broker::start_with_listeners(&[ListenerSpec::tls("tls", &toml)], DEBUG_LOG);
    let addr = broker.addr_of("tls");
    let _silent: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect_timeout(&addr, harness::WAIT).expect("connect"))
        .collect();
    // Let the broker accept them all before the device comes.
    let accepted = broker.wait_for_log_lines(&["New connection from"], 64, harness::WAIT);
    assert_eq!(accepted, 64);
    device_round_trip(addr, &pki).expect("device round trip");
    let setup = tls::setup_line(&broker, "dev-a", harness::WAIT);
    assert!(
        setup.tls_ms < 1000.0,
        "device handshake done {:.3} ms after accept, queued behind silent peers",
        setup.tls_ms
    );
}

#[test]
fn a_stall_after_the_client_hello_is_cut_at_the_flight_timeout_but_a_slow_device_is_not() {
    if skip_on_mosquitto("TLS listeners are configured the fleetmq way") {
        return;
    }
    // `client_flight_timeout_secs = 2`: a stalled peer is cut off after 2 s
    // (plus at most a quarter spread), long before the 10 s handshake
    // timeout; a device that takes 1 s over its answer (an ESP32 computing
    // its CertificateVerify takes about 2 s against the default 5) gets in.
    let pki = Pki::new();
    let toml =
        pki.listener_toml(&pki.server_ecdsa, "required") + "client_flight_timeout_secs = 2\n";
    let broker = Broker::start_with_listeners(&[ListenerSpec::tls("tls", &toml)], DEBUG_LOG);
    let addr = broker.addr_of("tls");
    let device_config = tls::client_config(&pki.ca.cert, Some(&pki.dev_a), ANY_VERSION);
    let name = ServerName::try_from("localhost").unwrap();

    let mut hello = Vec::new();
    ClientConnection::new(Arc::clone(&device_config), name.clone())
        .unwrap()
        .write_tls(&mut hello)
        .unwrap();
    let mut stalled = TcpStream::connect_timeout(&addr, harness::WAIT).unwrap();
    stalled.write_all(&hello).unwrap();
    let stalled_at = Instant::now();
    stalled
        .set_read_timeout(Some(Duration::from_secs(4)))
        .unwrap();
    let mut discard = [0u8; 4096];
    let cut_after = loop {
        match stalled.read(&mut discard) {
            Ok(0) | Err(_) => break stalled_at.elapsed(),
            Ok(_) => {}
        }
    };
    assert!(
        cut_after >= Duration::from_millis(1900) && cut_after < Duration::from_millis(3000),
        "stalled peer cut off after {cut_after:?}"
    );
    tls::assert_handshake_failed(&broker, "tls", "reply_timeout");

    // The slow device: its ClientHello, the server's flight, one second
    // of thought, then its answer, CONNECT and CONNACK.
    let mut tcp = TcpStream::connect_timeout(&addr, harness::WAIT).unwrap();
    tcp.set_read_timeout(Some(harness::WAIT)).unwrap();
    let mut conn = ClientConnection::new(device_config, name).unwrap();
    conn.write_tls(&mut tcp).unwrap();
    while !conn.wants_write() {
        conn.read_tls(&mut tcp).unwrap();
        conn.process_new_packets().unwrap();
    }
    thread::sleep(Duration::from_secs(1));
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    let transport = harness::Transport::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)));
    let mut client = RawClient::over(transport);
    client.send_connect(&ConnectBuilder::v311("dev-a"));
    assert_eq!(client.expect_connack().reason, ReasonCode::SUCCESS);
    let setup = tls::setup_line(&broker, "dev-a", harness::WAIT);
    assert!(setup.tls_ms >= 1000.0, "{setup:?}");
}
