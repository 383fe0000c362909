//! Topic access control: may this client publish to this topic, subscribe
//! to this filter, receive a message on this topic?
//!
//! Rules come from `[[acl]]` tables of `fleetmq.toml`, in order, then from
//! a Mosquitto `acl_file` ([`mosquitto`]). The first rule that is for the
//! client ([`Subject`]), concerns the action ([`AclRule::concerns`]) and
//! matches the topic decides. No rule at all: everything is allowed except
//! publishing to `$SYS`. Rules but none matching: denied. The full
//! semantics, and how they relate to Mosquitto's, are in
//! docs/decisions/0030-acl-semantics.md.
//!
//! - [`rule`]: the rule model and `[[acl]]` conversion.
//! - [`pattern`]: `%c`, `%u`, `%i`, `%g` expansion.
//! - [`cover`]: whether a rule covers a subscription filter.
//! - [`mosquitto`]: the `acl_file` parser.
//!
//! Checks are pure and allocate only to expand placeholders; the
//! connection code calls [`Acl::check`] on every PUBLISH, SUBSCRIBE filter
//! and delivered message.

mod cover;
pub mod mosquitto;
mod pattern;
mod rule;

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use crate::config::{AclRuleConfig, Permission};
use crate::router::{parse_filter, topic_matches};

use super::{AuthError, Identity};

pub use cover::covers;
pub use rule::{AclRule, Subject};

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send a PUBLISH (or set a will) on a topic name.
    Publish,
    /// SUBSCRIBE to a filter (`$share/g/f` is checked as `f`).
    Subscribe,
    /// Be sent a message on a topic name (checked per message, so a
    /// subscription wider than the client's read rules delivers only what
    /// they allow).
    Receive,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Publish => "publish",
            Action::Subscribe => "subscribe",
            Action::Receive => "receive",
        })
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(text: &str) -> Result<Action, String> {
        match text {
            "publish" => Ok(Action::Publish),
            "subscribe" => Ok(Action::Subscribe),
            "receive" => Ok(Action::Receive),
            other => Err(format!(
                "unknown action {other:?} (use publish, subscribe or receive)"
            )),
        }
    }
}

/// The answer to one check, with what decided it (for logs and
/// `fleetmq acl check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The deciding rule, where it was written and what it says, e.g.
    /// `[[acl]] #3: allow read devices/%i/cmd/#` or
    /// `acl_file /etc/mosquitto/acl:12: user dev-a / topic read x`;
    /// `None` when a default decided.
    pub rule: Option<Arc<str>>,
    /// `"rule"` when a rule decided, otherwise which default applied.
    pub reason: &'static str,
}

impl Decision {
    fn default(allowed: bool, reason: &'static str) -> Decision {
        Decision {
            allowed,
            rule: None,
            reason,
        }
    }
}

/// Reason when a rule decided.
pub const REASON_RULE: &str = "rule";
/// A bridge's local side: part of the broker, not subject to rules.
pub const REASON_BRIDGE: &str = "bridge: not subject to topic rules";
/// Reason when rules exist and none matched.
pub const REASON_DEFAULT_DENY: &str = "default deny (rules exist)";
/// As above for a `$` topic, which wildcard-first rules never match.
pub const REASON_DEFAULT_DENY_DOLLAR: &str =
    "default deny (rules exist; $ topics need a rule starting with $)";
/// Reason when there are no rules.
pub const REASON_NO_RULES: &str = "no rules: allowed";
/// Reason for refusing a publish to `$SYS` without rules.
pub const REASON_SYS_PUBLISH: &str = "no rules: $SYS topics are written by the broker only";
/// Reason for an empty topic or filter (invalid; refused before any rule).
pub const REASON_EMPTY: &str = "empty topic or filter";

/// The access rules of the broker.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    /// In evaluation order: `[[acl]]` rules, then the `acl_file`'s.
    rules: Vec<AclRule>,
}

impl Acl {
    /// Builds the rules from the `[[acl]]` tables and, if given, a
    /// Mosquitto `acl_file`.
    pub fn from_config(
        rules: &[AclRuleConfig],
        mosquitto_file: Option<&Path>,
    ) -> Result<Acl, AuthError> {
        let mut converted = rules
            .iter()
            .enumerate()
            .map(|(index, rule)| AclRule::from_config(rule, index + 1))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(path) = mosquitto_file {
            let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
                action: "cannot read acl_file",
                path: path.to_path_buf(),
                source,
            })?;
            converted.extend(Acl::parse_mosquitto(&text, &path.display().to_string())?);
        }
        Ok(Acl { rules: converted })
    }

    /// Parses the text of a Mosquitto `acl_file` into rules in evaluation
    /// order; `origin` (its path) names it in errors and descriptions.
    pub fn parse_mosquitto(text: &str, origin: &str) -> Result<Vec<AclRule>, AuthError> {
        mosquitto::parse(text, origin)
    }

    /// An ACL of these rules, evaluated in the given order.
    pub fn from_rules(rules: Vec<AclRule>) -> Acl {
        Acl { rules }
    }

    /// Whether there are no rules (everything but `$SYS` publishing is
    /// allowed).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules in evaluation order.
    pub fn rules(&self) -> &[AclRule] {
        &self.rules
    }

    /// Whether `identity` may do `action` on `topic_or_filter` (a topic
    /// name for publish and receive, a filter for subscribe). Expects what
    /// the codec already validated; an empty topic is denied.
    pub fn check(&self, identity: &Identity, action: Action, topic_or_filter: &str) -> Decision {
        let topic = match action {
            Action::Subscribe => parse_filter(topic_or_filter).filter(),
            Action::Publish | Action::Receive => topic_or_filter,
        };
        if topic.is_empty() {
            return Decision::default(false, REASON_EMPTY);
        }
        if self.rules.is_empty() {
            if action == Action::Publish && (topic == "$SYS" || topic.starts_with("$SYS/")) {
                return Decision::default(false, REASON_SYS_PUBLISH);
            }
            return Decision::default(true, REASON_NO_RULES);
        }
        for rule in &self.rules {
            if !rule.concerns(action) || !rule.subject.includes(identity) {
                continue;
            }
            let matches =
                pattern::any_expansion(
                    &rule.topic,
                    rule.placeholders,
                    identity,
                    |t| match action {
                        Action::Subscribe => covers(t, topic),
                        Action::Publish | Action::Receive => topic_matches(t, topic),
                    },
                );
            if matches {
                return Decision {
                    allowed: rule.permission == Permission::Allow,
                    rule: Some(Arc::clone(&rule.description)),
                    reason: REASON_RULE,
                };
            }
        }
        if topic.starts_with('$') {
            Decision::default(false, REASON_DEFAULT_DENY_DOLLAR)
        } else {
            Decision::default(false, REASON_DEFAULT_DENY)
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_mosquitto;
