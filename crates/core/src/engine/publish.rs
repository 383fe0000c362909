//! The publish path: retained store update, routing, and fan-out of one
//! shared `Arc<Message>` to every matching session; and the subscription
//! changes that go with it.
//!
//! Routing holds the router and session-table read locks only while it
//! collects targets; enqueueing happens after they are released. The two
//! lists routing fills are per-thread buffers reused by every publish
//! (`ROUTING`), not two new vectors per message.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use std::sync::atomic::Ordering;

use super::{AuthState, Engine, RetainRefused, Stats};
use crate::auth::Action;
use crate::cluster::ClusterAck;
use crate::fast_map::FastMap;
use crate::message::Message;
use crate::router::{ClientKey, Route, Router, Subscription};
use crate::session::{EnqueueOutcome, Queued, Session, SubscribeChange};
use crate::store::Op;
use fleetmq_codec::QoS;

/// True when `client` has a session with a connection that may read
/// `topic`: a shared group prefers such members, so a member whose rules
/// exclude the topic does not swallow the message.
pub(super) fn reads_online(
    sessions: &FastMap<ClientKey, Arc<Session>>,
    auth: &AuthState,
    client: &str,
    topic: &str,
) -> bool {
    sessions.get(client).is_some_and(|session| {
        session.lock().attachment().is_some_and(|attachment| {
            auth.check(&attachment.identity, Action::Receive, topic)
                .allowed
        })
    })
}

/// The buffers one publish routes through: the router's routes, then the
/// sessions they name.
#[derive(Default)]
struct Routing {
    routes: Vec<Route>,
    targets: Vec<(Arc<Session>, Route)>,
}

/// Largest routing buffer kept for the next publish (in routes): a fan-out
/// to more sessions allocates its own, so a thread does not keep memory a
/// rare wide fan-out grew.
const KEEP_ROUTES: usize = 1024;

thread_local! {
    /// The thread's routing buffers. Taken out for a publish and put back
    /// after it (nothing is borrowed while sessions are enqueued), so a
    /// nested publish would only find empty ones.
    static ROUTING: RefCell<Routing> = RefCell::new(Routing::default());
}

/// Takes the thread's routing buffers (empty).
fn take_routing() -> Routing {
    ROUTING.with_borrow_mut(std::mem::take)
}

/// Gives routing buffers back for the next publish, emptied.
fn put_routing(mut routing: Routing) {
    if routing.routes.capacity() > KEEP_ROUTES || routing.targets.capacity() > KEEP_ROUTES {
        return;
    }
    routing.routes.clear();
    routing.targets.clear();
    ROUTING.with_borrow_mut(|kept| *kept = routing);
}

/// Least seconds between two "retained store full" warnings.
const REFUSAL_LOG_INTERVAL_SECS: u64 = 10;

/// A SUBSCRIBE filter refused because the session holds
/// `limits.max_subscriptions_per_client` subscriptions already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the session already holds {max} subscriptions (limits.max_subscriptions_per_client)")]
pub struct SubscriptionQuotaExceeded {
    pub max: usize,
}

/// What became of one published message.
#[derive(Debug, Clone, Default)]
pub struct PublishOutcome {
    /// Sessions the message matched.
    pub matched: usize,
    /// Of those, sessions whose queue refused it.
    pub dropped: usize,
    /// Sessions that took it past their queue's bound: the publisher
    /// should wait until they have room ([`Session::holds_publishers`]).
    pub pressured: Vec<Arc<Session>>,
    /// Store ticket covering every durable record the message produced
    /// (0: none); its acknowledgement waits for this ticket's commit.
    pub ticket: u64,
    /// In a cluster, the JetStream acknowledgement a QoS >= 1
    /// acknowledgement must also wait for (decision 0158).
    pub cluster_ack: Option<Arc<ClusterAck>>,
}

impl Engine {
    /// Accepts a message: stores or clears it as retained when its RETAIN
    /// flag is set, then delivers it to every matching subscription.
    pub fn publish(&self, message: Arc<Message>) -> PublishOutcome {
        self.publish_with(message, Vec::new())
    }

