//! `fleetmq-bench load`: one scenario against a broker that is already
//! running (under a profiler, say), its figures printed as JSON. It owns
//! the subcommand's arguments and the mapping onto each scenario's
//! config; it must not start brokers or write the report (`runner` does).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::conn::{self, Endpoint};
use crate::scenario;
use crate::tls::{Clients, Profile, ServerKey, Verify, Version};
use crate::{fleet_pki, pki};

/// Where a TLS scenario connects, with which PKI and TLS version (shared
/// by `load connect` and `load held`).
#[derive(Debug, clap::Args)]
pub struct TlsTarget {
    #[arg(long)]
    addr: SocketAddr,
    #[arg(long, default_value = "target/bench/pki")]
    pki: PathBuf,
    #[arg(long, value_enum, default_value = "1.2")]
    tls: Version,
}

#[derive(Debug, Subcommand)]
pub enum LoadCmd {
    /// Scenario 1 against ADDR (mutual TLS with the bench PKI in --pki).
    Connect {
        #[command(flatten)]
        target: TlsTarget,
        #[arg(long, value_enum, default_value = "ecdsa")]
        key: ServerKey,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        #[arg(long, default_value_t = 1_000_000)]
        max: u64,
        #[arg(long, value_enum, default_value = "cached")]
        verify: Verify,
        /// One-way TLS: the clients offer no certificate.
        #[arg(long)]
        one_way: bool,
        /// Plain TCP, no TLS at all.
        #[arg(long, conflicts_with = "one_way")]
        plain: bool,
        /// Loopback source addresses to connect from (1 to 250): a few,
        /// as a NAT or a balancer would look.
        #[arg(long, default_value_t = 250)]
        sources: usize,
        /// First connects: connection n presents the fleet's certificate
        /// n of this many (0: the storms' 8 certificates, cycled).
        #[arg(long, default_value_t = 0)]
        first: usize,
    },
    /// Held mutual-TLS connections against ADDR, a certificate per
    /// device: bring-up time from --sources addresses, and the broker's
    /// memory per connection.
    Held {
        #[command(flatten)]
        target: TlsTarget,
        #[arg(long, default_value_t = 10_000)]
        devices: usize,
        /// Devices connecting at once while the fleet comes up.
        #[arg(long, default_value_t = 256)]
        ramp: usize,
        #[arg(long, default_value_t = 250)]
        sources: usize,
        /// The broker's process id, to read its memory.
        #[arg(long)]
        broker_pid: Option<u32>,
        /// fleetmq's HTTP address, to read its heap counter too.
        #[arg(long)]
        metrics: Option<SocketAddr>,
        /// Seconds the fleet may take to come up.
        #[arg(long, default_value_t = 60.0)]
        limit: f64,
        /// Seconds held before the memory is read.
        #[arg(long, default_value_t = 2.0)]
        settle: f64,
    },
    /// Scenario 4 or 5 against ADDR (plain TCP).
    Flow {
        #[arg(long)]
        addr: SocketAddr,
        /// fan-in (N publishers, 1 subscriber) or fan-out (1 -> N).
        #[arg(long, default_value = "fan-in")]
        shape: String,
        #[arg(long, default_value_t = 100)]
        clients: usize,
        #[arg(long, default_value_t = 0)]
        qos: u8,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// Total publishes per second; unlimited when left out.
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long, default_value_t = 64)]
        payload: usize,
        /// Messages in all, split evenly between the publishers (each
        /// stops at its share; the run still lasts --secs at most): the
        /// same work for every build, for instruction counts.
        #[arg(long)]
        messages: Option<u64>,
    },
    /// Scenario 6's first two phases against ADDR (plain TCP): persistent
    /// sessions subscribe and go away, then QoS 1 or 2 publishes into them
    /// (no restart, no drain: a broker to profile while it commits).
    Persist {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, default_value_t = 100)]
        sessions: usize,
        /// Messages queued for each session.
        #[arg(long, default_value_t = 2_000)]
        per_session: usize,
        #[arg(long, default_value_t = 1)]
        publishers: usize,
        #[arg(long, default_value_t = 32)]
        window: usize,
        #[arg(long, default_value_t = 1)]
        qos: u8,
        #[arg(long, default_value_t = 64)]
        payload: usize,
    },
}

