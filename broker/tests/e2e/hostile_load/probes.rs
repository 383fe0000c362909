//! What the load tests measure while an attack holds: a process's open
//! descriptors, a raw MQTT connect's time, `/healthz`, and a good device's
//! mutual-TLS connect. Probes never panic on a failed attempt: they say
//! why it failed, and the test decides.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{DEVICE_ATTEMPT_TIMEOUT, DEVICE_CONNECT_P99_BOUND};
use crate::harness::{self, ConnectBuilder, Packet, RawClient, ReasonCode, WAIT};

/// Descriptors the process `pid` holds.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

/// A raw 3.1.1 CONNECT and its CONNACK within `timeout`: the connect time,
/// or why it failed (the broker out of descriptors accepts nothing, so the
/// kernel's handshake succeeds and no CONNACK ever comes).
pub fn mqtt_connect_time(
    addr: SocketAddr,
    client_id: &str,
    timeout: Duration,
) -> Result<(Duration, TcpStream), String> {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let id = client_id.as_bytes();
    let mut connect = vec![
        0x10,
        (12 + id.len()) as u8,
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        4,
        0x02,
        0,
        60,
    ];
    connect.extend_from_slice(&[0, id.len() as u8]);
    connect.extend_from_slice(id);
    stream.write_all(&connect).map_err(|e| e.to_string())?;
    let mut connack = [0u8; 4];
    stream
        .read_exact(&mut connack)
        .map_err(|e| format!("no CONNACK: {e}"))?;
    if connack != [0x20, 2, 0, 0] {
        return Err(format!("CONNACK {connack:02x?}"));
    }
    Ok((started.elapsed(), stream))
}

/// Whether `GET /healthz` answers 200 (false on any error, not a panic:
/// the dashboard may still be closing the attack's connections).
pub fn healthz_ok(http: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&http, WAIT) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(WAIT));
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

/// One mutual-TLS connect of the good device (full handshake, no
/// resumption), TCP connect to CONNACK; its duration, or why it failed.
pub fn device_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    n: usize,
) -> Result<Duration, String> {
    let started = Instant::now();
    let mut tcp = TcpStream::connect_timeout(&addr, DEVICE_ATTEMPT_TIMEOUT)
        .map_err(|e| format!("tcp: {e}"))?;
    tcp.set_nodelay(true).unwrap();
    let left = || {
        DEVICE_ATTEMPT_TIMEOUT
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1))
    };
    tcp.set_read_timeout(Some(left())).unwrap();
    let tcp_at = started.elapsed();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    while conn.is_handshaking() {
        tcp.set_read_timeout(Some(left())).unwrap();
        conn.complete_io(&mut tcp)
            .map_err(|e| format!("handshake after {:?}: {e}", started.elapsed()))?;
    }
    tcp.set_read_timeout(Some(left())).unwrap();
    let tls_at = started.elapsed();
    let transport = harness::Transport::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)));
    let mut client = RawClient::over(transport);
    client.send_connect(&ConnectBuilder::v311(&format!("dev-a-{n}")));
    match client.recv_packet(left()) {
        Some(Packet::ConnAck(connack)) if connack.reason == ReasonCode::SUCCESS => {
            let took = started.elapsed();
            if took > DEVICE_CONNECT_P99_BOUND {
                eprintln!(
                    "slow connect dev-a-{n}: TCP {tcp_at:?}, TLS {tls_at:?}, CONNACK {took:?}"
                );
            }
            Ok(took)
        }
        other => Err(format!(
            "no CONNACK after {:?}: {other:?}",
            started.elapsed()
        )),
    }
}
