//! Bridges (issue 16) against Debian's Mosquitto 2.0 as the remote: both
//! directions at QoS 0/1/2 with prefixes, 3.1.1 with the bridge bit and
//! 5.0 with no-local, mutual TLS to the remote, the remote stopped and
//! fleetmq SIGKILLed mid-stream with every acknowledged message reaching
//! the remote (QoS 2 exactly once), and links that cannot connect.
//!
//! The remote is a real `mosquitto` on loopback ([`RemoteMosquitto`]);
//! fleetmq is the real binary. Every wait is bounded.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::pki::{toml_path, Pki};
use crate::harness::remote::RemoteMosquitto;
use crate::harness::store::*;
use crate::harness::web::{eventually, get};
use crate::harness::*;

/// `[[bridge]]` text to `remote` with the given topic lines and extras.
fn bridge_toml(name: &str, address: &str, extra: &str, topics: &[(&str, &str, u8)]) -> String {
    let mut out = format!(
        "\n[[bridge]]\nname = \"{name}\"\naddresses = [\"{address}\"]\nremote_client_id = \"{name}-remote\"\nrestart_secs = 1\nrestart_max_secs = 2\n{extra}\n"
    );
    for (pattern, direction, qos) in topics {
        out.push_str(&format!(
            "[[bridge.topic]]\npattern = \"{pattern}\"\ndirection = \"{direction}\"\nqos = {qos}\nlocal_prefix = \"lab/\"\nremote_prefix = \"site1/\"\n"
        ));
    }
    out
}

fn bridge_views(broker: &Broker) -> Vec<serde_json::Value> {
    get(broker.http_addr(), "/api/bridges", None)
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait_connected(broker: &Broker, name: &str) {
    eventually(Duration::from_secs(10), "bridge connected", || {
        bridge_views(broker)
            .iter()
            .any(|b| b["name"] == name && b["state"] == "connected")
            .then_some(())
    });
}

/// Subscribes on `addr` and returns the client.
fn subscriber(addr: std::net::SocketAddr, id: &str, filter: &str, qos: u8) -> RawClient {
    let (mut client, _) = RawClient::connect_v311(addr, id, true);
    assert!(client.subscribe(1, filter, qos)[0].0 <= 2);
    client
}

/// Receives (and acknowledges) PUBLISHes until none came for a while.
fn drain(client: &mut RawClient) -> Vec<Publish> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let more = receive_for(client, 1, Duration::from_millis(600));
        if more.is_empty() || Instant::now() > deadline {
            return got;
        }
        got.extend(more);
    }
}

/// Receives PUBLISHes (acknowledging them) until `count` arrived.
fn receive(client: &mut RawClient, count: usize) -> Vec<Publish> {
    receive_for(client, count, Duration::from_secs(10))
}

fn receive_for(client: &mut RawClient, count: usize, limit: Duration) -> Vec<Publish> {
    let mut got = Vec::new();
    let deadline = Instant::now() + limit;
    while got.len() < count && Instant::now() < deadline {
        match client.recv_packet(Duration::from_millis(200)) {
            Some(Packet::Publish(publish)) => {
                match (publish.qos, publish.packet_id) {
                    (QoS::AtLeastOnce, Some(id)) => client.send(&ack(0x40, id)),
                    (QoS::ExactlyOnce, Some(id)) => client.send(&ack(0x50, id)),
                    _ => {}
                }
                got.push(publish);
            }
            Some(Packet::PubRel(rel)) => client.send(&ack(0x70, rel.packet_id)),
            _ => {}
        }
    }
    got
}

