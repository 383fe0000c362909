//! The shared state of a running broker: sessions, subscriptions, retained
//! messages, counters; and the operations that must keep them consistent
//! (attaching a connection to a session, ending a session, publishing).
//!
//! Lock order, to stay free of deadlocks: `router` before `sessions` before
//! a session's own lock; `retained` is taken alone. All locks are
//! synchronous (`parking_lot`) and none is held across an `.await`.

mod access;
mod cluster;
#[cfg(test)]
mod cluster_tests;
mod disconnect;
mod dynsec;
mod ota;
#[cfg(test)]
mod ownership_tests;
mod provision;
mod publish;
mod restore;
mod retained;
mod revocation;
mod stats;
mod will;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;

use crate::auth::Identity;
use crate::config::Config;
use crate::events::Events;
use crate::fast_map::FastMap;
use crate::peer::CertificateSerial;
use crate::router::{ClientKey, DefaultRouter, Router, TopicLimits};
use crate::session::{Attachment, Control, ControlReceiver, ForeignSession, QueueLimits, Session};
use crate::store::{Op, Store};
use fleetmq_codec::ReasonCode;

pub use access::{AuthState, DenialLog};
pub use publish::{PublishOutcome, SubscriptionQuotaExceeded};
pub use retained::{RetainRefused, Retained};
pub use stats::Stats;
pub use will::{will_message, PendingWill};

/// Everything the connections share.
#[derive(Debug)]
pub struct Engine {
    /// The configuration the broker started with.
    pub config: Arc<Config>,
    /// Topic limits derived from the configuration, used on every publish.
    pub topic_limits: TopicLimits,
    /// Sessions by client id, connected or not.
    sessions: RwLock<FastMap<ClientKey, Arc<Session>>>,
    /// Who subscribed to what.
    router: RwLock<DefaultRouter>,
    /// The last retained message of every topic, within
    /// `limits.max_retained_*`.
    retained: RwLock<Retained>,
    /// Counters for `$SYS` and logs.
    pub stats: Stats,
    /// Connection events for watchers (registry, metrics, tests).
    pub events: Events,
    /// When the broker started, for `$SYS/broker/uptime`.
    pub started_at: Instant,
    /// Source of connection generations (see [`Attachment::generation`]).
    next_generation: AtomicU64,
    /// Source of assigned client identifiers.
    next_assigned_id: AtomicU64,
    /// Uptime in seconds (offset by the log interval, 0: never) of the last
    /// "retained store full" warning, so a flood logs one line per interval.
    retained_warned_at: AtomicU64,
    /// Durable state, when `store.enabled`.
    pub store: Option<Arc<Store>>,
    /// Passwords, ACL rules, groups; replaced whole on reload.
    auth: RwLock<Arc<AuthState>>,
    /// Suppression of repeated denial log lines.
    denials: DenialLog,
    /// The certificate provisioning service, once the broker started one.
    provision: std::sync::OnceLock<Arc<dyn crate::provision::ProvisionService>>,
    /// The firmware update service, once the broker started one.
    ota: std::sync::OnceLock<Arc<dyn crate::ota::OtaService>>,
    /// The cluster backend's link, set once at start on a cluster node
    /// (decision 0156); unset for a broker on its own.
    cluster: std::sync::OnceLock<crate::cluster::ClusterLink>,
}

/// What [`Engine::attach`] gives a connection that completed CONNECT.
#[derive(Debug)]
pub struct Attached {
    pub session: Arc<Session>,
    /// True when an existing session was resumed (CONNACK Session Present).
    pub session_present: bool,
    /// This connection's generation.
    pub generation: u64,
    /// Take-over and kick requests for this connection.
    pub control: ControlReceiver,
    /// True when another connection with this client id was closed.
    pub took_over: bool,
}

impl Engine {
    /// An empty broker for `config`.
    pub fn new(config: Arc<Config>, store: Option<Arc<Store>>, auth: AuthState) -> Engine {
        let retained = Retained::new(
            config.limits.max_retained_messages,
            config.limits.max_retained_bytes,
        );
        let topic_limits = TopicLimits {
            max_length: config.limits.max_topic_length,
            max_levels: config.limits.max_topic_levels,
        };
        Engine {
            config,
            topic_limits,
            sessions: RwLock::new(FastMap::default()),
            router: RwLock::new(DefaultRouter::new()),
            retained: RwLock::new(retained),
            stats: Stats::default(),
            events: Events::default(),
            started_at: Instant::now(),
            next_generation: AtomicU64::new(1),
            next_assigned_id: AtomicU64::new(1),
            retained_warned_at: AtomicU64::new(0),
            store,
            auth: RwLock::new(Arc::new(auth)),
            denials: DenialLog::default(),
            provision: std::sync::OnceLock::new(),
            ota: std::sync::OnceLock::new(),
            cluster: std::sync::OnceLock::new(),
        }
    }

