//! Listening sockets: binding each configured listener and accepting
//! connections under the per-listener and global connection limits.
//!
//! It must not know MQTT: each accepted socket is handed to
//! [`crate::connection::serve`] on a task of its own. Per-address limits
//! ([`per_ip`]) are applied first: a refused socket is closed at once,
//! before any task, buffer or TLS handshake exists for it.

pub mod per_ip;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::broker::Broker;
use crate::config::ListenerConfig;
use crate::connection::{self, Origin};
use crate::observe::Event;
use crate::tls::{self, ConnectClock, TlsListener};

pub use per_ip::{PeerLimits, PeerSlot, Refusal};

/// Least time between two "refusing connections" warnings, so that a flood
/// of refused connections cannot become a flood of log lines.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A bound listener, not yet accepting.
#[derive(Debug)]
pub struct Listener {
    pub name: Arc<str>,
    pub local_addr: SocketAddr,
    socket: TcpListener,
    /// 0: no per-listener limit.
    max_connections: usize,
    /// Connections open on this listener now.
    open: Arc<AtomicUsize>,
    /// TLS state; `None` for plain TCP.
    pub tls: Option<Arc<TlsListener>>,
    /// The listener's settings (authentication options among them).
    config: Arc<ListenerConfig>,
}

/// Counts one open connection against its listener and the broker until
/// dropped.
struct ConnectionSlot {
    listener: Arc<AtomicUsize>,
    global: Arc<AtomicUsize>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.listener.fetch_sub(1, Ordering::Relaxed);
        self.global.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Listener {
    /// Binds the socket of one listener configuration.
    pub async fn bind(
        config: &ListenerConfig,
        tls: Option<Arc<TlsListener>>,
    ) -> std::io::Result<Listener> {
        let addr: SocketAddr = config.bind.parse().map_err(|error| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("'{}' is not IP:PORT ({error})", config.bind),
            )
        })?;
        let socket = TcpListener::bind(addr).await?;
        let local_addr = socket.local_addr()?;
        let name = if config.name.is_empty() {
            format!("mqtt-{}", addr.port())
        } else {
            config.name.clone()
        };
        let kind = match &tls {
            Some(tls) => format!("TLS, client certificates {:?}", tls.policy).to_lowercase(),
            None => "plain TCP".to_string(),
        };
        tracing::info!(
            listener = %name,
            "Opening listen socket on {local_addr} for listener \"{name}\" ({kind})."
        );
        Ok(Listener {
            name: Arc::from(name),
            local_addr,
            socket,
            max_connections: config.max_connections,
            open: Arc::new(AtomicUsize::new(0)),
            tls,
            config: Arc::new(config.clone()),
        })
    }

    /// Accepts connections until `shutdown` turns true. Each connection
    /// task holds a clone of `done` so the server can wait for them.
    pub async fn run(
        self,
        broker: Arc<Broker>,
        global_open: Arc<AtomicUsize>,
        peers: Arc<PeerLimits>,
        mut shutdown: watch::Receiver<bool>,
        done: mpsc::Sender<()>,
    ) {
        let global_max = broker.config.limits.max_connections;
        let mut refusal_logged_at: Option<std::time::Instant> = None;
        loop {
            let accepted = tokio::select! {
                accepted = self.socket.accept() => accepted,
                _ = shutdown.changed() => return,
            };
            let clock = ConnectClock::start();
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: keep serving the
                    // connections we have and try again shortly.
                    tracing::warn!(listener = %self.name, "Accept failed on listener \"{}\": {error}.", self.name);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let peer_slot = match peers.admit(peer.ip(), std::time::Instant::now()) {
                Ok(slot) => slot,
                Err(refusal) => {
                    broker.stats.connection_refused();
                    let quiet =
                        refusal_logged_at.is_some_and(|at| at.elapsed() < REFUSAL_LOG_INTERVAL);
                    if !quiet {
                        refusal_logged_at = Some(std::time::Instant::now());
                        tracing::warn!(listener = %self.name, peer = %peer, "Refusing connections from {} on listener \"{}\": {} (further refusals are counted in $SYS/broker/connections/refused, logged at most every {}s).", peer.ip(), self.name, refusal.describe(), REFUSAL_LOG_INTERVAL.as_secs());
                    }
                    drop(stream);
                    continue;
                }
            };
            let listener_open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
            let total_open = global_open.fetch_add(1, Ordering::Relaxed) + 1;
            let slot = ConnectionSlot {
                listener: Arc::clone(&self.open),
                global: Arc::clone(&global_open),
            };
            let over_limit = (self.max_connections != 0 && listener_open > self.max_connections)
                || (global_max != 0 && total_open > global_max);
            tracing::debug!(listener = %self.name, "New connection from {peer} on listener \"{}\".", self.name);
            let origin = Origin {
                peer,
                listener: Arc::clone(&self.name),
                over_limit,
                clock,
                tls: None,
                settings: Arc::clone(&self.config),
            };
            let broker = Arc::clone(&broker);
            let shutdown = shutdown.clone();
            let done = done.clone();
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let _peer_slot = peer_slot;
                let _done = done;
                serve_tcp(stream, origin, tls, broker, shutdown).await;
            });
        }
    }
}

async fn serve_tcp(
    stream: TcpStream,
    mut origin: Origin,
    tls: Option<Arc<TlsListener>>,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) {
    // Small MQTT packets must not wait for Nagle's algorithm.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!("Could not set TCP_NODELAY for {}: {error}.", origin.peer);
    }
    let Some(tls) = tls else {
        connection::serve(stream, origin, broker, shutdown).await;
        return;
    };
    match tls::handshake(&tls, stream, origin.peer, &mut origin.clock).await {
        Ok((stream, info)) => {
            origin.tls = Some(info);
            connection::serve(stream, origin, broker, shutdown).await;
        }
        Err(failure) => {
            tracing::info!(
                listener = %origin.listener,
                peer = %origin.peer,
                reason = failure.reason(),
                "TLS handshake with {} on listener \"{}\" failed: {}.",
                origin.peer,
                origin.listener,
                failure.describe()
            );
            broker.stats.tls_failure();
            broker.events.emit(Event::HandshakeFailed {
                listener: Arc::clone(&origin.listener),
                peer: origin.peer,
                reason: failure.reason(),
                detail: failure.describe(),
            });
        }
    }
}
