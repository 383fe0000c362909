//! Firmware updates on the device's usual loop (docs/ota.md): the real
//! `fleetmq` with `[ota]`, real `fleetmq-sim` processes running the same
//! device loop and OTA agent as the ESP32 (`runner::ota`), mbedTLS, PKI
//! made with `fleetmq certs`.
//!
//! - A device that provisions itself by claim certificate is then updated
//!   by a rollout, on the certificate it was issued.
//! - A device SIGKILLed in the middle of a download resumes it from the
//!   progress it kept in flash, not from chunk 0.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{skip_on_mosquitto, Broker, ListenerSpec};
use crate::ota::lab::{self, Lab};

/// A `fleetmq-sim` process writing to a log file; SIGKILLed on drop.
struct SimProcess {
    child: Child,
    log: std::path::PathBuf,
}

impl SimProcess {
    fn start(log: &Path, args: &[&str]) -> SimProcess {
        let out = std::fs::File::create(log).unwrap();
        let child = Command::new(lab::sim_binary())
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        SimProcess {
            child,
            log: log.to_path_buf(),
        }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{needle:?} not printed in {timeout:?}:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

fn certs(cwd: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_fleetmq"))
        .current_dir(cwd)
        .arg("certs")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
}

#[test]
fn a_device_provisioned_by_claim_is_updated_by_a_rollout() {
    if skip_on_mosquitto("firmware updates are fleetmq's") {
        return;
    }
    let lab = Lab::new(1);
    let dir = lab.pki.to_str().unwrap();
    certs(&lab.root, &["claim", "--dir", dir, "batch"]);
    let tls = format!(
        "cert = \"{dir}/server/localhost.crt\"\nkey = \"{dir}/server/localhost.key\"\n\
         client_ca = \"{dir}/ca.crt\"\ncrl = [\"{dir}/crl.pem\"]\nclient_certs = \"required\"\n"
    );
    let broker = Broker::start_with_listeners(
        &[ListenerSpec::tls("tls", &tls).with_settings("provision = true")],
        &format!(
            "[provision]\nenabled = true\npki_dir = \"{dir}\"\npolicy = \"pattern\"\nid_pattern = \"esp32_*\"\n\n\
             [ota]\nenabled = true\ndir = \"{}\"\npki_dir = \"{dir}\"\nchunk_bytes = 1024\n\
             max_image_bytes = 65536\ndevice_timeout_secs = 120\n\n[log]\nlevel = \"info\"\n",
            lab.ota.display()
        ),
    );
    broker.assert_log("Firmware updates on", Duration::from_secs(10));

    // The device has only the batch's claim certificate.
    let device = lab.root.join("claim-device");
    let fs = device.join("fs");
    std::fs::create_dir_all(&fs).unwrap();
    std::fs::copy(lab.pki.join("ca.crt"), fs.join("ca.crt")).unwrap();
    let claim = lab.pki.join("devices/claim-batch");
    std::fs::copy(claim.join("claim-batch.crt"), fs.join("claim.crt")).unwrap();
    std::fs::copy(claim.join("claim-batch.key"), fs.join("claim.key")).unwrap();
    let port = broker.addr_of("tls").port();
    let config = device.join("device.toml");
    std::fs::write(
        &config,
        format!(
            "[mqtt]\nserver = \"127.0.0.1:{port}\"\nssl_ca_cert = \"ca.crt\"\nssl_server_name = \"localhost\"\n\
             ssl_cert = \"claim.crt\"\nssl_key = \"claim.key\"\nreconnect_timeout_min = 0.2\nreconnect_timeout_max = 1\n"
        ),
    )
    .unwrap();
    let identity = device.join("identity");
    let flash = device.join("flash");
    std::fs::create_dir_all(&identity).unwrap();
    let key = lab.pki.join("ota-signing.pub");
    let sim = SimProcess::start(
        &device.join("sim.log"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--mac",
            "24:0A:C4:00:00:01",
            "--claim-state",
            identity.to_str().unwrap(),
            "--ota-flash",
            flash.to_str().unwrap(),
            "--ota-key",
            key.to_str().unwrap(),
        ],
    );
    sim.wait_for("PROV certificate issued", Duration::from_secs(60));
    sim.wait_for("MQTT connected", Duration::from_secs(60));

    let image = lab.image("1.1.0", 5000, b"");
    lab.firmware_ok(
        &broker,
        &[
            "upload",
            image.to_str().unwrap(),
            "--version",
            "1.1.0",
            "--chip",
            "esp32c3",
        ],
    );
    lab.firmware_ok(
        &broker,
        &[
            "rollout",
            "--version",
            "1.1.0",
            "--chip",
            "esp32c3",
            "--devices",
            "esp32_000001",
            "--id",
            "claimed",
        ],
    );
    // wait_rollout prints a lab sim's log on failure; ours is printed below.
    let deadline = Instant::now() + Duration::from_secs(90);
    let path = lab.ota.join("rollouts/claimed.json");
    let status = loop {
        let doc: Option<serde_json::Value> = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        if let Some(doc) = doc.filter(|d| d["state"] == "done") {
            break doc["status"]["esp32_000001"].clone();
        }
        assert!(Instant::now() < deadline, "not done:\n{}", sim.text());
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = sim.text();
    assert_eq!(status["state"], "running", "{status}\n{text}");
    assert_eq!(status["running"], "1.1.0", "{status}\n{text}");
    // Provisioned once, by claim; after the reset into the new slot the
    // device used the certificate it kept, and confirmed the new version
    // online with it.
    assert_eq!(text.matches("PROV certificate issued").count(), 1, "{text}");
    let reset = text.find("OTA reset into the new slot").expect(&text);
    let after = &text[reset..];
    assert!(
        after.contains("OTA boot: slot ota_1 version 1.1.0 (pending verify)"),
        "{text}"
    );
    assert!(
        after.contains("PROV using the stored certificate"),
        "{text}"
    );
    assert!(
        after.contains("OTA confirmed version 1.1.0: online with it"),
        "{text}"
    );
}

/// `OTA chunk N written` lines of a log, in order.
fn chunks_written(text: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|line| {
            line.split("OTA chunk ")
                .nth(1)?
                .strip_suffix(" written")?
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn a_device_killed_mid_download_resumes_from_its_saved_progress() {
    if skip_on_mosquitto("firmware updates are fleetmq's") {
        return;
    }
    let lab = Lab::new(1);
    let broker = lab.broker();
    // 100 ms per chunk: the 40 chunks take about 4 s, time to kill it.
    let first = lab.sim(
        &broker,
        1,
        &["--ota-log-chunks", "--ota-chunk-delay-ms", "100"],
    );
    first.wait_count("MQTT connected", 1, Duration::from_secs(60));
    // 40 chunks of 1 KiB: 256 bytes of header and descriptor, the body, 100 spare.
    let image = lab.image("1.2.0", 40 * 1024 - 256 - 100, b"");
    lab.firmware_ok(
        &broker,
        &[
            "upload",
            image.to_str().unwrap(),
            "--version",
            "1.2.0",
            "--chip",
            "esp32c3",
        ],
    );
    lab.firmware_ok(
        &broker,
        &[
            "rollout",
            "--version",
            "1.2.0",
            "--chip",
            "esp32c3",
            "--devices",
            &lab::device_id(0),
            "--id",
            "killed",
        ],
    );
    first.wait_count("OTA chunk 13 written", 1, Duration::from_secs(60));
    let before = first.text();
    drop(first); // SIGKILL, mid-download
    let written_before = chunks_written(&before);
    let last = *written_before.last().unwrap();
    assert!((13..39).contains(&last), "{before}");
    assert_eq!(written_before, (0..=last).collect::<Vec<_>>(), "{before}");

    let second = lab.sim(&broker, 1, &["--ota-log-chunks"]);
    let rollout = lab.wait_rollout(
        "killed",
        |r| r["state"] == "done",
        Duration::from_secs(90),
        &second,
    );
    let status = &rollout["status"][lab::device_id(0)];
    let after = second.text();
    assert_eq!(status["state"], "running", "{status}\n{after}");
    assert_eq!(status["running"], "1.2.0", "{status}\n{after}");
    // It took up the download at the start of the flash sector holding
    // its next chunk (1 KiB chunks, 4 KiB sectors), not at chunk 0 ...
    let from = (last + 1) / 4 * 4;
    assert!(
        after.contains(&format!(
            "OTA resuming 1.2.0 from chunk {from} of 40 after a reset"
        )),
        "{after}"
    );
    // ... fetched only the rest ...
    let written_after = chunks_written(&after);
    assert_eq!(written_after, (from..40).collect::<Vec<_>>(), "{after}");
    assert!(from > 0);
    // ... and the image it verified and runs is whole.
    assert!(
        after.contains("OTA confirmed version 1.2.0: online with it"),
        "{after}"
    );
}
