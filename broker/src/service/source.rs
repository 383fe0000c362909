//! Where the configuration comes from, so that start-up, `check-config`
//! and a SIGHUP reload read it the same way: the built-in defaults, a
//! `fleetmq.toml`, or a Mosquitto configuration translated on the fly.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::mosquitto::{self, Note};
use fleetmq_core::config::{self as config, Config};

/// A configuration's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// No file: the built-in defaults (and `FLEETMQ_*` variables).
    Defaults,
    /// A `fleetmq.toml` (with `FLEETMQ_*` variables on top).
    Toml(PathBuf),
    /// A `mosquitto.conf`, translated, with the dashboard off unless the
    /// environment turns it on, and `FLEETMQ_*` variables on top.
    Mosquitto(PathBuf),
}

/// The two file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Mosquitto,
}

/// A loaded configuration and, for Mosquitto files, what was not carried
/// over.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub notes: Vec<Note>,
}

/// Why loading failed; displays as the loader's own messages, one problem
/// per line.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Toml(#[from] config::ConfigError),
    #[error(transparent)]
    Mosquitto(#[from] mosquitto::MosquittoError),
}

impl ConfigSource {
    /// Reads and validates the configuration.
    pub fn load(&self) -> Result<Loaded, LoadError> {
        match self {
            ConfigSource::Defaults => Ok(Loaded {
                config: config::load(None)?,
                notes: Vec::new(),
            }),
            ConfigSource::Toml(path) => Ok(Loaded {
                config: config::load(Some(path))?,
                notes: Vec::new(),
            }),
            ConfigSource::Mosquitto(path) => {
                let translation = mosquitto::translate_file(path)?;
                let mut config = translation.config;
                // Mosquitto opens no HTTP port, and a lab switching over
                // expects none: FLEETMQ_HTTP__ENABLED=true opens the
                // dashboard (docs/decisions/0083-dashboard-under-mosquitto-conf.md).
                config.http.enabled = false;
                Ok(Loaded {
                    config: config::apply_environment(&config)?,
                    notes: translation.notes,
                })
            }
        }
    }

    /// A source for `path` in the format its name or content shows:
    /// `.toml` is TOML, `.conf` is Mosquitto, otherwise the content decides.
    pub fn detect(path: &Path) -> ConfigSource {
        match detect_format(path) {
            Format::Toml => ConfigSource::Toml(path.to_path_buf()),
            Format::Mosquitto => ConfigSource::Mosquitto(path.to_path_buf()),
        }
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::Defaults => write!(f, "the built-in defaults"),
            ConfigSource::Toml(path) => write!(f, "{}", path.display()),
            ConfigSource::Mosquitto(path) => write!(f, "{} (Mosquitto format)", path.display()),
        }
    }
}

/// The format of the file at `path`; an unreadable file counts as TOML, so
/// that loading reports why it cannot be read.
pub fn detect_format(path: &Path) -> Format {
    match path.extension().and_then(|extension| extension.to_str()) {
        Some("toml") => Format::Toml,
        Some("conf") => Format::Mosquitto,
        _ => match std::fs::read_to_string(path) {
            Ok(text) if mosquitto::looks_like_mosquitto(&text) => Format::Mosquitto,
            _ => Format::Toml,
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn extension_then_content_decides_the_format() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        assert_eq!(
            detect_format(&write("a.toml", "listener 1883\n")),
            Format::Toml
        );
        assert_eq!(detect_format(&write("a.conf", "")), Format::Mosquitto);
        let mosquitto = "# lab\nlistener 8883 127.0.0.1\nrequire_certificate true\n";
        assert_eq!(
            detect_format(&write("broker", mosquitto)),
            Format::Mosquitto
        );
        let toml = "data_dir = \"x\"\n[[listener]]\nbind = \"127.0.0.1:1883\"\n";
        assert_eq!(detect_format(&write("broker2", toml)), Format::Toml);
        assert_eq!(
            detect_format(&write("broker3", "max_connections = 5\n")),
            Format::Toml
        );
        assert_eq!(detect_format(&dir.path().join("missing")), Format::Toml);
    }
}
