//! The thread that writes the seen-certificates folder ([`super::seen`]).
//!
//! One thread, fed by a bounded queue, appends the leaves to one PEM
//! bundle, [`BUNDLE`], in batches: one `write` and one `fdatasync` for
//! the leaves of up to [`LINGER`] after the first. (It used to write one file per
//! certificate from a `spawn_blocking` task with an `fsync` each: a fleet
//! connecting for the first time, 10,000 new certificates at once, made
//! tokio start hundreds of blocking threads on the broker's core and ext4
//! allocate 10,000 inodes, and the fleet took two to three times as long
//! to be connected; issue 22.) A torn last block, from a crash during an
//! append, is cut off when the folder is next opened
//! ([`repair_torn_tail`]).
//!
//! It owns the writing only: which leaves to keep, and the bounds on
//! them, are `seen`'s. It never touches a connection; a failure is logged
//! once through the flag it is given.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::seen::{log_failure, pem};

/// The file in the seen-certificates folder the writer appends to.
/// (Folders from before it hold one `<fingerprint>.pem` per leaf; they are
/// read as well, and `certs audit` reads every PEM file of the folder.)
pub const BUNDLE: &str = "seen.pem";

/// Leaves waiting for the writer at most (a few KB each): beyond this, a
/// new certificate is not kept this time, and is tried again on its next
/// connect.
pub const QUEUE: usize = 4096;

/// Leaves written per sync at most.
pub const BATCH: usize = 1024;

/// How long the writer gathers leaves after the first of a batch: a
/// fleet's first connects (thousands a second) then cost a few syncs a
/// second, not one per wake-up. Nothing waits on it: the audit reads the
/// folder later, and a connection never waits for its certificate's write.
pub const LINGER: Duration = Duration::from_millis(500);

/// A leaf to keep, by its SHA-256 fingerprint.
pub type Job = ([u8; 32], Vec<u8>);

/// Starts the writer of `dir`. It ends when the returned sender is dropped.
pub fn spawn(dir: PathBuf, failure_logged: Arc<AtomicBool>) -> io::Result<SyncSender<Job>> {
    let (sender, receiver) = sync_channel(QUEUE);
    std::thread::Builder::new()
        .name("fleetmq-seen".into())
        .spawn(move || run(&dir, &receiver, &failure_logged))?;
    Ok(sender)
}

fn run(dir: &Path, receiver: &Receiver<Job>, failure_logged: &AtomicBool) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + LINGER;
        while batch.len() < BATCH {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(job) => batch.push(job),
                Err(RecvTimeoutError::Timeout) => break,
                // The store is gone: write what there is, then end.
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if let Err((path, error)) = write_batch(dir, &batch) {
            log_failure(failure_logged, &path, &error);
        }
    }
}

/// Appends every leaf of `batch` to `<dir>/`[`BUNDLE`] (0644) as PEM and
/// syncs it.
pub fn write_batch(dir: &Path, batch: &[Job]) -> Result<(), (PathBuf, io::Error)> {
    let path = dir.join(BUNDLE);
    let mut text = String::with_capacity(batch.len() * 700);
    for (_, leaf) in batch {
        text.push_str(&pem(leaf));
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(&path)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_data()
        })
        .map_err(|error| (path, error))
}

/// Cuts a bundle back to its last whole certificate (a crash during an
/// append leaves part of one). Returns the bundle's text.
pub fn repair_torn_tail(path: &Path) -> io::Result<Vec<u8>> {
    let mut text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    const END: &[u8] = b"-----END CERTIFICATE-----\n";
    let whole = text
        .windows(END.len())
        .rposition(|window| window == END)
        .map_or(0, |at| at + END.len());
    if whole < text.len() {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|file| {
                file.set_len(whole as u64)?;
                file.sync_all()
            })?;
        text.truncate(whole);
    }
    Ok(text)
}
