//! The writer thread: applies ops in groups, one write transaction and one
//! fsync per group, and publishes the highest committed ticket.
//!
//! Grouping (decision 0168): `always` and `batch` commit naturally: the
//! next commit starts as soon as the previous one ended, with everything
//! that arrived meanwhile (at most `MAX_GROUP` ops), and no timer on the
//! acknowledgement path. Only an explicit `batch_interval_ms` above 0 makes
//! `batch` linger that long for more (fewer fsyncs on flash that wears);
//! `periodic` commits every `periodic_interval_secs` and acknowledgements
//! do not wait for it.
//!
//! A failed commit is never reported as committed: [`Progress`] tells
//! waiting acknowledgements which tickets failed, [`StoreHealth`] tells
//! the rest of the broker, and the uncommitted ops are kept and retried
//! (reopening the file) until a commit succeeds.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use redb::{Database, Durability, ReadableTable, TableDefinition};
use tokio::sync::watch;

use fleetmq_core::config::{FsyncPolicy, StoreConfig};
use fleetmq_core::store::record::{self, ItemState};
use fleetmq_core::store::{Op, Progress, StoreHealth};

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
    /// `None` after a failed commit: redb refuses further writes after an
    /// I/O error, so the next attempt reopens the file.
    database: Option<Database>,
    path: PathBuf,
    config: StoreConfig,
    /// What is committed and what failed, for acknowledgements waiting on
    /// their tickets.
    progress: watch::Sender<Progress>,
    /// Healthy or failing, for refusals, `/readyz` and metrics; only this
    /// thread changes it.
    health: Arc<StoreHealth>,
    /// Ops not yet committed, in ticket order: the group being committed,
    /// and everything since the first failed commit. They are retried
    /// until they commit, so the disk catches up with the memory they
    /// describe (decision 0084).
    backlog: Vec<(u64, Op)>,
    /// Acknowledgements and state changes that overtook their record.
    early: HashMap<(Arc<str>, u64), Early>,
}

/// First and longest wait between commit attempts while failing.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

impl Writer {
    pub fn new(
        database: Database,
        path: PathBuf,
        config: StoreConfig,
        progress: watch::Sender<Progress>,
        health: Arc<StoreHealth>,
    ) -> Writer {
        Writer {
            database: Some(database),
            path,
            config,
            progress,
            health,
            backlog: Vec::new(),
            early: HashMap::new(),
        }
    }

