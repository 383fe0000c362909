//! Mosquitto migration, end to end.
//!
//! Golden files: each folder of `config/mosquitto-examples/` holds a
//! real-world `mosquitto.conf`, the `fleetmq.toml` that
//! `fleetmq migrate mosquitto` must print for it, and the `warnings.txt` it
//! must print on stderr. `UPDATE_GOLDEN=1 cargo nextest run --test
//! mosquitto_migration` rewrites them; review the diff.
//!
//! Then `fleetmq run --mosquitto-conf` runs the same files (loopback
//! addresses, free ports, certificates made with openssl) and
//! `mosquitto_pub`/`mosquitto_sub` connect to them.
mod v1_certificates;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::harness;
use crate::harness::service::{fleetmq, free_port, run_ok, workspace, Pki, Process};

const EXAMPLES: &[&str] = &[
    "lab-mutual-tls",
    "one-way-default-listener",
    "per-listener-auth",
    "unsupported",
];

#[test]
fn examples_migrate_to_their_golden_toml_and_warnings() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let root = workspace();
    for example in EXAMPLES {
        let folder = Path::new("config/mosquitto-examples").join(example);
        let conf = folder.join("mosquitto.conf");
        let output = fleetmq()
            .args(["migrate", "mosquitto"])
            .arg(&conf)
            .current_dir(&root)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let toml = String::from_utf8(output.stdout).unwrap();
        let warnings = String::from_utf8(output.stderr).unwrap();
        let toml_path = root.join(&folder).join("fleetmq.toml");
        let warnings_path = root.join(&folder).join("warnings.txt");
        if update {
            std::fs::write(&toml_path, &toml).unwrap();
            std::fs::write(&warnings_path, &warnings).unwrap();
        }
        assert_eq!(
            toml,
            std::fs::read_to_string(&toml_path).unwrap(),
            "{example}: stdout differs from fleetmq.toml"
        );
        assert_eq!(
            warnings,
            std::fs::read_to_string(&warnings_path).unwrap(),
            "{example}: stderr differs from warnings.txt"
        );
        for line in warnings.lines() {
            let mut parts = line.splitn(4, ": ");
            let location = parts.next().unwrap();
            assert!(
                location.starts_with(&*conf.to_string_lossy())
                    && location
                        .rsplit(':')
                        .next()
                        .unwrap()
                        .parse::<usize>()
                        .is_ok(),
                "{line:?} is not FILE:LINE: directive: why"
            );
            assert!(parts.next().is_some() && parts.next().is_some(), "{line:?}");
        }

        // The printed TOML is the translated configuration, exactly.
        let translated = fleetmq::mosquitto::translate_file(&root.join(&conf)).unwrap();
        let loaded = fleetmq_core::config::load_from_str(&toml, "fleetmq.toml").unwrap();
        assert_eq!(
            loaded, translated.config,
            "{example}: the TOML does not load back"
        );

        // check-config accepts both the Mosquitto file and the migrated
        // one, except for the files they name under /etc (certificates,
        // password and ACL files), which check-config reads as `run` does
        // and which are not on this machine.
        for file in [root.join(&conf), toml_path.clone()] {
            let checked = fleetmq().arg("check-config").arg(&file).output().unwrap();
            let stdout = String::from_utf8_lossy(&checked.stdout);
            let stderr = String::from_utf8_lossy(&checked.stderr);
            assert!(
                (checked.status.success() && stdout.contains("configuration OK"))
                    || (checked.status.code() == Some(1)
                        && stderr.contains(": cannot read /etc/")
                        && stderr.contains("`fleetmq run` would not start")),
                "{example}: {}: {stdout}{stderr}",
                file.display()
            );
        }
    }
}

#[test]
fn the_lab_example_needs_only_its_syslog_note() {
    let warnings = std::fs::read_to_string(
        workspace().join("config/mosquitto-examples/lab-mutual-tls/warnings.txt"),
    )
    .unwrap();
    assert_eq!(warnings.lines().count(), 1, "{warnings}");
    assert!(warnings.contains(":4: log_dest: "));
}

