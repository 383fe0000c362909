//! `FLEETMQ_TEST_BROKER=cluster`: the tests' "broker" is a fleetmq
//! cluster (issue 19): three Debian nats-servers with JetStream and three
//! fleetmq nodes on loopback, started by [`Broker::start_with_conf`] for
//! every test that uses it (meant for the conformance modules:
//! `run-tests.sh` runs `conformance_` this way). Each call of
//! [`Broker::addr`] gives the next node, so the clients of one test
//! connect through different nodes, and a client that reconnects may land
//! on another node; log assertions look at every node.
//!
//! Only what goes through `addr` and the logs is spread: signals, the
//! config file and extra listeners are node a's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::super::nats::NatsCluster;
use super::Broker;

/// The line a node logs once it accepts QoS 1/2 publishes.
const READY: &str = "accepting QoS 1/2 publishes";
/// A fresh JetStream cluster elects its leaders within seconds.
const READY_WAIT: Duration = Duration::from_secs(40);

/// True when the tests run against a three-node fleetmq cluster.
pub fn is_cluster() -> bool {
    std::env::var("FLEETMQ_TEST_BROKER").is_ok_and(|v| v == "cluster")
}

/// Nodes b and c and the NATS cluster, held by node a's [`Broker`].
pub struct Peers {
    pub(super) nodes: Vec<Broker>,
    /// Dropped after the nodes (field order).
    _nats: NatsCluster,
    next: AtomicUsize,
}

impl Peers {
    /// The address the next client gets: a, b, c, a, ...
    pub(super) fn next_addr(&self, first: &Broker) -> std::net::SocketAddr {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % (self.nodes.len() + 1);
        match turn.checked_sub(1).and_then(|index| self.nodes.get(index)) {
            Some(node) => node.addr,
            None => first.addr,
        }
    }
}

/// Starts the NATS cluster and three nodes with `extra_toml`; returns
/// node a holding the others.
pub(super) fn start(extra_toml: &str) -> Broker {
    let nats = NatsCluster::start();
    let mut nodes: Vec<Broker> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            let dir = tempfile::tempdir().expect("tempdir");
            Broker::start_fleetmq(dir, &format!("{extra_toml}\n{}", nats.node_toml(name)))
        })
        .collect();
    for node in &nodes {
        let seen = node.wait_for_log_lines(&[READY], 1, READY_WAIT);
        assert_eq!(seen, 1, "cluster node not ready:\n{}", node.logs());
    }
    let mut first = nodes.remove(0);
    first.peers = Some(Box::new(Peers {
        nodes,
        _nats: nats,
        next: AtomicUsize::new(0),
    }));
    first
}
