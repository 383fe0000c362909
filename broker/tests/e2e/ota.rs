//! Firmware updates over MQTT (issue 21, docs/ota.md) end to end: the
//! real `fleetmq` with a mutual-TLS listener and `[ota]` on, images
//! uploaded and rollouts made with the real `fleetmq firmware`, and a
//! fleet of real `fleetmq-sim` processes (the firmware's OTA agent over
//! file-backed flash, mbedTLS) fetching chunks on loopback. The PKI is
//! made with `fleetmq certs`. Images are small (a few KiB) so that 20
//! devices fit a 2-core machine.

mod halt;
pub(crate) mod lab;
mod listeners;

use std::time::Duration;

use lab::{Lab, DEVICE_GROUP};

#[test]
fn a_fleet_of_twenty_updates_in_three_waves_refetching_a_corrupt_chunk() {
    if crate::harness::skip_on_mosquitto("firmware updates are fleetmq's") {
        return;
    }
    let lab = Lab::new(20);
    let broker = lab.broker();
    let sim = lab.sim(&broker, 20, &["--ota-corrupt-chunk", "2"]);
    sim.wait_count("MQTT connected", 20, Duration::from_secs(60));

    lab.upload(&broker, "1.1.0", 6000, b"");
    lab.rollout(
        &broker,
        "r1",
        "1.1.0",
        &["--group", DEVICE_GROUP, "--waves", "3"],
    );

    let rollout = lab.wait_rollout(
        "r1",
        |r| r["state"] == "done",
        Duration::from_secs(120),
        &sim,
    );
    for (device, status) in rollout["status"].as_object().unwrap() {
        assert_eq!(status["state"], "running", "{device}: {status}");
        assert_eq!(status["running"], "1.1.0", "{device}: {status}");
    }
    assert_eq!(rollout["status"].as_object().unwrap().len(), 20);
    for wave in ["wave 1/3", "wave 2/3", "wave 3/3"] {
        assert!(
            broker.logs().contains(wave),
            "{wave} missing:\n{}",
            broker.logs()
        );
    }
    let text = sim.text();
    assert_eq!(
        text.matches("OTA chunk 2 rejected (sha256 mismatch); fetching it again")
            .count(),
        20,
        "{text}"
    );
    assert_eq!(
        text.matches("OTA confirmed version 1.1.0: online with it")
            .count(),
        20,
        "{text}"
    );
    // The devices run the new version from the other slot.
    assert_eq!(
        text.matches("OTA boot: slot ota_1 version 1.1.0 (pending verify)")
            .count(),
        20
    );
}

