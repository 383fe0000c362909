//! Writing a translation as `fleetmq.toml`: the [`Config`] serialized with
//! `toml`, keeping only settings that came from a Mosquitto line or differ
//! from fleetmq's defaults, each preceded by a comment naming its source.
//! Loading the output gives back the translated [`Config`] exactly.

use toml::{Table, Value};

use super::{Source, Translation};
use fleetmq_core::config::{Config, ListenerConfig, TlsConfig};

/// Sections in the order the example `config/fleetmq.toml` uses.
const SECTIONS: &[&str] = &["limits", "mqtt", "log", "auth", "store"];

/// `text` made fit for a TOML comment, which may hold no control character
/// but tab: each other one is written `\u{..}`. Comments quote Mosquitto
/// lines as they were, so a stray control character in mosquitto.conf
/// (found by fuzz/mosquitto_conf) made the rendered file unloadable.
fn comment_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                format!("\\u{{{:x}}}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The commented TOML text of `translation`.
pub fn render(translation: &Translation) -> String {
    let mut out = format!(
        "# fleetmq configuration translated from {} by `fleetmq migrate mosquitto`.\n\
         #\n\
         # Each setting names the Mosquitto line it comes from; settings not written here\n\
         # keep fleetmq's defaults (config/fleetmq.toml lists them all). Directives that\n\
         # could not be carried over were listed on stderr.\n",
        comment_text(&translation.source.to_string())
    );
    let keep = |key: &str| translation.provenance.contains_key(key);
    let (Ok(config), Ok(defaults)) = (
        Table::try_from(&translation.config),
        Table::try_from(Config::default()),
    ) else {
        return out;
    };

    let mut top = Table::new();
    for (key, value) in &config {
        if !value.is_table() && !value.is_array() && (keep(key) || defaults.get(key) != Some(value))
        {
            top.insert(key.clone(), value.clone());
        }
    }
    if !top.is_empty() {
        out.push('\n');
    }
    push_section(&mut out, &top, translation);

    let listeners = listener_tables(&config, &keep);
    if !listeners.is_empty() {
        let mut table = Table::new();
        table.insert("listener".into(), Value::Array(listeners));
        push_section(&mut out, &table, translation);
    }

    for section in SECTIONS {
        let (Some(Value::Table(values)), Some(Value::Table(default_values))) =
            (config.get(*section), defaults.get(*section))
        else {
            continue;
        };
        let pruned = prune(values, default_values, section, &keep);
        if !pruned.is_empty() {
            let mut table = Table::new();
            table.insert((*section).to_string(), Value::Table(pruned));
            push_section(&mut out, &table, translation);
        }
    }
    push_bridges(&mut out, &config);
    out
}

/// The `[[bridge]]` tables, whole (each names its `connection` section).
fn push_bridges(out: &mut String, config: &Table) {
    let Some(Value::Array(bridges)) = config.get("bridge") else {
        return;
    };
    if bridges.is_empty() {
        return;
    }
    let mut table = Table::new();
    table.insert("bridge".into(), Value::Array(bridges.clone()));
    if let Ok(text) = toml::to_string(&table) {
        out.push_str("\n# Bridges, from the `connection` sections (docs/decisions/0146).\n");
        out.push_str(&text);
    }
}

/// Each listener with what differs from a default listener (and its TLS
/// table with what differs from default TLS settings). Name and bind are
/// always written.
fn listener_tables(config: &Table, keep: &dyn Fn(&str) -> bool) -> Vec<Value> {
    let (Ok(default_listener), Ok(default_tls)) = (
        Table::try_from(ListenerConfig::default()),
        Table::try_from(TlsConfig::default()),
    ) else {
        return Vec::new();
    };
    let Some(Value::Array(listeners)) = config.get("listener") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (index, listener) in listeners.iter().enumerate() {
        let Value::Table(listener) = listener else {
            continue;
        };
        let prefix = format!("listener[{index}]");
        let mut table = prune(listener, &default_listener, &prefix, keep);
        for always in ["bind", "name"] {
            if let Some(value) = listener.get(always) {
                if !table.contains_key(always) {
                    table.insert(always.to_string(), value.clone());
                }
            }
        }
        // Name and bind first, as a reader looks for them.
        let mut ordered = Table::new();
        for first in ["name", "bind"] {
            if let Some(value) = table.remove(first) {
                ordered.insert(first.to_string(), value);
            }
        }
        ordered.extend(table);
        if let Some(Value::Table(tls)) = listener.get("tls") {
            let tls = prune(tls, &default_tls, &format!("{prefix}.tls"), keep);
            ordered.insert("tls".into(), Value::Table(tls));
        }
        out.push(Value::Table(ordered));
    }
    out
}

/// The entries of `values` that have a source or differ from `defaults`.
fn prune(values: &Table, defaults: &Table, prefix: &str, keep: &dyn Fn(&str) -> bool) -> Table {
    let mut out = Table::new();
    for (key, value) in values {
        if value.is_table() {
            continue;
        }
        if keep(&format!("{prefix}.{key}")) || defaults.get(key) != Some(value) {
            out.insert(key.clone(), value.clone());
        }
    }
    out
}

/// Appends `table` as TOML with a comment above each key naming where it
/// came from.
fn push_section(out: &mut String, table: &Table, translation: &Translation) {
    if table.is_empty() {
        return;
    }
    let Ok(text) = toml::to_string(table) else {
        return;
    };
    let mut path = String::new();
    let mut listener_index: Option<usize> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        let key = if trimmed == "[[listener]]" {
            let index = listener_index.map_or(0, |i| i + 1);
            listener_index = Some(index);
            path = format!("listener[{index}]");
            out.push('\n');
            None
        } else if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            path = match (name.strip_prefix("listener."), listener_index) {
                (Some(sub), Some(index)) => format!("listener[{index}].{sub}"),
                _ => name.to_string(),
            };
            if !name.starts_with("listener.") {
                out.push('\n');
            }
            None
        } else if let Some((name, _)) = trimmed.split_once(" = ") {
            Some(if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            })
        } else {
            None
        };
        if let Some(sources) = key.and_then(|key| translation.provenance.get(&key)) {
            for source in sources {
                match source {
                    Source::Line { .. } => {
                        out.push_str(&format!("# from {}\n", comment_text(&source.to_string())))
                    }
                    Source::Default(why) => out.push_str(&format!("# {}\n", comment_text(why))),
                }
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    // toml separates tables with a blank line, and so do we.
    while out.contains("\n\n\n") {
        *out = out.replace("\n\n\n", "\n\n");
    }
}
