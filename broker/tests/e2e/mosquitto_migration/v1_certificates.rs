//! Device certificates made with the classic recipe, `openssl req -newkey`
//! then `openssl x509 -req -CA ca.crt -CAkey ca.key` without an extension
//! file, are X.509 version 1. Debian's Mosquitto 2.0.11 accepts them on a
//! `require_certificate true` listener; fleetmq, run from the same
//! mosquitto.conf, must too (decision 0090), and refuse the same foreign,
//! expired and revoked ones, naming each in the log.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::pki::openssl::{Key, Openssl};
use crate::harness::service::{fleetmq, free_port, run_ok, Process};

/// `openssl ca` settings for the revocation list and the expired device
/// (`openssl ca` without an extension section makes v1 certificates too).
/// `crlnumber` makes the CRL v2: webpki reads no v1 CRL (a limit noted in
/// decision 0090; Mosquitto reads both).
const CA_CNF: &str = "[ca]\ndefault_ca = lab\n[lab]\ndatabase = index.txt\nnew_certs_dir = .\n\
certificate = ca.crt\nprivate_key = ca.key\nserial = ca-serial\ncrlnumber = crlnumber\ndefault_md = sha256\n\
default_crl_days = 30\npolicy = any\n[any]\ncommonName = supplied\norganizationName = optional\n";

/// The lab: CA, a server certificate, and devices `esp32-good`,
/// `esp32-revoked` (on the CRL), `esp32-expired` (January 2020) and
/// `esp32-foreign` (from another CA), all v1 and RSA-2048.
fn lab_pki(dir: &Path) {
    let openssl = Openssl::in_dir(dir);
    let rsa = Key::Rsa(2048);
    openssl.ca("ca", "/CN=lab CA").key(rsa).create();
    openssl.ca("other-ca", "/CN=other lab CA").key(rsa).create();
    openssl
        .cert("server", "/CN=localhost")
        .key(rsa)
        .extensions("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        .create();
    for (device, ca) in [
        ("esp32-good", "ca"),
        ("esp32-revoked", "ca"),
        ("esp32-foreign", "other-ca"),
    ] {
        openssl
            .cert(device, &format!("/CN={device}/O=lab"))
            .key(rsa)
            .issuer(ca)
            .create();
    }
    openssl.ca_database(CA_CNF);
    openssl.key_and_csr(
        rsa,
        "esp32-expired.key",
        "esp32-expired.csr",
        "/CN=esp32-expired/O=lab",
    );
    openssl.ca_sign_dated(
        "esp32-expired.csr",
        "esp32-expired.crt",
        "20200101000000Z",
        "20200201000000Z",
    );
    openssl.ca_revoke("esp32-revoked.crt");
    openssl.ca_crl("crl.pem");
    for device in [
        "esp32-good",
        "esp32-revoked",
        "esp32-foreign",
        "esp32-expired",
    ] {
        openssl.assert_v1(&format!("{device}.crt"));
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
