//! `fleetmq migrate mosquitto --db FILE` on a `mosquitto.db` that Debian's
//! Mosquitto 2.0.11 writes during the test: retained messages, a 3.1.1
//! persistent session and a 5.0 one with subscriptions and queued QoS 1/2
//! messages are imported by the real binary and served by fleetmq after
//! the switch; a store a running broker holds is refused; a truncated file
//! is reported with its offset and leaves the store as it was.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::service::free_port;
use crate::harness::store::{drain_session, retained_under};
use crate::harness::*;

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
const QUIET: Duration = Duration::from_millis(500);

/// Runs Mosquitto with persistence in `dir`, lets `lab` act on it, stops
/// it with SIGTERM (it writes its database then) and returns the file.
fn mosquitto_db(dir: &Path, lab: impl FnOnce(SocketAddr)) -> PathBuf {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    // `user root`: started by root, Mosquitto would otherwise become the
    // `mosquitto` user and could not write into the test's folder.
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nuser root\nlog_dest stderr\n",
            dir.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(MOSQUITTO)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start /usr/sbin/mosquitto");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    lab(addr);
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("mosquitto did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let db = dir.join("mosquitto.db");
    assert!(db.exists(), "mosquitto wrote no database");
    db
}

/// A lab's state: retained statuses, a 3.1.1 device session and a 5.0
/// dashboard session that were offline while messages for them came in.
fn lab_state(addr: SocketAddr) {
    let (mut device, _) = RawClient::connect_v311(addr, "db-dev", false);
    assert_eq!(device.subscribe(1, "cmd/db-dev/#", 1), vec![ReasonCode(1)]);
    device.send(&disconnect(None));
    let (mut dash, _) = RawClient::connect_with(
        addr,
        ConnectBuilder::v5("db-dash")
            .clean(false)
            .property(prop::u32(prop::SESSION_EXPIRY, 3600)),
    );
    // QoS 2, no local, subscription identifier 7.
    dash.send(&subscribe(
        1,
        &[("alerts/#", 2 | 0x04)],
        true,
        &prop::varint(prop::SUBSCRIPTION_ID, 7),
    ));
    match dash.expect_packet("SUBACK") {
        Packet::SubAck(suback) => assert_eq!(suback.reasons, vec![ReasonCode(2)]),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    dash.send(&disconnect(Some(0)));
    std::thread::sleep(Duration::from_millis(200));
    let (mut publisher, _) = RawClient::connect_v311(addr, "db-pub", true);
    for (topic, payload) in [("status/dev-a", "online"), ("status/dev-b", "offline")] {
        assert_eq!(
            publisher.publish(topic, payload.as_bytes(), 1, true),
            ReasonCode::SUCCESS
        );
    }
    for n in 1..=3 {
        let payload = format!("cmd-{n}");
        assert_eq!(
            publisher.publish("cmd/db-dev/led", payload.as_bytes(), 1, false),
            ReasonCode::SUCCESS
        );
    }
    assert_eq!(
        publisher.publish("alerts/fire", b"alert-1", 2, false),
        ReasonCode::SUCCESS
    );
    publisher.send(&disconnect(None));
    std::thread::sleep(Duration::from_millis(200));
}

/// `fleetmq migrate mosquitto --db DB --config <broker's toml>`, run in the
/// broker's folder (its data directory is relative to it).
fn migrate(broker: &Broker, db: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetmq"))
        .args(["migrate", "mosquitto", "--db"])
        .arg(db)
        .arg("--config")
        .arg(broker.config_path())
        .args(extra)
        .current_dir(broker.dir())
        .env_remove("FLEETMQ_TEST_BROKER")
        .output()
        .expect("run fleetmq migrate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn payloads(drained: &store::Drained) -> Vec<String> {
    drained.publishes.iter().map(|p| text(&p.payload)).collect()
}

#[test]
fn a_mosquitto_db_is_imported_and_served_after_the_switch() {
    if skip_on_mosquitto("imports into fleetmq's store") {
        return;
    }
    let lab = tempfile::tempdir().unwrap();
    let db = mosquitto_db(lab.path(), lab_state);

    let mut broker = Broker::start();
    // The running broker holds the store: refused, and said why.
    let refused = migrate(&broker, &db, &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("is in use"),
        "{}",
        text(&refused.stderr)
    );
    assert!(broker.sigterm().success());

    let dry = migrate(&broker, &db, &["--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let report = text(&dry.stdout);
    assert!(
        report.contains("would import 2 retained message(s), 2 session(s), 4 queued"),
        "{report}"
    );
    assert!(
        report.contains("session: db-dev (expiry never, 1 subscription(s)"),
        "{report}"
    );
    assert!(
        report.contains("session: db-dash (expiry 3600 s"),
        "{report}"
    );

    let imported = migrate(&broker, &db, &[]);
    assert!(imported.status.success(), "{}", text(&imported.stderr));
    assert!(text(&imported.stdout).contains("imported 2 retained message(s), 2 session(s)"));
    // A second import would replace the sessions fleetmq now has: refused.
    let again = migrate(&broker, &db, &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("already holds the session(s) db-dev, db-dash"),
        "{}",
        text(&again.stderr)
    );

    broker.restart();
    let addr = broker.addr();
    let retained = retained_under(addr, "status/#", QUIET);
    assert_eq!(
        retained.get("status/dev-a").map(|p| text(p)),
        Some("online".into())
    );
    assert_eq!(
        retained.get("status/dev-b").map(|p| text(p)),
        Some("offline".into())
    );
    assert_eq!(retained.len(), 2);

    let device = drain_session(
        addr,
        ConnectBuilder::v311("db-dev").clean(false),
        QUIET,
        Duration::from_secs(10),
    );
    assert!(
        device.session_present,
        "the imported session must be resumed"
    );
    assert_eq!(payloads(&device), ["cmd-1", "cmd-2", "cmd-3"]);
    assert!(device.publishes.iter().all(|p| p.qos == QoS::AtLeastOnce));

    let dash = drain_session(
        addr,
        ConnectBuilder::v5("db-dash")
            .clean(false)
            .property(prop::u32(prop::SESSION_EXPIRY, 3600)),
        QUIET,
        Duration::from_secs(10),
    );
    assert!(dash.session_present);
    assert_eq!(payloads(&dash), ["alert-1"]);
    assert_eq!(dash.publishes[0].qos, QoS::ExactlyOnce);
    assert_eq!(
        dash.publishes[0].properties.subscription_identifiers,
        vec![7],
        "the queued message keeps its subscription identifier"
    );

    // The subscriptions were carried over too: new messages reach them.
    let (mut device, connack) = RawClient::connect_v311(addr, "db-dev", false);
    assert!(connack.session_present);
    let (mut publisher, _) = RawClient::connect_v311(addr, "db-pub2", true);
    assert_eq!(
        publisher.publish("cmd/db-dev/led", b"after", 1, false),
        ReasonCode::SUCCESS
    );
    assert_eq!(&device.expect_app_publish().payload[..], b"after");

    // The 5.0 subscription kept its identifier and options.
    let (mut dash, connack) = RawClient::connect_with(
        addr,
        ConnectBuilder::v5("db-dash")
            .clean(false)
            .property(prop::u32(prop::SESSION_EXPIRY, 3600)),
    );
    assert!(connack.session_present);
    assert_eq!(
        publisher.publish("alerts/smoke", b"alert-2", 1, false),
        ReasonCode::SUCCESS
    );
    let alert = dash.expect_app_publish();
    assert_eq!(&alert.payload[..], b"alert-2");
    assert_eq!(alert.properties.subscription_identifiers, vec![7]);
    // No local: its own message does not come back (it matched no one).
    assert_eq!(
        dash.publish("alerts/self", b"own", 1, false),
        ReasonCode(0x10),
        "no local was lost"
    );
    assert!(dash.recv_packet(QUIET).is_none());
}

#[test]
fn a_truncated_mosquitto_db_is_reported_and_imports_nothing() {
    if skip_on_mosquitto("imports into fleetmq's store") {
        return;
    }
    let first = tempfile::tempdir().unwrap();
    let before = mosquitto_db(first.path(), |addr| {
        let (mut publisher, _) = RawClient::connect_v311(addr, "db-pub", true);
        assert_eq!(
            publisher.publish("status/before", b"kept", 1, true),
            ReasonCode::SUCCESS
        );
        publisher.send(&disconnect(None));
        std::thread::sleep(Duration::from_millis(200));
    });
    let second = tempfile::tempdir().unwrap();
    let full = mosquitto_db(second.path(), lab_state);
    let bytes = std::fs::read(&full).unwrap();
    // One byte short: the last chunk (Mosquitto writes RETAIN chunks last)
    // is cut, after sessions and messages that read well.
    let truncated = second.path().join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() - 1]).unwrap();

    let mut broker = Broker::start();
    assert!(broker.sigterm().success());
    let imported = migrate(&broker, &before, &[]);
    assert!(imported.status.success(), "{}", text(&imported.stderr));
    let store_before = std::fs::read(broker.store_path()).unwrap();

    let refused = migrate(&broker, &truncated, &[]);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("truncated.db: offset "), "{stderr}");
    assert!(stderr.contains("(RETAIN chunk)"), "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    assert_eq!(
        std::fs::read(broker.store_path()).unwrap(),
        store_before,
        "a refused import must not touch the store"
    );

    broker.restart();
    let addr = broker.addr();
    let retained = retained_under(addr, "#", QUIET);
    assert_eq!(retained.len(), 1, "{retained:?}");
    assert_eq!(
        retained.get("status/before").map(|p| text(p)),
        Some("kept".into())
    );
    let (_, connack) = RawClient::connect_v311(addr, "db-dev", false);
    assert!(
        !connack.session_present,
        "no session may come from the truncated file"
    );
}

/// `fleetmq run --mosquitto-conf` on the conf Mosquitto ran with, in the
/// same folder.
fn run_on_conf(dir: &Path) -> crate::harness::service::Process {
    let mut command = crate::harness::service::fleetmq();
    command
        .arg("run")
        .arg("--mosquitto-conf")
        .arg(dir.join("mosquitto.conf"))
        .current_dir(dir);
    crate::harness::service::Process::spawn(command)
}

/// Every file and directory under `dir`, at any depth.
fn paths_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path.clone());
            }
            found.push(path);
        }
    }
    found
}

