//! The lab PKI's CRL shared by every node (decision 0188). Each node has
//! its own copy of the lab PKI folder (`provision.pki_dir`, default
//! `<data_dir>/pki`); the cluster keeps one `crl.pem` in the
//! `FLEETMQ_CRL` bucket under one key, with the node and instance that
//! wrote it. As dynamic security (0184): compare-and-set, watch, apply.
//!
//! - A revocation made on a node (`POST /api/certs/{id}/revoke`,
//!   `fleetmq certs revoke` before SIGHUP, provisioning's
//!   `revoke_replaced`) changes its `crl.pem`; this task sees the file
//!   change and writes it over the revision it holds.
//! - Every node watches the key; another instance's CRL is taken into the
//!   folder by [`crate::certs::shared_crl::adopt`] (atomic rename, the
//!   PKI's file mode; revocations only add up) and the node runs the
//!   SIGHUP reload: its TLS listeners re-read their CRLs and the
//!   connections of revoked certificates are closed (5.0: 0x87).
//! - Starting, a node takes the bucket's CRL (merging what it revoked on
//!   its own); an empty bucket is seeded with the node's file. A node
//!   without NATS keeps its file and shares it once NATS is back.
//!
//! It never revokes anything itself and never touches a folder without
//! `ca.crt`.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream::kv::{CreateErrorKind, Operation, Store, UpdateErrorKind};
use async_nats::jetstream::Context;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use fleetmq_core::engine::Engine;

use super::buckets;
use super::names::bounded;
use super::view::ClusterView;
use crate::certs::shared_crl::{self, Adopted};
use crate::tls::TlsListener;

/// The bucket of the shared CRL.
pub const BUCKET: &str = "FLEETMQ_CRL";
/// Its one key.
const KEY: &str = "crl";
/// Longest one bucket request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the local `crl.pem` is looked at, and the pause between
/// attempts while NATS is away.
const LOOK_EVERY: Duration = Duration::from_millis(500);
/// A compare-and-set that found another node's CRL.
const LOST_RACE: &str = "another node wrote first";
/// A node just started is connecting to NATS: not worth a warning yet.
const NATS_GRACE: Duration = Duration::from_secs(10);

/// The bucket's value.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    node: String,
    instance: String,
    /// `crl.pem`, PEM.
    crl: String,
}

/// What the task needs of the node.
struct Node {
    broker: Weak<Engine>,
    tls: Arc<Vec<Arc<TlsListener>>>,
    pki: PathBuf,
    node: Arc<str>,
    instance: Arc<str>,
}

/// Where this node stands with the bucket.
struct Shared {
    store: Store,
    /// The revision of the bucket's CRL this node holds (0: none yet).
    revision: u64,
    /// `crl.pem` as it was when it last matched the bucket: a different
    /// file is a revocation made here.
    in_sync: Option<Vec<u8>>,
}

/// Starts the task sharing the lab PKI's CRL. The receiver turns true
/// once this node holds the cluster's CRL (at once without a lab PKI),
/// so that listeners need not accept before it does.
pub fn start(
    jetstream: Context,
    broker: &Arc<Engine>,
    view: Arc<ClusterView>,
    tls: Arc<Vec<Arc<TlsListener>>>,
    replicas: usize,
    instance: Arc<str>,
    shutdown: watch::Receiver<bool>,
) -> watch::Receiver<bool> {
    let (joined, joined_seen) = watch::channel(false);
    let node = Node {
        broker: Arc::downgrade(broker),
        tls,
        pki: crate::certs::lab_pki_dir(&broker.config),
        node: Arc::clone(&view.node),
        instance,
    };
    if !node.pki.join("ca.crt").exists() {
        joined.send_replace(true);
    }
    tokio::spawn(run(jetstream, node, view, replicas, joined, shutdown));
    joined_seen
}

