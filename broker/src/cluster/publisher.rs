//! The engine's messages to JetStream, in the order they were handed over
//! (decision 0158). QoS 0 goes out as a plain NATS publish (the stream
//! still keeps it, nobody waits); QoS >= 1 waits for JetStream's ack of the
//! message and, when retained, of its retained record, then settles its
//! cell: stored, or failed on any error or after the timeout.
//!
//! It must never settle a cell as stored without JetStream's ack.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::Context;
use async_nats::Client;
use tokio::sync::{mpsc, watch};

use fleetmq_core::cluster::{Outbound, Settler};

use super::wire::{self, MESSAGES_PREFIX, RETAINED_PREFIX};

pub async fn run(
    jetstream: Context,
    client: Client,
    mut receiver: mpsc::Receiver<Outbound>,
    settler: Settler,
    node: Arc<str>,
    timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let outbound = tokio::select! {
            outbound = receiver.recv() => outbound,
            _ = shutdown.changed() => None,
        };
        let Some(Outbound {
            message,
            ack,
            queued_at,
        }) = outbound
        else {
            return;
        };
        if queued_at.elapsed() > timeout {
            // Waited behind a stalled connection: its publisher has been
            // waiting as long as it may; nothing of it left the node.
            if let Some(ack) = ack {
                settler.settle(&ack, false);
            }
            continue;
        }
        let headers = wire::headers(&message, &node, Instant::now());
        let subject = wire::subject(MESSAGES_PREFIX, &message);
        let retained_subject = message
            .retain
            .then(|| wire::subject(RETAINED_PREFIX, &message));
        let Some(ack) = ack else {
            // Nobody waits: a lost QoS 0 message is what QoS 0 allows. The
            // send is bounded, so a stalled connection cannot hold the
            // messages behind it.
            let payload = message.payload.clone();
            let _ = tokio::time::timeout(timeout, async {
                let _ = client
                    .publish_with_headers(subject, headers.clone(), payload.clone())
                    .await;
                if let Some(retained_subject) = retained_subject {
                    let _ = client
                        .publish_with_headers(retained_subject, headers, payload)
                        .await;
                }
            })
            .await;
            continue;
        };
        // Sent in order here; their acknowledgements are awaited aside,
        // so one slow ack does not hold the next message.
        let payload = message.payload.clone();
        let sent = tokio::time::timeout(timeout, async {
            let first = jetstream
                .publish_with_headers(subject, headers.clone(), payload.clone())
                .await;
            let second = match retained_subject {
                Some(retained_subject) => Some(
                    jetstream
                        .publish_with_headers(retained_subject, headers, payload)
                        .await,
                ),
                None => None,
            };
            (first, second)
        })
        .await;
        let Ok((first, second)) = sent else {
            settler.settle(&ack, false);
            continue;
        };
        let settler = settler.clone();
        tokio::spawn(async move {
            let stored = tokio::time::timeout(timeout, async {
                first.ok()?.await.ok()?;
                if let Some(second) = second {
                    second.ok()?.await.ok()?;
                }
                Some(())
            })
            .await;
            let stored = matches!(stored, Ok(Some(())));
            if !stored {
                tracing::debug!("Cluster: JetStream did not store a message on '{}'; its acknowledgement is refused.", message.topic.escape_debug());
            }
            settler.settle(&ack, stored);
        });
    }
}
