//! Configuration errors: [`ConfigError`] and the [`Problem`]s it lists,
//! each with where it was written ([`Origin`]), which setting, what is
//! wrong ([`ProblemKind`]) and what to do about it, displayed as
//! `FILE:LINE:COLUMN: KEY: what is wrong (what to do)`.
//!
//! It owns the vocabulary and the wording of errors; it must not read
//! files or the environment, nor decide what is an error.

use std::fmt;
use std::path::PathBuf;

use super::env::{ENV_PREFIX, ENV_SEPARATOR};

/// Where a user can see every setting, named in hints.
pub(super) const EXAMPLE_FILE: &str = "config/fleetmq.toml";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read at all.
    #[error(
        "{}: cannot read the configuration file: {source} (check the path and its permissions)",
        path.display()
    )]
    Read {
        /// The path as given.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// The configuration was read but is wrong in one or more places; the
    /// message lists every problem, one per line.
    #[error("{}", ProblemList(problems))]
    Invalid {
        /// Every problem found, file problems in file order, then
        /// environment problems.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems found, empty when the file could not be read.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems } => problems,
        }
    }
}

/// Displays problems one per line.
struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// One mistake in a configuration: where, which setting, and what.
///
/// Displays as `FILE:LINE:COLUMN: KEY: what is wrong (what to do)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where the offending value was written.
    pub origin: Origin,
    /// The dotted path of the setting, such as `limits.max_inflight` or
    /// `listener[1].bind` (0-based); empty for a syntax error.
    pub key: String,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A TOML file (or string); `line` and `column` are 1-based and absent
    /// when the setting was not written in the file (it kept its default).
    File {
        /// The file name as given.
        name: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column in characters, when known.
        column: Option<usize>,
    },
    /// An environment variable.
    Environment {
        /// Its full name, such as `FLEETMQ_LOG__LEVEL`.
        variable: String,
    },
    /// The built-in defaults (no file was given).
    Defaults,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { name, line, column } => {
                write!(f, "{name}")?;
                if let Some(line) = line {
                    write!(f, ":{line}")?;
                    if let Some(column) = column {
                        write!(f, ":{column}")?;
                    }
                }
                Ok(())
            }
            Origin::Environment { variable } => write!(f, "environment variable {variable}"),
            Origin::Defaults => write!(f, "built-in defaults"),
        }
    }
}

/// The kinds of mistake a configuration can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The file is not valid TOML.
    Syntax {
        /// The parser's description.
        message: String,
    },
    /// The key names no setting.
    UnknownKey {
        /// The setting it most resembles, as the user would write it.
        suggestion: Option<String>,
    },
    /// The value has the wrong TOML type.
    WrongType {
        /// What the setting takes, such as "an integer".
        expected: &'static str,
        /// What was written, such as "a string".
        found: String,
    },
    /// The value has the right type but cannot be stored (out of range).
    BadValue {
        /// The deserializer's description.
        message: String,
        /// What to do, when we can tell.
        hint: Option<String>,
    },
    /// The setting cannot come from an environment variable.
    NotFromEnvironment,
    /// The value passed validation of its type but not of its meaning; the
    /// message already says what to do.
    Invalid {
        /// From [`crate::config::ValidationError::message`].
        message: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.origin)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        let from_env = matches!(self.origin, Origin::Environment { .. });
        match &self.kind {
            ProblemKind::Syntax { message } => write!(
                f,
                "invalid TOML: {message} (fix the syntax; {EXAMPLE_FILE} shows every setting)"
            ),
            ProblemKind::UnknownKey { suggestion } => match suggestion {
                Some(suggestion) => write!(f, "unknown setting (did you mean {suggestion}?)"),
                None if from_env => write!(
                    f,
                    "unknown setting (variables are named \
                     {ENV_PREFIX}<SECTION>{ENV_SEPARATOR}<KEY>, such as FLEETMQ_LOG__LEVEL; \
                     {EXAMPLE_FILE} lists every setting)"
                ),
                None => write!(
                    f,
                    "unknown setting (remove it; {EXAMPLE_FILE} lists every setting)"
                ),
            },
            ProblemKind::WrongType { expected, found } => write!(
                f,
                "expected {expected}, found {found} ({})",
                type_hint(expected, from_env)
            ),
            ProblemKind::BadValue { message, hint } => match hint {
                Some(hint) => write!(f, "{message} ({hint})"),
                None => write!(f, "{message} (see {EXAMPLE_FILE} for valid values)"),
            },
            ProblemKind::NotFromEnvironment => write!(
                f,
                "listeners cannot be set from the environment (declare them as [[listener]] \
                 tables in the configuration file and pass it with --config)"
            ),
            ProblemKind::Invalid { message } => write!(f, "{message}"),
        }
    }
}

/// What to do when a value has the wrong type.
fn type_hint(expected: &str, from_env: bool) -> &'static str {
    match (expected, from_env) {
        (INTEGER, false) => "write a whole number without quotes",
        (INTEGER, true) | (FLOAT, true) => "set the variable to a whole number",
        (STRING, _) => "put the value in double quotes",
        (BOOLEAN, false) => "write true or false without quotes",
        (BOOLEAN, true) => "set the variable to true or false",
        (LISTENERS, _) => "write each listener as a [[listener]] table",
        (TABLE, true) => "name a setting inside the section, such as FLEETMQ_LOG__LEVEL",
        (TABLE, false) => "write it as a [section] table",
        _ => "see config/fleetmq.toml for an example",
    }
}

pub(super) const INTEGER: &str = "an integer";
pub(super) const FLOAT: &str = "a number";
pub(super) const STRING: &str = "a string";
pub(super) const BOOLEAN: &str = "a boolean";
pub(super) const TABLE: &str = "a table";
pub(super) const LISTENERS: &str = "an array of [[listener]] tables";
pub(super) const ARRAY: &str = "an array";
pub(super) const DATETIME: &str = "a date-time";

pub(super) fn invalid(mut problems: Vec<Problem>) -> ConfigError {
    // File problems in file order, then the environment's (already sorted by
    // variable name); the sort is stable.
    problems.sort_by_key(|problem| match &problem.origin {
        Origin::File { line, column, .. } => (0, *line, *column),
        Origin::Environment { .. } => (1, None, None),
        Origin::Defaults => (2, None, None),
    });
    ConfigError::Invalid { problems }
}

/// Turns serde's "expected u16" into the range to use.
pub(super) fn range_hint(message: &str) -> Option<String> {
    let range = [
        ("expected u8", u64::from(u8::MAX)),
        ("expected u16", u64::from(u16::MAX)),
        ("expected u32", u64::from(u32::MAX)),
        ("expected u64", i64::MAX.unsigned_abs()),
        ("expected usize", i64::MAX.unsigned_abs()),
    ]
    .into_iter()
    .find(|(needle, _)| message.contains(needle))?;
    Some(format!("use a whole number from 0 to {}", range.1))
}
