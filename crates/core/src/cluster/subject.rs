//! The reversible mapping between MQTT topic names (and filters) and NATS
//! subjects (docs/decisions/0157-mqtt-topic-to-nats-subject.md).
//!
//! Owns only the escaping: one topic level is one subject token over the
//! alphabet `A-Z a-z 0-9 - _`, `_` introduces an escape, an empty level is
//! the token `_`. It must not know about streams, prefixes' meaning or any
//! IO; decoding accepts exactly what encoding produces, so both directions
//! round-trip.

/// Why a subject is not one this mapping produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("the subject does not start with the prefix '{0}'")]
    Prefix(String),
    #[error("the subject has an empty token")]
    EmptyToken,
    #[error("token '{0}' holds a character outside A-Z a-z 0-9 - _")]
    Character(String),
    #[error("token '{0}' holds an escape that is not '__' or '_' and two upper-case hex digits")]
    Escape(String),
    #[error("token '{0}' does not decode to UTF-8")]
    Utf8(String),
}

fn plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-'
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Appends the token of one topic level.
fn push_level(level: &str, out: &mut String) {
    if level.is_empty() {
        out.push('_');
        return;
    }
    for &byte in level.as_bytes() {
        if plain(byte) {
            out.push(char::from(byte));
        } else if byte == b'_' {
            out.push_str("__");
        } else {
            out.push('_');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

/// The subject of a topic name under `prefix` (which ends without a dot,
/// e.g. `fmq.m`): `a/b.c` -> `fmq.m.a.b_2Ec`.
pub fn topic_to_subject(prefix: &str, topic: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1 + topic.len() * 3 / 2);
    out.push_str(prefix);
    for level in topic.split('/') {
        out.push('.');
        push_level(level, &mut out);
    }
    out
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

fn decode_token(token: &str, out: &mut Vec<u8>) -> Result<(), SubjectError> {
    if token.is_empty() {
        return Err(SubjectError::EmptyToken);
    }
    if token == "_" {
        return Ok(());
    }
    let bytes = token.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if plain(byte) {
            out.push(byte);
            index += 1;
        } else if byte == b'_' {
            match bytes.get(index + 1) {
                Some(b'_') => {
                    out.push(b'_');
                    index += 2;
                }
                Some(&high) => {
                    let low = bytes.get(index + 2).copied().and_then(hex_value);
                    let (Some(high), Some(low)) = (hex_value(high), low) else {
                        return Err(SubjectError::Escape(token.to_owned()));
                    };
                    let value = (high << 4) | low;
                    // An escape of a byte that is written plainly would
                    // make two subjects for one topic; and `/` separates
                    // levels, it is never inside one (found by the
                    // cluster_subject fuzz target: `_2F` decoded to `/`).
                    if plain(value) || value == b'_' || value == b'/' {
                        return Err(SubjectError::Escape(token.to_owned()));
                    }
                    out.push(value);
                    index += 3;
                }
                None => return Err(SubjectError::Escape(token.to_owned())),
            }
        } else {
            return Err(SubjectError::Character(token.to_owned()));
        }
    }
    Ok(())
}

/// The topic name of a subject [`topic_to_subject`] made under `prefix`.
pub fn subject_to_topic(prefix: &str, subject: &str) -> Result<String, SubjectError> {
    let rest = subject
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .ok_or_else(|| SubjectError::Prefix(prefix.to_owned()))?;
    let mut topic = Vec::with_capacity(rest.len());
    for (index, token) in rest.split('.').enumerate() {
        if index > 0 {
            topic.push(b'/');
        }
        let start = topic.len();
        decode_token(token, &mut topic)?;
        if std::str::from_utf8(&topic[start..]).is_err() {
            return Err(SubjectError::Utf8(token.to_owned()));
        }
    }
    String::from_utf8(topic).map_err(|_| SubjectError::Utf8(rest.to_owned()))
}

/// The NATS subjects that together match what the plain MQTT `filter`
/// (no `$share/`) matches: `+` -> `*`; a trailing `#` also matches its
/// parent level in MQTT, so `a/#` gives `a` and `a.>`; `#` alone gives
/// `>`. The rule that wildcards do not match a leading `$` level
/// [MQTT-4.7.2-1] is not expressible and stays with the local trie.
pub fn filter_to_subjects(prefix: &str, filter: &str) -> Vec<String> {
    let levels: Vec<&str> = filter.split('/').collect();
    let mut subject = String::with_capacity(prefix.len() + filter.len() * 2);
    subject.push_str(prefix);
    let mut out = Vec::with_capacity(2);
    for (index, level) in levels.iter().enumerate() {
        match *level {
            "#" if index + 1 == levels.len() => {
                if index > 0 {
                    out.push(subject.clone());
                }
                subject.push_str(".>");
                out.push(subject);
                return out;
            }
            "+" => subject.push_str(".*"),
            level => {
                subject.push('.');
                push_level(level, &mut subject);
            }
        }
    }
    out.push(subject);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: &str = "fmq.m";

    #[test]
    fn special_characters_and_empty_levels() {
        assert_eq!(topic_to_subject(P, "a/b"), "fmq.m.a.b");
        assert_eq!(topic_to_subject(P, "a.b/*/>"), "fmq.m.a_2Eb._2A._3E");
        assert_eq!(topic_to_subject(P, "/"), "fmq.m._._");
        assert_eq!(topic_to_subject(P, "a//b"), "fmq.m.a._.b");
        assert_eq!(topic_to_subject(P, "with space"), "fmq.m.with_20space");
        assert_eq!(topic_to_subject(P, "$SYS/x"), "fmq.m._24SYS.x");
        assert_eq!(topic_to_subject(P, "snake_case"), "fmq.m.snake__case");
        assert_eq!(topic_to_subject(P, "é"), "fmq.m._C3_A9");
        assert_eq!(topic_to_subject(P, "_"), "fmq.m.__");
        for topic in [
            "a/b",
            "a.b/*/>",
            "/",
            "a//b",
            "$SYS/x",
            "_",
            "__/_x_",
            "é/€/😀",
        ] {
            let subject = topic_to_subject(P, topic);
            assert_eq!(subject_to_topic(P, &subject).as_deref(), Ok(topic));
        }
    }

    #[test]
    fn foreign_subjects_are_refused() {
        for subject in [
            "fmq.r.a",
            "fmq.m",
            "fmq.m.",
            "fmq.m.a..b",
            "fmq.m._2e",
            "fmq.m._41",
            "fmq.m._5F",
            "fmq.m.a_",
            "fmq.m.a_2",
            "fmq.m.a*b",
            "fmq.m.*",
            "fmq.m.>",
            "fmq.m._C3",
            "fmq.m.___",
            "fmq.m._2F",
        ] {
            assert!(subject_to_topic(P, subject).is_err(), "{subject}");
        }
    }

    #[test]
    fn filters() {
        assert_eq!(filter_to_subjects(P, "#"), ["fmq.m.>"]);
        assert_eq!(filter_to_subjects(P, "a/#"), ["fmq.m.a", "fmq.m.a.>"]);
        assert_eq!(filter_to_subjects(P, "+/b.c/+"), ["fmq.m.*.b_2Ec.*"]);
        assert_eq!(filter_to_subjects(P, "a/b"), ["fmq.m.a.b"]);
    }

    fn token_ok(token: &str) -> bool {
        !token.is_empty()
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }

    proptest! {
        #[test]
        fn topics_round_trip(levels in proptest::collection::vec(".{0,6}", 1..6)) {
            let topic = levels.join("/");
            let subject = topic_to_subject(P, &topic);
            let rest = subject.strip_prefix("fmq.m.").unwrap_or("");
            prop_assert!(rest.split('.').all(token_ok), "{subject}");
            prop_assert_eq!(subject_to_topic(P, &subject), Ok(topic));
        }

        #[test]
        fn decodable_subjects_round_trip(tokens in proptest::collection::vec("[A-Za-z0-9_-]{1,8}", 1..5)) {
            let subject = format!("fmq.m.{}", tokens.join("."));
            if let Ok(topic) = subject_to_topic(P, &subject) {
                prop_assert_eq!(topic_to_subject(P, &topic), subject);
            }
        }

        #[test]
        fn filters_match_what_the_mqtt_filter_matches(
            levels in proptest::collection::vec("[ab.+#]{0,2}", 1..4),
            topic_levels in proptest::collection::vec("[ab.]{0,2}", 1..4),
        ) {
            let filter = levels.join("/");
            let topic = topic_levels.join("/");
            let limits = crate::router::TopicLimits { max_length: 1000, max_levels: 100 };
            prop_assume!(crate::router::validate_topic_filter(&filter, &limits).is_ok());
            let mqtt = crate::router::topic_matches(&filter, &topic);
            let subject = topic_to_subject(P, &topic);
            let nats = filter_to_subjects(P, &filter)
                .iter()
                .any(|pattern| nats_matches(pattern, &subject));
            prop_assert_eq!(mqtt, nats, "filter {:?} topic {:?}", filter, topic);
        }
    }

    /// NATS subject matching as the server does it, token by token.
    fn nats_matches(pattern: &str, subject: &str) -> bool {
        let pattern: Vec<&str> = pattern.split('.').collect();
        let subject: Vec<&str> = subject.split('.').collect();
        for (index, token) in pattern.iter().enumerate() {
            match *token {
                ">" => return subject.len() > index,
                "*" if index < subject.len() => {}
                token if subject.get(index) == Some(&token) => {}
                _ => return false,
            }
        }
        pattern.len() == subject.len()
    }
}
