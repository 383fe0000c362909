//! This node's durable consumer of the message stream (decision 0156):
//! every message another node published is routed to this node's
//! subscribers through the engine, then acknowledged to JetStream. Its
//! own messages were delivered locally already and are only acknowledged.
//! When the message produced store records (copies for persistent
//! sessions), the acknowledgement waits for their commit.
//!
//! A subscriber's full queue holds the consumer back (bounded), as it
//! holds a local publisher back (decision 0064). It must not touch the
//! retained index (`retained` owns that).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::AckKind;
use async_nats::jetstream::Context;
use futures_util::StreamExt;
use tokio::sync::watch;

use fleetmq_core::engine::Engine;
use fleetmq_core::session::Session;
use fleetmq_core::store::{Progress, TicketState};

use super::wire::{self, MESSAGES_PREFIX};
use super::Readiness;

/// Longest a message waits for a full subscriber queue before the next.
const MAX_PRESSURE_WAIT: Duration = Duration::from_secs(5);
/// Errors in a row after which the consumer is looked up again.
const MAX_ERRORS: u32 = 2;
/// Messages one pull request asks for.
const PULL_BATCH: usize = 256;
/// How long one pull request stays open on the server.
const PULL_EXPIRES: Duration = Duration::from_secs(3);
/// Idle heartbeat the server sends during a pull; missing ones are errors.
const PULL_HEARTBEAT: Duration = Duration::from_secs(1);

fn consumer_config(node: &str) -> pull::Config {
    pull::Config {
        durable_name: Some(format!("node_{node}")),
        deliver_policy: DeliverPolicy::New,
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        filter_subject: format!("{MESSAGES_PREFIX}.>"),
        ..pull::Config::default()
    }
}

pub async fn run(
    jetstream: Context,
    broker: Arc<Engine>,
    node: Arc<str>,
    readiness: Arc<Readiness>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        // Never read under a name another process may hold (0172).
        if readiness.streams.load(Ordering::Acquire) && readiness.name.load(Ordering::Acquire) {
            match consume(&jetstream, &broker, &node, &readiness, &mut shutdown).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::debug!(node = %node, "Cluster: message consumer: {error}; starting it again.");
                }
            }
            readiness.consumer.store(false, Ordering::Release);
        }
        tokio::select! {
            _ = tokio::time::sleep(super::SUPERVISE_EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Reads until shutdown (`Ok`) or until the consumer fails (`Err`).
async fn consume(
    jetstream: &Context,
    broker: &Arc<Engine>,
    node: &str,
    readiness: &Readiness,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let stream = jetstream
        .get_stream(super::streams::MESSAGES)
        .await
        .map_err(|e| e.to_string())?;
    let consumer = stream
        .get_or_create_consumer::<pull::Config>(&format!("node_{node}"), consumer_config(node))
        .await
        .map_err(|e| e.to_string())?;
    // Short pulls: a pull request lost while NATS elects a leader after
    // an outage is replaced within seconds, not the default 30.
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(PULL_BATCH)
        .expires(PULL_EXPIRES)
        .heartbeat(PULL_HEARTBEAT)
        .messages()
        .await
        .map_err(|e| e.to_string())?;
    readiness.consumer.store(true, Ordering::Release);
    let mut errors = 0;
    loop {
        let next = tokio::select! {
            next = messages.next() => next,
            _ = shutdown.changed() => return Ok(()),
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(error)) => {
                errors += 1;
                if errors >= MAX_ERRORS {
                    return Err(error.to_string());
                }
                continue;
            }
            None => return Err("the message stream ended".into()),
        };
        errors = 0;
        if !readiness.name.load(Ordering::Acquire) {
            // Another process took this node's name: its consumer too.
            return Ok(());
        }
        let mut ticket = 0;
        match wire::message(
            MESSAGES_PREFIX,
            &message.subject,
            message.headers.as_ref(),
            message.payload.clone(),
            Instant::now(),
        ) {
            Ok(received) if received.origin != node => {
                if let Some(routed) = received.message {
                    let outcome = broker.route_from_cluster(routed);
                    ticket = outcome.ticket;
                    wait_for_room(outcome.pressured).await;
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(
                    "Cluster: skipped a message on {}: {error}.",
                    message.subject
                );
            }
        }
        acknowledge_after_commit(broker, message, ticket).await;
    }
}

/// Acknowledges `message` to JetStream once this node's store holds the
/// copies its routing queued for persistent sessions (`ticket`, 0: none);
/// a failed commit asks JetStream to deliver it again. A wait for a
/// commit runs aside, so the next message does not wait for it.
pub(super) async fn acknowledge_after_commit(
    broker: &Engine,
    message: async_nats::jetstream::Message,
    ticket: u64,
) {
    match broker
        .store
        .as_ref()
        .filter(|store| ticket != 0 && store.gates_acks())
    {
        Some(store) => {
            let mut progress = store.progress();
            tokio::spawn(async move {
                let kind = match committed(&mut progress, ticket).await {
                    true => AckKind::Ack,
                    false => AckKind::Nak(None),
                };
                if let Err(error) = message.ack_with(kind).await {
                    tracing::debug!(
                        "Cluster: could not acknowledge a message to JetStream: {error}."
                    );
                }
            });
        }
        None => {
            if let Err(error) = message.ack().await {
                tracing::debug!("Cluster: could not acknowledge a message to JetStream: {error}.");
            }
        }
    }
}

/// Waits until the store committed `ticket` (true) or failed it (false).
async fn committed(progress: &mut watch::Receiver<Progress>, ticket: u64) -> bool {
    loop {
        match progress.borrow_and_update().state(ticket) {
            TicketState::Committed => return true,
            TicketState::Failed => return false,
            TicketState::Pending => {}
        }
        if progress.changed().await.is_err() {
            return false;
        }
    }
}

/// Waits, at most [`MAX_PRESSURE_WAIT`] in all, until no session in
/// `pressure` holds publishers back.
pub(super) async fn wait_for_room(pressure: Vec<Arc<Session>>) {
    let deadline = tokio::time::Instant::now() + MAX_PRESSURE_WAIT;
    for session in pressure {
        while session.holds_publishers() {
            let notified = session.space.notified();
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }
}
