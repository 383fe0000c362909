//! Wills exactly once across nodes (decision 0183). Every will lives as a
//! record in the `FLEETMQ_WILLS` bucket from the CONNECT that carries it
//! until it is published or dropped; whoever deletes the record with a
//! compare-and-set on its revision is the one that publishes (or drops)
//! it, so no two nodes publish one will:
//!
//! - the connection's node, when the connection ends (at once, or after
//!   the will delay, the record then carrying its due time);
//! - the node of a later CONNECT of the client, anywhere: it publishes the
//!   pending will when that CONNECT starts clean and drops it when it
//!   resumes the session [MQTT-3.1.3-9];
//! - a survivor, when the record's node died: the first node to rewrite
//!   the record as its own (compare-and-set) takes the will over.
//!
//! One task does all of it in order, so a connection's end never overtakes
//! its CONNECT. A CONNECT with a will gets its CONNACK once the record is
//! written, and the bucket is read from its stream's leader: a client that
//! drops and reconnects on another node at once has that node find the
//! record, which a follower's direct get could still miss. It decides
//! nothing about access (the connection checks the will's topic) and never
//! publishes a will whose record it did not delete.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{Operation, Store};
use async_nats::jetstream::Context;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use fleetmq_core::cluster::ArmedWill;
use fleetmq_core::engine::{Engine, PendingWill};
use fleetmq_core::message::Message;
use fleetmq_core::store::now_ms;

use super::buckets;
use super::liveness::Liveness;
use super::names::bounded;
use super::will_keeper::{Keeper, Report};
use super::will_record::{decode, WillRecord};
use super::Readiness;

/// The bucket of wills.
pub const WILLS: &str = "FLEETMQ_WILLS";
/// Longest one bucket request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Reads of an old connection's record a CONNECT makes while that
/// connection's node keeps rewriting it.
const SETTLE_ATTEMPTS: usize = 5;
/// How often due wills and dead nodes are looked at.
const TICK: Duration = Duration::from_millis(250);
/// Connection events waiting for the task; beyond, a will is published
/// by this node alone, as without a cluster.
const QUEUE: usize = 4096;

/// A record this node wrote for a live connection.
#[derive(Debug, Clone, Copy)]
struct Armed {
    generation: u64,
    revision: u64,
}

/// What a read after an unanswered request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadBack {
    /// The value the request carried, at this revision.
    Written(u64),
    /// Another value, at this revision.
    Other(u64),
    /// No record.
    Gone,
    /// No answer either.
    Unknown,
}

/// A will this node answers for, waiting for its time.
#[derive(Debug)]
struct Due {
    revision: u64,
    at: Instant,
    message: Arc<Message>,
}

/// The task's state.
struct Wills {
    store: Store,
    broker: Arc<Engine>,
    node: Arc<str>,
    instance: Arc<str>,
    armed: HashMap<Arc<str>, Armed>,
    due: HashMap<String, Due>,
    /// Wills this node scheduled on its own, NATS not answering: a record
    /// of it that was written after all must not be scheduled again.
    local: HashSet<String>,
    /// Every will record, by key, with its revision (from the watch).
    records: HashMap<String, (WillRecord, u64)>,
    /// Which instances are alive.
    liveness: Liveness,
}

/// Starts the keeper: the handle for the engine, and the task.
pub fn start(
    jetstream: Context,
    broker: &Arc<Engine>,
    node: Arc<str>,
    instance: Arc<str>,
    replicas: usize,
    readiness: Arc<Readiness>,
    shutdown: watch::Receiver<bool>,
) -> Keeper {
    let (sender, receiver) = mpsc::channel(QUEUE);
    let opening = Opening {
        jetstream,
        replicas,
        readiness,
    };
    tokio::spawn(run(
        opening,
        Arc::clone(broker),
        node,
        instance,
        receiver,
        shutdown,
    ));
    Keeper {
        sender,
        broker: Arc::downgrade(broker),
    }
}

/// What opening the buckets takes, and whom it tells.
struct Opening {
    jetstream: Context,
    replicas: usize,
    /// Told once the will bucket is open: the node is not ready before.
    readiness: Arc<Readiness>,
}

