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
    /// The listeners (by name) whose devices may use the OTA topics; empty:
    /// every listener (a device still needs a certificate naming its client
    /// id). On the others `$fleetmq/ota/...` is refused like any topic the
    /// client may not use (docs/ota.md, "Listeners").
    pub listeners: Vec<String>,
}

impl OtaConfig {
    /// Whether devices connected through `listener` are served.
    pub fn serves(&self, listener: &str) -> bool {
        self.listeners.is_empty() || self.listeners.iter().any(|name| name == listener)
    }
}

/// Checks of `[ota]` that serde cannot express: every name in
/// `listeners` is a configured listener's, and the service is on.
pub(super) fn validate_ota(
    config: &super::model::Config,
    errors: &mut Vec<super::validate::ValidationError>,
) {
    use super::validate::ValidationError;
    if !config.ota.listeners.is_empty() && !config.ota.enabled {
        errors.push(ValidationError::new(
            "ota.listeners",
            "the firmware update service is off (set `[ota] enabled = true`, or remove \
             `listeners`)",
        ));
    }
    for name in &config.ota.listeners {
        if !config
            .listeners
            .iter()
            .any(|listener| &listener.name == name)
        {
            errors.push(ValidationError::new(
                "ota.listeners",
                format!(
                    "no listener is named `{name}` (give the [[listener]] devices use a `name` \
                     and list it here)"
                ),
            ));
        }
    }
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
            listeners: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::config::{Config, ListenerConfig};

    #[test]
    fn listed_listeners_must_exist_and_the_service_be_on() {
        let mut config = Config {
            listeners: vec![ListenerConfig {
                name: "devices".into(),
                ..ListenerConfig::default()
            }],
            ..Config::default()
        };
        config.ota.listeners = vec!["devices".into(), "lab".into()];
        let mut errors = Vec::new();
        validate_ota(&config, &mut errors);
        let messages: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
        assert_eq!(errors.len(), 2, "{messages:?}");
        assert!(messages[0].contains("service is off"));
        assert!(messages[1].contains("no listener is named `lab`"));
        config.ota.enabled = true;
        config.ota.listeners.pop();
        errors.clear();
        validate_ota(&config, &mut errors);
        assert!(errors.is_empty());
        assert!(config.ota.serves("devices") && !config.ota.serves("lab"));
        assert!(OtaConfig::default().serves("any"));
    }
}
