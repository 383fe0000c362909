//! Password files written by Debian's `mosquitto_passwd` (Mosquitto 2.0,
//! `$7$` PBKDF2-SHA512), read by the broker as they are: right passwords
//! connect, wrong ones and missing credentials get the CONNACK codes a
//! 3.1.1 and a 5.0 client expect, password users are named by their
//! username in ACL rules, and a SIGHUP applies an edited file without
//! dropping anyone already connected.
//!
//! Skipped, with a notice, where `mosquitto_passwd` is not installed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness;
use crate::harness::fleet::{have_tool, Peer};
use crate::harness::pki::{toml_path, Pki};
use crate::harness::tls::{self, ANY_VERSION};
use crate::harness::tools::Tool;
use crate::harness::{
    skip_on_mosquitto, Broker, ConnectBuilder, ListenerSpec, RawClient, ReasonCode, WAIT,
};

const SKIP: &str = "listeners and password files are configured the fleetmq way";

/// The plain listener that admits password users only.
const LISTENER: &str = "passwords";

/// Password users get their own topics (`%i` is the username without a
/// certificate).
const POLICY: &str = r##"
[[acl]]
access = "write"
topic = "devices/%i/#"

[[acl]]
access = "read"
topic = "devices/%i/cmd/#"
"##;

/// Runs `mosquitto_passwd ARGS` and asserts it succeeded.
fn mosquitto_passwd(args: &[&str]) {
    let out = Command::new("mosquitto_passwd")
        .args(args)
        .output()
        .expect("run mosquitto_passwd");
    assert!(
        out.status.success(),
        "mosquitto_passwd {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A password file with sensor-7:s3cret and sensor-8:hunter2, written by
/// `mosquitto_passwd`; None (after a notice) without the tool.
fn password_file(dir: &Path) -> Option<PathBuf> {
    if !have_tool("mosquitto_passwd", "package mosquitto") {
        return None;
    }
    let file = dir.join("passwd");
    let name = file.to_str().unwrap();
    mosquitto_passwd(&["-b", "-c", name, "sensor-7", "s3cret"]);
    mosquitto_passwd(&["-b", name, "sensor-8", "hunter2"]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("sensor-7:$7$101$"), "{text}");
    Some(file)
}

/// A broker whose [`LISTENER`] refuses anonymous clients and checks
/// `file`; `extra` is appended.
fn start(file: &Path, extra: &str) -> Broker {
    let listener = ListenerSpec::plain(LISTENER).with_settings("allow_anonymous = false");
    let toml = format!(
        "[auth]\npassword_file = {}\n{POLICY}{extra}",
        toml_path(file)
    );
    Broker::start_with_listeners(&[listener], &toml)
}

fn v311(user: Option<&str>, password: Option<&str>, client_id: &str) -> ConnectBuilder {
    let mut connect = ConnectBuilder::v311(client_id);
    connect.username = user.map(str::to_string);
    connect.password = password.map(|p| p.as_bytes().to_vec());
    connect
}

fn v5(user: Option<&str>, password: Option<&str>, client_id: &str) -> ConnectBuilder {
    ConnectBuilder {
        level: 5,
        ..v311(user, password, client_id)
    }
}

/// The 5.0 CONNACK reason for `connect` on [`LISTENER`].
fn connack_v5(broker: &Broker, connect: &ConnectBuilder) -> ReasonCode {
    let mut client = RawClient::connect(broker.addr_of(LISTENER));
    client.send_connect(connect);
    client.expect_connack().reason
}

/// The 3.1.1 CONNACK return code for `connect`, read off the wire.
fn connack_v311(broker: &Broker, connect: &ConnectBuilder) -> u8 {
    let mut client = RawClient::connect(broker.addr_of(LISTENER));
    client.send_connect(connect);
    let bytes = client.recv_exact(4, WAIT);
    assert_eq!(bytes[..3], [0x20, 0x02, 0x00], "CONNACK: {bytes:02x?}");
    bytes[3]
}

fn connect(broker: &Broker, connect: ConnectBuilder) -> Peer {
    let (client, _) = RawClient::connect_with(broker.addr_of(LISTENER), connect);
    Peer::new(client)
}

#[test]
fn mosquitto_passwd_file_verifies() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(file) = password_file(dir.path()) else {
        return;
    };
    let broker = start(&file, "");
    connect(&broker, v311(Some("sensor-7"), Some("s3cret"), "s7")).ping();
    connect(&broker, v5(Some("sensor-8"), Some("hunter2"), "s8")).ping();

    // mosquitto_pub too; exit 0 means CONNACK accepted and PUBACK came.
    let port = broker.addr_of(LISTENER).port().to_string();
    for version in ["mqttv311", "mqttv5"] {
        let publish = Tool::spawn(
            "mosquitto_pub",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-V",
                version,
                "-u",
                "sensor-7",
                "-P",
                "s3cret",
                "-q",
                "1",
                "-t",
                "devices/sensor-7/data",
                "-m",
                "1",
            ],
        );
        publish.finish_ok(Duration::from_secs(10));
    }
}