async fn run(
    jetstream: Context,
    node: Node,
    view: Arc<ClusterView>,
    replicas: usize,
    joined: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut synced: Option<Shared> = None;
    let mut last_error = String::new();
    let started = tokio::time::Instant::now();
    loop {
        if synced.is_none() && node.pki.join("ca.crt").exists() {
            let attempt = if view.nats_connected() {
                join(&jetstream, &node, replicas).await
            } else if started.elapsed() > NATS_GRACE {
                Err("NATS is not connected".to_owned())
            } else {
                Err(String::new())
            };
            match attempt {
                Ok(shared) => {
                    tracing::info!(node = %node.node, "Cluster: this node follows the cluster's certificate revocation list (revision {}).", shared.revision);
                    synced = Some(shared);
                    joined.send_replace(true);
                }
                Err(error) if !error.is_empty() && error != last_error => {
                    tracing::warn!(node = %node.node, "Cluster: the shared certificate revocation list is not reachable yet ({error}); revocations made here stay on this node until it is.");
                    last_error = error;
                }
                Err(_) => {}
            }
        }
        let Some(shared) = synced.as_mut() else {
            tokio::select! {
                _ = tokio::time::sleep(LOOK_EVERY) => {}
                _ = shutdown.changed() => return,
            }
            continue;
        };
        let mut entries = match shared
            .store
            .watch_from_revision(KEY, shared.revision + 1)
            .await
        {
            Ok(entries) => entries,
            Err(_) => {
                tokio::time::sleep(LOOK_EVERY).await;
                continue;
            }
        };
        let mut look = tokio::time::interval(LOOK_EVERY);
        loop {
            tokio::select! {
                next = entries.next() => {
                    let Some(Ok(entry)) = next else { break };
                    if entry.revision <= shared.revision || entry.operation != Operation::Put {
                        continue;
                    }
                    shared.revision = entry.revision;
                    apply(&node, shared, &entry.value).await;
                }
                _ = look.tick() => share_local(&node, shared).await,
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Opens the bucket and takes its CRL, or seeds it with this node's.
async fn join(jetstream: &Context, node: &Node, replicas: usize) -> Result<Shared, String> {
    let store = tokio::time::timeout(REQUEST_TIMEOUT, buckets::open(jetstream, BUCKET, replicas))
        .await
        .map_err(|_| format!("bucket {BUCKET}: no answer from JetStream"))??;
    let current = bounded(store.entry(KEY))
        .await?
        .filter(|entry| entry.operation == Operation::Put);
    let mut shared = Shared {
        store,
        revision: 0,
        in_sync: None,
    };
    match current {
        Some(entry) => {
            shared.revision = entry.revision;
            apply(node, &mut shared, &entry.value).await;
        }
        None => {
            let Some(local) = read_local(node).await else {
                return Ok(shared);
            };
            let value = record(node, &local)?;
            match tokio::time::timeout(REQUEST_TIMEOUT, shared.store.create(KEY, value)).await {
                Ok(Ok(revision)) => {
                    tracing::info!(node = %node.node, "Cluster: this node's certificate revocation list now seeds the cluster's.");
                    shared.revision = revision;
                    shared.in_sync = Some(local);
                }
                Ok(Err(error)) if error.kind() == CreateErrorKind::AlreadyExists => {
                    return Err("another node seeded it at the same moment".into())
                }
                Ok(Err(error)) => return Err(error.to_string()),
                Err(_) => return Err("no answer from JetStream".into()),
            }
        }
    }
    Ok(shared)
}

fn record(node: &Node, crl: &[u8]) -> Result<bytes::Bytes, String> {
    let record = Record {
        node: node.node.to_string(),
        instance: node.instance.to_string(),
        crl: String::from_utf8_lossy(crl).into_owned(),
    };
    serde_json::to_vec(&record)
        .map(Into::into)
        .map_err(|error| error.to_string())
}

/// This node's `crl.pem`, if it has one.
async fn read_local(node: &Node) -> Option<Vec<u8>> {
    tokio::fs::read(node.pki.join("crl.pem")).await.ok()
}

/// Shares `crl.pem` when it changed here since it last matched the
/// bucket. A lost compare-and-set takes the winner's CRL (merging this
/// node's revocations into it, which the next look shares).
async fn share_local(node: &Node, shared: &mut Shared) {
    let Some(local) = read_local(node).await else {
        return;
    };
    if shared.in_sync.as_deref() == Some(local.as_slice()) {
        return;
    }
    // Only a CRL this node could take from another one goes out.
    if shared_crl::summarize(&local).is_err() {
        return;
    }
    let Ok(value) = record(node, &local) else {
        return;
    };
    let written = if shared.revision == 0 {
        tokio::time::timeout(REQUEST_TIMEOUT, shared.store.create(KEY, value))
            .await
            .map(|result| {
                result.map_err(|error| match error.kind() {
                    CreateErrorKind::AlreadyExists => LOST_RACE.to_owned(),
                    _ => error.to_string(),
                })
            })
    } else {
        tokio::time::timeout(
            REQUEST_TIMEOUT,
            shared.store.update(KEY, value, shared.revision),
        )
        .await
        .map(|result| {
            result.map_err(|error| match error.kind() {
                UpdateErrorKind::WrongLastRevision => LOST_RACE.to_owned(),
                _ => error.to_string(),
            })
        })
    };
    match written {
        Ok(Ok(revision)) => {
            shared.revision = revision;
            shared.in_sync = Some(local);
            tracing::info!(node = %node.node, "Cluster: this node's certificate revocation list shared with every node (revision {revision}).");
        }
        Ok(Err(error)) if error == LOST_RACE => {
            // Another node wrote first: take its CRL with ours merged in.
            if let Ok(Some(entry)) = bounded(shared.store.entry(KEY)).await {
                if entry.operation == Operation::Put {
                    shared.revision = entry.revision;
                    apply(node, shared, &entry.value).await;
                }
            }
        }
        // NATS away: the next look tries again.
        _ => {}
    }
}

/// Takes a CRL from the bucket into this node's PKI folder and, when it
/// changed anything, reloads the TLS listeners as SIGHUP does.
async fn apply(node: &Node, shared: &mut Shared, value: &[u8]) {
    let Ok(record) = serde_json::from_slice::<Record>(value) else {
        tracing::error!(node = %node.node, "Cluster: revision {} of the shared certificate revocation list is not one fleetmq wrote; ignored.", shared.revision);
        return;
    };
    let dir = node.pki.clone();
    let pem = record.crl.clone().into_bytes();
    let adopted = tokio::task::spawn_blocking(move || {
        shared_crl::adopt(&dir, &pem).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|_| Err("worker failed".into()));
    let adopted = match adopted {
        Ok(adopted) => adopted,
        Err(error) => {
            tracing::error!(node = %node.node, "Cluster: the certificate revocation list from node {} cannot be used here ({error}); this node keeps its own {}.", record.node, node.pki.join("crl.pem").display());
            return;
        }
    };
    match &adopted {
        Adopted::Unchanged => {
            shared.in_sync = Some(record.crl.into_bytes());
            return;
        }
        Adopted::Replaced { dropped } => {
            shared.in_sync = Some(record.crl.into_bytes());
            if !dropped.is_empty() {
                tracing::error!(node = %node.node, "Cluster: node {}'s certificate revocation list does not revoke {} that this node's did, and this node has no CA key to merge them: revoke them again on a node with the CA key.", record.node, dropped.join(", "));
            }
        }
        Adopted::Merged { added } => {
            // The file now differs from the bucket: the next look shares it.
            shared.in_sync = Some(record.crl.into_bytes());
            tracing::warn!(node = %node.node, "Cluster: this node had revoked {} which node {}'s certificate revocation list did not; merged, and shared again.", added.join(", "), record.node);
        }
    }
    let Some(broker) = node.broker.upgrade() else {
        return;
    };
    let tls = Arc::clone(&node.tls);
    let reloaded =
        tokio::task::spawn_blocking(move || crate::server::reload_tls_counting(&tls, &broker))
            .await;
    let (failed, disconnected) = reloaded.unwrap_or((node.tls.len(), 0));
    tracing::info!(
        node = %node.node,
        "Cluster: certificate revocation list changed on node {}; applied here ({} listener(s) failed to reload, {disconnected} connection(s) of revoked certificates closed).",
        record.node,
        failed
    );
}
