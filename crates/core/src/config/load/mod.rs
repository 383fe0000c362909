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
//! # Files
//!
//! This file layers and validates; [`error`] holds the error vocabulary
//! and its wording, [`schema`](mod@schema) the check of a file against the
//! defaults and its spans, [`env`](mod@env) the `FLEETMQ_*` variables,
//! [`suggest`](mod@suggest) the "did you mean".
//!
//! This module reads the configuration file and the process environment and
//! nothing else.

mod env;
mod error;
mod schema;
mod suggest;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;

use std::ffi::OsString;
use std::path::Path;

use super::model::Config;
use super::validate::validate;
use env::{check_environment, has_env_prefix, EnvOverride, ENV_PREFIX, ENV_SEPARATOR};
use error::invalid;
pub use error::{ConfigError, Origin, Problem, ProblemKind};
use schema::{schema, FileDocument};

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
