//! A small TOML reader for `device.toml`: tables (`[mqtt]`, `[wifi.sta]`),
//! dotted keys (`mqtt.server = ...`), strings, booleans and numbers.
//!
//! It owns turning text into `(full.key, value, line)` entries and nothing
//! else: which keys exist and what they mean is [`super`]'s job. It depends on
//! `core` and `alloc` only, because the firmware's build script includes this
//! very file (`#[path]`) to check `device.toml` before the device is built.
//! Arrays, inline tables and dates are not part of the subset; they are
//! reported as errors with their line number rather than misread.

use alloc::string::String;
use alloc::vec::Vec;

/// One value of the subset.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A basic (`"..."`) or literal (`'...'`) string.
    Str(String),
    /// `true` or `false`.
    Bool(bool),
    /// An integer or decimal number, kept as written (`2`, `2.5`).
    Number(String),
}

/// One `key = value` line with its table prefix applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Dotted key, e.g. `mqtt.server`.
    pub key: String,
    /// The parsed value.
    pub value: Value,
    /// 1-based line in the file, for error messages.
    pub line: usize,
}

/// A line the reader cannot accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong, in the user's terms.
    pub message: String,
}

/// Reads every entry of `text`; the first malformed line is an error.
pub fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut table = String::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let error = |message: &str| SyntaxError {
            line,
            message: String::from(message),
        };
        let content = strip_comment(raw).trim();
        if content.is_empty() {
            continue;
        }
        if let Some(rest) = content.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or_else(|| error("a table header must end with `]`"))?
                .trim();
            if name.starts_with('[') {
                return Err(error("arrays of tables are not supported here"));
            }
            table = normalize_key(name).ok_or_else(|| error("invalid table name"))?;
            continue;
        }
        let (key, value) = content
            .split_once('=')
            .ok_or_else(|| error("expected `key = value`"))?;
        let key = normalize_key(key.trim()).ok_or_else(|| error("invalid key"))?;
        let full = if table.is_empty() {
            key
        } else {
            let mut full = table.clone();
            full.push('.');
            full.push_str(&key);
            full
        };
        let value = parse_value(value.trim()).map_err(error)?;
        if entries.iter().any(|e| e.key == full) {
            return Err(SyntaxError {
                line,
                message: alloc::format!("`{full}` is set twice"),
            });
        }
        entries.push(Entry {
            key: full,
            value,
            line,
        });
    }
    Ok(entries)
}

/// The line without a trailing `# comment` (a `#` inside quotes is kept).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (at, c) in line.char_indices() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => return &line[..at],
            None => {}
        }
    }
    line
}

/// `a . b` -> `a.b`; bare keys only (letters, digits, `_`, `-`).
fn normalize_key(key: &str) -> Option<String> {
    let mut out = String::new();
    for part in key.split('.') {
        let part = part.trim();
        let bare = !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !bare {
            return None;
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(part);
    }
    Some(out)
}

fn parse_value(text: &str) -> Result<Value, &'static str> {
    if let Some(rest) = text.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    return if chars.as_str().trim().is_empty() {
                        Ok(Value::Str(out))
                    } else {
                        Err("unexpected text after the closing quote")
                    };
                }
                '\\' => out.push(match chars.next() {
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('\\') => '\\',
                    Some('"') => '"',
                    _ => return Err("unsupported escape in string (use \\\\, \\\", \\n or \\t)"),
                }),
                c => out.push(c),
            }
        }
        return Err("string is missing its closing `\"`");
    }
    if let Some(rest) = text.strip_prefix('\'') {
        let (body, tail) = rest
            .split_once('\'')
            .ok_or("string is missing its closing `'`")?;
        if !tail.trim().is_empty() {
            return Err("unexpected text after the closing quote");
        }
        return Ok(Value::Str(String::from(body)));
    }
    match text {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        "" => return Err("missing value after `=`"),
        _ => {}
    }
    let digits = text.strip_prefix('-').unwrap_or(text).replace('_', "");
    let mut parts = digits.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next();
    let numeric = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if numeric(whole) && fraction.is_none_or(numeric) {
        return Ok(Value::Number(String::from(text).replace('_', "")));
    }
    if text.starts_with('[') || text.starts_with('{') {
        return Err("arrays and inline tables are not supported here");
    }
    Err("expected a quoted string, true/false or a number")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]
    use super::*;

    #[test]
    fn tables_dotted_keys_and_comments() {
        let text = "# lab device\nmqtt.enable = true\n[mqtt]\nserver = \"10.0.0.2:8883\" # broker\n[wifi.sta]\nssid = 'lab # 2'\n";
        let entries = parse(text).unwrap_or_default();
        let keys: Vec<_> = entries.iter().map(|e| (e.key.as_str(), e.line)).collect();
        assert_eq!(
            keys,
            [("mqtt.enable", 2), ("mqtt.server", 4), ("wifi.sta.ssid", 6)]
        );
        assert_eq!(entries[2].value, Value::Str(String::from("lab # 2")));
        assert_eq!(entries[0].value, Value::Bool(true));
    }

    #[test]
    fn numbers_and_escapes() {
        let entries = parse("a = 2.5\nb = 60\nc = \"q\\\"x\\\\\"").unwrap_or_default();
        assert_eq!(entries[0].value, Value::Number(String::from("2.5")));
        assert_eq!(entries[1].value, Value::Number(String::from("60")));
        assert_eq!(entries[2].value, Value::Str(String::from("q\"x\\")));
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("a = 1\nb 2", 2, "expected `key = value`"),
            ("x = \"open", 1, "closing"),
            ("\n\n[mqtt\n", 3, "`]`"),
            ("a = [1, 2]", 1, "arrays"),
            ("a = 1\na = 2", 2, "set twice"),
            ("a = yes", 1, "expected a quoted string"),
        ];
        for (text, line, needle) in cases {
            match parse(text) {
                Err(e) => {
                    assert_eq!(e.line, line, "{text:?}");
                    assert!(e.message.contains(needle), "{text:?}: {}", e.message);
                }
                Ok(v) => panic!("{text:?} parsed: {v:?}"),
            }
        }
    }
}
