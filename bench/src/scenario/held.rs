//! Held connections against a broker that is already running (`load held`):
//! a fleet of mutual-TLS devices ([`Fleet`], a certificate each from the
//! caller's endpoint) comes up through a ramp, from a chosen number of
//! loopback source addresses, and stays connected while the broker's
//! resident memory is read from `/proc/PID/status`.
//!
//! Two questions share it: how many bytes a held connection costs the
//! broker (many source addresses, so per-address limits never bite), and
//! what a fleet behind a NAT or a balancer sees (few source addresses:
//! with the broker's per-address admission limits on, how many attempts
//! are refused and how long until every device has its CONNACK, or how
//! many are still out when the time limit ends the wave).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::conn::Endpoint;
use crate::http;
use crate::scenario::fleet::{Fleet, FleetConfig};
use crate::stats;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldConfig {
    pub fleet: FleetConfig,
    /// The broker whose memory is read (none: memory not reported).
    pub broker_pid: Option<u32>,
    /// fleetmq's HTTP address: its heap counter (`fleetmq_heap_bytes` in
    /// `/metrics`) is read too, which separates live heap bytes from
    /// allocator slack in the resident figure.
    pub metrics: Option<SocketAddr>,
    /// How long the fleet may take to come up.
    pub limit: Duration,
    /// How long the fleet is held once up (or once the limit ended the
    /// wave) before memory is read: the broker settles its buffers.
    pub settle: Duration,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HeldResult {
    pub devices: usize,
    /// Loopback source addresses the devices connected from.
    pub source_addresses: usize,
    /// Until every device had its CONNACK (None: not within the limit).
    pub all_connacked_secs: Option<f64>,
    /// Devices connected when the wave ended.
    pub connected: usize,
    /// Attempts that failed (refused, reset, timed out) during the wave.
    pub failed_attempts: u64,
    /// The wave's length: all CONNACKed, or the limit.
    pub wave_secs: f64,
    /// The broker's resident memory before the fleet and while held.
    pub rss_idle_kib: u64,
    pub rss_held_kib: u64,
    /// (held − idle) / connected.
    pub rss_per_conn_kib: f64,
    /// fleetmq's live heap before the fleet and while held (0: not read).
    pub heap_idle_kib: u64,
    pub heap_held_kib: u64,
    pub heap_per_conn_kib: f64,
}

/// fleetmq's `fleetmq_heap_bytes` gauge, in KiB (0 when unreadable; a
/// cluster node's carries a `node` label).
pub async fn heap_kib(metrics: Option<SocketAddr>) -> u64 {
    let Some(addr) = metrics else {
        return 0;
    };
    let Ok(body) = http::get(addr, "/metrics").await else {
        return 0;
    };
    http::metric_sum(&body, "fleetmq_heap_bytes").map_or(0, |bytes| (bytes / 1024.0) as u64)
}

/// The fleet of the runner's scenario 3 (the same backoff and jitter),
/// `ramp` devices connecting at once.
pub fn fleet_config(devices: usize, ramp: usize) -> FleetConfig {
    FleetConfig {
        devices,
        resume: false,
        launch_concurrency: ramp,
        attempt_timeout: Duration::from_secs(10),
        first_jitter: Duration::from_secs(1),
        backoff_base: Duration::from_millis(500),
        backoff_cap: Duration::from_secs(8),
    }
}

pub async fn run(
    endpoint: &Endpoint,
    config: &HeldConfig,
    source_addresses: usize,
) -> Result<HeldResult> {
    let rss = || config.broker_pid.and_then(stats::rss_kib).unwrap_or(0);
    let rss_idle_kib = rss();
    let heap_idle_kib = heap_kib(config.metrics).await;
    let started = Instant::now();
    let fleet = Fleet::launch(endpoint, &config.fleet);
    let mark = fleet.mark();
    let up = fleet.wait_all_connected(&mark, config.limit).await;
    let wave_secs = started.elapsed().as_secs_f64();
    let (all_connacked_secs, failed_attempts) = match &up {
        Ok(wave) => (Some(wave.all_connacked_secs), wave.failed_attempts),
        Err(_) => (None, fleet.failed_since(&mark)),
    };
    tokio::time::sleep(config.settle).await;
    let connected = fleet.connected();
    let rss_held_kib = rss();
    let heap_held_kib = heap_kib(config.metrics).await;
    fleet.stop().await;
    Ok(HeldResult {
        devices: config.fleet.devices,
        source_addresses,
        all_connacked_secs,
        connected,
        failed_attempts,
        wave_secs,
        rss_idle_kib,
        rss_held_kib,
        rss_per_conn_kib: rss_held_kib.saturating_sub(rss_idle_kib) as f64
            / connected.max(1) as f64,
        heap_idle_kib,
        heap_held_kib,
        heap_per_conn_kib: heap_held_kib.saturating_sub(heap_idle_kib) as f64
            / connected.max(1) as f64,
    })
}
