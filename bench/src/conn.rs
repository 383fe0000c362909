//! One MQTT client connection of the load generator: TCP from one of many
//! loopback source addresses, optional TLS, CONNECT/CONNACK with timings,
//! then packets in and out through reusable buffers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::mqtt::{self, Packet};
use crate::tls::Clients;

/// Loopback source addresses cycled through: 127.0.0.2 to 127.0.0.251.
/// Each has its own ~28,000 ephemeral ports, so storms of hundreds of
/// thousands of short connections (each leaving a TIME_WAIT behind) and
/// tens of thousands of held ones never run out.
const SOURCE_ADDRESSES: usize = 250;

static NEXT_SOURCE: AtomicUsize = AtomicUsize::new(0);

/// How many of the source addresses are used (`load ... --sources`: a
/// fleet behind a NAT or a balancer comes from a few addresses).
static SOURCES_USED: AtomicUsize = AtomicUsize::new(SOURCE_ADDRESSES);

/// Connects from the first `count` source addresses only (1 to 250).
pub fn use_source_addresses(count: usize) -> usize {
    let count = count.clamp(1, SOURCE_ADDRESSES);
    SOURCES_USED.store(count, Ordering::Relaxed);
    count
}

/// Connections come from a few source addresses while this lives, and from
/// as many as before once it is dropped (on an error or a panic too): the
/// runner's rows after a NAT'd fleet must spread over every address again.
#[must_use = "the source addresses are restored when the guard is dropped"]
pub struct FewSources {
    before: usize,
}

impl FewSources {
    /// Connects from the first `count` source addresses (1 to 250).
    pub fn use_first(count: usize) -> FewSources {
        let before = SOURCES_USED.load(Ordering::Relaxed);
        use_source_addresses(count);
        FewSources { before }
    }
}

impl Drop for FewSources {
    fn drop(&mut self) {
        SOURCES_USED.store(self.before, Ordering::Relaxed);
    }
}

fn next_source() -> SocketAddr {
    let n = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) % SOURCES_USED.load(Ordering::Relaxed);
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + n as u8)), 0)
}

/// Where clients connect, and with which TLS configuration (None: plain).
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub tls: Option<Clients>,
}

/// A TCP or TLS byte stream.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Stream {
    /// Puts the socket back in quick-ACK mode, which Linux leaves after a
    /// while on a connection that only receives: every segment read is then
    /// acknowledged at once instead of after up to 40 ms. A broker that
    /// writes without TCP_NODELAY (rumqttd 0.20) would otherwise wait on
    /// Nagle's algorithm for each of those delayed ACKs, and a subscriber
    /// that never sends (QoS 0) would pace it at one write per 40 ms
    /// (decision 0062). Brokers that set TCP_NODELAY do not wait on ACKs,
    /// so this changes nothing for them.
    fn ack_at_once(&self) {
        let tcp = match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref().0,
        };
        // Best effort: a socket that refuses keeps the kernel's default.
        let _ = socket2::SockRef::from(tcp).set_tcp_quickack(true);
    }
}

/// How a connection came up.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// From starting the TCP connect to a finished TLS handshake (to the
    /// TCP connect for plain connections).
    pub handshake: Duration,
    /// From starting the TCP connect to CONNACK.
    pub connack: Duration,
    /// The TLS handshake resumed an earlier session.
    pub resumed: bool,
    /// CONNACK said the broker had a session for this client.
    pub session_present: bool,
}

/// What CONNECT asks for.
#[derive(Debug, Clone)]
pub struct Hello<'a> {
    pub client_id: &'a str,
    pub clean_session: bool,
    pub keep_alive_secs: u16,
}

/// An open MQTT connection with its buffers.
pub struct Conn {
    stream: Stream,
    read_buf: Vec<u8>,
    /// Start of the bytes in `read_buf` not decoded yet.
    read_pos: usize,
    /// Packets queued by the caller, sent by [`Conn::flush`].
    pub out: Vec<u8>,
}

impl Conn {
    /// Connects to `endpoint` as device `device` (which picks the client
    /// certificate), using `tls_config` instead of the device's default
    /// configuration when given (resumption), and completes CONNECT.
    pub async fn open(
        endpoint: &Endpoint,
        device: usize,
        tls_config: Option<Arc<ClientConfig>>,
        hello: &Hello<'_>,
        timeout: Duration,
    ) -> Result<(Conn, Timing)> {
        tokio::time::timeout(
            timeout,
            Conn::open_unbounded(endpoint, device, tls_config, hello),
        )
        .await
        .map_err(|_| anyhow!("no CONNACK within {timeout:?}"))?
    }

