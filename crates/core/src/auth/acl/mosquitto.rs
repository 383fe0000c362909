//! Reads a Mosquitto `acl_file` as Mosquitto 2.0 writes and reads it.
//!
//! ```text
//! # Before any `user` line: rules for clients without a username.
//! topic read $SYS/broker/uptime
//! user dev-a
//! # For the username dev-a.
//! topic write devices/dev-a/#
//! topic deny devices/dev-a/secret
//! # Patterns: every client, %c and %u expanded.
//! pattern readwrite devices/%c/#
//! ```
//!
//! Comments are whole lines: as in Mosquitto, a `#` after a topic is part
//! of the topic (and usually makes it invalid).
//!
//! `topic`/`pattern` take an optional access word (`read`, `write`,
//! `readwrite`, `deny`; none means `readwrite`) and a topic, which is the
//! rest of the line and may contain spaces. Mosquitto checks a client's
//! `user` rules before the `pattern` rules and, within each list, the
//! `deny` lines before the others; the rules come back in that order, so
//! that first-match evaluation gives Mosquitto's answers
//! (docs/decisions/0030-acl-semantics.md).

use crate::auth::AuthError;
use crate::config::{AccessKind, Permission};

use super::pattern::Placeholders;
use super::rule::check_topic;
use super::{AclRule, Subject};

/// Parses the text of an `acl_file`; `origin` (its path) names it in
/// errors and in rule descriptions.
pub fn parse(text: &str, origin: &str) -> Result<Vec<AclRule>, AuthError> {
    let mut topic_rules: Vec<AclRule> = Vec::new();
    let mut pattern_rules: Vec<AclRule> = Vec::new();
    let mut user: Option<String> = None;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let error = |problem: String| AuthError::AclFile {
            origin: origin.to_string(),
            line: number,
            problem,
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (keyword, rest) = split_word(line);
        match keyword {
            "user" => {
                if rest.is_empty() {
                    return Err(error(
                        "`user` without a name (write `user NAME`; topic lines after it \
                         apply to that username)"
                            .to_string(),
                    ));
                }
                user = Some(rest.to_string());
            }
            "topic" | "pattern" => {
                let (permission, access, topic) = access_and_topic(rest).map_err(&error)?;
                check_topic(topic).map_err(&error)?;
                let is_pattern = keyword == "pattern";
                let (subject, placeholders) = match (&user, is_pattern) {
                    (_, true) => (Subject::Everyone, Placeholders::Mosquitto),
                    (Some(name), false) => (Subject::Username(name.clone()), Placeholders::None),
                    // Mosquitto's `acl__find_acls`: the top block is the
                    // list of clients without a username, and only theirs.
                    (None, false) => (Subject::NoUsername, Placeholders::None),
                };
                let description = match (&user, is_pattern) {
                    (Some(name), false) => {
                        format!("acl_file {origin}:{number}: user {name} / {line}")
                    }
                    (None, false) => {
                        format!("acl_file {origin}:{number}: (clients without a username) / {line}")
                    }
                    (_, true) => format!("acl_file {origin}:{number}: {line}"),
                };
                let rule = AclRule {
                    permission,
                    access,
                    topic: topic.to_string(),
                    subject,
                    placeholders,
                    description: description.into(),
                };
                if is_pattern {
                    pattern_rules.push(rule);
                } else {
                    topic_rules.push(rule);
                }
            }
            other => {
                return Err(error(format!(
                    "unknown keyword {other:?} (lines are `user NAME`, `topic [ACCESS] TOPIC`, \
                     `pattern [ACCESS] TOPIC` or `# comment`)"
                )))
            }
        }
    }
    let mut rules = deny_first(topic_rules);
    rules.extend(deny_first(pattern_rules));
    Ok(rules)
}

/// Mosquitto puts `deny` lines at the front of each list. Rules of
/// different usernames (and of the top block, for clients without one)
/// never apply to the same client, so one stable partition of all `topic`
/// rules gives every client its own list in Mosquitto's order.
fn deny_first(rules: Vec<AclRule>) -> Vec<AclRule> {
    let (mut denies, allows): (Vec<AclRule>, Vec<AclRule>) = rules
        .into_iter()
        .partition(|rule| rule.permission == Permission::Deny);
    denies.extend(allows);
    denies
}

fn access_and_topic(rest: &str) -> Result<(Permission, AccessKind, &str), String> {
    let (first, topic) = split_word(rest);
    if first.is_empty() {
        return Err("no topic (write `topic [read|write|readwrite|deny] TOPIC`)".to_string());
    }
    if topic.is_empty() {
        // One word: the topic, with read and write access.
        return Ok((Permission::Allow, AccessKind::ReadWrite, first));
    }
    let (permission, access) = match first {
        "read" => (Permission::Allow, AccessKind::Read),
        "write" => (Permission::Allow, AccessKind::Write),
        "readwrite" => (Permission::Allow, AccessKind::ReadWrite),
        "deny" => (Permission::Deny, AccessKind::ReadWrite),
        other => {
            return Err(format!(
                "unknown access {other:?} (use read, write, readwrite or deny; a topic \
                 containing spaces needs an access word before it)"
            ))
        }
    };
    Ok((permission, access, topic))
}

/// The first space-separated word and the rest, trimmed. Mosquitto splits
/// on spaces only; tabs are accepted too.
fn split_word(text: &str) -> (&str, &str) {
    match text.split_once([' ', '\t']) {
        Some((word, rest)) => (word, rest.trim()),
        None => (text, ""),
    }
}
