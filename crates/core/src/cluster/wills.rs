//! What a connection tells the cluster about its will (docs/decisions/0183):
//! the will it arms at CONNECT, so that another node can publish it when
//! this node dies, and how the connection ended. The broker's NATS backend
//! implements [`WillKeeper`]; it decides who publishes each will, once.
//!
//! No IO here: the trait is the seam that keeps NATS out of the
//! connection code.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use fleetmq_codec::LastWill;

use crate::engine::{will_message, PendingWill};
use crate::message::Message;

/// A will as armed at CONNECT: what would be published, and when.
#[derive(Debug, Clone)]
pub struct ArmedWill {
    /// The will message; its expiry counts from when it is published.
    pub message: Arc<Message>,
    /// Seconds between the end of the connection and the will, already
    /// capped by the session expiry interval [MQTT-3.1.3-9].
    pub delay: u32,
    /// The will's Message Expiry Interval, if any.
    pub expiry_interval: Option<u32>,
}

impl ArmedWill {
    /// The will of a CONNECT by `client_id` with session expiry
    /// `session_expiry`.
    pub fn new(client_id: &Arc<str>, will: LastWill, session_expiry: u32) -> ArmedWill {
        let delay = will.delay_interval.unwrap_or(0).min(session_expiry);
        let expiry_interval = will.properties.message_expiry_interval;
        let mut message = will_message(client_id, will, Instant::now());
        // Counted again when it is published.
        if let Some(message) = Arc::get_mut(&mut message) {
            message.expires_at = None;
        }
        ArmedWill {
            message,
            delay,
            expiry_interval,
        }
    }
}

/// The cluster's keeper of wills.
pub trait WillKeeper: Send + Sync + fmt::Debug {
    /// A connection of `client_id` (its `generation`) attached on this
    /// node with `clean_start`; `will` is its will when it has one and may
    /// publish on its topic. Whatever will an earlier connection of the
    /// client left pending anywhere is settled now: published when this
    /// one starts clean, dropped when it resumes the session.
    ///
    /// With a will, the answer ends (a value, or its sender dropped) once
    /// the will is recorded where every node finds it, or given up: the
    /// CONNACK waits for it, so that a client that drops and reconnects
    /// on another node at once has its will settled there, not published
    /// by this node after all [MQTT-3.1.3-9]. `None`: nothing to wait for.
    fn connected(
        &self,
        client_id: Arc<str>,
        generation: u64,
        clean_start: bool,
        will: Option<ArmedWill>,
    ) -> Option<oneshot::Receiver<()>>;

    /// The connection `generation` of `client_id` ended; `will` is the
    /// will to publish (`None`: a normal DISCONNECT, or no will).
    fn ended(&self, client_id: Arc<str>, generation: u64, will: Option<PendingWill>);
}
