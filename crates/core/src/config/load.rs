//! Loading: layering the embedded defaults, the TOML file and `FLEETMQ_*`
//! environment variables into one [`Config`], then validating it, so that
//! every mistake comes back as a message naming the file, the line and the
//! key, the way ripgrep names them.
//!
//! # Layers
//!
//! Later layers win, setting by setting:
//!
//! 1. the built-in defaults ([`Config::default`]);
//! 2. the TOML file given with `--config`, if any;
//! 3. environment variables named `FLEETMQ_<SECTION>__<KEY>` (two
//!    underscores between section and key), for example
//!    `FLEETMQ_LIMITS__MAX_INFLIGHT=10` or `FLEETMQ_LOG__LEVEL=debug`.
//!
//! An empty variable counts as unset. Listeners cannot be set from the
//! environment: they are a list of tables, which environment variables cannot
//! express without guessing. A `FLEETMQ_LISTENER…` variable is reported as an
//! error rather than ignored, as is any other `FLEETMQ_` variable that names
//! no setting.
//!
//! # How errors are found
//!
//! The `config` crate merges the layers but forgets where a value came from,
//! so the file is first parsed with `toml` to keep the span of every key and
//! value. Unknown keys and wrong types are found by comparing the document
//! with the shape of the defaults (every setting has a default, so the
//! serialized defaults are a complete schema); this reports all of them at
//! once. Anything serde still refuses (an integer out of range) is reported
//! at the span `toml` gives. Validation errors name a key, which is mapped
//! back to its line, or to the environment variable that set it.
//!
//! This module reads the configuration file and the process environment and
//! nothing else.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::model::Config;
use super::validate::validate;

/// Prefix of the environment variables that override settings.
const ENV_PREFIX: &str = "FLEETMQ_";
/// Separator between the section and the key in an environment variable.
const ENV_SEPARATOR: &str = "__";
/// Where a user can see every setting, named in hints.
const EXAMPLE_FILE: &str = "config/fleetmq.toml";

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
        /// From [`super::ValidationError::message`].
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

const INTEGER: &str = "an integer";
const FLOAT: &str = "a number";
const STRING: &str = "a string";
const BOOLEAN: &str = "a boolean";
const TABLE: &str = "a table";
const LISTENERS: &str = "an array of [[listener]] tables";
const ARRAY: &str = "an array";
const DATETIME: &str = "a date-time";

/// Loads the configuration: defaults, then the file at `path` if given, then
/// `FLEETMQ_*` environment variables, then [`validate`].
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let text = match path {
        Some(path) => Some(
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?,
        ),
        None => None,
    };
    let name = path.map(|path| path.display().to_string());
    let file = match (&text, &name) {
        (Some(text), Some(name)) => Some(FileLayer { text, name }),
        _ => None,
    };
    let environment = std::env::vars_os().filter(|(name, _)| has_env_prefix(name));
    load_layers(file, environment)
}

/// Applies the `FLEETMQ_*` environment variables to `base`, a configuration
/// from another source (a translated `mosquitto.conf`), then validates the
/// result: the same environment layer a `fleetmq.toml` gets.
pub fn apply_environment(base: &Config) -> Result<Config, ConfigError> {
    let environment = std::env::vars_os().filter(|(name, _)| has_env_prefix(name));
    apply_environment_from(base, environment)
}

/// [`apply_environment`] with the variables given, for tests.
fn apply_environment_from(
    base: &Config,
    environment: impl Iterator<Item = (OsString, OsString)>,
) -> Result<Config, ConfigError> {
    let schema = schema()?;
    let mut problems = Vec::new();
    let overrides = check_environment(environment, &schema, &mut problems);
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    if overrides.is_empty() {
        return Ok(base.clone());
    }
    let config = merge(base, None, &overrides)?;
    if let Err(errors) = validate(&config) {
        let problems = errors
            .into_iter()
            .map(|error| Problem {
                origin: locate_key(&error.key, None, &overrides),
                key: error.key,
                kind: ProblemKind::Invalid {
                    message: error.message,
                },
            })
            .collect();
        return Err(invalid(problems));
    }
    Ok(config)
}

/// Loads the configuration from TOML `text`, named `origin` in errors (a
/// file name); the environment is ignored, so tests are repeatable.
pub fn load_from_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let file = FileLayer { text, name: origin };
    load_layers(Some(file), std::iter::empty())
}

