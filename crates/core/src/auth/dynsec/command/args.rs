//! Reading a command's arguments the way the plugin does: member names
//! match ignoring ASCII case (its JSON library's lookup); a required
//! string that is missing or not a string is an error; an optional one may
//! be absent; numbers and booleans fall back to their defaults; names must
//! be valid MQTT UTF-8 (no control characters).

use serde_json::{Map, Value};

/// A member of a JSON object by name, ignoring ASCII case.
pub fn member<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.as_object().and_then(|object| field(object, key))
}

/// [`member`] on an object.
pub fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value)
    })
}

/// A string argument: `Err` when present but not a string, or when
/// required and missing.
pub fn string<'a>(
    body: &'a Map<String, Value>,
    key: &str,
    optional: bool,
) -> Result<Option<&'a str>, ()> {
    match field(body, key) {
        Some(Value::String(text)) => Ok(Some(text)),
        None if optional => Ok(None),
        _ => Err(()),
    }
}

/// An integer argument, `default` when absent or not an integer.
pub fn int(body: &Map<String, Value>, key: &str, default: i64) -> i64 {
    field(body, key).and_then(Value::as_i64).unwrap_or(default)
}

/// A boolean argument, `default` when absent or not a boolean.
pub fn boolean(body: &Map<String, Value>, key: &str, default: bool) -> bool {
    field(body, key).and_then(Value::as_bool).unwrap_or(default)
}

/// Whether `text` is a string MQTT allows: no U+0000..U+001F, no
/// U+007F..U+009F, no non-characters.
pub fn valid_utf8(text: &str) -> bool {
    text.chars().all(|c| {
        let code = u32::from(c);
        !(code <= 0x1f
            || (0x7f..=0x9f).contains(&code)
            || (0xfdd0..=0xfdef).contains(&code)
            || (code & 0xfffe) == 0xfffe)
    })
}

/// Whether `topic` is a valid topic filter (`#` alone and last, `+` alone
/// in its level, not empty).
pub fn valid_filter(topic: &str) -> bool {
    if topic.is_empty() {
        return false;
    }
    let levels: Vec<&str> = topic.split('/').collect();
    levels.iter().enumerate().all(|(index, level)| {
        (!level.contains('#') || (*level == "#" && index == levels.len() - 1))
            && (!level.contains('+') || *level == "+")
    })
}
