//! ACL tests over `fleetmq.toml` rules: tables of (client, action, topic,
//! expected) for each semantic of docs/decisions/0030-acl-semantics.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::config::load_from_str;

/// An ACL from `[[acl]]` tables written as TOML.
pub(super) fn acl_from_toml(text: &str) -> Acl {
    let config = load_from_str(text, "test.toml").unwrap();
    Acl::from_config(&config.acl, None).unwrap()
}

/// A client with a certificate identity, client id and groups.
pub(super) fn client(cert: Option<&str>, client_id: &str, groups: &[&str]) -> Identity {
    Identity {
        client_id: client_id.into(),
        username: cert.map(str::to_string),
        cert_identity: cert.map(Arc::from),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        listener: "l".into(),
        fingerprint: cert.map(|_| "00".into()),
        password_verified: false,
        username_from_certificate: false,
        bridge: false,
    }
}

use Action::{Publish as P, Receive as R, Subscribe as S};

fn check_table(acl: &Acl, cases: &[(&Identity, Action, &str, bool)]) {
    for (identity, action, topic, expected) in cases {
        let decision = acl.check(identity, *action, topic);
        assert_eq!(
            decision.allowed,
            *expected,
            "{:?} {action} {topic:?}: {decision:?}",
            identity.principal()
        );
    }
}

#[test]
fn without_rules_everything_but_sys_publishing_is_allowed() {
    let acl = Acl::default();
    let anyone = client(None, "c", &[]);
    check_table(
        &acl,
        &[
            (&anyone, P, "a/b", true),
            (&anyone, S, "#", true),
            (&anyone, S, "$SYS/#", true),
            (&anyone, R, "$SYS/broker/uptime", true),
            (&anyone, P, "$SYS/broker/uptime", false),
            (&anyone, P, "$SYS", false),
            (&anyone, P, "$SYSTEM", true),
        ],
    );
    assert_eq!(acl.check(&anyone, P, "a").reason, REASON_NO_RULES);
    assert_eq!(acl.check(&anyone, P, "$SYS/x").reason, REASON_SYS_PUBLISH);
}

#[test]
fn subscribe_access_admits_filters_but_not_messages() {
    let acl = acl_from_toml(
        r##"
        [[acl]]
        access = "subscribe"
        topic = "#"
        [[acl]]
        access = "read"
        topic = "devices/%i/#"
        "##,
    );
    let dev_a = client(Some("dev-a"), "dev-a", &[]);
    check_table(
        &acl,
        &[
            (&dev_a, S, "#", true),
            (&dev_a, S, "+/+/#", true),
            (&dev_a, R, "devices/dev-a/cmd", true),
            (&dev_a, R, "devices/dev-b/cmd", false),
            (&dev_a, R, "other", false),
            (&dev_a, P, "devices/dev-a/x", false),
            // `#` does not cover $ topics.
            (&dev_a, S, "$SYS/#", false),
        ],
    );
}

#[test]
fn topic_edge_cases() {
    let acl = acl_from_toml(
        r##"
        [[acl]]
        access = "readwrite"
        topic = "a/#"
        [[acl]]
        access = "read"
        topic = "x//y"
        [[acl]]
        access = "write"
        topic = "sensors/+/temp"
        [[acl]]
        access = "read"
        topic = "$SYS/broker/+"
        [[acl]]
        access = "read"
        topic = "+/public"
        "##,
    );
    let c = client(None, "c", &[]);
    check_table(
        &acl,
        &[
            // `#` matches its parent level.
            (&c, P, "a", true),
            (&c, P, "a/", true),
            (&c, P, "a/b/c", true),
            (&c, P, "ab", false),
            (&c, S, "a", true),
            (&c, S, "a/#", true),
            (&c, S, "#", false),
            // Empty levels are levels.
            (&c, R, "x//y", true),
            (&c, R, "x/y", false),
            (&c, S, "x//y", true),
            (&c, S, "x/+/y", false),
            (&c, P, "sensors//temp", true),
            (&c, P, "sensors/s1/temp", true),
            (&c, P, "sensors/s1/s2/temp", false),
            (&c, S, "sensors/+/temp", false),
            // $ topics: only rules starting with $.
            (&c, R, "$SYS/broker/uptime", true),
            (&c, S, "$SYS/broker/+", true),
            (&c, S, "$SYS/broker/#", false),
            (&c, R, "$SYS/public", false),
            (&c, R, "$x/public", false),
            (&c, R, "any/public", true),
            // Shared subscriptions are checked by their inner filter.
            (&c, S, "$share/g/a/#", true),
            (&c, S, "$share/g/#", false),
            (&c, S, "$share/g", false),
        ],
    );
    assert_eq!(acl.check(&c, R, "$x/y").reason, REASON_DEFAULT_DENY_DOLLAR);
    assert_eq!(acl.check(&c, R, "x/y").reason, REASON_DEFAULT_DENY);
}

