//! Bad input on the control topic: malformed JSON, unknown commands, an
//! oversized payload, commands from a client without the right. Each is
//! answered with an error (or refused with PUBACK 0x87), changes nothing,
//! and leaves every other client connected and undisturbed.

use std::time::Duration;

use serde_json::{json, Value};

use super::{missing_tools, DynsecBroker, Kind};
use crate::harness::{ReasonCode, QUIET};

/// Payloads with no valid command, and what both brokers answer.
fn malformed() -> Vec<Vec<u8>> {
    vec![
        b"not json".to_vec(),
        b"".to_vec(),
        b"{\"x\":1}".to_vec(),
        b"{\"commands\":{}}".to_vec(),
        b"{\"commands\":[{\"nocommand\":1}]}".to_vec(),
        b"{\"commands\":[{\"command\":\"bogus\",\"correlationData\":\"k\"}]}".to_vec(),
        b"{\"commands\":[{\"command\":7}]}".to_vec(),
        b"{\"commands\":[{\"command\":\"createClient\",\"username\":42}]}".to_vec(),
        b"{\"commands\":[{\"command\":\"createClient\",\"username\":\"x\",\"roles\":\"admin\"}]}".to_vec(),
        b"{\"commands\":[{\"command\":\"addRoleACL\",\"rolename\":\"admin\",\"acltype\":\"subscribePattern\",\"topic\":\"a/+b\"}]}".to_vec(),
        b"[1,2,3]".to_vec(),
        "{\"commands\":[{\"command\":\"createClient\",\"username\":\"\u{7f}ctl\"}]}".as_bytes().to_vec(),
    ]
}

fn answers(kind: Kind) -> Vec<Option<Value>> {
    let broker = DynsecBroker::start(kind, false);
    let mut admin = broker.admin();
    malformed()
        .iter()
        .map(|payload| {
            let reason = admin.send_raw(payload);
            assert!(
                !reason.is_error(),
                "{kind:?} refused the publish: {reason:?}"
            );
            admin.response(Duration::from_secs(1))
        })
        .collect()
}

#[test]
fn malformed_commands_get_mosquittos_error_answers() {
    if missing_tools() {
        return;
    }
    let theirs = answers(Kind::Mosquitto);
    let ours = answers(Kind::Fleetmq);
    for ((payload, theirs), ours) in malformed().iter().zip(&theirs).zip(&ours) {
        assert_eq!(
            theirs,
            ours,
            "payload {:?}",
            String::from_utf8_lossy(payload)
        );
    }
}

#[test]
fn bad_input_changes_nothing_and_disturbs_nobody() {
    if missing_tools() {
        return;
    }
    let broker = DynsecBroker::start(Kind::Fleetmq, false);
    let mut admin = broker.admin();
    let created =
        admin.command(json!({"command": "createClient", "username": "dev1", "password": "pw1"}));
    assert!(created.get("error").is_none(), "{created}");
    let state = |admin: &mut super::Admin| {
        ["listClients", "listGroups", "listRoles"]
            .iter()
            .map(|command| admin.command(json!({"command": command, "verbose": true})))
            .collect::<Vec<_>>()
    };
    let before = state(&mut admin);

    // A bystander with a live connection.
    let (mut bystander, connack) = broker.connect("bystander", Some(("dev1", "pw1")));
    assert_eq!(connack.reason, ReasonCode::SUCCESS);

    for payload in malformed() {
        admin.send_raw(&payload);
        let answer = admin.response(Duration::from_secs(2)).expect("an answer");
        assert!(answer["responses"][0].get("error").is_some(), "{answer}");
    }
    // Larger than the limit: answered, not parsed.
    let mut commands = vec![json!({"command": "deleteClient", "username": "dev1"})];
    commands.extend(std::iter::repeat_n(
        json!({"command": "listClients", "verbose": true}),
        20_000,
    ));
    let oversized = json!({ "commands": commands }).to_string();
    assert!(oversized.len() > 256 * 1024);
    assert!(!admin.send_raw(oversized.as_bytes()).is_error());
    let answer = admin.response(Duration::from_secs(2)).expect("an answer");
    assert_eq!(answer["responses"][0]["error"], "Payload too large");

    // A client without the right: refused at the ACL, no answer, no change.
    let refused = bystander.publish(
        "$CONTROL/dynamic-security/v1",
        json!({"commands": [{"command": "deleteClient", "username": "admin"}]})
            .to_string()
            .as_bytes(),
        1,
        false,
    );
    assert_eq!(refused, ReasonCode::NOT_AUTHORIZED);
    assert_eq!(
        bystander.subscribe(5, "$CONTROL/dynamic-security/v1/response", 0),
        vec![ReasonCode::NOT_AUTHORIZED]
    );

    assert_eq!(
        state(&mut admin),
        before,
        "bad input changed the configuration"
    );
    // Nobody was disconnected or sent anything.
    assert!(bystander.expect_silence(QUIET).is_ok());
    bystander.ping();
    let (_, connack) = broker.connect("again", Some(("admin", super::ADMIN_PASSWORD)));
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
}
