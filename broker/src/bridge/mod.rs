//! Bridges: links to remote MQTT brokers (`[[bridge]]`, or Mosquitto's
//! `connection` sections). Each bridge is a real MQTT client of the remote
//! (TCP or TLS, mutual TLS, ALPN) and, locally, a persistent session of
//! the engine like any client's: its subscriptions are the `out` patterns
//! and its durable queue is the store and forward (decision 0144).
//!
//! - [`link`]: one bridge's connect / relay / reconnect loop;
//! - [`connect`]: one connection's setup (CONNECT, subscriptions);
//! - [`relay`]: the local session and the packets passed both ways;
//! - [`remote`]: reaching the remote (DNS, TCP, TLS) with failures named;
//! - [`tls`]: the rustls client configuration;
//! - [`topics`]: the topic mapping with prefixes;
//! - [`status`]: what `/api/bridges`, the metrics and logs show;
//! - [`metrics`]: the Prometheus families built from it.
//!
//! It must not route messages itself: everything enters and leaves the
//! engine through the bridge's local session.

mod connect;
mod link;
pub mod metrics;
mod relay;
mod remote;
mod status;
mod tls;
mod topics;

use std::sync::Arc;

use tokio::sync::watch;

pub use status::{BridgeStatus, BridgeView, Bridges};

use fleetmq_core::engine::Engine;

/// The host name in default client ids, as Mosquitto's `HOSTNAME.NAME`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "fleetmq".to_string())
}

/// Checks what a bridge needs from files (its TLS certificates), for
/// `check-config` and the start.
pub fn check(broker_config: &fleetmq_core::config::Config) -> Vec<String> {
    broker_config
        .bridges
        .iter()
        .filter_map(|bridge| {
            let tls = bridge.tls.as_ref()?;
            tls::client_config(tls)
                .err()
                .map(|why| format!("bridge {}: {why}", bridge.name))
        })
        .collect()
}

/// Starts every configured bridge; returns their status.
pub fn spawn(broker: &Arc<Engine>, shutdown: &watch::Receiver<bool>) -> Arc<Bridges> {
    let host = hostname();
    let mut links = Vec::new();
    for config in &broker.config.bridges {
        let remote_id = config.remote_id(&host);
        let local_id = config.local_id(&host);
        let status = Arc::new(BridgeStatus {
            name: config.name.clone(),
            local_client_id: local_id.clone(),
            ..BridgeStatus::default()
        });
        let tls = match config.tls.as_ref().map(tls::client_config) {
            None => None,
            Some(Ok(tls)) => Some(tls),
            Some(Err(why)) => {
                tracing::error!(bridge = %config.name, "Bridge {} cannot start: {why}.", config.name);
                status.fail(why);
                links.push(status);
                continue;
            }
        };
        let notification_topic = config
            .notification_topic
            .clone()
            .unwrap_or_else(|| format!("$SYS/broker/connection/{remote_id}/state"));
        let link = link::Link {
            broker: Arc::clone(broker),
            config: config.clone(),
            status: Arc::clone(&status),
            tls,
            remote_id,
            local_id,
            notification_topic,
            private: config.try_private,
            address_index: 0,
        };
        // Before any listener accepts: what a client publishes from its
        // first moment is queued for the remote.
        if let Err(why) = link.prime_local() {
            tracing::error!(bridge = %config.name, "Bridge {}: {why}.", config.name);
        }
        tokio::spawn(link.run(shutdown.clone()));
        links.push(status);
    }
    Arc::new(Bridges { links })
}