    /// Records a change in the store, if there is one; returns its ticket.
    pub fn persist(&self, op: impl FnOnce() -> Op) -> u64 {
        match &self.store {
            Some(store) => store.submit(op()),
            None => 0,
        }
    }

    /// Submits an op a session method returned (`None`: nothing to
    /// record); returns its ticket (0: nothing to wait for).
    pub fn record(&self, op: Option<Op>) -> u64 {
        op.map_or(0, |op| self.persist(|| op))
    }

    fn queue_limits(&self) -> QueueLimits {
        QueueLimits {
            max_messages: self.config.limits.max_queued_messages,
            max_bytes: self.config.limits.max_queued_bytes,
            full_wait: std::time::Duration::from_millis(self.config.limits.queue_full_wait_ms),
            offline_qos0: self.config.mqtt.queue_qos0_messages,
        }
    }

    /// A client identifier for a client that sent an empty one: the
    /// configured prefix, then the time in microseconds and a counter
    /// (unique per broker) written in the shape of Mosquitto's UUID
    /// (`8-4-4-4-12` upper-case hex digits), so the assigned identifier is
    /// as long as Mosquitto's and a device's buffer sized for one fits the
    /// other (decision 0135).
    pub fn assign_client_id(&self) -> String {
        let n = self.next_assigned_id.fetch_add(1, Ordering::Relaxed);
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        let digits = format!("{:016X}{:016X}", epoch as u64, n);
        format!(
            "{}{}-{}-{}-{}-{}",
            self.config.mqtt.auto_id_prefix,
            &digits[0..8],
            &digits[8..12],
            &digits[12..16],
            &digits[16..20],
            &digits[20..32]
        )
    }

    /// Attaches a new connection to the session of `client_id`: takes over
    /// a connected client with the same id [MQTT-3.1.4-2], discards the old
    /// session on clean start [MQTT-3.1.2-4], or resumes it. Only the
    /// session's owner may do any of these: for anyone else nothing is
    /// touched and [`ForeignSession`] says who owns it (decision 0088).
    /// `certificate` names the client certificate, for revocation.
    pub fn attach(
        &self,
        client_id: &str,
        clean_start: bool,
        expiry_interval: u32,
        identity: Arc<Identity>,
        certificate: Option<CertificateSerial>,
    ) -> Result<Attached, ForeignSession> {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let (control_tx, control) = crate::session::control_link();
        // Discarding a session removes its subscriptions, which needs the
        // router lock first (lock order); only pay for it when a session
        // with this id exists.
        let mut need_router = clean_start && self.sessions.read().contains_key(client_id);
        loop {
            let mut router = need_router.then(|| self.router.write());
            let mut sessions = self.sessions.write();
            let existing = sessions.get(client_id).cloned();
            if clean_start && existing.is_some() && router.is_none() {
                // A session appeared between the cheap look and the locks.
                need_router = true;
                continue;
            }
            let mut replaces_claim = false;
            if let Some(old) = &existing {
                let state = old.lock();
                if let Err(foreign) = state.check_owner(&identity) {
                    let attached = state.attachment().map(|a| &*a.identity);
                    if !crate::provision::replaces_claim_session(&self.config, attached, &identity)
                    {
                        return Err(foreign);
                    }
                    replaces_claim = true;
                }
            }
            if replaces_claim && router.is_none() {
                // The claim session is discarded, which needs the router.
                need_router = true;
                continue;
            }
            let mut took_over = false;
            if let Some(old) = &existing {
                if let Some(previous) = old.lock().take_attachment() {
                    took_over = true;
                    // The old connection may be closing already; a send
                    // error only means it is gone.
                    let _ = previous
                        .control
                        .send(Control::Disconnect(ReasonCode::SESSION_TAKEN_OVER));
                    self.stats.client_disconnected();
                }
            }
            let resumed = match (existing, router.as_mut()) {
                (Some(old), _) if !clean_start && !replaces_claim => Some(old),
                (Some(old), Some(router)) => {
                    self.discard_locked(router, &old);
                    None
                }
                _ => None,
            };
            let session_present = resumed.is_some();
            let session = resumed.unwrap_or_else(|| {
                Arc::new(Session::new(
                    Arc::from(client_id),
                    self.queue_limits(),
                    self.store.is_some(),
                ))
            });
            {
                let attachment = Attachment {
                    generation,
                    control: control_tx,
                    identity,
                    certificate,
                };
                let (claimed, op) = session.lock().attach(attachment, expiry_interval);
                if let (Some(owner), true) = (claimed, session_present) {
                    tracing::info!(
                        client = %client_id,
                        "Session {client_id} had no recorded owner (stored by an older fleetmq, or imported from Mosquitto); it now belongs to {owner}."
                    );
                }
                self.record(op);
            }
            sessions.insert(session.client_id.clone(), session.clone());
            self.stats.client_connected();
            return Ok(Attached {
                session,
                session_present,
                generation,
                control,
                took_over,
            });
        }
    }

