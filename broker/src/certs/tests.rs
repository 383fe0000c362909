//! Tests of the whole PKI through its library API, checked with an
//! independent implementation: the `openssl` command line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use super::*;

/// Runs `openssl`; returns whether it succeeded and its combined output.
fn openssl(args: &[&str]) -> (bool, String) {
    let output = Command::new("/usr/bin/openssl")
        .args(args)
        .output()
        .expect("openssl is installed at /usr/bin/openssl");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn verify(ca: &Path, cert: &Path, crl: Option<&Path>) -> (bool, String) {
    let mut args = vec!["verify", "-CAfile", path(ca)];
    if let Some(crl) = crl {
        args.extend(["-crl_check", "-CRLfile", path(crl)]);
    }
    args.push(path(cert));
    openssl(&args)
}

/// The key file holds the private half of the certificate's public key.
fn assert_key_matches(cert: &Path, key: &Path) {
    let (ok, from_cert) = openssl(&["x509", "-in", path(cert), "-noout", "-pubkey"]);
    assert!(ok, "{from_cert}");
    let (ok, from_key) = openssl(&["pkey", "-in", path(key), "-pubout"]);
    assert!(ok, "{from_key}");
    assert_eq!(from_cert, from_key);
}

fn text(cert: &Path) -> String {
    let (ok, text) = openssl(&["x509", "-in", path(cert), "-noout", "-text"]);
    assert!(ok, "{text}");
    text
}

fn new_pki(key: KeyType) -> (tempfile::TempDir, Pki) {
    let temp = tempfile::tempdir().unwrap();
    let options = CaOptions {
        key,
        ..CaOptions::default()
    };
    let pki = Pki::init(&temp.path().join("pki"), &options).unwrap();
    (temp, pki)
}

#[test]
fn ecdsa_ca_issues_device_and_server_certificates_openssl_accepts() {
    let (_temp, pki) = new_pki(KeyType::EcdsaP256);
    let ca_key = pki.dir().join("ca.key");
    assert_eq!(mode(&ca_key), 0o600);
    assert_eq!(mode(pki.dir()), 0o700);
    let ca_text = text(&pki.ca_cert_path());
    assert!(ca_text.contains("CA:TRUE"), "{ca_text}");
    assert!(ca_text.contains("Certificate Sign, CRL Sign"), "{ca_text}");
    assert!(ca_text.contains("CN = fleetmq lab CA"), "{ca_text}");
    assert_key_matches(&pki.ca_cert_path(), &ca_key);

    let device = pki
        .issue_device("esp32_807A98", Some("greenhouse"), KeyType::EcdsaP256, 30)
        .unwrap();
    let (ok, output) = verify(
        &pki.ca_cert_path(),
        &device.cert_path,
        Some(&pki.crl_path()),
    );
    assert!(ok, "{output}");
    assert_eq!(mode(&device.key_path), 0o600);
    assert_eq!(mode(device.key_path.parent().unwrap()), 0o700);
    assert_key_matches(&device.cert_path, &device.key_path);
    let ca_copy = device.ca_copy_path.clone().unwrap();
    assert_eq!(
        std::fs::read(&ca_copy).unwrap(),
        std::fs::read(pki.ca_cert_path()).unwrap()
    );
    let device_text = text(&device.cert_path);
    assert!(
        device_text.contains("Subject: CN = esp32_807A98, OU = greenhouse"),
        "{device_text}"
    );
    assert!(
        device_text.contains("URI:urn:fleetmq:device:esp32_807A98"),
        "{device_text}"
    );
    assert!(
        device_text.contains("TLS Web Client Authentication"),
        "{device_text}"
    );
    assert!(device_text.contains("CA:FALSE"), "{device_text}");
    assert!(
        device_text.contains("Public-Key: (256 bit)"),
        "{device_text}"
    );

    let ips: Vec<IpAddr> = vec!["192.168.1.10".parse().unwrap()];
    let server = pki
        .issue_server(
            "broker.lab",
            &["mqtt.lab".to_owned()],
            &ips,
            KeyType::EcdsaP256,
            30,
        )
        .unwrap();
    let (ok, output) = verify(&pki.ca_cert_path(), &server.cert_path, None);
    assert!(ok, "{output}");
    assert_eq!(mode(&server.key_path), 0o600);
    assert_key_matches(&server.cert_path, &server.key_path);
    let server_text = text(&server.cert_path);
    assert!(
        server_text.contains("DNS:broker.lab, DNS:mqtt.lab, IP Address:192.168.1.10"),
        "{server_text}"
    );
    assert!(
        server_text.contains("TLS Web Server Authentication"),
        "{server_text}"
    );
}

#[test]
fn rsa_ca_and_rsa_certificates_work() {
    let (_temp, pki) = new_pki(KeyType::Rsa2048);
    let ca_text = text(&pki.ca_cert_path());
    assert!(ca_text.contains("Public-Key: (2048 bit)"), "{ca_text}");
    assert!(ca_text.contains("sha256WithRSAEncryption"), "{ca_text}");

    let server = pki
        .issue_server("localhost", &[], &[], KeyType::Rsa2048, 30)
        .unwrap();
    let (ok, output) = verify(
        &pki.ca_cert_path(),
        &server.cert_path,
        Some(&pki.crl_path()),
    );
    assert!(ok, "{output}");
    assert_key_matches(&server.cert_path, &server.key_path);
    let server_text = text(&server.cert_path);
    assert!(
        server_text.contains("Public-Key: (2048 bit)"),
        "{server_text}"
    );
    assert!(server_text.contains("Key Encipherment"), "{server_text}");

    // Mixed: an ECDSA device under the RSA CA, reopened from disk.
    let reopened = Pki::open(pki.dir()).unwrap();
    let device = reopened
        .issue_device("d1", None, KeyType::EcdsaP256, 30)
        .unwrap();
    let (ok, output) = verify(&pki.ca_cert_path(), &device.cert_path, None);
    assert!(ok, "{output}");
    assert!(text(&device.cert_path).contains("Subject: CN = d1\n"));
}

#[test]
fn revoked_certificates_fail_crl_checks_and_others_pass() {
    let (_temp, pki) = new_pki(KeyType::EcdsaP256);
    let revoked = pki
        .issue_device("bad", Some("lab"), KeyType::EcdsaP256, 30)
        .unwrap();
    let good = pki
        .issue_device("good", Some("lab"), KeyType::EcdsaP256, 30)
        .unwrap();

    // By serial, typed the way openssl prints it.
    let typed = revoked.serial.to_uppercase();
    let outcome = pki.revoke(&typed).unwrap();
    assert_eq!(outcome.certs.len(), 1);
    assert_eq!(outcome.certs[0].id, "bad");
    assert_eq!(outcome.crl_path, pki.crl_path());

    let (ok, crl_text) = openssl(&["crl", "-in", path(&pki.crl_path()), "-noout", "-text"]);
    assert!(ok, "{crl_text}");
    assert!(
        crl_text.contains(&format!("Serial Number: {typed}")),
        "{crl_text}"
    );
    assert!(
        !crl_text.contains(&good.serial.to_uppercase()),
        "{crl_text}"
    );
    assert!(
        crl_text.contains("X509v3 CRL Number: \n                2"),
        "{crl_text}"
    );

    let (ok, output) = verify(
        &pki.ca_cert_path(),
        &revoked.cert_path,
        Some(&pki.crl_path()),
    );
    assert!(!ok && output.contains("certificate revoked"), "{output}");
    let (ok, output) = verify(&pki.ca_cert_path(), &good.cert_path, Some(&pki.crl_path()));
    assert!(ok, "{output}");

    // Again: nothing to do. Unknown: says where it looked.
    assert!(matches!(
        pki.revoke("bad"),
        Err(CertError::AlreadyRevoked { .. })
    ));
    let error = pki.revoke("nobody").unwrap_err().to_string();
    assert!(
        error.contains("index.toml") && error.contains("certs list"),
        "{error}"
    );

    // By id; the CRL keeps the earlier serial and its number grows.
    pki.revoke("good").unwrap();
    let (_, crl_text) = openssl(&["crl", "-in", path(&pki.crl_path()), "-noout", "-text"]);
    assert!(crl_text.contains(&typed), "{crl_text}");
    assert!(crl_text.contains(&good.serial.to_uppercase()), "{crl_text}");
    assert!(
        crl_text.contains("X509v3 CRL Number: \n                3"),
        "{crl_text}"
    );

    let listed = pki.list().unwrap();
    assert!(listed.iter().all(|cert| cert.revoked_at.is_some()));
}

#[test]
fn refresh_crl_keeps_revocations_and_moves_next_update() {
    let (_temp, pki) = new_pki(KeyType::EcdsaP256);
    let device = pki.issue_device("x", None, KeyType::EcdsaP256, 30).unwrap();
    pki.revoke("x").unwrap();
    let before = pki.crl_next_update().unwrap().unwrap();
    pki.refresh_crl().unwrap();
    let after = pki.crl_next_update().unwrap().unwrap();
    assert!(after >= before);
    let days = (after - profile::now()).whole_days();
    assert!((29..=30).contains(&days), "{days}");
    let (ok, output) = verify(
        &pki.ca_cert_path(),
        &device.cert_path,
        Some(&pki.crl_path()),
    );
    assert!(!ok, "{output}");
}

#[test]
fn list_reports_expiry() {
    let (_temp, pki) = new_pki(KeyType::EcdsaP256);
    assert!(pki.list().unwrap().is_empty());
    let issued = pki
        .issue_device("a", Some("g"), KeyType::EcdsaP256, 10)
        .unwrap();
    pki.issue_server("s", &[], &[], KeyType::EcdsaP256, 400)
        .unwrap();
    let listed = pki.list().unwrap();
    assert_eq!(listed.len(), 2);
    let device = &listed[0];
    assert_eq!((device.kind, device.id.as_str()), (CertKind::Device, "a"));
    assert_eq!(device.group.as_deref(), Some("g"));
    assert_eq!(device.serial, issued.serial);
    assert_eq!(device.fingerprint, issued.fingerprint);
    assert_eq!(device.not_after, issued.not_after);
    assert!((9..=10).contains(&device.days_left), "{}", device.days_left);
    assert_eq!(device.cert_path, Path::new("devices/a/a.crt"));
    assert!((399..=400).contains(&listed[1].days_left));

    // The fingerprint is openssl's SHA-256 fingerprint.
    let (_, output) = openssl(&[
        "x509",
        "-in",
        path(&issued.cert_path),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    assert!(
        output
            .to_lowercase()
            .replace(':', "")
            .contains(&issued.fingerprint),
        "{output}"
    );
}

#[test]
fn nothing_is_overwritten_without_overwrite() {
    let (_temp, mut pki) = new_pki(KeyType::EcdsaP256);
    let first = pki.issue_device("d", None, KeyType::EcdsaP256, 30).unwrap();
    let key_before = std::fs::read(&first.key_path).unwrap();
    let error = pki
        .issue_device("d", None, KeyType::EcdsaP256, 30)
        .unwrap_err();
    assert!(matches!(error, CertError::AlreadyExists { .. }), "{error}");
    assert_eq!(std::fs::read(&first.key_path).unwrap(), key_before);
    assert_eq!(pki.list().unwrap().len(), 1);

    let error = Pki::init(pki.dir(), &CaOptions::default()).unwrap_err();
    assert!(
        error.to_string().contains("ca.crt already exists"),
        "{error}"
    );

    pki.set_overwrite(true);
    let second = pki.issue_device("d", None, KeyType::EcdsaP256, 30).unwrap();
    assert_ne!(std::fs::read(&second.key_path).unwrap(), key_before);
    assert_eq!(mode(&second.key_path), 0o600);
    assert_eq!(second.still_valid_earlier, [first.serial]);
}

#[test]
fn init_with_force_replaces_the_ca_and_starts_a_new_index() {
    let (_temp, pki) = new_pki(KeyType::EcdsaP256);
    let device = pki.issue_device("d", None, KeyType::EcdsaP256, 30).unwrap();
    let options = CaOptions {
        common_name: "second CA".to_owned(),
        force: true,
        ..CaOptions::default()
    };
    let replaced = Pki::init(pki.dir(), &options).unwrap();
    assert!(replaced.list().unwrap().is_empty());
    assert!(text(&replaced.ca_cert_path()).contains("CN = second CA"));
    let (ok, _) = verify(&replaced.ca_cert_path(), &device.cert_path, None);
    assert!(!ok, "a certificate of the old CA must not verify");
}

#[test]
fn open_explains_missing_open_and_mismatched_ca_files() {
    let temp = tempfile::tempdir().unwrap();
    let error = Pki::open(temp.path()).unwrap_err().to_string();
    assert!(error.contains("fleetmq certs init --dir"), "{error}");

    let (_one, first) = new_pki(KeyType::EcdsaP256);
    let (_two, second) = new_pki(KeyType::EcdsaP256);
    let ca_key = first.dir().join("ca.key");
    std::fs::set_permissions(&ca_key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let error = Pki::open(first.dir()).unwrap_err().to_string();
    assert!(error.contains("chmod 600"), "{error}");
    std::fs::set_permissions(&ca_key, std::fs::Permissions::from_mode(0o600)).unwrap();

    std::fs::copy(second.dir().join("ca.key"), &ca_key).unwrap();
    let error = Pki::open(first.dir()).unwrap_err();
    assert!(matches!(error, CertError::KeyMismatch { .. }), "{error}");
}

#[test]
fn ensure_dev_pki_creates_once_and_then_changes_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let first = ensure_dev_pki(temp.path()).unwrap();
    assert!(first.created);
    assert_eq!(first.ca_cert, temp.path().join("pki/ca.crt"));
    assert_eq!(
        first.server_cert,
        temp.path().join("pki/server/localhost.crt")
    );
    assert_eq!(
        first.server_key,
        temp.path().join("pki/server/localhost.key")
    );
    assert_eq!(first.crl, temp.path().join("pki/crl.pem"));
    assert_eq!(mode(&first.server_key), 0o600);
    let (ok, output) = verify(&first.ca_cert, &first.server_cert, Some(&first.crl));
    assert!(ok, "{output}");
    let server_text = text(&first.server_cert);
    assert!(server_text.contains("DNS:localhost"), "{server_text}");
    assert!(
        server_text.contains("IP Address:127.0.0.1"),
        "{server_text}"
    );
    assert!(
        server_text.contains("IP Address:0:0:0:0:0:0:0:1"),
        "{server_text}"
    );

    let files = [
        "pki/ca.crt",
        "pki/ca.key",
        "pki/crl.pem",
        "pki/index.toml",
        "pki/server/localhost.crt",
    ];
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(temp.path().join(f)).unwrap())
        .collect();
    let second = ensure_dev_pki(temp.path()).unwrap();
    assert!(!second.created);
    assert_eq!(
        DevPki {
            created: true,
            ..second
        },
        first
    );
    let after: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(temp.path().join(f)).unwrap())
        .collect();
    assert_eq!(before, after);

    // A lost server certificate is issued again under the same CA.
    std::fs::remove_file(&first.server_cert).unwrap();
    let third = ensure_dev_pki(temp.path()).unwrap();
    assert!(third.created);
    assert_eq!(std::fs::read(&third.ca_cert).unwrap(), before[0]);
    let (ok, output) = verify(&third.ca_cert, &third.server_cert, None);
    assert!(ok, "{output}");
}

#[test]
fn bad_names_are_refused_before_anything_is_written() {
    let (_temp, pki) = new_pki(KeyType::EcdsaP256);
    for id in ["../escape", "", "a/b", ".hidden"] {
        let error = pki
            .issue_device(id, None, KeyType::EcdsaP256, 30)
            .unwrap_err();
        assert!(
            matches!(error, CertError::InvalidName { .. }),
            "{id:?}: {error}"
        );
    }
    let error = pki
        .issue_server("s", &["bad_name".to_owned()], &[], KeyType::EcdsaP256, 30)
        .unwrap_err();
    assert!(matches!(error, CertError::InvalidDnsName { .. }), "{error}");
    let error = pki
        .issue_device("d", None, KeyType::EcdsaP256, 0)
        .unwrap_err();
    assert!(matches!(error, CertError::InvalidDays { .. }), "{error}");
    assert!(!pki.dir().join("devices").exists());
    assert!(pki.list().unwrap().is_empty());
}
