//! `log_dest file` and `log_timestamp_format`: the log appended to a file
//! with the configured timestamps, reopened on SIGHUP after logrotate moved
//! it. Runs against Mosquitto 2.0.11 too (which stamps in local time: the
//! test machines run in UTC).

use std::path::Path;
use std::time::{Duration, Instant};

use super::ConfBroker;
use crate::harness::{RawClient, WAIT};

/// Waits until `path` holds a line containing `needle`; that line.
fn line_with(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|line| line.contains(needle)) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{} has no {needle:?}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn log_dest_file_with_timestamp_format_and_reopen_on_sighup() {
    let mut log = std::path::PathBuf::new();
    let broker = ConfBroker::start(|port, dir| {
        log = dir.join("broker.log");
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nlog_dest file {}\n\
             log_timestamp_format %Y-%m-%dT%H:%M:%S\nlog_type all\n",
            log.display()
        )
    });
    let (mut first, _) = RawClient::connect_v311(broker.addr(), "log-first", true);
    first.ping();
    let line = line_with(&log, "log-first");
    let year = time::OffsetDateTime::now_utc().year().to_string();
    assert!(line.starts_with(&year), "{line}");
    let stamp = &line[..19];
    assert!(
        time::PrimitiveDateTime::parse(
            stamp,
            &time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]")
        )
        .is_ok(),
        "{line}"
    );
    // logrotate: move the file away, then SIGHUP.
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated).unwrap();
    broker.process.signal("HUP");
    let deadline = Instant::now() + WAIT;
    while !log.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (mut second, _) = RawClient::connect_v311(broker.addr(), "log-second", true);
    second.ping();
    line_with(&log, "log-second");
    assert!(!std::fs::read_to_string(&rotated)
        .unwrap()
        .contains("log-second"));
}
