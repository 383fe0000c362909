//! Device certificates made with the classic recipe, `openssl req -newkey`
//! then `openssl x509 -req -CA ca.crt -CAkey ca.key` without an extension
//! file, are X.509 version 1. Debian's Mosquitto 2.0.11 accepts them on a
//! `require_certificate true` listener; fleetmq, run from the same
//! mosquitto.conf, must too (decision 0090), and refuse the same foreign,
//! expired and revoked ones, naming each in the log.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::harness::service::{fleetmq, free_port, run_ok, Process};

fn openssl(dir: &Path, args: &[&str]) -> Output {
    run_ok(Command::new("openssl").args(args).current_dir(dir))
}

/// A device key, its CSR and the v1 certificate `x509 -req` makes of it.
fn v1_device(dir: &Path, name: &str, ca: &str) {
    let (key, csr, crt) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
    );
    let subject = format!("/CN={name}/O=lab");
    openssl(
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj",
            &subject,
        ],
    );
    let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "365",
        ],
    );
}

fn self_signed_ca(dir: &Path, name: &str, cn: &str) {
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    let subject = format!("/CN={cn}");
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &crt,
            "-days", "365", "-subj", &subject,
        ],
    );
}

/// `openssl ca` settings for the revocation list and the expired device
/// (`openssl ca` without an extension section makes v1 certificates too).
/// `crlnumber` makes the CRL v2: webpki reads no v1 CRL (a limit noted in
/// decision 0090; Mosquitto reads both).
const CA_CNF: &str = "[ca]\ndefault_ca = lab\n[lab]\ndatabase = index.txt\nnew_certs_dir = .\n\
certificate = ca.crt\nprivate_key = ca.key\nserial = ca-serial\ncrlnumber = crlnumber\ndefault_md = sha256\n\
default_crl_days = 30\npolicy = any\n[any]\ncommonName = supplied\norganizationName = optional\n";

/// The lab: CA, a server certificate, and devices `esp32-good`,
/// `esp32-revoked` (on the CRL), `esp32-expired` (January 2020) and
/// `esp32-foreign` (from another CA), all v1.
fn lab_pki(dir: &Path) {
    self_signed_ca(dir, "ca", "lab CA");
    self_signed_ca(dir, "other-ca", "other lab CA");
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "365",
            "-extfile",
            "server.ext",
        ],
    );
    v1_device(dir, "esp32-good", "ca");
    v1_device(dir, "esp32-revoked", "ca");
    v1_device(dir, "esp32-foreign", "other-ca");
    std::fs::write(dir.join("ca.cnf"), CA_CNF).unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("ca-serial"), "1000\n").unwrap();
    std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "esp32-expired.key",
            "-out",
            "esp32-expired.csr",
            "-subj",
            "/CN=esp32-expired/O=lab",
        ],
    );
    openssl(
        dir,
        &[
            "ca",
            "-config",
            "ca.cnf",
            "-batch",
            "-notext",
            "-in",
            "esp32-expired.csr",
            "-out",
            "esp32-expired.crt",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200201000000Z",
        ],
    );
    openssl(
        dir,
        &["ca", "-config", "ca.cnf", "-revoke", "esp32-revoked.crt"],
    );
    openssl(
        dir,
        &["ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem"],
    );
    for device in [
        "esp32-good",
        "esp32-revoked",
        "esp32-foreign",
        "esp32-expired",
    ] {
        let text = openssl(
            dir,
            &["x509", "-noout", "-text", "-in", &format!("{device}.crt")],
        );
        assert!(
            String::from_utf8_lossy(&text.stdout).contains("Version: 1 (0x0)"),
            "{device}.crt is not v1"
        );
    }
}

/// The lab's mosquitto.conf on `port`; `extra` for the reference run
/// (`user root`: Mosquitto started as root would drop to user mosquitto,
/// which cannot read a key in the test's private folder).
fn write_conf(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let path = dir.join(format!("mosquitto-{port}.conf"));
    let file = |name: &str| dir.join(name).display().to_string();
    std::fs::write(
        &path,
        format!(
            "{extra}per_listener_settings false\nallow_anonymous true\n\
             listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
             require_certificate true\ncrlfile {}\n",
            file("ca.crt"),
            file("server.crt"),
            file("server.key"),
            file("crl.pem"),
        ),
    )
    .unwrap();
    path
}

fn wait_listening(port: u16, broker: &Process) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {port}; logs:\n{}",
            broker.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `mosquitto_pub`/`mosquitto_sub` as device `name`.
fn client(tool: &str, dir: &Path, port: u16, name: &str) -> Command {
    let mut command = Command::new(tool);
    let file = |suffix: &str| dir.join(format!("{name}.{suffix}"));
    command
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .arg("--cafile")
        .arg(dir.join("ca.crt"))
        .arg("--cert")
        .arg(file("crt"))
        .arg("--key")
        .arg(file("key"))
        .args(["-i", name, "-t", "/this/test/esp32_807A98"]);
    command
}

/// What the lab's devices see on `port`: the good one publishes and
/// receives `CONNECTED!`, the three others are refused.
fn devices_as_mosquitto_sees_them(dir: &Path, port: u16, broker: &str) {
    run_ok(client("mosquitto_pub", dir, port, "esp32-good").args(["-m", "CONNECTED!", "-r"]));
    let received =
        run_ok(client("mosquitto_sub", dir, port, "esp32-good").args(["-C", "1", "-W", "5"]));
    assert_eq!(
        String::from_utf8_lossy(&received.stdout).trim(),
        "CONNECTED!",
        "{broker}"
    );
    for refused in ["esp32-foreign", "esp32-expired", "esp32-revoked"] {
        let output = client("mosquitto_pub", dir, port, refused)
            .args(["-m", "CONNECTED!"])
            .output()
            .unwrap();
        assert!(
            !output.status.success(),
            "{broker} let {refused} in: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn v1_device_certificates_connect_as_to_mosquitto_and_bad_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path();
    lab_pki(pki);

    // The reference: Debian's Mosquitto 2.0.11 on the same files.
    let mosquitto_port = free_port();
    let mut reference = Command::new("/usr/sbin/mosquitto");
    reference
        .arg("-c")
        .arg(write_conf(pki, mosquitto_port, "user root\n"));
    let reference = Process::spawn(reference);
    wait_listening(mosquitto_port, &reference);
    devices_as_mosquitto_sees_them(pki, mosquitto_port, "mosquitto");
    drop(reference);

    let port = free_port();
    let mut command = fleetmq();
    command
        .arg("run")
        .arg("--mosquitto-conf")
        .arg(write_conf(pki, port, ""))
        .current_dir(pki);
    let broker = Process::spawn(command);
    broker.listeners(1);
    devices_as_mosquitto_sees_them(pki, port, "fleetmq");
    broker.expect_log("client certificate \"CN=esp32-foreign, O=lab\"");
    broker.expect_log("issued by an unknown CA (CN=other lab CA)");
    broker.expect_log("expired on 2020-02-01T00:00:00Z; issue the device a new certificate");
    broker.expect_log("client certificate \"CN=esp32-revoked, O=lab\" (serial ");
    broker.expect_log(") revoked on ");
}
