//! A connected simulated device renews its certificate when the renewal
//! threshold passes, without a restart: its timer closes the connection
//! (DISCONNECT, no will), it asks with its own certificate, keeps the new
//! one and reconnects with it, which the broker sees as the renewal's
//! first use.

use std::process::Command;
use std::time::{Duration, Instant};

use super::claim::{claim_lab, ClaimLab};
use super::{sim, WAIT};
use crate::harness::{skip_on_mosquitto, RawClient};

#[test]
fn a_connected_device_renews_on_its_timer_and_reconnects_with_the_new_certificate() {
    if skip_on_mosquitto("provisioning is fleetmq's") {
        return;
    }
    // Certificates of 60 s, renewal open in the last 58 s; the device
    // renews 55 s before the end: about 5 s after it first connects.
    let ClaimLab {
        temp: _temp,
        pki,
        broker,
        config,
        flash,
    } = claim_lab(60, 58);
    let mut watcher = RawClient::connect_v311(broker.addr(), "watcher", true).0;
    watcher.subscribe(1, "/this/test/#", 0);
    let mut device = sim(
        &config,
        &[
            "--claim-state",
            flash.to_str().unwrap(),
            "--renew-before-secs",
            "55",
        ],
    );
    device.expect("PROV certificate issued");
    let cert_path = flash.join("esp32_807A98.crt");
    let first = std::fs::read(&cert_path).unwrap();

    device.expect("MQTT0 disconnected: the certificate is due for renewal");
    device.expect("PROV certificate renewed");
    assert!(
        broker.wait_for_log_lines(&["its renewal was first used"], 1, WAIT) >= 1,
        "{}\n{}",
        broker.logs(),
        device.text()
    );
    assert!(
        device.child.try_wait().unwrap().is_none(),
        "the simulation exited:\n{}",
        device.text()
    );
    let text = device.text();
    assert_eq!(text.matches("PROV certificate issued").count(), 1, "{text}");
    let due = text.find("certificate is due for renewal").unwrap();
    let renewed = text.find("PROV certificate renewed").unwrap();
    assert!(due < renewed, "{text}");

    // Two connections of the same process: CONNECTED! before and after.
    let mut connected = 0;
    let deadline = Instant::now() + WAIT;
    while connected < 2 && Instant::now() < deadline {
        if let Some(fleetmq_codec::Packet::Publish(publish)) =
            watcher.recv_packet(Duration::from_millis(500))
        {
            if &publish.payload[..] == b"CONNECTED!" {
                connected += 1;
            }
        }
    }
    assert_eq!(connected, 2, "{}", device.text());

    // The kept certificate is a new one from the lab CA.
    let second = std::fs::read(&cert_path).unwrap();
    assert_ne!(first, second);
    let output = Command::new("/usr/bin/openssl")
        .args(["verify", "-purpose", "sslclient", "-CAfile"])
        .arg(pki.join("ca.crt"))
        .arg(&cert_path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(broker.count_log_lines(&["Issued certificate", "(renewal)"]) >= 1);
    device.kill();
}
