//! The side-by-side runner: starts each broker in turn with equivalent
//! configurations, pinned to core 0 while the load generator runs on core
//! 1 (or both on both cores where a scenario says so), runs every scenario
//! with repetitions, and keeps one [`Record`] per measurement.
//!
//! Brokers alternate within each repetition (fleetmq, Mosquitto, rumqttd,
//! then again), so slow drift of the machine spreads over all of them.
//! The connect storms carry a crypto limit measured just before them
//! ([`paired`]).

mod bridge_runs;
pub mod broker;
pub mod cluster;
mod nat_runs;
pub mod nats;
pub mod paired;
mod persist_runs;
pub mod plan;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::case::Case;
use crate::conn::Endpoint;
use crate::fleet_pki::FleetPool;
use crate::pki::Pki;
use crate::scenario::connect::{self, StormConfig};
use crate::scenario::fleet::{Fleet, FleetConfig};
use crate::scenario::flow::{self, FlowConfig, FlowResult, Shape};
use crate::stats::{median, wait_for_quiet, Interference, Percentiles};
use crate::tls::{Clients, Profile, ServerKey, Verify, Version};
use bridge_runs::bridges;
use broker::{BrokerSetup, Kind, Placement, Ports, Running};
use plan::Plan;

/// One measurement of one broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub broker: Kind,
    pub rep: usize,
    /// Which measurement, e.g. `connect/tls12-ecdsa/1core`.
    pub case: String,
    /// Named figures (see the report's table for units).
    pub figures: BTreeMap<String, f64>,
    /// The scenario's whole result (latency distributions and the like).
    pub detail: serde_json::Value,
    pub error: Option<String>,
}

/// What the scenarios may be restricted to (`--only`).
pub const SCENARIOS: &[&str] = &[
    "connect", "fleet", "held-max", "nat", "flow", "latency", "persist", "bridge",
];

pub struct Runner {
    pub plan: Plan,
    pub setups: Vec<BrokerSetup>,
    pub pki: Pki,
    /// A certificate per device for the fleet rows and the first-connects
    /// storm, as many as the plan's largest fleet.
    pub fleet: FleetPool,
    pub verify: Verify,
    pub only: Vec<String>,
    /// Debian's Mosquitto, the remote of the bridge scenario (None: the
    /// bridge cases fail with a reason).
    pub remote_bin: Option<PathBuf>,
    pub records: Vec<Record>,
    /// Seconds per algorithm of the `openssl speed` run before each
    /// broker's connect storms in each repetition (None: no paired crypto
    /// limit, see [`paired`]).
    pub crypto_seconds: Option<u32>,
    /// Whether two cores are there to separate broker and load.
    pinned: bool,
}

/// Adds `<rate>_per_broker_cpu`: the rate divided by the broker's cores,
/// what one fully available core would do at this efficiency. It tells the
/// brokers apart even when other work on a shared machine took CPU.
fn per_cpu(figures: &mut BTreeMap<String, f64>, rate: &str, broker_cores: f64) {
    if let Some(value) = figures.get(rate).copied() {
        if broker_cores > 0.05 {
            figures.insert(format!("{rate}_per_broker_cpu"), value / broker_cores);
        }
    }
}

fn ms(us: f64) -> f64 {
    us / 1000.0
}

fn pct(p: &Percentiles, prefix: &str, figures: &mut BTreeMap<String, f64>) {
    figures.insert(format!("{prefix}_p50_ms"), ms(p.p50_us));
    figures.insert(format!("{prefix}_p99_ms"), ms(p.p99_us));
}

impl Runner {
    pub fn new(
        plan: Plan,
        setups: Vec<BrokerSetup>,
        pki: Pki,
        fleet: FleetPool,
        verify: Verify,
    ) -> Runner {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Runner {
            plan,
            setups,
            pki,
            fleet,
            verify,
            only: Vec::new(),
            remote_bin: None,
            records: Vec::new(),
            crypto_seconds: None,
            pinned: cores >= 2,
        }
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }

    fn broker_core(&self) -> Placement {
        if self.pinned {
            Placement::Core(0)
        } else {
            Placement::Any
        }
    }

    fn load_core(&self) -> Placement {
        if self.pinned {
            Placement::Core(1)
        } else {
            Placement::Any
        }
    }

