//! The cluster's retained messages (decision 0156): an ordered consumer of
//! the retained stream from the last message of every topic, then live,
//! applied to the local retained index in the stream's order, so every
//! node ends with the same retained message per topic. An empty payload
//! clears the topic.
//!
//! It is the only writer of the retained index for cluster traffic; it
//! routes nothing.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::Context;
use futures_util::StreamExt;
use tokio::sync::watch;

use fleetmq_core::engine::Engine;

use super::wire::{self, RETAINED_PREFIX};
use super::Readiness;

pub async fn run(
    jetstream: Context,
    broker: Arc<Engine>,
    readiness: Arc<Readiness>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if readiness.streams.load(Ordering::Acquire) {
            match follow(&jetstream, &broker, &readiness, &mut shutdown).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::debug!("Cluster: retained reader: {error}; starting it again.");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(super::SUPERVISE_EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn follow(
    jetstream: &Context,
    broker: &Arc<Engine>,
    readiness: &Readiness,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let stream = jetstream
        .get_stream(super::streams::RETAINED)
        .await
        .map_err(|e| e.to_string())?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: format!("{RETAINED_PREFIX}.>"),
            deliver_policy: DeliverPolicy::LastPerSubject,
            ..pull::OrderedConfig::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    if consumer.cached_info().num_pending == 0 {
        readiness.retained.store(true, Ordering::Release);
    }
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    loop {
        let next = tokio::select! {
            next = messages.next() => next,
            _ = shutdown.changed() => return Ok(()),
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(error)) => return Err(error.to_string()),
            None => return Err("the retained stream ended".into()),
        };
        match wire::message(
            RETAINED_PREFIX,
            &message.subject,
            message.headers.as_ref(),
            message.payload.clone(),
            Instant::now(),
        ) {
            Ok(received) => {
                if let Some(retained) = received.message {
                    broker.retained_from_cluster(retained);
                }
            }
            Err(error) => {
                tracing::warn!(
                    "Cluster: skipped a retained record on {}: {error}.",
                    message.subject
                );
            }
        }
        if message.info().is_ok_and(|info| info.pending == 0) {
            readiness.retained.store(true, Ordering::Release);
        }
    }
}
