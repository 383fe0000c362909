//! What the cluster tests share: starting a node on a NATS cluster,
//! waiting until it accepts QoS 1/2, and reading application messages
//! with a bound. No test lives here.

use std::time::{Duration, Instant};

use crate::harness::nats::NatsCluster;
use crate::harness::*;

/// The log line of a node that accepts QoS 1/2 publishes.
pub const READY: &str = "accepting QoS 1/2 publishes";
/// A fresh JetStream cluster elects its leaders within seconds; after a
/// restart of every server it takes longer.
pub const READY_WAIT: Duration = Duration::from_secs(40);
/// Cross-node delivery: one JetStream round trip and a pull.
pub const CROSS: Duration = Duration::from_secs(10);

/// A fleetmq node called `name` on `nats`.
pub fn node(nats: &NatsCluster, name: &str) -> Broker {
    Broker::start_with(&nats.node_toml(name))
}

/// Waits until `broker` logged its ready line `count` times.
pub fn wait_ready(broker: &Broker, count: usize, nats: &NatsCluster) {
    let seen = broker.wait_for_log_lines(&[READY], count, READY_WAIT);
    assert!(
        seen >= count,
        "node not ready ({seen} of {count} ready lines):\n{}\n--- nats ---\n{}",
        broker.logs(),
        nats.logs()
    );
}

/// Waits up to `timeout` for an application PUBLISH (not `$SYS`);
/// acknowledges QoS 1 ones so the session's inflight window moves.
pub fn recv_publish(client: &mut RawClient, timeout: Duration) -> Option<Publish> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match client.recv_packet(deadline - Instant::now()) {
            Some(Packet::Publish(publish)) if !publish.topic.starts_with("$SYS") => {
                if publish.qos as u8 == 1 {
                    if let Some(id) = publish.packet_id {
                        client.send(&ack(0x40, id));
                    }
                }
                return Some(publish);
            }
            Some(_) => {}
            None => return None,
        }
    }
    None
}

/// A 5.0 CONNECT with clean start off and a session expiry interval.
pub fn persistent_v5(client_id: &str, expiry_secs: u32) -> ConnectBuilder {
    ConnectBuilder::v5(client_id)
        .clean(false)
        .property(prop::u32(prop::SESSION_EXPIRY, expiry_secs))
}

/// Publishes QoS 1 `payload` on `topic`, retrying (bounded) while the
/// node honestly refuses (0x80, e.g. during a JetStream election); true
/// once acknowledged with success.
pub fn publish_acknowledged(
    client: &mut RawClient,
    topic: &str,
    payload: &[u8],
    packet_id: u16,
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        client.send(
            &publish(topic, payload)
                .qos(1)
                .packet_id(packet_id)
                .v5(true)
                .build(),
        );
        match client.recv_packet(deadline.saturating_duration_since(Instant::now())) {
            Some(Packet::PubAck(ack)) if ack.reason == ReasonCode::SUCCESS => return true,
            Some(Packet::PubAck(_)) => std::thread::sleep(Duration::from_millis(200)),
            Some(other) => panic!("expected PUBACK, got {other:?}"),
            None => return false,
        }
    }
    false
}
