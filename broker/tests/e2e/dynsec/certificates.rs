//! Device certificates and dynamic security, on a mutual-TLS listener
//! beside the plugin, against both brokers:
//!
//! - a device certificate does not lend its holder the roles of a
//!   username it merely claims: a dynsec username needs its password, as
//!   Mosquitto 2.0.11 asks (both refuse it without, both admit it with
//!   the password; before decision 0162 fleetmq refused it either way,
//!   0x86);
//! - with `use_identity_as_username`, the dynsec client named like the
//!   certificate's CN gives its roles, and disabling it disconnects the
//!   device (both); beyond Mosquitto, fleetmq then also refuses the
//!   device's reconnect while the client stays disabled (Mosquitto lets a
//!   certificate client whose dynsec client is disabled connect again).

use std::time::Duration;

use serde_json::json;

use super::{init_file, missing_tools, Admin, DynsecBroker, Kind, ADMIN, ADMIN_PASSWORD};
use crate::harness::pki::{Issued, Pki};
use crate::harness::service::free_port;
use crate::harness::tls::{self, ANY_VERSION};
use crate::harness::{ConnAck, ConnectBuilder, RawClient, ReasonCode};

/// A broker of `kind` with dynsec on its plain listener and on a mutual-TLS
/// listener (returned port); the admin connected on the plain one.
fn start(kind: Kind, pki: &Pki, identity_as_username: bool) -> (DynsecBroker, u16, Admin) {
    let dir = tempfile::tempdir().unwrap();
    let file = init_file(dir.path());
    let tls_port = free_port();
    // Mosquitto started as root reads the files as root (`user root`).
    let extra = format!(
        "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
         require_certificate true\nuse_identity_as_username {identity_as_username}\n",
        pki.ca.cert.display(),
        pki.server_ecdsa.cert.display(),
        pki.server_ecdsa.key.display(),
    );
    let broker = DynsecBroker::start_with(kind, false, dir, file, &extra);
    let admin = broker.admin();
    (broker, tls_port, admin)
}

fn device(port: u16, pki: &Pki, cert: &Issued, connect: ConnectBuilder) -> (RawClient, ConnAck) {
    let config = tls::client_config(&pki.ca.cert, Some(cert), ANY_VERSION);
    let transport = tls::connect(([127, 0, 0, 1], port).into(), config).expect("TLS handshake");
    let mut client = RawClient::over(transport);
    client.send_connect(&connect);
    let connack = client.expect_connack();
    (client, connack)
}

fn ok(admin: &mut Admin, command: serde_json::Value) {
    let answer = admin.command(command);
    assert!(answer.get("error").is_none(), "{answer}");
}

/// What a certificate client claiming the admin's username gets, with and
/// without its password: (CONNACK reason, may it send dynsec commands).
fn claimed_admin(kind: Kind, pki: &Pki) -> Vec<(ReasonCode, Option<ReasonCode>)> {
    let (_broker, port, _admin) = start(kind, pki, false);
    let mut out = Vec::new();
    for password in [None, Some("wrong"), Some(ADMIN_PASSWORD)] {
        let mut connect = ConnectBuilder::v5("dev-a-as-admin");
        connect.username = Some(ADMIN.into());
        connect.password = password.map(|p| p.as_bytes().to_vec());
        let (mut client, connack) = device(port, pki, &pki.dev_a, connect);
        let control = (connack.reason == ReasonCode::SUCCESS).then(|| {
            client.publish(
                "$CONTROL/dynamic-security/v1",
                br#"{"commands":[{"command":"listClients"}]}"#,
                1,
                false,
            )
        });
        out.push((connack.reason, control));
    }
    out
}

#[test]
fn a_certificate_does_not_lend_a_claimed_dynsec_username_its_roles() {
    if missing_tools() {
        return;
    }
    let pki = Pki::new();
    let mosquitto = claimed_admin(Kind::Mosquitto, &pki);
    let fleetmq = claimed_admin(Kind::Fleetmq, &pki);
    assert_eq!(fleetmq, mosquitto, "fleetmq differs from Mosquitto 2.0.11");
    assert_eq!(
        fleetmq[..2],
        [
            (ReasonCode::NOT_AUTHORIZED, None),
            (ReasonCode::NOT_AUTHORIZED, None)
        ],
        "a certificate client claiming the admin's name without its password"
    );
    assert_eq!(
        fleetmq[2].0,
        ReasonCode::SUCCESS,
        "with the admin's password"
    );
}

