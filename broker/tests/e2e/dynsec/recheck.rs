//! A role change re-checks the subscriptions its holders keep: a resumed
//! session does not go on receiving what the new rights deny.

use serde_json::json;

use super::{missing_tools, DynsecBroker, Kind};
use crate::harness::{prop, ConnectBuilder, RawClient, ReasonCode, QUIET};

fn persistent(broker: &DynsecBroker) -> (RawClient, bool) {
    let mut connect = ConnectBuilder::v5("dev1-session")
        .clean(false)
        .property(prop::u32(0x11, 300));
    connect.username = Some("dev1".into());
    connect.password = Some(b"pw1".to_vec());
    let mut client = RawClient::connect(broker.addr());
    client.send_connect(&connect);
    let connack = client.expect_connack();
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    (client, connack.session_present)
}

#[test]
fn a_revoked_subscribe_right_drops_the_held_subscription() {
    if missing_tools() {
        return;
    }
    let broker = DynsecBroker::start(Kind::Fleetmq, false);
    let mut admin = broker.admin();
    for command in [
        json!({"command": "createRole", "rolename": "reader", "acls": [
            {"acltype": "subscribePattern", "topic": "sensors/#", "allow": true}]}),
        json!({"command": "createRole", "rolename": "writer", "acls": [
            {"acltype": "publishClientSend", "topic": "sensors/#", "allow": true}]}),
        json!({"command": "createClient", "username": "dev1", "password": "pw1", "roles": [{"rolename": "reader"}]}),
        json!({"command": "createClient", "username": "pub", "password": "pw2", "roles": [{"rolename": "writer"}]}),
    ] {
        let answer = admin.command(command);
        assert!(answer.get("error").is_none(), "{answer}");
    }
    let (mut dev1, _) = persistent(&broker);
    // QoS 0: nothing is left unacknowledged to be resent on resume.
    assert_eq!(dev1.subscribe(1, "sensors/#", 0), vec![ReasonCode(0)]);
    let (mut publisher, _) = broker.connect("pub", Some(("pub", "pw2")));
    assert!(!publisher.publish("sensors/a", b"1", 1, false).is_error());
    assert_eq!(&*dev1.expect_app_publish().topic, "sensors/a");

    // The right goes: dev1 is disconnected and its subscription with it.
    let answer = admin.command(json!({"command": "removeRoleACL", "rolename": "reader",
        "acltype": "subscribePattern", "topic": "sensors/#"}));
    assert!(answer.get("error").is_none(), "{answer}");
    dev1.expect_disconnect(ReasonCode::ADMINISTRATIVE_ACTION);
    let (mut dev1, session_present) = persistent(&broker);
    assert!(session_present, "the session itself stays");
    assert!(!publisher.publish("sensors/b", b"2", 1, false).is_error());
    assert!(
        dev1.expect_silence(QUIET).is_ok(),
        "a message reached a subscription the roles no longer allow"
    );
}
