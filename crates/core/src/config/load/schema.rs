//! Checking a configuration file against the shape of a valid one: the
//! schema (the serialized defaults), the spans of every key `toml` parsed,
//! unknown keys and wrong types all at once, and mapping a key or a byte
//! offset back to its line and column.
//!
//! It owns the file's spans; it must not read the file (the caller gives
//! its text) nor look at the environment.

use std::collections::HashMap;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::{
    invalid, range_hint, ConfigError, Origin, Problem, ProblemKind, ARRAY, BOOLEAN, DATETIME,
    FLOAT, INTEGER, LISTENERS, STRING, TABLE,
};
use super::suggest::suggest;
use super::FileLayer;
use crate::config::model::Config;

/// The shape of a valid configuration: the defaults, serialized. Every
/// setting has a default, so every valid key is present.
pub(super) fn schema() -> Result<toml::Table, ConfigError> {
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

/// Where a key and its value were written in the file.
#[derive(Debug, Clone)]
struct Spans {
    key: Range<usize>,
    value: Range<usize>,
}

/// A parsed configuration file: its layer and the spans of every key path.
pub(super) struct FileDocument<'a> {
    file: FileLayer<'a>,
    /// The whole schema, to suggest settings from other sections.
    schema: &'a toml::Table,
    spans: HashMap<String, Spans>,
}

impl<'a> FileDocument<'a> {
    /// Parses the file and compares it with the schema. Returns the
    /// document with every problem found, or the first syntax error.
    pub(super) fn check(
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
    pub(super) fn locate(&self, key: &str) -> Origin {
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

pub(super) fn join_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

pub(super) fn expected_name(value: &toml::Value) -> &'static str {
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
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    (line, before[line_start..].chars().count() + 1)
}