#[test]
fn both_directions_at_every_qos_with_prefixes_and_no_loops() {
    if skip_on_mosquitto("fleetmq bridges")
        || !crate::harness::fleet::have_tool("mosquitto", "the remote broker")
    {
        return;
    }
    let remote = RemoteMosquitto::start("");
    let address = remote.addr().to_string();
    let mut toml = bridge_toml(
        "v311",
        &address,
        "",
        &[
            ("sensors/#", "out", 2),
            ("cmd/#", "in", 2),
            ("sync/#", "both", 1),
        ],
    );
    toml.push_str(
        &bridge_toml(
            "v5",
            &address,
            "protocol_version = \"5.0\"\nremote_client_id = \"v5-remote\"",
            &[],
        )
        .replace("remote_client_id = \"v5-remote\"\nrestart", "restart"),
    );
    toml.push_str("[[bridge.topic]]\npattern = \"five/#\"\ndirection = \"both\"\nqos = 2\nlocal_prefix = \"l5/\"\nremote_prefix = \"r5/\"\n");
    let broker = Broker::start_with(&toml);
    wait_connected(&broker, "v311");
    wait_connected(&broker, "v5");
    assert!(
        remote.logs().contains("New bridge connected"),
        "try_private: Mosquitto sees a bridge:\n{}",
        remote.logs()
    );

    // out: each QoS arrives at the remote under the remote prefix.
    let mut far = subscriber(remote.addr(), "far", "site1/#", 2);
    let (mut local_pub, _) = RawClient::connect_v311(broker.addr(), "local-pub", true);
    for qos in 0..=2u8 {
        local_pub.publish(
            &format!("lab/sensors/q{qos}"),
            format!("out-{qos}").as_bytes(),
            qos,
            false,
        );
    }
    let got = receive(&mut far, 3);
    let seen: Vec<(String, QoS)> = got.iter().map(|p| (p.topic.to_string(), p.qos)).collect();
    assert_eq!(
        seen,
        vec![
            ("site1/sensors/q0".to_string(), QoS::AtMostOnce),
            ("site1/sensors/q1".to_string(), QoS::AtLeastOnce),
            ("site1/sensors/q2".to_string(), QoS::ExactlyOnce),
        ]
    );

    // in: each QoS arrives locally under the local prefix.
    let mut near = subscriber(broker.addr(), "near", "lab/#", 2);
    let (mut remote_pub, _) = RawClient::connect_v311(remote.addr(), "remote-pub", true);
    for qos in 0..=2u8 {
        remote_pub.publish(
            &format!("site1/cmd/q{qos}"),
            format!("in-{qos}").as_bytes(),
            qos,
            false,
        );
    }
    let got = receive(&mut near, 3);
    // The remote's own subscriber saw the remote publisher's messages.
    assert_eq!(drain(&mut far).len(), 3);
    let seen: Vec<(String, QoS)> = got.iter().map(|p| (p.topic.to_string(), p.qos)).collect();
    assert_eq!(
        seen,
        vec![
            ("lab/cmd/q0".to_string(), QoS::AtMostOnce),
            ("lab/cmd/q1".to_string(), QoS::AtLeastOnce),
            ("lab/cmd/q2".to_string(), QoS::ExactlyOnce),
        ]
    );

    // both: one copy each way, nothing echoed back (bridge bit with 3.1.1,
    // no-local with 5.0, and no-local on the local session).
    local_pub.publish("lab/sync/a", b"from-local", 1, false);
    remote_pub.publish("site1/sync/b", b"from-remote", 1, false);
    local_pub.publish("l5/five/a", b"five-local", 2, false);
    remote_pub.publish("r5/five/b", b"five-remote", 2, false);
    std::thread::sleep(Duration::from_millis(800));
    let mut far_got: Vec<String> = drain(&mut far)
        .iter()
        .map(|p| format!("{} {}", p.topic, String::from_utf8_lossy(&p.payload)))
        .collect();
    let mut near_got: Vec<String> = drain(&mut near)
        .iter()
        .map(|p| format!("{} {}", p.topic, String::from_utf8_lossy(&p.payload)))
        .collect();
    far_got.sort();
    near_got.sort();
    assert_eq!(
        far_got,
        vec!["site1/sync/a from-local", "site1/sync/b from-remote"],
        "remote side"
    );
    assert_eq!(
        near_got,
        vec!["lab/sync/a from-local", "lab/sync/b from-remote"],
        "local side"
    );
    let mut r5 = subscriber(remote.addr(), "r5", "r5/#", 2);
    let mut l5 = subscriber(broker.addr(), "l5", "l5/#", 2);
    local_pub.publish("l5/five/c", b"five-local-2", 2, false);
    remote_pub.publish("r5/five/d", b"five-remote-2", 2, false);
    std::thread::sleep(Duration::from_millis(800));
    let mut r5_got: Vec<String> = drain(&mut r5).iter().map(|p| p.topic.to_string()).collect();
    let mut l5_got: Vec<String> = drain(&mut l5).iter().map(|p| p.topic.to_string()).collect();
    r5_got.sort();
    l5_got.sort();
    assert_eq!(
        r5_got,
        vec!["r5/five/c", "r5/five/d"],
        "5.0 remote side, no echo"
    );
    assert_eq!(
        l5_got,
        vec!["l5/five/c", "l5/five/d"],
        "5.0 local side, no echo"
    );

    // Visible: $SYS state like Mosquitto, and the API's counters.
    let mut sys = subscriber(broker.addr(), "sys", "$SYS/broker/connection/+/state", 0);
    let states: Vec<String> = receive(&mut sys, 2)
        .iter()
        .map(|p| format!("{} {}", p.topic, String::from_utf8_lossy(&p.payload)))
        .collect();
    assert!(
        states.contains(&"$SYS/broker/connection/v311-remote/state 1".to_string()),
        "{states:?}"
    );
    let view = bridge_views(&broker)
        .into_iter()
        .find(|b| b["name"] == "v311")
        .unwrap();
    assert_eq!(view["remote"], address);
    assert!(
        view["sent"].as_u64().unwrap() >= 4 && view["received"].as_u64().unwrap() >= 4,
        "{view}"
    );
    assert_eq!(view["queued"], 0);
}

