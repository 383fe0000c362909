use serde_json::{json, Value};

use super::*;
use crate::auth::dynsec::decide::{Access, Login};
use crate::auth::dynsec::file;

fn send(dynsec: &mut Dynsec, commands: Value) -> (Vec<Value>, Outcome) {
    let outcome = handle(
        dynsec,
        json!({ "commands": commands }).to_string().as_bytes(),
    );
    let response: Value = serde_json::from_str(&outcome.response).unwrap();
    (response["responses"].as_array().unwrap().clone(), outcome)
}

#[test]
fn a_lab_setup_decides_like_the_plugin() {
    let mut dynsec = Dynsec::default();
    let (responses, outcome) = send(
        &mut dynsec,
        json!([
            {"command": "createRole", "rolename": "sensor"},
            {"command": "addRoleACL", "rolename": "sensor", "acltype": "publishClientSend", "topic": "sensors/c1/#", "allow": true, "priority": 1},
            {"command": "addRoleACL", "rolename": "sensor", "acltype": "publishClientSend", "topic": "sensors/#", "allow": false},
            {"command": "createRole", "rolename": "reader"},
            {"command": "addRoleACL", "rolename": "reader", "acltype": "subscribePattern", "topic": "sensors/+/temp", "allow": true},
            {"command": "createGroup", "groupname": "lab"},
            {"command": "addGroupRole", "groupname": "lab", "rolename": "reader"},
            {"command": "createClient", "username": "dev1", "password": "pw", "roles": [{"rolename": "sensor"}], "correlationData": "x"},
            {"command": "addGroupClient", "groupname": "lab", "username": "dev1"},
        ]),
    );
    assert!(
        responses.iter().all(|r| r.get("error").is_none()),
        "{responses:?}"
    );
    assert_eq!(responses[7]["correlationData"], "x");
    assert!(outcome.changed);
    assert_eq!(dynsec.login("dev1", Some(b"pw"), "c1"), Login::Allowed);
    assert_eq!(dynsec.login("dev1", Some(b"no"), "c1"), Login::Refused);
    assert_eq!(dynsec.login("who", Some(b"pw"), "c1"), Login::Unknown);
    let user = Some("dev1");
    assert!(dynsec
        .check(user, "c1", Access::Send, "sensors/c1/t")
        .allowed());
    assert!(!dynsec
        .check(user, "c1", Access::Send, "sensors/c2/t")
        .allowed());
    assert!(dynsec
        .check(user, "c1", Access::Subscribe, "sensors/x/temp")
        .allowed());
    assert!(!dynsec
        .check(user, "c1", Access::Subscribe, "sensors/#")
        .allowed());
    assert!(dynsec
        .check(user, "c1", Access::Receive, "anything")
        .allowed());
    assert!(!dynsec
        .check(user, "c1", Access::Receive, "$CONTROL/x")
        .allowed());

    let (responses, outcome) = send(
        &mut dynsec,
        json!([{"command": "disableClient", "username": "dev1"}]),
    );
    assert!(responses[0].get("error").is_none());
    assert_eq!(outcome.kicks, vec![Kick::Username("dev1".into())]);
    assert_eq!(dynsec.login("dev1", Some(b"pw"), "c1"), Login::Refused);

    // The file round-trips to the same decisions.
    let reread = file::parse(&file::render(&dynsec).unwrap()).unwrap();
    assert_eq!(
        reread.check(user, "c1", Access::Send, "sensors/c1/t"),
        dynsec.check(user, "c1", Access::Send, "sensors/c1/t")
    );
    assert_eq!(
        reread.client("dev1").unwrap().groups,
        dynsec.client("dev1").unwrap().groups
    );
}

#[test]
fn bad_input_is_answered_and_changes_nothing() {
    let mut dynsec = Dynsec::default();
    let before = dynsec.clone();
    for (payload, error) in [
        (b"not json".to_vec(), "Payload not valid JSON"),
        (b"{\"x\":1}".to_vec(), "Invalid/missing commands"),
        (vec![b' '; MAX_PAYLOAD + 1], "Payload too large"),
    ] {
        let outcome = handle(&mut dynsec, &payload);
        let response: Value = serde_json::from_str(&outcome.response).unwrap();
        assert_eq!(response["responses"][0]["error"], error);
        assert!(!outcome.changed);
    }
    let (responses, outcome) = send(
        &mut dynsec,
        json!([
            {"command": "nope"},
            {"command": "createClient"},
            {"command": "createClient", "username": "a\u{1}b"},
            {"command": "createClient", "username": "u", "roles": [{"rolename": "missing"}]},
            {"command": "createRole", "rolename": "r"},
            {"command": "addRoleACL", "rolename": "r", "acltype": "publishClientSend", "topic": "a/#/b"},
            {"command": "addRoleACL", "rolename": "r", "acltype": "bad", "topic": "a"},
        ]),
    );
    let errors: Vec<&str> = responses
        .iter()
        .map(|r| r["error"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        errors,
        [
            "Unknown command",
            "Invalid/missing username",
            "Username not valid UTF-8",
            "Role not found",
            "",
            "Invalid ACL topic",
            "Unknown acltype"
        ]
    );
    assert!(outcome.changed);
    assert!(dynsec.client("u").is_none());
    assert_eq!(dynsec.clients().count(), before.clients().count());
}

#[test]
fn reads_the_file_mosquitto_ctrl_init_writes() {
    let text = include_str!("../testdata/mosquitto-init.json");
    let dynsec = file::parse(text).unwrap();
    assert_eq!(
        dynsec.login("admin", Some(b"adminpass"), "any"),
        Login::Allowed
    );
    let admin = Some("admin");
    assert!(dynsec
        .check(admin, "c", Access::Send, "$CONTROL/dynamic-security/v1")
        .allowed());
    assert!(!dynsec.check(admin, "c", Access::Send, "x").allowed());
    assert!(dynsec.check(admin, "c", Access::Subscribe, "#").allowed());
    assert!(dynsec
        .check(admin, "c", Access::Subscribe, "$SYS/#")
        .allowed());
}

#[test]
fn a_missing_file_starts_empty_and_a_malformed_one_is_refused() {
    use crate::auth::dynsec::DynsecStore;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("dynamic-security.json");
    let store = DynsecStore::load(&missing).unwrap();
    assert_eq!(store.snapshot().clients().count(), 0);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"clients\": 3}").unwrap();
    let error = DynsecStore::load(&bad).unwrap_err().to_string();
    assert!(error.contains("\"clients\" is not an array"), "{error}");
}

#[test]
fn too_many_commands_run_none() {
    let mut dynsec = Dynsec::default();
    let mut commands = vec![json!({"command": "createRole", "rolename": "r"})];
    commands.extend(std::iter::repeat_n(
        json!({"command": "listRoles"}),
        MAX_COMMANDS,
    ));
    let (responses, outcome) = send(&mut dynsec, Value::Array(commands));
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0]["error"], "Too many commands");
    assert!(!outcome.changed);
    assert!(dynsec.role("r").is_none());
}
