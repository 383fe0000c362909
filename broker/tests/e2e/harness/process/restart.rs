//! Stopping and restarting one [`Broker`] over the same working directory
//! (the durable store lives in `<dir>/fleetmq-data/`), for the store
//! tests, and running a broker that must refuse to start
//! ([`run_broker_to_exit`]). Starting is [`super`]'s.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::*;

// ---------------------------------------------------------------------------
// Stopping and restarting one broker over the same working directory (the
// durable store lives in `<dir>/fleetmq-data/`), for the store tests.
// ---------------------------------------------------------------------------

/// How long a stopping broker may take to exit.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl Broker {
    /// The broker's working directory: its `fleetmq.toml`, and the data
    /// directory `fleetmq-data/` with the store `fleetmq.redb`.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// The store file of a broker with the default store settings.
    pub fn store_path(&self) -> PathBuf {
        self.dir().join("fleetmq-data").join("fleetmq.redb")
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    ///
    /// Waits first until the broker catches SIGTERM: it installs its
    /// handler only after it logged its listen lines, and a SIGTERM before
    /// that kills it like SIGKILL would (see `wait_sigterm_handler`).
    pub fn sigterm(&mut self) -> ExitStatus {
        self.wait_sigterm_handler(START_TIMEOUT);
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", self.pid());
        self.wait_exit(STOP_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "broker still running {STOP_TIMEOUT:?} after SIGTERM; logs:\n{}",
                self.logs()
            )
        })
    }

    /// Waits until the process catches SIGTERM (Linux: the `SigCgt` mask
    /// of `/proc/PID/status`); true once it does, false after `timeout`
    /// or where `/proc` cannot tell.
    pub fn wait_sigterm_handler(&self, timeout: Duration) -> bool {
        const SIGTERM_BIT: u64 = 1 << (15 - 1);
        let status_path = format!("/proc/{}/status", self.pid());
        let deadline = Instant::now() + timeout;
        loop {
            let caught = std::fs::read_to_string(&status_path)
                .ok()
                .and_then(|status| {
                    let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
                    u64::from_str_radix(mask.trim(), 16).ok()
                });
            match caught {
                Some(mask) if mask & SIGTERM_BIT != 0 => return true,
                None => return false,
                Some(_) if Instant::now() >= deadline => return false,
                Some(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    /// Kills the process with SIGKILL (a crash, as close to a power cut as
    /// a test can get without a VM) and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.running = false;
    }

    /// The exit status once the process exits, None after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.running = false;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts the broker again after it stopped: same working directory,
    /// same configuration, same port for the `test` listener (so clients
    /// reconnect where they were; other listeners get new ports, see
    /// [`Broker::addr_of`]). The logs start over.
    pub fn restart(&mut self) {
        assert!(!is_mosquitto(), "restart is fleetmq only");
        if self.running {
            self.kill9();
        }
        let config_path = self.dir().join("fleetmq.toml");
        let toml = std::fs::read_to_string(&config_path).expect("read config");
        let pinned = toml.replacen(
            "name = \"test\"\nbind = \"127.0.0.1:0\"",
            &format!("name = \"test\"\nbind = \"{}\"", self.addr),
            1,
        );
        std::fs::write(&config_path, pinned).expect("write config");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // The port is free again at once (the listener sets
            // SO_REUSEADDR), but retry a few times in case another test
            // grabbed it as an ephemeral port meanwhile.
            let mut command = Command::new(env!("CARGO_BIN_EXE_fleetmq"));
            command
                .arg("run")
                .arg("--config")
                .arg(&config_path)
                .env_remove("FLEETMQ_TEST_BROKER")
                .env_remove("FLEETMQ_BIN");
            let names: Vec<String> = self.listeners.iter().map(|(n, _)| n.clone()).collect();
            match Broker::spawn_process(command, self.dir(), &names, parse_listen_line) {
                Ok((child, listeners, logs)) => {
                    self.child = child;
                    self.listeners = listeners;
                    self.logs = logs;
                    self.running = true;
                    return;
                }
                Err(text)
                    if Instant::now() < deadline && text.contains("Address already in use") =>
                {
                    thread::sleep(Duration::from_millis(100));
                }
                Err(text) => panic!("broker did not restart; logs:\n{text}"),
            }
        }
    }

    /// Starts the process and waits for its listen lines; Err with its
    /// logs when it exits first or takes too long.
    pub(super) fn spawn_process(
        mut command: Command,
        dir: &Path,
        names: &[String],
        listen_line: impl Fn(&str) -> Option<(String, SocketAddr)> + Send + 'static,
    ) -> Result<Spawned, String> {
        command
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn broker");
        let stderr = child.stderr.take().expect("stderr piped");
        let logs = Arc::new(LogBuffer::default());
        let found = Arc::new(Mutex::new(Vec::<(String, SocketAddr)>::new()));
        let reader = {
            let found = Arc::clone(&found);
            pipe_lines(stderr, Arc::clone(&logs), move |line| {
                if let Some(listener) = listen_line(line) {
                    found.lock().unwrap().push(listener);
                }
            })
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            {
                let found = found.lock().unwrap();
                if names
                    .iter()
                    .all(|name| found.iter().any(|(n, _)| n == name))
                {
                    return Ok((child, found.clone(), logs));
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                let _ = reader.join();
                let text = logs.text.lock().unwrap().clone();
                return Err(format!("exited ({status}):\n{text}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let text = logs.text.lock().unwrap().clone();
                return Err(format!("no listen line within {START_TIMEOUT:?}:\n{text}"));
            }
            let guard = logs.text.lock().unwrap();
            let _ = logs.grew.wait_timeout(guard, Duration::from_millis(20));
        }
    }
}

/// Runs `fleetmq run --config fleetmq.toml` in `dir` and waits (bounded)
/// for it to exit: its exit status (None: still running at `timeout`, then
/// killed) and everything it wrote to stderr. For brokers that must refuse
/// to start.
pub fn run_broker_to_exit(dir: &Path, timeout: Duration) -> (Option<ExitStatus>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetmq"))
        .arg("run")
        .arg("--config")
        .arg(dir.join("fleetmq.toml"))
        .env_remove("FLEETMQ_TEST_BROKER")
        .env_remove("FLEETMQ_BIN")
        .env("NO_COLOR", "1")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn broker");
    let stderr = child.stderr.take().expect("stderr piped");
    let logs = Arc::new(LogBuffer::default());
    let reader = pipe_lines(stderr, Arc::clone(&logs), |_| {});
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let _ = reader.join();
    let text = logs.text.lock().unwrap().clone();
    (status, text)
}