/// The configuration file's text and the name errors give it.
#[derive(Clone, Copy)]
struct FileLayer<'a> {
    text: &'a str,
    name: &'a str,
}

fn has_env_prefix(name: &OsString) -> bool {
    name.to_str().is_some_and(|name| {
        name.len() > ENV_PREFIX.len()
            && name.is_char_boundary(ENV_PREFIX.len())
            && name[..ENV_PREFIX.len()].eq_ignore_ascii_case(ENV_PREFIX)
    })
}

/// The heart of loading, shared by [`load`] and [`load_from_str`]:
/// `environment` holds only `FLEETMQ_*` variables.
fn load_layers(
    file: Option<FileLayer<'_>>,
    environment: impl Iterator<Item = (OsString, OsString)>,
) -> Result<Config, ConfigError> {
    let schema = schema()?;
    let mut problems = Vec::new();

    let document = match file {
        Some(file) => match FileDocument::check(file, &schema) {
            Ok((document, file_problems)) => {
                problems.extend(file_problems);
                Some(document)
            }
            // A syntax error leaves nothing trustworthy to check further.
            Err(problem) => return Err(invalid(vec![*problem])),
        },
        None => None,
    };

    let overrides = check_environment(environment, &schema, &mut problems);
    if !problems.is_empty() {
        return Err(invalid(problems));
    }

    let config = merge(&Config::default(), file, &overrides)?;
    if let Err(errors) = validate(&config) {
        let problems = errors
            .into_iter()
            .map(|error| Problem {
                origin: locate_key(&error.key, document.as_ref(), &overrides),
                key: error.key,
                kind: ProblemKind::Invalid {
                    message: error.message,
                },
            })
            .collect();
        return Err(invalid(problems));
    }
    Ok(config)
}

fn invalid(mut problems: Vec<Problem>) -> ConfigError {
    // File problems in file order, then the environment's (already sorted by
    // variable name); the sort is stable.
    problems.sort_by_key(|problem| match &problem.origin {
        Origin::File { line, column, .. } => (0, *line, *column),
        Origin::Environment { .. } => (1, None, None),
        Origin::Defaults => (2, None, None),
    });
    ConfigError::Invalid { problems }
}

/// The shape of a valid configuration: the defaults, serialized. Every
/// setting has a default, so every valid key is present.
fn schema() -> Result<toml::Table, ConfigError> {
    toml::Table::try_from(Config::schema_example()).map_err(|error| {
        invalid(vec![Problem {
            origin: Origin::Defaults,
            key: String::new(),
            kind: ProblemKind::BadValue {
                message: format!("the built-in defaults cannot be serialized: {error}"),
                hint: Some("this is a bug in fleetmq; please report it".to_string()),
            },
        }])
    })
}

/// Merges the layers with the `config` crate and deserializes the result.
/// The layers were checked already, so an error here is unexpected; it is
/// still reported rather than unwrapped.
fn merge(
    base: &Config,
    file: Option<FileLayer<'_>>,
    overrides: &[EnvOverride],
) -> Result<Config, ConfigError> {
    let fail = |error: ::config::ConfigError| {
        invalid(vec![Problem {
            origin: match file {
                Some(file) => Origin::File {
                    name: file.name.to_string(),
                    line: None,
                    column: None,
                },
                None => Origin::Defaults,
            },
            key: String::new(),
            kind: ProblemKind::BadValue {
                message: error.to_string(),
                hint: None,
            },
        }])
    };
    let defaults = ::config::Config::try_from(base).map_err(fail)?;
    let mut builder = ::config::Config::builder().add_source(defaults);
    if let Some(file) = file {
        builder = builder.add_source(::config::File::from_str(
            file.text,
            ::config::FileFormat::Toml,
        ));
    }
    let variables = overrides
        .iter()
        .map(|o| (o.variable.clone(), o.value.clone()))
        .collect();
    builder = builder.add_source(
        ::config::Environment::with_prefix(ENV_PREFIX.trim_end_matches('_'))
            .prefix_separator("_")
            .separator(ENV_SEPARATOR)
            .source(Some(variables)),
    );
    builder
        .build()
        .and_then(|merged| merged.try_deserialize::<Config>())
        .map_err(fail)
}

