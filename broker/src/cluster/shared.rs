//! `$share/<group>/<filter>` across nodes (decision 0182): each shared
//! group is one durable JetStream pull consumer on the message stream,
//! named after the group and its filter and shared by every node that has
//! members of the group. JetStream hands each message to one pulling node
//! (the work-queue form of a NATS queue group, with acknowledgements);
//! that node gives it to one of its members as local routing would. A
//! message pulled by a node that dies before acknowledging it goes to
//! another node after [`ACK_WAIT`].
//!
//! It watches the engine's set of local groups and pulls only for those;
//! it owns no subscription state. The local routing of a cluster node
//! leaves shared groups out (`Engine::routes_shared_here`), so this is the
//! only path a shared group's message takes. It must never acknowledge a
//! message to JetStream before the engine queued it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{AckKind, Context};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use fleetmq_core::cluster::subject::filter_to_subjects;
use fleetmq_core::engine::Engine;
use fleetmq_core::router::SharedGroupKey;

use super::inbound::{acknowledge_after_commit, wait_for_room};
use super::wire::{self, MESSAGES_PREFIX};
use super::Readiness;

/// Longest a first member's SUBACK waits for its group's consumer; what
/// is published meanwhile still arrives (see [`START_MARGIN`]).
const SUBACK_WAIT: Duration = Duration::from_secs(5);
/// How often the set of local groups is looked at.
const WATCH_EVERY: Duration = Duration::from_millis(250);
/// How long JetStream waits for a pulled message's acknowledgement before
/// giving it to another node: the time a dead node's pulled messages take
/// to reach the survivors.
pub const ACK_WAIT: Duration = Duration::from_secs(10);
/// A group's consumer that nobody pulls from for this long is deleted by
/// the server; what was published meanwhile is then not kept for it.
const INACTIVE: Duration = Duration::from_secs(300);
/// Messages one pull asks for; they are handed out as they arrive. Small:
/// nats-server 2.9 fills a pull request before it serves the next one, so
/// this is how many messages in a row one node takes while others wait.
const PULL_BATCH: usize = 8;
/// How long one pull request stays open on the server.
const PULL_EXPIRES: Duration = Duration::from_secs(3);
/// Longest a new consumer may take to elect its leader before the task
/// starts over.
const LEADER_WAIT: Duration = Duration::from_secs(10);
/// Idle heartbeat the server sends during a pull; missing ones are errors.
const PULL_HEARTBEAT: Duration = Duration::from_secs(1);
/// A new consumer starts this long before the group was seen, so a
/// message published right after the first SUBACK is not missed.
const START_MARGIN: Duration = Duration::from_secs(2);
/// Deliveries during which a node with no connected member gives the
/// message back, so that a node with one gets it; after that, an offline
/// member's session queues it.
const OFFLINE_RETRIES: i64 = 3;
/// How long JetStream waits before offering a given-back message again.
const GIVE_BACK_DELAY: Duration = Duration::from_millis(200);

/// One consumer: a group of one filter, on one of the (at most two) NATS
/// subjects that filter maps to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupSubject {
    group: Arc<str>,
    filter: Arc<str>,
    subject: String,
}

impl GroupSubject {
    /// The durable consumer's name: a hash, since group and filter may
    /// hold anything a consumer name may not.
    fn consumer_name(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.group.as_bytes());
        hasher.update([0]);
        hasher.update(self.subject.as_bytes());
        let digest = hasher.finalize();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("share_{hex}")
    }

    fn consumer_config(&self, start: SystemTime) -> pull::Config {
        let start_time = time::OffsetDateTime::from(start);
        pull::Config {
            durable_name: Some(self.consumer_name()),
            description: Some(format!("fleetmq $share/{}/{}", self.group, self.filter)),
            deliver_policy: DeliverPolicy::ByStartTime { start_time },
            ack_policy: AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            filter_subject: self.subject.clone(),
            inactive_threshold: INACTIVE,
            ..pull::Config::default()
        }
    }
}

