//! Cluster-wide client-id ownership (decision 0172): the `FLEETMQ_OWNERS`
//! bucket maps each client id to the node and instance that accepted its
//! last CONNECT. A node writes the entry before it attaches the session;
//! every node watches the bucket, and one that holds the client id while
//! another instance wrote a newer revision closes its connection with
//! 0x8E Session taken over (a plain close in 3.1.1) and drops its copy of
//! the session: the newer node has it now.
//!
//! Last writer wins, by the bucket's revision order: two CONNECTs with one
//! client id on two nodes at the same moment end with one connection.
//! It must not write sessions (that is `sessions`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv::{Operation, Store};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use fleetmq_core::cluster::subject::subject_to_topic;
use fleetmq_core::engine::Engine;

use super::buckets::{self, Buckets};

/// Longest one claim request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The value of an ownership entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Owner {
    pub node: String,
    pub instance: String,
}

/// The revision of this node's latest claim of each client id it holds,
/// so an older claim seen late on the watch does not close a newer
/// connection.
#[derive(Debug, Default)]
pub struct Claims {
    revisions: Mutex<HashMap<Arc<str>, u64>>,
}

impl Claims {
    fn set(&self, client_id: &str, revision: u64) {
        if let Ok(mut revisions) = self.revisions.lock() {
            revisions.insert(Arc::from(client_id), revision);
        }
    }

    /// True when `revision` is newer than this node's claim (or it has
    /// none); forgets the claim then.
    fn superseded(&self, client_id: &str, revision: u64) -> bool {
        let Ok(mut revisions) = self.revisions.lock() else {
            return true;
        };
        match revisions.get(client_id) {
            Some(&ours) if ours >= revision => false,
            _ => {
                revisions.remove(client_id);
                true
            }
        }
    }

    /// Forgets `client_id` (its session ended here).
    pub fn forget(&self, client_id: &str) {
        if let Ok(mut revisions) = self.revisions.lock() {
            revisions.remove(client_id);
        }
    }

    pub fn holds(&self, client_id: &str) -> bool {
        self.revisions
            .lock()
            .is_ok_and(|revisions| revisions.contains_key(client_id))
    }
}

/// Writes `owner` as the holder of `client_id`; returns the previous
/// holder, if any.
pub async fn claim(
    owners: &Store,
    claims: &Claims,
    client_id: &str,
    owner: &Owner,
) -> Result<Option<Owner>, String> {
    let key = buckets::key(client_id);
    let value = serde_json::to_vec(owner).map_err(|e| e.to_string())?;
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let previous = owners.entry(key.clone()).await.map_err(|e| e.to_string())?;
        let revision = owners
            .put(&key, value.into())
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((previous, revision))
    })
    .await
    .map_err(|_| "no answer from JetStream".to_string())??;
    let (previous, revision) = answer;
    claims.set(client_id, revision);
    Ok(previous
        .filter(|entry| entry.operation == Operation::Put)
        .and_then(|entry| serde_json::from_slice(&entry.value).ok()))
}

/// Watches the bucket from the moment the buckets are open, and lets go
/// of every client id another instance claimed after this node did.
pub async fn watch(
    opened: Arc<std::sync::OnceLock<Buckets>>,
    broker: std::sync::Weak<Engine>,
    instance: Arc<str>,
    claims: Arc<Claims>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut next_revision: Option<u64> = None;
    loop {
        if let Some(buckets) = opened.get() {
            let watching = match next_revision {
                Some(revision) => buckets.owners.watch_all_from_revision(revision).await,
                None => buckets.owners.watch_all().await,
            };
            if let Ok(mut entries) = watching {
                loop {
                    let next = tokio::select! {
                        next = entries.next() => next,
                        _ = shutdown.changed() => return,
                    };
                    let Some(Ok(entry)) = next else { break };
                    next_revision = Some(entry.revision + 1);
                    if entry.operation != Operation::Put {
                        continue;
                    }
                    let Ok(owner) = serde_json::from_slice::<Owner>(&entry.value) else {
                        continue;
                    };
                    if *owner.instance == *instance {
                        continue;
                    }
                    let Ok(client_id) = subject_to_topic("c", &entry.key) else {
                        continue;
                    };
                    let Some(broker) = broker.upgrade() else {
                        return;
                    };
                    if !claims.superseded(&client_id, entry.revision) {
                        continue;
                    }
                    // Only for the log line: Mosquitto's words when a
                    // connection is closed, so lab habits carry over.
                    let connected = broker
                        .session(&client_id)
                        .is_some_and(|session| session.lock().attachment().is_some());
                    if broker.release_to_cluster(&client_id) {
                        if connected {
                            tracing::info!(
                                client = %client_id,
                                "Client {client_id} already connected, closing old connection. It connected to cluster node {}; its session moves there.",
                                owner.node
                            );
                        } else {
                            tracing::info!(
                                client = %client_id,
                                "Client {client_id} connected to cluster node {}; its session moves there.",
                                owner.node
                            );
                        }
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(super::SUPERVISE_EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn only_a_newer_claim_supersedes_this_nodes() {
        let claims = Claims::default();
        claims.set("dev", 10);
        // An older claim seen late on the watch leaves the connection.
        assert!(!claims.superseded("dev", 9));
        assert!(claims.holds("dev"));
        // A newer one takes it, and the claim is forgotten.
        assert!(claims.superseded("dev", 11));
        assert!(!claims.holds("dev"));
        // Without a claim (NATS was away at its CONNECT) any claim wins.
        assert!(claims.superseded("other", 1));
    }
}