    /// [`Engine::publish`], committing `ops` (the publisher's own records,
    /// such as its QoS 2 packet id) in the same store transaction as the
    /// message's records: after a crash either all of them are there or
    /// none, so a retransmitted QoS 2 PUBLISH is neither lost nor doubled.
    pub fn publish_with(&self, message: Arc<Message>, mut ops: Vec<Op>) -> PublishOutcome {
        if message.retain {
            self.retain_locally(&message, &mut ops);
        }
        // Handed to the cluster before local delivery: a QoS >= 1
        // acknowledgement then waits for JetStream too (decision 0158).
        let cluster_ack = self.forward_to_cluster(&message);
        let mut outcome = self.deliver(message, ops);
        outcome.cluster_ack = cluster_ack;
        outcome
    }

    /// Stores or clears `message` as the retained message of its topic,
    /// adding the store records to `ops`.
    pub(super) fn retain_locally(&self, message: &Arc<Message>, ops: &mut Vec<Op>) {
        let mut retained = self.retained.write();
        // $SYS values are rebuilt every interval; storing them would
        // only wear the disk.
        let durable = !message.topic.starts_with("$SYS/");
        if message.payload.is_empty() {
            // An empty retained payload clears the topic and is not
            // stored [MQTT-3.3.1-10, MQTT-3.3.1-11].
            if retained.remove(&message.topic).is_some() && durable {
                ops.push(Op::RetainClear(Arc::clone(&message.topic)));
            }
        } else {
            match retained.set(Arc::clone(message)) {
                Ok(()) if durable => {
                    ops.push(Op::RetainSet(Arc::clone(message)));
                }
                Ok(()) => {}
                // Full: delivered below, but not retained (policy in
                // `retained.rs`).
                Err(refused) => self.retain_refused(message, refused),
            }
        }
    }

    /// Delivers `message` to every matching local subscription, committing
    /// `ops` with the delivery records.
    pub(super) fn deliver(&self, message: Arc<Message>, mut ops: Vec<Op>) -> PublishOutcome {
        let mut routing = take_routing();
        self.targets_into(&message, self.routes_shared_here(&message), &mut routing);
        let mut outcome = PublishOutcome {
            matched: routing.targets.len(),
            dropped: 0,
            pressured: Vec::new(),
            ticket: 0,
            cluster_ack: None,
        };
        for (session, route) in routing.targets.drain(..) {
            self.enqueue_routed(session, route, &message, &mut ops, &mut outcome);
        }
        put_routing(routing);
        if !ops.is_empty() {
            outcome.ticket = self.persist(|| Op::Batch(ops));
        }
        Stats::add(&self.stats.publish_dropped, outcome.dropped as u64);
        outcome
    }

    /// The sessions (and per-session route facts) a message goes to;
    /// without `shared`, its shared groups are left out (a cluster routes
    /// those through NATS, decision 0182).
    pub(super) fn targets(&self, message: &Message, shared: bool) -> Vec<(Arc<Session>, Route)> {
        let mut routing = Routing::default();
        self.targets_into(message, shared, &mut routing);
        routing.targets
    }

    /// [`Engine::targets`] into `routing.targets` (both of its buffers
    /// empty on entry; `routes` is empty again on return).
    fn targets_into(&self, message: &Message, shared: bool, routing: &mut Routing) {
        let Routing { routes, targets } = routing;
        let router = self.router.read();
        let sessions = self.sessions.read();
        let auth = self.auth();
        let is_online = |client: &str| reads_online(&sessions, &auth, client, &message.topic);
        router.route(
            &message.topic,
            message.publisher.as_deref(),
            &is_online,
            routes,
        );
        targets.extend(
            routes
                .drain(..)
                .filter(|route| shared || !route.shared)
                .filter_map(|route| {
                    let session = sessions.get(&route.client)?.clone();
                    Some((session, route))
                }),
        );
    }

    /// Queues `message` for one routed session, counting the result in
    /// `outcome`.
    pub(super) fn enqueue_routed(
        &self,
        session: Arc<Session>,
        route: Route,
        message: &Arc<Message>,
        ops: &mut Vec<Op>,
        outcome: &mut PublishOutcome,
    ) {
        let item = Queued {
            qos: message.qos.min(route.qos),
            // Forwarded messages carry RETAIN only with
            // retain-as-published [MQTT-3.3.1-12, MQTT-3.3.1-13].
            retain: message.retain && route.retain_as_published,
            subscription_ids: route.subscription_identifiers,
            message: Arc::clone(message),
            seq: None,
        };
        match session.enqueue(item, self.store.as_deref(), ops, true) {
            EnqueueOutcome::Queued => {}
            EnqueueOutcome::Pressured => outcome.pressured.push(session),
            EnqueueOutcome::Dropped => outcome.dropped += 1,
        }
    }

