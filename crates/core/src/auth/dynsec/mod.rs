//! Mosquitto's dynamic security, as fleetmq's: clients with PBKDF2
//! passwords, groups, roles with ACLs of six types, default access and an
//! anonymous group, changed at run time through `$CONTROL/dynamic-security/v1`
//! and kept in the plugin's own `dynamic-security.json` (decisions
//! 0138-0141).
//!
//! - [`state`]: the model and its invariants ([`Dynsec`]); [`client`],
//!   [`group`], [`role`], [`acl`], [`links`], [`password`]: its parts.
//! - [`decide`]: the plugin's connect and ACL decisions.
//! - [`command`]: the JSON command protocol (`mosquitto_ctrl dynsec`).
//! - [`file`]: the JSON file; [`save`]: writing it atomically, off the
//!   data path.
//! - [`DynsecStore`]: the state a running broker shares, behind a lock
//!   held only for one decision or one command payload, never across an
//!   `.await`.
//!
//! Socket-free: it never touches sessions or connections. A command's
//! [`command::Outcome`] says whom to disconnect; the engine does it.

pub mod acl;
pub mod client;
pub mod command;
pub mod connect;
pub mod decide;
pub mod file;
pub mod group;
pub mod links;
pub mod password;
pub mod role;
pub mod save;
pub mod state;

use std::path::{Path, PathBuf};

use parking_lot::RwLock;

pub use acl::{AclEntry, AclType, DefaultAccess};
pub use decide::{Access, Login, Verdict};
pub use state::{Dynsec, Kick};

use super::AuthError;

/// The dynsec state of a running broker and where it is saved.
#[derive(Debug)]
pub struct DynsecStore {
    /// Read for every decision, written for each command payload.
    state: RwLock<Dynsec>,
    /// Writes the file after each change; `None` for a state with no file
    /// (tests).
    saver: Option<save::Saver>,
    /// The file, for logs and `fleetmq acl check`.
    path: Option<PathBuf>,
    /// Told of every change a command made, in order (a cluster node
    /// replicates them, decision 0184).
    observer: std::sync::OnceLock<Observer>,
}

/// Called with the rendered document and whom a change concerns, under
/// the state's write lock: it must only hand them over, never block.
pub struct Observer(pub Box<ObserverFn>);

/// What an [`Observer`] calls: the document, then whom it concerns.
pub type ObserverFn = dyn Fn(&str, &[Kick]) + Send + Sync;

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

impl DynsecStore {
    /// Reads `path` (a `dynamic-security.json`, e.g. written by
    /// `mosquitto_ctrl dynsec init`) and starts its writer.
    /// A missing file gives an empty state (logged as an error), as
    /// Mosquitto 2.0.11's plugin does; an unreadable or malformed one is
    /// an error.
    pub fn load(path: &Path) -> Result<DynsecStore, AuthError> {
        let state = match DynsecStore::read(path) {
            Err(AuthError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                tracing::error!(
                    "Error loading dynamic security config {}: no such file; starting with no clients, groups or roles (create it with `mosquitto_ctrl dynsec init {} ADMIN`).",
                    path.display(),
                    path.display()
                );
                Dynsec::default()
            }
            other => other?,
        };
        let saver = save::Saver::start(path.to_path_buf()).map_err(|source| AuthError::Io {
            action: "cannot start the writer of dynsec file",
            path: path.to_path_buf(),
            source,
        })?;
        Ok(DynsecStore {
            state: RwLock::new(state),
            saver: Some(saver),
            path: Some(path.to_path_buf()),
            observer: std::sync::OnceLock::new(),
        })
    }

    /// Reads and parses `path` without starting a writer (`acl check`).
    pub fn read(path: &Path) -> Result<Dynsec, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
            action: "cannot read dynsec file",
            path: path.to_path_buf(),
            source,
        })?;
        file::parse(&text).map_err(|problem| AuthError::Dynsec {
            path: path.to_path_buf(),
            problem,
        })
    }

    /// A state kept in memory only.
    pub fn in_memory(state: Dynsec) -> DynsecStore {
        DynsecStore {
            state: RwLock::new(state),
            saver: None,
            path: None,
            observer: std::sync::OnceLock::new(),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// See [`Dynsec::login`].
    pub fn login(&self, username: &str, password: Option<&[u8]>, client_id: &str) -> Login {
        self.state.read().login(username, password, client_id)
    }

    /// See [`Dynsec::certificate_login`].
    pub fn certificate_login(&self, name: &str, client_id: &str) -> Login {
        self.state.read().certificate_login(name, client_id)
    }

    /// See [`Dynsec::check_units`].
    pub fn check_units(
        &self,
        username: Option<&str>,
        client_id: &str,
        units: &[String],
        access: Access,
        topic: &str,
    ) -> Verdict {
        self.state
            .read()
            .check_units(username, client_id, units, access, topic)
    }

    /// See [`Dynsec::check`].
    pub fn check(
        &self,
        username: Option<&str>,
        client_id: &str,
        access: Access,
        topic: &str,
    ) -> Verdict {
        self.state.read().check(username, client_id, access, topic)
    }

    /// Runs one command payload; saves the file when something changed.
    pub fn command(&self, payload: &[u8]) -> command::Outcome {
        let mut state = self.state.write();
        let outcome = command::handle(&mut state, payload);
        if outcome.changed && (self.saver.is_some() || self.observer.get().is_some()) {
            match file::render(&state) {
                Ok(text) => {
                    if let Some(observer) = self.observer.get() {
                        (observer.0)(&text, &outcome.kicks);
                    }
                    if let Some(saver) = &self.saver {
                        saver.save(text);
                    }
                }
                Err(error) => tracing::error!(
                    "dynsec: cannot render the configuration ({error}); the file keeps the previous one."
                ),
            }
        }
        outcome
    }

    /// Installs the observer of changes; false when one is set already.
    pub fn observe(&self, observer: Observer) -> bool {
        self.observer.set(observer).is_ok()
    }

    /// The whole configuration as the file holds it.
    pub fn render(&self) -> Result<String, String> {
        file::render(&self.state.read()).map_err(|error| error.to_string())
    }

    /// Replaces the whole configuration with `document` (a
    /// `dynamic-security.json` text, e.g. another cluster node's) and
    /// saves it; the observer is not told. A malformed document changes
    /// nothing.
    pub fn replace(&self, document: &str) -> Result<(), String> {
        let parsed = file::parse(document)?;
        let mut state = self.state.write();
        *state = parsed;
        if let Some(saver) = &self.saver {
            saver.save(document.to_string());
        }
        Ok(())
    }

    /// A copy of the state (tests, `acl check`).
    pub fn snapshot(&self) -> Dynsec {
        self.state.read().clone()
    }
}
