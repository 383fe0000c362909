//! The `[ota]` table: the firmware update service (docs/ota.md,
//! decisions 0163-0166).
//!
//! Owns the settings and their defaults only. It must not read the files
//! it names (the broker's `ota` module does) or decide anything.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Firmware images, signed manifests and rollouts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtaConfig {
    /// Run the service (answer devices, drive rollouts). Uploads with
    /// `fleetmq firmware upload` work either way.
    pub enabled: bool,
    /// Images, manifests and rollouts; default `<data_dir>/ota`.
    pub dir: Option<PathBuf>,
    /// The folder holding the manifest signing key (`ota-signing.key`,
    /// made 0600 on first use); default `<data_dir>/pki`, the lab PKI.
    pub pki_dir: Option<PathBuf>,
    /// Largest image accepted, in bytes (default 1,966,080: one OTA slot
    /// of the documented 4 MB partition table).
    pub max_image_bytes: u64,
    /// Bytes per chunk a device fetches (default 4096: one flash sector;
    /// taken between 256 and 8192).
    pub chunk_bytes: u32,
    /// A device that was offered an update and reports nothing for this
    /// long is counted as failed (`timed out`), so a wave can finish.
    pub device_timeout_secs: u64,
}

impl Default for OtaConfig {
    fn default() -> Self {
        OtaConfig {
            enabled: false,
            dir: None,
            pki_dir: None,
            max_image_bytes: 1_966_080,
            chunk_bytes: 4096,
            device_timeout_secs: 600,
        }
    }
}
