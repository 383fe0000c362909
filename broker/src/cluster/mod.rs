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
//! - [`buckets`]: the key-value buckets of node names, client-id owners
//!   and session records (decisions 0172, 0173).
//! - [`names`]: one running process per node name.
//! - [`owners`]: who holds each client id; take-over across nodes.
//! - [`sessions`]: persistent session records, written as sessions change.
//! - [`directory`]: a CONNECT's claim, and sessions brought in from
//!   another node; [`replay`]: what such a session missed.
//! - [`shared`]: `$share` groups across nodes, one JetStream consumer
//!   per group shared by the nodes with members (decision 0182).
//! - [`wills`]: each will published once cluster-wide, also when its
//!   node dies ([`will_keeper`]: the engine's handle on it);
//!   [`expiry`]: each expired session record removed once, the sessions
//!   of a dead node marked offline (decision 0183);
//!   [`liveness`]: which node instances are gone.
//! - [`view`]: nodes and client-id owners for the dashboard;
//!   [`metrics`]: the backend's Prometheus metrics; [`security`]: the
//!   dynsec configuration shared by every node (decisions 0184, 0185);
//!   [`revocation`]: the lab PKI's CRL shared by every node (0188).
//!
//! It owns no MQTT state: sessions, routing and ACLs stay in the engine,
//! which it only calls. It must never acknowledge anything itself.

mod buckets;
mod connect;
mod directory;
mod expiry;
mod inbound;
mod liveness;
pub mod metrics;
mod names;
mod owners;
mod publisher;
mod replay;
mod retained;
mod revocation;
mod security;
mod sessions;
mod shared;
mod streams;
pub mod view;
mod will_keeper;
mod will_record;
mod wills;
pub mod wire;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use fleetmq_core::cluster::ClusterLink;
use fleetmq_core::config::ClusterBackend;
use fleetmq_core::engine::Engine;

pub use connect::ClusterError;
pub use view::ClusterView;

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
    /// This process holds the node name (decision 0172).
    name: AtomicBool,
    /// The will keeper has its bucket open (0183): before that, a will
    /// could only be this node's, which a reconnect elsewhere cannot
    /// settle.
    wills: AtomicBool,
}

impl Readiness {
    fn all(&self) -> bool {
        self.streams.load(Ordering::Acquire)
            && self.consumer.load(Ordering::Acquire)
            && self.retained.load(Ordering::Acquire)
            && self.name.load(Ordering::Acquire)
            && self.wills.load(Ordering::Acquire)
    }
}

/// How often the supervisor looks at the connection.
const SUPERVISE_EVERY: Duration = Duration::from_millis(200);

/// Longest `start` waits to learn whether the node name is free: a name
/// held by a killed node frees itself after [`names::STALE_AFTER`].
const NAME_WAIT: Duration = Duration::from_secs(12);

