//! One policy, two ways of writing it: `[[acl]]` tables, and a Mosquitto
//! `acl_file` read as it is on a `use_identity_as_username` listener. The
//! same table of (certificate, action, topic, expected) runs through real
//! mutual-TLS connections to a broker started with each, and through
//! `fleetmq acl check` on the very configuration file that broker ran
//! with: every answer must be the expected one, in both forms.

use std::collections::HashMap;
use std::path::Path;

use crate::harness;
use crate::harness::fleet::{acl_check, Fleet, Peer};
use crate::harness::{skip_on_mosquitto, Broker, ReasonCode, QUIET};

const SKIP: &str = "identities and ACLs are configured the fleetmq way";

/// What a row does.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// PUBLISH at QoS 1: PUBACK success or 0x87.
    Publish(&'static str),
    /// SUBSCRIBE at QoS 1: granted QoS 1 or 0x87.
    Subscribe(&'static str),
    /// SUBSCRIBE to `filter` (granted), then `publisher` publishes `topic`:
    /// delivered or not.
    Receive {
        filter: &'static str,
        publisher: &'static str,
        topic: &'static str,
    },
}

/// (certificate CN, step, allowed)
type Row = (&'static str, Step, bool);

use Step::{Publish, Receive, Subscribe};

const ALLOW: bool = true;
const DENY: bool = false;

const TABLE: &[Row] = &[
    // A device writes under its own name, nowhere else.
    ("dev-a", Publish("devices/dev-a/data"), ALLOW),
    ("dev-a", Publish("devices/dev-a/cmd/ack"), ALLOW),
    ("dev-a", Publish("devices/dev-b/data"), DENY),
    ("dev-a", Publish("devices/dev-b/cmd/reboot"), DENY),
    ("dev-a", Publish("$SYS/broker/forged"), DENY),
    ("dev-a", Publish("fleet/announce"), DENY),
    ("dev-b", Publish("devices/dev-b/data"), ALLOW),
    ("dev-b", Publish("devices/dev-a/data"), DENY),
    // The operator sends commands, and writes its own topics only.
    ("ops-1", Publish("devices/dev-a/cmd/reboot"), ALLOW),
    ("ops-1", Publish("devices/dev-a/data"), DENY),
    ("ops-1", Publish("devices/dev-a/secret/x"), DENY),
    ("ops-1", Publish("devices/ops-1/log"), ALLOW),
    // A device reads its own commands, through no wider filter.
    ("dev-a", Subscribe("devices/dev-a/cmd/#"), ALLOW),
    ("dev-a", Subscribe("devices/dev-a/cmd/+"), ALLOW),
    ("dev-a", Subscribe("devices/dev-a/#"), DENY),
    ("dev-a", Subscribe("devices/dev-b/cmd/#"), DENY),
    ("dev-a", Subscribe("#"), DENY),
    ("dev-a", Subscribe("+/+/#"), DENY),
    ("dev-a", Subscribe("$share/g/#"), DENY),
    ("dev-a", Subscribe("$share/g/devices/dev-a/cmd/#"), ALLOW),
    ("dev-a", Subscribe("$SYS/#"), DENY),
    ("dev-b", Subscribe("devices/dev-b/cmd/#"), ALLOW),
    // The operator reads everything and $SYS, but no secrets.
    ("ops-1", Subscribe("#"), ALLOW),
    ("ops-1", Subscribe("$SYS/#"), ALLOW),
    ("ops-1", Subscribe("devices/+/secret/#"), DENY),
    ("ops-1", Subscribe("$share/ops/devices/+/data"), ALLOW),
    // Deliveries.
    (
        "dev-a",
        Receive {
            filter: "devices/dev-a/cmd/#",
            publisher: "ops-1",
            topic: "devices/dev-a/cmd/update",
        },
        ALLOW,
    ),
    (
        "dev-b",
        Receive {
            filter: "devices/dev-b/cmd/#",
            publisher: "ops-1",
            topic: "devices/dev-b/cmd/update",
        },
        ALLOW,
    ),
    (
        "ops-1",
        Receive {
            filter: "#",
            publisher: "dev-b",
            topic: "devices/dev-b/data",
        },
        ALLOW,
    ),
    (
        "ops-1",
        Receive {
            filter: "#",
            publisher: "dev-b",
            topic: "devices/dev-b/secret/key",
        },
        DENY,
    ),
];

/// The decisions a broker made for [`TABLE`], row by row.
fn run_table(fleet: &Fleet, broker: &Broker) -> Vec<bool> {
    let mut peers: HashMap<&str, Peer> = ["dev-a", "dev-b", "ops-1"]
        .into_iter()
        .map(|name| (name, fleet.connect_v5(broker, name)))
        .collect();
    let mut decisions = Vec::new();
    for (index, (who, step, _)) in TABLE.iter().enumerate() {
        let payload = format!("row {index}");
        let decision = match *step {
            Publish(topic) => {
                let peer = peers.get_mut(who).unwrap();
                match peer.publish(topic, payload.as_bytes(), 1, false) {
                    ReasonCode::SUCCESS | ReasonCode::NO_MATCHING_SUBSCRIBERS => true,
                    ReasonCode::NOT_AUTHORIZED => false,
                    other => panic!("row {index}: PUBACK {other:?}"),
                }
            }
            Subscribe(filter) => match peers.get_mut(who).unwrap().subscribe(filter) {
                ReasonCode(1) => true,
                ReasonCode::NOT_AUTHORIZED => false,
                other => panic!("row {index}: SUBACK {other:?}"),
            },
            Receive {
                filter,
                publisher,
                topic,
            } => {
                assert_eq!(
                    peers.get_mut(who).unwrap().subscribe(filter),
                    ReasonCode(1),
                    "row {index}: {who} may subscribe to {filter}"
                );
                assert!(
                    !peers
                        .get_mut(publisher)
                        .unwrap()
                        .publish(topic, payload.as_bytes(), 1, false)
                        .is_error(),
                    "row {index}: {publisher} may publish to {topic}"
                );
                let subscriber = peers.get_mut(who).unwrap();
                subscriber
                    .drain(QUIET)
                    .iter()
                    .any(|p| &*p.topic == topic && p.payload == payload.as_bytes())
            }
        };
        decisions.push(decision);
    }
    decisions
}

/// The decisions `fleetmq acl check` gives for [`TABLE`] with `config`.
fn check_table(fleet: &Fleet, config: &Path) -> Vec<bool> {
    TABLE
        .iter()
        .map(|(who, step, _)| {
            let (action, topic) = match *step {
                Publish(topic) => ("publish", topic),
                Subscribe(filter) => ("subscribe", filter),
                Receive { topic, .. } => ("receive", topic),
            };
            let args = [
                "--identity",
                who,
                "--group",
                fleet.unit(who),
                "--topic",
                topic,
                "--action",
                action,
            ];
            let out = acl_check(config, &args);
            let stdout = String::from_utf8_lossy(&out.stdout);
            match out.status.code() {
                Some(0) if stdout.starts_with("ALLOW ") => true,
                Some(1) if stdout.starts_with("DENY ") => false,
                _ => panic!(
                    "fleetmq acl check {args:?}: {:?}\n{stdout}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ),
            }
        })
        .collect()
}

/// Every row whose decision differs from the table's, as text.
fn mismatches(form: &str, decisions: &[bool]) -> Vec<String> {
    TABLE
        .iter()
        .zip(decisions)
        .filter(|((_, _, expected), got)| expected != *got)
        .map(|((who, step, expected), _)| {
            format!(
                "{form}: {who} {step:?}: expected {}",
                if *expected { "ALLOW" } else { "DENY" }
            )
        })
        .collect()
}

#[test]
fn acl_tables_and_mosquitto_acl_file_decide_alike_on_the_wire() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let mut wrong = Vec::new();
    for (form, broker) in [
        ("[[acl]] tables", fleet.start_toml_policy()),
        (
            "acl_file + use_identity_as_username",
            fleet.start_mosquitto_policy(),
        ),
    ] {
        wrong.extend(mismatches(
            &format!("{form}, over MQTT"),
            &run_table(&fleet, &broker),
        ));
        wrong.extend(mismatches(
            &format!("{form}, fleetmq acl check"),
            &check_table(&fleet, &broker.config_path()),
        ));
    }
    assert!(wrong.is_empty(), "decisions differ:\n{}", wrong.join("\n"));
}

/// `fleetmq acl check` and the broker's denial log name the same deciding
/// rule, in each form.
#[test]
fn acl_check_and_the_broker_log_name_the_same_rule() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let acl_file = fleet.pki.dir().join("acl");
    for (broker, rule) in [
        (
            fleet.start_toml_policy(),
            "[[acl]] #1: deny readwrite devices/+/secret/# (group ops)".to_string(),
        ),
        (
            fleet.start_mosquitto_policy(),
            format!(
                "acl_file {}:4: user ops-1 / topic deny devices/+/secret/#",
                acl_file.display()
            ),
        ),
    ] {
        let out = acl_check(
            &broker.config_path(),
            &[
                "--identity",
                "ops-1",
                "--group",
                "ops",
                "--topic",
                "devices/dev-a/secret/x",
                "--action",
                "publish",
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(
            stdout.starts_with("DENY publish devices/dev-a/secret/x"),
            "{stdout}"
        );
        assert!(stdout.contains(&format!("decided by {rule}")), "{stdout}");

        let mut ops = fleet.connect_v5(&broker, "ops-1");
        assert_eq!(
            ops.publish("devices/dev-a/secret/x", b"x", 1, false),
            ReasonCode::NOT_AUTHORIZED
        );
        broker.assert_log(
            &format!(
                "Denied publish on 'devices/dev-a/secret/x' for client ops-1 (identity ops-1): {rule}."
            ),
            harness::WAIT,
        );

        // The example from the issue: a device and another's topic.
        let out = acl_check(
            &broker.config_path(),
            &[
                "--identity",
                "dev-a",
                "--topic",
                "devices/dev-b/x",
                "--action",
                "publish",
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(
            stdout.starts_with("DENY publish devices/dev-b/x"),
            "{stdout}"
        );
        assert!(
            stdout.contains("decided by default deny (rules exist)"),
            "{stdout}"
        );
    }
}

/// The top block of a Mosquitto `acl_file` (lines before the first `user`)
/// is for clients without a username, as in Mosquitto 2.0's
/// `acl__find_acls`: a migrated file that lets anonymous lab tools read
/// and write everything gives a username none of it, and its `deny` lines
/// take nothing from a username. Runs against Mosquitto too
/// (`FLEETMQ_TEST_BROKER=mosquitto`): both must give the same answers.
mod top_block {
    use std::collections::BTreeSet;

    use super::*;
    use crate::harness::{is_mosquitto, ConnectBuilder, RawClient};

    const ACL_FILE: &str = "\
# Anonymous lab tools.
topic readwrite #
topic deny secret/#
user dev-a
topic write devices/dev-a/telemetry
topic readwrite secret/dev-a/#
pattern write pattern/%u/#
";

    /// A 5.0 client on the plain test listener, with this username and no
    /// password (no password file: both brokers keep the username).
    fn client(broker: &Broker, client_id: &str, username: Option<&str>) -> Peer {
        let mut connect = ConnectBuilder::v5(client_id);
        connect.username = username.map(str::to_string);
        let (raw, connack) = RawClient::connect_with(broker.addr(), connect);
        assert_eq!(connack.reason, ReasonCode::SUCCESS, "{client_id}");
        Peer::new(raw)
    }

    /// (topic, payload) of what `peer` received, `$SYS` left out.
    fn received(peer: &mut Peer) -> BTreeSet<(String, String)> {
        peer.drain(QUIET)
            .iter()
            .map(|p| {
                let payload = String::from_utf8_lossy(&p.payload).into_owned();
                (p.topic.to_string(), payload)
            })
            .collect()
    }

    fn pairs(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
        items
            .iter()
            .map(|(t, p)| (t.to_string(), p.to_string()))
            .collect()
    }

    #[test]
    fn is_for_clients_without_a_username_only() {
        let dir = tempfile::tempdir().unwrap();
        let acl_file = dir.path().join("acl");
        std::fs::write(&acl_file, ACL_FILE).unwrap();
        let broker = Broker::start_with_conf(
            &format!(
                "[auth]\nacl_file = {}\n",
                harness::pki::toml_path(&acl_file)
            ),
            &format!("acl_file {}\n", acl_file.display()),
        );
        let mut observer = client(&broker, "observer", None);
        observer.subscribe_all(&[("#", 1)]);
        let mut dev_a = client(&broker, "dev-a", Some("dev-a"));
        // SUBACKs differ (Mosquitto does not check SUBSCRIBE, fleetmq
        // refuses filters no rule covers): deliveries are compared.
        dev_a.subscribe_all(&[("devices/dev-b/cmd/reboot", 1), ("secret/dev-a/#", 1)]);
        let mut stranger = client(&broker, "stranger", Some("stranger"));
        stranger.subscribe_all(&[("devices/#", 1)]);
        let mut lab_tool = client(&broker, "lab-tool", None);

        // The payload names the publisher. PUBACK reasons are not
        // compared (3.1.1-era habits differ); deliveries are.
        for topic in [
            "devices/dev-a/telemetry",
            "devices/dev-b/cmd/reboot",
            "secret/dev-a/x",
        ] {
            dev_a.publish(topic, b"dev-a", 1, false);
        }
        for topic in ["devices/dev-b/cmd/reboot", "pattern/stranger/x"] {
            stranger.publish(topic, b"stranger", 1, false);
        }
        for topic in ["devices/dev-b/cmd/reboot", "secret/x"] {
            lab_tool.publish(topic, b"lab-tool", 1, false);
        }

        assert_eq!(
            received(&mut observer),
            pairs(&[
                ("devices/dev-a/telemetry", "dev-a"),
                ("pattern/stranger/x", "stranger"),
                ("devices/dev-b/cmd/reboot", "lab-tool"),
            ]),
            "what the anonymous observer saw published"
        );
        assert_eq!(
            received(&mut dev_a),
            pairs(&[("secret/dev-a/x", "dev-a")]),
            "what dev-a received"
        );
        assert_eq!(
            received(&mut stranger),
            pairs(&[]),
            "what stranger received"
        );

        if is_mosquitto() {
            return;
        }
        // `fleetmq acl check` names the top-block line for an anonymous
        // client, and gives a username the default.
        let file_line = format!(
            "acl_file {}:2: (clients without a username) / topic readwrite #",
            acl_file.display()
        );
        for (who, expected_exit, decided_by) in [
            (&["--anonymous"][..], 0, file_line.as_str()),
            (
                &["--username", "dev-a"][..],
                1,
                "default deny (rules exist)",
            ),
        ] {
            let mut args = who.to_vec();
            args.extend(["--topic", "devices/dev-b/cmd/reboot", "--action", "publish"]);
            let out = acl_check(&broker.config_path(), &args);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(expected_exit), "{who:?}: {stdout}");
            assert!(
                stdout.contains(&format!("decided by {decided_by}")),
                "{who:?}: {stdout}"
            );
        }
    }
}