/// Watches the local shared groups and keeps one pulling task per group
/// subject while the group has members here.
pub async fn run(
    jetstream: Context,
    broker: Arc<Engine>,
    readiness: Arc<Readiness>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut seen = u64::MAX;
    let mut groups: Vec<SharedGroupKey> = Vec::new();
    let mut pulling: HashMap<GroupSubject, JoinHandle<()>> = HashMap::new();
    loop {
        if let Some((generation, now)) = broker.shared_groups_since(seen) {
            seen = generation;
            groups = now;
        }
        for (group, filter) in &groups {
            for subject in filter_to_subjects(MESSAGES_PREFIX, filter) {
                let key = GroupSubject {
                    group: Arc::from(&**group),
                    filter: Arc::from(&**filter),
                    subject,
                };
                if pulling.get(&key).is_some_and(|task| !task.is_finished()) {
                    continue;
                }
                let task = tokio::spawn(pull_group(
                    jetstream.clone(),
                    Arc::clone(&broker),
                    Arc::clone(&readiness),
                    key.clone(),
                    shutdown.clone(),
                ));
                pulling.insert(key, task);
            }
        }
        pulling.retain(|_, task| !task.is_finished());
        if let Some(link) = broker.cluster() {
            link.release(link.shared.expire(SUBACK_WAIT));
        }
        tokio::select! {
            _ = tokio::time::sleep(WATCH_EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Pulls the messages of one group subject while the group has members on
/// this node; restarts the consumer after an error.
async fn pull_group(
    jetstream: Context,
    broker: Arc<Engine>,
    readiness: Arc<Readiness>,
    key: GroupSubject,
    mut shutdown: watch::Receiver<bool>,
) {
    let noticed = SystemTime::now()
        .checked_sub(START_MARGIN)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    while broker.has_shared_group(&key.group, &key.filter) && !*shutdown.borrow() {
        // Never pull under a node name another process may hold (0172).
        if readiness.streams.load(Ordering::Acquire) && readiness.name.load(Ordering::Acquire) {
            match consume(&jetstream, &broker, &key, noticed, &mut shutdown).await {
                Ok(()) => return,
                Err(error) => tracing::debug!(
                    "Cluster: shared group $share/{}/{}: {error}; pulling again.",
                    key.group,
                    key.filter
                ),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(super::SUPERVISE_EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Pulls until the group has no member here or shutdown (`Ok`), or until
/// the consumer fails (`Err`).
async fn consume(
    jetstream: &Context,
    broker: &Arc<Engine>,
    key: &GroupSubject,
    start: SystemTime,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let stream = jetstream
        .get_stream(super::streams::MESSAGES)
        .await
        .map_err(|e| e.to_string())?;
    let consumer = stream
        .get_or_create_consumer::<pull::Config>(&key.consumer_name(), key.consumer_config(start))
        .await
        .map_err(|e| e.to_string())?;
    // A new consumer serves pulls only once its Raft group has a leader;
    // pulls sent before are lost silently.
    let deadline = Instant::now() + LEADER_WAIT;
    loop {
        let info = consumer.get_info().await.map_err(|e| e.to_string())?;
        if info.cluster.and_then(|cluster| cluster.leader).is_some() {
            break;
        }
        if Instant::now() >= deadline {
            return Err("the group's consumer has no leader".into());
        }
        tokio::time::sleep(super::SUPERVISE_EVERY).await;
    }
    tracing::info!(
        "Cluster: pulling for shared group $share/{}/{} on {} (consumer {}).",
        key.group,
        key.filter,
        key.subject,
        key.consumer_name()
    );
    let _served = Served::mark(broker, key);
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(PULL_BATCH)
        .expires(PULL_EXPIRES)
        .heartbeat(PULL_HEARTBEAT)
        .messages()
        .await
        .map_err(|e| e.to_string())?;
    let mut membership = tokio::time::interval(WATCH_EVERY);
    loop {
        let next = tokio::select! {
            next = messages.next() => next,
            _ = membership.tick() => {
                if broker.has_shared_group(&key.group, &key.filter) {
                    continue;
                }
                return Ok(());
            }
            _ = shutdown.changed() => return Ok(()),
        };
        match next {
            Some(Ok(message)) => deliver(broker, key, message).await,
            Some(Err(error)) => return Err(error.to_string()),
            None => return Err("the pull ended".into()),
        }
    }
}

/// While alive, this node pulls `key`'s subject: SUBACKs of the group
/// waiting for it are released (decision 0182).
struct Served<'a> {
    broker: &'a Engine,
    key: &'a GroupSubject,
}

impl<'a> Served<'a> {
    fn mark(broker: &'a Engine, key: &'a GroupSubject) -> Served<'a> {
        let served = Served { broker, key };
        served.set(true);
        served
    }

    fn set(&self, pulling: bool) {
        let Some(link) = self.broker.cluster() else {
            return;
        };
        let subjects = filter_to_subjects(MESSAGES_PREFIX, &self.key.filter).len();
        link.release(link.shared.subject_ready(
            &self.key.group,
            &self.key.filter,
            &self.key.subject,
            subjects,
            pulling,
        ));
    }
}

impl Drop for Served<'_> {
    fn drop(&mut self) {
        self.set(false);
    }
}

/// Hands one pulled message to a local member, or gives it back to the
/// group when no member is left here (or, for its first deliveries, none
/// is connected).
async fn deliver(
    broker: &Arc<Engine>,
    key: &GroupSubject,
    message: async_nats::jetstream::Message,
) {
    let received = wire::message(
        MESSAGES_PREFIX,
        &message.subject,
        message.headers.as_ref(),
        message.payload.clone(),
        Instant::now(),
    );
    let routed = match received {
        Ok(received) => received.message,
        Err(error) => {
            tracing::warn!(
                "Cluster: skipped a message on {}: {error}.",
                message.subject
            );
            None
        }
    };
    let Some(routed) = routed else {
        // Unreadable or expired on the way: nothing to deliver.
        acknowledge_after_commit(broker, message, 0).await;
        return;
    };
    let delivered = message.info().map(|info| info.delivered).unwrap_or(1);
    let online_only = delivered < OFFLINE_RETRIES;
    match broker.route_shared_from_cluster(&key.group, &key.filter, routed, online_only) {
        Some(outcome) => {
            wait_for_room(outcome.pressured).await;
            acknowledge_after_commit(broker, message, outcome.ticket).await;
        }
        None => {
            if let Err(error) = message.ack_with(AckKind::Nak(Some(GIVE_BACK_DELAY))).await {
                tracing::debug!("Cluster: could not give a message back to JetStream: {error}.");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: &str, subject: &str) -> GroupSubject {
        GroupSubject {
            group: Arc::from(group),
            filter: Arc::from("a/#"),
            subject: subject.to_owned(),
        }
    }

    #[test]
    fn consumer_names_are_valid_and_tell_groups_and_subjects_apart() {
        let names = [
            key("g", "fmq.m.a").consumer_name(),
            key("g", "fmq.m.a.>").consumer_name(),
            key("h", "fmq.m.a").consumer_name(),
            key("g.*> x", "fmq.m.a").consumer_name(),
        ];
        for name in &names {
            assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
            assert_eq!(name.len(), "share_".len() + 32);
        }
        let distinct: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), names.len());
        assert_eq!(names[0], key("g", "fmq.m.a").consumer_name(), "stable");
    }
}
