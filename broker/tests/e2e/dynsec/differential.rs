//! The same command sequence sent to Mosquitto 2.0.11 with its plugin and
//! to fleetmq: every response must be the same JSON, and so must every
//! connect, publish and subscribe decision over a table of clients and
//! topics afterwards.

use serde_json::{json, Value};

use super::{missing_tools, DynsecBroker, Kind};
use crate::harness::{unsubscribe, Packet, RawClient, ReasonCode, QUIET};

/// Every command of the API, with the errors a lab meets.
fn sequence() -> Vec<Value> {
    let acl = |role: &str, kind: &str, topic: &str, allow: bool, priority: i64| json!({"command": "addRoleACL", "rolename": role, "acltype": kind, "topic": topic, "allow": allow, "priority": priority});
    vec![
        json!({"command": "createRole", "rolename": "sensor", "textname": "Sensors", "textdescription": "ESP32 sensors"}),
        json!({"command": "createRole", "rolename": "reader"}),
        json!({"command": "createRole", "rolename": "blocker"}),
        json!({"command": "createRole", "rolename": "sensor"}),
        json!({"command": "createRole"}),
        acl("sensor", "publishClientSend", "sensors/%c/#", true, 1),
        acl("sensor", "publishClientSend", "sensors/#", false, 0),
        acl("sensor", "publishClientSend", "sensors/#", true, 4),
        acl("sensor", "subscribeLiteral", "sensors/+/cmd", true, 0),
        acl("reader", "subscribePattern", "sensors/+/temp", true, 2),
        acl("reader", "subscribePattern", "sensors/#", false, 0),
        acl("reader", "publishClientReceive", "sensors/#", true, 0),
        acl("reader", "unsubscribePattern", "#", true, 0),
        acl("reader", "unsubscribeLiteral", "x", false, 0),
        acl("blocker", "publishClientSend", "#", false, 9),
        acl("blocker", "bogusType", "x", true, 0),
        acl("nosuch", "publishClientSend", "x", true, 0),
        acl("sensor", "publishClientSend", "a/#/b", true, 0),
        json!({"command": "addRoleACL", "rolename": "sensor", "acltype": "publishClientSend"}),
        json!({"command": "createGroup", "groupname": "lab", "textname": "The lab"}),
        json!({"command": "createGroup", "groupname": "lab"}),
        json!({"command": "addGroupRole", "groupname": "lab", "rolename": "reader", "priority": 2}),
        json!({"command": "addGroupRole", "groupname": "lab", "rolename": "nosuch"}),
        json!({"command": "addGroupRole", "groupname": "nosuch", "rolename": "reader"}),
        json!({"command": "createClient", "username": "dev1", "password": "pw1", "roles": [{"rolename": "sensor"}], "correlationData": "c-1"}),
        json!({"command": "createClient", "username": "dev2", "password": "pw2", "clientid": "dev2-id", "textname": "Second"}),
        json!({"command": "createClient", "username": "dev1", "password": "x"}),
        json!({"command": "createClient", "password": "x"}),
        json!({"command": "createClient", "username": "dev3", "roles": [{"rolename": "nosuch"}]}),
        json!({"command": "createClient", "username": "blocked", "password": "pw3", "roles": [{"rolename": "sensor", "priority": 1}, {"rolename": "blocker", "priority": 5}]}),
        json!({"command": "addGroupClient", "groupname": "lab", "username": "dev1", "priority": 3}),
        json!({"command": "addGroupClient", "groupname": "lab", "username": "dev1"}),
        json!({"command": "addGroupClient", "groupname": "lab", "username": "nosuch"}),
        json!({"command": "addGroupClient", "groupname": "nosuch", "username": "dev1"}),
        json!({"command": "addGroupClient", "groupname": "lab", "username": "dev2"}),
        json!({"command": "addClientRole", "username": "dev2", "rolename": "sensor", "priority": 1}),
        json!({"command": "addClientRole", "username": "dev2", "rolename": "nosuch"}),
        json!({"command": "addClientRole", "username": "nosuch", "rolename": "sensor"}),
        json!({"command": "addClientRole", "username": "dev2"}),
        json!({"command": "removeClientRole", "username": "dev2", "rolename": "sensor"}),
        json!({"command": "addClientRole", "username": "dev2", "rolename": "sensor", "priority": 7}),
        json!({"command": "setClientId", "username": "dev2", "clientid": "dev2-id2"}),
        json!({"command": "setClientId", "username": "nosuch", "clientid": "x"}),
        json!({"command": "setClientPassword", "username": "dev2", "password": ""}),
        json!({"command": "setClientPassword", "username": "dev2"}),
        json!({"command": "setClientPassword", "username": "dev2", "password": "pw2b"}),
        json!({"command": "disableClient", "username": "dev2"}),
        json!({"command": "enableClient", "username": "dev2"}),
        json!({"command": "disableClient", "username": "nosuch"}),
        json!({"command": "createClient", "username": "off", "password": "pw4", "roles": [{"rolename": "sensor"}]}),
        json!({"command": "disableClient", "username": "off"}),
        json!({"command": "createGroup", "groupname": "anon"}),
        json!({"command": "createRole", "rolename": "anonrole"}),
        acl("anonrole", "publishClientSend", "public/#", true, 0),
        acl("anonrole", "subscribePattern", "public/#", true, 0),
        json!({"command": "addGroupRole", "groupname": "anon", "rolename": "anonrole"}),
        json!({"command": "getAnonymousGroup"}),
        json!({"command": "setAnonymousGroup", "groupname": "nosuch"}),
        json!({"command": "setAnonymousGroup", "groupname": "anon"}),
        json!({"command": "getAnonymousGroup"}),
        json!({"command": "setDefaultACLAccess", "acls": [{"acltype": "subscribe", "allow": true}, {"acltype": "publishClientReceive", "allow": false}]}),
        json!({"command": "getDefaultACLAccess"}),
        json!({"command": "getClient", "username": "dev1"}),
        json!({"command": "getClient", "username": "dev2"}),
        json!({"command": "getClient", "username": "off"}),
        json!({"command": "getClient", "username": "nosuch"}),
        json!({"command": "getGroup", "groupname": "lab"}),
        json!({"command": "getGroup", "groupname": "nosuch"}),
        json!({"command": "getRole", "rolename": "sensor"}),
        json!({"command": "getRole", "rolename": "reader"}),
        json!({"command": "getRole", "rolename": "nosuch"}),
        json!({"command": "listClients"}),
        json!({"command": "listClients", "verbose": true}),
        json!({"command": "listClients", "count": 2, "offset": 1}),
        json!({"command": "listGroups", "verbose": true}),
        json!({"command": "listRoles", "count": 2}),
        json!({"command": "listRoles", "verbose": true, "offset": 3}),
        json!({"command": "removeRoleACL", "rolename": "reader", "acltype": "subscribePattern", "topic": "sensors/#"}),
        json!({"command": "removeRoleACL", "rolename": "reader", "acltype": "subscribePattern", "topic": "sensors/#"}),
        json!({"command": "removeGroupRole", "groupname": "lab", "rolename": "blocker"}),
        json!({"command": "removeGroupRole", "groupname": "lab", "rolename": "nosuch"}),
        json!({"command": "removeGroupClient", "groupname": "lab", "username": "dev2"}),
        json!({"command": "removeGroupClient", "groupname": "lab", "username": "nosuch"}),
        json!({"command": "createRole", "rolename": "temp"}),
        json!({"command": "deleteRole", "rolename": "temp"}),
        json!({"command": "deleteRole", "rolename": "temp"}),
        json!({"command": "createGroup", "groupname": "tmpgroup"}),
        json!({"command": "deleteGroup", "groupname": "tmpgroup"}),
        json!({"command": "deleteGroup", "groupname": "tmpgroup"}),
        json!({"command": "createClient", "username": "tmp"}),
        json!({"command": "deleteClient", "username": "tmp"}),
        json!({"command": "deleteClient", "username": "tmp"}),
        json!({"command": "createRole", "rolename": "opener"}),
        acl("opener", "publishClientSend", "open/#", true, 1),
        acl("opener", "publishClientSend", "open/closed", false, 2),
        json!({"command": "addClientRole", "username": "blocked", "rolename": "opener", "priority": 1}),
        json!({"command": "addClientRole", "username": "dev1", "rolename": "opener", "priority": 0}),
        json!({"command": "createRole", "rolename": "feed", "acls": [
            {"acltype": "publishClientSend", "topic": "#", "allow": true}]}),
        json!({"command": "createClient", "username": "feeder", "password": "pw5", "roles": [{"rolename": "feed"}]}),
        json!({"command": "LISTGROUPS"}),
        json!({"Command": "getGroup", "GroupName": "lab", "correlationData": "case"}),
        json!({"command": "noSuchCommand", "correlationData": "c-2"}),
        json!({"command": "getRole", "rolename": "sensor"}),
    ]
}

