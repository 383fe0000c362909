//! The mosquitto.conf directives issue 17 carried over, end to end: each
//! test writes a `mosquitto.conf`, runs `fleetmq run --mosquitto-conf` on
//! it (or, under `FLEETMQ_TEST_BROKER=mosquitto`, Debian's Mosquitto 2.0.11
//! on the same file where it knows the directive) and talks to it with the
//! raw client or the mosquitto clients.
//!
//! Directives of Mosquitto 2.1 (`accept_protocol_versions`,
//! `listener_allow_anonymous`, `global_max_connections`) are fleetmq only:
//! 2.0.11 refuses them as unknown.

mod chain;
mod ciphers;
mod connection;
mod files;
mod logs;
mod mount;
mod process;
mod queue;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::is_mosquitto;
use crate::harness::service::{fleetmq, free_port, Process};

/// A broker started from a mosquitto.conf in its own directory.
pub struct ConfBroker {
    pub process: Process,
    /// The first listener's port.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl ConfBroker {
    /// Writes `conf(port, dir)` as mosquitto.conf (with `log_dest stderr`)
    /// and starts the broker on it; waits until `port` accepts.
    pub fn start(conf: impl FnOnce(u16, &Path) -> String) -> ConfBroker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        // Mosquitto started as root drops to its own user, which cannot
        // read the test's temporary directory.
        let user = if is_mosquitto() { "user root\n" } else { "" };
        let text = format!("log_dest stderr\n{user}{}\n", conf(port, dir.path()));
        let path = dir.path().join("mosquitto.conf");
        std::fs::write(&path, text).unwrap();
        let process = ConfBroker::spawn(&path, dir.path());
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "broker did not listen on {port}; logs:\n{}",
                process.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        ConfBroker {
            process,
            port,
            _dir: dir,
        }
    }

    fn spawn(path: &Path, dir: &Path) -> Process {
        let mut command = if is_mosquitto() {
            let mut command = Command::new("/usr/sbin/mosquitto");
            command.arg("-c").arg(path);
            command
        } else {
            let mut command = fleetmq();
            command.arg("run").arg("--mosquitto-conf").arg(path);
            command
        };
        command.current_dir(dir);
        Process::spawn(command)
    }

    /// Another listener's address, once it accepts connections.
    pub fn other(&self, port: u16) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "broker did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// Waits until the logs contain `needle` (a refusal's line may be
    /// written after its CONNACK reached the client).
    pub fn expect_log(&self, needle: &str) {
        self.process.expect_log(needle)
    }
}

/// Runs a mosquitto client tool with a bounded wait; its output.
pub fn tool(name: &str, args: &[&str]) -> std::process::Output {
    let output = Command::new("timeout")
        .arg("15")
        .arg(name)
        .args(args)
        .output()
        .unwrap();
    output
}
