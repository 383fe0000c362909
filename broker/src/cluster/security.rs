//! Dynamic security shared by every node (decision 0184): the whole
//! `dynamic-security.json` document lives in the `FLEETMQ_DYNSEC` bucket
//! under one key, with whom its last change concerns. A command run on
//! one node (`mosquitto_ctrl dynsec`, the dashboard) is applied there as
//! on a single broker, then written with a compare-and-set on the
//! revision this node last saw; every other node watches the key,
//! replaces its configuration with the document and disconnects whom the
//! change concerns, as the node that ran it did.
//!
//! Starting, a node takes the cluster's document (its own file only seeds
//! an empty bucket). Two changes on two nodes within one round trip: the
//! later compare-and-set fails, that node logs it and takes the winner's
//! document, so every node ends on the same one and the losing change is
//! undone everywhere (the admin repeats it). It never runs a command.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream::kv::{CreateErrorKind, Operation, Store, UpdateErrorKind};
use async_nats::jetstream::Context;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use fleetmq_core::auth::dynsec::{Kick, Observer};
use fleetmq_core::engine::Engine;

use super::buckets;
use super::view::ClusterView;

/// The bucket of the dynsec document.
pub const BUCKET: &str = "FLEETMQ_DYNSEC";
/// Its one key.
const KEY: &str = "document";
/// Longest one bucket request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between attempts while NATS is away.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// Whom a change concerns, as stored beside the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum KickRecord {
    Username(String),
    Anonymous,
    Unit(String),
}

impl From<&Kick> for KickRecord {
    fn from(kick: &Kick) -> KickRecord {
        match kick {
            Kick::Username(name) => KickRecord::Username(name.clone()),
            Kick::Anonymous => KickRecord::Anonymous,
            Kick::Unit(unit) => KickRecord::Unit(unit.clone()),
        }
    }
}

impl From<KickRecord> for Kick {
    fn from(kick: KickRecord) -> Kick {
        match kick {
            KickRecord::Username(name) => Kick::Username(name),
            KickRecord::Anonymous => Kick::Anonymous,
            KickRecord::Unit(unit) => Kick::Unit(unit),
        }
    }
}

/// The bucket's value.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    /// The node and process that made the change.
    node: String,
    instance: String,
    kicks: Vec<KickRecord>,
    /// The `dynamic-security.json` text.
    document: String,
}

/// A change made on this node, not yet in the bucket.
struct Change {
    document: String,
    kicks: Vec<Kick>,
}

/// Installs the observer on this node's dynsec state (before any command
/// can run) and starts the task that shares it. Does nothing without
/// `auth.dynsec_file`.
pub fn start(
    jetstream: Context,
    broker: &Arc<Engine>,
    view: Arc<ClusterView>,
    replicas: usize,
    instance: Arc<str>,
    shutdown: watch::Receiver<bool>,
) {
    let Some(dynsec) = broker.auth().dynsec.clone() else {
        return;
    };
    let (changes, received) = mpsc::unbounded_channel();
    let installed = dynsec.observe(Observer(Box::new(move |document, kicks| {
        let _ = changes.send(Change {
            document: document.to_string(),
            kicks: kicks.to_vec(),
        });
    })));
    if !installed {
        return;
    }
    tokio::spawn(run(
        jetstream,
        Arc::downgrade(broker),
        view,
        replicas,
        instance,
        received,
        shutdown,
    ));
}

async fn bounded<T, E: std::fmt::Display>(
    future: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer from JetStream".into()),
    }
}

async fn open(jetstream: &Context, replicas: usize) -> Result<Store, String> {
    tokio::time::timeout(REQUEST_TIMEOUT, buckets::open(jetstream, BUCKET, replicas))
        .await
        .map_err(|_| format!("bucket {BUCKET}: no answer from JetStream"))?
}

/// Where this node stands with the shared document.
struct Shared {
    store: Store,
    /// This node's document seeded the bucket.
    seeded: bool,
    /// The revision of the document this node holds.
    revision: u64,
}