    /// Runs every wanted scenario for every broker, `plan.reps` times,
    /// then the fixed-rate latency runs.
    pub fn run(&mut self) -> Result<()> {
        let setups = self.setups.clone();
        for rep in 0..self.plan.reps {
            for setup in &setups {
                eprintln!("== rep {} of {}: {}", rep + 1, self.plan.reps, setup.kind);
                if self.wants("connect") {
                    self.storms(setup, rep);
                }
                if self.wants("fleet") && rep < self.plan.fleet_reps {
                    self.fleet(setup, rep);
                }
                if self.wants("held-max")
                    && rep < self.plan.fleet_max_reps
                    && self.plan.fleet_max_devices > 0
                {
                    self.held_max(setup, rep);
                }
                if self.wants("nat") && rep < self.plan.fleet_reps {
                    self.held_behind_nat(setup, rep);
                }
                if self.wants("flow") {
                    self.flows(setup, rep);
                }
                if self.wants("persist") {
                    self.persist(setup, rep);
                }
                if self.wants("bridge") && bridges(setup.kind) {
                    let outcome = self.bridge_run(setup, self.bridge_config(None));
                    self.record(setup, rep, Case::BridgeQos1Max, outcome);
                }
            }
        }
        if self.wants("latency") {
            let (fan_in_rate, fan_out_rate) = self.latency_rates();
            for rep in 0..self.plan.reps {
                for setup in &setups {
                    eprintln!("== latency rep {}: {}", rep + 1, setup.kind);
                    self.latency(setup, rep, fan_in_rate, fan_out_rate);
                }
            }
        }
        if self.wants("bridge") {
            let rate = self.bridge_rate();
            for rep in 0..self.plan.reps {
                for setup in setups.iter().filter(|s| bridges(s.kind)) {
                    eprintln!("== bridge latency rep {}: {}", rep + 1, setup.kind);
                    let outcome = self.bridge_run(setup, self.bridge_config(Some(rate)));
                    self.record(setup, rep, Case::BridgeQos1FixedRate, outcome);
                }
            }
        }
        Ok(())
    }

    fn record(&mut self, setup: &BrokerSetup, rep: usize, case: Case, outcome: Result<Outcome>) {
        let record = match outcome {
            Ok(outcome) => {
                let summary: Vec<String> = outcome
                    .figures
                    .iter()
                    .take(4)
                    .map(|(k, v)| format!("{k}={v:.1}"))
                    .collect();
                eprintln!("   {case}: {}", summary.join(" "));
                Record {
                    broker: setup.kind,
                    rep,
                    case: case.name().to_string(),
                    figures: outcome.figures,
                    detail: outcome.detail,
                    error: None,
                }
            }
            Err(error) => {
                eprintln!("   {case}: FAILED: {error:#}");
                Record {
                    broker: setup.kind,
                    rep,
                    case: case.name().to_string(),
                    figures: BTreeMap::new(),
                    detail: serde_json::Value::Null,
                    error: Some(format!("{error:#}")),
                }
            }
        };
        self.records.push(record);
    }

    fn profile(&self, version: Version, server_key: ServerKey) -> Profile {
        Profile {
            version,
            server_key,
            verify: self.verify,
        }
    }

    /// Mutual TLS with the storms' few device certificates, cycled.
    fn tls_endpoint(&self, port: u16, version: Version, server_key: ServerKey) -> Result<Endpoint> {
        let profile = self.profile(version, server_key);
        Ok(Endpoint {
            addr: Ports::addr(port),
            tls: Some(Clients::new(&self.pki, profile)?),
        })
    }

    /// Mutual TLS 1.2 to the ECDSA listener, device i with the fleet's
    /// certificate i, for `devices` devices (at most the pool).
    fn fleet_endpoint(&self, port: u16, devices: usize) -> Result<Endpoint> {
        let profile = self.profile(Version::Tls12, ServerKey::Ecdsa);
        let identities = self.fleet.first(devices)?;
        Ok(Endpoint {
            addr: Ports::addr(port),
            tls: Some(Clients::per_device(&self.pki, profile, identities)?),
        })
    }