/// The conf's listener address (written by [`mosquitto_db`]).
fn conf_addr(dir: &Path) -> SocketAddr {
    let conf = std::fs::read_to_string(dir.join("mosquitto.conf")).unwrap();
    let port: u16 = conf
        .lines()
        .find_map(|line| line.strip_prefix("listener "))
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn the_persistence_file_is_imported_at_the_first_start_from_mosquitto_conf() {
    if skip_on_mosquitto("imports into fleetmq's store") {
        return;
    }
    let lab = tempfile::tempdir().unwrap();
    let db = mosquitto_db(lab.path(), lab_state);
    let db_bytes = std::fs::read(&db).unwrap();
    let addr = conf_addr(lab.path());

    let mut broker = run_on_conf(lab.path());
    broker.expect_log("Imported the Mosquitto persistence file");
    broker.expect_log(" running.");
    assert!(
        broker
            .logs()
            .contains("2 retained messages, 2 sessions, 4 queued or in-flight messages"),
        "{}",
        broker.logs()
    );
    let retained = retained_under(addr, "status/#", QUIET);
    assert_eq!(retained.len(), 2, "{retained:?}");
    let device = drain_session(
        addr,
        ConnectBuilder::v311("db-dev").clean(false),
        QUIET,
        Duration::from_secs(10),
    );
    assert!(device.session_present);
    assert_eq!(payloads(&device), ["cmd-1", "cmd-2", "cmd-3"]);
    broker.signal("TERM");
    assert!(broker.wait_exit().success());
    assert_eq!(
        std::fs::read(&db).unwrap(),
        db_bytes,
        "mosquitto.db changed"
    );
    // The import's temporary store was renamed into place, and nothing of
    // it (no file, no write-ahead log directory) is left beside the store.
    let leftovers: Vec<PathBuf> = paths_under(lab.path())
        .into_iter()
        .filter(|path| path.to_string_lossy().contains(".importing"))
        .collect();
    assert!(leftovers.is_empty(), "left by the import: {leftovers:?}");

    // The store exists now: no second import (the delivered commands
    // would come back), and what the store holds is served.
    let broker = run_on_conf(lab.path());
    broker.expect_log(" running.");
    assert!(!broker.logs().contains("Imported"), "{}", broker.logs());
    let device = drain_session(
        addr,
        ConnectBuilder::v311("db-dev").clean(false),
        QUIET,
        Duration::from_secs(10),
    );
    assert!(device.session_present);
    assert!(payloads(&device).is_empty(), "{:?}", payloads(&device));
    assert_eq!(retained_under(addr, "status/#", QUIET).len(), 2);
}

#[test]
fn a_damaged_persistence_file_stops_the_first_start_and_leaves_no_store() {
    if skip_on_mosquitto("imports into fleetmq's store") {
        return;
    }
    let lab = tempfile::tempdir().unwrap();
    let db = mosquitto_db(lab.path(), lab_state);
    let bytes = std::fs::read(&db).unwrap();
    std::fs::write(&db, &bytes[..bytes.len() - 1]).unwrap();
    let mut broker = run_on_conf(lab.path());
    let status = broker.wait_exit();
    assert!(!status.success(), "{}", broker.logs());
    let logs = broker.logs();
    assert!(logs.contains("nothing was imported"), "{logs}");
    assert!(logs.contains("Move the file aside"), "{logs}");
    let left: Vec<String> = std::fs::read_dir(lab.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("redb"))
        .collect();
    assert!(left.is_empty(), "store files left: {left:?}");
}
