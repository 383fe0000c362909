//! Requests waiting for an operator (`approval` policy), kept as files so
//! that the broker, `fleetmq certs approve` and the dashboard share them
//! without talking to each other, and a restart forgets nothing:
//!
//! ```text
//! <data_dir>/provision/pending/<ID>.json    written by the broker
//! <data_dir>/provision/approved/<ID>        written by an operator: the key's SHA-256
//! ```
//!
//! An approval names the key of the request it approves: the device that
//! asks again with that key gets its certificate; another key (someone
//! else with the shared claim certificate) stays pending.
//!
//! Owns those two folders. Must not: sign or answer.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::certs::device_name_check;

/// One request waiting for approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub device_id: String,
    /// SHA-256 of the requested public key (hex).
    pub key_sha256: String,
    /// The claim certificate's identity that asked.
    pub requested_by: Option<String>,
    /// RFC 3339.
    pub requested_at: String,
}

/// The two folders.
#[derive(Debug, Clone)]
pub struct Approvals {
    dir: PathBuf,
}

impl Approvals {
    /// `<dir>/pending` and `<dir>/approved`; `dir` is usually
    /// `<data_dir>/provision`.
    pub fn new(dir: &Path) -> Approvals {
        Approvals {
            dir: dir.to_path_buf(),
        }
    }

    fn pending_path(&self, id: &str) -> PathBuf {
        self.dir.join("pending").join(format!("{id}.json"))
    }

    fn approved_path(&self, id: &str) -> PathBuf {
        self.dir.join("approved").join(id)
    }

    /// Every pending request, by device id.
    pub fn list(&self) -> Result<Vec<Pending>, String> {
        let folder = self.dir.join("pending");
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(format!("cannot read {}: {error}", folder.display())),
        };
        let mut pending = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
            match serde_json::from_str::<Pending>(&text) {
                Ok(request) => pending.push(request),
                Err(error) => tracing::warn!("Skipping {}: {error}.", path.display()),
            }
        }
        pending.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        Ok(pending)
    }

    /// Records `request` as waiting (replacing an earlier one of the id).
    pub fn add(&self, request: &Pending) -> Result<(), String> {
        let text = serde_json::to_string_pretty(request).map_err(|error| error.to_string())?;
        write(&self.pending_path(&request.device_id), text.as_bytes())
    }

    /// Whether the operator approved `id` for the key `key_sha256`.
    pub fn is_approved(&self, id: &str, key_sha256: &str) -> bool {
        std::fs::read_to_string(self.approved_path(id)).is_ok_and(|text| text.trim() == key_sha256)
    }

    /// Forgets `id` once its certificate was issued.
    pub fn done(&self, id: &str) {
        let _ = std::fs::remove_file(self.pending_path(id));
        let _ = std::fs::remove_file(self.approved_path(id));
    }

    /// Approves the pending request of `id`; the device gets its
    /// certificate the next time it asks with the same key.
    pub fn approve(&self, id: &str) -> Result<Pending, String> {
        device_name_check(id)?;
        let pending = self.find(id)?;
        write(&self.approved_path(id), pending.key_sha256.as_bytes())?;
        Ok(pending)
    }

    /// Drops the pending request of `id` (it may ask again and wait again).
    pub fn deny(&self, id: &str) -> Result<Pending, String> {
        device_name_check(id)?;
        let pending = self.find(id)?;
        std::fs::remove_file(self.pending_path(id))
            .map_err(|error| format!("cannot remove the request of {id}: {error}"))?;
        Ok(pending)
    }

    fn find(&self, id: &str) -> Result<Pending, String> {
        self.list()?
            .into_iter()
            .find(|pending| pending.device_id == id)
            .ok_or_else(|| format!("no request of {id:?} is waiting for approval"))
    }
}

/// Writes atomically (temporary file, fsync, rename), folders 0700.
fn write(path: &Path, contents: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
    let temp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(contents)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, path))
        .map_err(|error| format!("cannot write {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn approve_binds_the_key_and_done_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let approvals = Approvals::new(dir.path());
        let request = Pending {
            device_id: "esp32_1".into(),
            key_sha256: "aa".into(),
            requested_by: Some("claim-b1".into()),
            requested_at: "2026-01-01T00:00:00Z".into(),
        };
        approvals.add(&request).unwrap();
        assert_eq!(approvals.list().unwrap(), std::slice::from_ref(&request));
        assert!(!approvals.is_approved("esp32_1", "aa"));
        approvals.approve("esp32_1").unwrap();
        assert!(approvals.is_approved("esp32_1", "aa"));
        assert!(!approvals.is_approved("esp32_1", "bb"));
        approvals.done("esp32_1");
        assert!(approvals.list().unwrap().is_empty());
        assert!(approvals.approve("esp32_1").is_err());
        assert!(approvals.approve("../x").is_err());
    }
}