#[test]
fn wrong_passwords_are_refused_with_bad_user_name_or_password() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(file) = password_file(dir.path()) else {
        return;
    };
    let broker = start(&file, "");
    let cases = [
        (Some("sensor-7"), Some("wrong")),
        (Some("sensor-7"), Some("hunter2")), // sensor-8's password
        (Some("nobody"), Some("s3cret")),
        (Some("sensor-7"), None),
    ];
    for (user, password) in cases {
        assert_eq!(
            connack_v311(&broker, &v311(user, password, "c")),
            4,
            "3.1.1 {user:?}/{password:?}"
        );
        assert_eq!(
            connack_v5(&broker, &v5(user, password, "c")),
            ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            "5.0 {user:?}/{password:?}"
        );
    }
    broker.assert_log("as c: bad user name or password", WAIT);

    // mosquitto_pub exits with the refusal: 4, or 0x86 = 134 in 5.0.
    let port = broker.addr_of(LISTENER).port().to_string();
    for (version, code, message) in [
        (
            "mqttv311",
            4,
            "Connection Refused: bad user name or password.",
        ),
        ("mqttv5", 134, "Bad User Name or Password"),
    ] {
        let publish = Tool::spawn(
            "mosquitto_pub",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-V",
                version,
                "-u",
                "sensor-7",
                "-P",
                "nope",
                "-t",
                "x",
                "-m",
                "1",
            ],
        );
        let (status, output) = publish.finish(Duration::from_secs(10));
        assert_eq!(status.and_then(|s| s.code()), Some(code), "{output}");
        assert!(
            output.contains(&format!("Connection error: {message}")),
            "{version}: {output}"
        );
    }
}

#[test]
fn missing_credentials_are_not_authorized() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(file) = password_file(dir.path()) else {
        return;
    };
    // Plain with allow_anonymous = false, and TLS with optional client
    // certificates and the TLS default (no anonymous clients).
    let pki = Pki::new();
    let one_way = ListenerSpec::tls("one-way", &pki.listener_toml(&pki.server_ecdsa, "optional"))
        .with_settings("");
    let listener = ListenerSpec::plain(LISTENER).with_settings("allow_anonymous = false");
    let toml = format!("[auth]\npassword_file = {}\n", toml_path(&file));
    let broker = Broker::start_with_listeners(&[listener, one_way], &toml);

    assert_eq!(connack_v311(&broker, &v311(None, None, "anon")), 5);
    assert_eq!(
        connack_v5(&broker, &v5(None, None, "anon")),
        ReasonCode::NOT_AUTHORIZED
    );
    broker.assert_log("as anon: not authorised", WAIT);

    let over_tls = || {
        let config = tls::client_config(&pki.ca.cert, None, ANY_VERSION);
        RawClient::over(tls::connect(broker.addr_of("one-way"), config).unwrap())
    };
    let mut client = over_tls();
    client.send_connect(&v311(None, None, "anon-tls"));
    assert_eq!(client.recv_exact(4, WAIT), [0x20, 0x02, 0x00, 0x05]);
    let mut client = over_tls();
    client.send_connect(&v5(None, None, "anon-tls"));
    assert_eq!(client.expect_connack().reason, ReasonCode::NOT_AUTHORIZED);
    // The same listener admits a password user, and a device certificate.
    let mut client = over_tls();
    client.send_connect(&v5(Some("sensor-7"), Some("s3cret"), "s7"));
    assert_eq!(client.expect_connack().reason, ReasonCode::SUCCESS);
    let config = tls::client_config(&pki.ca.cert, Some(&pki.dev_a), ANY_VERSION);
    let mut client = RawClient::over(tls::connect(broker.addr_of("one-way"), config).unwrap());
    client.send_connect(&v5(None, None, "dev-a"));
    assert_eq!(client.expect_connack().reason, ReasonCode::SUCCESS);
}

