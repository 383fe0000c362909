//! Life as a service, against the real binary: sd_notify over a real unix
//! datagram socket (READY, WATCHDOG, STOPPING in order, exit code 0),
//! SIGHUP re-reading the configuration, journald-shaped logs, and the
//! systemd unit passing `systemd-analyze verify`.

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness;
use crate::harness::service::{fleetmq, workspace, Process, WAIT};

/// A test listener on a free port.
const CONFIG: &str =
    "[[listener]]\nname = \"test\"\nbind = \"127.0.0.1:0\"\n\n[mqtt]\nsys_interval_secs = 0\n";

/// Receives notifications on a thread, in order.
fn collect(socket: UnixDatagram) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = socket.recv(&mut buf) {
            if sender
                .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    receiver
}

/// The next notification containing `needle`; every one before it is
/// appended to `seen`.
fn expect_notification(receiver: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(message) => {
                let found = message.contains(needle);
                seen.push(message);
                if found {
                    return;
                }
            }
            Err(_) => panic!("no notification with {needle:?}; got {seen:?}"),
        }
    }
}

fn broker_with_notify(dir: &std::path::Path, notify: &str, extra_env: &[(&str, &str)]) -> Process {
    let config = dir.join("fleetmq.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut command = fleetmq();
    command
        .arg("run")
        .arg("--config")
        .arg(&config)
        .current_dir(dir)
        .env("NOTIFY_SOCKET", notify);
    for (name, value) in extra_env {
        command.env(name, value);
    }
    Process::spawn(command)
}

#[test]
fn ready_watchdog_and_stopping_reach_notify_socket_in_order_and_sigterm_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let receiver = collect(UnixDatagram::bind(&socket_path).unwrap());
    let mut broker = broker_with_notify(
        dir.path(),
        socket_path.to_str().unwrap(),
        &[("WATCHDOG_USEC", "200000")],
    );
    let mut seen = Vec::new();
    expect_notification(&receiver, "READY=1", &mut seen);
    let ready = seen.last().unwrap().clone();
    assert!(
        ready.contains("STATUS=Serving MQTT: test on 127.0.0.1:"),
        "{ready:?}"
    );
    // The listener is bound before READY=1 is sent: the status names the
    // address the kernel gave it (the log line saying so may reach this
    // test's log reader after the datagram, so it is waited for).
    let listeners = broker.listeners(1);
    assert_eq!(listeners.len(), 1);
    assert!(
        ready.contains(&listeners[0].1),
        "READY status {ready:?} does not name the bound address {:?}",
        listeners[0].1
    );
    // WATCHDOG_USEC = 200 ms: a ping every 100 ms.
    expect_notification(&receiver, "WATCHDOG=1", &mut seen);
    expect_notification(&receiver, "WATCHDOG=1", &mut seen);
    broker.signal("TERM");
    expect_notification(&receiver, "STOPPING=1", &mut seen);
    let status = broker.wait_exit();
    assert_eq!(status.code(), Some(0), "logs:\n{}", broker.logs());
    let position = |needle: &str| seen.iter().position(|m| m.contains(needle)).unwrap();
    assert!(position("READY=1") < position("WATCHDOG=1"));
    assert!(position("WATCHDOG=1") < position("STOPPING=1"));
    assert!(!seen
        .iter()
        .skip(position("STOPPING=1") + 1)
        .any(|m| m.contains("READY=1")));
    assert!(broker.logs().contains("systemd watchdog enabled"));
}

#[test]
fn abstract_notify_socket_and_sigint() {
    use std::os::linux::net::SocketAddrExt;
    let dir = tempfile::tempdir().unwrap();
    let name = format!("fleetmq-e2e-{}-{:?}", std::process::id(), Instant::now());
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let receiver = collect(UnixDatagram::bind_addr(&address).unwrap());
    let mut broker = broker_with_notify(dir.path(), &format!("@{name}"), &[]);
    let mut seen = Vec::new();
    expect_notification(&receiver, "READY=1", &mut seen);
    broker.signal("INT");
    expect_notification(&receiver, "STOPPING=1", &mut seen);
    assert_eq!(broker.wait_exit().code(), Some(0));
    assert!(
        !seen.iter().any(|m| m.contains("WATCHDOG=1")),
        "no WATCHDOG_USEC, no pings: {seen:?}"
    );
}

