//! The device policy met by Debian's `mosquitto_pub` and `mosquitto_sub`
//! (OpenSSL, `--cafile/--cert/--key`), in MQTT 3.1.1 and 5.0: what a lab
//! user sees when a device reaches beyond its certificate. 5.0 carries the
//! reasons (SUBACK and PUBACK 0x87, CONNACK 0x85) to the tool's output;
//! 3.1.1 only has SUBACK 0x80 and CONNACK return codes.

use std::time::Duration;

use crate::harness::fleet::{Fleet, LISTENER};
use crate::harness::pki::Issued;
use crate::harness::tools::{self, Tool};
use crate::harness::{skip_on_mosquitto, Broker, ReasonCode, QUIET};

const SKIP: &str = "identities and ACLs are configured the fleetmq way";

/// How long a command-line client may take for its whole job.
const TOOL_WAIT: Duration = Duration::from_secs(10);

/// Runs `program` (mosquitto_pub or mosquitto_sub) against the device
/// listener as `identity`, with client id `client_id` and `rest`.
fn run(
    program: &str,
    broker: &Broker,
    fleet: &Fleet,
    identity: &Issued,
    client_id: &str,
    rest: &[&str],
) -> Tool {
    let port = broker.addr_of(LISTENER).port().to_string();
    let mut args: Vec<String> = ["-h", "127.0.0.1", "-p", &port, "-i", client_id]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(tools::mosquitto_tls_args(
        &fleet.pki.ca.cert,
        Some(identity),
    ));
    args.extend(rest.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Tool::spawn_line_buffered(program, &args)
}

/// Runs the tool to its end; returns (exit code, output).
fn finish(tool: Tool) -> (Option<i32>, String) {
    let command_line = tool.command_line.clone();
    let (status, output) = tool.finish(TOOL_WAIT);
    let status = status.unwrap_or_else(|| panic!("`{command_line}` did not finish:\n{output}"));
    (status.code(), output)
}

#[test]
fn mosquitto_sub_is_refused_other_devices_topics() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start_toml_policy();
    for (version, refused) in [("mqttv311", "128"), ("mqttv5", "135")] {
        for filter in ["devices/dev-b/#", "#", "+/+/#", "$share/g/#", "$SYS/#"] {
            let sub = run(
                "mosquitto_sub",
                &broker,
                &fleet,
                fleet.dev_a(),
                "dev-a",
                &["-V", version, "-d", "-q", "1", "-W", "5", "-t", filter],
            );
            // mosquitto_sub prints the SUBACK code, gives up and exits 0.
            let (_, output) = finish(sub);
            assert!(
                output.contains(&format!("Subscribed (mid: 1): {refused}"))
                    && output.contains("All subscription requests were denied."),
                "{version} {filter}: {output}"
            );
        }
    }
}

#[test]
fn mosquitto_pub_to_another_devices_topic_is_not_authorized() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start_toml_policy();
    let mut ops = fleet.connect_v5(&broker, "ops-1");
    assert_eq!(ops.subscribe("devices/#"), ReasonCode(1));
    let publish = |version: &str| {
        let tool = run(
            "mosquitto_pub",
            &broker,
            &fleet,
            fleet.dev_a(),
            "dev-a",
            &[
                "-V",
                version,
                "-d",
                "-q",
                "1",
                "-t",
                "devices/dev-b/data",
                "-m",
                "forged",
            ],
        );
        finish(tool).1
    };
    // 5.0: PUBACK 0x87, which mosquitto_pub reports.
    let output = publish("mqttv5");
    assert!(
        output.contains("received PUBACK (Mid: 1, RC:135)")
            && output.contains("Warning: Publish 1 failed: Not authorized."),
        "{output}"
    );
    // 3.1.1: acknowledged (the protocol has no refusal) and dropped.
    let output = publish("mqttv311");
    assert!(
        output.contains("received PUBACK (Mid: 1, RC:0)"),
        "{output}"
    );
    assert_eq!(ops.drain(QUIET), []);
}

#[test]
fn mosquitto_clients_round_trip_within_the_policy() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start_toml_policy();
    for version in ["mqttv311", "mqttv5"] {
        let sub = run(
            "mosquitto_sub",
            &broker,
            &fleet,
            fleet.dev_a(),
            "dev-a",
            &[
                "-V",
                version,
                "-d",
                "-q",
                "1",
                "-C",
                "1",
                "-W",
                "10",
                "-v",
                "-t",
                "devices/dev-a/cmd/#",
            ],
        );
        sub.assert_output("Subscribed (mid: 1): 1", TOOL_WAIT);
        let command = format!("reboot over {version}");
        let publish = run(
            "mosquitto_pub",
            &broker,
            &fleet,
            &fleet.ops,
            "ops-1",
            &[
                "-V",
                version,
                "-q",
                "1",
                "-t",
                "devices/dev-a/cmd/reboot",
                "-m",
                &command,
            ],
        );
        publish.finish_ok(TOOL_WAIT);
        let output = sub.finish_ok(TOOL_WAIT);
        assert!(
            output.contains(&format!("devices/dev-a/cmd/reboot {command}")),
            "{output}"
        );
    }
}

#[test]
fn mosquitto_pub_cannot_connect_as_another_device() {
    if skip_on_mosquitto(SKIP) {
        return;
    }
    let fleet = Fleet::new();
    let broker = fleet.start_toml_policy();
    // mosquitto_pub exits with the CONNACK code: 3.1.1 return code 2
    // (identifier rejected), 5.0 reason 0x85 = 133.
    for (version, code, message) in [
        ("mqttv311", 2, "Connection Refused: identifier rejected."),
        ("mqttv5", 133, "Client Identifier not valid"),
    ] {
        let publish = run(
            "mosquitto_pub",
            &broker,
            &fleet,
            fleet.dev_a(),
            "dev-b",
            &[
                "-V",
                version,
                "-q",
                "1",
                "-t",
                "devices/dev-b/data",
                "-m",
                "x",
            ],
        );
        let (exit, output) = finish(publish);
        assert_eq!(exit, Some(code), "{version}: {output}");
        assert!(
            output.contains(&format!("Connection error: {message}")),
            "{version}: {output}"
        );
    }
    assert_eq!(
        broker.count_log_lines(&["as dev-b: client id differs from the client's identity"]),
        2,
        "{}",
        broker.logs()
    );
}
