//! Firmware updates over MQTT (issue 21, docs/ota.md) end to end: the
//! real `fleetmq` with a mutual-TLS listener and `[ota]` on, images
//! uploaded and rollouts made with the real `fleetmq firmware`, and a
//! fleet of real `fleetmq-sim` processes (the firmware's OTA agent over
//! file-backed flash, mbedTLS) fetching chunks on loopback. The PKI is
//! made with `fleetmq certs`. Images are small (a few KiB) so that 20
//! devices fit a 2-core machine.

mod lab;

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

    let image = lab.image("1.1.0", 6000, b"");
    lab.firmware_ok(&broker, &["upload", image.to_str().unwrap(), "--version", "1.1.0", "--chip", "esp32c3"]);
    lab.firmware_ok(
        &broker,
        &["rollout", "--version", "1.1.0", "--chip", "esp32c3", "--group", DEVICE_GROUP, "--waves", "3", "--id", "r1"],
    );

    let rollout = lab.wait_rollout("r1", |r| r["state"] == "done", Duration::from_secs(120), &sim);
    for (device, status) in rollout["status"].as_object().unwrap() {
        assert_eq!(status["state"], "running", "{device}: {status}");
        assert_eq!(status["running"], "1.1.0", "{device}: {status}");
    }
    assert_eq!(rollout["status"].as_object().unwrap().len(), 20);
    for wave in ["wave 1/3", "wave 2/3", "wave 3/3"] {
        assert!(broker.logs().contains(wave), "{wave} missing:\n{}", broker.logs());
    }
    let text = sim.text();
    assert_eq!(text.matches("OTA chunk 2 rejected (sha256 mismatch); fetching it again").count(), 20, "{text}");
    assert_eq!(text.matches("OTA confirmed version 1.1.0: online with it").count(), 20, "{text}");
    // The devices run the new version from the other slot.
    assert_eq!(text.matches("OTA boot: slot ota_1 version 1.1.0 (pending verify)").count(), 20);
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
    std::fs::write(&c6, fleetmq_firmware::ota::image::build(0x000D, "2.0.0", b"c6")).unwrap();
    let big = lab.image("2.0.0", 70_000, b"");
    let missing = lab.root.join("missing.bin");
    let cases: [(&[&str], &str); 6] = [
        (&["upload", empty.to_str().unwrap(), "--version", "2.0.0", "--chip", "esp32c3"], "the image is empty"),
        (&["upload", good.to_str().unwrap(), "--version", "2.0.0", "--chip", "esp8266"], "unknown chip `esp8266`"),
        (&["upload", c6.to_str().unwrap(), "--version", "2.0.0", "--chip", "esp32c3"], "not esp32c3"),
        (&["upload", big.to_str().unwrap(), "--version", "2.0.0", "--chip", "esp32c3"], "more than an OTA slot takes"),
        (&["upload", good.to_str().unwrap(), "--version", "2.0.1", "--chip", "esp32c3"], "says version `2.0.0`, not `2.0.1`"),
        (&["upload", missing.to_str().unwrap(), "--version", "2.0.0", "--chip", "esp32c3"], "missing.bin"),
    ];
    for (args, message) in cases {
        let stderr = lab.firmware_err(&broker, args);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert!(lab.stored_images().is_empty(), "{:?}", lab.stored_images());

    lab.firmware_ok(&broker, &["upload", good.to_str().unwrap(), "--version", "2.0.0", "--chip", "esp32c3"]);
    let stderr = lab.firmware_err(&broker, &["upload", good.to_str().unwrap(), "--version", "2.0.0", "--chip", "esp32c3"]);
    assert!(stderr.contains("already uploaded"), "{stderr}");
    assert_eq!(lab.stored_images(), vec![String::from("esp32c3/2.0.0")]);
    // The key is the broker's, private.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(lab.pki.join("ota-signing.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let refusals: [(&[&str], &str); 3] = [
        (&["rollout", "--version", "2.0.0", "--chip", "esp32c3", "--group", "nobody"], "unknown group `nobody`"),
        (&["rollout", "--version", "9.9.9", "--chip", "esp32c3", "--devices", "a,b"], "no image 9.9.9"),
        (&["rollout", "--version", "2.0.0", "--chip", "esp32c3", "--devices", "a,b,c,d,e", "--waves", "10%,50%"], "last wave must reach 100%"),
    ];
    for (args, message) in refusals {
        let stderr = lab.firmware_err(&broker, args);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert!(!lab.ota.join("rollouts").exists() || std::fs::read_dir(lab.ota.join("rollouts")).unwrap().next().is_none());
}
