//! Keeping `dynamic-security.json` up to date: after each change the whole
//! file is written to a temporary file beside it, synced, and renamed over
//! it (then the directory is synced), so a crash leaves the old file or
//! the new one, never half of one (decision 0139).
//!
//! The write happens on a thread of its own, never on the connection that
//! sent the command: the data path does not touch the disk. Snapshots are
//! written in order; when several wait, only the newest is written.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// Writes `contents` to `path` atomically (temp file, fsync, rename).
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dynamic-security.json".into());
    let temp = dir.join(format!(".{name}.fleetmq-tmp"));
    {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    // Keep the permissions of the file we replace (it holds hashes).
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&temp, meta.permissions());
    }
    std::fs::rename(&temp, path)?;
    if let Ok(dir) = std::fs::File::open(&dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// A thread that writes snapshots of the file.
#[derive(Debug)]
pub struct Saver {
    sender: mpsc::Sender<String>,
}

impl Saver {
    /// Starts the writer thread for `path`.
    pub fn start(path: PathBuf) -> std::io::Result<Saver> {
        let (sender, receiver) = mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("dynsec-save".into())
            .spawn(move || {
                while let Ok(mut text) = receiver.recv() {
                    // Only the newest of the waiting snapshots matters.
                    while let Ok(newer) = receiver.try_recv() {
                        text = newer;
                    }
                    match write_atomic(&path, text.as_bytes()) {
                        Ok(()) => tracing::debug!("dynsec: saved {}", path.display()),
                        Err(error) => tracing::error!(
                            "Error saving dynamic security config {}: {error} (check the directory's permissions; the change is in force but not on disk).",
                            path.display()
                        ),
                    }
                }
            })?;
        Ok(Saver { sender })
    }

    /// Queues a snapshot; never blocks.
    pub fn save(&self, text: String) {
        // The thread ends only with the process.
        let _ = self.sender.send(text);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dynsec.json");
        std::fs::write(&path, "old").unwrap();
        write_atomic(&path, b"new contents").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new contents");
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1);
    }
}
