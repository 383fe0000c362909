//! End-to-end tests of `fleetmq certs ...`: the real binary in a temporary
//! folder, its output checked with the `openssl` command line.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

mod audit;
mod seen;

/// Runs `fleetmq certs ARGS...` in `cwd`.
fn certs(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetmq"))
        .current_dir(cwd)
        .arg("certs")
        .args(args)
        .output()
        .expect("the fleetmq binary runs")
}

/// Runs `fleetmq certs ARGS...` and returns its stdout; fails the test if
/// it fails.
fn certs_ok(cwd: &Path, args: &[&str]) -> String {
    let output = certs(cwd, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "fleetmq certs {args:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs `openssl ARGS...` in `cwd`: success and combined output.
fn openssl(cwd: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new("/usr/bin/openssl")
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("openssl is installed at /usr/bin/openssl");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn provision_devices_and_a_server_then_revoke_one() {
    let temp = tempfile::tempdir().unwrap();
    let cwd = temp.path();

    // The default folder, relative to where the command runs.
    let out = certs_ok(cwd, &["init"]);
    assert!(
        out.contains("wrote fleetmq-data/pki/ca.key (private key, mode 0600)"),
        "{out}"
    );
    assert!(out.contains("wrote fleetmq-data/pki/crl.pem"), "{out}");
    let pki = cwd.join("fleetmq-data/pki");
    assert_eq!(mode(&pki.join("ca.key")), 0o600);

    let out = certs_ok(
        cwd,
        &[
            "device",
            "esp32_807A98",
            "esp32_0A0B0C",
            "--group",
            "greenhouse",
            "--out",
            "firmware/fs",
        ],
    );
    for line in [
        "wrote fleetmq-data/pki/devices/esp32_807A98/esp32_807A98.crt",
        "wrote fleetmq-data/pki/devices/esp32_807A98/esp32_807A98.key (private key, mode 0600)",
        "wrote fleetmq-data/pki/devices/esp32_807A98/ca.crt",
        "wrote firmware/fs/esp32_807A98.crt",
        "wrote firmware/fs/esp32_807A98.key (private key, mode 0600)",
        "wrote firmware/fs/ca.crt",
        "wrote firmware/fs/esp32_0A0B0C.key (private key, mode 0600)",
    ] {
        assert!(
            out.lines().any(|printed| printed == line),
            "missing {line:?} in:\n{out}"
        );
    }
    assert_eq!(mode(&cwd.join("firmware/fs/esp32_807A98.key")), 0o600);
    assert_eq!(
        mode(&pki.join("devices/esp32_0A0B0C/esp32_0A0B0C.key")),
        0o600
    );

    let out = certs_ok(
        cwd,
        &[
            "server",
            "--name",
            "broker.lab",
            "--ip",
            "10.0.0.2",
            "--rsa",
        ],
    );
    assert!(out.contains("wrote fleetmq-data/pki/server/broker.lab.key (private key, mode 0600)"));
    let (ok, text) = openssl(
        cwd,
        &[
            "x509",
            "-in",
            "fleetmq-data/pki/server/broker.lab.crt",
            "-noout",
            "-text",
        ],
    );
    assert!(ok && text.contains("Public-Key: (2048 bit)"), "{text}");
    assert!(
        text.contains("DNS:broker.lab, IP Address:10.0.0.2"),
        "{text}"
    );

    // What the firmware gets verifies, and names the device and its group.
    let (ok, text) = openssl(
        cwd,
        &[
            "verify",
            "-CAfile",
            "firmware/fs/ca.crt",
            "firmware/fs/esp32_807A98.crt",
        ],
    );
    assert!(ok, "{text}");
    let (_, subject) = openssl(
        cwd,
        &[
            "x509",
            "-in",
            "firmware/fs/esp32_807A98.crt",
            "-noout",
            "-subject",
        ],
    );
    assert_eq!(subject.trim(), "subject=CN = esp32_807A98, OU = greenhouse");
    let (ok, text) = openssl(
        cwd,
        &[
            "verify",
            "-CAfile",
            "fleetmq-data/pki/ca.crt",
            "fleetmq-data/pki/server/broker.lab.crt",
        ],
    );
    assert!(ok, "{text}");

    let out = certs_ok(cwd, &["revoke", "esp32_807A98"]);
    assert!(out.contains("revoked device esp32_807A98 serial "), "{out}");
    assert!(out.contains("wrote fleetmq-data/pki/crl.pem"), "{out}");
    let serial = out
        .split("serial ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_uppercase();
    let (ok, crl) = openssl(
        cwd,
        &["crl", "-in", "fleetmq-data/pki/crl.pem", "-noout", "-text"],
    );
    assert!(
        ok && crl.contains(&format!("Serial Number: {serial}")),
        "{crl}"
    );

    let crl_check = |cert: &str| {
        openssl(
            cwd,
            &[
                "verify",
                "-crl_check",
                "-CRLfile",
                "fleetmq-data/pki/crl.pem",
                "-CAfile",
                "fleetmq-data/pki/ca.crt",
                cert,
            ],
        )
    };
    let (ok, text) = crl_check("firmware/fs/esp32_807A98.crt");
    assert!(!ok && text.contains("certificate revoked"), "{text}");
    let (ok, text) = crl_check("firmware/fs/esp32_0A0B0C.crt");
    assert!(ok, "{text}");

    let listed = certs_ok(cwd, &["list"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 4, "{listed}");
    assert!(lines[0].starts_with("KIND"), "{listed}");
    assert!(
        lines[0].contains("NOT AFTER") && lines[0].contains("DAYS LEFT"),
        "{listed}"
    );
    let revoked = lines
        .iter()
        .find(|line| line.contains("esp32_807A98"))
        .unwrap();
    // Whole days left: 1825 when listed within the second of issuing, else 1824.
    assert!(
        revoked.contains(" 1825 ") || revoked.contains(" 1824 "),
        "{listed}"
    );
    assert!(
        !revoked.ends_with('-'),
        "a revoked line ends with its revocation time:\n{listed}"
    );
    let server = lines
        .iter()
        .find(|line| line.contains("broker.lab"))
        .unwrap();
    assert!(
        server.starts_with("server") && server.ends_with('-'),
        "{listed}"
    );
    assert!(
        server.contains(" 825 ") || server.contains(" 824 "),
        "{listed}"
    );
}

#[test]
fn refuses_to_overwrite_without_force() {
    let temp = tempfile::tempdir().unwrap();
    let cwd = temp.path();
    certs_ok(cwd, &["init", "--dir", "pki", "--rsa"]);
    let ca_before = std::fs::read(cwd.join("pki/ca.key")).unwrap();

    let second = certs(cwd, &["init", "--dir", "pki"]);
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("pki/ca.crt already exists; pass --force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(cwd.join("pki/ca.key")).unwrap(), ca_before);

    certs_ok(cwd, &["device", "--dir", "pki", "d1"]);
    let key_before = std::fs::read(cwd.join("pki/devices/d1/d1.key")).unwrap();
    let again = certs(cwd, &["device", "d1", "d2", "--dir", "pki"]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        std::fs::read(cwd.join("pki/devices/d1/d1.key")).unwrap(),
        key_before
    );
    assert!(
        !cwd.join("pki/devices/d2").exists(),
        "nothing is issued when one device is refused"
    );

    let out = certs_ok(cwd, &["device", "d1", "--dir", "pki", "--force"]);
    assert!(out.contains("note: the earlier certificate"), "{out}");
    assert_ne!(
        std::fs::read(cwd.join("pki/devices/d1/d1.key")).unwrap(),
        key_before
    );
    assert_eq!(mode(&cwd.join("pki/devices/d1/d1.key")), 0o600);

    certs_ok(cwd, &["init", "--dir", "pki", "--force"]);
    assert_ne!(std::fs::read(cwd.join("pki/ca.key")).unwrap(), ca_before);
}

#[test]
fn errors_say_what_to_do() {
    let temp = tempfile::tempdir().unwrap();
    let cwd = temp.path();
    let output = certs(cwd, &["list", "--dir", "nowhere"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("fleetmq certs init --dir nowhere"),
        "{stderr}"
    );

    certs_ok(cwd, &["init", "--dir", "pki"]);
    let output = certs(cwd, &["revoke", "--dir", "pki", "ghost"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no certificate with id or serial \"ghost\""),
        "{stderr}"
    );

    let output = certs(cwd, &["device", "--dir", "pki", "--days", "0", "d"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "clap rejects it as a usage error"
    );

    let help = certs(cwd, &["server", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("ECDHE-RSA-AES128-GCM-SHA256"), "{help}");
}