#[test]
fn password_users_are_named_by_their_username_in_rules() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(file) = password_file(dir.path()) else {
        return;
    };
    let broker = start(&file, "");
    // The client id does not matter, the verified username does.
    let mut sensor = connect(&broker, v5(Some("sensor-7"), Some("s3cret"), "sensor-8"));
    assert_eq!(
        sensor.publish("devices/sensor-7/data", b"1", 1, false),
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    );
    assert_eq!(
        sensor.publish("devices/sensor-8/data", b"1", 1, false),
        ReasonCode::NOT_AUTHORIZED
    );
    assert_eq!(sensor.subscribe("devices/sensor-7/cmd/#"), ReasonCode(1));
    assert_eq!(
        sensor.subscribe("devices/sensor-8/cmd/#"),
        ReasonCode::NOT_AUTHORIZED
    );
}

#[test]
fn sighup_reloads_the_password_file_without_dropping_connections() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(file) = password_file(dir.path()) else {
        return;
    };
    let broker = start(&file, "");
    let mut held = connect(&broker, v5(Some("sensor-8"), Some("hunter2"), "s8"));
    assert_eq!(held.subscribe("devices/sensor-8/cmd/#"), ReasonCode(1));

    let name = file.to_str().unwrap();
    mosquitto_passwd(&["-D", name, "sensor-8"]);
    mosquitto_passwd(&["-b", name, "sensor-9", "n3w"]);
    broker.sighup();
    broker.assert_log("Reloaded password file and ACL rules.", WAIT);

    // Removed: refused from now on, in both versions.
    assert_eq!(
        connack_v311(
            &broker,
            &v311(Some("sensor-8"), Some("hunter2"), "s8-again")
        ),
        4
    );
    assert_eq!(
        connack_v5(&broker, &v5(Some("sensor-8"), Some("hunter2"), "s8-again")),
        ReasonCode::BAD_USER_NAME_OR_PASSWORD
    );
    // Added: admitted. Kept: still admitted.
    connect(&broker, v5(Some("sensor-9"), Some("n3w"), "s9")).ping();
    connect(&broker, v311(Some("sensor-7"), Some("s3cret"), "s7")).ping();
    // The connection made before the reload is still up, and served.
    held.ping();
    assert_eq!(
        held.publish("devices/sensor-8/data", b"still here", 1, false),
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    );
    for closed in [
        "Client s8 closed",
        "Client s8 disconnected",
        "on client s8,",
    ] {
        assert_eq!(
            broker.count_log_lines(&[closed]),
            0,
            "s8 was disconnected:\n{}",
            broker.logs()
        );
    }
}

/// Mosquitto 2.0 refuses anonymous clients once a password file is set,
/// unless `allow_anonymous true`: a plain listener without the key does
/// the same here (the harness's `test` listener has no auth settings).
#[test]
fn a_password_file_makes_plain_listeners_refuse_anonymous_clients() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(file) = password_file(dir.path()) else {
        return;
    };
    let open = ListenerSpec::plain("open").with_settings("allow_anonymous = true");
    let toml = format!("[auth]\npassword_file = {}\n", toml_path(&file));
    let broker = Broker::start_with_listeners(&[open], &toml);
    let default_plain = broker.addr_of("test");

    let mut client = RawClient::connect(default_plain);
    client.send_connect(&v311(None, None, "anon"));
    assert_eq!(client.recv_exact(4, WAIT), [0x20, 0x02, 0x00, 0x05]);
    let mut client = RawClient::connect(default_plain);
    client.send_connect(&v5(None, None, "anon"));
    assert_eq!(client.expect_connack().reason, ReasonCode::NOT_AUTHORIZED);
    broker.assert_log("as anon: not authorised", WAIT);
    // Password users still connect there; `allow_anonymous = true` still
    // admits anonymous clients.
    let mut client = RawClient::connect(default_plain);
    client.send_connect(&v5(Some("sensor-7"), Some("s3cret"), "s7"));
    assert_eq!(client.expect_connack().reason, ReasonCode::SUCCESS);
    let mut client = RawClient::connect(broker.addr_of("open"));
    client.send_connect(&v5(None, None, "anon"));
    assert_eq!(client.expect_connack().reason, ReasonCode::SUCCESS);
}

