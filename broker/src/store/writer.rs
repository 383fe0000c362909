//! The writer thread: applies ops in groups, one write transaction and one
//! fsync per group, and publishes the highest committed ticket.
//!
//! Grouping: `always` commits whatever has arrived as soon as the previous
//! commit is done (concurrent changes share an fsync); `batch` also waits up
//! to `batch_interval_ms` for more; `periodic` commits every
//! `periodic_interval_secs` and acknowledgements do not wait for it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
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

/// Most early updates remembered (see [`Early`]).
const MAX_EARLY: usize = 100_000;

/// Most ops in one transaction, so one huge burst cannot hold every
/// acknowledgement behind a single giant commit.
const MAX_GROUP: usize = 10_000;

pub struct Writer {
    database: Database,
    path: PathBuf,
    config: StoreConfig,
    committed: watch::Sender<u64>,
    /// Acknowledgements and state changes that overtook their record.
    early: HashMap<(Arc<str>, u64), Early>,
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
            early: HashMap::new(),
        }
    }

    /// Runs until every sender is gone, then commits what is left.
    pub fn run(mut self, receiver: Receiver<(u64, Op)>) {
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

    fn apply(&mut self, group: Vec<(u64, Op)>) -> Result<(), redb::Error> {
        let mut txn = self.database.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut tables = Tables {
                retained: txn.open_table(RETAINED)?,
                sessions: txn.open_table(SESSIONS)?,
                items: txn.open_table(ITEMS)?,
                incoming: txn.open_table(INCOMING)?,
                wills: txn.open_table(WILLS)?,
                buf: BytesMut::new(),
            };
            for (_, op) in group {
                tables.apply(op, &mut self.early)?;
            }
            if self.early.len() > MAX_EARLY {
                // Only acknowledgements for records that will never come
                // (their session ended first) can pile up here.
                tracing::warn!("Forgetting {} early store updates.", self.early.len());
                self.early.clear();
            }
        }
        txn.commit()?;
        Ok(())
    }
}

/// What happened to a delivery before its record arrived. A message's
/// records are submitted after it is queued in memory, so a fast
/// subscriber's acknowledgement (or its QoS 2 progress) can reach the
/// writer first; it is remembered until the record comes, and the record is
/// then written in that state (or not at all).
#[derive(Debug)]
enum Early {
    Removed,
    State(ItemState),
}

/// The open tables of one write transaction.
struct Tables<'txn> {
    retained: redb::Table<'txn, &'static str, &'static [u8]>,
    sessions: redb::Table<'txn, &'static str, &'static [u8]>,
    items: redb::Table<'txn, (&'static str, u64), &'static [u8]>,
    incoming: redb::Table<'txn, (&'static str, u16), ()>,
    wills: redb::Table<'txn, &'static str, &'static [u8]>,
    buf: BytesMut,
}

impl Tables<'_> {
    fn apply(
        &mut self,
        op: Op,
        early: &mut HashMap<(Arc<str>, u64), Early>,
    ) -> Result<(), redb::Error> {
        self.buf.clear();
        match op {
            Op::Batch(ops) => {
                for op in ops {
                    self.apply(op, early)?;
                }
            }
            Op::RetainSet(message) => {
                if let Err(error) = record::put_message(&mut self.buf, &message) {
                    tracing::warn!(
                        "Retained message on '{}' not stored: {error}.",
                        message.topic
                    );
                    return Ok(());
                }
                self.retained.insert(&*message.topic, &self.buf[..])?;
            }
            Op::RetainClear(topic) => {
                self.retained.remove(&*topic)?;
            }
            Op::SessionPut(client, meta) => match serde_json::to_vec(&meta) {
                Ok(json) => {
                    self.sessions.insert(&*client, &json[..])?;
                }
                Err(error) => tracing::warn!("Session {client} not stored: {error}."),
            },
            Op::SessionDelete(client) => {
                self.sessions.remove(&*client)?;
                self.items
                    .retain_in((&*client, 0)..=(&*client, u64::MAX), |_, _| false)?;
                self.incoming
                    .retain_in((&*client, 0)..=(&*client, u16::MAX), |_, _| false)?;
                early.retain(|(other, _), _| *other != client);
            }
            Op::ItemPut(client, item) => {
                let Some(seq) = item.seq else {
                    return Ok(());
                };
                let state = match early.remove(&(Arc::clone(&client), seq)) {
                    Some(Early::Removed) => return Ok(()),
                    Some(Early::State(state)) => state,
                    None => ItemState::Queued,
                };
                if let Err(error) = record::put_item(&mut self.buf, &item, state) {
                    tracing::warn!("Queued message for {client} not stored: {error}.");
                    return Ok(());
                }
                self.items.insert((&*client, seq), &self.buf[..])?;
            }
            Op::ItemState(client, seq, item, state) => {
                if self.items.get((&*client, seq))?.is_none() {
                    early.insert((client, seq), Early::State(state));
                    return Ok(());
                }
                if record::put_item(&mut self.buf, &item, state).is_ok() {
                    self.items.insert((&*client, seq), &self.buf[..])?;
                }
            }
            Op::ItemRemove(client, seq) => {
                if self.items.remove((&*client, seq))?.is_none() {
                    early.insert((client, seq), Early::Removed);
                }
            }
            Op::IncomingAdd(client, id) => {
                self.incoming.insert((&*client, id), ())?;
            }
            Op::IncomingRemove(client, id) => {
                self.incoming.remove((&*client, id))?;
            }
            Op::WillPut(client, message, publish_at_ms) => {
                self.buf.extend_from_slice(&publish_at_ms.to_be_bytes());
                if record::put_message(&mut self.buf, &message).is_ok() {
                    self.wills.insert(&*client, &self.buf[..])?;
                }
            }
            Op::WillClear(client) => {
                self.wills.remove(&*client)?;
            }
        }
        Ok(())
    }
}
