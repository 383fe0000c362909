//! Mosquitto's dynamic security (issue 18) end to end: the real `fleetmq`
//! under `--mosquitto-conf` with `plugin .../mosquitto_dynamic_security.so`
//! and `plugin_opt_config_file`, a `dynamic-security.json` written by
//! Debian's `mosquitto_ctrl dynsec init`, driven by `mosquitto_ctrl` and by
//! raw JSON commands; and the same commands against Debian's Mosquitto
//! 2.0.11 with its plugin, whose answers and decisions fleetmq must match.
//!
//! These tests start both brokers themselves (the differential needs both
//! in one test), so under `FLEETMQ_TEST_BROKER=mosquitto` they run as they
//! are. Each skips, saying so, where Debian's tools are missing.

mod acl_check;
mod bad_input;
mod certificates;
mod ctrl;
mod dashboard;
mod differential;
mod recheck;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::fleet::have_tool;
use crate::harness::service::{fleetmq, free_port, Process};
use crate::harness::{ConnAck, ConnectBuilder, Packet, RawClient, ReasonCode, WAIT};

/// Debian's plugin.
pub const PLUGIN: &str = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";
pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "adminpass";
const CONTROL: &str = "$CONTROL/dynamic-security/v1";
const RESPONSE: &str = "$CONTROL/dynamic-security/v1/response";

/// Which broker runs the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Fleetmq,
    Mosquitto,
}

/// True (and says why) when Debian's Mosquitto, its plugin or
/// `mosquitto_ctrl` is missing.
pub fn missing_tools() -> bool {
    if !Path::new(PLUGIN).exists() {
        eprintln!("skipped: {PLUGIN} is not installed (apt-get install mosquitto)");
        return true;
    }
    !(have_tool("mosquitto_ctrl", "dynsec init") && have_tool("mosquitto", "reference broker"))
}

/// `mosquitto_ctrl dynsec init FILE admin adminpass`: the file a lab has.
pub fn init_file(dir: &Path) -> PathBuf {
    let file = dir.join("dynamic-security.json");
    let output = Command::new("mosquitto_ctrl")
        .args(["dynsec", "init"])
        .arg(&file)
        .args([ADMIN, ADMIN_PASSWORD])
        .output()
        .expect("run mosquitto_ctrl");
    assert!(
        output.status.success() && file.exists(),
        "mosquitto_ctrl dynsec init failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    file
}

/// A broker started from a mosquitto.conf naming the dynsec plugin.
pub struct DynsecBroker {
    /// Killed on drop.
    _process: Process,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl DynsecBroker {
    /// Starts `kind` on a fresh `mosquitto_ctrl dynsec init` file.
    pub fn start(kind: Kind, allow_anonymous: bool) -> DynsecBroker {
        let dir = tempfile::tempdir().unwrap();
        let file = init_file(dir.path());
        DynsecBroker::start_on(kind, allow_anonymous, dir, file)
    }

    /// Starts `kind` on `file` (kept in `dir`).
    pub fn start_on(
        kind: Kind,
        allow_anonymous: bool,
        dir: tempfile::TempDir,
        file: PathBuf,
    ) -> DynsecBroker {
        DynsecBroker::start_with(kind, allow_anonymous, dir, file, "")
    }

    /// Starts `kind` on `file` (kept in `dir`), with `extra` lines (more
    /// listeners) at the end of its mosquitto.conf.
    pub fn start_with(
        kind: Kind,
        allow_anonymous: bool,
        dir: tempfile::TempDir,
        file: PathBuf,
        extra: &str,
    ) -> DynsecBroker {
        let port = free_port();
        // Mosquitto started as root drops to its own user, which could
        // neither read nor save the file in the test's directory.
        let user = if kind == Kind::Mosquitto {
            "user root\n"
        } else {
            ""
        };
        let conf = format!(
            "{user}log_dest stderr\nlistener {port} 127.0.0.1\nallow_anonymous {allow_anonymous}\n\
             plugin {PLUGIN}\nplugin_opt_config_file {}\n{extra}",
            file.display()
        );
        let path = dir.path().join("mosquitto.conf");
        std::fs::write(&path, conf).unwrap();
        let mut command = match kind {
            Kind::Mosquitto => {
                let mut command = Command::new("mosquitto");
                command.arg("-c").arg(&path);
                command
            }
            Kind::Fleetmq => {
                let mut command = fleetmq();
                command.arg("run").arg("--mosquitto-conf").arg(&path);
                command
            }
        };
        command.current_dir(dir.path());
        let process = Process::spawn(command);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{kind:?} did not listen on {port}; logs:\n{}",
                process.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        DynsecBroker {
            _process: process,
            port,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// Connects with MQTT 5.0; returns the client and its CONNACK.
    pub fn connect(&self, client_id: &str, user: Option<(&str, &str)>) -> (RawClient, ConnAck) {
        let mut connect = ConnectBuilder::v5(client_id);
        if let Some((name, password)) = user {
            connect.username = Some(name.into());
            connect.password = Some(password.as_bytes().to_vec());
        }
        // Not `RawClient::connect_with`: a refusal is an answer here.
        let mut client = RawClient::connect(self.addr());
        client.send_connect(&connect);
        let connack = client.expect_connack();
        (client, connack)
    }

    /// The admin, subscribed to the response topic.
    pub fn admin(&self) -> Admin {
        let (mut client, connack) = self.connect("dynsec-admin", Some((ADMIN, ADMIN_PASSWORD)));
        assert_eq!(connack.reason, ReasonCode::SUCCESS, "admin refused");
        let granted = client.subscribe(1, RESPONSE, 1);
        assert_eq!(granted, vec![ReasonCode(1)], "admin may not subscribe");
        Admin { client }
    }
}

/// A client sending dynsec commands.
pub struct Admin {
    pub client: RawClient,
}

impl Admin {
    /// Sends `payload` on the control topic; returns the PUBACK reason.
    pub fn send_raw(&mut self, payload: &[u8]) -> ReasonCode {
        self.client.publish(CONTROL, payload, 1, false)
    }

    /// Waits for the next response; `None` after `timeout`.
    pub fn response(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.client.recv_packet(deadline - Instant::now()) {
                Some(Packet::Publish(publish)) if &*publish.topic == RESPONSE => {
                    return Some(serde_json::from_slice(&publish.payload).expect("response JSON"));
                }
                Some(_) => continue,
                None => return None,
            }
        }
        None
    }

    /// Sends one command; returns its response (the `responses[0]`).
    pub fn command(&mut self, command: Value) -> Value {
        let payload = json!({ "commands": [command] }).to_string();
        let reason = self.send_raw(payload.as_bytes());
        assert!(!reason.is_error(), "control publish refused: {reason:?}");
        let response = self.response(WAIT).expect("a response");
        response["responses"][0].clone()
    }
}
