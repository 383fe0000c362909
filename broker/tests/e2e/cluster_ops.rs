//! Issue 19, operations: three fleetmq nodes on a three-server NATS
//! JetStream cluster (Debian's nats-server, loopback), each with its own
//! `dynamic-security.json`. `mosquitto_ctrl dynsec` against one node
//! changes what a client may do on another (created, granted a role,
//! disabled: disconnected there too); `GET /api/cluster` on any node
//! lists the three nodes and which node holds which client id; `/metrics`
//! labels every series with the node and has the cluster's own series
//! (decisions 0184, 0185). A broker without `[cluster]` says so.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::cluster_support::{wait_ready, CROSS, READY_WAIT};
use crate::dynsec::{init_file, missing_tools, ADMIN, ADMIN_PASSWORD};
use crate::harness::hostile::heavy_lock;
use crate::harness::nats::NatsCluster;
use crate::harness::web::{eventually, get};
use crate::harness::*;

/// The log line of a node that joined the shared dynsec configuration.
const FOLLOWS: &str = "follows the cluster's dynamic security configuration";

/// `mosquitto_ctrl -p PORT -u admin dynsec ARGS`; its output, without the
/// plain-connection warning.
fn ctrl(broker: &Broker, args: &[&str]) -> String {
    let port = broker.port().to_string();
    let output = Command::new("timeout")
        .args(["10", "mosquitto_ctrl", "-h", "127.0.0.1", "-p", &port])
        .args(["-u", ADMIN, "-P", ADMIN_PASSWORD, "dynsec"])
        .args(args)
        .output()
        .expect("run mosquitto_ctrl");
    assert_ne!(
        output.status.code(),
        Some(124),
        "mosquitto_ctrl {args:?} hung"
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    text.lines()
        .filter(|line| {
            !line.starts_with("Warning: You are running")
                && !line.starts_with("This means all of the configuration")
                && !line.trim().is_empty()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// [`ctrl`] for a command that must succeed (no output).
fn ctrl_ok(broker: &Broker, args: &[&str]) {
    let answer = ctrl(broker, args);
    let logs = broker.logs();
    let dynsec: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("dynsec") || l.contains("security") || l.contains("WARN"))
        .collect();
    assert_eq!(
        answer,
        "",
        "{args:?}; the node's dynsec log:\n{}",
        dynsec.join("\n")
    );
}

/// A fleetmq node on `nats` with a `dynamic-security.json` of its own.
fn dynsec_node(nats: &NatsCluster, name: &str, dir: &Path) -> Broker {
    let file = init_file(dir);
    Broker::start_with(&format!(
        "{}\n[auth]\ndynsec_file = \"{}\"\n",
        nats.node_toml(name),
        file.display()
    ))
}

/// CONNECT as `user` with `password` (5.0); the client and its CONNACK.
fn login(broker: &Broker, client_id: &str, user: &str, password: &str) -> (RawClient, ConnAck) {
    let mut connect = ConnectBuilder::v5(client_id);
    connect.username = Some(user.into());
    connect.password = Some(password.as_bytes().to_vec());
    let mut client = RawClient::connect(broker.addr());
    client.send_connect(&connect);
    let connack = client.expect_connack();
    (client, connack)
}

/// Waits (cross-node bound) for the broker to close `client` with 5.0
/// DISCONNECT 0x98 Administrative action.
fn closed_by_admin(client: &mut RawClient, broker: &Broker) {
    let closed = client
        .wait_closed(CROSS)
        .unwrap_or_else(|| panic!("the connection stayed open:\n{}", broker.logs()));
    assert_eq!(
        closed.disconnect_reason(),
        Some(ReasonCode::ADMINISTRATIVE_ACTION)
    );
}

#[test]
fn dynsec_changes_on_one_node_bind_on_every_node_and_the_cluster_is_visible() {
    if skip_on_mosquitto("fleetmq's NATS cluster backend") || missing_tools() {
        return;
    }
    let _heavy = heavy_lock();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nats = NatsCluster::start();
    let a = dynsec_node(&nats, "a", dirs[0].path());
    let b = dynsec_node(&nats, "b", dirs[1].path());
    let c = dynsec_node(&nats, "c", dirs[2].path());
    for broker in [&a, &b, &c] {
        wait_ready(broker, 1, &nats);
        // A change made on a node before it joined the shared
        // configuration is undone (decision 0184).
        assert!(
            broker.wait_for_log(FOLLOWS, READY_WAIT),
            "{}",
            broker.logs()
        );
    }

    // Unknown everywhere before the change.
    let (_, refused) = login(&b, "dev1-b", "dev1", "pw1");
    assert_eq!(refused.reason, ReasonCode::NOT_AUTHORIZED, "{}", b.logs());

    // Created on a: accepted on b, whose default access denies subscribing.
    ctrl_ok(&a, &["createClient", "dev1", "-p", "pw1"]);
    let mut on_b = eventually(CROSS, "dev1 accepted on node b", || {
        let (client, connack) = login(&b, "dev1-b", "dev1", "pw1");
        (connack.reason == ReasonCode::SUCCESS).then_some(client)
    });
    assert_eq!(on_b.subscribe(1, "lab/x", 1), [ReasonCode::NOT_AUTHORIZED]);

    // A role granted on c: dev1's connection on b is closed (0x98) and,
    // back, it may subscribe there.
    ctrl_ok(&c, &["createRole", "sensor"]);
    ctrl_ok(
        &c,
        &["addRoleACL", "sensor", "subscribePattern", "lab/#", "allow"],
    );
    ctrl_ok(
        &c,
        &[
            "addRoleACL",
            "sensor",
            "publishClientSend",
            "lab/#",
            "allow",
        ],
    );
    ctrl_ok(&c, &["addClientRole", "dev1", "sensor"]);
    closed_by_admin(&mut on_b, &b);
    let (mut on_b, connack) = login(&b, "dev1-b", "dev1", "pw1");
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    assert_eq!(on_b.subscribe(1, "lab/x", 1), [ReasonCode(1)]);
    assert_eq!(
        on_b.publish("lab/x", b"hello", 1, false),
        ReasonCode::SUCCESS
    );

    // The cluster view, asked on c: three live nodes, dev1-b held by b.
    let view = eventually(
        CROSS,
        "the cluster view with three nodes and dev1-b",
        || {
            let response = get(c.http_addr(), "/api/cluster", None);
            let view = response.json();
            let nodes = view["nodes"].as_array()?;
            let held = view["devices"]
                .as_array()?
                .iter()
                .any(|d| d["client_id"] == "dev1-b" && d["node"] == "b");
            let b_counts = nodes.iter().any(|n| n["name"] == "b" && n["clients"] == 1);
            (response.status == 200 && nodes.len() == 3 && held && b_counts).then_some(view)
        },
    );
    assert_eq!(view["enabled"], true);
    assert_eq!(view["node"], "c");
    assert_eq!(view["ready"], true);
    let names: Vec<&str> = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(
        view["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["alive"] == true),
        "{view}"
    );

    // Disabled on a: closed on b and refused there, and b saved the
    // change in its own file.
    ctrl_ok(&a, &["disableClient", "dev1"]);
    closed_by_admin(&mut on_b, &b);
    let (_, refused) = login(&b, "dev1-b", "dev1", "pw1");
    assert_eq!(refused.reason, ReasonCode::NOT_AUTHORIZED);
    let saved = eventually(WAIT, "b's file with dev1 disabled", || {
        let text = std::fs::read_to_string(dirs[1].path().join("dynamic-security.json")).ok()?;
        let file: Value = serde_json::from_str(&text).ok()?;
        let dev1 = file["clients"]
            .as_array()?
            .iter()
            .find(|client| client["username"] == "dev1")?
            .clone();
        (dev1["disabled"] == true).then_some(dev1)
    });
    assert_eq!(saved["roles"][0]["rolename"], "sensor");

    // Metrics on b: every series carries node="b", and the cluster's own
    // series count dev1's two accepted CONNECTs and its QoS 1 publish.
    let metrics = get(b.http_addr(), "/metrics", None).body;
    let unlabelled: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("fleetmq_") && !line.contains("node=\"b\""))
        .collect();
    assert!(unlabelled.is_empty(), "series without node: {unlabelled:?}");
    let value = |name: &str, label: &str| -> Option<f64> {
        metrics.lines().find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            (series.starts_with(name) && series.contains(label)).then(|| value.parse().ok())?
        })
    };
    assert_eq!(value("fleetmq_cluster_ready{", ""), Some(1.0));
    assert_eq!(value("fleetmq_cluster_nats_connected{", ""), Some(1.0));
    let admissions = value("fleetmq_cluster_connect_admission_seconds_count{", "");
    assert!(admissions.is_some_and(|n| n >= 2.0), "{metrics}");
    let stored = value("fleetmq_cluster_publish_acks_total{", "outcome=\"stored\"");
    assert!(stored.is_some_and(|n| n >= 1.0), "{metrics}");
}

#[test]
fn a_broker_on_its_own_says_it_has_no_cluster() {
    if skip_on_mosquitto("fleetmq's dashboard API") {
        return;
    }
    let broker = Broker::start();
    let response = get(broker.http_addr(), "/api/cluster", None);
    assert_eq!(response.status, 200);
    let view = response.json();
    assert_eq!(view["enabled"], false);
    assert!(
        view["message"].as_str().unwrap().contains("no [cluster]"),
        "{view}"
    );
    let metrics = get(broker.http_addr(), "/metrics", None).body;
    assert!(
        !metrics.contains("node=\""),
        "a lone broker has no node label"
    );
    assert!(!metrics.contains("fleetmq_cluster_"));
}
