//! The NATS JetStream cluster backend (`[cluster] backend = "nats"`,
//! docs/decisions/0156 to 0158): the connection to NATS, the two streams,
//! and the tasks that move messages between NATS and the engine.
//!
//! - [`connect`]: `async-nats` options from `[cluster]`, reconnecting
//!   forever.
//! - [`streams`]: the stream definitions, created by whichever node comes
//!   first, and the readiness supervisor.
//! - [`publisher`]: the engine's hand-over channel to JetStream; settles
//!   each QoS >= 1 message's acknowledgement cell.
//! - [`inbound`]: this node's durable consumer of every message; routes
//!   other nodes' messages to local subscribers through the engine.
//! - [`retained`]: the retained stream, read from the last message of each
//!   topic, applied to the local retained index.
//! - [`wire`]: subjects and headers of one message.
//!
//! It owns no MQTT state: sessions, routing and ACLs stay in the engine,
//! which it only calls. It must never acknowledge anything itself.

mod connect;
mod inbound;
mod publisher;
mod retained;
mod streams;
pub mod wire;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use fleetmq_core::cluster::ClusterLink;
use fleetmq_core::config::ClusterBackend;
use fleetmq_core::engine::Engine;

pub use connect::ClusterError;

/// What must hold for this node to accept QoS >= 1 publishes; each task
/// sets its own part, the supervisor combines them.
#[derive(Debug, Default)]
struct Readiness {
    /// Both streams exist.
    streams: AtomicBool,
    /// This node's consumer of the message stream is reading.
    consumer: AtomicBool,
    /// The retained stream was read up to its end once.
    retained: AtomicBool,
}

impl Readiness {
    fn all(&self) -> bool {
        self.streams.load(Ordering::Acquire)
            && self.consumer.load(Ordering::Acquire)
            && self.retained.load(Ordering::Acquire)
    }
}

/// How often the supervisor looks at the connection.
const SUPERVISE_EVERY: Duration = Duration::from_millis(200);

/// Starts the cluster backend when `[cluster]` asks for one: connects (in
/// the background, retrying forever), hands the engine its link and starts
/// the tasks. A broker on its own returns at once.
pub async fn start(
    broker: &Arc<Engine>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ClusterError> {
    let config = &broker.config.cluster;
    if config.backend == ClusterBackend::None {
        return Ok(());
    }
    let client = connect::connect(config).await?;
    let mut jetstream = async_nats::jetstream::new(client.clone());
    let timeout = Duration::from_millis(config.publish_timeout_ms);
    jetstream.set_timeout(timeout);
    let (link, backend) = ClusterLink::new(config.max_pending);
    if !broker.set_cluster(link) {
        return Err(ClusterError::AlreadyStarted);
    }
    let node: Arc<str> = Arc::from(config.node_name.as_str());
    let readiness = Arc::new(Readiness::default());
    tracing::info!(
        node = %node,
        "Cluster node {node} on NATS {}: QoS 1/2 publishes are refused until JetStream is ready.",
        config.servers.join(", ")
    );
    tokio::spawn(publisher::run(
        jetstream.clone(),
        client.clone(),
        backend.receiver,
        backend.settler.clone(),
        Arc::clone(&node),
        timeout,
        shutdown.clone(),
    ));
    tokio::spawn(inbound::run(
        jetstream.clone(),
        Arc::clone(broker),
        Arc::clone(&node),
        Arc::clone(&readiness),
        shutdown.clone(),
    ));
    tokio::spawn(retained::run(
        jetstream.clone(),
        Arc::clone(broker),
        Arc::clone(&readiness),
        shutdown.clone(),
    ));
    tokio::spawn(streams::supervise(
        jetstream,
        client,
        config.replicas,
        backend.settler,
        readiness,
        node,
        shutdown,
    ));
    Ok(())
}
