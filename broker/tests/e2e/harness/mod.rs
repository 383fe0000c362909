//! Shared harness for the end-to-end tests: start a broker process, and talk
//! to it byte by byte with [`RawClient`].
//!
//! Each test starts its own broker on a free port, so tests run in parallel.
//! With `FLEETMQ_TEST_BROKER=mosquitto` the harness starts the reference
//! Mosquitto instead, which proves a test asserts what the specification (and
//! the broker we replace) does; tests of fleetmq-only behaviour call
//! [`skip_on_mosquitto`] and return early there.
//!
//! TLS tests add listeners with [`Broker::start_with_listeners`] and find
//! them with [`Broker::addr_of`]; [`pki`] makes their certificates,
//! [`tls`] their clients (a [`RawClient`] works over TLS too) and [`tools`]
//! runs the external ones (openssl, mosquitto clients).
//!
//! Every wait is bounded: a test that hangs is a failing test.
#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub mod fleet;
pub mod hostile;
pub mod linger;
pub mod pki;
pub mod service;
pub mod store;
pub mod tls;
pub mod tools;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;

pub mod openssl_pki;
pub mod web;

pub use fleetmq::codec::{
    decode_packet, encode_packet, ConnAck, Disconnect, Packet, ProtocolVersion, PubResponse,
    Publish, QoS, ReasonCode,
};
pub use tls::Transport;

/// How long a broker may take to open its listener.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The default wait for a packet the broker must send.
pub const WAIT: Duration = Duration::from_secs(2);

/// The wait used to show that something does *not* happen.
pub const QUIET: Duration = Duration::from_millis(300);

/// True when the tests run against the reference Mosquitto.
pub fn is_mosquitto() -> bool {
    std::env::var("FLEETMQ_TEST_BROKER").is_ok_and(|v| v == "mosquitto")
}

/// Returns true (and says so) when a fleetmq-only test must not run against
/// Mosquitto. Use as `if skip_on_mosquitto("why") { return; }`.
pub fn skip_on_mosquitto(why: &str) -> bool {
    if is_mosquitto() {
        eprintln!("skipped against mosquitto: {why}");
    }
    is_mosquitto()
}

/// Stderr of the broker process, appended by a reader thread.
#[derive(Default)]
struct LogBuffer {
    text: Mutex<String>,
    grew: Condvar,
}

/// The prefix of the line a listener logs once its socket is bound:
/// `Opening listen socket on ADDR for listener "NAME" (KIND).`
const LISTEN_LINE: &str = "Opening listen socket on ";

/// The listener name and address of a listen line.
fn parse_listen_line(line: &str) -> Option<(String, SocketAddr)> {
    let rest = line.split(LISTEN_LINE).nth(1)?;
    let (addr, rest) = rest.split_once(' ')?;
    let name = rest.strip_prefix("for listener \"")?.split('"').next()?;
    Some((name.to_string(), addr.parse().ok()?))
}

/// A listener added to the harness's plain `test` listener.
#[derive(Debug, Clone)]
pub struct ListenerSpec {
    pub name: String,
    /// The body of its `[listener.tls]` table; None for plain TCP.
    pub tls_toml: Option<String>,
    /// `key = value` lines of the `[[listener]]` table itself (auth
    /// settings); None keeps the default, which admits anonymous clients
    /// on TLS listeners too.
    pub settings: Option<String>,
}

impl ListenerSpec {
    pub fn plain(name: &str) -> ListenerSpec {
        ListenerSpec {
            name: name.to_string(),
            tls_toml: None,
            settings: None,
        }
    }

    /// A TLS listener; `tls_toml` holds `key = value` lines of its
    /// `[listener.tls]` table (see `pki::Pki::listener_toml`).
    pub fn tls(name: &str, tls_toml: &str) -> ListenerSpec {
        ListenerSpec {
            name: name.to_string(),
            tls_toml: Some(tls_toml.to_string()),
            settings: None,
        }
    }

