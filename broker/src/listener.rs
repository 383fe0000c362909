//! Listening sockets: binding each configured listener and accepting
//! connections under the per-listener and global connection limits.
//!
//! It must not know MQTT: each accepted socket is handed to
//! [`crate::connection::serve`] on a task of its own. Per-address limits
//! ([`per_ip`]) are applied first: a refused socket is closed at once,
//! before any task, buffer or TLS handshake exists for it. On WebSocket
//! listeners ([`websocket`]) the upgrade runs after TLS, before MQTT. On
//! listeners behind a balancer ([`proxy_protocol`]) the socket's address is the
//! balancer's: admission waits for the PROXY header's client address.

mod admission;
pub mod per_ip;
pub mod proxy_protocol;
pub mod websocket;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::connection::{self, Origin};
use crate::tls::{self, TlsListener};
use fleetmq_core::config::{ListenerConfig, ListenerProtocol};
use fleetmq_core::engine::Engine;
use fleetmq_core::events::Event;
use fleetmq_core::peer::ConnectClock;

pub use per_ip::{PeerLimits, PeerSlot, Refusal, RefusalLog};

pub(crate) use admission::refuse_stray_header;
use admission::{admit_proxied, Admission};

/// Connections the kernel may hold completed for us before `accept`
/// (capped by `net.core.somaxconn`, 4096 by default on Linux). tokio's
/// default of 1024 is less than one wave of reconnects after a storm of
/// stalled handshakes is cut off: the kernel then drops SYNs, and a good
/// device waits a whole SYN retransmission (1 s) before it is even
/// accepted (decision 0086).
const LISTEN_BACKLOG: u32 = 4096;

/// Accepts after which a quiet listener gives free heap pages back
/// ([`fleetmq_heap::release_free_pages`]), and how long it must have been
/// quiet: once per storm, not per connection.
const TRIM_AFTER_ACCEPTS: usize = 1000;
const TRIM_AFTER_QUIET: Duration = Duration::from_millis(500);

