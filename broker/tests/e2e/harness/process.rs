//! The broker under test as a process: [`Broker`] starts fleetmq (or the
//! reference Mosquitto under `FLEETMQ_TEST_BROKER=mosquitto`) in a
//! temporary directory of its own, finds its listeners from the listen
//! lines it logs, keeps its stderr for assertions and kills it on drop.
//! Stopping and restarting over the same directory is in [`restart`].
//!
//! It does not speak MQTT: clients are [`super::RawClient`] and the TLS and
//! web helpers.

mod cluster_mode;
mod restart;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::*;

pub use cluster_mode::is_cluster;
pub use restart::{run_broker_to_exit, STOP_TIMEOUT};

/// How long a broker may take to open its listener.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Stderr of the broker process, appended by a reader thread.
#[derive(Default)]
pub(super) struct LogBuffer {
    pub(super) text: Mutex<String>,
    pub(super) grew: Condvar,
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
    /// Under `FLEETMQ_TEST_BROKER=cluster`, nodes b and c and NATS.
    peers: Option<Box<cluster_mode::Peers>>,
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
        // A test that sets up its own cluster gets one plain node.
        if is_cluster() && !extra_toml.contains("[cluster]") {
            return cluster_mode::start(extra_toml);
        }
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
            peers: None,
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

    /// The test listener's address; in cluster mode, each call gives the
    /// next node's.
    pub fn addr(&self) -> SocketAddr {
        match &self.peers {
            Some(peers) => peers.next_addr(self),
            None => self.addr,
        }
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

    /// Everything the broker wrote to stderr so far (in cluster mode,
    /// every node's, one after the other).
    pub fn logs(&self) -> String {
        let mut text = self.logs.text.lock().unwrap().clone();
        for node in self.peers.iter().flat_map(|peers| &peers.nodes) {
            text.push_str(&node.logs());
        }
        text
    }

    /// Waits until a log line contains `needle`; false after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        if self.peers.is_some() {
            while !self.logs().contains(needle) {
                if Instant::now() >= deadline {
                    return false;
                }
                thread::sleep(Duration::from_millis(50));
            }
            return true;
        }
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

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies `source` line by line into `logs` (lossily, as UTF-8: a tool may
/// print binary), calling `on_line` for each, on a thread of its own.
pub(super) fn pipe_lines(
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