    /// The listener with these `[[listener]]` lines (e.g.
    /// `allow_anonymous = false` or `clientid_must_match_identity = true`)
    /// instead of the default `allow_anonymous = true` of TLS listeners:
    /// for tests of authentication, where the listener's own default
    /// (anonymous refused on TLS) is the point.
    pub fn with_settings(mut self, settings: &str) -> ListenerSpec {
        self.settings = Some(settings.to_string());
        self
    }

    fn toml(&self) -> String {
        let mut out = format!(
            "[[listener]]\nname = \"{}\"\nbind = \"127.0.0.1:0\"\n\n",
            self.name
        );
        match (&self.settings, &self.tls_toml) {
            (Some(settings), _) => out.push_str(&format!("{settings}\n\n")),
            // These listeners test the TLS layer: clients without a
            // certificate (one-way, optional) are admitted without a
            // password, which TLS listeners refuse by default.
            (None, Some(_)) => out.push_str("allow_anonymous = true\n\n"),
            (None, None) => {}
        }
        if let Some(tls) = &self.tls_toml {
            out.push_str(&format!("[listener.tls]\n{tls}\n"));
        }
        out
    }
}

/// A started process, its listeners and its log.
type Spawned = (Child, Vec<(String, SocketAddr)>, Arc<LogBuffer>);

/// A broker process owned by one test; killed on drop.
pub struct Broker {
    child: Child,
    addr: SocketAddr,
    /// Every listener's name and bound address, from the listen lines.
    listeners: Vec<(String, SocketAddr)>,
    logs: Arc<LogBuffer>,
    /// Holds the config file (and the broker's working files) alive.
    _dir: tempfile::TempDir,
    /// False once the process was stopped ([`Broker::sigterm`],
    /// [`Broker::kill9`]) and not restarted.
    running: bool,
}

impl Broker {
    /// A broker with the test listener and `$SYS` every second.
    pub fn start() -> Broker {
        Broker::start_with_conf("", "")
    }

    /// Like [`Broker::start`] with extra `fleetmq.toml` text appended.
    pub fn start_with(extra_toml: &str) -> Broker {
        Broker::start_with_conf(extra_toml, "")
    }

    /// Extra configuration for each broker: TOML for fleetmq and the
    /// equivalent `mosquitto.conf` lines for the reference run.
    pub fn start_with_conf(extra_toml: &str, extra_mosquitto_conf: &str) -> Broker {
        let dir = tempfile::tempdir().expect("tempdir");
        if is_mosquitto() {
            Broker::start_mosquitto(dir, extra_mosquitto_conf)
        } else {
            Broker::start_fleetmq(dir, extra_toml)
        }
    }

    /// A fleetmq broker with the `test` listener plus `listeners` (bound to
    /// 127.0.0.1:0; see [`Broker::addr_of`]) and `extra_toml` appended.
    /// There is no Mosquitto equivalent: callers skip on Mosquitto.
    pub fn start_with_listeners(listeners: &[ListenerSpec], extra_toml: &str) -> Broker {
        assert!(
            !is_mosquitto(),
            "extra listeners are fleetmq only; call skip_on_mosquitto first"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        Broker::start_fleetmq_with(dir, listeners, extra_toml)
    }

    fn start_fleetmq(dir: tempfile::TempDir, extra_toml: &str) -> Broker {
        Broker::start_fleetmq_with(dir, &[], extra_toml)
    }

    fn start_fleetmq_with(
        dir: tempfile::TempDir,
        listeners: &[ListenerSpec],
        extra_toml: &str,
    ) -> Broker {
        let config_path = dir.path().join("fleetmq.toml");
        // `[mqtt] sys_interval_secs = 1` unless the test says otherwise; a
        // TOML table may appear only once, so join an `[mqtt]` of the test's.
        let extra = if extra_toml.contains("sys_interval_secs") {
            extra_toml.to_string()
        } else if extra_toml.contains("[mqtt]\n") {
            extra_toml.replacen("[mqtt]\n", "[mqtt]\nsys_interval_secs = 1\n", 1)
        } else {
            format!("[mqtt]\nsys_interval_secs = 1\n\n{extra_toml}")
        };
        // The dashboard on a free port unless the test configures `[http]`
        // itself (tests run in parallel; 8080 would clash).
        let extra = if extra.contains("[http]") {
            extra
        } else {
            format!("{extra}\n[http]\nbind = \"127.0.0.1:0\"\n")
        };
        let mut toml = ListenerSpec::plain("test").toml();
        for listener in listeners {
            toml.push_str(&listener.toml());
        }
        toml.push_str(&extra);
        toml.push('\n');
        std::fs::write(&config_path, toml).expect("write config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_fleetmq"));
        command.arg("run").arg("--config").arg(&config_path);
        // The harness's own variables are no settings; fleetmq rejects
        // unknown FLEETMQ_* variables.
        command
            .env_remove("FLEETMQ_TEST_BROKER")
            .env_remove("FLEETMQ_BIN");
        let mut names = vec!["test".to_string()];
        names.extend(listeners.iter().map(|l| l.name.clone()));
        Broker::spawn(command, dir, LISTEN_LINE, &names, parse_listen_line)
    }

