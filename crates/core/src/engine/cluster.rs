//! The engine's cluster entry points (docs/decisions/0156, 0158): handing
//! its clients' messages to the [`ClusterLink`], routing messages other
//! nodes published to local subscribers, and applying the cluster's
//! retained stream to the local retained index; and the session moves of
//! decisions 0172/0173: bringing in a session another node held, routing
//! its replayed messages to it alone, and letting go of a client id another
//! node took.
//!
//! No IO here: the broker's NATS tasks call these methods. Messages that
//! come from the cluster are never handed back to it.

use std::sync::Arc;

use std::time::Duration;

use super::publish::reads_online;
use super::{Engine, PublishOutcome, Stats};
use crate::cluster::{ClusterAck, ClusterLink};
use crate::message::Message;
use crate::router::{topic_matches, Router, SharedGroupKey};
use crate::session::{Control, Session};
use crate::store::{now_ms, Op, RestoredSession, SessionMeta};
use fleetmq_codec::{QoS, ReasonCode};

/// Topics that stay on their node: `$SYS` is each broker's own, and
/// `$CONTROL` commands are answered where they arrive.
pub(super) fn node_local(topic: &str) -> bool {
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

    /// Brings in the session another node held for `client_id` (its
    /// subscriptions, expiry and owner, decision 0173) as an offline
    /// session, replacing any local copy, so the attach that follows
    /// resumes it. Its queue starts empty: the backend replays what it
    /// missed ([`Engine::route_to_session`]).
    pub fn adopt_from_cluster(self: &Arc<Self>, client_id: &str, meta: SessionMeta) {
        let now = now_ms();
        let disconnected_at = meta.disconnected_at_ms.unwrap_or(now).min(now);
        let expiry = meta.expiry_interval;
        let left = (u64::from(expiry) * 1000).saturating_sub(now - disconnected_at);
        let session = Arc::new(Session::new(
            Arc::from(client_id),
            self.queue_limits(),
            self.store.is_some(),
        ));
        {
            let mut router = self.router.write();
            let mut sessions = self.sessions.write();
            if let Some(old) = sessions.remove(client_id) {
                if let Some(previous) = old.lock().take_attachment() {
                    let _ = previous
                        .control
                        .send(Control::Disconnect(ReasonCode::SESSION_TAKEN_OVER));
                    self.stats.client_disconnected();
                }
                self.discard_locked(&mut router, &old);
            }
            let restored = RestoredSession {
                client_id: Arc::clone(&session.client_id),
                meta,
                items: Vec::new(),
                incoming_qos2: Vec::new(),
            };
            let mut state = session.lock();
            let (_, op) = state.restore(restored, disconnected_at);
            for (filter, sub) in state.subscriptions() {
                router.subscribe(filter, &session.client_id, *sub);
            }
            drop(state);
            self.record(op);
            sessions.insert(Arc::clone(&session.client_id), Arc::clone(&session));
        }
        self.schedule_expiry(&session, 0, expiry, Duration::from_millis(left));
    }

    /// Delivers a replayed cluster message to the session of `client_id`
    /// only, as routing would (its matching subscriptions, no-local,
    /// retain-as-published); nothing when none of them matches.
    pub fn route_to_session(&self, client_id: &str, message: Arc<Message>) -> PublishOutcome {
        let mut outcome = PublishOutcome::default();
        let Some(session) = self.session(client_id) else {
            return outcome;
        };
        let mut ops = Vec::new();
        // Shared groups are left out: their messages are the group's, and
        // the group's consumer hands each to one member (decision 0182).
        for (target, route) in self.targets(&message, false) {
            if !Arc::ptr_eq(&target, &session) {
                continue;
            }
            outcome.matched += 1;
            self.enqueue_routed(target, route, &message, &mut ops, &mut outcome);
        }
        if !ops.is_empty() {
            outcome.ticket = self.persist(|| Op::Batch(ops));
        }
        outcome
    }

    /// True when this node's routing gives `message` to its local shared
    /// group members itself: on its own, or for the node-local topics
    /// that never reach NATS. A cluster node routes every other message
    /// to shared groups through their group consumers (decision 0182).
    pub(super) fn routes_shared_here(&self, message: &Message) -> bool {
        self.cluster.get().is_none() || node_local(&message.topic)
    }

    /// The shared groups with members on this node, as (share name,
    /// filter), when the set changed since generation `seen`; with the
    /// generation to pass next time.
    pub fn shared_groups_since(&self, seen: u64) -> Option<(u64, Vec<SharedGroupKey>)> {
        let router = self.router.read();
        let generation = router.shared_generation();
        if generation == seen {
            return None;
        }
        let mut groups = Vec::new();
        router.shared_groups(&mut groups);
        Some((generation, groups))
    }

    /// True while group `group` of `filter` has a member on this node.
    pub fn has_shared_group(&self, group: &str, filter: &str) -> bool {
        self.router.read().has_shared_group(group, filter)
    }

    /// Delivers a message the cluster handed to this node for shared
    /// group `group` of `filter` (decision 0182) to one local member,
    /// chosen as local routing chooses. `None` when no member is left
    /// here, or when `online_only` and none is connected: the caller
    /// gives the message back to the group.
    pub fn route_shared_from_cluster(
        &self,
        group: &str,
        filter: &str,
        message: Arc<Message>,
        online_only: bool,
    ) -> Option<PublishOutcome> {
        let (session, route) = {
            let router = self.router.read();
            let sessions = self.sessions.read();
            let auth = self.auth();
            let is_online = |client: &str| reads_online(&sessions, &auth, client, &message.topic);
            // The filter must match by MQTT's rules too: NATS's `*` also
            // matches an escaped `$` level [MQTT-4.7.2-1].
            if !topic_matches(filter, &message.topic) {
                return Some(PublishOutcome::default());
            }
            let (route, online) =
                router.pick_shared(group, filter, message.publisher.as_deref(), &is_online)?;
            if online_only && !online {
                return None;
            }
            (sessions.get(&route.client)?.clone(), route)
        };
        let mut outcome = PublishOutcome {
            matched: 1,
            ..PublishOutcome::default()
        };
        let mut ops = Vec::new();
        self.enqueue_routed(session, route, &message, &mut ops, &mut outcome);
        if !ops.is_empty() {
            outcome.ticket = self.persist(|| Op::Batch(ops));
        }
        Stats::add(&self.stats.publish_dropped, outcome.dropped as u64);
        Some(outcome)
    }

    /// Another node took `client_id` (decision 0172): the connection
    /// attached here, if any, is asked to close with 0x8E Session taken
    /// over, and the local session is dropped (the other node holds it
    /// now). Returns true when there was a session.
    pub fn release_to_cluster(&self, client_id: &str) -> bool {
        let mut router = self.router.write();
        let mut sessions = self.sessions.write();
        let Some(session) = sessions.remove(client_id) else {
            return false;
        };
        if let Some(previous) = session.lock().take_attachment() {
            let _ = previous
                .control
                .send(Control::Disconnect(ReasonCode::SESSION_TAKEN_OVER));
            self.stats.client_disconnected();
        }
        self.discard_locked(&mut router, &session);
        true
    }
}
