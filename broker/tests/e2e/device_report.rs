//! `$fleetmq/device/handshake` (decision 0143): a device's report on its
//! own connection is taken by the broker, shown in the API, never routed;
//! a second, an oversized or a malformed one changes nothing and
//! disconnects no one.

use std::time::Duration;

use crate::harness::web::{eventually, get};
use crate::harness::*;

const TOPIC: &str = "$fleetmq/device/handshake";

fn report_of(broker: &Broker, client_id: &str) -> serde_json::Value {
    let response = get(broker.http_addr(), "/api/clients", None);
    response
        .json()
        .as_array()
        .and_then(|list| list.iter().find(|c| c["client_id"] == client_id).cloned())
        .map(|client| client["device_report"].clone())
        .unwrap_or_default()
}

#[test]
fn the_first_report_is_shown_and_none_is_routed() {
    if skip_on_mosquitto("the report topic is fleetmq's") {
        return;
    }
    let broker = Broker::start();
    let (mut watcher, _) = RawClient::connect_v311(broker.addr(), "report-watcher", true);
    assert_eq!(watcher.subscribe(1, "#", 1), vec![ReasonCode(1)]);
    assert_eq!(watcher.subscribe(2, "$fleetmq/#", 1), vec![ReasonCode(1)]);
    let (mut device, _) = RawClient::connect_v311(broker.addr(), "report-device", true);
    // Malformed first: acknowledged, dropped, and it uses up the report.
    assert_eq!(
        device.publish(TOPIC, b"{not json", 1, false),
        ReasonCode::SUCCESS
    );
    assert_eq!(
        device.publish(
            TOPIC,
            br#"{"chip":"esp32c3","tls_handshake_ms":1985}"#,
            1,
            false
        ),
        ReasonCode::SUCCESS
    );
    let (mut other, _) = RawClient::connect_v311(broker.addr(), "report-other", true);
    assert_eq!(
        other.publish(
            TOPIC,
            br#"{"chip":"esp32","cpu_mhz":240,"hw_crypto":true}"#,
            0,
            false
        ),
        ReasonCode::SUCCESS
    );
    // An oversized report from a third is dropped too.
    let (mut big, _) = RawClient::connect_v311(broker.addr(), "report-big", true);
    let huge = format!(r#"{{"chip":"{}"}}"#, "x".repeat(4096));
    assert_eq!(
        big.publish(TOPIC, huge.as_bytes(), 1, false),
        ReasonCode::SUCCESS
    );
    let shown = eventually(Duration::from_secs(5), "the report of report-other", || {
        let report = report_of(&broker, "report-other");
        (!report.is_null()).then_some(report)
    });
    assert_eq!(shown["chip"], "esp32");
    assert_eq!(shown["cpu_mhz"], 240);
    assert!(
        report_of(&broker, "report-device").is_null(),
        "the malformed one counted"
    );
    assert!(
        report_of(&broker, "report-big").is_null(),
        "the oversized one counted"
    );
    // Nobody received any of them, and every client is still served.
    assert!(watcher.recv_packet(Duration::from_millis(300)).is_none());
    assert_eq!(
        device.publish("lab/after", b"still here", 1, false),
        ReasonCode::SUCCESS
    );
    assert_eq!(&watcher.expect_app_publish().payload[..], b"still here");
}
