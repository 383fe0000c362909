//! The cluster as the dashboard sees it (`GET /api/cluster`, decision
//! 0185): every node with its last heartbeat and connected clients, and
//! which node accepted each client id last, read from the buckets of
//! decision 0172.
//!
//! [`ClusterView`] is made before the HTTP server and the metrics, filled
//! by `cluster::start` (the NATS client, the buckets), so a node that runs
//! on its own answers that it does; [`publish_status`] writes this node's
//! client count next to its name every heartbeat. It reads the ownership
//! and name entries and never writes them.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::kv::{Operation, Store};
use async_nats::Client;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::watch;

use fleetmq_core::cluster::subject::{subject_to_topic, topic_to_subject};
use fleetmq_core::config::{ClusterBackend, ClusterConfig};
use fleetmq_core::store::now_ms;

use super::buckets::Buckets;
use super::metrics::ClusterMetrics;
use super::names::{HEARTBEAT_EVERY, STALE_AFTER};
use crate::observe::Registry;

/// Longest the whole answer may wait on JetStream.
const READ_TIMEOUT: Duration = Duration::from_secs(3);
/// Most client ids listed; the total is still counted.
pub const MAX_DEVICES: usize = 2000;
/// Keys of the node status entries in the node bucket: `s.<node>`, beside
/// the name entries `c.<node>`.
const STATUS_PREFIX: &str = "s";

/// This node's window on the cluster backend.
pub struct ClusterView {
    /// False on a broker without `[cluster]`: everything answers that.
    pub enabled: bool,
    pub node: Arc<str>,
    /// Set by `cluster::start`; its state is the link to NATS.
    pub(super) client: OnceLock<Client>,
    /// The buckets, once open (shared with the name holder).
    pub(super) buckets: Arc<OnceLock<Buckets>>,
    /// The local connections, for this node's client count.
    registry: Arc<Registry>,
    pub metrics: ClusterMetrics,
}

impl std::fmt::Debug for ClusterView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterView")
            .field("enabled", &self.enabled)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl ClusterView {
    pub fn new(
        config: &ClusterConfig,
        registry: Arc<Registry>,
    ) -> Result<Arc<ClusterView>, prometheus::Error> {
        Ok(Arc::new(ClusterView {
            enabled: config.backend != ClusterBackend::None,
            node: Arc::from(config.node_name.as_str()),
            client: OnceLock::new(),
            buckets: Arc::new(OnceLock::new()),
            registry,
            metrics: ClusterMetrics::new()?,
        }))
    }

    /// True while the NATS client is connected.
    pub fn nats_connected(&self) -> bool {
        self.client
            .get()
            .is_some_and(|client| client.connection_state() == State::Connected)
    }

    fn local_clients(&self) -> u64 {
        self.registry.connections_by_listener().values().sum()
    }

    /// The JSON of `GET /api/cluster`; `Err` when JetStream cannot be
    /// read now.
    pub async fn snapshot(&self, ready: bool) -> Result<Value, String> {
        if !self.enabled {
            return Ok(json!({
                "enabled": false,
                "message": "This broker runs on its own: no [cluster] table in its configuration, so there are no other nodes and every device is held here.",
            }));
        }
        let Some(buckets) = self.buckets.get().filter(|_| self.nats_connected()) else {
            return Err("NATS JetStream is not reachable from this node now".into());
        };
        let read = async {
            let nodes = latest(&buckets.nodes, usize::MAX).await?;
            let owners = latest(&buckets.owners, MAX_DEVICES).await?;
            Ok::<_, String>((nodes, owners))
        };
        let ((nodes, _), (owners, total)) = tokio::time::timeout(READ_TIMEOUT, read)
            .await
            .map_err(|_| "no answer from JetStream".to_string())??;
        Ok(json!({
            "enabled": true,
            "node": &*self.node,
            "ready": ready,
            "nats_connected": self.nats_connected(),
            "stale_after_ms": STALE_AFTER.as_millis() as u64,
            "nodes": node_rows(&nodes, now_ms()),
            "devices": device_rows(&owners),
            "devices_total": total,
            "devices_listed": owners.len(),
        }))
    }
}

/// One current entry of a bucket.
struct Latest {
    key: String,
    value: Value,
    /// When JetStream stored it (ms since the epoch).
    stored_ms: u64,
}