#[allow(clippy::too_many_arguments)]
async fn run(
    jetstream: Context,
    broker: Weak<Engine>,
    view: Arc<ClusterView>,
    replicas: usize,
    instance: Arc<str>,
    mut changes: mpsc::UnboundedReceiver<Change>,
    mut shutdown: watch::Receiver<bool>,
) {
    let node = Arc::clone(&view.node);
    let mut synced: Option<Shared> = None;
    let mut pending: Option<Change> = None;
    let mut last_error = String::new();
    loop {
        if synced.is_none() && view.nats_connected() {
            match join(&jetstream, &broker, replicas, &node, &instance).await {
                Ok(sync) => {
                    tracing::info!(node = %node, "dynsec: this node follows the cluster's dynamic security configuration from revision {}.", sync.revision);
                    while let Ok(change) = changes.try_recv() {
                        pending = Some(merge(pending.take(), change));
                    }
                    // Made on this node's own configuration, which the
                    // cluster's just replaced (or which seeded it).
                    if pending.take().is_some() && !sync.seeded {
                        tracing::error!(node = %node, "dynsec: a change made on this node before it reached the cluster's dynamic security configuration is undone: repeat it.");
                    }
                    synced = Some(sync);
                }
                Err(error) if error != last_error => {
                    tracing::warn!(node = %node, "Cluster: the shared dynamic security configuration is not reachable yet ({error}); changes made here wait for it.");
                    last_error = error;
                }
                Err(_) => {}
            }
        }
        let Some(sync) = synced.as_mut() else {
            tokio::select! {
                _ = tokio::time::sleep(RETRY_EVERY) => {}
                change = changes.recv() => match change {
                    Some(change) => pending = Some(merge(pending.take(), change)),
                    None => return,
                },
                _ = shutdown.changed() => return,
            }
            continue;
        };
        let mut entries = match sync.store.watch_from_revision(KEY, sync.revision + 1).await {
            Ok(entries) => entries,
            Err(_) => {
                tokio::time::sleep(RETRY_EVERY).await;
                continue;
            }
        };
        loop {
            while let Ok(change) = changes.try_recv() {
                pending = Some(merge(pending.take(), change));
            }
            if let Some(change) = pending.take() {
                match share(sync, &broker, &node, &instance, change, &changes).await {
                    Ok(()) => {}
                    Err(change) => pending = Some(change),
                }
            }
            let retry = pending.is_some();
            tokio::select! {
                next = entries.next() => {
                    let Some(Ok(entry)) = next else { break };
                    if entry.revision <= sync.revision || entry.operation != Operation::Put {
                        continue;
                    }
                    sync.revision = entry.revision;
                    let Ok(record) = serde_json::from_slice::<Record>(&entry.value) else {
                        tracing::error!(node = %node, "Cluster: revision {} of the shared dynamic security configuration is not one fleetmq wrote; ignored.", entry.revision);
                        continue;
                    };
                    if record.instance == *instance {
                        continue;
                    }
                    if pending.take().is_some() {
                        tracing::error!(node = %node, "dynsec: a change made on this node was overtaken by one made on node {} at the same time; it is undone on every node: repeat it.", record.node);
                    }
                    apply(&broker, &node, &record);
                }
                change = changes.recv() => match change {
                    Some(change) => pending = Some(merge(pending.take(), change)),
                    None => return,
                },
                _ = tokio::time::sleep(RETRY_EVERY), if retry => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Two changes not yet shared: the later document, everyone either
/// concerns.
fn merge(earlier: Option<Change>, later: Change) -> Change {
    match earlier {
        None => later,
        Some(mut earlier) => {
            earlier.kicks.extend(later.kicks);
            earlier.kicks.sort();
            earlier.kicks.dedup();
            Change {
                document: later.document,
                kicks: earlier.kicks,
            }
        }
    }
}

/// Opens the bucket and takes the cluster's document, or seeds it with
/// this node's.
async fn join(
    jetstream: &Context,
    broker: &Weak<Engine>,
    replicas: usize,
    node: &str,
    instance: &str,
) -> Result<Shared, String> {
    let store = open(jetstream, replicas).await?;
    let current = bounded(store.entry(KEY))
        .await?
        .filter(|entry| entry.operation == Operation::Put);
    if let Some(entry) = current {
        let record: Record = serde_json::from_slice(&entry.value)
            .map_err(|error| format!("the stored document is not fleetmq's ({error})"))?;
        let broker = broker.upgrade().ok_or("shutting down")?;
        let dynsec = broker.auth().dynsec.clone().ok_or("no dynsec")?;
        if dynsec.render().ok().as_deref() != Some(record.document.as_str()) {
            // What this node enforced before it joined may differ in any
            // way: everyone its old or new document names reconnects.
            let mut everyone = usernames(&dynsec.snapshot());
            if let Ok(new) = fleetmq_core::auth::dynsec::file::parse(&record.document) {
                everyone.extend(usernames(&new));
            }
            everyone.push(KickRecord::Anonymous);
            let joined = Record {
                kicks: everyone,
                ..record
            };
            apply(&Arc::downgrade(&broker), node, &joined);
            tracing::info!(node = %node, "dynsec: this node took the cluster's dynamic security configuration (revision {}, last changed on node {}).", entry.revision, joined.node);
        }
        return Ok(Shared {
            store,
            seeded: false,
            revision: entry.revision,
        });
    }
    let broker = broker.upgrade().ok_or("shutting down")?;
    let dynsec = broker.auth().dynsec.clone().ok_or("no dynsec")?;
    let record = Record {
        node: node.to_string(),
        instance: instance.to_string(),
        kicks: Vec::new(),
        document: dynsec.render()?,
    };
    let value = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
    match tokio::time::timeout(REQUEST_TIMEOUT, store.create(KEY, value.into())).await {
        Ok(Ok(revision)) => {
            tracing::info!(node = %node, "dynsec: this node's dynamic security configuration now seeds the cluster's.");
            Ok(Shared {
                store,
                seeded: true,
                revision,
            })
        }
        Ok(Err(error)) if error.kind() == CreateErrorKind::AlreadyExists => {
            Err("another node seeded it at the same moment".into())
        }
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer from JetStream".into()),
    }
}

fn usernames(dynsec: &fleetmq_core::auth::dynsec::Dynsec) -> Vec<KickRecord> {
    dynsec
        .clients()
        .map(|client| KickRecord::Username(client.username.clone()))
        .collect()
}

/// Writes a local change over the revision this node holds. `Err` gives
/// the change back to retry (NATS away); a lost race is settled here.
async fn share(
    sync: &mut Shared,
    broker: &Weak<Engine>,
    node: &str,
    instance: &str,
    change: Change,
    later: &mpsc::UnboundedReceiver<Change>,
) -> Result<(), Change> {
    let record = Record {
        node: node.to_string(),
        instance: instance.to_string(),
        kicks: change.kicks.iter().map(KickRecord::from).collect(),
        document: change.document.clone(),
    };
    let Ok(value) = serde_json::to_vec(&record) else {
        return Ok(());
    };
    let written = tokio::time::timeout(
        REQUEST_TIMEOUT,
        sync.store.update(KEY, value.into(), sync.revision),
    )
    .await;
    match written {
        Ok(Ok(revision)) => {
            sync.revision = revision;
            // A change from another node applied here after this one was
            // made is overwritten everywhere by this document: hold it too
            // (unless a later change made here is on its way).
            let Some(engine) = broker.upgrade().filter(|_| later.is_empty()) else {
                return Ok(());
            };
            let current = engine.auth().dynsec.clone().and_then(|d| d.render().ok());
            if current.as_deref() != Some(change.document.as_str()) {
                tracing::error!(node = %node, "dynsec: a change made on another node at the same time was overtaken by this node's; it is undone on every node: repeat it.");
                apply(broker, node, &record);
            }
            Ok(())
        }
        Ok(Err(error)) if error.kind() == UpdateErrorKind::WrongLastRevision => {
            tracing::error!(node = %node, "dynsec: a change made on this node lost the race with one made on another node at the same time; it is undone on every node: repeat it.");
            if let Ok(Some(entry)) = bounded(sync.store.entry(KEY)).await {
                if let Ok(mut winner) = serde_json::from_slice::<Record>(&entry.value) {
                    sync.revision = entry.revision;
                    winner.kicks.extend(record.kicks);
                    apply(broker, node, &winner);
                }
            }
            Ok(())
        }
        _ => Err(change),
    }
}

/// Enforces another node's document here.
fn apply(broker: &Weak<Engine>, node: &str, record: &Record) {
    let Some(broker) = broker.upgrade() else {
        return;
    };
    let kicks: Vec<Kick> = record.kicks.iter().cloned().map(Kick::from).collect();
    match broker.dynsec_replace(&record.document, &kicks) {
        Ok(_) => tracing::info!(
            node = %node,
            "dynsec: configuration changed on cluster node {}; applied here ({} bytes).",
            record.node,
            record.document.len()
        ),
        Err(problem) => tracing::error!(
            node = %node,
            "dynsec: the configuration from cluster node {} cannot be read ({problem}); this node keeps its own.",
            record.node
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn kicks_survive_the_bucket() {
        let kicks = vec![
            Kick::Username("dev".into()),
            Kick::Anonymous,
            Kick::Unit("lab".into()),
        ];
        let record = Record {
            node: "a".into(),
            instance: "i".into(),
            kicks: kicks.iter().map(KickRecord::from).collect(),
            document: "{}".into(),
        };
        let text = serde_json::to_vec(&record).unwrap();
        let back: Record = serde_json::from_slice(&text).unwrap();
        let again: Vec<Kick> = back.kicks.into_iter().map(Kick::from).collect();
        assert_eq!(again, kicks);
    }

    #[test]
    fn unshared_changes_keep_the_later_document_and_every_kick() {
        let first = Change {
            document: "one".into(),
            kicks: vec![Kick::Username("a".into())],
        };
        let second = Change {
            document: "two".into(),
            kicks: vec![Kick::Username("b".into()), Kick::Username("a".into())],
        };
        let merged = merge(Some(first), second);
        assert_eq!(merged.document, "two");
        assert_eq!(
            merged.kicks,
            vec![Kick::Username("a".into()), Kick::Username("b".into())]
        );
    }
}