#[test]
fn hostile_client_ids_do_not_widen_access() {
    let acl = acl_from_toml(
        r##"
        [[acl]]
        access = "readwrite"
        topic = "devices/%c/#"
        "##,
    );
    for hostile in ["#", "+", "dev-a/#", "dev-a/x", "", "$SYS", "a\0b"] {
        let c = client(None, hostile, &[]);
        check_table(
            &acl,
            &[
                (&c, P, "devices/dev-a/x", false),
                (&c, S, "devices/#", false),
                (&c, S, "devices/+/x", false),
                (&c, S, "devices/dev-a/#", false),
                (&c, R, "devices/dev-a/x", false),
                (&c, R, "$SYS/x", false),
            ],
        );
    }
    let honest = client(None, "dev-a", &[]);
    check_table(
        &acl,
        &[
            (&honest, P, "devices/dev-a/x", true),
            (&honest, S, "devices/dev-a/#", true),
            (&honest, P, "devices/dev-b/x", false),
        ],
    );
}

#[test]
fn deny_rules_that_cannot_expand_do_not_apply() {
    // Documented consequence: the deny is skipped, the next rule decides.
    let acl = acl_from_toml(
        r##"
        [[acl]]
        permission = "deny"
        access = "write"
        topic = "devices/%c/locked"
        [[acl]]
        access = "write"
        topic = "devices/#"
        "##,
    );
    let normal = client(None, "dev-a", &[]);
    assert!(!acl.check(&normal, P, "devices/dev-a/locked").allowed);
    assert!(acl.check(&normal, P, "devices/dev-b/locked").allowed);
    let hostile = client(None, "+", &[]);
    assert!(acl.check(&hostile, P, "devices/dev-a/locked").allowed);
}

#[test]
fn deny_applies_to_subscribe_only_when_it_covers_the_filter() {
    let acl = acl_from_toml(
        r##"
        [[acl]]
        permission = "deny"
        topic = "devices/+/secret/#"
        [[acl]]
        topic = "devices/#"
        "##,
    );
    let c = client(Some("ops-1"), "c", &[]);
    check_table(
        &acl,
        &[
            (&c, S, "devices/#", true),
            (&c, S, "devices/dev-a/#", true),
            (&c, S, "devices/dev-a/secret/#", false),
            (&c, S, "devices/+/secret/key", false),
            (&c, R, "devices/dev-a/secret/key", false),
            (&c, R, "devices/dev-a/secret", false),
            (&c, R, "devices/dev-a/status", true),
            // A read deny says nothing about publishing; no rule allows it.
            (&c, P, "devices/dev-a/status", false),
        ],
    );
}

