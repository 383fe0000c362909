//! The MQTT topic <-> NATS subject mapping (docs/decisions/0157) in both
//! directions: any UTF-8 topic encodes to tokens over `A-Z a-z 0-9 - _`
//! (never empty, never a wildcard) and decodes back to itself; any string
//! that decodes as a subject encodes back to exactly that string; a
//! filter's subjects match a topic's subject exactly when the MQTT filter
//! matches the topic.
//!
//! Input: UTF-8; up to the first newline a topic name (or a subject to
//! decode), after it an optional filter.
#![no_main]

use fleetmq_core::cluster::subject::{filter_to_subjects, subject_to_topic, topic_to_subject};
use fleetmq_core::router::{topic_matches, validate_topic_filter, TopicLimits};
use libfuzzer_sys::fuzz_target;

const PREFIX: &str = "fmq.m";

/// NATS matching, token by token: `*` one token, `>` one or more.
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

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (topic, filter) = text.split_once('\n').unwrap_or((text, ""));
    let subject = topic_to_subject(PREFIX, topic);
    let tokens = &subject[PREFIX.len() + 1..];
    assert!(
        tokens.split('.').all(|token| !token.is_empty()
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')),
        "{topic:?} -> {subject:?}"
    );
    assert_eq!(
        subject_to_topic(PREFIX, &subject).as_deref(),
        Ok(topic),
        "{subject:?}"
    );
    // The raw text as a subject: whatever decodes must encode back to it.
    let candidate = format!("{PREFIX}.{topic}");
    if let Ok(decoded) = subject_to_topic(PREFIX, &candidate) {
        assert_eq!(topic_to_subject(PREFIX, &decoded), candidate);
    }
    let limits = TopicLimits {
        max_length: 65_535,
        max_levels: 1_000,
    };
    if !topic.is_empty()
        && !topic.contains(['+', '#'])
        && !filter.starts_with("$share/")
        && validate_topic_filter(filter, &limits).is_ok()
        // The `$` rule [MQTT-4.7.2-1] stays with the local trie (0157).
        && !topic.starts_with('$')
    {
        let nats = filter_to_subjects(PREFIX, filter)
            .iter()
            .any(|pattern| nats_matches(pattern, &subject));
        assert_eq!(
            topic_matches(filter, topic),
            nats,
            "{filter:?} on {topic:?}"
        );
    }
});
