//! This node's answer to "may this CONNECT attach?" (decisions 0172,
//! 0173): claims the client id in the ownership bucket, and when the
//! client resumes a session that another node (or an older claim) held,
//! brings it in from its record and replays what it missed.
//!
//! Refusals: a CONNECT that asks for session state (clean start off, or
//! an expiry interval) is refused with 0x88 Server unavailable (3.1.1:
//! return code 3) when the claim or the record cannot be read or written;
//! a clean, non-persistent one is accepted on this node alone. It never
//! attaches anything itself: the connection does, after `Proceed`.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_nats::jetstream::Context;

use fleetmq_codec::ReasonCode;
use fleetmq_core::cluster::{Admission, AdmitFuture, RecordFuture, SessionDirectory};
use fleetmq_core::engine::Engine;
use fleetmq_core::store::now_ms;

use super::buckets::{self, Buckets};
use super::owners::{self, Claims, Owner};
use super::{replay, sessions};

/// The cluster's [`SessionDirectory`] on this node.
#[derive(Debug)]
pub struct Directory {
    /// Weak: the engine holds the directory through its cluster link.
    pub broker: Weak<Engine>,
    pub jetstream: Context,
    pub node: Arc<str>,
    /// This process, distinct from any earlier run under the same name.
    pub instance: Arc<str>,
    /// Set once the buckets are open.
    pub opened: Arc<OnceLock<Buckets>>,
    pub claims: Arc<Claims>,
}

fn unavailable(why: String) -> Admission {
    Admission::Refuse {
        reason: ReasonCode::SERVER_UNAVAILABLE,
        why: format!("{why}, so this cluster node cannot keep a persistent session (0x88)"),
    }
}

impl SessionDirectory for Directory {
    fn admit<'a>(
        &'a self,
        client_id: &'a str,
        clean_start: bool,
        expiry_interval: u32,
    ) -> AdmitFuture<'a> {
        Box::pin(self.decide(client_id, clean_start, expiry_interval))
    }

    fn record<'a>(&'a self, client_id: &'a str) -> RecordFuture<'a> {
        Box::pin(async move {
            let (Some(broker), Some(buckets)) = (self.broker.upgrade(), self.opened.get()) else {
                return Ok(());
            };
            let writer = sessions::Writer {
                node: Arc::clone(&self.node),
                instance: Arc::clone(&self.instance),
                claims: Arc::clone(&self.claims),
            };
            sessions::rewrite(buckets, &broker, &writer, client_id, false).await
        })
    }
}

impl Directory {
    async fn decide(&self, client_id: &str, clean_start: bool, expiry_interval: u32) -> Admission {
        let Some(broker) = self.broker.upgrade() else {
            return Admission::Proceed;
        };
        let wants_state = expiry_interval > 0 || !clean_start;
        // A clean, non-persistent session works on this node alone.
        let or_alone = |why: String| {
            if wants_state {
                unavailable(why)
            } else {
                Admission::Proceed
            }
        };
        let ready = broker.cluster().is_some_and(|link| link.is_ready());
        let Some(buckets) = self.opened.get().filter(|_| ready) else {
            return or_alone("NATS JetStream is not reachable".into());
        };
        let me = Owner {
            node: self.node.to_string(),
            instance: self.instance.to_string(),
        };
        let previous = match owners::claim(&buckets.owners, &self.claims, client_id, &me).await {
            Ok(previous) => previous,
            Err(error) => return or_alone(format!("the client id could not be claimed ({error})")),
        };
        // A record exists only for a client id claimed before: a first
        // clean CONNECT costs no delete.
        if clean_start && previous.is_none() {
            return Admission::Proceed;
        }
        if clean_start {
            if let Err(error) = sessions::remove(&buckets.sessions, client_id).await {
                return or_alone(format!("the old session record stays ({error})"));
            }
            return Admission::Proceed;
        }
        // An earlier run of this node (same name, so same store and
        // consumer) counts as this node: its restored session is current.
        let ours = previous
            .as_ref()
            .is_none_or(|owner| *owner.node == *self.node);
        if ours && broker.session(client_id).is_some() {
            return Admission::Proceed;
        }
        let record = match sessions::fetch(&buckets.sessions, client_id).await {
            Ok(record) => record,
            Err(error) => {
                return unavailable(format!("the session record cannot be read ({error})"))
            }
        };
        // A record this very process wrote for a session it no longer
        // holds is stale: the session ended here (a clean start or its
        // expiry) while the record's last write was still on its way.
        let stale = |record: &sessions::SessionRecord| {
            *record.instance == *self.instance && broker.session(client_id).is_none()
        };
        let Some(record) = record.filter(|record| !record.expired(now_ms()) && !stale(record))
        else {
            // Nothing to resume: a local copy from before the client went
            // elsewhere is stale.
            if !ours {
                broker.release_to_cluster(client_id);
            }
            return Admission::Proceed;
        };
        let offline_since = match record.meta.disconnected_at_ms {
            Some(at) => at,
            // Still online in its record: its node died or is being taken
            // over now. Its last heartbeat bounds the gap; without one,
            // the record's own time does (more duplicates, no loss).
            None => match self.last_heartbeat(buckets, &record).await {
                Some(beat) => beat,
                None => record.written_ms,
            },
        };
        let from_ms = offline_since
            .min(now_ms())
            .saturating_sub(replay::REPLAY_MARGIN.as_millis() as u64);
        tracing::info!(
            client = %client_id,
            "Cluster: bringing session {client_id} in from node {} ({} subscriptions), replaying from {} ms ago.",
            record.node,
            record.meta.subscriptions.len(),
            now_ms().saturating_sub(from_ms)
        );
        broker.adopt_from_cluster(client_id, record.meta);
        tokio::spawn(replay::run(
            self.jetstream.clone(),
            Arc::clone(&broker),
            Arc::from(client_id),
            from_ms,
        ));
        Admission::Proceed
    }

    /// The last heartbeat (wall clock, ms) of the instance that wrote
    /// `record`, while its name entry is still that instance's.
    async fn last_heartbeat(
        &self,
        buckets: &Buckets,
        record: &sessions::SessionRecord,
    ) -> Option<u64> {
        let entry = tokio::time::timeout(
            Duration::from_secs(2),
            buckets.nodes.entry(buckets::key(&record.node)),
        )
        .await
        .ok()?
        .ok()??;
        let value: serde_json::Value = serde_json::from_slice(&entry.value).ok()?;
        if value.get("instance")?.as_str()? != record.instance {
            return None;
        }
        value.get("heartbeat_ms")?.as_u64()
    }
}