    /// Ends a session: its subscriptions leave the router, its queue and
    /// inflight state are dropped, and later enqueues are refused.
    fn discard_locked(&self, router: &mut DefaultRouter, session: &Session) {
        let op = session.lock().discard(|filter| {
            router.unsubscribe(filter, &session.client_id);
        });
        self.record(op);
    }

    /// A connection of generation `generation` closed. Returns true when it
    /// was still the attached one (it was not taken over). Sessions whose
    /// expiry interval is 0 end now; others end when the interval passes
    /// without a new connection.
    pub fn detach(self: &Arc<Self>, session: &Arc<Session>, generation: u64) -> bool {
        let Some(detached) = session.lock().detach(generation, crate::store::now_ms()) else {
            return false;
        };
        self.record(detached.op);
        let expiry = detached.expiry_interval;
        self.stats.client_disconnected();
        self.schedule_expiry(
            session,
            generation,
            expiry,
            Duration::from_secs(u64::from(expiry)),
        );
        true
    }

    /// Ends an offline session after `after` unless a connection attaches
    /// first; `expiry` is its interval (0 ends it now, `u32::MAX` never).
    fn schedule_expiry(
        self: &Arc<Self>,
        session: &Arc<Session>,
        generation: u64,
        expiry: u32,
        after: Duration,
    ) {
        match expiry {
            0 => self.expire_if_idle(session, generation),
            u32::MAX => {}
            _ if after.is_zero() => self.expire_if_idle(session, generation),
            _ => {
                let broker = Arc::clone(self);
                let session = Arc::clone(session);
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    broker.expire_if_idle(&session, generation);
                });
            }
        }
    }

    /// Removes the session if no connection attached since `generation`.
    fn expire_if_idle(&self, session: &Arc<Session>, generation: u64) {
        let mut router = self.router.write();
        let mut sessions = self.sessions.write();
        if !session.lock().is_idle_since(generation) {
            return;
        }
        let is_current = sessions
            .get(&session.client_id)
            .is_some_and(|current| Arc::ptr_eq(current, session));
        if is_current {
            sessions.remove(&session.client_id);
        }
        self.discard_locked(&mut router, session);
    }

    /// The session of `client_id`, if one exists.
    pub fn session(&self, client_id: &str) -> Option<Arc<Session>> {
        self.sessions.read().get(client_id).cloned()
    }

    /// Number of sessions, connected or not.
    pub fn session_count(&self) -> usize {
        self.sessions.read().len()
    }

    /// Number of subscriptions over all sessions.
    pub fn subscription_count(&self) -> usize {
        self.router.read().len()
    }

    /// Number of retained messages.
    pub fn retained_count(&self) -> usize {
        self.retained.read().len()
    }

    /// Messages waiting in session queues, over all sessions (for metrics:
    /// locks each session briefly, so call it per scrape, not per packet).
    pub fn queued_message_count(&self) -> usize {
        let sessions: Vec<Arc<Session>> = self.sessions.read().values().cloned().collect();
        sessions.iter().map(|s| s.lock().queue_len()).sum()
    }

    /// Whether the heap is above `limits.memory_limit` now (never without
    /// a limit, or without the counting allocator of `fleetmq-heap`).
    /// One relaxed load: cheap enough for every PUBLISH.
    pub fn memory_exhausted(&self) -> bool {
        fleetmq_heap::exceeds(self.config.limits.memory_limit)
    }

    /// Topic and payload bytes of the retained messages outside `$SYS/`.
    pub fn retained_bytes(&self) -> usize {
        self.retained.read().bytes()
    }

    /// Asks the connection of `client_id` to close with `reason` (an
    /// administrative kick). Returns false when it is not connected.
    pub fn disconnect_client(&self, client_id: &str, reason: ReasonCode) -> bool {
        let Some(session) = self.session(client_id) else {
            return false;
        };
        let state = session.lock();
        match state.attachment() {
            Some(attachment) => attachment.control.send(Control::Disconnect(reason)).is_ok(),
            None => false,
        }
    }

    /// Asks every attached connection to close with `reason`.
    pub fn disconnect_all(&self, reason: ReasonCode) {
        for session in self.sessions.read().values() {
            if let Some(attachment) = session.lock().attachment() {
                let _ = attachment.control.send(Control::Disconnect(reason));
            }
        }
    }
}
