//! Mosquitto `acl_file` tests: parsing, Mosquitto 2.0's ordering, and the
//! equivalence of one policy written as `[[acl]]` rules and as an
//! `acl_file` with `use_identity_as_username`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::tests::{acl_from_toml, client};
use super::*;
use crate::auth::identity::tests::cert;
use crate::config::{GroupConfig, ListenerConfig};

use Action::{Publish as P, Receive as R, Subscribe as S};

fn parse(text: &str) -> Acl {
    Acl::from_rules(Acl::parse_mosquitto(text, "/etc/mosquitto/acl").unwrap())
}

#[test]
fn lines_parse_into_rules() {
    let rules = Acl::parse_mosquitto(
        "# comment\r\n\
         \r\n\
         topic read $SYS/#\n\
         topic public/#\n\
         user dev-a\n\
         topic write devices/dev-a/#\n\
         \t# indented comment\n\
         topic   read   topic with spaces/x \n\
         pattern write devices/%c/#\n",
        "/etc/mosquitto/acl",
    )
    .unwrap();
    let summary: Vec<(Permission, AccessKind, &str, &Subject)> = rules
        .iter()
        .map(|r| (r.permission, r.access, r.topic.as_str(), &r.subject))
        .collect();
    use crate::config::AccessKind;
    use Permission::Allow;
    let dev_a = Subject::Username("dev-a".to_string());
    assert_eq!(
        summary,
        [
            (Allow, AccessKind::Read, "$SYS/#", &Subject::NoUsername),
            (
                Allow,
                AccessKind::ReadWrite,
                "public/#",
                &Subject::NoUsername
            ),
            (Allow, AccessKind::Write, "devices/dev-a/#", &dev_a),
            (Allow, AccessKind::Read, "topic with spaces/x", &dev_a),
            (Allow, AccessKind::Write, "devices/%c/#", &Subject::Everyone),
        ]
    );
    assert_eq!(
        &*rules[0].description,
        "acl_file /etc/mosquitto/acl:3: (clients without a username) / topic read $SYS/#"
    );
    assert_eq!(
        &*rules[2].description,
        "acl_file /etc/mosquitto/acl:6: user dev-a / topic write devices/dev-a/#"
    );
    assert_eq!(
        &*rules[4].description,
        "acl_file /etc/mosquitto/acl:9: pattern write devices/%c/#"
    );
}

#[test]
fn denies_come_first_within_topics_and_within_patterns() {
    let acl = parse(
        "user dev-a\n\
         topic read devices/#\n\
         topic deny devices/secret/#\n\
         pattern readwrite own/%u/#\n\
         pattern deny own/%u/locked\n",
    );
    let dev_a = client(Some("dev-a"), "c", &[]);
    let decision = acl.check(&dev_a, R, "devices/secret/key");
    assert!(!decision.allowed);
    assert_eq!(
        decision.rule.as_deref(),
        Some("acl_file /etc/mosquitto/acl:3: user dev-a / topic deny devices/secret/#")
    );
    assert!(acl.check(&dev_a, R, "devices/public").allowed);
    assert!(!acl.check(&dev_a, P, "own/dev-a/locked").allowed);
    assert!(acl.check(&dev_a, P, "own/dev-a/open").allowed);
    // A user's allow still comes before a pattern's deny, as in Mosquitto.
    let acl = parse("user dev-a\ntopic write own/dev-a/locked\npattern deny own/%u/locked\n");
    assert!(acl.check(&dev_a, P, "own/dev-a/locked").allowed);
}

#[test]
fn user_blocks_match_the_username_and_topic_lines_are_literal() {
    let acl = parse(
        "topic read top/#\n\
         user dev-a\n\
         topic write %c/x\n\
         user dev-b\n\
         topic write b/#\n\
         pattern write p/%u/%c\n",
    );
    let dev_a = client(Some("dev-a"), "c1", &[]);
    let dev_b = client(Some("dev-b"), "c2", &[]);
    let nobody = client(None, "c3", &[]);
    let cases = [
        // The top block is for clients without a username only.
        (&dev_a, R, "top/x", false),
        (&nobody, R, "top/x", true),
        (&dev_a, P, "%c/x", true),
        (&dev_a, P, "c1/x", false),
        (&dev_a, P, "b/x", false),
        (&dev_b, P, "b/x", true),
        (&dev_b, P, "p/dev-b/c2", true),
        (&dev_b, P, "p/dev-a/c2", false),
        // %u without a username: the pattern does not apply.
        (&nobody, P, "p//c3", false),
    ];
    for (identity, action, topic, expected) in cases {
        assert_eq!(
            acl.check(identity, action, topic).allowed,
            expected,
            "{:?} {action} {topic}",
            identity.principal()
        );
    }
}