/// A username and password, or none (anonymous).
type Credentials = Option<(&'static str, &'static str)>;

/// Who connects for the decision table: (label, client id, credentials).
const CLIENTS: &[(&str, &str, Credentials)] = &[
    ("dev1", "dev1", Some(("dev1", "pw1"))),
    ("dev1 wrong password", "dev1", Some(("dev1", "nope"))),
    ("dev2", "dev2-id2", Some(("dev2", "pw2b"))),
    ("dev2 old password", "dev2-id2", Some(("dev2", "pw2"))),
    ("dev2 other client id", "other", Some(("dev2", "pw2b"))),
    ("blocked", "blk", Some(("blocked", "pw3"))),
    ("disabled", "off", Some(("off", "pw4"))),
    ("unknown user", "u", Some(("nobody", "pw"))),
    ("anonymous", "anon-1", None),
];

const PUBLISH: &[&str] = &[
    "sensors/dev1/t",
    "sensors/dev2-id2/t",
    "sensors/blk/t",
    "sensors/other/t",
    "public/x",
    "x/y",
    "$SYS/broker/x",
    "sensors/%c/t",
    "open/x",
    "open/closed",
];

const SUBSCRIBE: &[&str] = &[
    "sensors/+/cmd",
    "sensors/a/cmd",
    "sensors/x/temp",
    "sensors/#",
    "public/#",
    "#",
    "$CONTROL/dynamic-security/v1/response",
];

