//! Persistent sessions in the `FLEETMQ_SESSIONS` bucket (decision 0173):
//! one record per client id with the node that holds it, its expiry, owner
//! and subscriptions, and when it went offline. The node holding a session
//! rewrites the record after each change the engine reports (connected,
//! subscribed, unsubscribed, disconnected); a node that takes the client id
//! over reads it to bring the session in.
//!
//! A CONNECT's record is written before its CONNACK leaves; later changes
//! follow the events asynchronously: a SUBACK does not wait for the
//! record. It never writes a session this node no longer holds.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv::{Operation, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use fleetmq_core::engine::Engine;
use fleetmq_core::events::Event;
use fleetmq_core::store::{now_ms, SessionMeta};

use super::buckets::{self, Buckets};
use super::owners::Claims;

/// Longest one record request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The value of a session entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    pub node: String,
    pub instance: String,
    pub meta: SessionMeta,
    /// When JetStream stored the record (its clock, ms); not written.
    #[serde(skip)]
    pub written_ms: u64,
}

impl SessionRecord {
    /// True when the session ended by expiry while offline.
    pub fn expired(&self, now_ms: u64) -> bool {
        let expiry = self.meta.expiry_interval;
        match self.meta.disconnected_at_ms {
            Some(at) if expiry != u32::MAX => now_ms > at + u64::from(expiry) * 1000,
            _ => false,
        }
    }
}

/// The record of `client_id`, if one exists.
pub async fn fetch(sessions: &Store, client_id: &str) -> Result<Option<SessionRecord>, String> {
    let entry = tokio::time::timeout(REQUEST_TIMEOUT, sessions.entry(buckets::key(client_id)))
        .await
        .map_err(|_| "no answer from JetStream".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(entry
        .filter(|entry| entry.operation == Operation::Put)
        .and_then(|entry| {
            let mut record: SessionRecord = serde_json::from_slice(&entry.value).ok()?;
            let millis = entry.created.unix_timestamp_nanos() / 1_000_000;
            record.written_ms = u64::try_from(millis).unwrap_or(0);
            Some(record)
        }))
}

/// Removes the record of `client_id` (a clean start begins anew).
pub async fn remove(sessions: &Store, client_id: &str) -> Result<(), String> {
    tokio::time::timeout(REQUEST_TIMEOUT, sessions.delete(buckets::key(client_id)))
        .await
        .map_err(|_| "no answer from JetStream".to_string())?
        .map_err(|e| e.to_string())
}

/// Rewrites the record of `client_id` as its session stands now (marked
/// offline when `offline` and nothing is attached). `Ok` when there is
/// nothing to write: no session here any more, not claimed through the
/// cluster (NATS was away at its CONNECT) or released to another node, or
/// not persistent.
pub async fn rewrite(
    buckets: &Buckets,
    broker: &Engine,
    writer: &Writer,
    client_id: &str,
    offline: bool,
) -> Result<(), String> {
    let Some(session) = broker.session(client_id) else {
        writer.claims.forget(client_id);
        return Ok(());
    };
    if !writer.claims.holds(client_id) {
        return Ok(());
    }
    let meta = {
        let state = session.lock();
        if !state.is_persistent() {
            return Ok(());
        }
        // A Disconnected of a connection taken over on this node
        // arrives after the new one attached: still online.
        let offline = offline && state.attachment().is_none();
        state.meta(offline.then(now_ms))
    };
    let record = SessionRecord {
        node: writer.node.to_string(),
        instance: writer.instance.to_string(),
        meta,
        written_ms: 0,
    };
    let value = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
    let put = buckets.sessions.put(buckets::key(client_id), value.into());
    match tokio::time::timeout(REQUEST_TIMEOUT, put).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer from JetStream".into()),
    }
}

/// Who writes records: this node, and the client ids it holds.
#[derive(Debug, Clone)]
pub struct Writer {
    pub node: Arc<str>,
    pub instance: Arc<str>,
    pub claims: Arc<Claims>,
}

/// Rewrites records as the engine reports session changes. A CONNECT's
/// record is written by the connection before its CONNACK
/// ([`super::directory::Directory`]'s `record`), not from the event.
pub async fn write(
    opened: Arc<std::sync::OnceLock<Buckets>>,
    broker: std::sync::Weak<Engine>,
    mut events: broadcast::Receiver<Event>,
    writer: Writer,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = shutdown.changed() => return,
        };
        let (client_id, offline) = match event {
            Ok(Event::Subscribed { client_id, .. } | Event::Unsubscribed { client_id, .. }) => {
                (client_id, false)
            }
            Ok(Event::Disconnected { client_id, .. }) => (client_id, true),
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!("Cluster: {missed} session events missed; their records are rewritten at the next change.");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(broker) = broker.upgrade() else {
            return;
        };
        let Some(buckets) = opened.get() else {
            continue;
        };
        if let Err(error) = rewrite(buckets, &broker, &writer, &client_id, offline).await {
            tracing::debug!(client = %client_id, "Cluster: session record of {client_id} not written: {error}.");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn record(expiry_interval: u32, disconnected_at_ms: Option<u64>) -> SessionRecord {
        SessionRecord {
            node: "a".into(),
            instance: "1-2".into(),
            meta: SessionMeta {
                owner: None,
                expiry_interval,
                disconnected_at_ms,
                subscriptions: Vec::new(),
            },
            written_ms: 0,
        }
    }

    #[test]
    fn a_record_expires_only_offline_past_its_interval() {
        assert!(!record(60, None).expired(1_000_000));
        assert!(!record(60, Some(1_000)).expired(61_000));
        assert!(record(60, Some(1_000)).expired(61_001));
        assert!(!record(u32::MAX, Some(0)).expired(u64::MAX / 2));
    }

    #[test]
    fn a_record_round_trips_through_json_without_its_store_time() {
        let mut written = record(300, Some(5));
        written.written_ms = 42;
        let Ok(bytes) = serde_json::to_vec(&written) else {
            panic!("record not serialisable");
        };
        let Ok(read) = serde_json::from_slice::<SessionRecord>(&bytes) else {
            panic!("record not readable");
        };
        assert_eq!(read.meta, written.meta);
        assert_eq!(read.written_ms, 0);
    }
}
