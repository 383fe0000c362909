//! Provisioning by claim in the simulation: the flow is the firmware's
//! (`runner::identity`, the same as on the ESP32, key from
//! `provision::key`); this module is only where the simulated device keeps
//! its key and certificate, `--claim-state DIR` (the simulation's flash):
//! `DIR/<client id>.crt` and `.key` (SEC1 PEM, 0600), written atomically.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use fleetmq_firmware::config::ClientIdentity;
use fleetmq_firmware::provision::key::DeviceKey;
use fleetmq_firmware::runner::identity::{IdentityStore, TrueRandom};

/// `--claim-state` and `--renew-before-secs`.
#[derive(Debug, Clone)]
pub struct ClaimState {
    /// Where each device keeps `<client id>.crt` and `.key`.
    pub dir: PathBuf,
    /// Renew a stored certificate this close to its end (seconds).
    pub renew_before_secs: i64,
}

/// One device's files in the claim-state folder.
pub struct FolderStore {
    cert: PathBuf,
    key: PathBuf,
}

impl FolderStore {
    pub fn new(dir: &Path, client_id: &str) -> FolderStore {
        FolderStore {
            cert: dir.join(format!("{client_id}.crt")),
            key: dir.join(format!("{client_id}.key")),
        }
    }
}

impl IdentityStore for FolderStore {
    fn load(&mut self) -> Result<Option<ClientIdentity>, String> {
        match (std::fs::read(&self.cert), std::fs::read(&self.key)) {
            (Ok(cert_pem), Ok(key_pem)) => Ok(Some(ClientIdentity { cert_pem, key_pem })),
            (Err(e), _) | (_, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
        }
    }

    fn save(&mut self, key: &DeviceKey, cert_pem: &[u8]) -> Result<(), String> {
        store(&self.key, key.sec1_pem().as_bytes(), 0o600)?;
        store(&self.cert, cert_pem, 0o644)
    }

    fn describe(&self) -> String {
        self.cert.display().to_string()
    }
}

/// The operating system's RNG, standing in for the ESP32's TRNG.
pub struct HostRandom;

impl TrueRandom for HostRandom {
    fn fill(&mut self, out: &mut [u8; 32]) {
        rand::fill(out);
    }
}

/// Writes `bytes` atomically with `mode` (the key: 0600).
fn store(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let temp = path.with_extension("tmp");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, path))
        .map_err(|e| format!("{}: cannot write: {e}", path.display()))
}