#[test]
fn check_config_reads_mosquitto_by_flag_or_content_and_names_problems() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("broker-config");
    std::fs::write(&plain, "listener 1883 127.0.0.1\nallow_anonymous true\n").unwrap();
    let output = run_ok(fleetmq().arg("check-config").arg(&plain));
    assert!(String::from_utf8_lossy(&output.stdout).contains("Mosquitto configuration OK"));

    let bad = dir.path().join("bad");
    std::fs::write(&bad, "listener 1883\nrequire_certificate maybe\n").unwrap();
    let output = fleetmq()
        .args(["check-config", "--mosquitto"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:2: require_certificate: \"maybe\" is not a boolean",
            bad.display()
        )),
        "{stderr}"
    );

    let output = fleetmq()
        .args(["migrate", "mosquitto", "/nonexistent/mosquitto.conf"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr)
        .contains("/nonexistent/mosquitto.conf: cannot read"));
}

/// An example rewritten for this machine: loopback addresses, free ports,
/// the test PKI, password and ACL files in `dir`.
struct Localized {
    path: std::path::PathBuf,
    /// Port in the example -> port used.
    ports: HashMap<u16, u16>,
}

fn localize(example: &str, dir: &Path, pki: &Pki) -> Localized {
    let text = std::fs::read_to_string(
        workspace()
            .join("config/mosquitto-examples")
            .join(example)
            .join("mosquitto.conf"),
    )
    .unwrap();
    let certs = format!("{}/", pki.dir.display());
    let text = text
        .replace("192.168.5.1", "127.0.0.1")
        .replace("/etc/mosquitto/certs/", &certs)
        .replace("/etc/mosquitto/ca_certificates/", &certs)
        .replace(
            "/etc/mosquitto/passwd",
            &dir.join("passwd").display().to_string(),
        )
        .replace("/etc/mosquitto/acl", &dir.join("acl").display().to_string())
        .replace("/var/lib/mosquitto/", &format!("{}/data/", dir.display()))
        .replace("/var/log/mosquitto/", &format!("{}/", dir.display()))
        .replace("/var/run/", &format!("{}/", dir.display()))
        .replace("/run/mosquitto/", &format!("{}/", dir.display()));
    let mut ports = HashMap::new();
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let mut words: Vec<String> = line.split(' ').map(String::from).collect();
            if matches!(words[0].as_str(), "listener" | "port") && words.len() > 1 {
                let original: u16 = words[1].parse().unwrap();
                let port = free_port();
                ports.insert(original, port);
                words[1] = port.to_string();
            }
            words.join(" ")
        })
        .collect();
    let path = dir.join("mosquitto.conf");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    std::fs::write(dir.join("acl"), "topic read $SYS/#\n\nuser operator\ntopic readwrite lab/#\n\npattern readwrite devices/%u/#\n").unwrap();
    Localized { path, ports }
}

fn run_mosquitto_conf(path: &Path, dir: &Path) -> Process {
    let mut command = fleetmq();
    command
        .arg("run")
        .arg("--mosquitto-conf")
        .arg(path)
        .current_dir(dir);
    Process::spawn(command)
}

/// Publishes a retained message, then subscribes and expects it.
fn publish_and_receive(port: u16, client_args: &[String], topic: &str, message: &str) {
    let common = |tool: &str, id: &str| {
        let mut command = Command::new(tool);
        command
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                topic,
                "-i",
                id,
            ])
            .args(client_args);
        command
    };
    run_ok(common("mosquitto_pub", "fleetmq-test-pub").args(["-m", message, "-r", "-q", "1"]));
    let output = run_ok(common("mosquitto_sub", "fleetmq-test-sub").args(["-C", "1", "-W", "10"]));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), message);
}

fn tls_args(pki: &Pki, client_cert: bool) -> Vec<String> {
    let mut args = vec!["--cafile".to_string(), pki.path("ca.crt")];
    if client_cert {
        args.extend([
            "--cert".into(),
            pki.path("client.crt"),
            "--key".into(),
            pki.path("client.key"),
        ]);
    }
    args
}