#[test]
fn mutual_tls_to_the_remote_and_a_wrong_ca_is_named() {
    if skip_on_mosquitto("fleetmq bridges")
        || !crate::harness::fleet::have_tool("mosquitto", "the remote broker")
    {
        return;
    }
    let pki = Pki::new();
    let remote = RemoteMosquitto::start_with_files(
        "listener {port} 127.0.0.1\nallow_anonymous true\ncafile {dir}/ca.crt\ncertfile {dir}/server-rsa.crt\nkeyfile {dir}/server-rsa.key\nrequire_certificate true\nuse_identity_as_username true\ncrlfile {dir}/crl.pem\n",
        &[&pki.ca.cert, &pki.server_rsa.cert, &pki.server_rsa.key, &pki.crl],
    );
    let address = format!("localhost:{}", remote.port);
    let good = bridge_toml(
        "mtls",
        &address,
        &format!(
            "[bridge.tls]\nca_file = {}\ncert = {}\nkey = {}\n",
            toml_path(&pki.ca.cert),
            toml_path(&pki.dev_a.cert),
            toml_path(&pki.dev_a.key)
        ),
        &[("sensors/#", "out", 1)],
    );
    let wrong_ca = bridge_toml(
        "wrongca",
        &address,
        &format!("[bridge.tls]\nca_file = {}\n", toml_path(&pki.rogue.cert)),
        &[("other/#", "out", 1)],
    );
    let revoked = bridge_toml(
        "revoked",
        &address,
        &format!(
            "[bridge.tls]\nca_file = {}\ncert = {}\nkey = {}\n",
            toml_path(&pki.ca.cert),
            toml_path(&pki.dev_revoked.cert),
            toml_path(&pki.dev_revoked.key)
        ),
        &[("more/#", "out", 1)],
    );
    let broker = Broker::start_with(&format!("{good}{wrong_ca}{revoked}"));
    wait_connected(&broker, "mtls");
    assert!(
        remote.logs().contains("as mtls-remote"),
        "{}",
        remote.logs()
    );
    let (mut far, _) = {
        // The remote asks every client for a certificate: read it as a device.
        let config = crate::harness::tls::client_config(
            &pki.ca.cert,
            Some(&pki.dev_b),
            &[&rustls::version::TLS13, &rustls::version::TLS12],
        );
        let transport = crate::harness::tls::connect(remote.addr(), config).unwrap();
        let mut client = RawClient::over(transport);
        client.send_connect(&ConnectBuilder::v311("far-tls"));
        let connack = client.expect_connack();
        (client, connack)
    };
    assert_eq!(far.subscribe(1, "site1/#", 1)[0].0, 1);
    let (mut local_pub, _) = RawClient::connect_v311(broker.addr(), "local-pub", true);
    local_pub.publish("lab/sensors/t", b"over-mtls", 1, false);
    let got = receive(&mut far, 1);
    assert_eq!(
        got.first().map(|p| p.topic.to_string()).as_deref(),
        Some("site1/sensors/t")
    );
    let wrong = eventually(Duration::from_secs(10), "wrong CA reported", || {
        bridge_views(&broker)
            .into_iter()
            .find(|b| b["name"] == "wrongca" && b["last_error"].is_string())
    });
    assert_eq!(wrong["state"], "disconnected");
    assert!(
        wrong["last_error"]
            .as_str()
            .unwrap()
            .contains("not trusted"),
        "{wrong}"
    );
    assert!(
        broker.logs().contains("Bridge wrongca cannot connect to"),
        "{}",
        broker.logs()
    );
    // The remote refuses a revoked bridge certificate: named, not connected.
    let revoked = eventually(Duration::from_secs(10), "revoked reported", || {
        bridge_views(&broker)
            .into_iter()
            .find(|b| b["name"] == "revoked" && b["last_error"].is_string())
    });
    assert_eq!(revoked["state"], "disconnected", "{revoked}");
    assert_eq!(revoked["connects"], 0, "{revoked}");
    assert!(
        revoked["last_error"]
            .as_str()
            .unwrap()
            .contains("the remote refused us (CertificateRevoked)"),
        "{revoked}"
    );
}