/// Where a key and its value were written in the file.
#[derive(Debug, Clone)]
struct Spans {
    key: Range<usize>,
    value: Range<usize>,
}

/// A parsed configuration file: its layer and the spans of every key path.
struct FileDocument<'a> {
    file: FileLayer<'a>,
    /// The whole schema, to suggest settings from other sections.
    schema: &'a toml::Table,
    spans: HashMap<String, Spans>,
}

impl<'a> FileDocument<'a> {
    /// Parses the file and compares it with the schema. Returns the
    /// document with every problem found, or the first syntax error.
    fn check(
        file: FileLayer<'a>,
        schema: &'a toml::Table,
    ) -> Result<(Self, Vec<Problem>), Box<Problem>> {
        let mut document = FileDocument {
            file,
            schema,
            spans: HashMap::new(),
        };
        let root = DeTable::parse(file.text).map_err(|error| {
            Box::new(Problem {
                origin: document.origin_at(error.span()),
                key: String::new(),
                kind: ProblemKind::Syntax {
                    message: error.message().trim_end().to_string(),
                },
            })
        })?;
        let mut problems = Vec::new();
        document.check_table(root.get_ref(), schema, "", &mut problems);
        if problems.is_empty() {
            // The shape is right; serde may still refuse a value (an integer
            // too large for its field). It stops at the first such value.
            if let Err(error) = toml::from_str::<Config>(file.text) {
                let span = error.span();
                problems.push(Problem {
                    origin: document.origin_at(span.clone()),
                    key: span
                        .and_then(|span| document.key_at(span.start))
                        .unwrap_or_default(),
                    kind: ProblemKind::BadValue {
                        hint: range_hint(error.message()),
                        message: error.message().trim_end().to_string(),
                    },
                });
            }
        }
        Ok((document, problems))
    }

    fn check_table(
        &mut self,
        table: &DeTable<'_>,
        schema: &toml::Table,
        prefix: &str,
        problems: &mut Vec<Problem>,
    ) {
        for (key, value) in table.iter() {
            let name: &str = key.get_ref();
            let path = join_key(prefix, name);
            self.spans.insert(
                path.clone(),
                Spans {
                    key: key.span(),
                    value: value.span(),
                },
            );
            match schema.get(name) {
                Some(expected) => self.check_value(value, expected, &path, problems),
                None => problems.push(Problem {
                    origin: self.origin_at(Some(key.span())),
                    key: path,
                    kind: ProblemKind::UnknownKey {
                        suggestion: suggest(name, prefix, schema, self.schema)
                            .map(|key| format!("`{key}`")),
                    },
                }),
            }
        }
    }