/// The device dev-a (CN dev-a) as the dynsec client `dev-a`: its role's
/// rights, disabled and kicked. Returns (own topic, other topic, kicked
/// reason, CONNACK of the reconnect while disabled, after enabling).
fn certificate_client(kind: Kind, pki: &Pki) -> Vec<String> {
    let (_broker, port, mut admin) = start(kind, pki, true);
    ok(
        &mut admin,
        json!({"command": "createRole", "rolename": "device", "acls": [
            {"acltype": "publishClientSend", "topic": "devices/dev-a/#", "allow": true}]}),
    );
    ok(
        &mut admin,
        json!({"command": "createClient", "username": "dev-a",
               "roles": [{"rolename": "device"}]}),
    );
    let mut seen = Vec::new();
    let (mut dev_a, connack) = device(port, pki, &pki.dev_a, ConnectBuilder::v5("dev-a"));
    seen.push(format!("connect {:?}", connack.reason));
    seen.push(format!(
        "own {:?}",
        dev_a.publish("devices/dev-a/state", b"1", 1, false)
    ));
    seen.push(format!(
        "other {:?}",
        dev_a.publish("devices/dev-b/state", b"1", 1, false)
    ));
    // dev-b has no dynsec client: nothing is allowed to it.
    let (mut dev_b, connack) = device(port, pki, &pki.dev_b, ConnectBuilder::v5("dev-b"));
    seen.push(format!("dev-b connect {:?}", connack.reason));
    seen.push(format!(
        "dev-b own {:?}",
        dev_b.publish("devices/dev-b/state", b"1", 1, false)
    ));
    ok(
        &mut admin,
        json!({"command": "disableClient", "username": "dev-a"}),
    );
    let closed = dev_a.wait_closed(Duration::from_secs(3)).is_some();
    seen.push(format!("kicked {closed}"));
    let (_again, connack) = device(port, pki, &pki.dev_a, ConnectBuilder::v5("dev-a"));
    seen.push(format!("while disabled {:?}", connack.reason));
    ok(
        &mut admin,
        json!({"command": "enableClient", "username": "dev-a"}),
    );
    let (_back, connack) = device(port, pki, &pki.dev_a, ConnectBuilder::v5("dev-a"));
    seen.push(format!("enabled {:?}", connack.reason));
    seen
}

#[test]
fn a_device_certificate_is_the_dynsec_client_of_its_name() {
    if missing_tools() {
        return;
    }
    let pki = Pki::new();
    let mosquitto = certificate_client(Kind::Mosquitto, &pki);
    let fleetmq = certificate_client(Kind::Fleetmq, &pki);
    let expected_fleetmq = [
        "connect 0x00 (success)",
        "own 0x10 (no matching subscribers)",
        "other 0x87 (not authorized)",
        "dev-b connect 0x00 (success)",
        "dev-b own 0x87 (not authorized)",
        "kicked true",
        "while disabled 0x87 (not authorized)",
        "enabled 0x00 (success)",
    ];
    assert_eq!(fleetmq, expected_fleetmq, "mosquitto saw {mosquitto:?}");
    // The one deliberate difference (docs/mosquitto-differences.md):
    // Mosquitto admits a disabled certificate client again.
    let mut same = mosquitto.clone();
    same[6] = fleetmq[6].clone();
    assert_eq!(same, fleetmq, "mosquitto saw {mosquitto:?}");
}

/// Beyond Mosquitto (fleetmq only): a dynsec group named `ou:<unit>` gives
/// its roles to every certificate of that OU, without a dynsec client per
/// device; changing its roles disconnects the unit's devices (0x98), as
/// the plugin disconnects a group's members.
#[test]
fn a_group_bound_to_an_ou_gives_its_roles_to_the_units_certificates() {
    if missing_tools() {
        return;
    }
    let pki = Pki::new();
    let (_broker, port, mut admin) = start(Kind::Fleetmq, &pki, true);
    ok(
        &mut admin,
        json!({"command": "createRole", "rolename": "sensor", "acls": [
            {"acltype": "publishClientSend", "topic": "sensors/+/data", "allow": true}]}),
    );
    ok(
        &mut admin,
        json!({"command": "createGroup", "groupname": "ou:sensors"}),
    );
    ok(
        &mut admin,
        json!({"command": "addGroupRole", "groupname": "ou:sensors", "rolename": "sensor"}),
    );
    // dev-b: OU sensors, no dynsec client of its own.
    let (mut dev_b, connack) = device(port, &pki, &pki.dev_b, ConnectBuilder::v5("dev-b"));
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    assert_eq!(
        dev_b.publish("sensors/dev-b/data", b"1", 1, false),
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    );
    assert_eq!(
        dev_b.publish("actuators/x", b"1", 1, false),
        ReasonCode::NOT_AUTHORIZED,
        "the init file's default denies what the role does not allow"
    );
    // Another unit gets nothing from the group.
    let actuator = pki.issue_device("act-1", "act-1", "actuators", 0xac1);
    let (mut act, connack) = device(port, &pki, &actuator, ConnectBuilder::v5("act-1"));
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    assert_eq!(
        act.publish("sensors/act-1/data", b"1", 1, false),
        ReasonCode::NOT_AUTHORIZED
    );
    // The group loses the role: the unit's devices are disconnected, the
    // other unit's are not, and the right is gone.
    ok(
        &mut admin,
        json!({"command": "removeGroupRole", "groupname": "ou:sensors", "rolename": "sensor"}),
    );
    dev_b.expect_disconnect(ReasonCode::ADMINISTRATIVE_ACTION);
    act.ping();
    let (mut dev_b, _) = device(port, &pki, &pki.dev_b, ConnectBuilder::v5("dev-b"));
    assert_eq!(
        dev_b.publish("sensors/dev-b/data", b"1", 1, false),
        ReasonCode::NOT_AUTHORIZED
    );
}
