//! Shared by the service and Mosquitto-migration end-to-end tests: a
//! broker process with its logs, signals, exit status, the listeners it
//! opened, and a test PKI made with the openssl CLI.
//!
//! Every wait is bounded: a test that hangs is a failing test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::pki::openssl::Openssl;
use super::process::{pipe_lines, LogBuffer};

/// How long a broker may take to start or stop.
pub const WAIT: Duration = Duration::from_secs(10);

/// The built broker.
pub fn fleetmq() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fleetmq"))
}

/// The workspace root (golden files are named relative to it).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A port free right now.
/// A port that is free on every address now, outside the kernel's
/// ephemeral range (which other tests' client sockets draw from), and never
/// handed out twice by this process: Mosquitto configurations name fixed
/// ports, so the broker under test binds it a moment later.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::OnceLock;
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(|| Mutex::new(HashSet::new()));
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
    for attempt in 0..2000u64 {
        let port = 20_000
            + ((seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(attempt * 7919))
                % 12_000) as u16;
        let mut taken = given.lock().unwrap();
        if taken.contains(&port) {
            continue;
        }
        if TcpListener::bind(("0.0.0.0", port)).is_ok() {
            taken.insert(port);
            return port;
        }
    }
    panic!("no free port found in 20000..32000");
}

/// A running broker; killed on drop unless it already exited.
pub struct Process {
    child: Child,
    logs: Arc<LogBuffer>,
}

impl Process {
    /// Starts `command` with stderr captured (stdout discarded).
    pub fn spawn(mut command: Command) -> Process {
        command
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn fleetmq");
        let logs = Arc::new(LogBuffer::default());
        if let Some(stderr) = child.stderr.take() {
            pipe_lines(stderr, Arc::clone(&logs), |_| {});
        }
        Process { child, logs }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        self.logs.text.lock().unwrap().clone()
    }

    /// Waits until the logs contain `needle`; panics with the logs if not.
    pub fn expect_log(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        let mut text = self.logs.text.lock().unwrap();
        while !text.contains(needle) {
            let now = Instant::now();
            if now >= deadline {
                panic!("broker did not log {needle:?} within {WAIT:?}; logs:\n{text}");
            }
            text = self.logs.grew.wait_timeout(text, deadline - now).unwrap().0;
        }
    }

    /// Waits until `count` listeners are open; their (name, address).
    pub fn listeners(&self, count: usize) -> Vec<(String, String)> {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = opened_listeners(&self.logs());
            if found.len() >= count {
                return found;
            }
            if Instant::now() >= deadline {
                panic!("expected {count} listeners; logs:\n{}", self.logs());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal with kill(1): "TERM", "INT", "HUP".
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "broker did not exit within {WAIT:?}; logs:\n{}",
                    self.logs()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (name, address) of each `Opening listen socket on ADDR for listener "NAME"` line.
pub fn opened_listeners(logs: &str) -> Vec<(String, String)> {
    let marker = "Opening listen socket on ";
    logs.lines()
        .filter_map(|line| {
            let rest = line.split(marker).nth(1)?;
            let (addr, rest) = rest.split_once(" for listener \"")?;
            let (name, _) = rest.split_once('"')?;
            Some((name.to_string(), addr.to_string()))
        })
        .collect()
}

/// Runs a command to completion, panicking with its output on failure.
pub fn run_ok(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A CA, a server certificate for 127.0.0.1/localhost and a client
/// certificate (`client.crt`, CN=esp32_807A98), made with the openssl CLI
/// ([`super::pki::openssl`]), valid for two days.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn generate(dir: &Path) -> Pki {
        let openssl = Openssl::in_dir(dir);
        openssl
            .ca("ca", "/CN=fleetmq test CA")
            .ca_extensions()
            .days(2)
            .create();
        openssl
            .cert("server", "/CN=localhost")
            .days(2)
            .extensions("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
            .create();
        openssl
            .cert("client", "/CN=esp32_807A98/OU=sensors")
            .days(2)
            .extensions("extendedKeyUsage=clientAuth\n")
            .create();
        Pki {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}
