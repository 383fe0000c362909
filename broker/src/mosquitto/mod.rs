//! Mosquitto migration: reading a `mosquitto.conf` (with its `include_dir`
//! files) into fleetmq's [`Config`], so a lab can run fleetmq on the
//! configuration it has (`fleetmq run --mosquitto-conf FILE`) or translate
//! it once (`fleetmq migrate mosquitto FILE`).
//!
//! Translation follows Mosquitto 2.0's semantics (see
//! docs/decisions/0043-mosquitto-semantics.md): `listener PORT [ADDR]`
//! opens a listener that the TLS options after it configure, `port` and
//! `bind_address` configure the default listener, security options are
//! global unless `per_listener_settings true`, `allow_anonymous` is false
//! unless no listener is configured. Every directive that cannot be carried
//! over becomes a [`Note`] (`FILE:LINE: directive: why`); a directive that
//! Mosquitto itself would refuse, or a value fleetmq cannot use, is a
//! problem that stops the translation.
//!
//! It must not be needed at run time by the native configuration: it only
//! produces a [`Config`].

mod bridge;
mod ciphers;
pub mod db;
mod defaults;
mod directives;
mod dynsec;
mod finish;
mod listener;
mod parse;
mod render;
mod translate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fleetmq_core::config::Config;

pub use render::render;

/// A translated configuration.
#[derive(Debug, Clone)]
pub struct Translation {
    /// The equivalent fleetmq configuration, validated.
    pub config: Config,
    /// Every directive not carried over (or only in part), in file order.
    pub notes: Vec<Note>,
    /// The main file, as given.
    pub source: String,
    /// Which Mosquitto lines each setting came from, by dotted key.
    pub(crate) provenance: Provenance,
}

impl Translation {
    /// The configuration as a commented `fleetmq.toml`.
    pub fn to_toml(&self) -> String {
        render(self)
    }
}

/// Where settings came from: dotted key to sources.
pub(crate) type Provenance = std::collections::BTreeMap<String, Vec<Source>>;

/// Why a setting has its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// A Mosquitto line.
    Line {
        file: Arc<str>,
        line: usize,
        text: String,
    },
    /// A Mosquitto default that differs from fleetmq's, written out.
    Default(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Line { file, line, text } => write!(f, "{file}:{line}: {text}"),
            Source::Default(why) => write!(f, "{why}"),
        }
    }
}

/// A directive and what happened to it: not carried over, or a problem.
///
/// Displays as `FILE:LINE: directive: why`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The file, as given or found in an `include_dir`.
    pub file: Arc<str>,
    /// 1-based line; absent for the file as a whole.
    pub line: Option<usize>,
    /// The directive's name.
    pub directive: String,
    /// Why it was not carried over, or what is wrong and what to do.
    pub why: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}: {}", self.directive, self.why)
    }
}

/// Why a Mosquitto configuration could not be translated.
#[derive(Debug, thiserror::Error)]
pub enum MosquittoError {
    /// A file could not be read.
    #[error(
        "{}: cannot read the Mosquitto configuration: {source} (check the path and its permissions)",
        path.display()
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Directives Mosquitto would refuse, or values fleetmq cannot use; one
    /// per line.
    #[error("{}", problems.iter().map(Note::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<Note> },
}

/// Reads and translates the Mosquitto configuration at `path`, then
/// validates the result as any fleetmq configuration is validated.
pub fn translate_file(path: &Path) -> Result<Translation, MosquittoError> {
    let mut notes = Vec::new();
    let lines = parse::read(path, &mut notes)?;
    translate::translate(&lines, notes, &path.display().to_string())
}

/// Translates the text of a Mosquitto configuration, named `origin` in
/// notes and errors. Reads no files: `include_dir` lines are noted and
/// skipped. For callers that hold the text already, and for the fuzzer
/// (fuzz/fuzz_targets/mosquitto_conf.rs), which must not touch the disk.
pub fn translate_str(text: &str, origin: &str) -> Result<Translation, MosquittoError> {
    let file: Arc<str> = Arc::from(origin);
    let mut notes = Vec::new();
    let lines = parse::split(text, &file)
        .into_iter()
        .filter(|line| {
            let include = line.name == "include_dir";
            if include {
                notes.push(line.note("ignored: include_dir needs a configuration file on disk"));
            }
            !include
        })
        .collect::<Vec<_>>();
    translate::translate(&lines, notes, origin)
}

/// Whether `text` reads as a Mosquitto configuration rather than TOML:
/// every directive is one Mosquitto knows, none is written `key = value`,
/// and there is no `[table]`.
pub fn looks_like_mosquitto(text: &str) -> bool {
    let file: Arc<str> = Arc::from("");
    let lines = parse::split(text, &file);
    !lines.is_empty()
        && lines.iter().all(|line| {
            directives::is_known(&line.name)
                && !line.value.starts_with('=')
                && !line.name.starts_with('[')
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests_directives;
