//! Directives about the broker's own process: `pid_file` and `user`.
//!
//! The user switch is only tried when the tests run as root (CI does);
//! otherwise those tests say so and pass without checking, since a
//! non-root process cannot switch users at all.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::ConfBroker;
use crate::harness::skip_on_mosquitto;

fn running_as_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    uids(&status).first() == Some(&0)
}

/// The real, effective, saved and filesystem user ids of a /proc status.
fn uids(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .map(|ids| {
            ids.split_whitespace()
                .map(|id| id.parse().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn pid_file_holds_the_pid_until_a_clean_stop() {
    let mut pid_path = String::new();
    let mut broker = ConfBroker::start(|port, dir| {
        pid_path = dir.join("broker.pid").display().to_string();
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npid_file {pid_path}\n")
    });
    let text = std::fs::read_to_string(&pid_path).unwrap();
    assert_eq!(text.trim(), broker.process.pid().to_string(), "{text:?}");
    broker.process.signal("TERM");
    assert!(broker.process.wait_exit().success());
    assert!(!Path::new(&pid_path).exists(), "pid file left behind");
}

#[test]
fn user_drops_root_once_the_listeners_are_bound() {
    if skip_on_mosquitto("Mosquitto as nobody cannot read the test's folder") {
        return;
    }
    if !running_as_root() {
        eprintln!("not root: the user switch cannot be tried");
        return;
    }
    let broker = ConfBroker::start(|port, dir| {
        // nobody must reach and write the data directory.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nuser nobody\n\
             persistence true\npersistence_location {}/\n",
            data.display()
        )
    });
    broker.process.expect_log("Switched to user \"nobody\"");
    let status = std::fs::read_to_string(format!("/proc/{}/status", broker.process.pid())).unwrap();
    let nobody = uids(
        &std::fs::read_to_string("/etc/passwd").map_or(String::new(), |passwd| {
            passwd
                .lines()
                .find(|line| line.starts_with("nobody:"))
                .and_then(|line| line.split(':').nth(2))
                .map(|uid| format!("Uid: {uid} {uid} {uid} {uid}"))
                .unwrap_or_default()
        }),
    );
    assert_eq!(nobody.len(), 4, "no nobody in /etc/passwd");
    assert_eq!(uids(&status), nobody, "{status}");
    // Every thread left root, not only the main one.
    for task in std::fs::read_dir(format!("/proc/{}/task", broker.process.pid())).unwrap() {
        let task = task.unwrap().path();
        let status = std::fs::read_to_string(task.join("status")).unwrap();
        assert_eq!(uids(&status), nobody, "{}: {status}", task.display());
    }
}

#[test]
fn an_unknown_user_or_unwritable_data_stops_the_start() {
    if skip_on_mosquitto("the refusal's wording is fleetmq's") {
        return;
    }
    if !running_as_root() {
        eprintln!("not root: the user switch cannot be tried");
        return;
    }
    for (user, persistence, wording) in [
        ("no-such-user-fleetmq", "", "does not exist"),
        (
            "nobody",
            "persistence true\n",
            "is not writable after the user switch",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        // Reachable but not writable by nobody.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let port = crate::harness::service::free_port();
        let path = dir.path().join("mosquitto.conf");
        std::fs::write(
            &path,
            format!(
                "log_dest stderr\nlistener {port} 127.0.0.1\nallow_anonymous true\n\
                 user {user}\n{persistence}persistence_location {}/\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let mut process = ConfBroker::spawn(&path, dir.path());
        let status = process.wait_exit();
        assert!(
            !status.success(),
            "{user}: started; logs:\n{}",
            process.logs()
        );
        assert!(
            process.logs().contains(wording),
            "{user}: logs:\n{}",
            process.logs()
        );
    }
}
