//! `fleetmq passwd` and `fleetmq acl check`, run as the real binary; and
//! the password files `fleetmq passwd` writes, read by a real Mosquitto.
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fleetmq_core::auth::PasswordFile;

const FLEETMQ: &str = env!("CARGO_BIN_EXE_fleetmq");

/// Runs fleetmq with `args`, writing `stdin` to its standard input.
fn fleetmq(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(FLEETMQ)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The process may exit before reading (a refused username): a broken
    // pipe here is not the test's concern.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn passwd_creates_updates_and_deletes_users() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    let file = path.to_str().unwrap();

    let out = fleetmq(&["passwd", file, "dev-a"], "secret-a\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(mode(&path), 0o600, "a new password file is private");
    let out = fleetmq(&["passwd", "--stdin", file, "dev-b"], "secret-b\r\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let passwords = PasswordFile::load(&path).unwrap();
    assert!(passwords.verify("dev-a", b"secret-a"));
    assert!(passwords.verify("dev-b", b"secret-b"));

    // Changing a password replaces the line and keeps the file's mode.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = fleetmq(&["passwd", file, "dev-a"], "new-a\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(mode(&path), 0o640);
    let content = std::fs::read_to_string(&path).unwrap();
    assert_eq!(content.lines().count(), 2, "{content}");
    let passwords = PasswordFile::load(&path).unwrap();
    assert!(passwords.verify("dev-a", b"new-a"));
    assert!(!passwords.verify("dev-a", b"secret-a"));

    let out = fleetmq(&["passwd", "-D", file, "dev-a"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let passwords = PasswordFile::load(&path).unwrap();
    assert!(!passwords.contains("dev-a"));
    assert!(passwords.contains("dev-b"));
    let out = fleetmq(&["passwd", "-D", file, "dev-a"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not in"),
        "{}",
        text(&out.stderr)
    );

    // -c starts over with only this user.
    let out = fleetmq(&["passwd", "-c", file, "solo"], "s\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let passwords = PasswordFile::load(&path).unwrap();
    assert_eq!(passwords.len(), 1);
    assert!(passwords.verify("solo", b"s"));
}

#[test]
fn passwd_refuses_bad_input_without_touching_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    let file = path.to_str().unwrap();
    for (user, stdin) in [("dev-a", "\n"), ("dev-a", ""), ("a:b", "x\n"), ("", "x\n")] {
        let out = fleetmq(&["passwd", file, user], stdin);
        assert_eq!(out.status.code(), Some(1), "{user:?} {stdin:?}");
        assert!(!path.exists(), "{user:?} {stdin:?}");
    }
    let out = fleetmq(&["passwd", "-D", file, "dev-a"], "");
    assert_eq!(out.status.code(), Some(1));
}

/// A real Mosquitto accepts the password file `fleetmq passwd` wrote.
#[test]
fn mosquitto_accepts_our_password_file() {
    let (broker, client) = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto_pub");
    if !Path::new(broker).exists() || !Path::new(client).exists() {
        println!(
            "skipped: needs {broker} and {client} (apt-get install mosquitto mosquitto-clients)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    let out = fleetmq(&["passwd", passwd.to_str().unwrap(), "dev-a"], "s3cret\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Run as root, Mosquitto drops to the `mosquitto` user, which cannot
    // read our 0600 file; `user root` keeps it as it is.
    let as_root = std::fs::metadata(&passwd).unwrap().uid() == 0;
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n{}",
            passwd.display(),
            if as_root { "user root\n" } else { "" }
        ),
    )
    .unwrap();
    let mut mosquitto = Command::new(broker)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "mosquitto did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let publish = |password: &str| {
        Command::new(client)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-u", "dev-a", "-P", password, "-t", "t", "-m", "x"])
            .output()
            .unwrap()
    };
    let good = publish("s3cret");
    let bad = publish("wrong");
    let _ = mosquitto.kill();
    let _ = mosquitto.wait();
    assert!(
        good.status.success(),
        "right password: {}",
        text(&good.stderr)
    );
    assert!(!bad.status.success(), "wrong password accepted");
}

const POLICY: &str = r##"
[[listener]]
name = "tls"
bind = "127.0.0.1:0"
use_identity_as_username = true
[listener.tls]

[[auth.group]]
name = "ops"
identities = ["ops-1"]

[[acl]]
access = "write"
topic = "devices/%i/#"

[[acl]]
access = "read"
topic = "devices/%i/cmd/#"

[[acl]]
group = "ops"
access = "read"
topic = "#"
"##;

#[test]
fn acl_check_prints_the_decision_and_exits_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleetmq.toml");
    std::fs::write(&config, POLICY).unwrap();
    let config = config.to_str().unwrap();
    let check = |extra: &[&str]| {
        let mut args = vec!["acl", "check", "--config", config];
        args.extend_from_slice(extra);
        fleetmq(&args, "")
    };

    let out = check(&[
        "--identity",
        "dev-a",
        "--topic",
        "devices/dev-a/t",
        "--action",
        "publish",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("ALLOW publish devices/dev-a/t"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[[acl]] #1: allow write devices/%i/#"),
        "{stdout}"
    );
    assert!(stdout.contains("username dev-a"), "{stdout}");

    let out = check(&[
        "--identity",
        "dev-a",
        "--topic",
        "#",
        "--action",
        "subscribe",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("DENY subscribe #"), "{stdout}");
    assert!(stdout.contains("default deny (rules exist)"), "{stdout}");

    let out = check(&[
        "--identity",
        "ops-1",
        "--topic",
        "#",
        "--action",
        "subscribe",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = check(&[
        "--identity",
        "dev-b",
        "--group",
        "ops",
        "--topic",
        "devices/dev-a/t",
        "--action",
        "receive",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    // Errors: exit 2.
    let out = check(&[
        "--identity",
        "dev-a",
        "--topic",
        "a/+",
        "--action",
        "publish",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("wildcard"),
        "{}",
        text(&out.stderr)
    );
    let out = check(&["--topic", "a", "--action", "publish"]);
    assert_eq!(out.status.code(), Some(2));
    let out = check(&["--identity", "x", "--topic", "a", "--action", "fly"]);
    assert_eq!(out.status.code(), Some(2));
    let out = fleetmq(
        &[
            "acl",
            "check",
            "--config",
            "/nonexistent.toml",
            "--identity",
            "x",
            "--topic",
            "a",
            "--action",
            "publish",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[acl]]\ntopic = \"a/#/b\"\n").unwrap();
    let out = fleetmq(
        &[
            "acl",
            "check",
            "--config",
            bad.to_str().unwrap(),
            "--identity",
            "x",
            "--topic",
            "a",
            "--action",
            "publish",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("[[acl]] rule #1"),
        "{}",
        text(&out.stderr)
    );
}
