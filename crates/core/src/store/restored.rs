//! What a store held at start, as the backend read it: retained messages,
//! persistent sessions with their deliveries, wills waiting out their
//! delay. The engine rebuilds its state from it (`engine::restore`); how
//! a backend reads its medium is its own business.

use std::sync::Arc;

use super::record::{ItemState, SessionMeta};
use crate::message::Message;
use crate::message::Queued;

/// A persistent session as stored.
#[derive(Debug)]
pub struct RestoredSession {
    pub client_id: Arc<str>,
    pub meta: SessionMeta,
    /// Deliveries in sequence order, with their state.
    pub items: Vec<(Queued, ItemState)>,
    pub incoming_qos2: Vec<u16>,
}

/// A will waiting for its delay.
#[derive(Debug)]
pub struct RestoredWill {
    pub client_id: Arc<str>,
    pub message: Arc<Message>,
    pub publish_at_ms: u64,
}

/// Everything the store held.
#[derive(Debug, Default)]
pub struct Restored {
    pub retained: Vec<Arc<Message>>,
    pub sessions: Vec<RestoredSession>,
    pub wills: Vec<RestoredWill>,
    /// Highest delivery sequence number in use.
    pub max_seq: u64,
}
