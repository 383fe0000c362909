//! The cluster's three JetStream key-value buckets (decisions 0172, 0173):
//! which instance holds each node name, which node holds each client id,
//! and each persistent session's record. Every node declares the same
//! buckets; the first creates them. Keys of client ids use the reversible
//! escaping of decision 0157, so any client id is a valid key.
//!
//! It only opens buckets; what goes in them is decided by `names`,
//! `owners` and `sessions`.

use std::time::Duration;

use async_nats::jetstream::kv::Store;
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use async_nats::jetstream::Context;

use fleetmq_core::cluster::subject::topic_to_subject;

/// Node name -> the instance holding it and its heartbeat.
pub const NODES: &str = "FLEETMQ_NODES";
/// Client id -> the node and instance that took it last.
pub const OWNERS: &str = "FLEETMQ_OWNERS";
/// Client id -> the persistent session's record.
pub const SESSIONS: &str = "FLEETMQ_SESSIONS";

/// Handles on the three buckets.
#[derive(Debug, Clone)]
pub struct Buckets {
    pub nodes: Store,
    pub owners: Store,
    pub sessions: Store,
}

/// The key of a client id (or node name) in a bucket.
pub fn key(client_id: &str) -> String {
    topic_to_subject("c", client_id)
}

/// How a bucket's reads are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// By any replica (direct gets): fast, but a follower may answer
    /// with a value a moment old.
    AnyReplica,
    /// By the stream's leader only: a read sees every write acknowledged
    /// before it. For buckets whose "no record" decides something that a
    /// compare-and-set cannot catch afterwards (the wills, 0183).
    Leader,
}

/// The stream behind a bucket, as `async-nats` would declare it: one
/// value per key, deletes as markers, direct gets unless `reads` is
/// [`Reads::Leader`].
fn stream_config(bucket: &str, replicas: usize, reads: Reads) -> stream::Config {
    stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        storage: StorageType::File,
        num_replicas: replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: reads == Reads::AnyReplica,
        discard: DiscardPolicy::New,
        ..stream::Config::default()
    }
}

/// Finds or creates one bucket declared like the three (also the wills
/// of decision 0183 and the dynsec document of 0184), unbounded: the
/// caller bounds it. The bucket's stream is declared like any other: the
/// client's `create_key_value` first asks for account limits in a shape
/// nats-server 2.9 does not answer.
pub async fn open(jetstream: &Context, bucket: &str, replicas: usize) -> Result<Store, String> {
    open_with(jetstream, bucket, replicas, Reads::AnyReplica).await
}

/// As [`open`], with reads answered as `reads` says; a bucket an earlier
/// version declared with direct gets is changed to leader reads. When
/// NATS refuses that change, the bucket is used as it is (direct gets,
/// as before), with a warning: better than no bucket.
pub async fn open_with(
    jetstream: &Context,
    bucket: &str,
    replicas: usize,
    reads: Reads,
) -> Result<Store, String> {
    let stream = jetstream
        .get_or_create_stream(stream_config(bucket, replicas, reads))
        .await
        .map_err(|error| format!("bucket {bucket}: {error}"))?;
    let declared = &stream.cached_info().config;
    if reads == Reads::Leader && declared.allow_direct {
        let config = stream::Config {
            allow_direct: false,
            ..declared.clone()
        };
        if let Err(error) = jetstream.update_stream(config).await {
            tracing::warn!(
                "Cluster: bucket {bucket} keeps reads by any replica (direct gets): changing it to leader reads failed: {error}."
            );
        }
    }
    jetstream
        .get_key_value(bucket)
        .await
        .map_err(|error| format!("bucket {bucket}: {error}"))
}

/// Finds or creates the three buckets, each bounded by `timeout`.
pub async fn ensure(
    jetstream: &Context,
    replicas: usize,
    timeout: Duration,
) -> Result<Buckets, String> {
    let mut stores = Vec::with_capacity(3);
    for bucket in [NODES, OWNERS, SESSIONS] {
        let store = tokio::time::timeout(timeout, open(jetstream, bucket, replicas))
            .await
            .map_err(|_| format!("bucket {bucket}: no answer from JetStream"))??;
        stores.push(store);
    }
    let mut stores = stores.into_iter();
    match (stores.next(), stores.next(), stores.next()) {
        (Some(nodes), Some(owners), Some(sessions)) => Ok(Buckets {
            nodes,
            owners,
            sessions,
        }),
        _ => Err("buckets missing".into()),
    }
}