const UNSUBSCRIBE: &[&str] = &["x", "sensors/+/temp", "public/#", "y/z"];

/// Topics the feeder publishes on after each client subscribed to them:
/// which arrive is the receive decision (plus the subscribe one).
const RECEIVE: &[&str] = &["sensors/r1", "public/r1", "other/r1"];

/// The topics of RECEIVE that reach `client` within a quiet window.
fn received(client: &mut RawClient, feeder: &mut RawClient) -> Vec<String> {
    for (index, topic) in RECEIVE.iter().enumerate() {
        client.subscribe(60 + index as u16, topic, 0);
    }
    for topic in RECEIVE {
        feeder.publish(topic, b"r", 1, false);
    }
    let mut got = Vec::new();
    while let Some(packet) = client.recv_packet(QUIET) {
        if let Packet::Publish(publish) = packet {
            if RECEIVE.contains(&&*publish.topic) {
                got.push(publish.topic.to_string());
            }
        }
    }
    got
}

fn decisions(broker: &DynsecBroker) -> Vec<String> {
    let mut out = Vec::new();
    let (mut feeder, connack) = broker.connect("feeder", Some(("feeder", "pw5")));
    assert_eq!(connack.reason, ReasonCode::SUCCESS, "feeder refused");
    for (label, client_id, user) in CLIENTS {
        let (mut client, connack): (RawClient, _) = broker.connect(client_id, *user);
        out.push(format!("{label}: connect {:#04x}", connack.reason.0));
        if connack.reason != ReasonCode::SUCCESS {
            continue;
        }
        for topic in PUBLISH {
            let reason = client.publish(topic, b"p", 1, false);
            let verdict = if reason == ReasonCode::NOT_AUTHORIZED {
                "deny"
            } else {
                "allow"
            };
            out.push(format!("{label}: publish {topic} {verdict}"));
        }
        for (index, filter) in SUBSCRIBE.iter().enumerate() {
            let granted = client.subscribe(10 + index as u16, filter, 0);
            let verdict = if granted == vec![ReasonCode::NOT_AUTHORIZED] {
                "deny"
            } else {
                "allow"
            };
            out.push(format!("{label}: subscribe {filter} {verdict}"));
        }
        for (index, filter) in UNSUBSCRIBE.iter().enumerate() {
            client.send(&unsubscribe(40 + index as u16, &[filter], true));
            let reasons = match client.expect_packet("UNSUBACK") {
                Packet::UnsubAck(ack) => ack.reasons,
                other => panic!("expected UNSUBACK, got {other:?}"),
            };
            let verdict = if reasons == vec![ReasonCode::NOT_AUTHORIZED] {
                "deny"
            } else {
                "allow"
            };
            out.push(format!("{label}: unsubscribe {filter} {verdict}"));
        }
        let got = received(&mut client, &mut feeder);
        for topic in RECEIVE {
            let verdict = if got.iter().any(|t| t == topic) {
                "allow"
            } else {
                "deny"
            };
            out.push(format!("{label}: receive {topic} {verdict}"));
        }
    }
    out
}

