//! Scenarios 2 and 3: a fleet of devices that each hold one mutual-TLS
//! connection and, like firmware, reconnect with exponential backoff and
//! jitter whenever it drops.
//!
//! The runner drives the fleet: [`Fleet::launch`] and
//! [`Fleet::wait_all_connected`] give the time to bring N devices up
//! (scenario 3 reads the broker's memory meanwhile); restarting the broker
//! or [`Fleet::drop_all`] (a network blip, broker untouched) and waiting
//! again give the reconnect storm of scenario 2.
//!
//! Device i connects with the endpoint's `Clients::for_device(i)`: the
//! runner and `load held` give a fleet a certificate per device
//! ([`crate::fleet_pki`]), so a broker that caches verified chains still
//! verifies every device's chain once per start, as in a lab.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::conn::{Conn, Endpoint, Hello};
use crate::stats::{Percentiles, Samples};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetConfig {
    pub devices: usize,
    /// Each device keeps its TLS session and offers it when reconnecting.
    pub resume: bool,
    /// Devices connecting at once while the fleet first comes up (a
    /// ramp; reconnects after a drop are not limited, only jittered).
    pub launch_concurrency: usize,
    /// One attempt's limit, TCP connect to CONNACK (ESP-IDF's default
    /// network timeout is 10 s).
    pub attempt_timeout: Duration,
    /// A dropped device waits a uniform 0..first_jitter before its first
    /// attempt...
    pub first_jitter: Duration,
    /// ...then, after failure n, min(cap, base * 2^n) times a uniform
    /// 0.5..1 ("equal jitter").
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

/// What the runner tells every device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Hold,
    /// Close the connection now and reconnect (the number makes each
    /// drop a new order).
    Drop(u64),
    Stop,
}

/// Counters the devices update.
#[derive(Default)]
struct Tally {
    connected: AtomicUsize,
    connacks: AtomicU64,
    resumed: AtomicU64,
    failures: AtomicU64,
}

pub struct Fleet {
    config: FleetConfig,
    tally: Arc<Tally>,
    orders: watch::Sender<Order>,
    tasks: JoinSet<Samples>,
    drops: u64,
}

/// One bring-up or reconnect wave, as the report shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Wave {
    pub devices: usize,
    /// Until every device had its CONNACK, from the wave's start.
    pub all_connacked_secs: f64,
    pub connacks: u64,
    pub resumed: u64,
    pub failed_attempts: u64,
    /// Per device, from its (first) attempt of this wave to CONNACK.
    pub connack: Percentiles,
}

impl Fleet {
    /// Starts every device; they connect through a ramp of
    /// `launch_concurrency` at a time.
    pub fn launch(endpoint: &Endpoint, config: &FleetConfig) -> Fleet {
        let tally = Arc::new(Tally::default());
        let (orders, _) = watch::channel(Order::Hold);
        let ramp = Arc::new(Semaphore::new(config.launch_concurrency.max(1)));
        let mut tasks = JoinSet::new();
        for device in 0..config.devices {
            let device_task = Device {
                index: device,
                endpoint: endpoint.clone(),
                config: config.clone(),
                tally: Arc::clone(&tally),
                orders: orders.subscribe(),
                client_id: format!("fleet-{device}"),
            };
            let ramp = Arc::clone(&ramp);
            tasks.spawn(device_task.run(ramp));
        }
        Fleet {
            config: config.clone(),
            tally,
            orders,
            tasks,
            drops: 0,
        }
    }

    pub fn connected(&self) -> usize {
        self.tally.connected.load(Ordering::Relaxed)
    }

    fn counters(&self) -> (u64, u64, u64) {
        (
            self.tally.connacks.load(Ordering::Relaxed),
            self.tally.resumed.load(Ordering::Relaxed),
            self.tally.failures.load(Ordering::Relaxed),
        )
    }

    /// A mark to measure a wave from: now, and the counters now.
    pub fn mark(&self) -> WaveMark {
        let (connacks, resumed, failures) = self.counters();
        WaveMark {
            at: Instant::now(),
            connacks,
            resumed,
            failures,
        }
    }

    /// Attempts that failed since `mark`.
    pub fn failed_since(&self, mark: &WaveMark) -> u64 {
        self.counters().2 - mark.failures
    }

