//! A role change re-checks the subscriptions its holders keep: a resumed
//! session does not go on receiving what the new rights deny.

use serde_json::json;

use super::{missing_tools, Admin, DynsecBroker, Kind};
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

/// Starts fleetmq with a reader (dev1, may subscribe to `sensors/#`) and
/// a writer (pub); returns the broker, the admin, dev1 subscribed with a
/// persistent session, and the publisher.
fn setup() -> (DynsecBroker, Admin, RawClient, RawClient) {
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
    (broker, admin, dev1, publisher)
}

fn revoke(admin: &mut Admin) {
    let answer = admin.command(json!({"command": "removeRoleACL", "rolename": "reader",
        "acltype": "subscribePattern", "topic": "sensors/#"}));
    assert!(answer.get("error").is_none(), "{answer}");
}

/// After the change: dev1 resumes its session and hears nothing more.
fn resumed_hears_nothing(broker: &DynsecBroker, publisher: &mut RawClient) {
    let (mut dev1, session_present) = persistent(broker);
    assert!(session_present, "the session itself stays");
    assert!(!publisher.publish("sensors/b", b"2", 1, false).is_error());
    assert!(
        dev1.expect_silence(QUIET).is_ok(),
        "a message reached a subscription the roles no longer allow"
    );
}

#[test]
fn a_revoked_subscribe_right_drops_the_held_subscription() {
    if missing_tools() {
        return;
    }
    let (broker, mut admin, mut dev1, mut publisher) = setup();
    // The right goes: dev1 is disconnected and its subscription with it.
    revoke(&mut admin);
    dev1.expect_disconnect(ReasonCode::ADMINISTRATIVE_ACTION);
    resumed_hears_nothing(&broker, &mut publisher);
}

#[test]
fn an_offline_session_loses_the_subscription_too() {
    if missing_tools() {
        return;
    }
    let (broker, mut admin, dev1, mut publisher) = setup();
    dev1.drop_connection();
    // Offline when the right goes: judged by its owner's username.
    std::thread::sleep(QUIET);
    revoke(&mut admin);
    resumed_hears_nothing(&broker, &mut publisher);
}