fn run(kind: Kind) -> (Vec<Value>, Vec<String>) {
    let broker = DynsecBroker::start(kind, true);
    let mut admin = broker.admin();
    let responses = sequence()
        .into_iter()
        .map(|command| admin.command(command))
        .collect();
    (responses, decisions(&broker))
}

#[test]
fn fleetmq_answers_and_decides_as_mosquitto_with_its_plugin() {
    if missing_tools() {
        return;
    }
    let (mosquitto_responses, mosquitto_decisions) = run(Kind::Mosquitto);
    let (fleetmq_responses, fleetmq_decisions) = run(Kind::Fleetmq);
    let commands = sequence();
    let mut differences = Vec::new();
    for (index, (theirs, ours)) in mosquitto_responses
        .iter()
        .zip(&fleetmq_responses)
        .enumerate()
    {
        if theirs != ours {
            differences.push(format!(
                "command {index} {}\n  mosquitto: {theirs}\n  fleetmq:   {ours}",
                commands[index]
            ));
        }
    }
    for (theirs, ours) in mosquitto_decisions.iter().zip(&fleetmq_decisions) {
        if theirs != ours {
            differences.push(format!(
                "decision\n  mosquitto: {theirs}\n  fleetmq:   {ours}"
            ));
        }
    }
    assert_eq!(mosquitto_responses.len(), fleetmq_responses.len());
    assert_eq!(
        mosquitto_decisions.len(),
        fleetmq_decisions.len(),
        "decision tables differ in length:\n{mosquitto_decisions:#?}\n{fleetmq_decisions:#?}"
    );
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        differences.join("\n")
    );
    // The table is not trivially uniform: each kind has both answers.
    for kind in [": publish ", ": subscribe ", ": unsubscribe ", ": receive "] {
        for answer in [" allow", " deny"] {
            assert!(
                fleetmq_decisions
                    .iter()
                    .any(|d| d.contains(kind) && d.ends_with(answer)),
                "no{answer} for{kind}in {fleetmq_decisions:#?}"
            );
        }
    }
}

/// The `dynamic-security.json` Mosquitto saved after the sequence, read
/// by fleetmq: the same configuration and the same decisions.
#[test]
fn fleetmq_reads_the_file_mosquitto_saved_with_the_same_decisions() {
    if missing_tools() {
        return;
    }
    let listing = |broker: &DynsecBroker| {
        let mut admin = broker.admin();
        [
            "listClients",
            "listGroups",
            "listRoles",
            "getDefaultACLAccess",
            "getAnonymousGroup",
        ]
        .iter()
        .map(|command| admin.command(json!({"command": command, "verbose": true})))
        .collect::<Vec<_>>()
    };
    let dir = tempfile::tempdir().unwrap();
    let file = super::init_file(dir.path());
    let mosquitto = DynsecBroker::start_on(Kind::Mosquitto, true, dir, file.clone());
    let mut admin = mosquitto.admin();
    for command in sequence() {
        admin.command(command);
    }
    drop(admin);
    let theirs = (listing(&mosquitto), decisions(&mosquitto));
    // Mosquitto saves before it answers.
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("\"feeder\""),
        "Mosquitto did not save: {text}"
    );
    drop(mosquitto);

    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("dynamic-security.json");
    std::fs::write(&copy, &text).unwrap();
    let fleetmq = DynsecBroker::start_on(Kind::Fleetmq, true, dir, copy);
    let ours = (listing(&fleetmq), decisions(&fleetmq));
    assert_eq!(theirs.0, ours.0, "the configuration read differs");
    assert_eq!(theirs.1, ours.1, "decisions differ");
}