#[test]
fn sighup_rereads_the_configuration_and_names_what_needs_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let receiver = collect(UnixDatagram::bind(&socket_path).unwrap());
    let mut broker = broker_with_notify(dir.path(), socket_path.to_str().unwrap(), &[]);
    let mut seen = Vec::new();
    expect_notification(&receiver, "READY=1", &mut seen);

    let config = dir.path().join("fleetmq.toml");
    let changed = CONFIG.replace("127.0.0.1:0", "127.0.0.1:1") + "\n[limits]\nmax_inflight = 5\n";
    std::fs::write(&config, changed).unwrap();
    broker.signal("HUP");
    expect_notification(&receiver, "STATUS=Reloading", &mut seen);
    broker.expect_log(
        "listener[0].bind changed from \"127.0.0.1:0\" to \"127.0.0.1:1\"; this needs a restart",
    );
    broker.expect_log("limits.max_inflight changed from 20 to 5; this needs a restart");
    expect_notification(&receiver, "STATUS=Serving MQTT", &mut seen);

    // A broken file is reported and the running configuration stays.
    std::fs::write(&config, "[limits\n").unwrap();
    broker.signal("HUP");
    broker.expect_log("Reload: cannot use the configuration from");
    broker.expect_log("fleetmq.toml:1:");
    expect_notification(&receiver, "STATUS=Serving MQTT", &mut seen);
    let (_, addr) = &harness::service::opened_listeners(&broker.logs())[0];
    assert!(
        std::net::TcpStream::connect(addr.as_str()).is_ok(),
        "still serving"
    );

    broker.signal("TERM");
    assert_eq!(broker.wait_exit().code(), Some(0));
}

#[test]
fn a_second_sighup_compares_with_what_the_first_applied() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleetmq.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut command = fleetmq();
    command
        .arg("run")
        .arg("--config")
        .arg(&config)
        .current_dir(dir.path());
    let mut broker = Process::spawn(command);
    broker.listeners(1);
    let count = |broker: &Process, needle: &str| broker.logs().matches(needle).count();
    let wait_reloads = |broker: &Process, reloads: usize| {
        let deadline = Instant::now() + WAIT;
        while count(broker, "Reloaded password file and ACL rules.") < reloads {
            assert!(
                Instant::now() < deadline,
                "no reload {reloads}:\n{}",
                broker.logs()
            );
            thread::sleep(Duration::from_millis(20));
        }
    };

    // An ACL rule, applied live.
    let with_rule = format!("{CONFIG}\n[[acl]]\ntopic = \"lab/#\"\naccess = \"readwrite\"\n");
    std::fs::write(&config, &with_rule).unwrap();
    broker.signal("HUP");
    wait_reloads(&broker, 1);
    assert_eq!(
        count(&broker, "Configuration: acl[0] changed"),
        1,
        "{}",
        broker.logs()
    );

    // The same file again: nothing changed since the first reload.
    broker.signal("HUP");
    wait_reloads(&broker, 2);
    let logs = broker.logs();
    assert_eq!(
        count(&broker, "Configuration: acl[0] changed"),
        1,
        "the second reload reported the first one's change again:\n{logs}"
    );
    assert!(logs.contains("Configuration unchanged."), "{logs}");

    broker.signal("TERM");
    assert_eq!(broker.wait_exit().code(), Some(0));
}

/// Starts a broker whose stderr is a file, with `env`; returns its logs
/// once it listens.
fn logs_with_stderr_file(
    toml: &str,
    env: impl Fn(&std::fs::File) -> Vec<(String, String)>,
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleetmq.toml");
    std::fs::write(&config, toml).unwrap();
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut command = fleetmq();
    command
        .arg("run")
        .arg("--config")
        .arg(&config)
        .current_dir(dir.path());
    command.env_remove("RUST_LOG").env_remove("JOURNAL_STREAM");
    for (name, value) in env(&log) {
        command.env(name, value);
    }
    let mut child = command.stderr(log).spawn().unwrap();
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let text = std::fs::read_to_string(&log_path).unwrap();
        if text.contains("Opening listen socket") || Instant::now() > deadline {
            break text;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("Opening listen socket"), "{text}");
    text
}

