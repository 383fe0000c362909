//! The two JetStream streams of a cluster (decision 0156) and the
//! supervisor that decides whether this node may accept QoS >= 1
//! publishes: connected to NATS, streams in place, its consumers reading.
//!
//! Every node declares the same streams; the first one creates them,
//! the others find them. It never deletes or edits a stream.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType};
use async_nats::jetstream::Context;
use async_nats::Client;
use tokio::sync::watch;

use fleetmq_core::cluster::Settler;

use super::{Readiness, SUPERVISE_EVERY};

/// Every publish, once.
pub const MESSAGES: &str = "FLEETMQ_MSGS";
/// The retained message of each topic (one per subject).
pub const RETAINED: &str = "FLEETMQ_RETAINED";
/// How long the message stream keeps what a node has not read yet.
const MESSAGE_MAX_AGE: Duration = Duration::from_secs(3600);

fn messages(replicas: usize) -> Config {
    Config {
        name: MESSAGES.into(),
        subjects: vec![format!("{}.>", super::wire::MESSAGES_PREFIX)],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        max_age: MESSAGE_MAX_AGE,
        num_replicas: replicas,
        ..Config::default()
    }
}

fn retained(replicas: usize) -> Config {
    Config {
        name: RETAINED.into(),
        subjects: vec![format!("{}.>", super::wire::RETAINED_PREFIX)],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        max_messages_per_subject: 1,
        num_replicas: replicas,
        ..Config::default()
    }
}

/// Creates or finds both streams. Bounded by [`PROBE_TIMEOUT`]: a request
/// sent before JetStream has a leader is lost, and a quick retry finds the
/// leader sooner than the client's own timeout would.
async fn ensure(jetstream: &Context, replicas: usize) -> Result<(), String> {
    for config in [messages(replicas), retained(replicas)] {
        let name = config.name.clone();
        match tokio::time::timeout(PROBE_TIMEOUT, jetstream.get_or_create_stream(config)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(format!("stream {name}: {error}")),
            Err(_) => return Err(format!("stream {name}: no answer from JetStream")),
        }
    }
    Ok(())
}

/// True when both streams answer with a leader: a connected client is not
/// enough, JetStream may still be electing (after an outage) or have lost
/// its quorum (a partition).
async fn probe(jetstream: &Context) -> bool {
    let answer = tokio::time::timeout(PROBE_TIMEOUT, async {
        for name in [MESSAGES, RETAINED] {
            let stream = jetstream.get_stream(name).await.ok()?;
            let led = stream
                .cached_info()
                .cluster
                .as_ref()
                .is_none_or(|cluster| cluster.leader.is_some());
            if !led {
                return None;
            }
        }
        Some(())
    })
    .await;
    matches!(answer, Ok(Some(())))
}

/// Longest a health probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Supervisor turns between two probes while ready (one per second).
const PROBE_EVERY_TURNS: u32 = 5;

/// Keeps the link's readiness true exactly while this node is connected,
/// JetStream answers and every part is in place; logs each change once.
pub async fn supervise(
    jetstream: Context,
    client: Client,
    replicas: usize,
    settler: Settler,
    readiness: Arc<Readiness>,
    node: Arc<str>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut was_ready = false;
    let mut last_error = String::new();
    let mut turn: u32 = 0;
    loop {
        turn = turn.wrapping_add(1);
        let connected = client.connection_state() == State::Connected;
        if connected && !readiness.streams.load(Ordering::Acquire) {
            match ensure(&jetstream, replicas).await {
                Ok(()) => readiness.streams.store(true, Ordering::Release),
                Err(error) if error != last_error => {
                    tracing::warn!(node = %node, "Cluster: JetStream not ready yet: {error}; retrying.");
                    last_error = error;
                }
                Err(_) => {}
            }
        }
        let mut ready = connected && readiness.all();
        if ready && (!was_ready || turn % PROBE_EVERY_TURNS == 0) {
            ready = probe(&jetstream).await;
        }
        settler.set_ready(ready);
        if ready != was_ready {
            if ready {
                tracing::info!(node = %node, "Cluster node {node}: connected to NATS JetStream, accepting QoS 1/2 publishes.");
            } else {
                tracing::warn!(node = %node, "Cluster node {node}: lost NATS JetStream, refusing QoS 1/2 publishes until it is back.");
            }
            was_ready = ready;
        }
        tokio::select! {
            _ = tokio::time::sleep(SUPERVISE_EVERY) => {}
            _ = shutdown.changed() => {
                settler.set_ready(false);
                return;
            }
        }
    }
}