fn add_user(dir: &Path) -> Vec<String> {
    let passwd = dir.join("passwd");
    run_ok(
        Command::new("mosquitto_passwd")
            .arg("-c")
            .arg("-b")
            .arg(&passwd)
            .args(["operator", "s3cret"]),
    );
    vec!["-u".into(), "operator".into(), "-P".into(), "s3cret".into()]
}

#[test]
fn lab_config_runs_unchanged_with_mutual_tls_devices() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("certs"));
    let conf = localize("lab-mutual-tls", dir.path(), &pki);
    let mut broker = run_mosquitto_conf(&conf.path, dir.path());
    let port = conf.ports[&8883];
    assert_eq!(
        broker.listeners(1),
        vec![(format!("mqtt-{port}"), format!("127.0.0.1:{port}"))]
    );
    broker.expect_log("Not carried over: ");
    // What an ESP32 of the lab does on connect.
    publish_and_receive(
        port,
        &tls_args(&pki, true),
        "/this/test/esp32_807A98",
        "CONNECTED!",
    );
    // Mutual TLS: no client certificate, no connection.
    let output = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "x",
            "-m",
            "x",
        ])
        .args(tls_args(&pki, false))
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "connected without a client certificate"
    );
    broker.signal("TERM");
    assert_eq!(broker.wait_exit().code(), Some(0));
}

#[test]
fn per_listener_config_runs_with_passwords_identities_and_anonymous_local_clients() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("certs"));
    let conf = localize("per-listener-auth", dir.path(), &pki);
    let user = add_user(dir.path());
    let broker = run_mosquitto_conf(&conf.path, dir.path());
    assert_eq!(broker.listeners(3).len(), 3);
    // Local tools, anonymous, plain TCP.
    run_ok(Command::new("mosquitto_pub").args([
        "-h",
        "127.0.0.1",
        "-p",
        &conf.ports[&1883].to_string(),
        "-t",
        "lab/anon",
        "-m",
        "hi",
    ]));
    // People: one-way TLS and a password.
    let mut args = tls_args(&pki, false);
    args.extend(user);
    publish_and_receive(conf.ports[&8883], &args, "lab/status", "from operator");
    // Devices: mutual TLS, certificate CN as username (ACL %u).
    publish_and_receive(
        conf.ports[&8884],
        &tls_args(&pki, true),
        "devices/esp32_807A98/status",
        "online",
    );
}

#[test]
fn default_listener_config_runs_one_way_tls_with_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("certs"));
    let conf = localize("one-way-default-listener", dir.path(), &pki);
    let mut args = tls_args(&pki, false);
    args.extend(add_user(dir.path()));
    let broker = run_mosquitto_conf(&conf.path, dir.path());
    let port = conf.ports[&8883];
    assert_eq!(broker.listeners(1)[0].1, format!("127.0.0.1:{port}"));
    publish_and_receive(port, &args, "lab/status", "one-way");
}

#[test]
fn config_with_unsupported_directives_runs_what_it_can_and_logs_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("certs"));
    let conf = localize("unsupported", dir.path(), &pki);
    // `user mosquitto`: started as root (as in CI), fleetmq switches to
    // Debian's mosquitto user, which must reach and write the data folder.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::set_permissions(
        dir.path().join("data"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let broker = run_mosquitto_conf(&conf.path, dir.path());
    broker.expect_log(" running.");
    let pid_file = std::fs::read_to_string(dir.path().join("mosquitto.pid")).unwrap();
    assert_eq!(pid_file.trim(), broker.pid().to_string());
    let opened = harness::service::opened_listeners(&broker.logs());
    let port = conf.ports[&8883];
    let ws_port = conf.ports[&9001];
    assert_eq!(
        opened,
        vec![
            (format!("mqtt-{port}"), format!("0.0.0.0:{port}")),
            (format!("mqtt-{ws_port}"), format!("0.0.0.0:{ws_port}")),
        ],
        "the WebSockets listener is translated, the PSK one left out"
    );
    broker.expect_log("(WebSockets, plain TCP)");
    // The bridge to the cloud is carried over; its CA file is not there.
    broker.expect_log("Bridge cloud");
    // The TLS listener itself works (one-way, server certificate checked).
    let output = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
            &pki.path("ca.crt"),
            "-verify_return_error",
            "-brief",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Verification: OK"), "{stderr}");
}

