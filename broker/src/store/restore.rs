//! Reading the whole store at startup. Every record must decode: one that
//! does not stops the broker with the table and key named, so a damaged
//! store is reported and never silently emptied.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use redb::{Database, ReadableDatabase, ReadableTable};

use fleetmq_core::store::record::{self, SessionMeta};
use fleetmq_core::store::{Restored, RestoredSession, RestoredWill, StoreError};

use super::apply::{INCOMING, ITEMS, RETAINED, SESSIONS, WILLS};

fn damaged(path: &Path, table: &'static str, key: String, detail: impl ToString) -> StoreError {
    StoreError::Damaged {
        path: path.to_path_buf(),
        table,
        key,
        detail: detail.to_string(),
    }
}

fn open_error(path: &Path, error: impl ToString) -> StoreError {
    StoreError::Open {
        path: path.to_path_buf(),
        detail: error.to_string(),
    }
}

/// Reads every table; tables that do not exist yet are empty.
pub fn read_all(database: &Database, path: &Path) -> Result<Restored, StoreError> {
    // Create the tables on first start so readers find them.
    let init = database.begin_write().map_err(|e| open_error(path, e))?;
    {
        for table in [RETAINED, SESSIONS, WILLS] {
            init.open_table(table).map_err(|e| open_error(path, e))?;
        }
        init.open_table(ITEMS).map_err(|e| open_error(path, e))?;
        init.open_table(INCOMING).map_err(|e| open_error(path, e))?;
    }
    init.commit().map_err(|e| open_error(path, e))?;

    let txn = database.begin_read().map_err(|e| open_error(path, e))?;
    let mut restored = Restored::default();
    let read_err =
        |table: &'static str| move |e: redb::StorageError| damaged(path, table, "?".into(), e);

    let retained = txn.open_table(RETAINED).map_err(|e| open_error(path, e))?;
    for entry in retained.iter().map_err(read_err("retained"))? {
        let (key, value) = entry.map_err(read_err("retained"))?;
        let mut bytes = BytesMut::from(value.value());
        let message = record::get_message(&mut bytes)
            .map_err(|e| damaged(path, "retained", key.value().to_string(), e))?;
        restored.retained.push(Arc::new(message));
    }

    let mut sessions: HashMap<String, RestoredSession> = HashMap::new();
    let table = txn.open_table(SESSIONS).map_err(|e| open_error(path, e))?;
    for entry in table.iter().map_err(read_err("sessions"))? {
        let (key, value) = entry.map_err(read_err("sessions"))?;
        let client = key.value().to_string();
        let meta: SessionMeta = serde_json::from_slice(value.value())
            .map_err(|e| damaged(path, "sessions", client.clone(), e))?;
        sessions.insert(
            client.clone(),
            RestoredSession {
                client_id: Arc::from(client.as_str()),
                meta,
                items: Vec::new(),
                incoming_qos2: Vec::new(),
            },
        );
    }

    let table = txn.open_table(ITEMS).map_err(|e| open_error(path, e))?;
    for entry in table.iter().map_err(read_err("items"))? {
        let (key, value) = entry.map_err(read_err("items"))?;
        let (client, seq) = key.value();
        restored.max_seq = restored.max_seq.max(seq);
        let mut bytes = BytesMut::from(value.value());
        let item = record::get_item(&mut bytes, seq)
            .map_err(|e| damaged(path, "items", format!("{client}/{seq}"), e))?;
        // A delivery without its session is a leftover of a session that
        // ended as the broker stopped; it has no one to go to.
        if let Some(session) = sessions.get_mut(client) {
            session.items.push(item);
        }
    }

    let table = txn.open_table(INCOMING).map_err(|e| open_error(path, e))?;
    for entry in table.iter().map_err(read_err("incoming_qos2"))? {
        let (key, _) = entry.map_err(read_err("incoming_qos2"))?;
        let (client, id) = key.value();
        if let Some(session) = sessions.get_mut(client) {
            session.incoming_qos2.push(id);
        }
    }

    let table = txn.open_table(WILLS).map_err(|e| open_error(path, e))?;
    for entry in table.iter().map_err(read_err("wills"))? {
        let (key, value) = entry.map_err(read_err("wills"))?;
        let client = key.value().to_string();
        let raw = value.value();
        if raw.len() < 8 {
            return Err(damaged(path, "wills", client, "record truncated"));
        }
        let mut at = [0u8; 8];
        at.copy_from_slice(&raw[..8]);
        let mut bytes = BytesMut::from(&raw[8..]);
        let message = record::get_message(&mut bytes)
            .map_err(|e| damaged(path, "wills", client.clone(), e))?;
        restored.wills.push(RestoredWill {
            client_id: Arc::from(client.as_str()),
            message: Arc::new(message),
            publish_at_ms: u64::from_be_bytes(at),
        });
    }
    restored.sessions = sessions.into_values().collect();
    Ok(restored)
}