    async fn open_unbounded(
        endpoint: &Endpoint,
        device: usize,
        tls_config: Option<Arc<ClientConfig>>,
        hello: &Hello<'_>,
    ) -> Result<(Conn, Timing)> {
        let started = Instant::now();
        let socket = TcpSocket::new_v4().context("socket")?;
        socket.bind(next_source()).context("bind source address")?;
        let tcp = socket.connect(endpoint.addr).await.context("TCP connect")?;
        tcp.set_nodelay(true).context("TCP_NODELAY")?;
        let (stream, resumed) = match &endpoint.tls {
            None => (Stream::Plain(tcp), false),
            Some(clients) => {
                let config = tls_config.unwrap_or_else(|| clients.for_device(device));
                let tls = TlsConnector::from(config)
                    .connect(clients.server_name.clone(), tcp)
                    .await
                    .context("TLS handshake")?;
                let resumed =
                    tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                (Stream::Tls(Box::new(tls)), resumed)
            }
        };
        let handshake = started.elapsed();
        let mut conn = Conn {
            stream,
            read_buf: Vec::with_capacity(256),
            read_pos: 0,
            out: Vec::with_capacity(256),
        };
        mqtt::connect(
            &mut conn.out,
            hello.client_id,
            hello.clean_session,
            hello.keep_alive_secs,
        );
        conn.flush().await?;
        match conn.recv().await? {
            Packet::ConnAck {
                return_code: 0,
                session_present,
            } => Ok((
                conn,
                Timing {
                    handshake,
                    connack: started.elapsed(),
                    resumed,
                    session_present,
                },
            )),
            Packet::ConnAck { return_code, .. } => bail!("CONNACK refused: code {return_code}"),
            other => bail!("expected CONNACK, got {other:?}"),
        }
    }

    /// Sends what is queued in [`Conn::out`].
    pub async fn flush(&mut self) -> Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await.context("write")?;
            self.out.clear();
        }
        self.stream.flush().await.context("flush")?;
        Ok(())
    }

    /// The next packet from the broker.
    pub async fn recv(&mut self) -> Result<Packet> {
        loop {
            if let Some((packet, used)) = mqtt::decode(&self.read_buf[self.read_pos..])? {
                self.read_pos += used;
                if self.read_pos == self.read_buf.len() {
                    self.read_buf.clear();
                    self.read_pos = 0;
                }
                return Ok(packet);
            }
            if self.read_pos > 0 {
                self.read_buf.drain(..self.read_pos);
                self.read_pos = 0;
            }
            if self.read_buf.capacity() - self.read_buf.len() < 4096 {
                self.read_buf.reserve(16 * 1024);
            }
            let read = self
                .stream
                .read_buf(&mut self.read_buf)
                .await
                .context("read")?;
            if read == 0 {
                bail!("connection closed by the broker");
            }
            self.stream.ack_at_once();
        }
    }

    /// A packet already received and buffered, without reading more.
    pub fn try_recv(&mut self) -> Result<Option<Packet>> {
        match mqtt::decode(&self.read_buf[self.read_pos..])? {
            Some((packet, used)) => {
                self.read_pos += used;
                Ok(Some(packet))
            }
            None => Ok(None),
        }
    }

    /// Reads and discards packets until the broker closes the connection
    /// or it fails.
    pub async fn recv_until_closed(&mut self) {
        while self.recv().await.is_ok() {}
    }

    /// Sends DISCONNECT and closes (TLS close_notify, then FIN).
    pub async fn close(mut self) {
        mqtt::disconnect(&mut self.out);
        if self.flush().await.is_ok() {
            let _ = self.stream.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_sources_are_restored_when_the_guard_goes() {
        let all = SOURCES_USED.load(Ordering::Relaxed);
        {
            let _nat = FewSources::use_first(4);
            assert_eq!(SOURCES_USED.load(Ordering::Relaxed), 4);
            let sources: Vec<SocketAddr> = (0..8).map(|_| next_source()).collect();
            assert!(sources.iter().all(
                |addr| matches!(addr.ip(), IpAddr::V4(ip) if (2..6).contains(&ip.octets()[3]))
            ));
        }
        assert_eq!(SOURCES_USED.load(Ordering::Relaxed), all);
    }
}
