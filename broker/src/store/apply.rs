//! Applying ops to the redb file: one write transaction per call, the
//! tables and their keys, and the "early" updates (an acknowledgement
//! that reached the writer before its record). Used by the direct writer
//! (`writer`), by the WAL's checkpointer and by WAL recovery (`wal`).
//!
//! It owns the redb [`Database`] while the store runs and reopens it after
//! a failed commit; it must not know about tickets, acknowledgements or
//! health: callers decide what a failure means.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::BytesMut;
use redb::{Database, Durability, ReadableTable, TableDefinition, TableError};

use fleetmq_core::store::record::{self, ItemState};
use fleetmq_core::store::Op;

pub const RETAINED: TableDefinition<&str, &[u8]> = TableDefinition::new("retained");
pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
pub const ITEMS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("items");
pub const INCOMING: TableDefinition<(&str, u16), ()> = TableDefinition::new("incoming_qos2");
pub const WILLS: TableDefinition<&str, &[u8]> = TableDefinition::new("wills");
/// WAL bookkeeping (decision 0178): `applied_lsn`, the last WAL group
/// whose ops this file holds.
pub const WAL_META: TableDefinition<&str, u64> = TableDefinition::new("wal_meta");
/// The early updates as of the last checkpoint: (client, seq) -> state
/// (0 removed, 1 sent, 2 released) and packet id.
pub const EARLY: TableDefinition<(&str, u64), (u8, u16)> = TableDefinition::new("wal_early");
/// The key of the applied LSN in [`WAL_META`].
pub const APPLIED_LSN: &str = "applied_lsn";

/// Most early updates remembered (see [`Early`]).
const MAX_EARLY: usize = 100_000;

/// An early update as [`EARLY`] stores it: (client, seq), (tag, packet id).
pub type StoredEarly = ((Arc<str>, u64), (u8, u16));

/// What a checkpoint records with its ops, in the same transaction.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoint {
    /// The last WAL group the transaction holds.
    pub lsn: u64,
    /// Keep the early updates (a running checkpoint) or forget them
    /// (recovery: the records they wait for can no longer come).
    pub keep_early: bool,
}

/// The redb file, the ops not yet committed to it, and the early updates.
pub struct Applier {
    /// `None` after a failed commit: redb refuses further writes after an
    /// I/O error, so the next attempt reopens the file.
    database: Option<Database>,
    pub path: PathBuf,
    /// Ops not yet committed, in ticket order: the group being committed,
    /// and everything since the first failed commit. They are retried
    /// until they commit, so the disk catches up with the memory they
    /// describe (decision 0084).
    pub backlog: Vec<(u64, Op)>,
    /// Acknowledgements and state changes that overtook their record.
    early: HashMap<(Arc<str>, u64), Early>,
}

impl Applier {
    pub fn new(database: Database, path: PathBuf) -> Applier {
        Applier {
            database: Some(database),
            path,
            backlog: Vec::new(),
            early: HashMap::new(),
        }
    }

    /// Starts from the early updates a checkpoint recorded (recovery).
    pub fn with_early(mut self, early: Vec<StoredEarly>) -> Applier {
        for (key, (tag, id)) in early {
            let value = match tag {
                0 => Early::Removed,
                1 => Early::State(ItemState::Sent(id)),
                _ => Early::State(ItemState::Released(id)),
            };
            self.early.insert(key, value);
        }
        self
    }

    /// The database, when the last commit left it open.
    pub fn into_database(self) -> Option<Database> {
        self.database
    }

    /// Commits the backlog in one transaction (`Durability::Immediate`:
    /// one fsync); on success returns how many ops it held and empties it.
    /// On failure the backlog and the early updates stay as they were,
    /// for the next attempt.
    pub fn commit_backlog(&mut self, checkpoint: Option<Checkpoint>) -> Result<usize, String> {
        if self.backlog.is_empty() && self.database.is_some() && checkpoint.is_none() {
            return Ok(0);
        }
        let database = match self.database.take() {
            Some(database) => database,
            None => reopen(&self.path)?,
        };
        let mut undo = Vec::new();
        match apply(
            &database,
            &self.backlog,
            &mut self.early,
            &mut undo,
            checkpoint,
        ) {
            Ok(()) => {
                self.database = Some(database);
                if checkpoint.is_some_and(|c| !c.keep_early) {
                    self.early.clear();
                }
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

/// Opens the store file again after a failed commit (redb repairs it if
/// the failure left it marked dirty; that needs free space too).
fn reopen(path: &std::path::Path) -> Result<Database, String> {
    super::database_builder()
        .create(path)
        .map_err(|e| format!("reopening it failed: {e}"))
}

/// Applies `ops` in one write transaction, with the checkpoint's
/// bookkeeping when there is one.
fn apply(
    database: &Database,
    ops: &[(u64, Op)],
    early: &mut HashMap<(Arc<str>, u64), Early>,
    undo: &mut Undo,
    checkpoint: Option<Checkpoint>,
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
    if let Some(checkpoint) = checkpoint {
        txn.open_table(WAL_META)?
            .insert(APPLIED_LSN, checkpoint.lsn)?;
        let mut table = txn.open_table(EARLY)?;
        table.retain(|_, _| false)?;
        if checkpoint.keep_early {
            for ((client, seq), state) in early.iter() {
                let value = match state {
                    Early::Removed => (0, 0),
                    Early::State(ItemState::Sent(id)) => (1, *id),
                    Early::State(ItemState::Released(id)) => (2, *id),
                    // Never remembered early (a record is Queued when put).
                    Early::State(ItemState::Queued) => continue,
                };
                table.insert((&**client, *seq), value)?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// The WAL bookkeeping a file holds: its applied LSN (0: none) and the
/// early updates of its last checkpoint. Files written before the WAL
/// have neither table.
pub fn wal_state(database: &Database) -> Result<(u64, Vec<StoredEarly>), redb::Error> {
    use redb::ReadableDatabase;
    let txn = database.begin_read()?;
    let applied = match txn.open_table(WAL_META) {
        Ok(table) => table.get(APPLIED_LSN)?.map_or(0, |v| v.value()),
        Err(TableError::TableDoesNotExist(_)) => 0,
        Err(error) => return Err(error.into()),
    };
    let mut early = Vec::new();
    match txn.open_table(EARLY) {
        Ok(table) => {
            for entry in table.iter()? {
                let (key, value) = entry?;
                let (client, seq) = key.value();
                early.push(((Arc::from(client), seq), value.value()));
            }
        }
        Err(TableError::TableDoesNotExist(_)) => {}
        Err(error) => return Err(error.into()),
    }
    Ok((applied, early))
}

/// Early-update changes of one attempt, with the value each replaced, so a
/// rolled-back transaction can put them back.
pub(super) type Undo = Vec<((Arc<str>, u64), Option<Early>)>;

/// What happened to a delivery before its record arrived. A message's
/// records are submitted after it is queued in memory, so a fast
/// subscriber's acknowledgement (or its QoS 2 progress) can reach the
/// writer first; it is remembered until the record comes, and the record is
/// then written in that state (or not at all).
#[derive(Debug, Clone, Copy)]
pub(super) enum Early {
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