    /// Scenario 1 in its four variants, the first of them again with a
    /// new device certificate per connection (and one-way TLS and plain
    /// TCP), the crypto-priced ones paired with a limit measured just
    /// before.
    fn storms(&mut self, setup: &BrokerSetup, rep: usize) {
        let limit = self.paired_limit();
        let variants = [
            (
                Case::Tls12Ecdsa1Core,
                Version::Tls12,
                ServerKey::Ecdsa,
                true,
            ),
            (
                Case::Tls12EcdsaFirst1Core,
                Version::Tls12,
                ServerKey::Ecdsa,
                true,
            ),
            (Case::Tls12Rsa1Core, Version::Tls12, ServerKey::Rsa, true),
            (
                Case::Tls13Ecdsa1Core,
                Version::Tls13,
                ServerKey::Ecdsa,
                true,
            ),
            (
                Case::Tls12Ecdsa2Cores,
                Version::Tls12,
                ServerKey::Ecdsa,
                false,
            ),
        ];
        for (case, version, key, one_core) in variants {
            let port = match key {
                ServerKey::Ecdsa => setup.ports.ecdsa,
                ServerKey::Rsa => setup.ports.rsa,
            };
            let outcome = if case == Case::Tls12EcdsaFirst1Core {
                self.first_connects_endpoint(port).and_then(|endpoint| {
                    let certs = endpoint.tls.as_ref().map_or(0, Clients::len);
                    let mut outcome = self.storm(setup, endpoint, one_core)?;
                    outcome.count_reused_certs(certs);
                    Ok(outcome)
                })
            } else {
                self.tls_endpoint(port, version, key)
                    .and_then(|endpoint| self.storm(setup, endpoint, one_core))
            }
            .map(|mut outcome| {
                paired::add(&mut outcome.figures, case, limit.as_ref());
                outcome
            });
            self.record(setup, rep, case, outcome);
        }
        // Issue 22: one-way TLS and plain TCP, broker on one core.
        if setup.kind.has_one_way() {
            let outcome = self
                .tls_endpoint(setup.ports.oneway, Version::Tls12, ServerKey::Ecdsa)
                .map(|endpoint| Endpoint {
                    addr: endpoint.addr,
                    tls: endpoint.tls.map(Clients::one_way),
                })
                .and_then(|endpoint| self.storm(setup, endpoint, true));
            self.record(setup, rep, Case::Tls12EcdsaOneWay1Core, outcome);
        }
        let plain = Endpoint {
            addr: Ports::addr(setup.ports.plain),
            tls: None,
        };
        let outcome = self.storm(setup, plain, true);
        self.record(setup, rep, Case::Plain1Core, outcome);
    }

    /// The first-connects storm's endpoint: connection n presents the
    /// fleet's certificate n, cycling over as many as the storm may make
    /// (the whole pool in the full plan; a storm making more wraps, which
    /// its `reused_certs` figure counts).
    fn first_connects_endpoint(&self, port: u16) -> Result<Endpoint> {
        let most = usize::try_from(self.plan.storm_max_connects).unwrap_or(usize::MAX);
        self.fleet_endpoint(port, self.fleet.len().min(most))
    }

    fn storm(&self, setup: &BrokerSetup, endpoint: Endpoint, one_core: bool) -> Result<Outcome> {
        let config = StormConfig {
            concurrency: self.plan.storm_concurrency,
            duration: Plan::secs(self.plan.storm_secs),
            max_connects: self.plan.storm_max_connects,
            attempt_timeout: Duration::from_secs(10),
        };
        let (broker_place, load_place) = if one_core {
            (self.broker_core(), self.load_core())
        } else {
            (Placement::Any, Placement::Any)
        };
        let setup = setup.clone();
        on(
            load_place,
            Plan::secs(self.plan.quiet_wait_secs),
            async move {
                let broker = setup.start(broker_place, false).await?;
                let cpu = Interference::start(broker.pid);
                let result = connect::run(&endpoint, &config).await;
                let (broker_cpu, _, other_cpu) = cpu.cores();
                stop(broker).await;
                let result = result?;
                let mut figures = BTreeMap::new();
                figures.insert("connects_per_sec".into(), result.connects_per_sec);
                figures.insert("errors".into(), result.errors as f64);
                pct(&result.handshake, "handshake", &mut figures);
                pct(&result.connack, "connack", &mut figures);
                figures.insert("load_cpu_cores".into(), result.load_cpu_cores);
                figures.insert("broker_cpu_cores".into(), broker_cpu);
                figures.insert("other_cpu_cores".into(), other_cpu);
                per_cpu(&mut figures, "connects_per_sec", broker_cpu);
                if result.connects == 0 {
                    anyhow::bail!(
                        "no connection succeeded: {}",
                        result.first_error.as_deref().unwrap_or("no error recorded")
                    );
                }
                Ok(Outcome::new(figures, &result))
            },
        )
    }