/// `GET /healthz` on `port` answers 200.
fn healthz_answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(harness::service::WAIT));
    let request =
        format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

#[test]
fn the_dashboard_is_off_under_mosquitto_conf_until_the_environment_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .unwrap();

    // Mosquitto's ports only.
    let broker = run_mosquitto_conf(&conf, dir.path());
    broker.expect_log(" running.");
    broker.expect_log("HTTP dashboard off");
    assert!(!broker.logs().contains("HTTP dashboard listening"));
    drop(broker);

    // FLEETMQ_* variables apply to the translated configuration.
    let http_port = free_port();
    let mut command = fleetmq();
    command
        .arg("run")
        .arg("--mosquitto-conf")
        .arg(&conf)
        .current_dir(dir.path())
        .env("FLEETMQ_HTTP__ENABLED", "true")
        .env("FLEETMQ_HTTP__BIND", format!("127.0.0.1:{http_port}"));
    let broker = Process::spawn(command);
    broker.expect_log(&format!(
        "HTTP dashboard listening on http://127.0.0.1:{http_port}/"
    ));
    assert!(healthz_answers(http_port));
    drop(broker);

    // A taken dashboard port does not stop MQTT.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut command = fleetmq();
    command
        .arg("run")
        .arg("--mosquitto-conf")
        .arg(&conf)
        .current_dir(dir.path())
        .env("FLEETMQ_HTTP__ENABLED", "true")
        .env(
            "FLEETMQ_HTTP__BIND",
            taken.local_addr().unwrap().to_string(),
        );
    let broker = Process::spawn(command);
    broker.expect_log("MQTT service continues without it");
    broker.expect_log(" running.");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    drop(broker);

    // And a bad one stops the start with the variable's name.
    let output = fleetmq()
        .arg("check-config")
        .arg(&conf)
        .env("FLEETMQ_LIMITS__MAX_INFLIGHT", "lots")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("FLEETMQ_LIMITS__MAX_INFLIGHT"), "{stderr}");
}

#[test]
fn check_config_reads_the_files_run_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let check = |file: &std::path::PathBuf| {
        let output = fleetmq().arg("check-config").arg(file).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code(), stderr)
    };

    // A lab mosquitto.conf whose server certificate and key are not there.
    let pki = Pki::generate(&dir.path().join("certs"));
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener 8883 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
            pki.path("ca.crt"),
            path("server.crt"),
            path("server.key")
        ),
    )
    .unwrap();
    let (code, stderr) = check(&conf);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("server.crt"), "{stderr}");
    assert!(stderr.contains("would not start"), "{stderr}");

    // A missing ACL file, then a broken password file.
    let toml = dir.path().join("fleetmq.toml");
    std::fs::write(
        &toml,
        format!("[auth]\nacl_file = \"{}\"\n", path("missing.acl")),
    )
    .unwrap();
    let (code, stderr) = check(&toml);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("missing.acl"), "{stderr}");
    std::fs::write(dir.path().join("passwd"), "alice-without-a-hash\n").unwrap();
    std::fs::write(
        &toml,
        format!("[auth]\npassword_file = \"{}\"\n", path("passwd")),
    )
    .unwrap();
    let (code, stderr) = check(&toml);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("passwd:1"), "{stderr}");

    // A good file is still OK.
    std::fs::write(&toml, "[limits]\nmax_inflight = 10\n").unwrap();
    let (code, stderr) = check(&toml);
    assert_eq!(code, Some(0), "{stderr}");
}