/// Without a certificate, a verified username is the identity that
/// `clientid_must_match_identity` compares, on a plain listener too; a
/// client with neither certificate nor password has none and is refused.
#[test]
fn clientid_must_match_identity_on_a_plain_listener_names_password_users() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(file) = password_file(dir.path()) else {
        return;
    };
    let matched = ListenerSpec::plain("matched")
        .with_settings("allow_anonymous = true\nclientid_must_match_identity = true");
    let toml = format!("[auth]\npassword_file = {}\n{POLICY}", toml_path(&file));
    let broker = Broker::start_with_listeners(&[matched], &toml);
    let connack = |connect: &ConnectBuilder| {
        let mut client = RawClient::connect(broker.addr_of("matched"));
        client.send_connect(connect);
        client.expect_connack().reason
    };
    assert_eq!(
        connack(&v5(Some("sensor-7"), Some("s3cret"), "sensor-7")),
        ReasonCode::SUCCESS
    );
    assert_eq!(
        connack(&v5(Some("sensor-7"), Some("s3cret"), "sensor-8")),
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID
    );
    assert_eq!(
        connack(&v5(None, None, "sensor-7")),
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID
    );
    broker.assert_log(
        "as sensor-7: client id differs from the client's identity",
        WAIT,
    );
}

/// The issue's take-over: an anonymous client that sends a password user's
/// name as client id gets none of that user's `%i` rights: not its queued
/// commands, not its topics.
#[test]
fn an_anonymous_client_named_like_a_user_gets_none_of_its_rights() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(file) = password_file(dir.path()) else {
        return;
    };
    let open = ListenerSpec::plain("open").with_settings("allow_anonymous = true");
    let toml = format!("[auth]\npassword_file = {}\n{POLICY}", toml_path(&file));
    let listener = ListenerSpec::plain(LISTENER).with_settings("allow_anonymous = false");
    let broker = Broker::start_with_listeners(&[listener, open], &toml);

    // sensor-7 leaves a persistent session with a command queued for it.
    let mut sensor = connect(
        &broker,
        v311(Some("sensor-7"), Some("s3cret"), "sensor-7").clean(false),
    );
    assert_eq!(sensor.subscribe("devices/sensor-7/cmd/#"), ReasonCode(1));
    sensor.raw.send(&[0xE0, 0x00]);
    broker.assert_log("Client sensor-7 disconnected.", WAIT);
    let mut sender = connect(&broker, v5(Some("sensor-7"), Some("s3cret"), "s7-sender"));
    assert_eq!(
        sender.publish("devices/sensor-7/cmd/reboot", b"1", 1, false),
        ReasonCode::SUCCESS
    );

    // An anonymous client on the open listener, client id sensor-7.
    let mut impostor = RawClient::connect(broker.addr_of("open"));
    impostor.send_connect(&v311(None, None, "sensor-7").clean(false));
    let connack = impostor.expect_connack();
    // Whether it may attach to sensor-7's session at all is the session's
    // rule; admitted or not, it must not read sensor-7's command.
    if !connack.reason.is_error() {
        let mut impostor = Peer::new(impostor);
        let received = impostor.drain(harness::QUIET);
        assert!(received.is_empty(), "impostor read {received:?}");
        assert_eq!(
            impostor.subscribe("devices/sensor-7/cmd/#"),
            ReasonCode(0x80)
        );
    }
    // sensor-7's session belongs to the user sensor-7 (decision 0088).
    let mut refused = RawClient::connect(broker.addr_of("open"));
    refused.send_connect(&v5(None, None, "sensor-7"));
    assert_eq!(refused.expect_connack().reason, ReasonCode::NOT_AUTHORIZED);
    // A client id without a session: `%i` must not expand to it (before,
    // an anonymous client's identity was its client id, and these passed).
    let (raw, _) = RawClient::connect_with(broker.addr_of("open"), v5(None, None, "sensor-9"));
    let mut impostor = Peer::new(raw);
    assert_eq!(
        impostor.publish("devices/sensor-9/data", b"forged", 1, false),
        ReasonCode::NOT_AUTHORIZED
    );
    assert_eq!(
        impostor.subscribe("devices/sensor-9/cmd/#"),
        ReasonCode::NOT_AUTHORIZED
    );
    broker.assert_log("(identity none)", WAIT);
}