    /// Adds or replaces a subscription of `session`. Returns true when it
    /// is new (retain handling 1 sends retained messages only then).
    /// The store ticket (0: none) covers the session's updated record; the
    /// SUBACK waits for it, so an acknowledged subscription survives a
    /// crash.
    /// [`SubscriptionQuotaExceeded`] when a new one would take the session
    /// past `limits.max_subscriptions_per_client`.
    pub fn subscribe(
        &self,
        session: &Session,
        filter: &str,
        subscription: Subscription,
    ) -> Result<(bool, u64), SubscriptionQuotaExceeded> {
        let max = self.config.limits.max_subscriptions_per_client;
        let mut router = self.router.write();
        let change = session.lock().subscribe(filter, subscription, max);
        let ticket = match change {
            SubscribeChange::Gone => return Ok((false, 0)),
            SubscribeChange::OverQuota => {
                Stats::add(&self.stats.subscriptions_refused, 1);
                return Err(SubscriptionQuotaExceeded { max });
            }
            SubscribeChange::Added(op) => self.record(op),
        };
        Ok((
            router.subscribe(filter, &session.client_id, subscription),
            ticket,
        ))
    }

    /// Counts and (at most every [`REFUSAL_LOG_INTERVAL_SECS`]) logs a
    /// retained message the full store did not keep.
    fn retain_refused(&self, message: &Message, refused: RetainRefused) {
        Stats::add(&self.stats.retained_refused, 1);
        let now = self.started_at.elapsed().as_secs() + REFUSAL_LOG_INTERVAL_SECS;
        let last = self.retained_warned_at.load(Ordering::Relaxed);
        let due = last == 0 || now >= last + REFUSAL_LOG_INTERVAL_SECS;
        if due
            && self
                .retained_warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let (what, limit) = match refused {
                RetainRefused::Count => (
                    "max_retained_messages",
                    self.config.limits.max_retained_messages,
                ),
                RetainRefused::Bytes => {
                    ("max_retained_bytes", self.config.limits.max_retained_bytes)
                }
            };
            tracing::warn!(
                "Retained store full (limits.{what} = {limit}): a message on '{}' was delivered but not retained; further ones are counted in $SYS/broker/retained messages/refused.",
                message.topic.escape_debug()
            );
        }
    }

    /// Removes a subscription. Returns true when it existed.
    pub fn unsubscribe(&self, session: &Session, filter: &str) -> bool {
        let mut router = self.router.write();
        let op = session.lock().unsubscribe(filter);
        self.record(op);
        router.unsubscribe(filter, &session.client_id)
    }

    /// Retained messages matching a plain filter, expired ones left out.
    pub fn retained_matching(&self, filter: &str) -> Vec<Arc<Message>> {
        let mut found = Vec::new();
        self.retained.read().matching(filter, &mut found);
        let now = Instant::now();
        found.retain(|message| !message.is_expired(now));
        found
    }

    /// Drops retained messages whose expiry interval has passed.
    pub fn purge_expired_retained(&self) {
        let now = Instant::now();
        self.retained
            .write()
            .retain(|message| !message.is_expired(now));
    }

    /// Queues retained messages for a new subscription: RETAIN set
    /// [MQTT-3.3.1-8], QoS the lower of stored and granted.
    pub fn deliver_retained(&self, session: &Session, filter: &str, granted: QoS, id: Option<u32>) {
        let mut ops = Vec::new();
        for message in self.retained_matching(filter) {
            let item = Queued {
                qos: message.qos.min(granted),
                retain: true,
                subscription_ids: id.into_iter().collect(),
                message,
                seq: None,
            };
            // A new subscription's retained messages hold nobody back.
            if session.enqueue(item, self.store.as_deref(), &mut ops, false)
                == EnqueueOutcome::Dropped
            {
                Stats::add(&self.stats.publish_dropped, 1);
            }
        }
        if !ops.is_empty() {
            self.persist(|| Op::Batch(ops));
        }
    }
}
