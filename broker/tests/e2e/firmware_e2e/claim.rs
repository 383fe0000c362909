//! The simulated firmware provisions itself by claim: `fleetmq-sim
//! --claim-state DIR` with only the batch's claim certificate makes a key
//! per device, asks the broker for its certificate, keeps both in DIR and
//! publishes `CONNECTED!` with its own certificate; started again, it uses
//! what it kept and asks nothing.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{sim, WAIT};
use crate::harness::{skip_on_mosquitto, Broker, ListenerSpec, RawClient};

const DEVICES: usize = 5;

fn certs(cwd: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_fleetmq"))
        .current_dir(cwd)
        .arg("certs")
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Waits for `count` distinct `CONNECTED!` topics on `watcher`.
pub(super) fn connected(
    watcher: &mut RawClient,
    count: usize,
) -> std::collections::BTreeSet<String> {
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + WAIT * 2;
    while seen.len() < count && Instant::now() < deadline {
        if let Some(fleetmq_codec::Packet::Publish(publish)) =
            watcher.recv_packet(Duration::from_millis(500))
        {
            if &publish.payload[..] == b"CONNECTED!" {
                seen.insert(publish.topic.to_string());
            }
        }
    }
    seen
}

/// A broker with provisioning by claim (`pattern`, certificates valid
/// `validity_secs`, renewal open `renew_before_secs` before the end) and a
/// device configuration with only the batch's claim certificate.
pub(super) struct ClaimLab {
    pub temp: tempfile::TempDir,
    pub pki: std::path::PathBuf,
    pub broker: Broker,
    pub config: std::path::PathBuf,
    pub flash: std::path::PathBuf,
}

pub(super) fn claim_lab(validity_secs: u32, renew_before_secs: u32) -> ClaimLab {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path();
    let pki = root.join("pki");
    let dir = pki.to_str().unwrap();
    certs(root, &["init", "--dir", dir]);
    // RSA: the ESP32's default suite (ECDHE-RSA) needs an RSA server key.
    certs(
        root,
        &["server", "--dir", dir, "--name", "localhost", "--rsa"],
    );
    certs(root, &["claim", "--dir", dir, "lab"]);
    let tls = format!(
        "cert = \"{dir}/server/localhost.crt\"\nkey = \"{dir}/server/localhost.key\"\n\
         client_ca = \"{dir}/ca.crt\"\ncrl = [\"{dir}/crl.pem\"]\nclient_certs = \"required\"\n"
    );
    let broker = Broker::start_with_listeners(
        &[ListenerSpec::tls("tls", &tls).with_settings("provision = true")],
        &format!(
            "[provision]\nenabled = true\npki_dir = \"{dir}\"\npolicy = \"pattern\"\nid_pattern = \"esp32_*\"\n\
             validity_secs = {validity_secs}\nrenew_before_secs = {renew_before_secs}\n"
        ),
    );

    let device_dir = root.join("device");
    let fs = device_dir.join("fs");
    std::fs::create_dir_all(&fs).unwrap();
    std::fs::copy(pki.join("ca.crt"), fs.join("ca.crt")).unwrap();
    let claim = pki.join("devices/claim-lab");
    std::fs::copy(claim.join("claim-lab.crt"), fs.join("claim.crt")).unwrap();
    std::fs::copy(claim.join("claim-lab.key"), fs.join("claim.key")).unwrap();
    let port = broker.addr_of("tls").port();
    let config = device_dir.join("device.toml");
    std::fs::write(
        &config,
        format!(
            "[mqtt]\nserver = \"127.0.0.1:{port}\"\nssl_ca_cert = \"ca.crt\"\nssl_server_name = \"localhost\"\n\
             ssl_cert = \"claim.crt\"\nssl_key = \"claim.key\"\nreconnect_timeout_min = 0.2\nreconnect_timeout_max = 1\n"
        ),
    )
    .unwrap();
    let flash = root.join("flash");
    std::fs::create_dir_all(&flash).unwrap();
    ClaimLab {
        temp,
        pki,
        broker,
        config,
        flash,
    }
}

#[test]
fn simulated_devices_with_only_the_claim_certificate_provision_themselves() {
    if skip_on_mosquitto("provisioning is fleetmq's") {
        return;
    }
    let ClaimLab {
        temp: _temp,
        pki,
        broker,
        config,
        flash,
    } = claim_lab(60, 58);
    let mut watcher = RawClient::connect_v311(broker.addr(), "watcher", true).0;
    watcher.subscribe(1, "/this/test/#", 0);
    let devices = DEVICES.to_string();
    let flash_arg = flash.to_str().unwrap();

    let issued_at = Instant::now();
    let mut first = sim(
        &config,
        &["--devices", &devices, "--claim-state", flash_arg],
    );
    let seen = connected(&mut watcher, DEVICES);
    assert_eq!(seen.len(), DEVICES, "{seen:?}\n{}", first.text());
    first.expect("PROV certificate issued");
    first.kill();
    for entry in std::fs::read_dir(&flash).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "key") {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        if path.extension().is_some_and(|ext| ext == "crt") {
            let output = Command::new("/usr/bin/openssl")
                .args(["verify", "-purpose", "sslclient", "-CAfile"])
                .arg(pki.join("ca.crt"))
                .arg(&path)
                .output()
                .unwrap();
            assert!(output.status.success(), "{output:?}");
        }
    }
    let issued = broker.count_log_lines(&["Issued certificate", "(claim)"]);
    assert_eq!(issued, DEVICES, "{}", broker.logs());

    // Started again: the kept key and certificate, nothing asked.
    let mut second = sim(
        &config,
        &[
            "--devices",
            &devices,
            "--claim-state",
            flash_arg,
            "--renew-before-secs",
            "0",
        ],
    );
    let seen = connected(&mut watcher, DEVICES);
    assert_eq!(seen.len(), DEVICES, "{seen:?}\n{}", second.text());
    second.expect("PROV using the stored certificate");
    second.kill();
    assert_eq!(
        broker.count_log_lines(&["Issued certificate", "(claim)"]),
        DEVICES
    );

    // Within the renewal window (58 of 60 s left): each device renews with
    // its own certificate at start, and the replaced one is revoked once
    // the new one is used.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(issued_at.elapsed()));
    let third = sim(
        &config,
        &[
            "--devices",
            &devices,
            "--claim-state",
            flash_arg,
            "--renew-before-secs",
            "58",
        ],
    );
    let seen = connected(&mut watcher, DEVICES);
    assert_eq!(seen.len(), DEVICES, "{seen:?}\n{}", third.text());
    third.expect("PROV certificate renewed");
    assert!(
        broker.wait_for_log_lines(&["its renewal was first used"], DEVICES, WAIT) >= DEVICES,
        "{}",
        broker.logs()
    );
    // With 2 s between the renewal threshold and the broker's window, the
    // devices' renewal timers fire again soon: at least one each.
    assert!(broker.count_log_lines(&["Issued certificate", "(renewal)"]) >= DEVICES);
}