/// The current value of every key, at most `limit` of them; the second
/// figure counts them all.
async fn latest(store: &Store, limit: usize) -> Result<(Vec<Latest>, usize), String> {
    // Fresh stream state: a watch of an empty bucket would wait forever
    // for its first entry.
    let mut stream = store.stream.clone();
    let info = stream.info().await.map_err(|e| e.to_string())?;
    if info.state.messages == 0 {
        return Ok((Vec::new(), 0));
    }
    let mut entries = store
        .watch_with_history(">")
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut total = 0;
    while let Some(entry) = entries.next().await {
        let entry = entry.map_err(|e| e.to_string())?;
        if entry.operation == Operation::Put {
            total += 1;
            if out.len() < limit {
                out.push(Latest {
                    key: entry.key.clone(),
                    value: serde_json::from_slice(&entry.value).unwrap_or(Value::Null),
                    stored_ms: (entry.created.unix_timestamp_nanos() / 1_000_000) as u64,
                });
            }
        }
        if entry.delta == 0 {
            break;
        }
    }
    Ok((out, total))
}

/// Node rows from the node bucket: name entries (`c.`) with the status
/// entries (`s.`) of the same node merged in.
fn node_rows(entries: &[Latest], now: u64) -> Vec<Value> {
    let mut rows = Vec::new();
    for entry in entries {
        let Ok(name) = subject_to_topic("c", &entry.key) else {
            continue;
        };
        let heartbeat = entry.value.get("heartbeat_ms").and_then(Value::as_u64);
        let status_key = topic_to_subject(STATUS_PREFIX, &name);
        let status = entries
            .iter()
            .find(|other| other.key == status_key)
            .map(|other| &other.value)
            .filter(|status| status.get("instance") == entry.value.get("instance"));
        let age = heartbeat.map(|beat| now.saturating_sub(beat));
        rows.push(json!({
            "name": name,
            "instance": entry.value.get("instance"),
            "last_heartbeat_ms": heartbeat,
            "heartbeat_age_ms": age,
            "alive": age.is_some_and(|age| age < STALE_AFTER.as_millis() as u64),
            "clients": status.and_then(|s| s.get("clients")).and_then(Value::as_u64),
        }));
    }
    rows.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    rows
}

/// `{client_id, node, since_ms}` for each ownership entry.
fn device_rows(entries: &[Latest]) -> Vec<Value> {
    let mut rows: Vec<Value> = entries
        .iter()
        .filter_map(|entry| {
            let client_id = subject_to_topic("c", &entry.key).ok()?;
            Some(json!({
                "client_id": client_id,
                "node": entry.value.get("node"),
                "since_ms": entry.stored_ms,
            }))
        })
        .collect();
    rows.sort_by(|a, b| a["client_id"].as_str().cmp(&b["client_id"].as_str()));
    rows
}

/// Writes this node's status entry (instance, connected clients) every
/// heartbeat, until shutdown. Best effort: a missed write only makes the
/// count older.
pub async fn publish_status(
    view: Arc<ClusterView>,
    instance: Arc<str>,
    mut shutdown: watch::Receiver<bool>,
) {
    let key = topic_to_subject(STATUS_PREFIX, &view.node);
    loop {
        if let Some(buckets) = view.buckets.get().filter(|_| view.nats_connected()) {
            let value = json!({
                "instance": &*instance,
                "clients": view.local_clients(),
                "at_ms": now_ms(),
            });
            let _ = tokio::time::timeout(
                READ_TIMEOUT,
                buckets.nodes.put(&key, value.to_string().into()),
            )
            .await;
        }
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT_EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn entry(key: String, value: Value) -> Latest {
        Latest {
            key,
            value,
            stored_ms: 5,
        }
    }

    #[test]
    fn nodes_merge_their_status_and_go_stale() {
        let entries = vec![
            entry(
                topic_to_subject("c", "b"),
                json!({"instance": "i2", "heartbeat_ms": 1_000}),
            ),
            entry(
                topic_to_subject("c", "a.1"),
                json!({"instance": "i1", "heartbeat_ms": 9_000}),
            ),
            entry(
                topic_to_subject("s", "a.1"),
                json!({"instance": "i1", "clients": 3}),
            ),
            // A status of an earlier instance of b does not count.
            entry(
                topic_to_subject("s", "b"),
                json!({"instance": "old", "clients": 7}),
            ),
        ];
        let rows = node_rows(&entries, 10_000);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["name"], "a.1");
        assert_eq!(rows[0]["clients"], 3);
        assert_eq!(rows[0]["alive"], true);
        assert_eq!(rows[1]["name"], "b");
        assert_eq!(rows[1]["clients"], Value::Null);
        assert_eq!(rows[1]["alive"], false);
        assert_eq!(rows[1]["heartbeat_age_ms"], 9_000);
    }

    #[test]
    fn devices_are_named_by_their_client_id() {
        let rows = device_rows(&[entry(
            topic_to_subject("c", "dev/1 x"),
            json!({"node": "a", "instance": "i1"}),
        )]);
        assert_eq!(rows[0]["client_id"], "dev/1 x");
        assert_eq!(rows[0]["node"], "a");
    }
}
