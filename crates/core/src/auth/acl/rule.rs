//! One access rule, whichever file it came from: who it is for, what it
//! allows or denies, on which topic pattern, and where it was written.

use std::sync::Arc;

use crate::config::{AccessKind, AclRuleConfig, Permission};
use crate::router::{validate_topic_filter, TopicLimits};

use super::pattern::Placeholders;
use super::Action;
use crate::auth::{AuthError, Identity};

/// Who a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// Every client.
    Everyone,
    /// The client whose [`Identity::principal`] is this name (a client
    /// without one is never included).
    Identity(String),
    /// Members of this group.
    Group(String),
    /// A client that is both this identity and in this group.
    IdentityInGroup { identity: String, group: String },
    /// A client with this username (Mosquitto `user` lines).
    Username(String),
    /// A client without a username (Mosquitto: the lines before the first
    /// `user` line; `[[acl]]`: `anonymous = true`).
    NoUsername,
}

impl Subject {
    /// Whether the rule is for this client.
    pub fn includes(&self, identity: &Identity) -> bool {
        let in_group = |group: &str| identity.groups.iter().any(|g| g == group);
        match self {
            Subject::Everyone => true,
            Subject::Identity(name) => identity.principal() == Some(name.as_str()),
            Subject::Group(group) => in_group(group),
            Subject::IdentityInGroup {
                identity: name,
                group,
            } => identity.principal() == Some(name.as_str()) && in_group(group),
            Subject::Username(name) => identity.username.as_deref() == Some(name.as_str()),
            Subject::NoUsername => identity.username.is_none(),
        }
    }
}

/// One access rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclRule {
    pub permission: Permission,
    /// What the rule is about (a Mosquitto `deny` line denies everything:
    /// [`AccessKind::ReadWrite`]).
    pub access: AccessKind,
    /// Topic or filter, with `+`/`#` and placeholders.
    pub topic: String,
    pub subject: Subject,
    /// Which placeholders `topic` expands: all of them in `fleetmq.toml`,
    /// `%c`/`%u` in Mosquitto `pattern` lines, none in `topic` lines.
    pub(super) placeholders: Placeholders,
    /// Where the rule was written and what it says, for
    /// [`super::Decision::rule`]: built once, shared by every decision.
    pub description: Arc<str>,
}

impl AclRule {
    /// Converts `[[acl]]` rule number `number` (1-based) of `fleetmq.toml`.
    pub fn from_config(rule: &AclRuleConfig, number: usize) -> Result<AclRule, AuthError> {
        let error = |problem: String| AuthError::AclRule { number, problem };
        check_topic(&rule.topic).map_err(error)?;
        let named = |field: &str, value: &Option<String>| match value.as_deref() {
            Some("") => Err(error(format!(
                "`{field} = \"\"` names nobody (remove the key to apply the rule to everyone)"
            ))),
            other => Ok(other.map(str::to_string)),
        };
        let subject = match (
            named("identity", &rule.identity)?,
            named("group", &rule.group)?,
            rule.anonymous,
        ) {
            (None, None, false) => Subject::Everyone,
            (None, None, true) => Subject::NoUsername,
            (Some(identity), None, false) => Subject::Identity(identity),
            (None, Some(group), false) => Subject::Group(group),
            (Some(identity), Some(group), false) => Subject::IdentityInGroup { identity, group },
            (_, _, true) => {
                return Err(error(
                    "`anonymous = true` is for clients without a username, who have no \
                     identity or group; remove `identity`/`group` or `anonymous`"
                        .to_string(),
                ))
            }
        };
        let who = match &subject {
            Subject::Everyone => String::new(),
            Subject::Identity(name) => format!(" (identity {name})"),
            Subject::Group(group) => format!(" (group {group})"),
            Subject::IdentityInGroup { identity, group } => {
                format!(" (identity {identity} in group {group})")
            }
            Subject::Username(name) => format!(" (username {name})"),
            Subject::NoUsername => " (clients without a username)".to_string(),
        };
        let description = format!(
            "[[acl]] #{number}: {} {} {}{who}",
            permission_word(rule.permission),
            access_word(rule.access),
            rule.topic
        );
        Ok(AclRule {
            permission: rule.permission,
            access: rule.access,
            topic: rule.topic.clone(),
            subject,
            placeholders: Placeholders::Fleetmq,
            description: description.into(),
        })
    }

    /// Whether the rule speaks about `action`: an allow rule grants it, a
    /// deny rule takes it away.
    pub fn concerns(&self, action: Action) -> bool {
        matches!(
            (self.access, action),
            (AccessKind::ReadWrite, _)
                | (AccessKind::Read, Action::Subscribe | Action::Receive)
                | (AccessKind::Write, Action::Publish)
                | (AccessKind::Subscribe, Action::Subscribe)
        )
    }
}

/// Rule topics must be valid filters (placeholders count as text) and may
/// not be shared subscriptions: a `$share/g/f` request is checked against
/// its inner filter `f`, so a rule names `f`.
pub(super) fn check_topic(topic: &str) -> Result<(), String> {
    const RULE_LIMITS: TopicLimits = TopicLimits {
        max_length: 65_535,
        max_levels: 65_535,
    };
    if topic.starts_with("$share/") {
        return Err(format!(
            "topic {topic:?} is a shared subscription; write the filter after \
             $share/GROUP/ (subscriptions to $share/GROUP/F are checked against F)"
        ));
    }
    validate_topic_filter(topic, &RULE_LIMITS).map_err(|error| {
        format!("topic {topic:?} is not a valid topic filter: {error} (fix the topic)")
    })
}

pub(super) fn permission_word(permission: Permission) -> &'static str {
    match permission {
        Permission::Allow => "allow",
        Permission::Deny => "deny",
    }
}

pub(super) fn access_word(access: AccessKind) -> &'static str {
    match access {
        AccessKind::Read => "read",
        AccessKind::Write => "write",
        AccessKind::ReadWrite => "readwrite",
        AccessKind::Subscribe => "subscribe",
    }
}
