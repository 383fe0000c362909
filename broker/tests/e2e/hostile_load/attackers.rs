//! The attackers of the load tests: silent TCP connections from chosen
//! source addresses and ports, a publisher that streams at a set rate, a
//! window filler, and sockets that send a ClientHello and stall. They only
//! attack; what the broker must do about them is asserted by the tests.

use std::io::{ErrorKind, Read};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{publish, RawClient};

/// True when the broker has closed `stream` (EOF or reset); false while it
/// is open with nothing to read.
pub fn closed_by_peer(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let closed = match (&*stream).read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

/// A TCP connection to `addr` from `source` (any port).
pub async fn connect_from(source: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    connect_from_port(SocketAddr::new(source, 0), addr).await
}

/// A TCP connection to `addr` from `source` (port 0: any).
pub async fn connect_from_port(source: SocketAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(source)?;
    let stream = socket.connect(addr).await?.into_std()?;
    // tokio hands the socket over non-blocking; the tests read blocking.
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// Waits until the broker closed every stream (bounded); returns how many
/// are still open.
pub fn wait_all_closed(streams: &[TcpStream], timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let open = streams.iter().filter(|s| !closed_by_peer(s)).count();
        if open == 0 || Instant::now() > deadline {
            return open;
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// Streams QoS 0 messages of `payload` bytes to `bulk/data` at `rate`
/// bytes per second until `until` or `budget` bytes; returns the bytes sent.
pub fn stream_messages(
    publisher: &mut RawClient,
    payload: &[u8],
    rate: f64,
    until: Instant,
    budget: u64,
    sent: &AtomicU64,
) -> u64 {
    let packet = publish("bulk/data", payload).build();
    let started = Instant::now();
    let mut bytes = 0u64;
    while Instant::now() < until && bytes < budget {
        publisher.try_send(&packet).expect("publisher cut off");
        bytes += payload.len() as u64;
        sent.fetch_add(1, Ordering::Relaxed);
        let due = started + Duration::from_secs_f64(bytes as f64 / rate);
        thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    bytes
}

/// Fills a subscriber's TCP window: QoS 0 messages of 64 KiB to `topic`
/// until `bytes` were sent; the subscriber reads nothing.
pub fn fill_window(addr: SocketAddr, topic: &str, bytes: usize) {
    let (mut publisher, _) = RawClient::connect_v311(addr, "window-filler", true);
    let payload = vec![b'w'; 64 * 1024];
    let packet = publish(topic, &payload).build();
    for _ in 0..bytes / payload.len() {
        publisher.send(&packet);
    }
    publisher.ping();
}

/// One attack socket, again and again until `stop`: a whole ClientHello,
/// then silence (what the broker sends is read and thrown away) until the
/// broker cuts it off. Counts the ClientHellos sent.
pub async fn stall_after_client_hello(
    source: IpAddr,
    addr: SocketAddr,
    hello: Arc<Vec<u8>>,
    stop: Arc<AtomicBool>,
    hellos: Arc<AtomicU64>,
    flights: Arc<AtomicU64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut discard = vec![0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
            return;
        };
        if socket.bind(SocketAddr::new(source, 0)).is_err() {
            return;
        }
        let Ok(mut stream) = socket.connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if stream.write_all(&hello).await.is_err() {
            continue;
        }
        hellos.fetch_add(1, Ordering::Relaxed);
        let mut answered = false;
        loop {
            let read =
                tokio::time::timeout(Duration::from_millis(200), stream.read(&mut discard)).await;
            match read {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                _ if stop.load(Ordering::Relaxed) => return,
                Ok(Ok(_)) if !answered => {
                    answered = true;
                    flights.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        if !answered {
            // Refused at accept: try again a little later.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
