//! Debian's `mosquitto_ctrl dynsec` driving fleetmq the way a lab admin
//! does: clients, roles, groups, ACLs and default access; the changes are
//! in force at once (a disabled or deleted client is disconnected) and on
//! disk in a `dynamic-security.json` that Mosquitto itself reads back.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use super::{missing_tools, DynsecBroker, Kind, ADMIN, ADMIN_PASSWORD};
use crate::harness::{ReasonCode, WAIT};

/// Runs `mosquitto_ctrl ... dynsec ARGS` against `broker`; returns stdout
/// and stderr, panicking when it does not exit within 10 s.
fn ctrl(broker: &DynsecBroker, args: &[&str]) -> String {
    let port = broker.port.to_string();
    let mut command = Command::new("timeout");
    command
        .args(["10", "mosquitto_ctrl", "-h", "127.0.0.1", "-p", &port])
        .args(["-u", ADMIN, "-P", ADMIN_PASSWORD, "dynsec"])
        .args(args);
    let output = command.output().expect("run mosquitto_ctrl");
    assert_ne!(
        output.status.code(),
        Some(124),
        "mosquitto_ctrl {args:?} hung"
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The tool's warning about a plain connection is not an answer.
    text.lines()
        .filter(|line| {
            !line.starts_with("Warning: You are running")
                && !line.starts_with("This means all of the configuration")
                && !line.trim().is_empty()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn mosquitto_ctrl_manages_clients_roles_and_groups() {
    if missing_tools() {
        return;
    }
    let broker = DynsecBroker::start(Kind::Fleetmq, false);
    assert_eq!(ctrl(&broker, &["createClient", "dev1", "-p", "pw1"]), "");
    assert_eq!(
        ctrl(&broker, &["createClient", "dev1", "-p", "x"]),
        "createClient: Error: Client already exists"
    );
    assert_eq!(ctrl(&broker, &["createRole", "sensor"]), "");
    assert_eq!(
        ctrl(
            &broker,
            &[
                "addRoleACL",
                "sensor",
                "publishClientSend",
                "sensors/dev1/#",
                "allow",
                "5"
            ]
        ),
        ""
    );
    assert_eq!(ctrl(&broker, &["addClientRole", "dev1", "sensor", "3"]), "");
    assert_eq!(ctrl(&broker, &["createGroup", "lab"]), "");
    assert_eq!(ctrl(&broker, &["addGroupClient", "lab", "dev1"]), "");
    let client = ctrl(&broker, &["getClient", "dev1"]);
    assert!(client.contains("Username: dev1"), "{client}");
    assert!(client.contains("sensor (priority: 3)"), "{client}");
    let role = ctrl(&broker, &["getRole", "sensor"]);
    assert!(
        role.contains("publishClientSend    : allow : sensors/dev1/# (priority: 5)"),
        "{role}"
    );
    assert!(ctrl(&broker, &["getGroup", "lab"]).contains("Clients:   dev1"));
    assert_eq!(ctrl(&broker, &["listClients"]), "admin\ndev1");
    let access = ctrl(&broker, &["getDefaultACLAccess"]);
    assert!(access.contains("publishClientSend    : deny"), "{access}");
    // 2.0.11's mosquitto_ctrl sends `"access":"allow"` where its plugin
    // reads `"allow"`: Mosquitto answers success and changes nothing, and
    // so does fleetmq (the JSON form works: see the differential test).
    assert_eq!(
        ctrl(&broker, &["setDefaultACLAccess", "subscribe", "allow"]),
        ""
    );
    assert!(ctrl(&broker, &["getDefaultACLAccess"]).contains("subscribe            : deny"));

    // In force at once: dev1 may publish on its topics only.
    let (mut dev1, connack) = broker.connect("dev1-a", Some(("dev1", "pw1")));
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    assert!(!dev1.publish("sensors/dev1/t", b"1", 1, false).is_error());
    assert_eq!(
        dev1.publish("sensors/dev2/t", b"1", 1, false),
        ReasonCode::NOT_AUTHORIZED
    );

    // Disabling disconnects it (0x98 Administrative action) and refuses it.
    assert_eq!(ctrl(&broker, &["disableClient", "dev1"]), "");
    dev1.expect_disconnect(ReasonCode::ADMINISTRATIVE_ACTION);
    let (_, connack) = broker.connect("dev1-b", Some(("dev1", "pw1")));
    assert_eq!(connack.reason, ReasonCode::NOT_AUTHORIZED);
    assert_eq!(ctrl(&broker, &["enableClient", "dev1"]), "");
    let (mut dev1, connack) = broker.connect("dev1-c", Some(("dev1", "pw1")));
    assert_eq!(connack.reason, ReasonCode::SUCCESS);

    // A new password: the old one no longer works, the session is ended.
    assert_eq!(ctrl(&broker, &["setClientPassword", "dev1", "pw2"]), "");
    dev1.expect_disconnect(ReasonCode::ADMINISTRATIVE_ACTION);
    let (_, connack) = broker.connect("dev1-d", Some(("dev1", "pw1")));
    assert_eq!(connack.reason, ReasonCode::NOT_AUTHORIZED);
    let (mut dev1, connack) = broker.connect("dev1-e", Some(("dev1", "pw2")));
    assert_eq!(connack.reason, ReasonCode::SUCCESS);

    // Deleting it disconnects it for good.
    assert_eq!(ctrl(&broker, &["deleteClient", "dev1"]), "");
    dev1.expect_disconnect(ReasonCode::ADMINISTRATIVE_ACTION);
    let (_, connack) = broker.connect("dev1-f", Some(("dev1", "pw2")));
    assert_eq!(connack.reason, ReasonCode::NOT_AUTHORIZED);
}

#[test]
fn the_file_fleetmq_keeps_is_read_back_by_mosquitto() {
    if missing_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = super::init_file(dir.path());
    let fleetmq = DynsecBroker::start_on(Kind::Fleetmq, false, dir, file.clone());
    assert_eq!(ctrl(&fleetmq, &["createRole", "sensor"]), "");
    assert_eq!(
        ctrl(
            &fleetmq,
            &[
                "addRoleACL",
                "sensor",
                "publishClientSend",
                "sensors/#",
                "allow",
                "2"
            ]
        ),
        ""
    );
    assert_eq!(ctrl(&fleetmq, &["createClient", "dev1", "-p", "pw1"]), "");
    assert_eq!(ctrl(&fleetmq, &["addClientRole", "dev1", "sensor"]), "");
    assert_eq!(ctrl(&fleetmq, &["createGroup", "lab"]), "");
    assert_eq!(ctrl(&fleetmq, &["addGroupClient", "lab", "dev1", "4"]), "");
    let mut admin = fleetmq.admin();
    let before: Vec<_> = ["getClient", "getRole", "getGroup"]
        .iter()
        .zip([
            ("username", "dev1"),
            ("rolename", "sensor"),
            ("groupname", "lab"),
        ])
        .map(|(command, (key, value))| admin.command(json!({"command": command, key: value})))
        .collect();
    // The file is written off the data path, after each change: wait
    // (bounded) for the save of the last one, dev1 in group lab.
    let saved_last = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| {
                v["groups"].as_array().map(|groups| {
                    groups.iter().any(|g| {
                        g["groupname"] == "lab"
                            && g["clients"]
                                .as_array()
                                .is_some_and(|c| c.iter().any(|c| c["username"] == "dev1"))
                    })
                })
            })
            .unwrap_or(false)
    };
    let deadline = std::time::Instant::now() + WAIT;
    while !saved_last(&std::fs::read_to_string(&file).unwrap_or_default()) {
        assert!(std::time::Instant::now() < deadline, "file never saved");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&file).unwrap();
    drop(admin);
    drop(fleetmq);

    // Mosquitto with its plugin on fleetmq's file: same answers, dev1's
    // password works.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("dynamic-security.json");
    std::fs::write(&copy, text).unwrap();
    let mosquitto = DynsecBroker::start_on(Kind::Mosquitto, false, dir, copy);
    let mut admin = mosquitto.admin();
    let after: Vec<_> = ["getClient", "getRole", "getGroup"]
        .iter()
        .zip([
            ("username", "dev1"),
            ("rolename", "sensor"),
            ("groupname", "lab"),
        ])
        .map(|(command, (key, value))| admin.command(json!({"command": command, key: value})))
        .collect();
    assert_eq!(before, after);
    let (mut dev1, connack) = mosquitto.connect("dev1", Some(("dev1", "pw1")));
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    assert!(!dev1.publish("sensors/x", b"1", 1, false).is_error());
}

/// Both brokers publish a response to every client that subscribed to
/// the response topic (and may read it), not only to the sender.
#[test]
fn responses_reach_every_subscriber_with_the_right() {
    if missing_tools() {
        return;
    }
    for kind in [Kind::Mosquitto, Kind::Fleetmq] {
        let broker = DynsecBroker::start(kind, false);
        let mut sender = broker.admin();
        let (mut listener, connack) = broker.connect("listener", Some((ADMIN, ADMIN_PASSWORD)));
        assert_eq!(connack.reason, ReasonCode::SUCCESS);
        assert_eq!(
            listener.subscribe(1, "$CONTROL/dynamic-security/v1/response", 0),
            vec![ReasonCode(0)]
        );
        let answer = sender.command(json!({"command": "listRoles"}));
        let heard = super::Admin { client: listener }
            .response(WAIT)
            .unwrap_or_else(|| panic!("{kind:?}: the other subscriber heard nothing"));
        assert_eq!(heard["responses"][0], answer, "{kind:?}");
    }
}