    fn check_value(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        expected: &toml::Value,
        path: &str,
        problems: &mut Vec<Problem>,
    ) {
        match (value.get_ref(), expected) {
            (DeValue::Table(table), toml::Value::Table(schema)) => {
                self.check_table(table, schema, path, problems);
            }
            (DeValue::Array(items), toml::Value::Array(schema)) => {
                for (index, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{index}]");
                    self.spans.insert(
                        item_path.clone(),
                        Spans {
                            key: item.span(),
                            value: item.span(),
                        },
                    );
                    if let Some(item_schema) = schema.first() {
                        self.check_value(item, item_schema, &item_path, problems);
                    }
                }
            }
            (DeValue::String(_), toml::Value::String(_))
            | (DeValue::Integer(_), toml::Value::Integer(_))
            | (DeValue::Float(_), toml::Value::Float(_))
            | (DeValue::Boolean(_), toml::Value::Boolean(_))
            | (DeValue::Datetime(_), toml::Value::Datetime(_)) => {}
            (found, expected) => problems.push(Problem {
                origin: self.origin_at(Some(value.span())),
                key: path.to_string(),
                kind: ProblemKind::WrongType {
                    expected: expected_name(expected),
                    found: found_name(found).to_string(),
                },
            }),
        }
    }

    /// The origin of a byte span in this file.
    fn origin_at(&self, span: Option<Range<usize>>) -> Origin {
        let (line, column) = match span {
            Some(span) => {
                let (line, column) = line_column(self.file.text, span.start);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        Origin::File {
            name: self.file.name.to_string(),
            line,
            column,
        }
    }

    /// The deepest key path whose key or value covers byte `offset`.
    fn key_at(&self, offset: usize) -> Option<String> {
        self.spans
            .iter()
            .filter(|(_, spans)| spans.key.contains(&offset) || spans.value.contains(&offset))
            .min_by_key(|(path, spans)| (spans.value.len(), std::cmp::Reverse(path.len())))
            .map(|(path, _)| path.clone())
    }

    /// Where the setting `key` (or, when it kept its default, the nearest
    /// enclosing table or listener that was written) is in the file.
    fn locate(&self, key: &str) -> Origin {
        let mut candidate = key;
        loop {
            if let Some(spans) = self.spans.get(candidate) {
                let span = if candidate == key {
                    spans.value.clone()
                } else {
                    spans.key.clone()
                };
                return self.origin_at(Some(span));
            }
            match candidate.rfind(['.', '[']) {
                Some(end) => candidate = &candidate[..end],
                None => return self.origin_at(None),
            }
        }
    }
}

/// Maps a validation error's key to where its value came from.
fn locate_key(key: &str, document: Option<&FileDocument<'_>>, overrides: &[EnvOverride]) -> Origin {
    if let Some(found) = overrides.iter().find(|o| o.key == key) {
        return Origin::Environment {
            variable: found.variable.clone(),
        };
    }
    match document {
        Some(document) => document.locate(key),
        None => Origin::Defaults,
    }
}

fn join_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn expected_name(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => STRING,
        toml::Value::Integer(_) => INTEGER,
        toml::Value::Float(_) => FLOAT,
        toml::Value::Boolean(_) => BOOLEAN,
        toml::Value::Datetime(_) => DATETIME,
        toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => LISTENERS,
        toml::Value::Array(_) => ARRAY,
        toml::Value::Table(_) => TABLE,
    }
}