    fn start_mosquitto(dir: tempfile::TempDir, extra_conf: &str) -> Broker {
        let port = free_port();
        let config_path = dir.path().join("mosquitto.conf");
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nsys_interval 1\npersistence false\nlog_dest stderr\nlog_type all\n{extra_conf}\n"
        );
        std::fs::write(&config_path, conf).expect("write config");
        let mut command = Command::new("mosquitto");
        command.arg("-c").arg(&config_path);
        Broker::spawn(
            command,
            dir,
            "running",
            &["test".to_string()],
            move |line| {
                line.contains(" running")
                    .then(|| ("test".to_string(), SocketAddr::from(([127, 0, 0, 1], port))))
            },
        )
    }

    /// Starts `command` and waits until `listen_line` has given the address
    /// of every listener in `names`.
    fn spawn(
        command: Command,
        dir: tempfile::TempDir,
        what: &str,
        names: &[String],
        listen_line: impl Fn(&str) -> Option<(String, SocketAddr)> + Send + 'static,
    ) -> Broker {
        let (child, listeners, logs) =
            Broker::spawn_process(command, dir.path(), names, listen_line)
                .unwrap_or_else(|text| panic!("broker did not log `{what}`: {text}"));
        let addr = listeners
            .iter()
            .find(|(name, _)| name == "test")
            .map(|(_, addr)| *addr)
            .expect("test listener");
        if is_mosquitto() {
            // Mosquitto logs "running" just before it polls; make sure it accepts.
            let deadline = Instant::now() + START_TIMEOUT;
            while TcpStream::connect(addr).is_err() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
        }
        Broker {
            child,
            addr,
            listeners,
            logs,
            _dir: dir,
            running: true,
        }
    }

    /// The bound address of the listener called `name`.
    pub fn addr_of(&self, name: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, addr)| *addr)
            .unwrap_or_else(|| panic!("no listener {name:?}; have {:?}", self.listeners))
    }

    /// The configuration file the broker was started with (fleetmq only);
    /// rewrite it and call [`Broker::sighup`] to test reloads.
    pub fn config_path(&self) -> PathBuf {
        self._dir.path().join("fleetmq.toml")
    }

    /// Process id of the broker, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGHUP (reload TLS certificates).
    pub fn sighup(&self) {
        let status = Command::new("kill")
            .arg("-HUP")
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -HUP {} failed", self.pid());
    }

    /// How many log lines contain every one of `needles`.
    pub fn count_log_lines(&self, needles: &[&str]) -> usize {
        self.logs()
            .lines()
            .filter(|line| needles.iter().all(|n| line.contains(n)))
            .count()
    }

    /// Waits until at least `count` log lines contain every one of
    /// `needles`; returns how many there are (possibly fewer, on timeout).
    pub fn wait_for_log_lines(&self, needles: &[&str], count: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut text = self.logs.text.lock().unwrap();
        loop {
            let seen = text
                .lines()
                .filter(|line| needles.iter().all(|n| line.contains(n)))
                .count();
            let now = Instant::now();
            if seen >= count || now >= deadline {
                return seen;
            }
            text = self.logs.grew.wait_timeout(text, deadline - now).unwrap().0;
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address of the dashboard, from its log line
    /// `HTTP dashboard listening on http://ADDR/` (or https).
    pub fn http_addr(&self) -> SocketAddr {
        self.assert_log("HTTP dashboard listening on ", START_TIMEOUT);
        let logs = self.logs();
        logs.lines()
            .find_map(|line| {
                let rest = line.split("HTTP dashboard listening on ").nth(1)?;
                let rest = rest.split("://").nth(1)?;
                rest.split('/').next()?.parse().ok()
            })
            .unwrap_or_else(|| panic!("no dashboard address in the logs:\n{logs}"))
    }

    /// The bound address of the listener called `name`.
    pub fn listener_addr(&self, name: &str) -> SocketAddr {
        let needle = format!(" for listener \"{name}\"");
        self.assert_log(&needle, START_TIMEOUT);
        let logs = self.logs();
        logs.lines()
            .filter(|line| line.contains(&needle))
            .find_map(|line| {
                let rest = line.split("Opening listen socket on ").nth(1)?;
                rest.split(' ').next()?.parse().ok()
            })
            .unwrap_or_else(|| panic!("no address of listener {name} in the logs:\n{logs}"))
    }

    /// Everything the broker wrote to stderr so far.
    pub fn logs(&self) -> String {
        self.logs.text.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle`; false after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut text = self.logs.text.lock().unwrap();
        loop {
            if text.contains(needle) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            text = self.logs.grew.wait_timeout(text, deadline - now).unwrap().0;
        }
    }

    /// Like [`Broker::wait_for_log`] but panics with the logs.
    pub fn assert_log(&self, needle: &str, timeout: Duration) {
        assert!(
            self.wait_for_log(needle, timeout),
            "broker did not log {needle:?} within {timeout:?}; logs:\n{}",
            self.logs()
        );
    }
}

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
    fn spawn_process(
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

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies `source` line by line into `logs` (lossily, as UTF-8: a tool may
/// print binary), calling `on_line` for each, on a thread of its own.
fn pipe_lines(
    source: impl Read + Send + 'static,
    logs: Arc<LogBuffer>,
    on_line: impl Fn(&str) + Send + 'static,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = std::io::BufReader::new(source);
        let mut raw = Vec::new();
        while std::io::BufRead::read_until(&mut reader, b'\n', &mut raw).unwrap_or(0) > 0 {
            let line = String::from_utf8_lossy(&raw);
            on_line(&line);
            logs.text.lock().unwrap().push_str(&line);
            logs.grew.notify_all();
            raw.clear();
        }
        logs.grew.notify_all();
    })
}

/// A port free right now (for Mosquitto, which cannot bind port 0).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// What a connection did when the test expected the broker to close it.
#[derive(Debug)]
pub struct Closed {
    /// The packets that arrived before EOF (a DISCONNECT, typically).
    pub packets: Vec<Packet>,
}

impl Closed {
    /// The reason of the DISCONNECT sent before closing, if there was one.
    pub fn disconnect_reason(&self) -> Option<ReasonCode> {
        self.packets.iter().find_map(|p| match p {
            Packet::Disconnect(d) => Some(d.reason),
            _ => None,
        })
    }
}

/// A client that writes exactly the bytes a test gives it and decodes what
/// the broker sends with `fleetmq::codec`.
pub struct RawClient {
    stream: Transport,
    read_buf: BytesMut,
    /// Decides how incoming packets are decoded (properties or not).
    pub version: ProtocolVersion,
    /// Set once the broker closed the connection.
    eof: bool,
}

impl RawClient {
    /// Opens a TCP connection; sends nothing.
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect_timeout(&addr, WAIT).expect("tcp connect");
        stream.set_nodelay(true).expect("nodelay");
        RawClient::over(Transport::Tcp(stream))
    }

    /// A client over an established transport (e.g. [`tls::connect`]);
    /// sends nothing.
    pub fn over(stream: Transport) -> RawClient {
        RawClient {
            stream,
            read_buf: BytesMut::with_capacity(4096),
            version: ProtocolVersion::V3_1_1,
            eof: false,
        }
    }

    /// Connects with a 3.1.1 CONNECT and asserts CONNACK accepted.
    pub fn connect_v311(addr: SocketAddr, client_id: &str, clean: bool) -> (RawClient, ConnAck) {
        RawClient::connect_with(addr, ConnectBuilder::v311(client_id).clean(clean))
    }

    /// Connects with a 5.0 CONNECT and asserts CONNACK success.
    pub fn connect_v5(addr: SocketAddr, client_id: &str, clean: bool) -> (RawClient, ConnAck) {
        RawClient::connect_with(addr, ConnectBuilder::v5(client_id).clean(clean))
    }

    /// Connects with the given CONNECT and asserts CONNACK success.
    pub fn connect_with(addr: SocketAddr, connect: ConnectBuilder) -> (RawClient, ConnAck) {
        let mut client = RawClient::connect(addr);
        client.send_connect(&connect);
        let connack = client.expect_connack();
        assert_eq!(connack.reason, ReasonCode::SUCCESS, "CONNACK refused");
        (client, connack)
    }

    /// Sends a CONNECT and decodes what follows in its protocol version.
    pub fn send_connect(&mut self, connect: &ConnectBuilder) {
        self.version = match connect.level {
            5 => ProtocolVersion::V5,
            3 => ProtocolVersion::V3_1,
            _ => ProtocolVersion::V3_1_1,
        };
        self.send(&connect.build());
    }

    /// Writes raw bytes. A broker that already closed the socket may make
    /// this fail; that is ignored, the next read sees the close.
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Writes raw bytes and reports a failed write (the broker closed).
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Encodes a packet with `fleetmq::codec` and writes it.
    pub fn send_packet(&mut self, packet: &Packet, version: ProtocolVersion) {
        let mut buf = BytesMut::new();
        encode_packet(packet, version, &mut buf).expect("encode packet");
        self.send(&buf);
    }

    /// The next packet, or None on timeout or EOF.
    pub fn recv_packet(&mut self, timeout: Duration) -> Option<Packet> {
        let deadline = Instant::now() + timeout;
        loop {
            match decode_packet(&mut self.read_buf, Some(self.version), u32::MAX) {
                Ok(Some(packet)) => return Some(packet),
                Ok(None) => {}
                Err(error) => panic!(
                    "broker sent bytes that do not decode as {:?}: {error:?}",
                    self.version
                ),
            }
            if self.eof {
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            self.stream
                .tcp()
                .set_read_timeout(Some(deadline - now))
                .expect("timeout");
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.read_buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None
                }
                Err(_) => self.eof = true,
            }
        }
    }

    /// Exactly `n` raw bytes as the broker sent them (for asserting the wire
    /// form); fewer if the connection closes or `timeout` passes.
    pub fn recv_exact(&mut self, n: usize, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        while self.read_buf.len() < n && !self.eof {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            self.stream
                .tcp()
                .set_read_timeout(Some(deadline - now))
                .expect("timeout");
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(read) => self.read_buf.extend_from_slice(&chunk[..read]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(_) => self.eof = true,
            }
        }
        let take = n.min(self.read_buf.len());
        self.read_buf.split_to(take).to_vec()
    }

    /// The next packet; panics naming `what` when none arrives in [`WAIT`].
    pub fn expect_packet(&mut self, what: &str) -> Packet {
        match self.recv_packet(WAIT) {
            Some(packet) => packet,
            None => panic!(
                "expected {what} within {WAIT:?}, got nothing (closed: {})",
                self.eof
            ),
        }
    }

    pub fn expect_connack(&mut self) -> ConnAck {
        match self.expect_packet("CONNACK") {
            Packet::ConnAck(connack) => connack,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    pub fn expect_publish(&mut self) -> Publish {
        match self.expect_packet("PUBLISH") {
            Packet::Publish(publish) => publish,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// True when nothing arrives within `timeout` and the connection is open.
    pub fn expect_silence(&mut self, timeout: Duration) -> Result<(), Box<Packet>> {
        match self.recv_packet(timeout) {
            Some(packet) => Err(Box::new(packet)),
            None => Ok(()),
        }
    }

    /// Reads until the broker closes the connection (EOF or reset); Some
    /// with what arrived before, None if it is still open after `timeout`.
    pub fn wait_closed(&mut self, timeout: Duration) -> Option<Closed> {
        let deadline = Instant::now() + timeout;
        let mut packets = Vec::new();
        loop {
            let now = Instant::now();
            match self.recv_packet(deadline.saturating_duration_since(now)) {
                Some(packet) => packets.push(packet),
                None if self.eof => return Some(Closed { packets }),
                None => return None,
            }
        }
    }

    /// True when the broker closes the connection within `timeout`, possibly
    /// after sending a DISCONNECT (any packets before the close are dropped).
    pub fn expect_closed(&mut self, timeout: Duration) -> bool {
        self.wait_closed(timeout).is_some()
    }

    /// Asserts the broker closes the connection, and for 5.0 that it sends a
    /// DISCONNECT with `reason` first. Mosquitto often closes without the
    /// DISCONNECT (the spec says "MAY" there); against it only a DISCONNECT
    /// that does arrive must carry the right reason.
    pub fn expect_disconnect(&mut self, reason: ReasonCode) {
        let closed = self.wait_closed(WAIT).unwrap_or_else(|| {
            panic!("broker kept the connection open (expected close with {reason:?})")
        });
        if self.version.is_v5() {
            match closed.disconnect_reason() {
                Some(got) => assert_eq!(
                    got, reason,
                    "DISCONNECT reason; packets {:?}",
                    closed.packets
                ),
                None if is_mosquitto() => {}
                None => panic!(
                    "broker closed without DISCONNECT {reason:?}; packets before close: {:?}",
                    closed.packets
                ),
            }
        } else {
            assert!(
                closed
                    .packets
                    .iter()
                    .all(|p| !matches!(p, Packet::Disconnect(_))),
                "a 3.1.1 server never sends DISCONNECT: {:?}",
                closed.packets
            );
        }
    }

    /// Closes the TCP connection without DISCONNECT (a network drop).
    pub fn drop_connection(self) {
        let _ = self.stream.tcp().shutdown(Shutdown::Both);
    }

    pub fn is_closed(&self) -> bool {
        self.eof
    }

    /// The transport, e.g. to read what a TLS handshake negotiated.
    pub fn transport(&self) -> &Transport {
        &self.stream
    }

    /// Subscribes and returns the SUBACK reason codes.
    pub fn subscribe(&mut self, packet_id: u16, filter: &str, options: u8) -> Vec<ReasonCode> {
        let v5 = self.version.is_v5();
        self.send(&subscribe(packet_id, &[(filter, options)], v5, &[]));
        match self.expect_packet("SUBACK") {
            Packet::SubAck(suback) => {
                assert_eq!(suback.packet_id, packet_id, "SUBACK packet id");
                suback.reasons
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Publishes; for QoS 1 and 2 completes the handshake and returns the
    /// PUBACK/PUBREC reason.
    pub fn publish(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> ReasonCode {
        let v5 = self.version.is_v5();
        let packet_id = 77;
        self.send(&publish(
            topic,
            payload,
            qos,
            retain,
            false,
            Some(packet_id),
            v5,
            &[],
        ));
        match qos {
            0 => ReasonCode::SUCCESS,
            1 => match self.expect_packet("PUBACK") {
                Packet::PubAck(ack) if ack.packet_id == packet_id => ack.reason,
                other => panic!("expected PUBACK {packet_id}, got {other:?}"),
            },
            _ => {
                let reason = match self.expect_packet("PUBREC") {
                    Packet::PubRec(rec) if rec.packet_id == packet_id => rec.reason,
                    other => panic!("expected PUBREC {packet_id}, got {other:?}"),
                };
                self.send_packet(
                    &Packet::PubRel(PubResponse::success(packet_id)),
                    self.version,
                );
                match self.expect_packet("PUBCOMP") {
                    Packet::PubComp(comp) if comp.packet_id == packet_id => {}
                    other => panic!("expected PUBCOMP {packet_id}, got {other:?}"),
                }
                reason
            }
        }
    }

    /// Sends PINGREQ and asserts PINGRESP: the connection is alive.
    pub fn ping(&mut self) {
        self.send(&[0xC0, 0x00]);
        match self.expect_packet("PINGRESP") {
            Packet::PingResp => {}
            other => panic!("expected PINGRESP, got {other:?}"),
        }
    }

    /// Waits for a PUBLISH, skipping `$SYS` ones.
    pub fn expect_app_publish(&mut self) -> Publish {
        loop {
            let publish = self.expect_publish();
            if !publish.topic.starts_with("$SYS") {
                return publish;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Byte builders. Tests build client packets by hand so that malformed and
// unusual packets are exactly what they look like, independent of the
// broker's own encoder.
// ---------------------------------------------------------------------------

/// Appends a variable byte integer.
pub fn varint(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            break;
        }
    }
}

/// Appends a length-prefixed UTF-8 string (or any bytes).
pub fn string(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
}

/// A whole packet: first byte, remaining length, body.
pub fn packet(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    varint(&mut out, body.len() as u32);
    out.extend_from_slice(body);
    out
}

/// 5.0 property encoders (identifier then value).
pub mod prop {
    pub fn byte(id: u8, value: u8) -> Vec<u8> {
        vec![id, value]
    }
    pub fn u16(id: u8, value: u16) -> Vec<u8> {
        let mut out = vec![id];
        out.extend_from_slice(&value.to_be_bytes());
        out
    }
    pub fn u32(id: u8, value: u32) -> Vec<u8> {
        let mut out = vec![id];
        out.extend_from_slice(&value.to_be_bytes());
        out
    }
    pub fn varint(id: u8, value: u32) -> Vec<u8> {
        let mut out = vec![id];
        super::varint(&mut out, value);
        out
    }
    pub fn string(id: u8, value: &str) -> Vec<u8> {
        let mut out = vec![id];
        super::string(&mut out, value.as_bytes());
        out
    }

    pub const PAYLOAD_FORMAT: u8 = 0x01;
    pub const MESSAGE_EXPIRY: u8 = 0x02;
    pub const SUBSCRIPTION_ID: u8 = 0x0B;
    pub const SESSION_EXPIRY: u8 = 0x11;
    pub const WILL_DELAY: u8 = 0x18;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
}

/// Appends a 5.0 property block (length then properties).
fn properties(out: &mut Vec<u8>, props: &[u8]) {
    varint(out, props.len() as u32);
    out.extend_from_slice(props);
}

/// The will of a [`ConnectBuilder`]: (topic, payload, qos, retain, raw 5.0
/// will properties).
pub type WillSpec = (String, Vec<u8>, u8, bool, Vec<u8>);

/// Builds CONNECT bytes for 3.1.1 or 5.0.
#[derive(Clone, Debug)]
pub struct ConnectBuilder {
    pub protocol_name: Vec<u8>,
    pub level: u8,
    pub client_id: String,
    pub clean: bool,
    pub keep_alive: u16,
    /// Raw 5.0 CONNECT properties.
    pub properties: Vec<u8>,
    pub will: Option<WillSpec>,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    /// ORed into the connect flags byte (to set the reserved bit).
    pub extra_flags: u8,
}

impl ConnectBuilder {
    pub fn v311(client_id: &str) -> ConnectBuilder {
        ConnectBuilder {
            protocol_name: b"MQTT".to_vec(),
            level: 4,
            client_id: client_id.to_string(),
            clean: true,
            keep_alive: 60,
            properties: Vec::new(),
            will: None,
            username: None,
            password: None,
            extra_flags: 0,
        }
    }

    pub fn v5(client_id: &str) -> ConnectBuilder {
        ConnectBuilder {
            level: 5,
            ..ConnectBuilder::v311(client_id)
        }
    }

    pub fn clean(mut self, clean: bool) -> Self {
        self.clean = clean;
        self
    }

    pub fn keep_alive(mut self, seconds: u16) -> Self {
        self.keep_alive = seconds;
        self
    }

    pub fn property(mut self, bytes: Vec<u8>) -> Self {
        self.properties.extend_from_slice(&bytes);
        self
    }

    pub fn will(mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> Self {
        self.will = Some((topic.to_string(), payload.to_vec(), qos, retain, Vec::new()));
        self
    }

    pub fn will_property(mut self, bytes: Vec<u8>) -> Self {
        if let Some(will) = self.will.as_mut() {
            will.4.extend_from_slice(&bytes);
        }
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let v5 = self.level == 5;
        let mut body = Vec::new();
        string(&mut body, &self.protocol_name);
        body.push(self.level);
        let mut flags = self.extra_flags;
        if self.clean {
            flags |= 0x02;
        }
        if let Some((_, _, qos, retain, _)) = &self.will {
            flags |= 0x04 | (qos << 3);
            if *retain {
                flags |= 0x20;
            }
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        if self.username.is_some() {
            flags |= 0x80;
        }
        body.push(flags);
        body.extend_from_slice(&self.keep_alive.to_be_bytes());
        if v5 {
            properties(&mut body, &self.properties);
        }
        string(&mut body, self.client_id.as_bytes());
        if let Some((topic, payload, _, _, will_props)) = &self.will {
            if v5 {
                properties(&mut body, will_props);
            }
            string(&mut body, topic.as_bytes());
            string(&mut body, payload);
        }
        if let Some(username) = &self.username {
            string(&mut body, username.as_bytes());
        }
        if let Some(password) = &self.password {
            string(&mut body, password);
        }
        packet(0x10, &body)
    }
}

/// PUBLISH bytes. `packet_id` is written only for QoS > 0; `props` are raw
/// 5.0 properties (ignored for 3.1.1).
#[allow(clippy::too_many_arguments)]
pub fn publish(
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
    dup: bool,
    packet_id: Option<u16>,
    v5: bool,
    props: &[u8],
) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, topic.as_bytes());
    if qos > 0 {
        body.extend_from_slice(&packet_id.unwrap_or(1).to_be_bytes());
    }
    if v5 {
        properties(&mut body, props);
    }
    body.extend_from_slice(payload);
    let first = 0x30 | (u8::from(dup) << 3) | (qos << 1) | u8::from(retain);
    packet(first, &body)
}

/// SUBSCRIBE bytes: (filter, options byte) pairs; `props` raw 5.0 properties.
pub fn subscribe(packet_id: u16, filters: &[(&str, u8)], v5: bool, props: &[u8]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    if v5 {
        properties(&mut body, props);
    }
    for (filter, options) in filters {
        string(&mut body, filter.as_bytes());
        body.push(*options);
    }
    packet(0x82, &body)
}

/// UNSUBSCRIBE bytes.
pub fn unsubscribe(packet_id: u16, filters: &[&str], v5: bool) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    if v5 {
        properties(&mut body, &[]);
    }
    for filter in filters {
        string(&mut body, filter.as_bytes());
    }
    packet(0xA2, &body)
}

/// PUBACK/PUBREC/PUBREL/PUBCOMP bytes (first byte given, e.g. 0x62 for PUBREL).
pub fn ack(first_byte: u8, packet_id: u16) -> Vec<u8> {
    packet(first_byte, &packet_id.to_be_bytes())
}

/// DISCONNECT bytes; `reason` None gives the 3.1.1 form.
pub fn disconnect(reason: Option<u8>) -> Vec<u8> {
    match reason {
        None => vec![0xE0, 0x00],
        Some(code) => vec![0xE0, 0x02, code, 0x00],
    }
}

/// Unique-enough client ids and topics per test (tests share no broker, but
/// names make logs readable).
pub fn topic(test: &str, suffix: &str) -> String {
    format!("fleetmq-test/{test}/{suffix}")
}