    /// Waits until every device is connected and has CONNACKed since
    /// `mark`, at most `limit`.
    pub async fn wait_all_connected(&self, mark: &WaveMark, limit: Duration) -> Result<Wave> {
        let devices = self.config.devices;
        loop {
            let (connacks, resumed, failures) = self.counters();
            if self.connected() >= devices && connacks - mark.connacks >= devices as u64 {
                return Ok(Wave {
                    devices,
                    all_connacked_secs: mark.at.elapsed().as_secs_f64(),
                    connacks: connacks - mark.connacks,
                    resumed: resumed - mark.resumed,
                    failed_attempts: failures - mark.failures,
                    connack: Percentiles::default(),
                });
            }
            if mark.at.elapsed() > limit {
                bail!(
                    "{} of {devices} devices connected after {limit:?} ({} failed attempts)",
                    self.connected(),
                    failures - mark.failures
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until no device is connected (the broker went away), at most
    /// `limit`.
    pub async fn wait_all_dropped(&self, limit: Duration) -> Result<()> {
        let started = Instant::now();
        while self.connected() > 0 {
            if started.elapsed() > limit {
                bail!(
                    "{} devices still connected after {limit:?}",
                    self.connected()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Every device closes its connection and reconnects, as after a
    /// network outage: the broker keeps its TLS session caches.
    pub fn drop_all(&mut self) {
        self.drops += 1;
        let _ = self.orders.send(Order::Drop(self.drops));
    }

    /// Closes every connection and ends the devices (bounded); returns
    /// the per-device CONNACK times of every connect they made.
    pub async fn stop(mut self) -> Samples {
        let _ = self.orders.send(Order::Stop);
        let mut samples = Samples::default();
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Ok(Some(joined)) =
            tokio::time::timeout_at(deadline.into(), self.tasks.join_next()).await
        {
            if let Ok(device_samples) = joined {
                samples.merge(device_samples);
            }
        }
        self.tasks.abort_all();
        samples
    }
}

/// Where a wave starts from.
#[derive(Debug, Clone, Copy)]
pub struct WaveMark {
    pub at: Instant,
    connacks: u64,
    resumed: u64,
    failures: u64,
}

struct Device {
    index: usize,
    endpoint: Endpoint,
    config: FleetConfig,
    tally: Arc<Tally>,
    orders: watch::Receiver<Order>,
    client_id: String,
}

impl Device {
    async fn run(mut self, ramp: Arc<Semaphore>) -> Samples {
        let mut connacks = Samples::default();
        let tls_config = match (&self.endpoint.tls, self.config.resume) {
            (Some(clients), true) => Some(clients.resuming(self.index)),
            _ => None,
        };
        let client_id = self.client_id.clone();
        let hello = Hello {
            client_id: &client_id,
            clean_session: true,
            keep_alive_secs: 600,
        };
        let mut permit = ramp.acquire_owned().await.ok();
        let mut failures = 0u32;
        loop {
            if *self.orders.borrow() == Order::Stop {
                return connacks;
            }
            let attempt = Conn::open(
                &self.endpoint,
                self.index,
                tls_config.clone(),
                &hello,
                self.config.attempt_timeout,
            )
            .await;
            let mut conn = match attempt {
                Ok((conn, timing)) => {
                    // Through the ramp: the next device may start.
                    drop(permit.take());
                    failures = 0;
                    connacks.push(timing.connack);
                    self.tally.connacks.fetch_add(1, Ordering::Relaxed);
                    if timing.resumed {
                        self.tally.resumed.fetch_add(1, Ordering::Relaxed);
                    }
                    self.tally.connected.fetch_add(1, Ordering::Relaxed);
                    conn
                }
                Err(_) => {
                    self.tally.failures.fetch_add(1, Ordering::Relaxed);
                    let backoff = self
                        .config
                        .backoff_base
                        .saturating_mul(1 << failures.min(16))
                        .min(self.config.backoff_cap)
                        .mul_f64(0.5 + fastrand::f64() * 0.5);
                    failures += 1;
                    if self.sleep_unless_stopped(backoff).await {
                        return connacks;
                    }
                    continue;
                }
            };
            self.orders.mark_unchanged();
            // Hold until the broker goes away or the runner says otherwise.
            let stop = tokio::select! {
                _ = conn.recv_until_closed() => false,
                _ = self.orders.changed() => *self.orders.borrow() == Order::Stop,
            };
            self.tally.connected.fetch_sub(1, Ordering::Relaxed);
            conn.close().await;
            if stop {
                return connacks;
            }
            let jitter = self.config.first_jitter.mul_f64(fastrand::f64());
            if self.sleep_unless_stopped(jitter).await {
                return connacks;
            }
        }
    }

    /// Sleeps `how_long`; true when a stop order came meanwhile.
    async fn sleep_unless_stopped(&mut self, how_long: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + how_long;
        loop {
            if *self.orders.borrow() == Order::Stop {
                return true;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return false,
                changed = self.orders.changed() => {
                    if changed.is_err() {
                        return true;
                    }
                }
            }
        }
    }
}