/// Starts the cluster backend when `[cluster]` asks for one: connects (in
/// the background, retrying forever), hands the engine its link and starts
/// the tasks, filling `view` for the dashboard and metrics. A broker on its
/// own returns at once.
pub async fn start(
    broker: &Arc<Engine>,
    view: &Arc<ClusterView>,
    tls: Arc<Vec<Arc<crate::tls::TlsListener>>>,
    shutdown: watch::Receiver<bool>,
) -> Result<Stopping, ClusterError> {
    let config = &broker.config.cluster;
    if config.backend == ClusterBackend::None {
        return Ok(Stopping::default());
    }
    let client = connect::connect(config).await?;
    let _ = view.client.set(client.clone());
    let mut jetstream = async_nats::jetstream::new(client.clone());
    let timeout = Duration::from_millis(config.publish_timeout_ms);
    jetstream.set_timeout(timeout);
    let (link, backend) = ClusterLink::new(config.max_pending);
    if !broker.set_cluster(link) {
        return Err(ClusterError::AlreadyStarted);
    }
    let node: Arc<str> = Arc::from(config.node_name.as_str());
    let readiness = Arc::new(Readiness::default());
    let instance = instance_id();
    let opened = Arc::clone(&view.buckets);
    let claims = Arc::new(owners::Claims::default());
    let writer = sessions::Writer {
        node: Arc::clone(&node),
        instance: Arc::clone(&instance),
        claims: Arc::clone(&claims),
    };
    let directory = directory::Directory {
        broker: Arc::downgrade(broker),
        jetstream: jetstream.clone(),
        node: Arc::clone(&node),
        instance: Arc::clone(&instance),
        opened: Arc::clone(&opened),
        claims: Arc::clone(&claims),
    };
    if let Some(link) = broker.cluster() {
        link.set_wills(Arc::new(wills::start(
            jetstream.clone(),
            broker,
            Arc::clone(&node),
            Arc::clone(&instance),
            config.replicas,
            Arc::clone(&readiness),
            shutdown.clone(),
        )));
        link.set_directory(Arc::new(metrics::Metered {
            inner: Arc::new(directory),
            histogram: view.metrics.admission.clone(),
        }));
    }
    let (name_state, mut name_seen) = watch::channel(names::NameState::Pending);
    let names = tokio::spawn(names::run(
        jetstream.clone(),
        client.clone(),
        config.replicas,
        Arc::clone(&node),
        Arc::clone(&instance),
        Arc::clone(&opened),
        Arc::clone(&readiness),
        name_state,
        shutdown.clone(),
    ));
    tokio::spawn(owners::watch(
        Arc::clone(&opened),
        Arc::downgrade(broker),
        Arc::clone(&instance),
        Arc::clone(&claims),
        shutdown.clone(),
    ));
    tokio::spawn(expiry::run(Arc::clone(&opened), shutdown.clone()));
    tokio::spawn(view::publish_status(
        Arc::clone(view),
        Arc::clone(&instance),
        shutdown.clone(),
    ));
    security::start(
        jetstream.clone(),
        broker,
        Arc::clone(view),
        config.replicas,
        Arc::clone(&instance),
        shutdown.clone(),
    );
    let mut crl_joined = revocation::start(
        jetstream.clone(),
        broker,
        Arc::clone(view),
        tls,
        config.replicas,
        Arc::clone(&instance),
        shutdown.clone(),
    );
    tokio::spawn(sessions::write(
        Arc::clone(&opened),
        Arc::downgrade(broker),
        broker.events.subscribe(),
        writer,
        shutdown.clone(),
    ));
    let named = tokio::time::timeout(
        NAME_WAIT,
        name_seen.wait_for(|state| *state != names::NameState::Pending),
    )
    .await;
    let named = named.map(|seen| seen.map(|state| state.clone()));
    let nats_answered = named.is_ok();
    match named {
        Ok(Ok(names::NameState::InUse(why))) => {
            return Err(ClusterError::NameInUse {
                node: node.to_string(),
                why,
            })
        }
        Ok(_) => {}
        Err(_) => tracing::warn!(
            node = %node,
            "Cluster node {node}: NATS JetStream did not answer within {}s; the node name is checked once it does.",
            NAME_WAIT.as_secs()
        ),
    }
    // A node started after a revocation must not let the revoked device
    // in while it reads the cluster's CRL (decision 0188).
    if nats_answered
        && tokio::time::timeout(CRL_WAIT, crl_joined.wait_for(|joined| *joined))
            .await
            .is_err()
    {
        tracing::warn!(
            node = %node,
            "Cluster node {node}: the shared certificate revocation list was not read within {}s; listeners start with this node's own crl.pem.",
            CRL_WAIT.as_secs()
        );
    }
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
    tokio::spawn(shared::run(
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
    Ok(Stopping { names: Some(names) })
}

/// Longest a stopping node waits to release its name: a delete, a read
/// and a second delete, each bounded by 2 s.
const RELEASE_WAIT: Duration = Duration::from_secs(7);

/// What a clean stop waits for once the shutdown signal is sent: the node
/// name released in the bucket (decision 0172), so that a restart takes
/// it at once. Without the wait the process could exit, and its runtime
/// drop the request, before the delete reached NATS.
#[derive(Debug, Default)]
pub struct Stopping {
    names: Option<tokio::task::JoinHandle<()>>,
}

impl Stopping {
    /// Waits (bounded) for the cluster tasks that must finish.
    pub async fn wait(self) {
        if let Some(names) = self.names {
            let _ = tokio::time::timeout(RELEASE_WAIT, names).await;
        }
    }
}

/// Longest `start` waits for this node to take the cluster's CRL before
/// its listeners accept.
const CRL_WAIT: Duration = Duration::from_secs(5);

/// An id for this process, distinct across restarts and hosts in practice
/// (process id and start time); it only tells instances apart.
fn instance_id() -> Arc<str> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Arc::from(format!("{:x}-{:x}", std::process::id(), nanos).as_str())
}
