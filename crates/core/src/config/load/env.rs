//! The environment layer: `FLEETMQ_<SECTION>__<KEY>` variables, which of
//! them name a setting, and whether each value fits it (type and range,
//! judged by serde as for the file), with a problem for each bad one.
//!
//! It owns the naming rule of the variables; it is given the variables and
//! must not read the process environment itself (the caller filters it).

use std::collections::BTreeMap;
use std::ffi::OsString;

use super::error::{range_hint, Origin, Problem, ProblemKind, BOOLEAN, INTEGER, TABLE};
use super::schema::{expected_name, join_key};
use super::suggest::suggest;
use crate::config::model::Config;

/// Prefix of the environment variables that override settings.
pub(super) const ENV_PREFIX: &str = "FLEETMQ_";
/// Separator between the section and the key in an environment variable.
pub(super) const ENV_SEPARATOR: &str = "__";

pub(super) fn has_env_prefix(name: &OsString) -> bool {
    name.to_str().is_some_and(|name| {
        name.len() > ENV_PREFIX.len()
            && name.is_char_boundary(ENV_PREFIX.len())
            && name[..ENV_PREFIX.len()].eq_ignore_ascii_case(ENV_PREFIX)
    })
}

/// One `FLEETMQ_*` variable that names a setting.
#[derive(Debug, Clone)]
pub(super) struct EnvOverride {
    /// The variable's name as set.
    pub(super) variable: String,
    /// The dotted key path it sets, such as `limits.max_inflight`.
    pub(super) key: String,
    /// Its value.
    pub(super) value: String,
}

/// Checks every `FLEETMQ_*` variable against the schema, pushing a problem
/// for each bad one; returns the good ones.
pub(super) fn check_environment(
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