async fn run(
    opening: Opening,
    broker: Arc<Engine>,
    node: Arc<str>,
    instance: Arc<str>,
    mut reports: mpsc::Receiver<Report>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Opening {
        jetstream,
        replicas,
        readiness,
    } = opening;
    // Reports that arrive before the buckets are open are settled as
    // without a cluster: the node is not ready until they are (only a
    // clean, non-persistent session is accepted then, on this node alone).
    let (store, nodes) = loop {
        let opened = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let store =
                buckets::open_with(&jetstream, WILLS, replicas, buckets::Reads::Leader).await?;
            let nodes = jetstream
                .get_key_value(buckets::NODES)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((store, nodes))
        })
        .await;
        if let Ok(Ok(opened)) = opened {
            readiness.wills.store(true, Ordering::Release);
            break opened;
        }
        tokio::select! {
            report = reports.recv() => match report {
                Some(Report::Ended { will: Some(will), .. }) => broker.schedule_will(will),
                Some(_) => {}
                None => return,
            },
            _ = tokio::time::sleep(super::SUPERVISE_EVERY) => {}
            _ = shutdown.changed() => return,
        }
    };
    let mut wills = Wills {
        store,
        broker,
        node,
        instance,
        armed: HashMap::new(),
        due: HashMap::new(),
        local: HashSet::new(),
        records: HashMap::new(),
        liveness: Liveness::new(),
    };
    let mut tick = tokio::time::interval(TICK);
    let mut record_watch = None;
    let mut node_watch = None;
    loop {
        if record_watch.is_none() {
            record_watch = wills.store.watch_all().await.ok();
        }
        if node_watch.is_none() {
            node_watch = nodes.watch_all().await.ok();
            wills.liveness.restart();
        }
        tokio::select! {
            report = reports.recv() => match report {
                Some(report) => wills.report(report).await,
                None => return,
            },
            entry = next_entry(&mut record_watch) => match entry {
                Some(entry) => wills.record_seen(entry),
                None => record_watch = None,
            },
            entry = next_entry(&mut node_watch) => match entry {
                Some(entry) => wills.liveness.seen(entry),
                None => node_watch = None,
            },
            _ = tick.tick() => {
                wills.publish_due().await;
                wills.take_over_from_dead_nodes().await;
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// The next entry of a watch; `None` when it ended or failed (pending
/// forever when there is no watch, so the select waits on the others).
async fn next_entry(
    watch: &mut Option<async_nats::jetstream::kv::Watch>,
) -> Option<async_nats::jetstream::kv::Entry> {
    match watch {
        Some(entries) => entries.next().await.and_then(Result::ok),
        None => std::future::pending().await,
    }
}

impl Wills {
    async fn report(&mut self, report: Report) {
        match report {
            Report::Connected {
                client_id,
                generation,
                clean_start,
                will,
                recorded,
            } => {
                self.connected(client_id, generation, clean_start, will)
                    .await;
                // The CONNACK waiting for it may leave now.
                drop(recorded);
            }
            Report::Ended {
                client_id,
                generation,
                will,
            } => self.ended(client_id, generation, will).await,
        }
    }

    /// Settles what an earlier connection of the client left, then arms
    /// this connection's will.
    async fn connected(
        &mut self,
        client_id: Arc<str>,
        generation: u64,
        clean_start: bool,
        will: Option<ArmedWill>,
    ) {
        let key = buckets::key(&client_id);
        self.armed.remove(&client_id);
        self.due.remove(&key);
        self.local.remove(&key);
        // The old connection's node may rewrite the record (its end, a
        // due time) between this read and this delete: read again then.
        // A delete that got no answer may have been written: the next
        // read tells (still there: delete again; gone: it was ours).
        let mut unconfirmed: Option<async_nats::jetstream::kv::Entry> = None;
        for _ in 0..SETTLE_ATTEMPTS {
            let entry = match bounded(self.store.entry(key.clone())).await {
                Ok(Some(entry)) if entry.operation == Operation::Put => entry,
                Ok(_) => {
                    if let Some(deleted) = unconfirmed.take() {
                        self.settled(&deleted, clean_start);
                    }
                    break;
                }
                Err(error) => {
                    tracing::debug!(
                        client = %client_id,
                        "Cluster: will record of {client_id} not read: {error}."
                    );
                    break;
                }
            };
            unconfirmed = None;
            match bounded(
                self.store
                    .delete_expect_revision(&key, Some(entry.revision)),
            )
            .await
            {
                Ok(()) => {
                    tracing::debug!(client = %client_id, "Cluster: will record of {client_id} at revision {} settled here (clean start {clean_start}).", entry.revision);
                    self.settled(&entry, clean_start);
                    break;
                }
                Err(error) if lost_race(&error) => {
                    tracing::debug!(client = %client_id, "Cluster: will record of {client_id} moved past revision {}: {error}.", entry.revision);
                    continue;
                }
                // Left in place, the old node would publish a resumed
                // session's will when due.
                Err(_) => unconfirmed = Some(entry),
            }
        }
        let Some(will) = will else { return };
        let record = WillRecord::new(
            &self.node,
            &self.instance,
            &will.message,
            will.delay,
            will.expiry_interval,
        );
        let Some(value) = record.encode() else { return };
        let written = match bounded(self.store.put(&key, value.clone())).await {
            Ok(revision) => Ok(revision),
            // A put that timed out may have been written: then the record
            // is this connection's, and only the cluster path may settle
            // it (a local will besides would be a second copy).
            Err(error) => match self.read_back(&key, &value).await {
                ReadBack::Written(revision) => Ok(revision),
                _ => Err(error),
            },
        };
        match written {
            Ok(revision) => {
                self.armed.insert(
                    client_id,
                    Armed {
                        generation,
                        revision,
                    },
                );
            }
            Err(error) => tracing::debug!(
                client = %client_id,
                "Cluster: will of {client_id} not armed in the cluster ({error}); this node alone publishes it."
            ),
        }
    }

    /// The revision of the record of `client_id` when it is a live
    /// connection's record this instance wrote.
    async fn own_live_record(&self, client_id: &str) -> Option<u64> {
        let key = buckets::key(client_id);
        let entry = bounded(self.store.entry(key)).await.ok()??;
        if entry.operation != Operation::Put {
            return None;
        }
        let record = decode(&entry.value)?;
        (*record.instance == *self.instance
            && record.client == client_id
            && record.due_ms.is_none())
        .then_some(entry.revision)
    }

    /// This CONNECT deleted the record `entry` an earlier connection of
    /// the client left: a clean start publishes its will now (the earlier
    /// session ended) [MQTT-3.1.3-9]; a resumed session drops it.
    fn settled(&self, entry: &async_nats::jetstream::kv::Entry, clean_start: bool) {
        if clean_start {
            if let Some(message) = decode(&entry.value).and_then(|r| r.message()) {
                self.broker.publish(message);
            }
        }
    }

    /// After a request that got no answer: whether the record at `key`
    /// is `value` (the request was written), something else, or gone.
    async fn read_back(&self, key: &str, value: &bytes::Bytes) -> ReadBack {
        match bounded(self.store.entry(key.to_owned())).await {
            Ok(Some(entry)) if entry.operation == Operation::Put => {
                if entry.value == *value {
                    ReadBack::Written(entry.revision)
                } else {
                    ReadBack::Other(entry.revision)
                }
            }
            Ok(_) => ReadBack::Gone,
            Err(_) => ReadBack::Unknown,
        }
    }

    async fn ended(&mut self, client_id: Arc<str>, generation: u64, will: Option<PendingWill>) {
        let armed = match self.armed.get(&client_id) {
            Some(armed) if armed.generation == generation => *armed,
            // Its put got no answer and no read told whether it was
            // written: when it was, the record settles the will.
            None if will.as_ref().is_some_and(|will| will.was_attached) => {
                match self.own_live_record(&client_id).await {
                    Some(revision) => Armed {
                        generation,
                        revision,
                    },
                    None => {
                        if let Some(will) = will {
                            tracing::debug!(client = %client_id, "Cluster: will of {client_id} not armed, no live record: this node schedules it.");
                            self.broker.schedule_will(will);
                        }
                        return;
                    }
                }
            }
            // Not armed in the cluster: as without one. A connection that
            // was taken over leaves its will to the newer connection.
            _ => {
                if let Some(will) = will.filter(|will| will.was_attached) {
                    tracing::debug!(client = %client_id, "Cluster: will of {client_id} (generation {generation}) not armed here: this node schedules it.");
                    self.broker.schedule_will(will);
                }
                return;
            }
        };
        self.armed.remove(&client_id);
        let key = buckets::key(&client_id);
        let Some(will) = will else {
            // A normal DISCONNECT (or no will left to publish).
            let _ = bounded(
                self.store
                    .delete_expect_revision(&key, Some(armed.revision)),
            )
            .await;
            return;
        };
        if !will.was_attached {
            // Taken over: the newer connection settles it.
            return;
        }
        let expiry = will.session.lock().expiry_interval();
        let delay = will.delay_interval.min(expiry);
        if delay == 0 {
            self.publish_if_deleted(&key, armed.revision, will.message)
                .await;
            return;
        }
        let mut record = WillRecord::new(
            &self.node,
            &self.instance,
            &will.message,
            delay,
            will.message.properties.message_expiry_interval,
        );
        record.due_ms = Some(now_ms() + u64::from(delay) * 1000);
        let Some(value) = record.encode() else { return };
        let mut attempts = 0;
        let written = loop {
            attempts += 1;
            match bounded(self.store.update(&key, value.clone(), armed.revision)).await {
                Ok(revision) => {
                    tracing::debug!(client = %client_id, "Cluster: will of {client_id} due in {delay} s, record revision {revision} (was {}).", armed.revision);
                    break Some(revision);
                }
                Err(error) if lost_race(&error) => {
                    // Another node settled or took it: not ours any more.
                    return;
                }
                // No answer: the update may have been written, and a will
                // published here besides would be a second copy when the
                // session resumes on another node or a survivor takes the
                // record over.
                Err(_) => match self.read_back(&key, &value).await {
                    ReadBack::Written(revision) => break Some(revision),
                    // Not written: still the live record; try once more.
                    ReadBack::Other(revision) if revision == armed.revision => {
                        if attempts >= 2 {
                            break None;
                        }
                    }
                    // Settled or taken by another node meanwhile.
                    ReadBack::Other(_) | ReadBack::Gone => return,
                    ReadBack::Unknown => break None,
                },
            }
        };
        match written {
            Some(revision) => {
                self.due.insert(
                    key,
                    Due {
                        revision,
                        at: Instant::now() + Duration::from_secs(u64::from(delay)),
                        message: will.message,
                    },
                );
            }
            // NATS away: as without a cluster, rather than never.
            None => {
                self.local.insert(key);
                self.broker.schedule_will(will);
            }
        }
    }

    /// Publishes `message` when this node deletes the record at
    /// `revision`; a failed delete means another node answers for it.
    async fn publish_if_deleted(&mut self, key: &str, revision: u64, message: Arc<Message>) {
        match bounded(self.store.delete_expect_revision(key, Some(revision))).await {
            Ok(()) => {
                tracing::debug!("Cluster: will record {key} at revision {revision} deleted here; publishing it.");
                self.broker.publish(message);
            }
            Err(error) if lost_race(&error) => {
                tracing::debug!(
                    "Cluster: will record {key} moved past revision {revision}: {error}."
                );
            }
            Err(error) => match bounded(self.store.entry(key.to_owned())).await {
                // The delete was not written and the record is still the
                // one this node answers for: try once more.
                Ok(Some(entry)) if entry.operation == Operation::Put => {
                    if entry.revision != revision {
                        return;
                    }
                    match bounded(self.store.delete_expect_revision(key, Some(revision))).await {
                        Ok(()) => {
                            self.broker.publish(message);
                        }
                        Err(error) if lost_race(&error) => {}
                        Err(error) => {
                            tracing::debug!("Cluster: will record {key} not deleted ({error}); publishing it here.");
                            self.broker.publish(message);
                        }
                    }
                }
                // Gone: most likely this delete, which got no answer (a
                // CONNECT elsewhere deleting it in the same instant cannot
                // be told apart: decision 0183). Unreadable: NATS away,
                // publish here rather than never.
                _ => {
                    tracing::debug!("Cluster: will record {key} delete unconfirmed ({error}); publishing it here.");
                    self.broker.publish(message);
                }
            },
        }
    }

    async fn publish_due(&mut self) {
        let now = Instant::now();
        let keys: Vec<String> = self
            .due
            .iter()
            .filter(|(_, due)| due.at <= now)
            .map(|(key, _)| key.clone())
            .collect();
        for key in keys {
            if let Some(due) = self.due.remove(&key) {
                self.publish_if_deleted(&key, due.revision, due.message)
                    .await;
            }
        }
    }

    fn record_seen(&mut self, entry: async_nats::jetstream::kv::Entry) {
        match entry.operation {
            Operation::Put => match decode(&entry.value) {
                Some(record) => {
                    self.track_own(&entry.key, &record, entry.revision);
                    self.records.insert(entry.key, (record, entry.revision));
                }
                None => {
                    self.records.remove(&entry.key);
                }
            },
            Operation::Delete | Operation::Purge => {
                self.records.remove(&entry.key);
            }
        }
    }

    /// A record this instance wrote with a due time, which it does not
    /// track: a take-over whose update got no answer but was written.
    /// Without this, the will would wait for this node's death. Due at its
    /// time; the compare-and-set on its revision keeps it to one copy.
    fn track_own(&mut self, key: &str, record: &WillRecord, revision: u64) {
        if *record.instance != *self.instance
            || self.due.contains_key(key)
            || self.local.contains(key)
        {
            return;
        }
        let (Some(due_ms), Some(message)) = (record.due_ms, record.message()) else {
            return;
        };
        self.due.insert(
            key.to_owned(),
            Due {
                revision,
                at: Instant::now() + Duration::from_millis(due_ms.saturating_sub(now_ms())),
                message,
            },
        );
    }

    /// Rewrites the records of dead instances as this node's
    /// (compare-and-set: one survivor wins each) and schedules them.
    async fn take_over_from_dead_nodes(&mut self) {
        let orphans: Vec<(String, WillRecord, u64)> = self
            .records
            .iter()
            .filter(|(_, (record, _))| *record.instance != *self.instance)
            .filter(|(_, (record, _))| self.liveness.is_gone(&record.node, &record.instance))
            .map(|(key, (record, revision))| (key.clone(), record.clone(), *revision))
            .collect();
        for (key, mut record, revision) in orphans {
            let dead_node = std::mem::replace(&mut record.node, self.node.to_string());
            record.instance = self.instance.to_string();
            // A will whose connection died with its node is due a delay
            // after the death was noticed here.
            let due_ms = record
                .due_ms
                .unwrap_or_else(|| now_ms() + u64::from(record.delay) * 1000);
            record.due_ms = Some(due_ms);
            let (Some(value), Some(message)) = (record.encode(), record.message()) else {
                continue;
            };
            match bounded(self.store.update(&key, value, revision)).await {
                Ok(new_revision) => {
                    tracing::info!(
                        client = %record.client,
                        "Cluster: will of {} taken over from node {dead_node}, which is gone; due in {} ms.",
                        record.client,
                        due_ms.saturating_sub(now_ms())
                    );
                    self.records.remove(&key);
                    self.due.insert(
                        key,
                        Due {
                            revision: new_revision,
                            at: Instant::now()
                                + Duration::from_millis(due_ms.saturating_sub(now_ms())),
                            message,
                        },
                    );
                }
                Err(_) => {
                    // Another survivor won, or NATS is away: the watch
                    // tells which.
                }
            }
        }
    }
}

/// True when a compare-and-set failed because the record moved on (an
/// update's "wrong last revision", a delete's "wrong last sequence"),
/// not because NATS did not answer.
fn lost_race(error: &str) -> bool {
    error.contains("wrong last")
}