#[test]
fn a_link_that_cannot_connect_says_why_backs_off_and_costs_local_clients_nothing() {
    if skip_on_mosquitto("fleetmq bridges") {
        return;
    }
    let closed = format!("127.0.0.1:{}", crate::harness::service::free_port());
    let mut toml = bridge_toml(
        "refused",
        &closed,
        "restart_secs = 1\nrestart_max_secs = 4\nmax_queued_messages = 3",
        &[("a/#", "out", 1)],
    );
    toml = toml.replacen("restart_secs = 1\nrestart_max_secs = 2\n", "", 1);
    toml.push_str(&bridge_toml(
        "nohost",
        "no-such-host.invalid:1883",
        "",
        &[("b/#", "out", 1)],
    ));
    let broker = Broker::start_with(&toml);
    let started = Instant::now();
    // Local clients are served while the links fail.
    let (mut sub, _) = RawClient::connect_v311(broker.addr(), "s", true);
    assert_eq!(sub.subscribe(1, "lab/#", 1)[0].0, 1);
    let (mut publisher, _) = RawClient::connect_v311(broker.addr(), "p", true);
    // Five for the remote; the bridge keeps three (max_queued_messages).
    for n in 0..5 {
        assert_eq!(
            publisher.publish(&format!("lab/a/{n}"), b"queued for the remote", 1, false),
            ReasonCode::SUCCESS
        );
        assert_eq!(
            sub.expect_app_publish().topic.as_ref(),
            format!("lab/a/{n}"),
            "local delivery is not held back"
        );
    }
    std::thread::sleep(Duration::from_secs(6).saturating_sub(started.elapsed()));
    let logs = broker.logs();
    assert!(
        logs.contains(&format!(
            "Bridge refused cannot connect to {closed}: connection refused"
        )),
        "{logs}"
    );
    assert!(
        logs.contains("Bridge nohost cannot connect to no-such-host.invalid:1883: unknown host"),
        "{logs}"
    );
    // Backoff 1, 2, 4 s: at most 4 tries in 6 s, not one per second.
    let tries = logs.matches("Connecting bridge refused").count();
    assert!((2..=4).contains(&tries), "{tries} tries in 6 s:\n{logs}");
    let views = bridge_views(&broker);
    let refused = views.iter().find(|b| b["name"] == "refused").unwrap();
    assert_eq!(refused["state"], "disconnected");
    assert_eq!(
        (refused["queued"].as_u64(), refused["dropped"].as_u64()),
        (Some(3), Some(2)),
        "three QoS 1 messages wait for the remote, two were dropped: {refused}"
    );
    assert!(
        logs.contains("Bridge refused: 2 messages for the remote dropped"),
        "{logs}"
    );
    assert!(refused["last_error"]
        .as_str()
        .unwrap()
        .contains("connection refused"));
    let metrics = get(broker.http_addr(), "/metrics", None).body;
    for line in [
        "fleetmq_bridge_connected{bridge=\"refused\"} 0",
        "fleetmq_bridge_queued{bridge=\"refused\"} 3",
        "fleetmq_bridge_dropped_total{bridge=\"refused\"} 2",
        "fleetmq_bridge_connect_failures_total{bridge=\"nohost\"}",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
}

#[test]
fn fleetmq_to_fleetmq_both_ways_after_the_bridge_bit_is_refused() {
    if skip_on_mosquitto("fleetmq bridges") {
        return;
    }
    let remote = Broker::start();
    let broker = Broker::start_with(&bridge_toml(
        "peer",
        &remote.addr().to_string(),
        "keepalive_secs = 1",
        &[("up/#", "out", 1), ("down/#", "in", 1)],
    ));
    wait_connected(&broker, "peer");
    // fleetmq refuses Mosquitto's bridge bit as an unknown protocol level;
    // the link tries again without it, as Mosquitto's bridges do.
    assert!(
        broker.logs().contains("the remote refused the connection")
            && broker.logs().contains("Bridge peer connected to"),
        "{}",
        broker.logs()
    );
    // No client can take the bridge's local session by sending its id.
    let mut thief = RawClient::connect(broker.addr());
    thief.send_connect(&ConnectBuilder::v311("local.peer-remote").clean(false));
    assert_eq!(thief.expect_connack().reason, ReasonCode::NOT_AUTHORIZED);
    // Idle for over twice the keep alive: the link pings, the remote keeps it.
    std::thread::sleep(Duration::from_millis(2500));
    let view = bridge_views(&broker).remove(0);
    assert_eq!(
        (view["state"].as_str(), view["connects"].as_u64()),
        (Some("connected"), Some(1)),
        "{view}"
    );
    let mut far = subscriber(remote.addr(), "far", "site1/up/#", 1);
    let mut near = subscriber(broker.addr(), "near", "lab/down/#", 1);
    let (mut local_pub, _) = RawClient::connect_v311(broker.addr(), "lp", true);
    let (mut remote_pub, _) = RawClient::connect_v311(remote.addr(), "rp", true);
    local_pub.publish("lab/up/1", b"up", 1, false);
    remote_pub.publish("site1/down/1", b"down", 1, false);
    assert_eq!(receive(&mut far, 1)[0].topic.as_ref(), "site1/up/1");
    assert_eq!(receive(&mut near, 1)[0].topic.as_ref(), "lab/down/1");
}

/// fleetmq's side of the durability test: the QoS 1 and QoS 2 publishers
/// and the broker, SIGKILLed once and the remote restarted once.
#[test]
fn acknowledged_messages_reach_the_remote_across_a_remote_restart_and_a_sigkill() {
    if skip_on_mosquitto("fleetmq bridges")
        || !crate::harness::fleet::have_tool("mosquitto", "the remote broker")
    {
        return;
    }
    let _heavy = crate::harness::hostile::heavy_lock();
    let mut remote = RemoteMosquitto::start("");
    // The remote's reader: a persistent session that drains at the end.
    let (mut sink, _) = RawClient::connect_v311(remote.addr(), "sink", false);
    assert_eq!(sink.subscribe(1, "site1/#", 2)[0].0, 2);
    sink.send(&disconnect(None));
    assert!(sink.expect_closed(WAIT));
    let toml = format!(
        "{}{}",
        store_toml("batch", ""),
        bridge_toml(
            "durable",
            &remote.addr().to_string(),
            "",
            &[("q1/#", "out", 1), ("q2/#", "out", 2)]
        )
    );
    let mut broker = Broker::start_with(&toml);
    wait_connected(&broker, "durable");
    let addr = broker.addr();
    let mut acked: Vec<Sent> = Vec::new();
    let mut qos2 = Qos2Publisher::new("p2", "lab/q2/m");
    for phase in 0..3u64 {
        let stop = stop_flag();
        let q1 = {
            let stop = Arc::clone(&stop);
            spawn_named("q1", move || {
                qos1_publisher(
                    addr,
                    &format!("p1-{phase}"),
                    phase * 1_000_000,
                    10,
                    false,
                    &stop,
                    |n| Sent {
                        topic: "lab/q1/m".into(),
                        payload: format!("q1-{n}").into_bytes(),
                    },
                )
            })
        };
        let q2_stop = Arc::clone(&stop);
        let q2 = std::thread::spawn(move || {
            qos2.run(addr, 10, true, &q2_stop, Duration::from_secs(2));
            qos2
        });
        std::thread::sleep(Duration::from_millis(400));
        match phase {
            // The remote goes away mid-stream and comes back.
            0 => {
                remote.stop();
                std::thread::sleep(Duration::from_millis(400));
                remote.restart();
                std::thread::sleep(Duration::from_millis(300));
                stop.store(true, Ordering::Relaxed);
            }
            // fleetmq is SIGKILLed mid-stream.
            1 => {
                broker.kill9();
                stop.store(true, Ordering::Relaxed);
            }
            _ => stop.store(true, Ordering::Relaxed),
        }
        let log = q1.join().expect("q1 publisher");
        qos2 = q2.join().expect("q2 publisher");
        eprintln!(
            "phase {phase}: {} QoS 1 acknowledged, {} QoS 2 owned",
            log.acked.len(),
            qos2.received_pubrec.len()
        );
        acked.extend(log.acked);
        if phase == 1 {
            broker.restart();
        }
    }
    // Finish the QoS 2 flows left open by the kill, then let the link drain.
    let stop = stop_flag();
    stop.store(true, Ordering::Relaxed);
    qos2.run(broker.addr(), 10, false, &stop, Duration::from_secs(3));
    wait_connected(&broker, "durable");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let views = bridge_views(&broker);
        if views
            .iter()
            .any(|b| b["name"] == "durable" && b["queued"] == 0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bridge queue did not drain: {views:?}\n{}\nremote:\n{}",
            broker.logs(),
            remote
                .logs()
                .lines()
                .rev()
                .take(60)
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let drained = drain_session(
        remote.addr(),
        ConnectBuilder::v311("sink").clean(false),
        Duration::from_millis(1500),
        Duration::from_secs(20),
    );
    assert!(drained.session_present);
    let counts: HashMap<Vec<u8>, usize> = drained.counts();
    let lost: Vec<String> = acked
        .iter()
        .filter(|m| !counts.contains_key(&m.payload))
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    assert!(!acked.is_empty());
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged QoS 1 messages lost: {lost:?}",
        lost.len(),
        acked.len()
    );
    assert!(!qos2.received_pubrec.is_empty());
    for payload in &qos2.received_pubrec {
        assert_eq!(
            counts.get(payload),
            Some(&1),
            "QoS 2 {} arrived {:?} times; the remote's warnings:\n{}\nfleetmq after the restart:\n{}",
            String::from_utf8_lossy(payload),
            counts.get(payload),
            remote
                .logs()
                .lines()
                .filter(|line| line.contains("Reused")
                    || line.contains("Warning")
                    || line.contains("Bad socket")
                    || (line.contains("Sending PUBREC") && !line.contains("rc0)")))
                .collect::<Vec<_>>()
                .join("\n"),
            broker.logs()
        );
    }
    // QoS 1 order: per publisher, what arrived came in publish order.
    let order: Vec<u64> = drained
        .publishes
        .iter()
        .filter(|p| p.topic.as_ref() == "site1/q1/m")
        .filter_map(|p| {
            String::from_utf8_lossy(&p.payload)
                .strip_prefix("q1-")
                .and_then(|n| n.parse().ok())
        })
        .collect();
    let mut first_seen: Vec<u64> = Vec::new();
    for n in order {
        if !first_seen.contains(&n) {
            first_seen.push(n);
        }
    }
    for window in first_seen.windows(2) {
        if window[0] / 1_000_000 == window[1] / 1_000_000 {
            assert!(window[0] < window[1], "out of order: {window:?}");
        }
    }
}

/// A lab's `mosquitto.conf` with a `connection` section, run unchanged
/// with `fleetmq run --mosquitto-conf`: the bridge works both ways, and its
/// state is where Mosquitto puts it.
#[test]
fn a_mosquitto_conf_connection_section_runs_unchanged() {
    if skip_on_mosquitto("fleetmq bridges")
        || !crate::harness::fleet::have_tool("mosquitto", "the remote broker")
    {
        return;
    }
    use crate::harness::service::{fleetmq, free_port, Process};
    let remote = RemoteMosquitto::start("");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\n\n\
             connection central\naddress 127.0.0.1:{}\nremote_clientid lab1\n\
             topic sensors/# out 1 lab/ site1/\ntopic cmd/# in 1 lab/ site1/\n\
             restart_timeout 1\n",
            remote.port
        ),
    )
    .unwrap();
    let mut command = fleetmq();
    command
        .arg("run")
        .arg("--mosquitto-conf")
        .arg(&conf)
        .current_dir(dir.path());
    let broker = Process::spawn(command);
    broker.expect_log("Bridge central connected to");
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut state = subscriber(local, "state", "$SYS/broker/connection/lab1/state", 0);
    let got = receive(&mut state, 1);
    assert_eq!(got.first().map(|p| p.payload.as_ref()), Some(&b"1"[..]));
    let mut far = subscriber(remote.addr(), "far", "site1/sensors/#", 1);
    let mut near = subscriber(local, "near", "lab/cmd/#", 1);
    let (mut local_pub, _) = RawClient::connect_v311(local, "lp", true);
    let (mut remote_pub, _) = RawClient::connect_v311(remote.addr(), "rp", true);
    local_pub.publish("lab/sensors/t", b"out", 1, false);
    remote_pub.publish("site1/cmd/go", b"in", 1, false);
    assert_eq!(receive(&mut far, 1)[0].topic.as_ref(), "site1/sensors/t");
    assert_eq!(receive(&mut near, 1)[0].topic.as_ref(), "lab/cmd/go");
}

