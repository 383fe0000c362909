//! What happens to connections, as typed events for whoever watches: log
//! lines, the device registry and metrics (dashboard issue), tests.
//!
//! Events go out on a bounded broadcast channel: publishing one never
//! waits, and a watcher that falls behind loses old events rather than
//! slowing the data path.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::tls::{HandshakeTiming, TlsInfo};

/// Events kept for watchers that fall behind.
const EVENT_BACKLOG: usize = 4096;

/// A client completed CONNECT/CONNACK.
#[derive(Debug, Clone, Serialize)]
pub struct Connected {
    pub client_id: Arc<str>,
    pub peer: SocketAddr,
    pub listener: Arc<str>,
    /// 3, 4 or 5 (the CONNECT protocol level).
    pub protocol: u8,
    pub clean_start: bool,
    pub keep_alive: u16,
    pub username: Option<String>,
    /// `None` on plain TCP listeners.
    pub tls: Option<TlsInfo>,
    pub timing: HandshakeTiming,
}

/// A connection event.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Connected(Box<Connected>),
    Disconnected {
        client_id: Arc<str>,
        /// Why, in the words of the log line.
        reason: String,
    },
    HandshakeFailed {
        listener: Arc<str>,
        peer: SocketAddr,
        /// Short label (`unknown_ca`, `revoked`, `timeout`, ...).
        reason: &'static str,
        detail: String,
    },
}

/// The broadcast channel of events.
#[derive(Debug)]
pub struct Events {
    sender: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(EVENT_BACKLOG);
        Events { sender }
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
}
