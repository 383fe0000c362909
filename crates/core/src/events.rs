//! What happens to connections, as typed events for whoever watches: log
//! lines, the device registry, metrics, tests.
//!
//! Events go out on a bounded broadcast channel: publishing one never
//! waits, and a watcher that falls behind loses old events rather than
//! slowing the data path. Things that may happen once per packet (an ACL
//! denial) are counted with an atomic instead, so a misbehaving device
//! cannot flood the channel and push out connects.
//!
//! This is the event bus only: the consumers (the device registry, the
//! Prometheus metrics, the watcher task) live in fleetmq's `observe`. It
//! must not slow the data path: the connection tasks only emit events and
//! bump atomics; everything else happens in the watcher task or when
//! someone asks.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::config::ListenerProtocol;
use crate::peer::{HandshakeTiming, TlsInfo};

/// Events kept for watchers that fall behind.
const EVENT_BACKLOG: usize = 4096;

/// Per-connection traffic counters, written by the connection task with
/// relaxed atomic adds and read by watchers whenever they like.
#[derive(Debug, Default)]
pub struct ClientCounters {
    /// PUBLISH packets received from the client.
    pub messages_in: AtomicU64,
    /// PUBLISH packets sent to the client.
    pub messages_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Milliseconds since the Unix epoch of the last packet received.
    pub last_activity_ms: AtomicU64,
}

impl ClientCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Records that the client was heard from now.
    pub fn touch(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.last_activity_ms.store(now, Ordering::Relaxed);
    }
}

/// A client completed CONNECT/CONNACK.
#[derive(Debug, Clone, Serialize)]
pub struct Connected {
    pub client_id: Arc<str>,
    /// The connection's generation: unique per broker, it tells the old
    /// connection of a take-over from the new one.
    pub connection: u64,
    pub peer: SocketAddr,
    pub listener: Arc<str>,
    /// `mqtt` or `websockets`: what the listener speaks.
    pub transport: ListenerProtocol,
    /// 3, 4 or 5 (the CONNECT protocol level).
    pub protocol: u8,
    pub clean_start: bool,
    pub keep_alive: u16,
    pub username: Option<String>,
    /// `None` on plain TCP listeners.
    pub tls: Option<TlsInfo>,
    pub timing: HandshakeTiming,
    /// Live counters of this connection.
    #[serde(skip)]
    pub counters: Arc<ClientCounters>,
}

/// A connection event.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Shared: every watcher and the device registry hold the same
    /// allocation (a connect storm pays no deep copy per watcher).
    Connected(Arc<Connected>),
    Disconnected {
        client_id: Arc<str>,
        /// The generation of the connection that ended.
        connection: u64,
        /// Why, in the words of the log line.
        reason: String,
    },
    Subscribed {
        client_id: Arc<str>,
        filter: String,
        /// Granted QoS.
        qos: u8,
    },
    Unsubscribed {
        client_id: Arc<str>,
        filter: String,
    },
    /// A device's own view of its connection (`protocol::device_report`),
    /// as it sent it: the observer parses it.
    DeviceReport {
        client_id: Arc<str>,
        /// The generation of the connection it describes.
        connection: u64,
        #[serde(serialize_with = "lossy_text")]
        payload: bytes::Bytes,
    },
    HandshakeFailed {
        listener: Arc<str>,
        peer: SocketAddr,
        /// Short label (`unknown_ca`, `revoked`, `timeout`, ...).
        reason: &'static str,
        detail: String,
    },
}

/// What an ACL denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclAction {
    Publish,
    Subscribe,
    /// A delivery to a subscriber whose read rules exclude the topic.
    Receive,
}

impl AclAction {
    /// The label used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AclAction::Publish => "publish",
            AclAction::Subscribe => "subscribe",
            AclAction::Receive => "receive",
        }
    }
}

/// The broadcast channel of events, and the counters of per-packet events.
#[derive(Debug)]
pub struct Events {
    sender: broadcast::Sender<Event>,
    /// PUBLISH packets refused by an ACL.
    acl_denied_publish: AtomicU64,
    /// Subscriptions refused by an ACL.
    acl_denied_subscribe: AtomicU64,
    /// Deliveries withheld by an ACL.
    acl_denied_receive: AtomicU64,
}

impl Default for Events {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(EVENT_BACKLOG);
        Events {
            sender,
            acl_denied_publish: AtomicU64::new(0),
            acl_denied_subscribe: AtomicU64::new(0),
            acl_denied_receive: AtomicU64::new(0),
        }
    }
}

impl Events {
    /// Publishes an event; never blocks, and does nothing without watchers.
    pub fn emit(&self, event: Event) {
        // An error only means nobody is watching.
        let _ = self.sender.send(event);
    }

    /// A new watcher, seeing events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// Counts one ACL denial (`fleetmq_acl_denied_total`). Called by the
    /// ACL check on the data path: one relaxed atomic add, no event.
    pub fn acl_denied(&self, action: AclAction) {
        self.acl_denied_counter(action)
            .fetch_add(1, Ordering::Relaxed);
    }

    /// ACL denials of `action` since the broker started.
    pub fn acl_denied_count(&self, action: AclAction) -> u64 {
        self.acl_denied_counter(action).load(Ordering::Relaxed)
    }

    fn acl_denied_counter(&self, action: AclAction) -> &AtomicU64 {
        match action {
            AclAction::Publish => &self.acl_denied_publish,
            AclAction::Subscribe => &self.acl_denied_subscribe,
            AclAction::Receive => &self.acl_denied_receive,
        }
    }
}

/// A device report's payload as text (it is JSON when well formed).
fn lossy_text<S: serde::Serializer>(payload: &bytes::Bytes, out: S) -> Result<S::Ok, S::Error> {
    out.serialize_str(&String::from_utf8_lossy(payload))
}