fn found_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => STRING,
        DeValue::Integer(_) => INTEGER,
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => BOOLEAN,
        DeValue::Datetime(_) => DATETIME,
        DeValue::Array(_) => ARRAY,
        DeValue::Table(_) => TABLE,
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The dotted key a mistyped `name` (inside the table at `prefix`, whose
/// settings are `siblings`) most likely meant: a close sibling, else the
/// same name in another section of `root`.
fn suggest(name: &str, prefix: &str, siblings: &toml::Table, root: &toml::Table) -> Option<String> {
    let closest = siblings
        .keys()
        .filter(|known| resembles(name, known))
        .min_by_key(|known| edit_distance(name, known));
    if let Some(known) = closest {
        return Some(join_key(prefix, known));
    }
    root.iter().find_map(|(section, value)| match value {
        toml::Value::Table(table) if table.contains_key(name) => Some(format!("{section}.{name}")),
        _ => None,
    })
}

/// Whether `name` is plausibly a misspelling of `known`, or of its start
/// (`retian` for `retain_available`).
fn resembles(name: &str, known: &str) -> bool {
    let tolerance = |len: usize| (len / 3).max(1);
    if edit_distance(name, known) <= tolerance(name.len().max(known.len())) {
        return true;
    }
    let start: String = known.chars().take(name.chars().count()).collect();
    name.len() >= 4 && edit_distance(name, &start) <= tolerance(name.len())
}

/// Levenshtein distance, for "did you mean" suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// Turns serde's "expected u16" into the range to use.
fn range_hint(message: &str) -> Option<String> {
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

/// One `FLEETMQ_*` variable that names a setting.
#[derive(Debug, Clone)]
struct EnvOverride {
    /// The variable's name as set.
    variable: String,
    /// The dotted key path it sets, such as `limits.max_inflight`.
    key: String,
    /// Its value.
    value: String,
}

/// Checks every `FLEETMQ_*` variable against the schema, pushing a problem
/// for each bad one; returns the good ones.
fn check_environment(
    environment: impl Iterator<Item = (OsString, OsString)>,
    schema: &toml::Table,
    problems: &mut Vec<Problem>,
) -> Vec<EnvOverride> {
    // Sorted so that problems come out in a stable order.
    let variables: BTreeMap<OsString, OsString> = environment.collect();
    let mut overrides = Vec::new();
    for (variable, value) in variables {
        let Some(variable) = variable.to_str().map(str::to_string) else {
            continue;
        };
        let key = variable[ENV_PREFIX.len()..]
            .to_ascii_lowercase()
            .replace(ENV_SEPARATOR, ".");
        // Settings are FLEETMQ_<SECTION>__<KEY>, or a top-level key such
        // as FLEETMQ_DATA_DIR. Other FLEETMQ_ variables (FLEETMQ_BIN for
        // the test suites, say) belong to other tools and are left alone.
        // A single word that names a setting of some section is a likely
        // mistake and is still reported.
        let names_a_setting = schema.values().any(
            |section| matches!(section, toml::Value::Table(table) if table.contains_key(&key)),
        );
        if !key.contains('.') && !schema.contains_key(&key) && !names_a_setting {
            continue;
        }
        let problem = |kind| Problem {
            origin: Origin::Environment {
                variable: variable.clone(),
            },
            key: key.clone(),
            kind,
        };
        // An empty variable counts as unset, so `FLEETMQ_LOG__LEVEL=$LEVEL`
        // with LEVEL unset keeps the file's value instead of blanking it.
        if value.is_empty() {
            continue;
        }
        let Some(value) = value.to_str().map(str::to_string) else {
            problems.push(problem(ProblemKind::BadValue {
                message: "the value is not valid UTF-8".to_string(),
                hint: Some("set it to plain text".to_string()),
            }));
            continue;
        };
        match check_env_value(&key, &value, schema) {
            Ok(()) => overrides.push(EnvOverride {
                variable,
                key,
                value,
            }),
            Err(kind) => problems.push(problem(kind)),
        }
    }
    overrides
}

/// Whether `value` may set the setting at dotted `key`.
fn check_env_value(key: &str, value: &str, schema: &toml::Table) -> Result<(), ProblemKind> {
    let (section, name) = key.split_once('.').unwrap_or((key, ""));
    if section == "listener" {
        return Err(ProblemKind::NotFromEnvironment);
    }
    let to_variable =
        |key: &str| format!("{ENV_PREFIX}{}", key.replace('.', ENV_SEPARATOR)).to_uppercase();
    let Some(toml::Value::Table(settings)) = schema.get(section) else {
        // FLEETMQ_LIMT__MAX_INFLIGHT (a mistyped section) or
        // FLEETMQ_MAX_INFLIGHT (a setting without its section).
        let suggestion = if name.is_empty() {
            suggest(section, "", schema, schema).filter(|key| key.contains('.'))
        } else {
            suggest(section, "", schema, schema).map(|section| join_key(&section, name))
        };
        return Err(ProblemKind::UnknownKey {
            suggestion: suggestion.map(|key| to_variable(&key)),
        });
    };
    let Some(expected) = settings.get(name) else {
        if name.is_empty() {
            return Err(ProblemKind::WrongType {
                expected: TABLE,
                found: "a single value".to_string(),
            });
        }
        let suggestion = suggest(name, section, settings, schema).map(|key| to_variable(&key));
        return Err(ProblemKind::UnknownKey { suggestion });
    };
    let typed = match expected {
        toml::Value::Integer(_) => value
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| INTEGER),
        toml::Value::Boolean(_) => match value.trim().to_ascii_lowercase().as_str() {
            // What the `config` crate accepts for a boolean.
            "true" | "on" | "yes" | "1" => Ok(toml::Value::Boolean(true)),
            "false" | "off" | "no" | "0" => Ok(toml::Value::Boolean(false)),
            _ => Err(BOOLEAN),
        },
        toml::Value::String(_) => Ok(toml::Value::String(value.to_string())),
        other => Err(expected_name(other)),
    }
    .map_err(|expected| ProblemKind::WrongType {
        expected,
        found: format!("{value:?}"),
    })?;
    // Let serde judge the range, exactly as it will for the merged layers.
    let mut overlay = toml::Table::new();
    let mut inner = toml::Table::new();
    inner.insert(name.to_string(), typed);
    overlay.insert(section.to_string(), toml::Value::Table(inner));
    toml::Value::Table(overlay)
        .try_into::<Config>()
        .map(|_| ())
        .map_err(|error| ProblemKind::BadValue {
            hint: range_hint(error.message()),
            message: error.message().trim_end().to_string(),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "load_tests.rs"]
mod tests;
