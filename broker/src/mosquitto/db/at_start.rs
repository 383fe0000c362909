//! The Mosquitto persistence file imported at the first start
//! (`store.import_mosquitto_db`, from `persistence_file`): a lab that
//! points fleetmq at its mosquitto.conf keeps its retained messages and
//! queued messages without running `fleetmq migrate` by hand.
//!
//! "First start" means: the store file does not exist. The import goes
//! into a temporary store file beside it, which is renamed into place
//! only once the import has committed: a crash half-way leaves no store,
//! so the next start imports again, never a store that silently lacks the
//! file's messages. The import bypasses the write-ahead log (it is one
//! redb transaction into that file, nothing beside it). Mosquitto's file
//! is only read, never changed.
//!
//! Owns: the first-start decision and the rename. Must not: run once the
//! broker holds its store, or import into an existing store.

use std::path::{Path, PathBuf};

use fleetmq_core::config::Config;

/// Imports the configured file when the store does not exist yet; Ok(())
/// when there is nothing to do. Errors say that nothing was imported and
/// what to do.
pub fn import_on_first_start(config: &Config) -> Result<(), String> {
    let Some(db) = &config.store.import_mosquitto_db else {
        return Ok(());
    };
    if !config.store.enabled {
        return Ok(());
    }
    let store_path = resolve(&config.data_dir, &config.store.path);
    if store_path.exists() {
        return Ok(());
    }
    let db = resolve(&config.data_dir, db);
    if !db.exists() {
        tracing::info!(
            "No Mosquitto persistence file at {}: the store starts empty.",
            db.display()
        );
        return Ok(());
    }
    let mut temporary = store_path.clone().into_os_string();
    temporary.push(".importing");
    let temporary = PathBuf::from(temporary);
    // Left by an import that did not finish: never committed, never used.
    if temporary.exists() {
        std::fs::remove_file(&temporary).map_err(|error| {
            format!(
                "cannot remove the unfinished import {}: {error}",
                temporary.display()
            )
        })?;
    }
    let mut staged = config.clone();
    staged.store.path = temporary.clone();
    // One batch straight into the temporary file: only that file is
    // renamed into place, so a write-ahead log (the default, decision
    // 0178) would leave `<temporary>.wal/` behind, and after a crash its
    // group would be replayed into the next attempt's file.
    staged.store.wal = false;
    let report = super::import(&db, &staged, false).map_err(|error| {
        let _ = std::fs::remove_file(&temporary);
        format!(
            "importing the Mosquitto persistence file {} at the first start: {error}. \
             Move the file aside to start with an empty store, or import it later with \
             `fleetmq migrate mosquitto --db FILE`",
            db.display()
        )
    })?;
    std::fs::rename(&temporary, &store_path)
        .and_then(|()| sync_dir(store_path.parent()))
        .map_err(|error| {
            format!(
                "cannot move the imported store {} to {}: {error}; nothing was imported",
                temporary.display(),
                store_path.display()
            )
        })?;
    for line in &report.lines {
        tracing::debug!("Imported from {}: {line}", db.display());
    }
    tracing::info!(
        "Imported the Mosquitto persistence file {}: {} retained messages, {} sessions, {} queued or in-flight messages, {} records skipped (the file is left as it was).",
        db.display(),
        report.retained,
        report.sessions,
        report.deliveries,
        report.skipped
    );
    Ok(())
}

fn resolve(data_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        data_dir.join(path)
    }
}

/// Makes the rename durable.
fn sync_dir(dir: Option<&Path>) -> std::io::Result<()> {
    match dir {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}