pub fn load(scenario: LoadCmd) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let json = match scenario {
            LoadCmd::Connect {
                target: TlsTarget { addr, pki, tls },
                key,
                concurrency,
                secs,
                max,
                verify,
                one_way,
                plain,
                sources,
                first,
            } => {
                conn::use_source_addresses(sources);
                let pki = pki::Pki::load_or_create(&pki)?;
                let profile = Profile {
                    version: tls,
                    server_key: key,
                    verify,
                };
                let clients = if first > 0 {
                    let fleet = fleet_pki::FleetPool::load_or_create(&pki, first)?;
                    Clients::per_device(&pki, profile, fleet.first(first)?)?
                } else {
                    Clients::new(&pki, profile)?
                };
                let tls = match (plain, one_way) {
                    (true, _) => None,
                    (false, true) => Some(clients.one_way()),
                    (false, false) => Some(clients),
                };
                let endpoint = Endpoint { addr, tls };
                let config = scenario::connect::StormConfig {
                    concurrency,
                    duration: Duration::from_secs_f64(secs),
                    max_connects: max,
                    attempt_timeout: Duration::from_secs(10),
                };
                serde_json::to_string_pretty(&scenario::connect::run(&endpoint, &config).await?)?
            }
            LoadCmd::Held {
                target: TlsTarget { addr, pki, tls },
                devices,
                ramp,
                sources,
                broker_pid,
                metrics,
                limit,
                settle,
            } => {
                let sources = conn::use_source_addresses(sources);
                let pki = pki::Pki::load_or_create(&pki)?;
                let profile = Profile {
                    version: tls,
                    server_key: ServerKey::Ecdsa,
                    verify: Verify::Cached,
                };
                // A certificate per device, as in the runner's fleets.
                let fleet = fleet_pki::FleetPool::load_or_create(&pki, devices)?;
                let endpoint = Endpoint {
                    addr,
                    tls: Some(Clients::per_device(&pki, profile, fleet.first(devices)?)?),
                };
                let config = scenario::held::HeldConfig {
                    fleet: scenario::held::fleet_config(devices, ramp),
                    broker_pid,
                    metrics,
                    limit: Duration::from_secs_f64(limit),
                    settle: Duration::from_secs_f64(settle),
                };
                serde_json::to_string_pretty(
                    &scenario::held::run(&endpoint, &config, sources).await?,
                )?
            }
            LoadCmd::Flow {
                addr,
                shape,
                clients,
                qos,
                secs,
                rate,
                payload,
                messages,
            } => {
                let shape = match shape.as_str() {
                    "fan-in" => scenario::flow::Shape::FanIn,
                    "fan-out" => scenario::flow::Shape::FanOut,
                    other => bail!("--shape is fan-in or fan-out, not {other}"),
                };
                let (publishers, subscribers) = match shape {
                    scenario::flow::Shape::FanIn => (clients, 1),
                    scenario::flow::Shape::FanOut => (1, clients),
                };
                let config = scenario::flow::FlowConfig {
                    shape,
                    publishers,
                    subscribers,
                    qos,
                    payload,
                    warmup: Duration::from_secs(1),
                    duration: Duration::from_secs_f64(secs),
                    rate,
                    window: 32,
                    drain: Duration::from_secs(5),
                    tag: String::new(),
                    per_publisher: messages.map(|m| m.div_ceil(publishers.max(1) as u64)),
                };
                let endpoint = Endpoint { addr, tls: None };
                let mut result = scenario::flow::run(&endpoint, &config).await?;
                result.latency_cdf.clear();
                serde_json::to_string_pretty(&result)?
            }
            LoadCmd::Persist {
                addr,
                sessions,
                per_session,
                publishers,
                window,
                qos,
                payload,
            } => {
                let config = scenario::persist::PersistConfig {
                    sessions,
                    per_session,
                    payload,
                    window,
                    publishers,
                    qos,
                    phase_limit: Duration::from_secs(120),
                };
                let endpoint = Endpoint { addr, tls: None };
                scenario::persist::prepare(&endpoint, &config).await?;
                let mut result = scenario::persist::PersistResult::default();
                scenario::persist::publish(&endpoint, &config, &mut result).await?;
                serde_json::to_string_pretty(&result)?
            }
        };
        println!("{json}");
        Ok(())
    })
}
