//! The writer thread: applies ops in groups, one write transaction and one
//! fsync per group, and publishes the highest committed ticket.
//!
//! Grouping: `always` commits whatever has arrived as soon as the previous
//! commit is done (concurrent changes share an fsync); `batch` also waits up
//! to `batch_interval_ms` for more; `periodic` commits every
//! `periodic_interval_secs` and acknowledgements do not wait for it.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use redb::{Database, Durability, ReadableTable, TableDefinition};
use tokio::sync::watch;

use super::record::{self, ItemState};
use super::Op;
use crate::config::{FsyncPolicy, StoreConfig};

pub const RETAINED: TableDefinition<&str, &[u8]> = TableDefinition::new("retained");
pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
pub const ITEMS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("items");
pub const INCOMING: TableDefinition<(&str, u16), ()> = TableDefinition::new("incoming_qos2");
pub const WILLS: TableDefinition<&str, &[u8]> = TableDefinition::new("wills");

/// Most ops in one transaction, so one huge burst cannot hold every
/// acknowledgement behind a single giant commit.
const MAX_GROUP: usize = 10_000;

pub struct Writer {
    database: Database,
    path: PathBuf,
    config: StoreConfig,
    committed: watch::Sender<u64>,
}

impl Writer {
    pub fn new(
        database: Database,
        path: PathBuf,
        config: StoreConfig,
        committed: watch::Sender<u64>,
    ) -> Writer {
        Writer {
            database,
            path,
            config,
            committed,
        }
    }

    /// Runs until every sender is gone, then commits what is left.
    pub fn run(self, receiver: Receiver<(u64, Op)>) {
        let window = match self.config.fsync {
            FsyncPolicy::Always => Duration::ZERO,
            FsyncPolicy::Batch => Duration::from_millis(self.config.batch_interval_ms),
            FsyncPolicy::Periodic => Duration::from_secs(self.config.periodic_interval_secs.max(1)),
        };
        let mut closing = false;
        while !closing {
            let Ok(first) = receiver.recv() else {
                break;
            };
            let mut group = vec![first];
            let deadline = Instant::now() + window;
            while group.len() < MAX_GROUP {
                let now = Instant::now();
                let next = if now >= deadline {
                    receiver.try_recv().map_err(|e| match e {
                        std::sync::mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                        std::sync::mpsc::TryRecvError::Disconnected => {
                            RecvTimeoutError::Disconnected
                        }
                    })
                } else {
                    receiver.recv_timeout(deadline - now)
                };
                match next {
                    Ok(op) => group.push(op),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        closing = true;
                        break;
                    }
                }
            }
            let last = group.last().map_or(0, |(ticket, _)| *ticket);
            if let Err(error) = self.apply(group) {
                // Availability over durability: the broker keeps serving,
                // loudly, rather than holding every acknowledgement forever.
                tracing::error!(
                    "Store commit to {} failed; recent changes are not durable: {error}.",
                    self.path.display()
                );
            }
            let _ = self.committed.send(last);
        }
    }

    fn apply(&self, group: Vec<(u64, Op)>) -> Result<(), redb::Error> {
        let mut txn = self.database.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut retained = txn.open_table(RETAINED)?;
            let mut sessions = txn.open_table(SESSIONS)?;
            let mut items = txn.open_table(ITEMS)?;
            let mut incoming = txn.open_table(INCOMING)?;
            let mut wills = txn.open_table(WILLS)?;
            let mut buf = BytesMut::new();
            for (_, op) in group {
                buf.clear();
                match op {
                    Op::RetainSet(message) => {
                        if let Err(error) = record::put_message(&mut buf, &message) {
                            tracing::warn!(
                                "Retained message on '{}' not stored: {error}.",
                                message.topic
                            );
                            continue;
                        }
                        retained.insert(&*message.topic, &buf[..])?;
                    }
                    Op::RetainClear(topic) => {
                        retained.remove(&*topic)?;
                    }
                    Op::SessionPut(client, meta) => match serde_json::to_vec(&meta) {
                        Ok(json) => {
                            sessions.insert(&*client, &json[..])?;
                        }
                        Err(error) => tracing::warn!("Session {client} not stored: {error}."),
                    },
                    Op::SessionDelete(client) => {
                        sessions.remove(&*client)?;
                        items.retain_in((&*client, 0)..=(&*client, u64::MAX), |_, _| false)?;
                        incoming.retain_in((&*client, 0)..=(&*client, u16::MAX), |_, _| false)?;
                    }
                    Op::ItemPut(client, item) => {
                        let Some(seq) = item.seq else { continue };
                        if let Err(error) = record::put_item(&mut buf, &item, ItemState::Queued) {
                            tracing::warn!("Queued message for {client} not stored: {error}.");
                            continue;
                        }
                        items.insert((&*client, seq), &buf[..])?;
                    }
                    Op::ItemState(client, seq, item, state) => {
                        // Only a delivery still stored changes state; one
                        // removed meanwhile stays removed.
                        if items.get((&*client, seq))?.is_none() {
                            continue;
                        }
                        if record::put_item(&mut buf, &item, state).is_ok() {
                            items.insert((&*client, seq), &buf[..])?;
                        }
                    }
                    Op::ItemRemove(client, seq) => {
                        items.remove((&*client, seq))?;
                    }
                    Op::IncomingAdd(client, id) => {
                        incoming.insert((&*client, id), ())?;
                    }
                    Op::IncomingRemove(client, id) => {
                        incoming.remove((&*client, id))?;
                    }
                    Op::WillPut(client, message, publish_at_ms) => {
                        buf.extend_from_slice(&publish_at_ms.to_be_bytes());
                        if record::put_message(&mut buf, &message).is_ok() {
                            wills.insert(&*client, &buf[..])?;
                        }
                    }
                    Op::WillClear(client) => {
                        wills.remove(&*client)?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }
}