#[test]
fn malformed_lines_name_file_and_line() {
    let cases = [
        ("user\n", 1, "without a name"),
        ("topic\n", 1, "no topic"),
        ("\n# x\ntopic maybe a/b\n", 3, "unknown access \"maybe\""),
        ("topic read a/#/b\n", 1, "not a valid topic filter"),
        (
            "topic read x # trailing comment\n",
            1,
            "not a valid topic filter",
        ),
        ("pattern write $share/g/%c\n", 1, "shared subscription"),
        ("users dev-a\n", 1, "unknown keyword \"users\""),
    ];
    for (text, line, needle) in cases {
        let error = Acl::parse_mosquitto(text, "/etc/mosquitto/acl")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!("/etc/mosquitto/acl:{line}: ")),
            "{text:?}: {error}"
        );
        assert!(error.contains(needle), "{text:?}: {error}");
    }
}

#[test]
fn acl_file_is_read_after_the_toml_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acl");
    std::fs::write(&path, "topic deny a\ntopic read #\n").unwrap();
    let config =
        crate::config::load_from_str("[[acl]]\naccess = \"read\"\ntopic = \"a\"\n", "t").unwrap();
    let acl = Acl::from_config(&config.acl, Some(&path)).unwrap();
    let c = client(None, "c", &[]);
    assert_eq!(acl.rules().len(), 3);
    // The toml rule comes first, whatever the acl_file denies.
    assert!(acl.check(&c, R, "a").allowed);
    assert!(acl.check(&c, R, "b").allowed);
    let missing = Acl::from_config(&[], Some(&dir.path().join("nope"))).unwrap_err();
    assert!(missing.to_string().contains("nope"), "{missing}");
}

/// The policy, written once for each: the shipped examples, so that what
/// users copy is what is tested.
const POLICY_TOML: &str = include_str!("../../../../../config/acl.example.toml");
const POLICY_MOSQUITTO: &str = include_str!("../../../../../config/mosquitto-acl.example");

/// The issue's policy, both ways, must decide identically: dev-a may
/// publish under `devices/dev-a/` and read its `cmd/` topics, not dev-b's;
/// read rules alone never admit `#`, `+/+/#` or another device's shared
/// subscription; ops reads everything but secrets.
#[test]
fn toml_rules_and_acl_file_decide_identically() {
    let config = crate::config::load_from_str(POLICY_TOML, "policy.toml").unwrap();
    let toml_acl = acl_from_toml(POLICY_TOML);
    let mosquitto_acl = parse(POLICY_MOSQUITTO);
    let mut listener = ListenerConfig::default_tls();
    listener.use_identity_as_username = true;
    let groups: &[GroupConfig] = &config.auth.groups;
    let device = |name: &str, client_id: &str| {
        let cert = cert(name, &[]);
        Identity::build(
            &listener,
            "tls".into(),
            groups,
            Some(&cert),
            client_id,
            None,
        )
    };
    let dev_a = device("dev-a", "dev-a");
    let dev_b = device("dev-b", "dev-b");
    let ops = device("ops-1", "console");
    let hostile = device("dev-a", "#");
    assert_eq!(ops.groups, ["ops"]);
    let cases = [
        (&dev_a, P, "devices/dev-a/telemetry", true),
        (&dev_a, P, "devices/dev-a", true),
        (&dev_a, P, "devices/dev-a/secret/x", true),
        (&dev_a, P, "devices/dev-b/telemetry", false),
        (&dev_a, P, "devices", false),
        (&dev_a, P, "$SYS/broker/uptime", false),
        (&dev_a, S, "devices/dev-a/cmd/#", true),
        (&dev_a, S, "devices/dev-a/cmd/+", true),
        (&dev_a, S, "devices/dev-a/cmd", true),
        (&dev_a, S, "devices/dev-a/#", false),
        (&dev_a, S, "devices/dev-b/cmd/#", false),
        (&dev_a, S, "devices/+/cmd/#", false),
        (&dev_a, S, "#", false),
        (&dev_a, S, "+/+/#", false),
        (&dev_a, S, "$share/g/devices/dev-b/#", false),
        (&dev_a, S, "$share/g/devices/dev-a/cmd/#", true),
        (&dev_a, S, "$SYS/#", false),
        (&dev_a, R, "devices/dev-a/cmd/reboot", true),
        (&dev_a, R, "devices/dev-a/telemetry", false),
        (&dev_a, R, "devices/dev-b/cmd/reboot", false),
        (&dev_b, P, "devices/dev-b/telemetry", true),
        (&dev_b, P, "devices/dev-a/telemetry", false),
        (&dev_b, R, "devices/dev-a/cmd/reboot", false),
        (&dev_b, S, "devices/dev-a/cmd/#", false),
        (&hostile, P, "devices/dev-a/x", true),
        (&hostile, P, "devices/dev-b/x", false),
        (&ops, S, "#", true),
        (&ops, S, "+/+/#", true),
        (&ops, S, "devices/#", true),
        (&ops, S, "$share/g/devices/#", true),
        (&ops, S, "devices/dev-a/secret/#", false),
        (&ops, S, "$SYS/#", false),
        (&ops, R, "devices/dev-b/telemetry", true),
        (&ops, R, "devices/dev-a/secret/key", false),
        (&ops, R, "$SYS/broker/uptime", false),
        (&ops, P, "devices/dev-a/cmd/reboot", false),
        (&ops, P, "devices/ops-1/status", true),
        (&ops, P, "devices/ops-1/secret/x", false),
    ];
    for (identity, action, topic, expected) in cases {
        let by_toml = toml_acl.check(identity, action, topic);
        let by_file = mosquitto_acl.check(identity, action, topic);
        let who = identity.principal().unwrap_or("(none)");
        assert_eq!(
            by_toml.allowed, expected,
            "toml: {who} {action} {topic}: {by_toml:?}"
        );
        assert_eq!(
            by_file.allowed, expected,
            "acl_file: {who} {action} {topic}: {by_file:?}"
        );
    }
}

