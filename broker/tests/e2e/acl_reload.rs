//! ACL rules reloaded on SIGHUP, from `fleetmq.toml` and from a Mosquitto
//! `acl_file`, while clients stay connected: a subscription held across
//! the reload keeps its connection but receives only what the new rules
//! allow; rules that do not load leave the old ones in force. A resumed
//! session's resends are checked like first sends, and what a connection
//! may not read stays in the session for its owner.

use crate::harness;
use crate::harness::fleet::{set, topics, Fleet, Peer, POLICY_MOSQUITTO, POLICY_TOML};
use crate::harness::pki::write_atomic;
use crate::harness::{prop, skip_on_mosquitto, Broker, ConnectBuilder, ReasonCode, QUIET, WAIT};

const SKIP: &str = "identities and ACLs are configured the fleetmq way";

const RELOADED: &str = "Reloaded password file and ACL rules.";

/// Operators may no longer read dev-a's topics: the new first rule.
const DENY_OPS_DEV_A_TOML: &str = r##"
[[acl]]
group = "ops"
permission = "deny"
access = "read"
topic = "devices/dev-a/#"
"##;

/// Sends one message from each device and returns the topics `ops`
/// received.
fn one_round(dev_a: &mut Peer, dev_b: &mut Peer, ops: &mut Peer, round: &str) -> Vec<String> {
    assert!(!dev_a
        .publish(&format!("devices/dev-a/{round}"), b"a", 1, false)
        .is_error());
    assert!(!dev_b
        .publish(&format!("devices/dev-b/{round}"), b"b", 1, false)
        .is_error());
    topics(&ops.drain(QUIET)).into_iter().collect()
}

/// Asserts that `name` connected exactly once: no reconnect, no takeover.
fn connected_once(broker: &Broker, name: &str) {
    assert_eq!(
        broker.count_log_lines(&[&format!(" as {name} (p")]),
        1,
        "{}",
        broker.logs()
    );
}

/// Holds `#` as ops across a reload done by `reload`, which must take
/// dev-a's topics away from operators.
fn held_subscription_follows_reload(fleet: &Fleet, broker: &Broker, reload: impl FnOnce()) {
    let mut ops = fleet.connect_v5(broker, "ops-1");
    assert_eq!(ops.subscribe("#"), ReasonCode(1));
    let mut dev_a = fleet.connect_v5(broker, "dev-a");
    let mut dev_b = fleet.connect_v5(broker, "dev-b");
    assert_eq!(
        one_round(&mut dev_a, &mut dev_b, &mut ops, "before"),
        ["devices/dev-a/before", "devices/dev-b/before"]
    );

    reload();
    broker.sighup();
    broker.assert_log(RELOADED, WAIT);

    assert_eq!(
        one_round(&mut dev_a, &mut dev_b, &mut ops, "after"),
        ["devices/dev-b/after"]
    );
    broker.assert_log(
        "Denied receive on 'devices/dev-a/after' for client ops-1",
        WAIT,
    );
    // A new subscription is judged by the new rules too.
    assert_eq!(ops.subscribe("devices/dev-a/#"), ReasonCode::NOT_AUTHORIZED);
    ops.ping();
    dev_a.ping();
    for name in ["ops-1", "dev-a", "dev-b"] {
        connected_once(broker, name);
    }
}

#[test]
fn sighup_applies_new_acl_tables_to_held_subscriptions() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start_toml_policy();
    held_subscription_follows_reload(&fleet, &broker, || {
        let path = broker.config_path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(POLICY_TOML), "{text}");
        let text = text.replace(POLICY_TOML, &format!("{DENY_OPS_DEV_A_TOML}{POLICY_TOML}"));
        write_atomic(&path, text.as_bytes(), 0o644);
    });
}

#[test]
fn sighup_applies_an_edited_mosquitto_acl_file() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start_mosquitto_policy();
    held_subscription_follows_reload(&fleet, &broker, || {
        let acl_file = fleet.pki.dir().join("acl");
        let text =
            POLICY_MOSQUITTO.replace("user ops-1\n", "user ops-1\ntopic deny devices/dev-a/#\n");
        write_atomic(&acl_file, text.as_bytes(), 0o644);
    });
}

