//! What a session brought in from another node missed (decision 0173):
//! the message stream read from a start time, each message routed to that
//! one session through the engine (its subscriptions, ACLs, no-local), in
//! the stream's order, until the stream's end at the time of reading.
//!
//! The start time is earlier than the session went offline by a margin, so
//! duplicates are expected and loss is not (within the stream's age). It
//! routes to no other session and acknowledges nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::Context;
use futures_util::StreamExt;

use fleetmq_core::engine::Engine;

use super::wire::{self, MESSAGES_PREFIX};

/// How far before the session went offline the replay starts: covers
/// messages still in flight to the device then, and clock skew between
/// nodes up to that much.
pub const REPLAY_MARGIN: Duration = Duration::from_secs(10);
/// Longest a replay may take in all.
const REPLAY_LIMIT: Duration = Duration::from_secs(120);
/// Longest a wait for the next replayed message may take.
const NEXT_TIMEOUT: Duration = Duration::from_secs(5);

/// Replays every message stored since `from_ms` (wall clock, ms) to the
/// session of `client_id`.
pub async fn run(jetstream: Context, broker: Arc<Engine>, client_id: Arc<str>, from_ms: u64) {
    let started = Instant::now();
    match tokio::time::timeout(
        REPLAY_LIMIT,
        replay(&jetstream, &broker, &client_id, from_ms),
    )
    .await
    {
        Ok(Ok((read, queued))) => tracing::info!(
            client = %client_id,
            "Cluster: session {client_id} brought in from another node; {queued} of {read} stored messages replayed to it in {} ms.",
            started.elapsed().as_millis()
        ),
        Ok(Err(error)) => tracing::warn!(
            client = %client_id,
            "Cluster: replay to session {client_id} stopped: {error}; messages it missed may be lost."
        ),
        Err(_) => tracing::warn!(
            client = %client_id,
            "Cluster: replay to session {client_id} took longer than {}s and stopped; messages it missed may be lost.",
            REPLAY_LIMIT.as_secs()
        ),
    }
}

async fn replay(
    jetstream: &Context,
    broker: &Arc<Engine>,
    client_id: &str,
    from_ms: u64,
) -> Result<(u64, u64), String> {
    let nanos = i128::from(from_ms) * 1_000_000;
    let start_time =
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|e| e.to_string())?;
    let stream = jetstream
        .get_stream(super::streams::MESSAGES)
        .await
        .map_err(|e| e.to_string())?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: format!("{MESSAGES_PREFIX}.>"),
            deliver_policy: DeliverPolicy::ByStartTime { start_time },
            ..pull::OrderedConfig::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let (mut read, mut queued) = (0u64, 0u64);
    if consumer.cached_info().num_pending == 0 {
        return Ok((read, queued));
    }
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    loop {
        let message = match tokio::time::timeout(NEXT_TIMEOUT, messages.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(error))) => return Err(error.to_string()),
            Ok(None) => return Err("the message stream ended".into()),
            Err(_) => return Err("the stream stopped answering".into()),
        };
        read += 1;
        if broker.session(client_id).is_none() {
            return Ok((read, queued));
        }
        if let Ok(received) = wire::message(
            MESSAGES_PREFIX,
            &message.subject,
            message.headers.as_ref(),
            message.payload.clone(),
            Instant::now(),
        ) {
            if let Some(routed) = received.message {
                let outcome = broker.route_to_session(client_id, routed);
                queued += outcome.matched as u64;
                super::inbound::wait_for_room(outcome.pressured).await;
            }
        }
        if message.info().is_ok_and(|info| info.pending == 0) {
            return Ok((read, queued));
        }
    }
}
