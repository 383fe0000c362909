//! ACL pattern expansion and checks with hostile identities.
//!
//! A client picks its own client id (and, without a password file, its
//! username), so the property that matters is containment: a rule
//! `devices/%c/#` must grant a client only topics under
//! `devices/<its own id>/`, never another device's topics, never `$SYS`,
//! whatever the id contains (`#`, `+`, `/`, NUL, `$`, nothing). The same
//! for `%u`, `%i` and `%g`. Rules parsed from fuzzed Mosquitto acl_file
//! text are checked too, for panics.
//!
//! Input: UTF-8 lines: client id, username (empty: none; a leading `!`
//! marks it verified by a password file), certificate identity (empty:
//! none), groups (comma separated), topic, then the text of a Mosquitto
//! acl_file. A client with neither certificate nor verified username has
//! no identity: `%i` must grant it nothing.
#![no_main]

use std::sync::Arc;

use fleetmq_core::auth::{Acl, AclRule, Action, Identity};
use fleetmq_core::config::{AccessKind, AclRuleConfig, Permission};
use libfuzzer_sys::fuzz_target;

/// What the broker accepts as a placeholder value (pattern.rs).
fn safe(value: &str) -> bool {
    !value.is_empty() && !value.starts_with('$') && !value.contains(['+', '#', '/', '\0'])
}

/// Whether `topic` lies under `prefix/<value>` for one of `values`.
fn contained(topic: &str, prefix: &str, values: &[&str]) -> bool {
    values.iter().any(|value| {
        let root = format!("{prefix}/{value}");
        safe(value) && (topic == root || topic.starts_with(&format!("{root}/")))
    })
}

fn rule(topic: &str) -> Option<AclRule> {
    let config = AclRuleConfig {
        permission: Permission::Allow,
        access: AccessKind::ReadWrite,
        topic: topic.to_string(),
        identity: None,
        group: None,
        anonymous: false,
    };
    AclRule::from_config(&config, 1).ok()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(6, '\n');
    let client_id = parts.next().unwrap_or_default();
    let username_line = parts.next().unwrap_or_default();
    let password_verified = username_line.starts_with('!');
    let username =
        Some(username_line.strip_prefix('!').unwrap_or(username_line)).filter(|u| !u.is_empty());
    let cert = parts.next().filter(|c| !c.is_empty());
    let groups: Vec<String> = parts
        .next()
        .unwrap_or_default()
        .split(',')
        .filter(|g| !g.is_empty())
        .take(8)
        .map(str::to_string)
        .collect();
    let topic = parts.next().unwrap_or_default();
    let acl_file = parts.next().unwrap_or_default();
    let identity = Identity {
        client_id: Arc::from(client_id),
        username: username.map(str::to_string),
        cert_identity: cert.map(Arc::from),
        groups: groups.clone(),
        listener: Arc::from("fuzz"),
        fingerprint: cert.map(|_| Arc::from("00")),
        password_verified,
        username_from_certificate: false,
        bridge: false,
    };
    let principal: Vec<&str> = identity.principal().into_iter().collect();
    let group_refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    let cases: [(&str, &str, Vec<&str>); 4] = [
        ("devices/%c/#", "devices", vec![client_id]),
        ("users/%u/#", "users", username.into_iter().collect()),
        ("ids/%i/#", "ids", principal),
        ("groups/%g/#", "groups", group_refs),
    ];
    for (pattern, prefix, values) in cases {
        let Some(rule) = rule(pattern) else {
            panic!("{pattern} is a valid rule");
        };
        let acl = Acl::from_rules(vec![rule]);
        for action in [Action::Publish, Action::Receive, Action::Subscribe] {
            let decision = acl.check(&identity, action, topic);
            if decision.allowed {
                // A subscribe filter may be narrower than the rule; what
                // it covers must still be inside the client's subtree.
                let inner = topic.strip_prefix("$share/").map_or(topic, |rest| {
                    rest.split_once('/').map_or("", |(_, filter)| filter)
                });
                assert!(
                    contained(inner, prefix, &values),
                    "{pattern} let {identity:?} {action} {topic:?}"
                );
            }
        }
    }
    // Mosquitto acl_file text: parse errors are fine, panics are not.
    if let Ok(rules) = Acl::parse_mosquitto(acl_file, "fuzz.acl") {
        let acl = Acl::from_rules(rules);
        for action in [Action::Publish, Action::Receive, Action::Subscribe] {
            let _ = acl.check(&identity, action, topic);
        }
    }
});
