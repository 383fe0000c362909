//! `fleetmq migrate mosquitto --db FILE`: a Mosquitto persistence file
//! imported into fleetmq's store in one commit.
//!
//! The file is read and planned whole first (`reader`, `plan`); only then
//! is the store opened, through the same [`crate::store::open`] and
//! [`Store`] handle the broker uses, and every record handed to the writer
//! as one [`Op::Batch`]: one redb write transaction (with the write-ahead
//! log, one group of the log, applied to redb in one transaction), so the
//! store ends with all of it or none of it. A store that a running broker
//! holds is refused by redb's file lock. A session the store already has
//! is a conflict that stops the import before anything is written.
//!
//! It must not run beside a broker on the same store, and must not write
//! anything when the file, the plan or the store refuses.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use fleetmq_core::config::Config;
use fleetmq_core::store::{record, ItemState, Op, Store, StoreError, TicketState};

use super::plan::{plan, Plan};
use super::reader::{read, ReadError};

/// Why nothing was imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}; nothing was imported")]
    Damaged { path: PathBuf, source: ReadError },
    #[error("{0}")]
    Store(String),
    #[error(
        "the store already holds the session(s) {0}; nothing was imported (Mosquitto's sessions \
         would replace fleetmq's: remove them first, e.g. by connecting with a clean start)"
    )]
    Conflict(String),
}

/// What an import did (or, dry, would do): one line per record.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
    pub retained: usize,
    pub sessions: usize,
    pub deliveries: usize,
    pub skipped: usize,
}

/// Reads and checks `db`, then (unless `dry_run`) writes it into the store
/// `config` names.
pub fn import(db: &Path, config: &Config, dry_run: bool) -> Result<Report, ImportError> {
    let bytes = std::fs::read(db).map_err(|source| ImportError::Io {
        path: db.to_path_buf(),
        source,
    })?;
    let damaged = |source| ImportError::Damaged {
        path: db.to_path_buf(),
        source,
    };
    let records = read(Bytes::from(bytes)).map_err(damaged)?;
    let now_secs = i64::try_from(record::now_ms() / 1000).unwrap_or(i64::MAX);
    let plan = plan(&records, now_secs).map_err(damaged)?;
    let mut report = describe(&plan);
    if dry_run {
        return Ok(report);
    }
    let (store, restored) = crate::store::open(&config.data_dir, &config.store).map_err(|e| {
        ImportError::Store(match e {
            StoreError::Open { path, detail } if detail.contains("already open") => format!(
                "the store {} is in use (is fleetmq running? stop it first, e.g. `systemctl stop \
                 fleetmq`); nothing was imported",
                path.display()
            ),
            other => format!("{other}; nothing was imported"),
        })
    })?;
    let existing: HashSet<&str> = restored.sessions.iter().map(|s| &*s.client_id).collect();
    let conflicts: Vec<&str> = plan
        .sessions
        .iter()
        .map(|s| &*s.client_id)
        .filter(|id| existing.contains(id))
        .collect();
    if !conflicts.is_empty() {
        store.close();
        return Err(ImportError::Conflict(conflicts.join(", ")));
    }
    let retained_before: HashSet<&str> = restored.retained.iter().map(|m| &*m.topic).collect();
    for message in &plan.retained {
        if retained_before.contains(&*message.topic) {
            report.lines.push(format!(
                "replaces the retained message fleetmq had on {}",
                message.topic
            ));
        }
    }
    let ops = ops(&plan, &store).inspect_err(|_| store.close())?;
    let ticket = store.submit(Op::Batch(ops));
    // Closing commits what was submitted and stops the writer: the
    // progress it published last is final.
    store.close();
    let state = store.progress().borrow().state(ticket);
    if ticket == 0 || state != TicketState::Committed {
        let reason = store
            .health()
            .reason()
            .unwrap_or_else(|| "the writer stopped".into());
        return Err(ImportError::Store(format!(
            "the store could not commit the import ({reason}); nothing was imported"
        )));
    }
    Ok(report)
}

/// The store's ops for `plan`, every record encoded once here first so that
/// none can be dropped by the writer (it skips records that do not encode).
fn ops(plan: &Plan, store: &Arc<Store>) -> Result<Vec<Op>, ImportError> {
    let mut scratch = BytesMut::new();
    let refuse = |what: String| ImportError::Store(format!("{what}; nothing was imported"));
    let mut ops = Vec::new();
    for message in &plan.retained {
        scratch.clear();
        record::put_message(&mut scratch, message)
            .map_err(|e| refuse(format!("retained message on {}: {e}", message.topic)))?;
        ops.push(Op::RetainSet(Arc::clone(message)));
    }
    for session in &plan.sessions {
        serde_json::to_vec(&session.meta)
            .map_err(|e| refuse(format!("session {}: {e}", session.client_id)))?;
        ops.push(Op::SessionPut(
            Arc::clone(&session.client_id),
            session.meta.clone(),
        ));
        for (item, state) in &session.items {
            let mut item = item.clone();
            let seq = store.next_seq();
            item.seq = Some(seq);
            scratch.clear();
            record::put_item(&mut scratch, &item, *state)
                .map_err(|e| refuse(format!("message for {}: {e}", session.client_id)))?;
            let client = Arc::clone(&session.client_id);
            if *state != ItemState::Queued {
                ops.push(Op::ItemPut(Arc::clone(&client), item.clone()));
                ops.push(Op::ItemState(client, seq, item, *state));
            } else {
                ops.push(Op::ItemPut(client, item));
            }
        }
    }
    Ok(ops)
}

/// One line per record imported or skipped.
fn describe(plan: &Plan) -> Report {
    let mut report = Report {
        retained: plan.retained.len(),
        sessions: plan.sessions.len(),
        deliveries: plan.sessions.iter().map(|s| s.items.len()).sum(),
        skipped: plan.skipped.len(),
        ..Report::default()
    };
    for message in &plan.retained {
        report.lines.push(format!(
            "retained: {} (QoS {}, {} bytes)",
            message.topic,
            message.qos as u8,
            message.payload.len()
        ));
    }
    for session in &plan.sessions {
        let mut line = format!("session: {} (expiry ", session.client_id);
        match session.meta.expiry_interval {
            u32::MAX => line.push_str("never"),
            secs => {
                let _ = write!(line, "{secs} s");
            }
        }
        let _ = write!(
            line,
            ", {} subscription(s), {} queued or in-flight message(s); no owner: the first client \
             to attach claims it)",
            session.meta.subscriptions.len(),
            session.items.len()
        );
        report.lines.push(line);
        for (filter, sub) in &session.meta.subscriptions {
            report
                .lines
                .push(format!("  subscription: {filter} (QoS {})", sub.qos));
        }
    }
    for reason in &plan.skipped {
        report.lines.push(format!("skipped: {reason}"));
    }
    report
}
