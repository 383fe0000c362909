//! `fleetmq certs audit --seen`: the real broker keeps the client
//! certificates of its handshakes (accepted and refused) in
//! `<data_dir>/seen-certificates`, and the audit judges them with the
//! settings of the configured listener, or with others given as flags.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::pki::openssl_pki::{ClientCert, OpensslPki};
use crate::harness::pki::toml_path;
use crate::harness::tools::Tool;
use crate::harness::{skip_on_mosquitto, Broker, ListenerSpec};

/// `mosquitto_pub` with `cert` to `port`: one QoS 1 message (so success
/// means the broker took it). Returns whether it succeeded.
fn publish(pki: &OpensslPki, port: u16, cert: &ClientCert, id: &str) -> bool {
    let port = port.to_string();
    let (ca, crt, key) = (
        pki.ca_cert.display().to_string(),
        cert.cert.display().to_string(),
        cert.key.display().to_string(),
    );
    let args = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "--cafile",
        &ca,
        "--cert",
        &crt,
        "--key",
        &key,
        "-i",
        id,
        "-q",
        "1",
        "-t",
        "lab/seen",
        "-m",
        "hello",
    ];
    let (status, _) = Tool::spawn("/usr/bin/mosquitto_pub", &args).finish(Duration::from_secs(5));
    status.is_some_and(|s| s.success())
}

/// The audit table's rows by the device's CN: (version, verdict).
fn verdicts(stdout: &str) -> HashMap<String, (String, String)> {
    stdout
        .lines()
        .filter(|line| line.ends_with(".pem") || line.contains(".pem | "))
        .filter_map(|line| {
            let columns: Vec<&str> = line.split(" | ").collect();
            let cn = columns
                .get(1)?
                .split(", ")
                .find_map(|p| p.strip_prefix("CN="))?;
            Some((
                cn.to_string(),
                (columns.get(3)?.to_string(), columns.get(7)?.to_string()),
            ))
        })
        .collect()
}

fn audit(cwd: &Path, args: &[&str]) -> String {
    let mut all = vec!["audit", "--seen"];
    all.extend_from_slice(args);
    super::certs_ok(cwd, &all)
}

#[test]
fn audit_seen_lists_the_devices_the_broker_accepted_and_refused() {
    if skip_on_mosquitto("fleetmq keeps the certificates it has seen; Mosquitto does not") {
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let pki = OpensslPki::generate(&temp.path().join("pki"));
    let v3 = pki.client("dev-v3", "lab", 365);
    let v1 = pki.client_v1("dev-v1");
    let foreign = pki.foreign_client("dev-foreign");
    let tls = format!(
        "cert = {}\nkey = {}\nclient_ca = {}\nclient_certs = \"required\"\n\
         accept_v1_client_certificates = true\n",
        toml_path(&pki.server_cert),
        toml_path(&pki.server_key),
        toml_path(&pki.ca_cert),
    );
    let broker = Broker::start_with_listeners(&[ListenerSpec::tls("devices", &tls)], "");
    let port = broker.addr_of("devices").port();

    assert!(publish(&pki, port, &v3, "dev-v3"), "{}", broker.logs());
    assert!(publish(&pki, port, &v1, "dev-v1"), "{}", broker.logs());
    // Twice: a known certificate is not kept again.
    assert!(publish(&pki, port, &v3, "dev-v3"), "{}", broker.logs());
    assert!(!publish(&pki, port, &foreign, "dev-foreign"));

    let seen = broker.dir().join("fleetmq-data").join("seen-certificates");
    let deadline = Instant::now() + Duration::from_secs(5);
    // Certificates kept, in whatever PEM files the folder holds.
    let count = || {
        std::fs::read_dir(&seen)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
                    .map(|text| text.matches("-----END CERTIFICATE-----").count())
                    .sum::<usize>()
            })
            .unwrap_or(0)
    };
    while count() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(count(), 3, "{}", broker.logs());
    assert_eq!(super::mode(&seen), 0o700);

    // "This configuration": the running broker's file, its listener.
    let config = broker.config_path().display().to_string();
    let stdout = audit(
        broker.dir(),
        &["--config", &config, "--listener", "devices"],
    );
    let rows = verdicts(&stdout);
    assert_eq!(rows.len(), 3, "{stdout}");
    assert_eq!(rows["dev-v3"], ("v3".into(), "accept".into()), "{stdout}");
    assert_eq!(rows["dev-v1"], ("v1".into(), "accept".into()), "{stdout}");
    assert_eq!(rows["dev-foreign"].1, "refuse:unknown_ca", "{stdout}");
    assert!(
        stdout.ends_with("3 certificates: 2 accepted, 1 refused\n"),
        "{stdout}"
    );

    // The same folder against a listener that accepts only v3.
    let data_dir = broker.dir().join("fleetmq-data").display().to_string();
    let ca = pki.ca_cert.display().to_string();
    let stdout = audit(temp.path(), &["--data-dir", &data_dir, "--ca", &ca]);
    let rows = verdicts(&stdout);
    assert_eq!(rows["dev-v1"].1, "refuse:v1_refused", "{stdout}");
    assert_eq!(rows["dev-v3"].1, "accept", "{stdout}");
}
