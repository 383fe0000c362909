//! `[ota] listeners`: the OTA topics are served only to devices that
//! connected through a listed listener; on another listener a device's
//! own OTA topics are refused like any topic it may not use.

use std::time::{Duration, Instant};

use super::lab::{self, Lab};

fn document(lab: &Lab) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(lab.ota.join("rollouts/r.json")).unwrap()).unwrap()
}

#[test]
fn ota_topics_are_served_only_on_the_listeners_named_in_ota_listeners() {
    if crate::harness::skip_on_mosquitto("firmware updates are fleetmq's") {
        return;
    }
    let lab = Lab::new(2);
    let broker = lab.broker_with(&["tls", "lab"], "listeners = [\"tls\"]\n");
    broker.assert_log("Firmware updates on", Duration::from_secs(10));
    lab.upload(&broker, "1.1.0", 2000, b"");
    let (served, elsewhere) = (lab::device_id(0), lab::device_id(1));
    lab.rollout(
        &broker,
        "r",
        "1.1.0",
        &["--devices", &format!("{served},{elsewhere}")],
    );
    // The broker took the rollout up: both devices are offered.
    let deadline = Instant::now() + Duration::from_secs(10);
    while document(&lab)["status"][&elsewhere]["state"] != "offered" {
        assert!(Instant::now() < deadline, "{:#}", document(&lab));
        std::thread::sleep(Duration::from_millis(100));
    }

    // Device 1, through `lab`: its own topics are refused, its status
    // never reaches the rollout.
    let mut outsider = lab.device_client_on(&broker, "lab", 1);
    for (id, leaf) in [(1, "offer"), (2, "chunk")] {
        let refused = outsider.subscribe(id, &format!("$fleetmq/ota/{elsewhere}/{leaf}"), 1);
        assert!(refused[0].is_error(), "{leaf}: {refused:?}");
    }
    outsider.publish(
        &format!("$fleetmq/ota/{elsewhere}/status"),
        br#"{"state":"failed","version":"1.1.0","running":"1.0.0","reason":"forged"}"#,
        1,
        false,
    );
    broker.assert_log(
        &format!("Denied publish on '$fleetmq/ota/{elsewhere}/status'"),
        Duration::from_secs(5),
    );
    assert!(broker
        .logs()
        .contains("firmware updates are not served on this listener"));

    // Device 0, through `tls`: offered the update as usual.
    let mut device = lab.device_client_on(&broker, "tls", 0);
    let granted = device.subscribe(1, &format!("$fleetmq/ota/{served}/offer"), 1);
    assert!(!granted[0].is_error(), "{granted:?}");
    device.publish(
        &format!("$fleetmq/ota/{served}/status"),
        br#"{"state":"idle","running":"1.0.0"}"#,
        1,
        false,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let offer = loop {
        assert!(Instant::now() < deadline, "no offer to {served}");
        if let Some(fleetmq_codec::Packet::Publish(publish)) =
            device.recv_packet(Duration::from_millis(200))
        {
            break publish;
        }
    };
    assert_eq!(&*offer.topic, format!("$fleetmq/ota/{served}/offer"));
    assert!(offer.payload.starts_with(b"fleetmq-ota-manifest-v1\n"));

    // The forged `failed` would have been handled before device 0's
    // report (one queue) and written soon after: give the writer a moment.
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let doc = document(&lab);
        assert_eq!(doc["status"][&elsewhere]["state"], "offered", "{doc:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
