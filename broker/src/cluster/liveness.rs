//! Which node instances are alive, as seen through the `FLEETMQ_NODES`
//! bucket (decision 0172): an instance is gone when its node name is
//! free, held by another instance, or not renewed for
//! [`STALE_AFTER`](super::names::STALE_AFTER) as timed by this node's
//! clock (no clocks are compared across machines).
//!
//! It only reads what a watch of the bucket delivers; the wills and the
//! session records of gone instances are taken over by their own modules.

use std::collections::HashMap;
use std::time::Instant;

use async_nats::jetstream::kv::{Entry, Operation};

use super::buckets;
use super::names::STALE_AFTER;

/// The node names seen on the watch.
#[derive(Debug)]
pub struct Liveness {
    /// Node name key -> (instance, when its entry last changed here).
    nodes: HashMap<String, (String, Instant)>,
    /// When the watch started: a name missing before [`STALE_AFTER`] may
    /// just not have been read yet.
    since: Instant,
}

impl Liveness {
    pub fn new() -> Liveness {
        Liveness {
            nodes: HashMap::new(),
            since: Instant::now(),
        }
    }

    /// Starts over with a new watch.
    pub fn restart(&mut self) {
        self.since = Instant::now();
    }

    /// Applies one entry of the node-name watch.
    pub fn seen(&mut self, entry: Entry) {
        match entry.operation {
            Operation::Put => {
                let instance = serde_json::from_slice::<serde_json::Value>(&entry.value)
                    .ok()
                    .and_then(|v| v.get("instance")?.as_str().map(str::to_owned))
                    .unwrap_or_default();
                self.nodes.insert(entry.key, (instance, Instant::now()));
            }
            Operation::Delete | Operation::Purge => {
                self.nodes.remove(&entry.key);
            }
        }
    }

    /// True when `instance` of node `node` is gone.
    pub fn is_gone(&self, node: &str, instance: &str) -> bool {
        match self.nodes.get(&buckets::key(node)) {
            Some((holder, changed)) => holder != instance || changed.elapsed() > STALE_AFTER,
            None => self.since.elapsed() > STALE_AFTER,
        }
    }

    /// When node `node` was last seen alive here (its last renewal), if it
    /// is still in the bucket.
    pub fn last_seen(&self, node: &str) -> Option<Instant> {
        self.nodes.get(&buckets::key(node)).map(|(_, at)| *at)
    }
}
