//! A rollout halts itself when failures and rollbacks in its wave reach
//! `--max-failures` (decision 0176), says why in the document, the API,
//! the metrics, the CLI and the log, and goes on when resumed.

use std::time::Duration;

use super::lab::{self, Lab};
use crate::harness::web;

#[test]
fn a_wave_of_devices_refusing_the_signature_halts_the_rollout_before_wave_two() {
    if crate::harness::skip_on_mosquitto("firmware updates are fleetmq's") {
        return;
    }
    let lab = Lab::new(6);
    let broker = lab.broker();
    // Wave 1 (devices 0 and 1) was built with another key: both refuse.
    let foreign = lab.root.join("foreign.pub");
    std::fs::write(&foreign, super::FOREIGN_KEY).unwrap();
    let doubters = lab.sim_with_key(&broker, 2, &foreign, &[]);
    let fleet = lab.sim(&broker, 4, &["--mac", &lab::device_mac(2)]);
    doubters.wait_count("MQTT connected", 2, Duration::from_secs(30));
    fleet.wait_count("MQTT connected", 4, Duration::from_secs(30));
    lab.upload(&broker, "1.1.0", 3000, b"");

    let devices: Vec<String> = (0..6).map(lab::device_id).collect();
    let devices = devices.join(",");
    let refused = lab.firmware_err(
        &broker,
        &[
            "rollout",
            "--version",
            "1.1.0",
            "--chip",
            "esp32c3",
            "--devices",
            &devices,
            "--max-failures",
            "0",
        ],
    );
    assert!(refused.contains("--max-failures `0`"), "{refused}");
    lab.rollout(
        &broker,
        "r",
        "1.1.0",
        &["--devices", &devices, "--waves", "3", "--max-failures", "1"],
    );

    let halted = lab.wait_rollout(
        "r",
        |r| {
            r["state"] == "halted"
                && r["status"][lab::device_id(0)]["state"] == "failed"
                && r["status"][lab::device_id(1)]["state"] == "failed"
        },
        Duration::from_secs(60),
        &doubters,
    );
    assert_eq!(halted["wave"], 0, "{halted:#}");
    let reason = halted["reason"].as_str().unwrap();
    assert!(
        reason.contains("of the 2 devices of wave 1/3 failed or rolled back (--max-failures 1)"),
        "{reason}"
    );
    for n in 2..6 {
        assert_eq!(
            halted["status"][lab::device_id(n)]["state"],
            "waiting",
            "{halted:#}"
        );
    }
    broker.assert_log("OTA rollout r of 1.1.0 halted: ", Duration::from_secs(5));
    // Halted stays halted: wave 2 is not offered.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !fleet.text().contains("OTA offer 1.1.0"),
        "{}",
        fleet.text()
    );

    let api = web::request(broker.http_addr(), "GET", "/api/ota/rollouts", &[], "");
    assert_eq!(api.status, 200, "{}", api.body);
    let api: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(api["rollouts"][0]["state"], "halted");
    assert_eq!(api["rollouts"][0]["reason"], reason);
    let metrics = web::request(broker.http_addr(), "GET", "/metrics", &[], "").body;
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("fleetmq_ota_rollout_wave{")
                && line.contains(r#"rollout="r""#)
                && line.contains(r#"state="halted""#)
                && line.ends_with(" 1")),
        "{metrics}"
    );
    let status = lab.firmware_ok(&broker, &["status", "r"]);
    assert!(
        status.contains("Halted") && status.contains(reason),
        "{status}"
    );

    // Resumed, the two failures are accepted and waves 2 and 3 go on.
    lab.firmware_ok(&broker, &["resume", "r"]);
    let done = lab.wait_rollout(
        "r",
        |r| r["state"] == "done",
        Duration::from_secs(90),
        &fleet,
    );
    assert!(done.get("reason").is_none(), "{done:#}");
    for n in 2..6 {
        assert_eq!(
            done["status"][lab::device_id(n)]["state"],
            "running",
            "{done:#}"
        );
    }
}