    fn fleet_config(&self, devices: usize, resume: bool) -> FleetConfig {
        FleetConfig {
            devices,
            resume,
            launch_concurrency: self.plan.fleet_launch_concurrency,
            attempt_timeout: Duration::from_secs(10),
            first_jitter: Duration::from_secs(1),
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(8),
        }
    }

    /// Scenarios 2 and 3 at `fleet_devices`: bring-up, memory, broker
    /// restart and network drop, without and with TLS resumption.
    fn fleet(&mut self, setup: &BrokerSetup, rep: usize) {
        for resume in [false, true] {
            let case = if resume {
                Case::FleetResumption
            } else {
                Case::FleetFullHandshakes
            };
            let outcome = self.fleet_run(setup, resume);
            self.record(setup, rep, case, outcome);
        }
    }

    fn fleet_run(&self, setup: &BrokerSetup, resume: bool) -> Result<Outcome> {
        let endpoint = self.fleet_endpoint(setup.ports.ecdsa, self.plan.fleet_devices)?;
        let config = self.fleet_config(self.plan.fleet_devices, resume);
        let setup = setup.clone();
        let broker_place = self.broker_core();
        let limit = Plan::secs(self.plan.fleet_wait_secs);
        self.on_load_core(async move {
            let mut figures = BTreeMap::new();
            let first = setup.start(broker_place, false).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let idle_kib = first.rss_kib().unwrap_or(0);
            // The broker of the moment (None between stop and start).
            let mut broker = Some(first);
            let mut fleet = Fleet::launch(&endpoint, &config);
            let outcome = async {
                let mark = fleet.mark();
                let up = fleet.wait_all_connected(&mark, limit).await?;
                figures.insert("bringup_secs".into(), up.all_connacked_secs);
                tokio::time::sleep(Duration::from_secs(1)).await;
                let held_kib = broker.as_ref().and_then(Running::rss_kib).unwrap_or(0);
                figures.insert(
                    "rss_per_conn_kib".into(),
                    held_kib.saturating_sub(idle_kib) as f64 / config.devices as f64,
                );
                figures.insert("rss_idle_mib".into(), idle_kib as f64 / 1024.0);

                // The broker restarts under the fleet.
                let killed = Instant::now();
                if let Some(running) = broker.take() {
                    stop(running).await;
                }
                fleet.wait_all_dropped(Duration::from_secs(30)).await?;
                let mark = fleet.mark();
                broker = Some(setup.start(broker_place, false).await?);
                let ready = mark.at.elapsed().as_secs_f64();
                let back = fleet.wait_all_connected(&mark, limit).await?;
                figures.insert("restart_all_secs".into(), back.all_connacked_secs - ready);
                figures.insert(
                    "restart_from_kill_secs".into(),
                    killed.elapsed().as_secs_f64(),
                );
                figures.insert("restart_resumed".into(), back.resumed as f64);
                figures.insert(
                    "restart_failed_attempts".into(),
                    back.failed_attempts as f64,
                );

                // A network blip: every device drops and comes back while
                // the broker (and its TLS session caches) stays.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let mark = fleet.mark();
                fleet.drop_all();
                let back_after_drop = fleet.wait_all_connected(&mark, limit).await?;
                figures.insert("drop_all_secs".into(), back_after_drop.all_connacked_secs);
                figures.insert("drop_resumed".into(), back_after_drop.resumed as f64);
                Ok::<_, anyhow::Error>(serde_json::json!({
                    "bringup": up, "restart": back, "drop": back_after_drop,
                }))
            }
            .await;
            let samples = fleet.stop().await;
            if let Some(running) = broker.take() {
                stop(running).await;
            }
            let detail = outcome?;
            let mut samples = samples;
            pct(&samples.percentiles(), "connack", &mut figures);
            Ok(Outcome { figures, detail })
        })
    }

    /// Scenario 3 at the largest fleet this machine allows.
    fn held_max(&mut self, setup: &BrokerSetup, rep: usize) {
        let outcome = self.held_max_run(setup);
        self.record(setup, rep, Case::HeldMax, outcome);
    }

