//! Scenarios 4 and 5: messages flowing through the broker.
//!
//! - Fan-in telemetry: many publishers, each on its own topic
//!   `bench/in/<n>`, one subscriber on `bench/in/#`.
//! - Fan-out commands: one publisher on `bench/cmd/all`, many subscribers
//!   on that topic.
//!
//! Every payload starts with its send time and a tag ([`crate::mqtt`]), so
//! subscribers measure end-to-end latency. Publishers either go as fast as
//! the broker takes (TCP back-pressure, a QoS 1 window per publisher) or
//! offer a fixed total rate. Counting runs through a warm-up, a measured
//! window and a drain: loss is what never arrived once the flow stopped.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::conn::{Conn, Endpoint, Hello};
use crate::mqtt::{self, Packet};
use crate::stats::{now_nanos, CpuWindow, Percentiles, Samples};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    FanIn,
    FanOut,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowConfig {
    pub shape: Shape,
    pub publishers: usize,
    pub subscribers: usize,
    pub qos: u8,
    /// Payload bytes (at least the 16-byte stamp).
    pub payload: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Total messages per second offered by all publishers; None: as fast
    /// as the broker accepts them.
    pub rate: Option<f64>,
    /// QoS 1 messages a publisher keeps unacknowledged.
    pub window: usize,
    /// Longest wait for stragglers after publishing stops.
    pub drain: Duration,
    /// Prefix of the topics' second level and of the client ids, so that
    /// several flows run at once on one cluster without sharing topics or
    /// client ids (`""`: `bench/in/<n>`, `pub-<n>`, `sub-<n>`).
    #[serde(default)]
    pub tag: String,
    /// Messages each publisher sends at most (None: until the window
    /// ends). A bounded run does the same work whatever the machine's
    /// speed, so instruction counts (callgrind) compare between builds.
    pub per_publisher: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FlowResult {
    /// Messages the publishers wrote (QoS 0) or had acknowledged (QoS 1).
    pub published: u64,
    /// Deliveries every subscriber should get: published x subscribers.
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub lost_pct: f64,
    /// Deliveries per second in the measured window.
    pub delivered_per_sec: f64,
    /// Publishes per second in the measured window.
    pub published_per_sec: f64,
    pub window_secs: f64,
    /// Send to receipt, in the measured window.
    pub latency: Percentiles,
    /// (quantile, microseconds) for plots.
    pub latency_cdf: Vec<(f64, f64)>,
    pub load_cpu_cores: f64,
}

// Phases: 0 is the warm-up (the tally's initial state).
const MEASURE: u8 = 1;
const STOPPING: u8 = 2;
const DONE: u8 = 3;

#[derive(Default)]
struct Tally {
    phase: AtomicU8,
    published: AtomicU64,
    published_in_window: AtomicU64,
    delivered: AtomicU64,
    delivered_in_window: AtomicU64,
}

impl Tally {
    fn phase(&self) -> u8 {
        self.phase.load(Ordering::Relaxed)
    }
}

/// Latency samples kept per run, at most (subscribers sample 1 in n).
const SAMPLE_BUDGET: usize = 2_000_000;

pub async fn run(endpoint: &Endpoint, config: &FlowConfig) -> Result<FlowResult> {
    run_between(endpoint, endpoint, config).await
}

/// The flow with publishers on `publish_to` and subscribers on
/// `subscribe_at` (two brokers joined by a bridge; the same one otherwise).
pub async fn run_between(
    publish_to: &Endpoint,
    subscribe_at: &Endpoint,
    config: &FlowConfig,
) -> Result<FlowResult> {
    let tally = Arc::new(Tally::default());
    let tag = config.tag.as_str();
    let filter = match config.shape {
        Shape::FanIn => format!("bench/{tag}in/#"),
        Shape::FanOut => format!("bench/{tag}cmd/all"),
    };
    let topic_of = |n: usize| match config.shape {
        Shape::FanIn => format!("bench/{tag}in/{n}"),
        Shape::FanOut => format!("bench/{tag}cmd/all"),
    };
    let connect_ramp = Arc::new(Semaphore::new(64));
    let timeout = Duration::from_secs(10);

    let mut subscribers = JoinSet::new();
    let (subscribed_tx, mut subscribed_rx) = tokio::sync::mpsc::channel(config.subscribers.max(1));
    for n in 0..config.subscribers {
        let endpoint = subscribe_at.clone();
        let tally = Arc::clone(&tally);
        let ramp = Arc::clone(&connect_ramp);
        let subscribed = subscribed_tx.clone();
        let qos = config.qos;
        let stride = (config.subscribers as u64).max(1);
        let filter = filter.clone();
        let client_id = format!("{tag}sub-{n}");
        subscribers.spawn(async move {
            let hello = Hello {
                client_id: &client_id,
                clean_session: true,
                keep_alive_secs: 600,
            };
            let permit = ramp.acquire_owned().await;
            let (mut conn, _) = Conn::open(&endpoint, n, None, &hello, timeout).await?;
            mqtt::subscribe(&mut conn.out, 1, &filter, qos);
            conn.flush().await?;
            match conn.recv().await? {
                Packet::SubAck { granted, .. } if granted == qos => {}
                other => bail!("subscribe {filter} at QoS {qos}: got {other:?}"),
            }
            drop(permit);
            let _ = subscribed.send(()).await;
            subscribe_loop(conn, &tally, stride).await
        });
    }
    drop(subscribed_tx);
    for _ in 0..config.subscribers {
        if tokio::time::timeout(Duration::from_secs(60), subscribed_rx.recv())
            .await
            .ok()
            .flatten()
            .is_none()
        {
            return Err(first_failure(&mut subscribers)
                .await
                .unwrap_or_else(|| anyhow::anyhow!("subscribers did not come up in 60 s")));
        }
    }

    let mut publishers = JoinSet::new();
    let per_publisher_rate = config.rate.map(|r| r / config.publishers.max(1) as f64);
    for n in 0..config.publishers {
        let endpoint = publish_to.clone();
        let tally = Arc::clone(&tally);
        let ramp = Arc::clone(&connect_ramp);
        let config = config.clone();
        let topic = topic_of(n);
        let client_id = format!("{tag}pub-{n}");
        publishers.spawn(async move {
            let hello = Hello {
                client_id: &client_id,
                clean_session: true,
                keep_alive_secs: 600,
            };
            let permit = ramp.acquire_owned().await;
            let (conn, _) = Conn::open(&endpoint, n, None, &hello, timeout).await?;
            drop(permit);
            publish_loop(conn, &tally, &config, &topic, n as u64, per_publisher_rate).await
        });
    }

    // Warm-up, measured window, then stop publishing.
    tokio::time::sleep(config.warmup).await;
    let cpu = CpuWindow::start(std::process::id());
    let window_started = Instant::now();
    tally.phase.store(MEASURE, Ordering::Relaxed);
    match config.per_publisher {
        // A bounded run ends as soon as every message was published (QoS
        // 1: acknowledged), or at the end of the window.
        Some(share) => {
            let all = share * config.publishers as u64;
            let end = window_started + config.duration;
            while Instant::now() < end && tally.published.load(Ordering::Relaxed) < all {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        None => tokio::time::sleep(config.duration).await,
    }
    tally.phase.store(STOPPING, Ordering::Relaxed);
    let window_secs = window_started.elapsed().as_secs_f64();
    let load_cpu_cores = cpu.cores();
    let delivered_in_window = tally.delivered_in_window.load(Ordering::Relaxed);
    let published_in_window = tally.published_in_window.load(Ordering::Relaxed);

    // Publishers finish their QoS 1 windows (bounded by the drain time).
    let publishers_deadline = Instant::now() + config.drain;
    while let Ok(Some(joined)) =
        tokio::time::timeout_at(publishers_deadline.into(), publishers.join_next()).await
    {
        if let Ok(Err(error)) = joined {
            tally.phase.store(DONE, Ordering::Relaxed);
            return Err(error.context("publisher"));
        }
    }
    publishers.abort_all();

    // Drain: until everything arrived, nothing moved for a second, or the
    // drain time is up.
    let published = tally.published.load(Ordering::Relaxed);
    let expected = published * config.subscribers as u64;
    let drain_deadline = Instant::now() + config.drain;
    let mut last = (tally.delivered.load(Ordering::Relaxed), Instant::now());
    while Instant::now() < drain_deadline {
        let delivered = tally.delivered.load(Ordering::Relaxed);
        if delivered >= expected {
            break;
        }
        if delivered != last.0 {
            last = (delivered, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tally.phase.store(DONE, Ordering::Relaxed);

    let mut latency = Samples::default();
    let subscribers_deadline = Instant::now() + Duration::from_secs(5);
    while let Ok(Some(joined)) =
        tokio::time::timeout_at(subscribers_deadline.into(), subscribers.join_next()).await
    {
        if let Ok(Ok(samples)) = joined {
            latency.merge(samples);
        }
    }
    subscribers.abort_all();

    let delivered = tally.delivered.load(Ordering::Relaxed);
    let lost = expected.saturating_sub(delivered);
    Ok(FlowResult {
        published,
        expected,
        delivered,
        lost,
        lost_pct: if expected == 0 {
            0.0
        } else {
            100.0 * lost as f64 / expected as f64
        },
        delivered_per_sec: delivered_in_window as f64 / window_secs,
        published_per_sec: published_in_window as f64 / window_secs,
        window_secs,
        latency: latency.percentiles(),
        latency_cdf: latency.cdf(60),
        load_cpu_cores,
    })
}

async fn first_failure(set: &mut JoinSet<Result<Samples>>) -> Option<anyhow::Error> {
    while let Some(joined) = set.try_join_next() {
        if let Ok(Err(error)) = joined {
            return Some(error);
        }
    }
    None
}

/// Receives until the run is done, acknowledging QoS 1 deliveries; keeps
/// one latency sample in `stride` in the measured window.
async fn subscribe_loop(mut conn: Conn, tally: &Tally, stride: u64) -> Result<Samples> {
    let budget = SAMPLE_BUDGET / stride as usize;
    let mut samples = Samples::with_capacity(budget.min(1 << 20));
    let mut seen = 0u64;
    loop {
        let packet = match conn.try_recv()? {
            Some(packet) => packet,
            None => {
                conn.flush().await?;
                if tally.phase() == DONE {
                    conn.close().await;
                    return Ok(samples);
                }
                match tokio::time::timeout(Duration::from_millis(100), conn.recv()).await {
                    Ok(packet) => packet?,
                    Err(_) => continue,
                }
            }
        };
        if let Packet::Publish {
            qos,
            packet_id,
            stamp,
            ..
        } = packet
        {
            let received_at = now_nanos();
            if qos > 0 {
                mqtt::puback(&mut conn.out, packet_id);
            }
            tally.delivered.fetch_add(1, Ordering::Relaxed);
            if tally.phase() == MEASURE {
                tally.delivered_in_window.fetch_add(1, Ordering::Relaxed);
                seen += 1;
                if seen % stride == 0 && samples.len() < budget {
                    samples.push_nanos(received_at.saturating_sub(stamp));
                }
            }
        }
    }
}

/// Publishes until the run stops publishing: as fast as the broker takes
/// them, or at `rate` per second.
async fn publish_loop(
    mut conn: Conn,
    tally: &Tally,
    config: &FlowConfig,
    topic: &str,
    publisher: u64,
    rate: Option<f64>,
) -> Result<Samples> {
    /// Publishes written per flush, at most.
    const BATCH: usize = 32;
    let started = Instant::now();
    let mut sent = 0u64;
    let mut inflight = 0usize;
    let mut next_id: u16 = 1;
    let limit = config.per_publisher.unwrap_or(u64::MAX);
    loop {
        let stopping = tally.phase() >= STOPPING || sent >= limit;
        if stopping && inflight == 0 {
            break;
        }
        let mut room = if stopping {
            0
        } else {
            BATCH.min((limit - sent) as usize)
        };
        if config.qos > 0 {
            room = room.min(config.window.saturating_sub(inflight));
        }
        let due = match rate {
            Some(rate) => {
                let owed = (started.elapsed().as_secs_f64() * rate) as u64;
                owed.saturating_sub(sent) as usize
            }
            None => usize::MAX,
        };
        let count = room.min(due);
        for _ in 0..count {
            let tag = publisher << 32 | (sent & 0xffff_ffff);
            mqtt::publish(
                &mut conn.out,
                topic,
                config.qos,
                next_id,
                now_nanos(),
                tag,
                config.payload,
            );
            if config.qos > 0 {
                next_id = next_id.checked_add(1).unwrap_or(1);
                inflight += 1;
            }
            sent += 1;
        }
        if count > 0 {
            conn.flush().await?;
            if config.qos == 0 {
                count_published(tally, count as u64);
            }
        }
        // Acknowledgements: take what is buffered; wait for one when the
        // window is full or there is nothing to send yet.
        let must_wait = config.qos > 0 && (inflight >= config.window || (stopping && inflight > 0));
        let idle = count == 0 && !must_wait;
        if must_wait {
            match tokio::time::timeout(Duration::from_millis(200), conn.recv()).await {
                Ok(packet) => ack(packet?, &mut inflight, tally),
                // A bounded run waits for every acknowledgement (the
                // drain time still ends it).
                Err(_) if stopping && config.per_publisher.is_none() => break,
                Err(_) => {}
            }
        } else if idle {
            // Fixed rate and nothing due: wait for the next message's turn
            // (or an acknowledgement).
            let pause = rate.map_or(Duration::from_millis(1), |r| {
                Duration::from_secs_f64((1.0 / r).clamp(0.0002, 0.005))
            });
            if config.qos > 0 && inflight > 0 {
                if let Ok(packet) = tokio::time::timeout(pause, conn.recv()).await {
                    ack(packet?, &mut inflight, tally);
                }
            } else {
                tokio::time::sleep(pause).await;
            }
        }
        while let Some(packet) = conn.try_recv()? {
            ack(packet, &mut inflight, tally);
        }
    }
    conn.close().await;
    Ok(Samples::default())
}

fn count_published(tally: &Tally, count: u64) {
    tally.published.fetch_add(count, Ordering::Relaxed);
    if tally.phase() == MEASURE {
        tally
            .published_in_window
            .fetch_add(count, Ordering::Relaxed);
    }
}

fn ack(packet: Packet, inflight: &mut usize, tally: &Tally) {
    if let Packet::PubAck { .. } = packet {
        *inflight = inflight.saturating_sub(1);
        count_published(tally, 1);
    }
}