#[test]
fn journald_lines_carry_a_priority_and_no_timestamp() {
    use std::os::unix::fs::MetadataExt;
    // JOURNAL_STREAM naming stderr itself: what systemd sets.
    let journald = logs_with_stderr_file(CONFIG, |file| {
        let metadata = file.metadata().unwrap();
        vec![(
            "JOURNAL_STREAM".into(),
            format!("{}:{}", metadata.dev(), metadata.ino()),
        )]
    });
    let line = journald
        .lines()
        .find(|l| l.contains("Opening listen socket"))
        .unwrap();
    assert!(line.starts_with("<6> INFO "), "{line:?}");
    assert!(!line.contains('\u{1b}'), "no ANSI colours: {line:?}");

    // Inherited from elsewhere: not this stderr, so timestamps stay.
    let full = logs_with_stderr_file(CONFIG, |_| vec![("JOURNAL_STREAM".into(), "1:1".into())]);
    let line = full
        .lines()
        .find(|l| l.contains("Opening listen socket"))
        .unwrap();
    assert!(
        line.as_bytes()[0].is_ascii_digit(),
        "timestamp first: {line:?}"
    );

    // Forced by the configuration.
    let forced =
        logs_with_stderr_file(&format!("{CONFIG}\n[log]\nformat = \"journald\"\n"), |_| {
            Vec::new()
        });
    assert!(forced.lines().all(|l| l.starts_with('<')), "{forced}");
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(workspace().join("config/fleetmq.service")).unwrap();
    for needed in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WatchdogSec=",
        "StateDirectory=fleetmq",
        "ConfigurationDirectory=fleetmq",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
    let probe = Command::new("systemd-analyze").arg("--version").output();
    if !probe.is_ok_and(|output| output.status.success()) {
        // Debian's `systemd` package provides it; run-tests.sh installs it.
        eprintln!("skipped: systemd-analyze cannot run here (install Debian's systemd package)");
        return;
    }
    // verify checks that ExecStart's binary exists: point it at this build.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleetmq.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/fleetmq", env!("CARGO_BIN_EXE_fleetmq")),
    )
    .unwrap();
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // verify exits 0 even for unknown keys, so its warnings are failures.
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("fleetmq.service"))
        .collect();
    assert!(
        output.status.success() && about_unit.is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}

/// What the Debian package ships besides the binary (packaging/build-deb.sh):
/// `--version` names the commit and build date; the packaging-only
/// `generate-cli-docs` writes a page per subcommand and three completions.
#[test]
fn version_names_the_commit_and_cli_docs_cover_the_subcommands() {
    let output = fleetmq().arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(output.status.success(), "{version}");
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(workspace())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let prefix = format!(
        "fleetmq {} (git {commit}, built ",
        env!("CARGO_PKG_VERSION")
    );
    let date = version
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("`fleetmq --version` says {version:?}, not {prefix}YYYY-MM-DD)"));
    let shape: String = date
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    assert_eq!(shape, "9999-99-99", "build date {date:?} is not YYYY-MM-DD");

    let dir = tempfile::tempdir().unwrap();
    let output = fleetmq()
        .arg("generate-cli-docs")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    for page in [
        "fleetmq.1",
        "fleetmq-run.1",
        "fleetmq-check-config.1",
        "fleetmq-migrate-mosquitto.1",
        "fleetmq-certs-init.1",
        "fleetmq-certs-revoke.1",
        "fleetmq-passwd.1",
        "fleetmq-acl-check.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join("man").join(page))
            .unwrap_or_else(|error| panic!("man/{page}: {error}"));
        assert!(text.contains(".TH"), "man/{page} is not a man page");
        assert!(text.contains(date), "man/{page} lacks the build date");
    }
    assert!(!dir.path().join("man/fleetmq-generate-cli-docs.1").exists());
    for completion in ["fleetmq.bash", "_fleetmq", "fleetmq.fish"] {
        let text =
            std::fs::read_to_string(dir.path().join("completions").join(completion)).unwrap();
        assert!(
            text.contains("check-config"),
            "{completion} lacks check-config"
        );
        assert!(
            !text.contains("generate-cli-docs"),
            "{completion} offers the hidden command"
        );
    }
}
