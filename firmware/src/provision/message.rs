//! The request document the device sends, and the fields it reads from
//! the broker's answer (docs/provisioning.md). The answer is the broker's
//! compact JSON: a string field is found by its key and unescaped; this is
//! not a general JSON parser and does not need to be one.

use alloc::string::String;

/// `{"device_id":..,"csr":..,"token":..}` with JSON string escaping.
pub fn request(device_id: &str, csr_pem: &str, token: Option<&str>) -> String {
    let mut out = String::with_capacity(csr_pem.len() + 96);
    out.push_str("{\"device_id\":");
    push_string(&mut out, device_id);
    out.push_str(",\"csr\":");
    push_string(&mut out, csr_pem);
    if let Some(token) = token {
        out.push_str(",\"token\":");
        push_string(&mut out, token);
    }
    out.push('}');
    out
}

fn push_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&alloc::format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// What the broker answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The certificate then the CA certificate, PEM.
    Issued { chain: String },
    /// Ask again later with the same key.
    Pending,
    /// Nothing issued; `reason` is the stable code (`token-used`, ...).
    Refused { reason: String, detail: String },
}

/// Reads an answer; `None` when it is not one.
pub fn answer(payload: &[u8]) -> Option<Answer> {
    let text = core::str::from_utf8(payload).ok()?;
    match string_field(text, "status")?.as_str() {
        "issued" => Some(Answer::Issued {
            chain: string_field(text, "chain")?,
        }),
        "pending" => Some(Answer::Pending),
        "refused" => Some(Answer::Refused {
            reason: string_field(text, "reason").unwrap_or_default(),
            detail: string_field(text, "detail").unwrap_or_default(),
        }),
        _ => None,
    }
}

/// The unescaped value of the first `"key":"..."` in `text`.
fn string_field(text: &str, key: &str) -> Option<String> {
    let needle = alloc::format!("\"{key}\":\"");
    let start = text.find(&needle)? + needle.len();
    let mut out = String::new();
    let mut chars = text.get(start..)?.chars();
    loop {
        match chars.next()? {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                '/' => out.push('/'),
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let code = u32::from_str_radix(&hex, 16).ok()?;
                    out.push(char::from_u32(code)?);
                }
                _ => return None,
            },
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn requests_escape_the_pem() {
        let text = request("esp32_1", "-----BEGIN\nAB\"C\n", Some("T\\1"));
        assert_eq!(
            text,
            "{\"device_id\":\"esp32_1\",\"csr\":\"-----BEGIN\\nAB\\\"C\\n\",\"token\":\"T\\\\1\"}"
        );
    }

    #[test]
    fn answers_as_the_broker_writes_them() {
        let issued = br#"{"status":"issued","device_id":"a","chain":"-----BEGIN CERTIFICATE-----\nMII\/x\n","serial":"01","not_after":"2027-01-01T00:00:00Z"}"#;
        assert_eq!(
            answer(issued),
            Some(Answer::Issued {
                chain: "-----BEGIN CERTIFICATE-----\nMII/x\n".into()
            })
        );
        assert_eq!(
            answer(br#"{"status":"pending","device_id":"a"}"#),
            Some(Answer::Pending)
        );
        assert_eq!(
            answer(br#"{"status":"refused","device_id":"a","reason":"token-used","detail":"used \u0022twice\u0022"}"#),
            Some(Answer::Refused {
                reason: "token-used".into(),
                detail: "used \"twice\"".into()
            })
        );
        for bad in [
            &b"{}"[..],
            b"not json",
            b"{\"status\":\"issued\"}",
            b"{\"status\":\"x\"}",
            b"\xff",
        ] {
            assert_eq!(answer(bad), None);
        }
    }
}