    fn held_max_run(&self, setup: &BrokerSetup) -> Result<Outcome> {
        let endpoint = self.fleet_endpoint(setup.ports.ecdsa, self.plan.fleet_max_devices)?;
        let config = self.fleet_config(self.plan.fleet_max_devices, false);
        let limit = Plan::secs(self.plan.fleet_wait_secs * 1.5);
        let setup = setup.clone();
        let broker_place = self.broker_core();
        self.on_load_core(async move {
            let broker = setup.start(broker_place, false).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let idle_kib = broker.rss_kib().unwrap_or(0);
            let fleet = Fleet::launch(&endpoint, &config);
            let mark = fleet.mark();
            let up = fleet.wait_all_connected(&mark, limit).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let held_kib = broker.rss_kib().unwrap_or(0);
            fleet.stop().await;
            stop(broker).await;
            let up = up?;
            let mut figures = BTreeMap::new();
            figures.insert("devices".into(), config.devices as f64);
            figures.insert("bringup_secs".into(), up.all_connacked_secs);
            figures.insert(
                "rss_per_conn_kib".into(),
                held_kib.saturating_sub(idle_kib) as f64 / config.devices as f64,
            );
            figures.insert("rss_total_mib".into(), held_kib as f64 / 1024.0);
            Ok(Outcome::new(figures, &up))
        })
    }

    fn flow_config(&self, shape: Shape, qos: u8, rate: Option<f64>) -> FlowConfig {
        let (publishers, subscribers) = match shape {
            Shape::FanIn => (self.plan.fan_in_publishers, 1),
            Shape::FanOut => (1, self.plan.fan_out_subscribers),
        };
        FlowConfig {
            shape,
            publishers,
            subscribers,
            qos,
            payload: self.plan.payload,
            warmup: Plan::secs(self.plan.flow_warmup_secs),
            duration: Plan::secs(self.plan.flow_secs),
            rate,
            window: self.plan.qos1_window,
            drain: Plan::secs(self.plan.flow_drain_secs),
            tag: String::new(),
            per_publisher: None,
        }
    }

    /// Scenarios 4 and 5 at full speed.
    fn flows(&mut self, setup: &BrokerSetup, rep: usize) {
        for (case, shape, qos) in [
            (Case::FanInQos0Max, Shape::FanIn, 0),
            (Case::FanInQos1Max, Shape::FanIn, 1),
            (Case::FanOutQos0Max, Shape::FanOut, 0),
            (Case::FanOutQos1Max, Shape::FanOut, 1),
        ] {
            let outcome = self.flow_run(setup, self.flow_config(shape, qos, None));
            self.record(setup, rep, case, outcome);
        }
    }

    fn flow_run(&self, setup: &BrokerSetup, config: FlowConfig) -> Result<Outcome> {
        let endpoint = Endpoint {
            addr: Ports::addr(setup.ports.plain),
            tls: None,
        };
        let setup = setup.clone();
        let broker_place = self.broker_core();
        self.on_load_core(async move {
            let broker = setup.start(broker_place, false).await?;
            let cpu = Interference::start(broker.pid);
            let result = flow::run(&endpoint, &config).await;
            let (broker_cpu, _, other_cpu) = cpu.cores();
            stop(broker).await;
            let result = result?;
            let figures = flow_figures(&result, broker_cpu, other_cpu);
            if result.delivered == 0 {
                anyhow::bail!("nothing was delivered");
            }
            Ok(Outcome::new(figures, &result))
        })
    }

    /// Publish rates for the latency runs: a share of Mosquitto's median
    /// peak (so every broker is measured at the same offered load).
    fn latency_rates(&self) -> (f64, f64) {
        // Mosquitto's peak is what it delivered (under overload it takes
        // more than it delivers and drops the rest): in publishes per
        // second, deliveries divided by the subscribers.
        let peak = |case: Case, subscribers: usize| {
            let values: Vec<f64> = self
                .records
                .iter()
                .filter(|r| r.broker == Kind::Mosquitto && r.case == case.name())
                .filter_map(|r| r.figures.get("delivered_per_sec").copied())
                .collect();
            let m = median(&values) / subscribers.max(1) as f64;
            (m.is_finite() && m > 0.0).then_some(m * self.plan.latency_rate_share)
        };
        (
            peak(Case::FanInQos0Max, 1).unwrap_or(self.plan.fallback_fan_in_rate),
            peak(Case::FanOutQos0Max, self.plan.fan_out_subscribers)
                .unwrap_or(self.plan.fallback_fan_out_rate),
        )
    }