#[test]
fn bad_uploads_and_rollouts_are_refused_and_nothing_is_stored() {
    if crate::harness::skip_on_mosquitto("firmware updates are fleetmq's") {
        return;
    }
    let lab = Lab::new(1);
    let broker = lab.broker();
    let good = lab.image("2.0.0", 3000, b"");
    let empty = lab.root.join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    let c6 = lab.root.join("c6.bin");
    std::fs::write(
        &c6,
        fleetmq_firmware::ota::image::build(0x000D, "2.0.0", b"c6"),
    )
    .unwrap();
    let big = lab.image("2.0.0", 70_000, b"");
    let missing = lab.root.join("missing.bin");
    let upload = |file: &std::path::Path, version: &str, chip: &str| -> Vec<String> {
        [
            "upload",
            file.to_str().unwrap(),
            "--version",
            version,
            "--chip",
            chip,
        ]
        .map(String::from)
        .to_vec()
    };
    let cases = [
        (upload(&empty, "2.0.0", "esp32c3"), "the image is empty"),
        (upload(&good, "2.0.0", "esp8266"), "unknown chip `esp8266`"),
        (upload(&c6, "2.0.0", "esp32c3"), "not esp32c3"),
        (
            upload(&big, "2.0.0", "esp32c3"),
            "more than an OTA slot takes",
        ),
        (
            upload(&good, "2.0.1", "esp32c3"),
            "says version `2.0.0`, not `2.0.1`",
        ),
        (upload(&missing, "2.0.0", "esp32c3"), "missing.bin"),
    ];
    for (args, message) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stderr = lab.firmware_err(&broker, &args);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    // The HTTP API refuses the same way.
    let refused = crate::harness::web::request(
        broker.http_addr(),
        "POST",
        "/api/ota/images/esp32c3/2.0.0",
        &[],
        "not an image",
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("not an ESP application image"),
        "{}",
        refused.body
    );
    assert!(lab.stored_images().is_empty(), "{:?}", lab.stored_images());

    let again = upload(&good, "2.0.0", "esp32c3");
    let again: Vec<&str> = again.iter().map(String::as_str).collect();
    lab.firmware_ok(&broker, &again);
    let stderr = lab.firmware_err(&broker, &again);
    assert!(stderr.contains("already uploaded"), "{stderr}");
    assert_eq!(lab.stored_images(), vec![String::from("esp32c3/2.0.0")]);
    // The key is the broker's, private.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(lab.pki.join("ota-signing.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let refusals: [(&[&str], &str); 3] = [
        (
            &[
                "rollout",
                "--version",
                "2.0.0",
                "--chip",
                "esp32c3",
                "--group",
                "nobody",
            ],
            "unknown group `nobody`",
        ),
        (
            &[
                "rollout",
                "--version",
                "9.9.9",
                "--chip",
                "esp32c3",
                "--devices",
                "a,b",
            ],
            "no image 9.9.9",
        ),
        (
            &[
                "rollout",
                "--version",
                "2.0.0",
                "--chip",
                "esp32c3",
                "--devices",
                "a,b,c,d,e",
                "--waves",
                "10%,50%",
            ],
            "last wave must reach 100%",
        ),
    ];
    for (args, message) in refusals {
        let stderr = lab.firmware_err(&broker, args);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    // Without a usable signing key nothing can be signed, so nothing is stored.
    std::fs::write(lab.pki.join("ota-signing.key"), b"not a key").unwrap();
    let next = lab.image("2.0.1", 3000, b"");
    let next = upload(&next, "2.0.1", "esp32c3");
    let stderr = lab.firmware_err(
        &broker,
        &next.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(stderr.contains("not an Ed25519 PKCS#8 key"), "{stderr}");
    assert_eq!(lab.stored_images(), vec![String::from("esp32c3/2.0.0")]);
    assert!(
        !lab.ota.join("rollouts").exists()
            || std::fs::read_dir(lab.ota.join("rollouts"))
                .unwrap()
                .next()
                .is_none()
    );
}

/// The Ed25519 base point: a valid public key that signed nothing of ours.
const FOREIGN_KEY: &str = "5866666666666666666666666666666666666666666666666666666666666666";

#[test]
fn a_version_that_never_reconnects_rolls_back_and_a_foreign_signature_is_refused() {
    if crate::harness::skip_on_mosquitto("firmware updates are fleetmq's") {
        return;
    }
    let lab = Lab::new(3);
    let broker = lab.broker();
    let fleet = lab.sim(&broker, 2, &["--ota-confirm-secs", "3"]);
    let foreign = lab.root.join("foreign.pub");
    std::fs::write(&foreign, FOREIGN_KEY).unwrap();
    let third = lab::device_mac(2);
    let doubter = lab.sim_with_key(&broker, 1, &foreign, &["--mac", &third]);
    fleet.wait_count("MQTT connected", 2, Duration::from_secs(30));
    doubter.wait_count("MQTT connected", 1, Duration::from_secs(30));

    lab.upload(&broker, "1.2.0", 4000, b"FLEETMQ-SIM-NEVER-CONNECTS");
    let devices = format!("{},{}", lab::device_id(0), lab::device_id(1));
    // Both roll back: the first must not halt the rollout before
    // the second is heard (decision 0176).
    lab.rollout(
        &broker,
        "silent",
        "1.2.0",
        &["--devices", &devices, "--max-failures", "2"],
    );
    lab.upload(&broker, "1.3.0", 4000, b"");
    lab.rollout(
        &broker,
        "foreign",
        "1.3.0",
        &["--devices", &lab::device_id(2)],
    );

    let rollout = lab.wait_rollout(
        "silent",
        |r| r["state"] == "done",
        Duration::from_secs(60),
        &fleet,
    );
    for (device, status) in rollout["status"].as_object().unwrap() {
        assert_eq!(status["state"], "rolled_back", "{device}: {status}");
        assert_eq!(status["running"], "1.0.0", "{device}: {status}");
        assert!(
            status["reason"]
                .as_str()
                .unwrap()
                .contains("not confirmed online"),
            "{status}"
        );
    }
    let text = fleet.text();
    assert_eq!(
        text.matches("OTA version 1.2.0 never connects (simulated)")
            .count(),
        2,
        "{text}"
    );
    assert_eq!(
        text.matches("OTA watchdog reset: not confirmed in time")
            .count(),
        2,
        "{text}"
    );
    // Back on the factory image in ota_0 after the watchdog reset.
    assert!(
        text.matches("OTA boot: slot ota_0 version 1.0.0").count() >= 4,
        "{text}"
    );

    let rollout = lab.wait_rollout(
        "foreign",
        |r| r["state"] == "done",
        Duration::from_secs(30),
        &doubter,
    );
    let status = &rollout["status"][lab::device_id(2)];
    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(status["reason"], "bad signature", "{status}");
    let text = doubter.text();
    assert!(text.contains("OTA 1.3.0 failed: bad signature"), "{text}");
    assert!(!text.contains("OTA offer 1.3.0"), "{text}");
}

#[test]
fn a_broker_killed_mid_rollout_resumes_it_at_its_wave() {
    if crate::harness::skip_on_mosquitto("firmware updates are fleetmq's") {
        return;
    }
    let lab = Lab::new(6);
    let mut broker = lab.broker();
    // Only the first wave's devices are on: the rollout waits in wave 2.
    let first = lab.sim(&broker, 2, &[]);
    first.wait_count("MQTT connected", 2, Duration::from_secs(30));
    lab.upload(&broker, "1.1.0", 5000, b"");
    lab.rollout(
        &broker,
        "r",
        "1.1.0",
        &["--group", DEVICE_GROUP, "--waves", "3"],
    );
    let waiting = lab.wait_rollout("r", |r| r["wave"] == 1, Duration::from_secs(60), &first);
    assert_eq!(waiting["state"], "running");
    assert_eq!(
        waiting["status"][lab::device_id(0)]["state"],
        "running",
        "{waiting:#}"
    );
    assert_eq!(
        waiting["status"][lab::device_id(2)]["state"],
        "offered",
        "{waiting:#}"
    );
    drop(first);

    broker.kill9();
    broker.restart();
    broker.assert_log(
        "OTA rollout r of 1.1.0 resumed at wave 2/3",
        Duration::from_secs(10),
    );
    let fleet = lab.sim(&broker, 6, &[]);
    let done = lab.wait_rollout(
        "r",
        |r| r["state"] == "done",
        Duration::from_secs(90),
        &fleet,
    );
    for (device, status) in done["status"].as_object().unwrap() {
        assert_eq!(status["state"], "running", "{device}: {status}");
    }
    // The first wave was not updated twice.
    assert_eq!(
        fleet.text().matches("OTA offer 1.1.0").count(),
        4,
        "{}",
        fleet.text()
    );
}

#[test]
fn a_device_uses_only_its_own_ota_topics_and_nobody_forges_a_chunk() {
    if crate::harness::skip_on_mosquitto("firmware updates are fleetmq's") {
        return;
    }
    let lab = Lab::new(2);
    let broker = lab.broker();
    broker.assert_log("Firmware updates on", Duration::from_secs(10));
    let (me, other) = (lab::device_id(0), lab::device_id(1));
    let mut device = lab.device_client(&broker, 0);
    let granted = device.subscribe(1, &format!("$fleetmq/ota/{me}/chunk"), 1);
    assert!(!granted[0].is_error(), "{granted:?}");
    for filter in [
        format!("$fleetmq/ota/{other}/chunk"),
        format!("$fleetmq/ota/{other}/offer"),
        "$fleetmq/ota/#".into(),
    ] {
        let refused = device.subscribe(2, &filter, 1);
        assert!(refused[0].is_error(), "{filter}: {refused:?}");
    }
    // A client without a certificate of its own has no OTA topics at all.
    let (mut plain, _) = crate::harness::RawClient::connect_v311(broker.addr(), "plain-1", true);
    let refused = plain.subscribe(1, "$fleetmq/ota/plain-1/offer", 1);
    assert!(refused[0].is_error(), "{refused:?}");

    // The other device listens; a forged chunk and offer never reach it.
    let mut victim = lab.device_client(&broker, 1);
    victim.subscribe(1, &format!("$fleetmq/ota/{other}/chunk"), 1);
    victim.subscribe(2, &format!("$fleetmq/ota/{other}/offer"), 1);
    device.publish(&format!("$fleetmq/ota/{other}/chunk"), b"forged", 1, false);
    device.publish(&format!("$fleetmq/ota/{other}/offer"), b"forged", 1, false);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        if let Some(fleetmq_codec::Packet::Publish(publish)) =
            victim.recv_packet(Duration::from_millis(200))
        {
            panic!("a forged message was delivered: {publish:?}");
        }
    }
}