/// Binds a listening socket at `addr` with [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As `TcpListener::bind`: a restarted broker may bind while old
    // connections linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    // Small MQTT packets must not wait for Nagle's algorithm. Linux gives
    // an accepted socket the listener's TCP_NODELAY, which saves a
    // setsockopt per connection (issue 22); elsewhere `prepare` sets it.
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

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
        let socket = listen(addr)?;
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
        let kind = match config.protocol {
            ListenerProtocol::Mqtt => kind,
            ListenerProtocol::Websockets => format!("WebSockets, {kind}"),
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

    /// What the listener speaks: MQTT or MQTT over WebSockets.
    pub fn transport(&self) -> ListenerProtocol {
        self.config.protocol
    }

    /// Accepts connections until `shutdown` turns true. Each connection
    /// task holds a clone of `done` so the server can wait for them.
    pub async fn run(
        self,
        broker: Arc<Engine>,
        global_open: Arc<AtomicUsize>,
        peers: Arc<PeerLimits>,
        mut shutdown: watch::Receiver<bool>,
        done: mpsc::Sender<()>,
    ) {
        let global_max = broker.config.limits.max_connections;
        let refusals = Arc::new(RefusalLog::default());
        let mut accepted_since_trim = 0usize;
        loop {
            let accepted = tokio::select! {
                accepted = self.socket.accept() => accepted,
                _ = shutdown.changed() => return,
                // After a storm, the handshakes' freed pages between the
                // connections that stayed go back to the system (memory
                // per held connection; decision 0181).
                _ = tokio::time::sleep(TRIM_AFTER_QUIET), if accepted_since_trim >= TRIM_AFTER_ACCEPTS => {
                    accepted_since_trim = 0;
                    tokio::task::spawn_blocking(fleetmq_heap::release_free_pages);
                    continue;
                }
            };
            accepted_since_trim = accepted_since_trim.saturating_add(1);
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
            // Behind a balancer the address to admit is in the header,
            // read on the connection's task (`serve_tcp`).
            let peer_slot = if self.config.proxy_protocol.is_on() {
                None
            } else {
                match peers.admit(peer.ip(), std::time::Instant::now()) {
                    Ok(slot) => Some(slot),
                    Err(refusal) => {
                        broker.stats.connection_refused();
                        refusals.log(&self.name, peer, refusal);
                        drop(stream);
                        continue;
                    }
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
            // Boxed before the task captures it: a task keeps what it
            // captured for its whole life, and a device may stay for months.
            let incoming = Box::new(Incoming {
                stream,
                origin,
                tls: self.tls.clone(),
                broker: Arc::clone(&broker),
                shutdown: shutdown.clone(),
                peers: Arc::clone(&peers),
                refusals: Arc::clone(&refusals),
            });
            let held = (slot, done.clone());
            tokio::spawn(async move {
                let _held = held;
                serve_tcp(incoming, peer_slot).await;
            });
        }
    }
}

/// An accepted connection, before TLS and CONNECT.
struct Incoming {
    stream: TcpStream,
    origin: Origin,
    tls: Option<Arc<TlsListener>>,
    broker: Arc<Engine>,
    shutdown: watch::Receiver<bool>,
    /// For admission by the PROXY header's address.
    peers: Arc<PeerLimits>,
    refusals: Arc<RefusalLog>,
}

/// What an accepted connection turned into once admitted and, on a TLS
/// listener, through its handshake.
enum Prepared {
    Plain(Box<(TcpStream, Origin)>),
    Tls(Box<(tls::TlsStream, Origin)>),
    /// A refused handshake where the broker had the last word: the alert
    /// must reach a peer that is still sending.
    Linger(tls::SlotStream),
}

/// What the connection needs for its whole life besides its stream.
struct Serving {
    broker: Arc<Engine>,
    shutdown: watch::Receiver<bool>,
    websockets: bool,
}

/// Runs TLS (on TLS listeners) and then the MQTT connection. Its future
/// lives as long as the connection, so everything only the first
/// milliseconds need runs in [`prepare`], a boxed future freed when done:
/// an async fn keeps room for every local that lives across an await,
/// moved-out ones too (the accepted socket and its `Origin` were ~0.7 KiB
/// of every held connection's task, issue 22). What a held connection
/// costs is its `Client`, its buffers and the TLS session.
async fn serve_tcp(incoming: Box<Incoming>, peer_slot: Option<PeerSlot>) {
    let Some((prepared, serving, _peer_slot)) = Box::pin(prepare(incoming, peer_slot)).await else {
        return;
    };
    let Serving {
        broker,
        shutdown,
        websockets,
    } = serving;
    match prepared {
        Prepared::Plain(connection) if websockets => {
            Box::pin(websocket::serve(connection, broker, shutdown)).await
        }
        Prepared::Plain(connection) => connection::serve(connection, broker, shutdown).await,
        Prepared::Tls(connection) if websockets => {
            Box::pin(websocket::serve(connection, broker, shutdown)).await
        }
        Prepared::Tls(connection) => connection::serve(connection, broker, shutdown).await,
        Prepared::Linger(socket) => Box::pin(connection::lingering_close(socket)).await,
    }
}

/// Admission (a PROXY header first, where configured) and the TLS
/// handshake; `None` when the connection ends here.
async fn prepare(
    incoming: Box<Incoming>,
    peer_slot: Option<PeerSlot>,
) -> Option<(Prepared, Serving, Option<PeerSlot>)> {
    // Unboxed inside a block so the box is freed now, not when the
    // connection ends (see `connection::serve`).
    let Incoming {
        mut stream,
        mut origin,
        tls,
        broker,
        mut shutdown,
        peers,
        refusals,
    } = {
        let incoming = incoming;
        *incoming
    };
    let admission = Admission {
        broker: &broker,
        peers: &peers,
        refusals: &refusals,
        tls: tls.as_deref(),
    };
    // A wait for a header must not hold up the broker's shutdown.
    let admit = Box::pin(admit_proxied(&mut stream, &mut origin, admission));
    let admitted = tokio::select! {
        admitted = admit => admitted,
        _ = shutdown.changed() => None,
    };
    let admitted = admitted?;
    let peer_slot = peer_slot.or(admitted);
    drop((peers, refusals));
    // Small MQTT packets must not wait for Nagle's algorithm (on Linux the
    // socket has it from the listener, see `listen`).
    #[cfg(not(target_os = "linux"))]
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!("Could not set TCP_NODELAY for {}: {error}.", origin.peer);
    }
    let websockets = origin.settings.protocol == ListenerProtocol::Websockets;
    let Some(tls) = tls else {
        let serving = Serving {
            broker,
            shutdown,
            websockets,
        };
        return Some((
            Prepared::Plain(Box::new((stream, origin))),
            serving,
            peer_slot,
        ));
    };
    // Boxed: the handshake's state is large and needed only for the first
    // milliseconds.
    let prepared = match Box::pin(tls::handshake(&tls, stream, origin.peer, &mut origin.clock))
        .await
    {
        Ok((stream, info)) => {
            origin.tls = Some(info);
            Prepared::Tls(Box::new((stream, origin)))
        }
        Err(refused) => {
            let failure = &refused.failure;
            if let tls::HandshakeFailure::ProxyHeader(version) = failure {
                refuse_stray_header(&broker, &origin.listener, origin.peer, *version);
                return None;
            }
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
            if let (tls::HandshakeFailure::ReplyTimeout(_), Some(slot)) = (failure, &peer_slot) {
                slot.charge_stalled_handshake();
            }
            Prepared::Linger(refused.socket?)
        }
    };
    let serving = Serving {
        broker,
        shutdown,
        websockets,
    };
    Some((prepared, serving, peer_slot))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future an async fn returns, without calling it.
    fn future_size<A, B, Fut, F>(_: &F) -> usize
    where
        F: Fn(A, B) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    /// Every held connection keeps its task's future; the handshakes'
    /// large states are boxed so it stays small (memory per device). The
    /// bound was 2048 until the cluster's acknowledgement wake-up joined
    /// the connection loop's select (2128 bytes at the merge, session 8);
    /// admission and the handshake moved into their own boxed future
    /// (`prepare`), which took it from 2152 to 1400 bytes (issue 22). The
    /// whole per-connection budget (10 KiB) is measured in bench/, this
    /// only catches a large state moving in unboxed.
    /// `prepare` sets no TCP_NODELAY on Linux: the accepted socket must
    /// have it from the listener.
    #[tokio::test]
    #[allow(clippy::unwrap_used)]
    async fn accepted_sockets_have_nagle_off() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(accepted.nodelay().unwrap(), "accepted socket has Nagle on");
        drop(client);
    }

    #[test]
    fn a_held_connection_task_is_small() {
        let size = future_size::<_, Option<PeerSlot>, _, _>(&serve_tcp);
        eprintln!("serve_tcp future: {size} bytes");
        assert!(size < 1536, "serve_tcp future is {size} bytes");
    }
}