/// ALPN, as a cloud broker on 443 needs it (AWS IoT's `x-amzn-mqtt-ca`):
/// OpenSSL's own test server says what the bridge offered.
#[test]
fn the_bridge_offers_its_alpn_protocol() {
    if skip_on_mosquitto("fleetmq bridges")
        || !crate::harness::fleet::have_tool("openssl", "a TLS server that prints ALPN")
    {
        return;
    }
    let pki = Pki::new();
    let port = crate::harness::service::free_port();
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut server = std::process::Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &port.to_string(),
            "-alpn",
            "x-amzn-mqtt-ca",
        ])
        .arg("-cert")
        .arg(&pki.server_ecdsa.cert)
        .arg("-key")
        .arg(&pki.server_ecdsa.key)
        // Its stdin stays open (piped) so it keeps the connection.
        .stdin(std::process::Stdio::piped())
        .stdout(out.reopen().unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let broker = Broker::start_with(&bridge_toml(
        "cloud",
        &format!("localhost:{port}"),
        &format!(
            "[bridge.tls]\nca_file = {}\nalpn = [\"x-amzn-mqtt-ca\"]\n",
            toml_path(&pki.ca.cert)
        ),
        &[("a/#", "out", 1)],
    ));
    // The link connects (retrying once if the server was not listening
    // yet) and waits for a CONNACK that never comes; then closing the
    // server's stdin ends it, which writes out what it printed.
    std::thread::sleep(Duration::from_millis(2500));
    drop(server.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && matches!(server.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = server.kill();
    let _ = server.wait();
    // It echoes what it received (our CONNECT, not UTF-8) among its lines.
    let text = String::from_utf8_lossy(&std::fs::read(out.path()).unwrap_or_default()).into_owned();
    assert!(
        text.contains("ALPN protocols advertised by the client: x-amzn-mqtt-ca")
            && text.contains("ALPN protocols selected: x-amzn-mqtt-ca"),
        "{text}\n{}",
        broker.logs()
    );
}