    fn latency(&mut self, setup: &BrokerSetup, rep: usize, fan_in_rate: f64, fan_out_rate: f64) {
        for (case, shape, qos, rate) in [
            (Case::FanInQos0FixedRate, Shape::FanIn, 0, fan_in_rate),
            (Case::FanOutQos0FixedRate, Shape::FanOut, 0, fan_out_rate),
            (
                Case::FanInQos1FixedRate,
                Shape::FanIn,
                1,
                self.plan.qos1_fixed_rate,
            ),
        ] {
            let outcome = self.flow_run(setup, self.flow_config(shape, qos, Some(rate)));
            self.record(setup, rep, case, outcome);
        }
    }
}

impl Runner {
    /// Runs `task` on the load generator's core, after waiting for the
    /// machine to calm down (how every one-core measurement starts).
    fn on_load_core<T, F>(&self, task: F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        on(
            self.load_core(),
            Plan::secs(self.plan.quiet_wait_secs),
            task,
        )
    }
}

/// The figures of a flow run (scenarios 4, 5 and 7): rates, loss,
/// latency percentiles, and who used how much CPU.
fn flow_figures(result: &FlowResult, broker_cpu: f64, other_cpu: f64) -> BTreeMap<String, f64> {
    let mut figures = BTreeMap::new();
    figures.insert("delivered_per_sec".into(), result.delivered_per_sec);
    figures.insert("published_per_sec".into(), result.published_per_sec);
    figures.insert("lost_pct".into(), result.lost_pct);
    pct(&result.latency, "latency", &mut figures);
    figures.insert("load_cpu_cores".into(), result.load_cpu_cores);
    figures.insert("broker_cpu_cores".into(), broker_cpu);
    figures.insert("other_cpu_cores".into(), other_cpu);
    per_cpu(&mut figures, "delivered_per_sec", broker_cpu);
    figures
}

/// A measurement's figures and the scenario's whole result.
struct Outcome {
    figures: BTreeMap<String, f64>,
    detail: serde_json::Value,
}

impl Outcome {
    fn new(figures: BTreeMap<String, f64>, detail: &impl Serialize) -> Outcome {
        Outcome {
            figures,
            detail: serde_json::to_value(detail).unwrap_or(serde_json::Value::Null),
        }
    }

    /// A storm whose connection n presented certificate n modulo `certs`:
    /// `device_certs`, and `reused_certs`, the attempts that presented
    /// one already presented in the storm (0: every connect a first).
    fn count_reused_certs(&mut self, certs: usize) {
        let count = |name: &str| self.detail.get(name).and_then(|v| v.as_u64());
        let attempts = count("connects").unwrap_or(0) + count("errors").unwrap_or(0);
        self.figures.insert("device_certs".into(), certs as f64);
        self.figures.insert(
            "reused_certs".into(),
            attempts.saturating_sub(certs as u64) as f64,
        );
    }
}

/// Stops a broker; a failure to stop is reported but not fatal (the
/// process is killed on drop either way).
async fn stop(broker: Running) {
    let kind = broker.kind;
    if let Err(error) = broker.stop().await {
        eprintln!("   warning: stopping {kind}: {error:#}");
    }
}

/// Other work on the machine (cores) below which a measurement starts
/// (waiting at most `Plan::quiet_wait_secs` for it).
const QUIET_CORES: f64 = 0.3;

/// Runs `task` on a fresh runtime whose workers are pinned to `placement`
/// (one worker on one core, two unpinned otherwise); everything, the
/// runner's own bookkeeping included, happens on those workers.
fn on<T, F>(placement: Placement, quiet_wait: Duration, task: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let other = if quiet_wait.is_zero() {
        0.0
    } else {
        wait_for_quiet(QUIET_CORES, quiet_wait)
    };
    if other >= QUIET_CORES {
        eprintln!(
            "   note: the machine stayed busy ({other:.2} cores of other work); measuring anyway"
        );
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    match placement {
        Placement::Core(core) => {
            builder.worker_threads(1).on_thread_start(move || {
                core_affinity::set_for_current(core_affinity::CoreId { id: core });
            });
        }
        Placement::Any => {
            builder.worker_threads(2);
        }
    }
    let runtime = builder.build().context("load generator runtime")?;
    let outcome = runtime.block_on(async move { tokio::spawn(task).await });
    runtime.shutdown_timeout(Duration::from_secs(5));
    outcome.context("load task panicked")?
}

/// The bench's working folder for one broker.
pub fn work_dir(root: &std::path::Path, kind: Kind) -> PathBuf {
    root.join(kind.to_string())
}