#[test]
fn rules_that_do_not_load_leave_the_old_ones_in_force() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start_mosquitto_policy();
    let mut ops = fleet.connect_v5(&broker, "ops-1");
    assert_eq!(ops.subscribe("#"), ReasonCode(1));
    let mut dev_a = fleet.connect_v5(&broker, "dev-a");
    let mut dev_b = fleet.connect_v5(&broker, "dev-b");

    let acl_file = fleet.pki.dir().join("acl");
    let broken = format!("{POLICY_MOSQUITTO}topic sometimes devices/#\n");
    write_atomic(&acl_file, broken.as_bytes(), 0o644);
    broker.sighup();
    broker.assert_log("password file or ACL rules not reloaded", WAIT);
    assert_eq!(broker.count_log_lines(&[RELOADED]), 0);

    assert_eq!(
        one_round(&mut dev_a, &mut dev_b, &mut ops, "kept"),
        ["devices/dev-a/kept", "devices/dev-b/kept"]
    );
    assert_eq!(
        dev_a.publish("devices/dev-b/x", b"x", 1, false),
        ReasonCode::NOT_AUTHORIZED
    );
    assert_eq!(topics(&ops.drain(QUIET)), set(&[]));
}

/// dev-b may no longer read its commands: the new first rule.
const DENY_DEV_B_CMD_TOML: &str = r##"
[[acl]]
identity = "dev-b"
permission = "deny"
access = "read"
topic = "devices/dev-b/cmd/#"
"##;

/// dev-b resuming its persistent 5.0 session; the CONNACK must say so.
fn resume_dev_b(fleet: &Fleet, broker: &Broker) -> harness::RawClient {
    let connect = ConnectBuilder::v5("dev-b")
        .clean(false)
        .property(prop::u32(prop::SESSION_EXPIRY, 300));
    let (raw, connack) = fleet.try_connect(broker, fleet.dev_b(), &connect);
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    assert!(connack.session_present, "{}", broker.logs());
    raw
}

/// Rewrites the `[[acl]]` tables of the running configuration and waits
/// for the reload.
fn reload_policy(broker: &Broker, policy: &str) {
    let path = broker.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("\n[[acl]]").expect("acl tables in the config");
    let end = text.rfind(POLICY_TOML).expect("the policy") + POLICY_TOML.len();
    let text = format!("{}\n{policy}{}", &text[..start], &text[end..]);
    write_atomic(&path, text.as_bytes(), 0o644);
    let reloads = broker.count_log_lines(&[RELOADED]);
    broker.sighup();
    assert_eq!(
        broker.wait_for_log_lines(&[RELOADED], reloads + 1, WAIT),
        reloads + 1
    );
}

#[test]
fn resends_and_queued_messages_follow_reloaded_read_rules_and_stay_for_the_owner() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start_toml_policy();
    let mut ops = fleet.connect_v5(&broker, "ops-1");
    let mut dev_b = Peer::new(resume_dev_b_first(&fleet, &broker));
    assert_eq!(dev_b.subscribe("devices/dev-b/cmd/#"), ReasonCode(1));
    // In flight when dev-b goes away: received, never acknowledged.
    ops.publish("devices/dev-b/cmd/first", b"1", 1, false);
    assert_eq!(
        &*dev_b.raw.expect_publish().topic,
        "devices/dev-b/cmd/first"
    );
    dev_b.drop_connection();
    broker.assert_log("on client dev-b, disconnecting", WAIT);

    reload_policy(&broker, &format!("{DENY_DEV_B_CMD_TOML}{POLICY_TOML}"));
    // The resend is checked like a first send: nothing goes out.
    let mut dev_b = resume_dev_b(&fleet, &broker);
    let second = ops.publish("devices/dev-b/cmd/second", b"2", 1, false);
    assert_eq!(second, ReasonCode::SUCCESS);
    assert_eq!(dev_b.expect_silence(QUIET).map_err(|p| *p), Ok(()));
    broker.assert_log(
        "Denied receive on 'devices/dev-b/cmd/first' for client dev-b",
        WAIT,
    );
    dev_b.drop_connection();
    broker.assert_log("on client dev-b, disconnecting", WAIT);

    // Neither message was forgotten: with its rights back, the owner gets
    // the first again (DUP, same packet id) and then the second.
    reload_policy(&broker, POLICY_TOML);
    let mut dev_b = resume_dev_b(&fleet, &broker);
    let first = dev_b.expect_publish();
    assert_eq!(
        (&*first.topic, first.dup),
        ("devices/dev-b/cmd/first", true)
    );
    let second = dev_b.expect_publish();
    assert_eq!(&*second.topic, "devices/dev-b/cmd/second");
}

/// dev-b's first connection with a persistent session.
fn resume_dev_b_first(fleet: &Fleet, broker: &Broker) -> harness::RawClient {
    let connect = ConnectBuilder::v5("dev-b")
        .clean(true)
        .property(prop::u32(prop::SESSION_EXPIRY, 300));
    let (raw, connack) = fleet.try_connect(broker, fleet.dev_b(), &connect);
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    raw
}
