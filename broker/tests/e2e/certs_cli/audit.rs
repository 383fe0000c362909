//! `fleetmq certs audit` on a folder mixing v1, v3, expired, foreign-CA,
//! RSA-1024 and SHA-1 device certificates made with openssl: the table's
//! verdicts are the broker's, and its facts agree with `openssl x509`.

use std::collections::HashMap;

use super::{certs_ok, openssl};
use crate::harness::pki::openssl::{Key, Openssl};

/// The table's rows by file name: the columns after FILE.
fn table(stdout: &str) -> HashMap<String, Vec<String>> {
    stdout
        .lines()
        .skip(1)
        .filter(|line| line.starts_with("v"))
        .map(|line| {
            let mut columns = line.split(" | ").map(str::to_string);
            let file = columns.next().unwrap();
            (file, columns.collect())
        })
        .collect()
}

#[test]
fn audit_names_what_a_listener_would_accept_and_refuse() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = Openssl::in_dir(dir);
    let rsa = Key::Rsa(2048);
    pki.ca("ca", "/CN=lab CA").key(rsa).create();
    pki.ca("other", "/CN=other CA").key(rsa).create();
    // `openssl req` then `openssl x509 -req` (v1 without extensions);
    // keys and CSRs in keys/, certificates in devices/.
    let v3 = "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n";
    let device = |name: &str| {
        pki.cert(name, &format!("/CN={name}"))
            .folders("keys", "devices")
    };
    device("v1-good").key(rsa).create();
    device("v3-good").key(rsa).extensions(v3).create();
    device("v1-foreign").key(rsa).issuer("other").create();
    device("v1-rsa1024").key(Key::Rsa(1024)).create();
    device("v3-sha1")
        .key(rsa)
        .extensions(v3)
        .extra(&["-sha1"])
        .create();
    pki.ca_database(
        "[ca]\ndefault_ca = lab\n[lab]\ndatabase = index.txt\nnew_certs_dir = keys\n\
         certificate = ca.crt\nprivate_key = ca.key\nserial = ca-serial\ndefault_md = sha256\n\
         policy = any\n[any]\ncommonName = supplied\n",
    );
    pki.key_and_csr(
        rsa,
        "keys/v1-expired.key",
        "keys/v1-expired.csr",
        "/CN=v1-expired",
    );
    pki.ca_sign_dated(
        "keys/v1-expired.csr",
        "devices/v1-expired.crt",
        "20200101000000Z",
        "20200201000000Z",
    );

    let devices = dir.join("devices");
    let devices = devices.to_str().unwrap();
    let out = certs_ok(
        dir,
        &[
            "audit",
            devices,
            "--ca",
            "ca.crt",
            "--accept-v1",
            "--expiring-days",
            "400",
        ],
    );
    let rows = table(&out);
    let verdict = |file: &str| rows[file][6].clone();
    assert_eq!(verdict("v1-good.crt"), "accept", "{out}");
    assert_eq!(verdict("v3-good.crt"), "accept", "{out}");
    assert_eq!(verdict("v1-expired.crt"), "refuse:expired", "{out}");
    assert_eq!(verdict("v1-foreign.crt"), "refuse:unknown_ca", "{out}");
    assert_eq!(verdict("v1-rsa1024.crt"), "refuse:weak_key", "{out}");
    assert_eq!(
        verdict("v3-sha1.crt"),
        "refuse:signature_algorithm",
        "{out}"
    );
    assert!(
        rows["v1-expired.crt"][7].contains("expired on 2020-02-01T00:00:00Z"),
        "{out}"
    );
    // Made for 365 days moments ago: 364 whole days left, or 365 when the
    // audit ran within the certificate's second (whole-second times).
    let good = &rows["v1-good.crt"][7];
    assert!(
        good.contains("expires in 364 days") || good.contains("expires in 365 days"),
        "{out}"
    );
    assert!(rows["v3-sha1.crt"][7].contains("SHA-1 signature"), "{out}");
    assert!(
        out.ends_with("6 certificates: 2 accepted, 4 refused\n"),
        "{out}"
    );

    // Each row's facts, as openssl reads the file.
    for (file, columns) in &rows {
        let path = format!("devices/{file}");
        let (_, serial) = openssl(dir, &["x509", "-noout", "-serial", "-in", &path]);
        assert_eq!(
            serial.trim().trim_start_matches("serial="),
            columns[1],
            "{file}"
        );
        let (_, end) = openssl(
            dir,
            &[
                "x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in", &path,
            ],
        );
        assert_eq!(
            end.trim().trim_start_matches("notAfter="),
            columns[5].replace('T', " "),
            "{file}"
        );
        let (_, text) = openssl(dir, &["x509", "-noout", "-text", "-in", &path]);
        let version = if columns[2] == "v1" {
            "Version: 1 (0x0)"
        } else {
            "Version: 3 (0x2)"
        };
        assert!(text.contains(version), "{file}: {}", columns[2]);
        if let Some(bits) = columns[3].strip_prefix("RSA ") {
            assert!(
                text.contains(&format!("Public-Key: ({bits} bit)")),
                "{file}: {}",
                columns[3]
            );
        }
        assert!(
            text.contains(&format!("Signature Algorithm: {}", columns[4])),
            "{file}: {}",
            columns[4]
        );
    }

    // The v3-only default refuses the v1 device, and says so.
    let strict = certs_ok(dir, &["audit", devices, "--ca", "ca.crt"]);
    assert_eq!(
        table(&strict)["v1-good.crt"][6],
        "refuse:v1_refused",
        "{strict}"
    );
    assert_eq!(table(&strict)["v3-good.crt"][6], "accept", "{strict}");
}
