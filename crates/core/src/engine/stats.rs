//! Engine-wide counters, the numbers behind `$SYS/broker/...`.
//!
//! Plain relaxed atomics: they are bumped on the data path and must cost no
//! more than an uncontended add.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters since the broker started.
#[derive(Debug, Default)]
pub struct Stats {
    /// Clients with an attached connection now.
    pub clients_connected: AtomicU64,
    /// Most clients connected at once.
    pub clients_maximum: AtomicU64,
    /// Control packets of any type received from clients.
    pub messages_received: AtomicU64,
    /// Control packets of any type sent to clients.
    pub messages_sent: AtomicU64,
    /// PUBLISH packets received from clients.
    pub publish_received: AtomicU64,
    /// PUBLISH packets sent to clients.
    pub publish_sent: AtomicU64,
    /// Messages dropped because a session queue was full, the session was
    /// offline at QoS 0, or the message exceeded the client's packet size.
    pub publish_dropped: AtomicU64,
    /// Bytes read from client sockets.
    pub bytes_received: AtomicU64,
    /// Bytes written to client sockets.
    pub bytes_sent: AtomicU64,
    /// Connections refused or closed for a protocol violation.
    pub protocol_errors: AtomicU64,
    /// TLS handshakes that failed (any reason).
    pub tls_handshake_failures: AtomicU64,
    /// Connections closed at accept by a per-address limit.
    pub connections_refused: AtomicU64,
    /// SUBSCRIBE filters refused by `limits.max_subscriptions_per_client`.
    pub subscriptions_refused: AtomicU64,
    /// Retained PUBLISHes delivered but not retained because the retained
    /// store was full (`limits.max_retained_*`).
    pub retained_refused: AtomicU64,
    /// Connections closed because a reloaded CRL revokes their client
    /// certificate.
    pub revoked_disconnects: AtomicU64,
    /// PUBLISHes and connections refused because the heap was above
    /// `limits.memory_limit`.
    pub memory_refusals: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// A client attached: bump the gauge and its high-water mark.
    pub fn client_connected(&self) {
        let now = self.clients_connected.fetch_add(1, Ordering::Relaxed) + 1;
        self.clients_maximum.fetch_max(now, Ordering::Relaxed);
    }

    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn tls_failure(&self) {
        self.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn client_disconnected(&self) {
        self.clients_connected.fetch_sub(1, Ordering::Relaxed);
    }
}
