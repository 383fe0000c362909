//! The dashboard's accept loop: every HTTP (or HTTPS) connection holds one
//! of `http.max_connections` slots from accept to close, and is closed when
//! its headers take longer than `http.header_timeout_secs` or it moves no
//! byte for `http.idle_timeout_secs`.
//!
//! A peer that sends nothing at all is closed after the header timeout too.
//!
//! This is what keeps a slow-HTTP flood (thousands of half-sent requests)
//! from taking the file descriptors MQTT accepts need: past the cap a
//! connection is closed as soon as it is accepted, so the dashboard never
//! holds more than `max_connections` descriptors, whatever the peers do.
//! See docs/decisions/0082-dashboard-connection-limits.md.
//!
//! It owns sockets and timers only; routing and access checks are the
//! axum [`Router`]'s.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::PeerAddr;
use fleetmq_core::config::HttpConfig;

/// How long a connection may take to finish its response once shutdown
/// starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Pause after a failed accept (EMFILE and the like), so the loop does not
/// spin while descriptors are short.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At most one "dashboard busy" warning per this interval.
const BUSY_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The bounds of `[http]` that the accept loop enforces.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    /// Connections open at once, TLS handshakes included.
    pub max_connections: usize,
    /// From the start of a request (or of the TLS handshake) to the end of
    /// its headers.
    pub header_timeout: Duration,
    /// Longest time without a byte read or written.
    pub idle_timeout: Duration,
}

impl Bounds {
    pub fn from_config(config: &HttpConfig) -> Bounds {
        Bounds {
            max_connections: config.max_connections.max(1),
            header_timeout: Duration::from_secs(config.header_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs.max(1)),
        }
    }
}

/// Accepts on `socket` until shutdown, serving each connection on a task of
/// its own.
pub(super) fn spawn(
    socket: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    app: Router,
    bounds: Bounds,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(bounds.max_connections));
    let acceptor = tls.map(TlsAcceptor::from);
    tokio::spawn(async move {
        let mut busy = BusyLog::default();
        loop {
            let accepted = tokio::select! {
                accepted = socket.accept() => accepted,
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::debug!("Dashboard accept failed: {error}.");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                // Closing at once frees the descriptor: the cap holds
                // whatever the peers do.
                drop(stream);
                busy.refused(peer, bounds.max_connections);
                continue;
            };
            tokio::spawn(serve_connection(
                stream,
                peer,
                acceptor.clone(),
                app.clone(),
                bounds,
                shutdown.clone(),
                slot,
            ));
        }
    });
}

/// One connection: TLS if configured, then HTTP/1.1 until the peer closes,
/// a timeout fires or shutdown comes. `_slot` is released on return.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    bounds: Bounds,
    shutdown: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = ActivityIo {
        inner: stream,
        activity: Arc::clone(&activity),
    };
    let served = async {
        match acceptor {
            None => serve_http(io, peer, app, bounds, shutdown).await,
            Some(acceptor) => {
                match tokio::time::timeout(bounds.header_timeout, acceptor.accept(io)).await {
                    Ok(Ok(tls)) => serve_http(tls, peer, app, bounds, shutdown).await,
                    Ok(Err(error)) => {
                        tracing::debug!("Dashboard TLS handshake with {peer} failed: {error}.")
                    }
                    Err(_) => tracing::debug!("Dashboard TLS handshake with {peer} timed out."),
                }
            }
        }
    };
    tokio::select! {
        _ = served => {}
        _ = activity.idle_for(bounds.idle_timeout, bounds.header_timeout) => {
            tracing::debug!(
                "Dashboard connection from {peer} closed: idle for {} s (http.idle_timeout_secs).",
                bounds.idle_timeout.as_secs()
            );
        }
    }
}

/// HTTP/1.1 over `io` with the header timeout, handing requests to `app`
/// with the peer's address attached.
async fn serve_http<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    bounds: Bounds,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(PeerAddr(peer)));
        let mut app = app.clone();
        async move {
            let response =
                tower_service::Service::call(&mut app, request.map(axum::body::Body::new)).await;
            Ok::<_, Infallible>(match response {
                Ok(response) => response,
                Err(never) => match never {},
            })
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(bounds.header_timeout);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!("Dashboard connection from {peer} ended: {error}.");
            }
        }
        _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
        }
    }
}

/// When a connection last moved a byte.
struct Activity {
    started: Instant,
    /// Milliseconds after `started` of the last read or write.
    last_ms: AtomicU64,
    /// Whether the peer has sent anything yet: until it has, the shorter
    /// header timeout applies (hyper's starts only with the first byte).
    heard: AtomicBool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            heard: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Completes once no byte has moved for `limit`, or nothing was received
    /// within `first_byte`.
    async fn idle_for(&self, limit: Duration, first_byte: Duration) {
        loop {
            let last = self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let limit = if self.heard.load(Ordering::Relaxed) {
                limit
            } else {
                first_byte.min(limit)
            };
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// A stream that records every successful read and write in [`Activity`].
struct ActivityIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for ActivityIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.heard.store(true, Ordering::Relaxed);
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ActivityIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Connections refused because every slot was taken, logged at most once
/// per [`BUSY_LOG_INTERVAL`] with a count.
#[derive(Default)]
struct BusyLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl BusyLog {
    fn refused(&mut self, peer: SocketAddr, max_connections: usize) {
        if self
            .last
            .is_some_and(|last| last.elapsed() < BUSY_LOG_INTERVAL)
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            peer = %peer,
            "Dashboard busy: all {max_connections} connections (http.max_connections) in use; \
             closed the one from {peer} ({} more closed since the last warning). MQTT is not \
             affected.",
            self.suppressed
        );
        self.last = Some(Instant::now());
        self.suppressed = 0;
    }
}