    /// Runs until every sender is gone, then commits what is left.
    ///
    /// While commits fail, arriving ops join the backlog and are reported
    /// failed at once (their acknowledgements become refusals), and the
    /// backlog is retried with a growing pause (`RETRY_MIN`..`RETRY_MAX`).
    pub fn run(mut self, receiver: Receiver<(u64, Op)>) {
        let window = match self.config.fsync {
            FsyncPolicy::Always => Duration::ZERO,
            FsyncPolicy::Batch => Duration::from_millis(self.config.batch_interval_ms),
            FsyncPolicy::Periodic => Duration::from_secs(self.config.periodic_interval_secs.max(1)),
        };
        let mut closing = false;
        let mut progress = Progress::default();
        // Some while failing: when the next commit attempt is due.
        let mut retry_at: Option<Instant> = None;
        let mut pause = RETRY_MIN;
        while !closing {
            let first = match retry_at {
                None => match receiver.recv() {
                    Ok(op) => Some(op),
                    Err(_) => break,
                },
                Some(at) => {
                    match receiver.recv_timeout(at.saturating_duration_since(Instant::now())) {
                        Ok(op) => Some(op),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => {
                            closing = true;
                            None
                        }
                    }
                }
            };
            if let Some(first) = first {
                // While failing nothing waits for more: the ops only join
                // the backlog.
                let window = if retry_at.is_some() {
                    Duration::ZERO
                } else {
                    window
                };
                closing |= gather(&receiver, first, window, &mut self.backlog);
            }
            let last = self.backlog.last().map_or(0, |(ticket, _)| *ticket);
            progress.attempted = progress.attempted.max(last);
            if retry_at.is_some_and(|at| Instant::now() < at) && !closing {
                // Failed for now, without touching the disk.
                let _ = self.progress.send(progress);
                continue;
            }
            match self.commit_backlog() {
                Ok(written) => {
                    self.health.committed(written);
                    self.health.recovered(&self.path, written);
                    progress.committed = progress.attempted;
                    retry_at = None;
                    pause = RETRY_MIN;
                }
                Err(error) => {
                    self.health.failed(&self.path, &error);
                    retry_at = Some(Instant::now() + pause);
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
            let _ = self.progress.send(progress);
        }
        if !self.backlog.is_empty() {
            tracing::error!(
                "Stopping with {} changes the store {} could not commit; they are lost.",
                self.backlog.len(),
                self.path.display()
            );
        }
    }

    /// Commits the backlog in one transaction; on success returns how many
    /// ops it held and empties it. On failure the backlog and the early
    /// updates stay as they were, for the next attempt.
    fn commit_backlog(&mut self) -> Result<usize, String> {
        if self.backlog.is_empty() && self.database.is_some() {
            return Ok(0);
        }
        let database = match self.database.take() {
            Some(database) => database,
            None => reopen(&self.path)?,
        };
        let mut undo = Vec::new();
        match apply(&database, &self.backlog, &mut self.early, &mut undo) {
            Ok(()) => {
                self.database = Some(database);
                if self.early.len() > MAX_EARLY {
                    // Only acknowledgements for records that will never
                    // come (their session ended first) can pile up here.
                    tracing::warn!("Forgetting {} early store updates.", self.early.len());
                    self.early.clear();
                }
                let written = self.backlog.len();
                self.backlog.clear();
                Ok(written)
            }
            Err(error) => {
                // The transaction was rolled back: so are the early updates
                // it made. The Database is dropped (closed) here.
                for (key, previous) in undo.into_iter().rev() {
                    match previous {
                        Some(early) => self.early.insert(key, early),
                        None => self.early.remove(&key),
                    };
                }
                Err(error.to_string())
            }
        }
    }
}

/// Moves `first` and whatever else arrives within `window` (at most
/// `MAX_GROUP` ops) into `into`; true when every sender is gone.
fn gather(
    receiver: &Receiver<(u64, Op)>,
    first: (u64, Op),
    window: Duration,
    into: &mut Vec<(u64, Op)>,
) -> bool {
    into.push(first);
    let deadline = Instant::now() + window;
    let mut taken = 1;
    while taken < MAX_GROUP {
        let now = Instant::now();
        let next = if now >= deadline {
            receiver.try_recv().map_err(|e| match e {
                std::sync::mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                std::sync::mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        } else {
            receiver.recv_timeout(deadline - now)
        };
        match next {
            Ok(op) => {
                into.push(op);
                taken += 1;
            }
            Err(RecvTimeoutError::Timeout) => return false,
            Err(RecvTimeoutError::Disconnected) => return true,
        }
    }
    false
}

/// Opens the store file again after a failed commit (redb repairs it if
/// the failure left it marked dirty; that needs free space too).
fn reopen(path: &std::path::Path) -> Result<Database, String> {
    Database::builder()
        .create(path)
        .map_err(|e| format!("reopening it failed: {e}"))
}

/// Applies `ops` in one write transaction.
fn apply(
    database: &Database,
    ops: &[(u64, Op)],
    early: &mut HashMap<(Arc<str>, u64), Early>,
    undo: &mut Undo,
) -> Result<(), redb::Error> {
    let mut txn = database.begin_write()?;
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
        for (_, op) in ops {
            tables.apply(op, early, undo)?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// Early-update changes of one attempt, with the value each replaced, so a
/// rolled-back transaction can put them back.
type Undo = Vec<((Arc<str>, u64), Option<Early>)>;

/// What happened to a delivery before its record arrived. A message's
/// records are submitted after it is queued in memory, so a fast
/// subscriber's acknowledgement (or its QoS 2 progress) can reach the
/// writer first; it is remembered until the record comes, and the record is
/// then written in that state (or not at all).
#[derive(Debug, Clone, Copy)]
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
        op: &Op,
        early: &mut HashMap<(Arc<str>, u64), Early>,
        undo: &mut Undo,
    ) -> Result<(), redb::Error> {
        self.buf.clear();
        match op {
            Op::Batch(ops) => {
                for op in ops {
                    self.apply(op, early, undo)?;
                }
            }
            Op::RetainSet(message) => {
                if let Err(error) = record::put_message(&mut self.buf, message) {
                    tracing::warn!(
                        "Retained message on '{}' not stored: {error}.",
                        message.topic
                    );
                    return Ok(());
                }
                self.retained.insert(&*message.topic, &self.buf[..])?;
            }
            Op::RetainClear(topic) => {
                self.retained.remove(&**topic)?;
            }
            Op::SessionPut(client, meta) => match serde_json::to_vec(meta) {
                Ok(json) => {
                    self.sessions.insert(&**client, &json[..])?;
                }
                Err(error) => tracing::warn!("Session {client} not stored: {error}."),
            },
            Op::SessionDelete(client) => {
                self.sessions.remove(&**client)?;
                self.items
                    .retain_in((&**client, 0)..=(&**client, u64::MAX), |_, _| false)?;
                self.incoming
                    .retain_in((&**client, 0)..=(&**client, u16::MAX), |_, _| false)?;
                let gone: Vec<_> = early
                    .keys()
                    .filter(|(other, _)| other == client)
                    .cloned()
                    .collect();
                for key in gone {
                    let previous = early.remove(&key);
                    undo.push((key, previous));
                }
            }
            Op::ItemPut(client, item) => {
                let Some(seq) = item.seq else {
                    return Ok(());
                };
                let key = (Arc::clone(client), seq);
                let state = match early.remove(&key) {
                    Some(Early::Removed) => {
                        undo.push((key, Some(Early::Removed)));
                        return Ok(());
                    }
                    Some(Early::State(state)) => {
                        undo.push((key, Some(Early::State(state))));
                        state
                    }
                    None => ItemState::Queued,
                };
                if let Err(error) = record::put_item(&mut self.buf, item, state) {
                    tracing::warn!("Queued message for {client} not stored: {error}.");
                    return Ok(());
                }
                self.items.insert((&**client, seq), &self.buf[..])?;
            }
            Op::ItemState(client, seq, item, state) => {
                if self.items.get((&**client, *seq))?.is_none() {
                    let key = (Arc::clone(client), *seq);
                    let previous = early.insert(key.clone(), Early::State(*state));
                    undo.push((key, previous));
                    return Ok(());
                }
                if record::put_item(&mut self.buf, item, *state).is_ok() {
                    self.items.insert((&**client, *seq), &self.buf[..])?;
                }
            }
            Op::ItemRemove(client, seq) => {
                if self.items.remove((&**client, *seq))?.is_none() {
                    let key = (Arc::clone(client), *seq);
                    let previous = early.insert(key.clone(), Early::Removed);
                    undo.push((key, previous));
                }
            }
            Op::IncomingAdd(client, id) => {
                self.incoming.insert((&**client, *id), ())?;
            }
            Op::IncomingRemove(client, id) => {
                self.incoming.remove((&**client, *id))?;
            }
            Op::WillPut(client, message, publish_at_ms) => {
                self.buf.extend_from_slice(&publish_at_ms.to_be_bytes());
                if record::put_message(&mut self.buf, message).is_ok() {
                    self.wills.insert(&**client, &self.buf[..])?;
                }
            }
            Op::WillClear(client) => {
                self.wills.remove(&**client)?;
            }
        }
        Ok(())
    }
}