/// The migrated lab file of the security issue: the top block served
/// anonymous lab tools and must give a username nothing, neither its
/// grants nor its denials; `anonymous = true` writes the same in
/// `[[acl]]`.
#[test]
fn top_block_is_for_clients_without_a_username_in_both_forms() {
    let file = parse(
        "topic readwrite #\n\
         topic deny secret/#\n\
         user dev-a\n\
         topic write devices/dev-a/telemetry\n\
         topic readwrite secret/dev-a/#\n\
         pattern write pattern/%u/#\n",
    );
    let toml = acl_from_toml(
        r##"
        [[acl]]
        permission = "deny"
        access = "readwrite"
        topic = "secret/#"
        anonymous = true
        [[acl]]
        access = "readwrite"
        topic = "#"
        anonymous = true
        [[acl]]
        access = "write"
        topic = "devices/dev-a/telemetry"
        identity = "dev-a"
        [[acl]]
        access = "readwrite"
        topic = "secret/dev-a/#"
        identity = "dev-a"
        [[acl]]
        access = "write"
        topic = "pattern/%u/#"
        "##,
    );
    let dev_a = client(Some("dev-a"), "dev-a", &[]);
    let stranger = client(Some("stranger"), "s", &[]);
    let anonymous = client(None, "lab-tool", &[]);
    let cases = [
        (&dev_a, P, "devices/dev-a/telemetry", true),
        (&dev_a, P, "devices/dev-b/cmd/reboot", false),
        (&dev_a, R, "devices/dev-b/cmd/reboot", false),
        (&dev_a, S, "#", false),
        (&dev_a, P, "secret/dev-a/x", true),
        (&stranger, R, "devices/dev-a/telemetry", false),
        (&stranger, P, "pattern/stranger/x", true),
        (&anonymous, P, "devices/dev-b/cmd/reboot", true),
        (&anonymous, S, "#", true),
        (&anonymous, R, "secret/dev-a/x", false),
    ];
    for (identity, action, topic, expected) in cases {
        for (form, acl) in [("acl_file", &file), ("[[acl]]", &toml)] {
            let decision = acl.check(identity, action, topic);
            assert_eq!(
                decision.allowed, expected,
                "{form}: {:?} {action} {topic}: {decision:?}",
                identity.username
            );
        }
    }
    let decision = file.check(&anonymous, R, "secret/x");
    assert_eq!(
        decision.rule.as_deref(),
        Some("acl_file /etc/mosquitto/acl:2: (clients without a username) / topic deny secret/#")
    );
    let decision = toml.check(&anonymous, R, "secret/x");
    assert_eq!(
        decision.rule.as_deref(),
        Some("[[acl]] #1: deny readwrite secret/# (clients without a username)")
    );
}
