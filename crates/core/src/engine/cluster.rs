//! The engine's cluster entry points (docs/decisions/0156, 0158): handing
//! its clients' messages to the [`ClusterLink`], routing messages other
//! nodes published to local subscribers, and applying the cluster's
//! retained stream to the local retained index.
//!
//! No IO here: the broker's NATS tasks call these methods. Messages that
//! come from the cluster are never handed back to it.

use std::sync::Arc;

use super::{Engine, PublishOutcome};
use crate::cluster::{ClusterAck, ClusterLink};
use crate::message::Message;
use fleetmq_codec::QoS;

/// Topics that stay on their node: `$SYS` is each broker's own, and
/// `$CONTROL` commands are answered where they arrive.
fn node_local(topic: &str) -> bool {
    topic.starts_with("$SYS/") || topic.starts_with("$CONTROL/")
}

impl Engine {
    /// Makes this engine one node of a cluster; false when it already is.
    pub fn set_cluster(&self, link: ClusterLink) -> bool {
        self.cluster.set(link).is_ok()
    }

    /// The cluster link, when this broker is a cluster node.
    pub fn cluster(&self) -> Option<&ClusterLink> {
        self.cluster.get()
    }

    /// True when this node cannot make a QoS >= 1 message durable now: it
    /// is a cluster node without NATS (decision 0158).
    pub fn cluster_refuses_publishes(&self) -> bool {
        self.cluster.get().is_some_and(|link| !link.is_ready())
    }

    /// Hands a message published on this node to the cluster; returns the
    /// cell its QoS >= 1 acknowledgement waits for.
    pub(super) fn forward_to_cluster(&self, message: &Arc<Message>) -> Option<Arc<ClusterAck>> {
        let link = self.cluster.get()?;
        if node_local(&message.topic) {
            return None;
        }
        link.send(Arc::clone(message), message.qos != QoS::AtMostOnce)
    }

    /// Delivers a message another node published to this node's matching
    /// subscribers (ACLs, no-local, retain-as-published and back-pressure
    /// as for a local one). The retained index is not touched: the
    /// retained stream is its only writer for cluster traffic
    /// ([`Engine::retained_from_cluster`]).
    pub fn route_from_cluster(&self, message: Arc<Message>) -> PublishOutcome {
        self.deliver(message, Vec::new())
    }

    /// Applies one record of the cluster's retained stream: sets the
    /// topic's retained message, or clears it for an empty payload.
    /// Returns the store ticket of the change (0: none).
    pub fn retained_from_cluster(&self, message: Arc<Message>) -> u64 {
        let mut ops = Vec::new();
        self.retain_locally(&message, &mut ops);
        if ops.is_empty() {
            0
        } else {
            self.persist(|| crate::store::Op::Batch(ops))
        }
    }
}
