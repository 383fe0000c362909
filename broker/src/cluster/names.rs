//! One running process per node name (decision 0172). Two nodes with the
//! same name would share one durable consumer and silently split its
//! messages between them, so a node holds its name in the `FLEETMQ_NODES`
//! bucket before it reads anything: an entry with its instance id, renewed
//! every [`HEARTBEAT_EVERY`] with a compare-and-set on the revision.
//!
//! Starting, a node that finds its name held watches the entry for
//! [`STALE_AFTER`]: if the holder renews it, the name is in use and the
//! node refuses to start; if not (the holder was killed), it takes the
//! name over. A node whose renewal finds another instance's revision lost
//! its name and stops accepting QoS >= 1 publishes for good. No clock is
//! compared across machines: only whether the revision moves.
//!
//! It must not touch the other buckets.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::kv::{CreateErrorKind, Operation, Store, UpdateErrorKind};
use async_nats::jetstream::Context;
use async_nats::Client;
use bytes::Bytes;
use tokio::sync::watch;

use super::buckets::{self, Buckets};
use super::{Readiness, SUPERVISE_EVERY};

/// How often the holder renews its name.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// A name whose entry did not change for this long is free to take.
pub const STALE_AFTER: Duration = Duration::from_secs(6);
/// Longest one bucket request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Where this node's hold on its name stands, for `start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameState {
    /// NATS not reached yet.
    Pending,
    Held,
    /// A running node holds it; the text says which.
    InUse(String),
}

/// What could not be done with the name.
enum LeaseError {
    InUse(String),
    Nats(String),
}

fn record(instance: &str) -> Bytes {
    let millis = fleetmq_core::store::now_ms();
    Bytes::from(format!(
        "{{\"instance\":\"{instance}\",\"heartbeat_ms\":{millis}}}"
    ))
}