#[test]
fn subjects_select_rules() {
    let acl = acl_from_toml(
        r##"
        [[acl]]
        identity = "dev-a"
        access = "write"
        topic = "only/a"
        [[acl]]
        group = "ops"
        access = "read"
        topic = "#"
        [[acl]]
        identity = "boss"
        group = "ops"
        access = "write"
        topic = "cmd/#"
        [[acl]]
        access = "read"
        topic = "groups/%g/#"
        "##,
    );
    let dev_a = client(Some("dev-a"), "x", &[]);
    let ops = client(Some("ops-1"), "x", &["ops", "lab"]);
    let boss = client(Some("boss"), "x", &["ops"]);
    let fake_boss = client(Some("boss"), "x", &[]);
    // A password client named like a device: the principal is the
    // verified username.
    let password_user = Identity {
        cert_identity: None,
        fingerprint: None,
        password_verified: true,
        username_from_certificate: false,
        bridge: false,
        ..client(Some("dev-a"), "x", &[])
    };
    check_table(
        &acl,
        &[
            (&dev_a, P, "only/a", true),
            (&ops, P, "only/a", false),
            (&password_user, P, "only/a", true),
            (&dev_a, S, "#", false),
            (&ops, S, "#", true),
            (&ops, R, "devices/x", true),
            (&boss, P, "cmd/reboot", true),
            (&fake_boss, P, "cmd/reboot", false),
            (&ops, P, "cmd/reboot", false),
            (&dev_a, R, "groups/ops/x", false),
            (&fake_boss, R, "groups/lab/x", false),
        ],
    );
    let lab = client(Some("l"), "x", &["lab"]);
    assert!(acl.check(&lab, R, "groups/lab/x").allowed);
    assert!(!acl.check(&lab, R, "groups/ops/x").allowed);
}

#[test]
fn decisions_name_the_deciding_rule() {
    let acl = acl_from_toml(
        r##"
        [[acl]]
        identity = "dev-a"
        access = "write"
        topic = "devices/%i/#"
        [[acl]]
        permission = "deny"
        group = "ops"
        access = "read"
        topic = "devices/+/secret"
        "##,
    );
    let dev_a = client(Some("dev-a"), "dev-a", &["ops"]);
    let allowed = acl.check(&dev_a, P, "devices/dev-a/t");
    assert_eq!(allowed.reason, REASON_RULE);
    assert_eq!(
        allowed.rule.as_deref(),
        Some("[[acl]] #1: allow write devices/%i/# (identity dev-a)")
    );
    let denied = acl.check(&dev_a, R, "devices/x/secret");
    assert!(!denied.allowed);
    assert_eq!(
        denied.rule.as_deref(),
        Some("[[acl]] #2: deny read devices/+/secret (group ops)")
    );
    let default = acl.check(&dev_a, R, "other");
    assert_eq!((default.rule, default.reason), (None, REASON_DEFAULT_DENY));
}

#[test]
fn invalid_rules_are_reported_with_their_number() {
    let cases = [
        (r#"topic = "a/#/b""#, "not a valid topic filter"),
        (r#"topic = "a+""#, "not a valid topic filter"),
        (r#"topic = """#, "not a valid topic filter"),
        (r#"topic = "$share/g/a""#, "shared subscription"),
        ("topic = \"a\"\nidentity = \"\"", "names nobody"),
        ("topic = \"a\"\ngroup = \"\"", "names nobody"),
        (
            "topic = \"a\"\nanonymous = true\nidentity = \"dev-a\"",
            "clients without a username",
        ),
        (
            "topic = \"a\"\nanonymous = true\ngroup = \"ops\"",
            "clients without a username",
        ),
    ];
    for (rule, needle) in cases {
        let text = format!("[[acl]]\ntopic = \"ok\"\n[[acl]]\n{rule}\n");
        let config = load_from_str(&text, "test.toml").unwrap();
        let error = Acl::from_config(&config.acl, None).unwrap_err().to_string();
        assert!(error.starts_with("[[acl]] rule #2: "), "{rule}: {error}");
        assert!(error.contains(needle), "{rule}: {error}");
    }
}

#[test]
fn actions_parse_and_print() {
    for action in [P, S, R] {
        assert_eq!(action.to_string().parse::<Action>(), Ok(action));
    }
    assert!("read".parse::<Action>().is_err());
}
