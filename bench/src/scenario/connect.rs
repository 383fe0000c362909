//! Scenario 1, connect storm: `concurrency` clients at a time connect (TCP,
//! mutual TLS), send CONNECT, wait for CONNACK and close, again and again,
//! for a bounded time and count. Gives connects per second and the
//! handshake and CONNACK latencies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::conn::{Conn, Endpoint, Hello};
use crate::stats::{CpuWindow, Percentiles, Samples};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StormConfig {
    /// Connections being set up at any moment.
    pub concurrency: usize,
    /// Stop starting new connections after this long...
    pub duration: Duration,
    /// ...or after this many.
    pub max_connects: u64,
    /// One attempt's limit, TCP connect to CONNACK.
    pub attempt_timeout: Duration,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StormResult {
    pub connects: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    pub connects_per_sec: f64,
    /// TCP connect start to finished TLS handshake.
    pub handshake: Percentiles,
    /// TCP connect start to CONNACK.
    pub connack: Percentiles,
    /// Cores the load generator used meanwhile (1.0 = one core).
    pub load_cpu_cores: f64,
}

pub async fn run(endpoint: &Endpoint, config: &StormConfig) -> Result<StormResult> {
    let started = Instant::now();
    let cpu = CpuWindow::start(std::process::id());
    let deadline = started + config.duration;
    let issued = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let mut workers = Vec::new();
    for worker in 0..config.concurrency.max(1) {
        let endpoint = endpoint.clone();
        let issued = Arc::clone(&issued);
        let errors = Arc::clone(&errors);
        let first_error = Arc::clone(&first_error);
        let config = config.clone();
        workers.push(tokio::spawn(async move {
            let mut handshakes = Samples::with_capacity(4096);
            let mut connacks = Samples::with_capacity(4096);
            let mut client_id = String::new();
            while Instant::now() < deadline {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= config.max_connects {
                    break;
                }
                client_id.clear();
                client_id.push_str(&format!("storm-{worker}-{n}"));
                let hello = Hello {
                    client_id: &client_id,
                    clean_session: true,
                    keep_alive_secs: 60,
                };
                match Conn::open(&endpoint, n as usize, None, &hello, config.attempt_timeout).await
                {
                    Ok((conn, timing)) => {
                        handshakes.push(timing.handshake);
                        connacks.push(timing.connack);
                        conn.close().await;
                    }
                    Err(error) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut first) = first_error.lock() {
                            first.get_or_insert_with(|| format!("{error:#}"));
                        }
                        // A refusing broker must not turn this into a
                        // busy loop.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (handshakes, connacks)
        }));
    }
    let mut handshakes = Samples::default();
    let mut connacks = Samples::default();
    for worker in workers {
        let (h, c) = worker.await?;
        handshakes.merge(h);
        connacks.merge(c);
    }
    let seconds = started.elapsed().as_secs_f64();
    let connects = connacks.len() as u64;
    let first_error = first_error.lock().ok().and_then(|first| first.clone());
    Ok(StormResult {
        connects,
        errors: errors.load(Ordering::Relaxed),
        first_error,
        seconds,
        connects_per_sec: connects as f64 / seconds,
        handshake: handshakes.percentiles(),
        connack: connacks.percentiles(),
        load_cpu_cores: cpu.cores(),
    })
}