fn holder(value: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(value)
        .ok()
        .and_then(|v| v.get("instance")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// `future`, bounded by [`REQUEST_TIMEOUT`], its error as text.
pub(super) async fn bounded<T, E: std::fmt::Display>(
    future: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer from JetStream".into()),
    }
}

/// Takes `node` for `instance`; returns the entry's revision.
async fn acquire(nodes: &Store, node: &str, instance: &str) -> Result<u64, LeaseError> {
    let key = buckets::key(node);
    let held = bounded(nodes.entry(key.clone()))
        .await
        .map_err(LeaseError::Nats)?
        .filter(|entry| entry.operation == Operation::Put);
    let Some(held) = held else {
        return match tokio::time::timeout(REQUEST_TIMEOUT, nodes.create(&key, record(instance)))
            .await
        {
            Ok(Ok(revision)) => Ok(revision),
            Ok(Err(error)) if error.kind() == CreateErrorKind::AlreadyExists => Err(
                LeaseError::InUse("another instance took it at the same moment".into()),
            ),
            Ok(Err(error)) => Err(LeaseError::Nats(error.to_string())),
            Err(_) => Err(LeaseError::Nats("no answer from JetStream".into())),
        };
    };
    tracing::info!(
        node = %node,
        "Cluster node name {node} is held by instance {}; waiting {}s to see whether it is alive.",
        holder(&held.value),
        STALE_AFTER.as_secs()
    );
    tokio::time::sleep(STALE_AFTER).await;
    let now = bounded(nodes.entry(key.clone()))
        .await
        .map_err(LeaseError::Nats)?;
    if let Some(now) = now.filter(|entry| entry.revision != held.revision) {
        return Err(LeaseError::InUse(format!(
            "instance {} renewed it within {}s",
            holder(&now.value),
            STALE_AFTER.as_secs()
        )));
    }
    match tokio::time::timeout(
        REQUEST_TIMEOUT,
        nodes.update(&key, record(instance), held.revision),
    )
    .await
    {
        Ok(Ok(revision)) => Ok(revision),
        Ok(Err(error)) if error.kind() == UpdateErrorKind::WrongLastRevision => Err(
            LeaseError::InUse("another instance took it at the same moment".into()),
        ),
        Ok(Err(error)) => Err(LeaseError::Nats(error.to_string())),
        Err(_) => Err(LeaseError::Nats("no answer from JetStream".into())),
    }
}

/// The revision of the name's entry while `instance` holds it.
async fn own_revision(nodes: &Store, key: &str, instance: &str) -> Option<u64> {
    let entry = bounded(nodes.entry(key.to_owned())).await.ok()??;
    (entry.operation == Operation::Put && holder(&entry.value) == instance)
        .then_some(entry.revision)
}

/// Deletes the name's entry at a clean stop, so a restart takes it at
/// once; at the revision this instance wrote last, which may be newer
/// than `held` when a renewal timed out but was written.
async fn release(nodes: &Store, node: &str, instance: &str, held: u64) {
    let key = buckets::key(node);
    let mut at = held;
    for _ in 0..2 {
        match bounded(nodes.delete_expect_revision(&key, Some(at))).await {
            Ok(()) => {
                tracing::info!(node = %node, "Cluster node name {node} released.");
                return;
            }
            Err(error) => match own_revision(nodes, &key, instance).await {
                Some(current) if current != at => at = current,
                _ => {
                    tracing::warn!(node = %node, "Cluster node name {node} not released ({error}); a restart waits {}s for it.", STALE_AFTER.as_secs());
                    return;
                }
            },
        }
    }
}

/// Opens the buckets, takes the node name, then renews it until shutdown
/// or until another instance takes it. Publishes the buckets once open.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    jetstream: Context,
    client: Client,
    replicas: usize,
    node: Arc<str>,
    instance: Arc<str>,
    opened: Arc<std::sync::OnceLock<Buckets>>,
    readiness: Arc<Readiness>,
    state: watch::Sender<NameState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut revision = None;
    let mut last_error = String::new();
    loop {
        if client.connection_state() == State::Connected {
            if opened.get().is_none() {
                match buckets::ensure(&jetstream, replicas, REQUEST_TIMEOUT).await {
                    Ok(buckets) => {
                        let _ = opened.set(buckets);
                    }
                    Err(error) if error != last_error => {
                        tracing::warn!(node = %node, "Cluster: key-value buckets not ready yet: {error}; retrying.");
                        last_error = error;
                    }
                    Err(_) => {}
                }
            }
            if let Some(buckets) = opened.get() {
                match revision {
                    None => match acquire(&buckets.nodes, &node, &instance).await {
                        Ok(held) => {
                            revision = Some(held);
                            readiness.name.store(true, Ordering::Release);
                            state.send_replace(NameState::Held);
                            tracing::info!(node = %node, "Cluster node name {node} held by this instance ({instance}).");
                        }
                        Err(LeaseError::InUse(why)) => {
                            tracing::error!(node = %node, "Cluster node name {node} is in use by a running node ({why}): give each node its own cluster.node_name. This node will not route.");
                            state.send_replace(NameState::InUse(why));
                            return;
                        }
                        Err(LeaseError::Nats(error)) if error != last_error => {
                            tracing::warn!(node = %node, "Cluster: cannot take the node name yet: {error}; retrying.");
                            last_error = error;
                        }
                        Err(LeaseError::Nats(_)) => {}
                    },
                    Some(held) => {
                        let key = buckets::key(&node);
                        match tokio::time::timeout(
                            REQUEST_TIMEOUT,
                            buckets.nodes.update(&key, record(&instance), held),
                        )
                        .await
                        {
                            Ok(Ok(next)) => revision = Some(next),
                            Ok(Err(error))
                                if error.kind() == UpdateErrorKind::WrongLastRevision =>
                            {
                                // A renewal that timed out may have been
                                // written all the same: still ours.
                                if let Some(current) =
                                    own_revision(&buckets.nodes, &key, &instance).await
                                {
                                    revision = Some(current);
                                    continue;
                                }
                                readiness.name.store(false, Ordering::Release);
                                tracing::error!(node = %node, "Cluster node name {node} was taken by another instance while this one could not renew it; this node stops routing and refuses QoS 1/2 publishes. Restart it under its own name.");
                                return;
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        let pause = if revision.is_some() {
            HEARTBEAT_EVERY
        } else {
            SUPERVISE_EVERY
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => {
                // Free the name for a quick restart (best effort: a killed
                // node's name frees itself after STALE_AFTER).
                if let (Some(buckets), Some(held)) = (opened.get(), revision) {
                    release(&buckets.nodes, &node, &instance, held).await;
                }
                return;
            }
        }
    }
}
