//! Session expiry across nodes (decision 0183): the record of a
//! persistent session (`FLEETMQ_SESSIONS`, decision 0173) is removed once,
//! by whichever node first deletes it by compare-and-set after its expiry
//! interval has passed, so the bucket does not keep ended sessions. A
//! record still marked online whose node is gone (SIGKILL, cut off) is
//! marked offline from the node's last renewal first, by one survivor, so
//! that its expiry starts.
//!
//! It only touches records. The node holding a session ends it in its
//! engine by itself (its own timer); the session's delayed will, capped by
//! the expiry interval, is the wills module's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv::{Entry, Operation};
use futures_util::StreamExt;
use tokio::sync::watch;

use fleetmq_core::cluster::subject::subject_to_topic;
use fleetmq_core::store::now_ms;

use super::buckets::Buckets;
use super::liveness::Liveness;
use super::names::bounded;
use super::sessions::SessionRecord;

/// How often records are looked at.
const TICK: Duration = Duration::from_secs(1);

pub async fn run(opened: Arc<std::sync::OnceLock<Buckets>>, mut shutdown: watch::Receiver<bool>) {
    let buckets = loop {
        if let Some(buckets) = opened.get() {
            break buckets.clone();
        }
        tokio::select! {
            _ = tokio::time::sleep(super::SUPERVISE_EVERY) => {}
            _ = shutdown.changed() => return,
        }
    };
    let mut records: HashMap<String, (SessionRecord, u64)> = HashMap::new();
    let mut liveness = Liveness::new();
    let mut record_watch = None;
    let mut node_watch = None;
    let mut tick = tokio::time::interval(TICK);
    loop {
        if record_watch.is_none() {
            record_watch = buckets.sessions.watch_all().await.ok();
        }
        if node_watch.is_none() {
            node_watch = buckets.nodes.watch_all().await.ok();
            liveness.restart();
        }
        tokio::select! {
            entry = next_entry(&mut record_watch) => match entry {
                Some(entry) => seen(&mut records, entry),
                None => record_watch = None,
            },
            entry = next_entry(&mut node_watch) => match entry {
                Some(entry) => liveness.seen(entry),
                None => node_watch = None,
            },
            _ = tick.tick() => expire(&buckets, &mut records, &liveness).await,
            _ = shutdown.changed() => return,
        }
    }
}

async fn next_entry(watch: &mut Option<async_nats::jetstream::kv::Watch>) -> Option<Entry> {
    match watch {
        Some(entries) => entries.next().await.and_then(Result::ok),
        None => std::future::pending().await,
    }
}

fn seen(records: &mut HashMap<String, (SessionRecord, u64)>, entry: Entry) {
    let record = match entry.operation {
        Operation::Put => serde_json::from_slice::<SessionRecord>(&entry.value).ok(),
        Operation::Delete | Operation::Purge => None,
    };
    match record {
        Some(record) => {
            records.insert(entry.key, (record, entry.revision));
        }
        None => {
            records.remove(&entry.key);
        }
    }
}

/// Deletes expired records and marks the online records of gone nodes
/// offline; each by compare-and-set, so once cluster-wide.
async fn expire(
    buckets: &Buckets,
    records: &mut HashMap<String, (SessionRecord, u64)>,
    liveness: &Liveness,
) {
    let now = now_ms();
    let mut expired = Vec::new();
    let mut orphaned = Vec::new();
    for (key, (record, revision)) in records.iter() {
        if record.expired(now) {
            expired.push((key.clone(), record.node.clone(), *revision));
        } else if record.meta.disconnected_at_ms.is_none()
            && liveness.is_gone(&record.node, &record.instance)
        {
            orphaned.push((key.clone(), record.clone(), *revision));
        }
    }
    for (key, node, revision) in expired {
        let deleted = bounded(
            buckets
                .sessions
                .delete_expect_revision(&key, Some(revision)),
        )
        .await;
        if deleted.is_ok() {
            records.remove(&key);
            let client = subject_to_topic("c", &key).unwrap_or(key);
            tracing::info!(
                client = %client,
                "Cluster: session {client} (last held by node {node}) expired; its record is removed."
            );
        }
    }
    for (key, mut record, revision) in orphaned {
        // Offline since the node's last renewal seen here (or now, when
        // its name is gone already).
        let since = liveness
            .last_seen(&record.node)
            .map_or(now, |at| now.saturating_sub(millis(at.elapsed())));
        record.meta.disconnected_at_ms = Some(since);
        let Ok(value) = serde_json::to_vec(&record) else {
            continue;
        };
        if bounded(buckets.sessions.update(&key, value.into(), revision))
            .await
            .is_ok()
        {
            let client = subject_to_topic("c", &key).unwrap_or(key);
            tracing::info!(
                client = %client,
                "Cluster: session {client} was online on node {}, which is gone; offline since then, it expires after {} s.",
                record.node,
                record.meta.expiry_interval
            );
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
