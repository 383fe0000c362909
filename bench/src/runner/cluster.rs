//! The cluster scenario (`fleetmq-bench cluster`, issue 19,
//! docs/decisions/0187): fleetmq nodes with `[cluster] backend = "nats"`
//! on three real `nats-server`s ([`super::nats`]), against one lone node
//! (no `[cluster]`) under the same load.
//!
//! Every broker-side process (the fleetmq nodes and the nats-servers) runs
//! on core 0, the load generator on core 1, as in the other scenarios: on a
//! two-core machine a cluster cannot add cores, so the growth from one to
//! three nodes is read per broker CPU-second (CPU of every fleetmq process,
//! and separately of the nats-servers, from `/proc/PID/stat`).
//!
//! Per repetition: a lone node (fan-in flows, held connections); a cluster
//! of one node (the same flows); a cluster of three nodes (held
//! connections on node a, fan-in from node a to node b, and the load
//! spread over the nodes: each node's subscriber reads its own node's
//! publishers, or the next node's). The loads are
//! [`crate::scenario::flow`] and [`crate::scenario::fleet`]; every loop is
//! bounded by count and time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::broker::{BrokerSetup, Kind, Placement, Ports, Running};
use super::nats::{NatsCluster, NodeTraffic};
use super::plan::Plan;
use super::{on, stop};
use crate::conn::Endpoint;
use crate::fleet_pki::FleetPool;
use crate::http;
use crate::pki::Pki;
use crate::scenario::fleet::Fleet;
use crate::scenario::flow::{self, FlowConfig, FlowResult, Shape};
use crate::scenario::held;
use crate::stats::{self, median, CpuWindow};
use crate::tls::{Clients, Profile, ServerKey, Verify, Version};

/// How big the cluster scenario is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterPlan {
    pub name: String,
    pub reps: usize,
    /// Publishers in every flow, in all (a multiple of 3: spread over
    /// three nodes, a third each).
    pub publishers: usize,
    pub payload: usize,
    pub qos1_window: usize,
    pub warmup_secs: f64,
    pub flow_secs: f64,
    pub drain_secs: f64,
    /// The fixed rates (msgs/s published in all) of the latency runs.
    pub fixed_rates: Vec<f64>,
    /// Held mutual-TLS connections on one node (0: not measured).
    pub held_devices: usize,
    pub held_ramp: usize,
    /// Which setups run: the lone node, the one-node cluster, and for the
    /// three-node cluster whether the fixed-rate and spread rows run.
    pub lone: bool,
    pub one_node: bool,
    pub fixed: bool,
    /// Rows at full load (as fast as the brokers take them).
    pub max: bool,
    pub spread: bool,
    /// Longest wait for the nodes to accept QoS 1/2 (JetStream elects its
    /// leaders first).
    pub ready_wait_secs: f64,
    /// Longest wait for the brokers to go idle between measurements.
    pub settle_secs: f64,
    /// Longest wait for other work on the machine to calm down before a
    /// setup starts (0: do not wait).
    pub quiet_wait_secs: f64,
}

impl ClusterPlan {
    /// About 4 minutes per repetition on two cores.
    pub fn full() -> ClusterPlan {
        ClusterPlan {
            name: "full".into(),
            reps: 3,
            publishers: 30,
            payload: 64,
            qos1_window: 32,
            warmup_secs: 0.5,
            flow_secs: 3.0,
            drain_secs: 3.0,
            fixed_rates: vec![1_000.0, 5_000.0],
            held_devices: 3_000,
            held_ramp: 128,
            lone: true,
            one_node: true,
            fixed: true,
            max: true,
            spread: true,
            ready_wait_secs: 60.0,
            settle_secs: 5.0,
            quiet_wait_secs: 5.0,
        }
    }

    /// CI's smoke: three nodes, held connections and one cross-node flow
    /// per QoS at a low fixed rate (full load would leave a backlog the
    /// next flow waits for), tiny. Shows the harness works; its figures mean nothing.
    pub fn smoke() -> ClusterPlan {
        ClusterPlan {
            name: "smoke".into(),
            reps: 1,
            publishers: 3,
            payload: 64,
            qos1_window: 8,
            warmup_secs: 0.2,
            flow_secs: 0.5,
            drain_secs: 2.0,
            fixed_rates: vec![200.0],
            held_devices: 30,
            held_ramp: 16,
            lone: false,
            one_node: false,
            fixed: true,
            max: false,
            spread: false,
            ready_wait_secs: 40.0,
            settle_secs: 2.0,
            quiet_wait_secs: 0.0,
        }
    }
}

/// One measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub rep: usize,
    /// e.g. `cluster3/cross/qos1-max`.
    pub case: String,
    pub figures: BTreeMap<String, f64>,
    pub error: Option<String>,
}

/// The scenario: binaries, folders, plan; records as it goes.
pub struct ClusterBench {
    pub plan: ClusterPlan,
    pub fleetmq_bin: PathBuf,
    pub nats_bin: PathBuf,
    pub work: PathBuf,
    pub pki: Pki,
    pub records: Vec<ClusterRecord>,
}

/// Which flows share one measurement: (publishing node, subscribing
/// node, tag) per group; the publishers are split evenly over the groups.
type Groups = &'static [(usize, usize, &'static str)];

const ON_ONE: Groups = &[(0, 0, "")];
const A_TO_B: Groups = &[(0, 1, "")];
const SPREAD_LOCAL: Groups = &[(0, 0, "na-"), (1, 1, "nb-"), (2, 2, "nc-")];
const SPREAD_CROSS: Groups = &[(0, 1, "na-"), (1, 2, "nb-"), (2, 0, "nc-")];

/// The brokers of one setup, running.
struct Setup {
    nodes: Vec<(BrokerSetup, Running)>,
    nats: Option<NatsCluster>,
}

impl Setup {
    fn plain(&self, node: usize) -> Result<Endpoint> {
        let (setup, _) = self.nodes.get(node).context("no such node")?;
        Ok(Endpoint {
            addr: Ports::addr(setup.ports.plain),
            tls: None,
        })
    }

    fn fleetmq_pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|(_, running)| running.pid).collect()
    }

    fn nats_pids(&self) -> Vec<u32> {
        self.nats
            .as_ref()
            .map(NatsCluster::pids)
            .unwrap_or_default()
    }

    async fn stop(self) {
        for (_, running) in self.nodes {
            stop(running).await;
        }
        if let Some(nats) = self.nats {
            nats.stop().await;
        }
    }
}

/// CPU of a set of processes over a window, in cores.
struct CpuSet(Vec<CpuWindow>);

impl CpuSet {
    fn start(pids: &[u32]) -> CpuSet {
        CpuSet(pids.iter().map(|pid| CpuWindow::start(*pid)).collect())
    }

    fn cores(&self) -> f64 {
        self.0.iter().map(CpuWindow::cores).sum()
    }
}

/// Waits (at most `limit`) until `pids` together use under 0.15 cores for
/// 300 ms: the previous measurement's backlog is through.
async fn settle(pids: &[u32], limit: Duration) {
    let started = Instant::now();
    while started.elapsed() < limit {
        let cpu = CpuSet::start(pids);
        tokio::time::sleep(Duration::from_millis(300)).await;
        if cpu.cores() < 0.15 {
            return;
        }
    }
}

impl ClusterBench {
    pub fn run(&mut self) -> Result<()> {
        // The held devices have a certificate each, as the runner's fleets.
        let pool = FleetPool::load_or_create(&self.pki, self.plan.held_devices)?;
        for rep in 0..self.plan.reps {
            eprintln!("== cluster rep {} of {}", rep + 1, self.plan.reps);
            if self.plan.lone {
                self.setup_run(rep, 0, &pool);
            }
            if self.plan.one_node {
                self.setup_run(rep, 1, &pool);
            }
            self.setup_run(rep, 3, &pool);
        }
        Ok(())
    }

    fn record(&mut self, rep: usize, case: String, outcome: Result<BTreeMap<String, f64>>) {
        let record = match outcome {
            Ok(figures) => {
                let summary: Vec<String> = ["delivered_per_sec", "latency_p99_ms", "lost_pct"]
                    .iter()
                    .chain(["rss_per_conn_kib", "nats_msgs_in_per_connect", "ready_secs"].iter())
                    .filter_map(|k| figures.get(*k).map(|v| format!("{k}={v:.2}")))
                    .collect();
                eprintln!("   {case}: {}", summary.join(" "));
                ClusterRecord {
                    rep,
                    case,
                    figures,
                    error: None,
                }
            }
            Err(error) => {
                eprintln!("   {case}: FAILED: {error:#}");
                ClusterRecord {
                    rep,
                    case,
                    figures: BTreeMap::new(),
                    error: Some(format!("{error:#}")),
                }
            }
        };
        self.records.push(record);
    }

    fn flow_config(&self, qos: u8, rate: Option<f64>) -> FlowConfig {
        FlowConfig {
            shape: Shape::FanIn,
            publishers: self.plan.publishers,
            subscribers: 1,
            qos,
            payload: self.plan.payload,
            warmup: Plan::secs(self.plan.warmup_secs),
            duration: Plan::secs(self.plan.flow_secs),
            rate,
            window: self.plan.qos1_window,
            drain: Plan::secs(self.plan.drain_secs),
            tag: String::new(),
            per_publisher: None,
        }
    }

    /// `nodes` fleetmq nodes (0: one lone node without `[cluster]`) and
    /// every measurement of that setup, on one start.
    fn setup_run(&mut self, rep: usize, nodes: usize, pool: &FleetPool) {
        let name = match nodes {
            0 => "lone".to_string(),
            n => format!("cluster{n}"),
        };
        // Fixed rates first, then QoS 1 at full load, QoS 0 at full load
        // last: a node that has more QoS 0 waiting for NATS than
        // `[cluster] max_pending` keeps it local, and refuses QoS 1 until
        // that backlog is through.
        let mut flows: Vec<(String, Groups, FlowConfig)> = Vec::new();
        let rates = if self.plan.fixed {
            self.plan.fixed_rates.clone()
        } else {
            Vec::new()
        };
        let (fixed_where, fixed_groups) = if nodes == 0 {
            ("local", ON_ONE)
        } else {
            ("cross", A_TO_B)
        };
        if nodes != 1 {
            for rate in &rates {
                for qos in [1, 0] {
                    flows.push((
                        format!("{name}/{fixed_where}/qos{qos}-at-{rate}"),
                        fixed_groups,
                        self.flow_config(qos, Some(*rate)),
                    ));
                }
            }
        }
        let max_rows: Vec<(&str, Groups)> = match nodes {
            0 | 1 => vec![("local", ON_ONE)],
            _ if self.plan.max && self.plan.spread => vec![
                ("cross", A_TO_B),
                ("local", ON_ONE),
                ("spread-local", SPREAD_LOCAL),
                ("spread-cross", SPREAD_CROSS),
            ],
            _ => vec![("cross", A_TO_B)],
        };
        if self.plan.max {
            for qos in [1, 0] {
                for (row, groups) in &max_rows {
                    flows.push((
                        format!("{name}/{row}/qos{qos}-max"),
                        groups,
                        self.flow_config(qos, None),
                    ));
                }
            }
        }
        let held_case = format!("{name}/held-mtls");
        let held_devices = if nodes == 1 {
            0
        } else {
            self.plan.held_devices
        };
        let plan = self.plan.clone();
        let fleetmq_bin = self.fleetmq_bin.clone();
        let nats_bin = self.nats_bin.clone();
        let work = self.work.join(&name);
        let pki = self.pki.clone();
        let pool = pool.clone();
        let startup_case = format!("{name}/startup");
        let pinned = std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
        let (broker_place, load_place) = if pinned {
            (Placement::Core(0), Placement::Core(1))
        } else {
            (Placement::Any, Placement::Any)
        };
        let quiet_wait = Plan::secs(self.plan.quiet_wait_secs);
        let outcome = on(load_place, quiet_wait, async move {
            let mut results: Vec<(String, Result<BTreeMap<String, f64>>)> = Vec::new();
            // Every row on a fresh setup (new JetStream stores, new
            // nodes): a row at full load leaves a backlog in the message
            // stream that every node's consumer reads through, which would
            // slow or starve the rows after it.
            let mut rows: Vec<Option<(String, Groups, FlowConfig)>> = Vec::new();
            if held_devices > 0 {
                rows.push(None);
            }
            rows.extend(flows.into_iter().map(Some));
            let limit = Plan::secs(plan.settle_secs);
            for (index, row) in rows.into_iter().enumerate() {
                let started = Instant::now();
                let setup = start_setup(
                    &fleetmq_bin,
                    &nats_bin,
                    &work,
                    &pki,
                    nodes,
                    broker_place,
                    &plan,
                )
                .await;
                let setup = match (setup, &row) {
                    (Ok(setup), _) => setup,
                    (Err(error), Some((case, _, _))) => {
                        results.push((case.clone(), Err(error.context("starting"))));
                        continue;
                    }
                    (Err(error), None) => {
                        results.push((held_case.clone(), Err(error.context("starting"))));
                        continue;
                    }
                };
                if nodes > 0 {
                    let mut figures = BTreeMap::new();
                    figures.insert("ready_secs".into(), started.elapsed().as_secs_f64());
                    results.push((format!("{name}/startup"), Ok(figures)));
                }
                let mut pids = setup.fleetmq_pids();
                pids.extend(setup.nats_pids());
                settle(&pids, limit).await;
                match row {
                    None => {
                        let figures =
                            held_run(&setup, &pki, &pool, held_devices, plan.held_ramp).await;
                        results.push((held_case.clone(), figures));
                    }
                    Some((case, groups, mut config)) => {
                        // Topics and client ids of their own, too.
                        config.tag = format!("m{index}-");
                        let figures = flow_run(&setup, groups, &config).await;
                        results.push((case, figures));
                    }
                }
                setup.stop().await;
            }
            Ok(results)
        });
        match outcome {
            Ok(results) => {
                for (case, figures) in results {
                    self.record(rep, case, figures);
                }
            }
            Err(error) => self.record(rep, startup_case, Err(error)),
        }
    }
}

/// Starts the NATS cluster (when `nodes` > 0) and the fleetmq nodes
/// `a`, `b`, `c`..., all on `place`; returns once every node accepts
/// QoS 1/2 (`fleetmq_cluster_ready` 1 on its `/metrics`).
async fn start_setup(
    fleetmq_bin: &Path,
    nats_bin: &Path,
    work: &Path,
    pki: &Pki,
    nodes: usize,
    place: Placement,
    plan: &ClusterPlan,
) -> Result<Setup> {
    if work.exists() {
        std::fs::remove_dir_all(work).with_context(|| format!("clearing {}", work.display()))?;
    }
    let nats = if nodes > 0 {
        Some(NatsCluster::start(nats_bin, &work.join("nats"), place).await?)
    } else {
        None
    };
    let mut setup = Setup {
        nodes: Vec::new(),
        nats,
    };
    for index in 0..nodes.max(1) {
        let name = ["a", "b", "c", "d", "e"]
            .get(index)
            .copied()
            .context("at most five nodes")?;
        let broker = BrokerSetup {
            kind: Kind::Fleetmq,
            bin: fleetmq_bin.to_path_buf(),
            work: work.join(name),
            pki: pki.clone(),
            ports: Ports::free()?,
            store_fsync: None,
            extra_toml: setup
                .nats
                .as_ref()
                .map(|nats| nats.node_toml(name))
                .unwrap_or_default(),
        };
        let running = broker.start(place, false).await?;
        setup.nodes.push((broker, running));
    }
    if setup.nats.is_some() {
        let deadline = Instant::now() + Plan::secs(plan.ready_wait_secs);
        for (broker, running) in &setup.nodes {
            let metrics = Ports::addr(broker.ports.http);
            loop {
                let ready = http::get(metrics, "/metrics")
                    .await
                    .ok()
                    .and_then(|body| http::metric_sum(&body, "fleetmq_cluster_ready"));
                if ready == Some(1.0) {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "a node did not accept QoS 1/2 in {} s; its log:\n{}",
                        plan.ready_wait_secs,
                        running.log_tail()
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Ok(setup)
}

/// One measurement of `groups` at once (each group's publishers on its
/// publishing node, its subscriber on its subscribing node), with the
/// CPU of every fleetmq process and every nats-server over the run.
async fn flow_run(
    setup: &Setup,
    groups: Groups,
    config: &FlowConfig,
) -> Result<BTreeMap<String, f64>> {
    let share = (config.publishers / groups.len()).max(1);
    let mut runs = Vec::new();
    for (publish_node, subscribe_node, tag) in groups {
        let publish_to = setup.plain(*publish_node)?;
        let subscribe_at = setup.plain(*subscribe_node)?;
        let config = FlowConfig {
            publishers: share,
            rate: config.rate.map(|rate| rate / groups.len() as f64),
            tag: format!("{}{tag}", config.tag),
            ..config.clone()
        };
        runs.push(async move { flow::run_between(&publish_to, &subscribe_at, &config).await });
    }
    let fleetmq_cpu = CpuSet::start(&setup.fleetmq_pids());
    let nats_cpu = CpuSet::start(&setup.nats_pids());
    let me = CpuWindow::start(std::process::id());
    let busy_before = stats::machine_busy().unwrap_or_default();
    let wall = Instant::now();
    let results: Vec<Result<FlowResult>> = join_all(runs).await;
    let fleetmq_cores = fleetmq_cpu.cores();
    let nats_cores = nats_cpu.cores();
    let load_cores = me.cores();
    let busy = stats::machine_busy()
        .unwrap_or_default()
        .saturating_sub(busy_before)
        .as_secs_f64()
        / wall.elapsed().as_secs_f64().max(1e-9);
    let results: Vec<FlowResult> = results.into_iter().collect::<Result<_>>()?;
    let sum = |f: fn(&FlowResult) -> f64| results.iter().map(f).sum::<f64>();
    let worst = |f: fn(&FlowResult) -> f64| results.iter().map(f).fold(0.0, f64::max);
    let delivered = sum(|r| r.delivered as f64);
    let expected = sum(|r| r.expected as f64);
    if delivered == 0.0 {
        bail!("nothing was delivered");
    }
    let mut figures = BTreeMap::new();
    let delivered_per_sec = sum(|r| r.delivered_per_sec);
    figures.insert("delivered_per_sec".into(), delivered_per_sec);
    figures.insert("published_per_sec".into(), sum(|r| r.published_per_sec));
    figures.insert(
        "lost_pct".into(),
        if expected > 0.0 {
            100.0 * (expected - delivered).max(0.0) / expected
        } else {
            0.0
        },
    );
    // The slowest group's percentiles (one group but in the spread rows).
    figures.insert(
        "latency_p50_ms".into(),
        worst(|r| r.latency.p50_us) / 1000.0,
    );
    figures.insert(
        "latency_p99_ms".into(),
        worst(|r| r.latency.p99_us) / 1000.0,
    );
    figures.insert("fleetmq_cpu_cores".into(), fleetmq_cores);
    if setup.nats.is_some() {
        figures.insert("nats_cpu_cores".into(), nats_cores);
    }
    figures.insert("load_cpu_cores".into(), load_cores);
    figures.insert(
        "other_cpu_cores".into(),
        (busy - fleetmq_cores - nats_cores - load_cores).max(0.0),
    );
    if fleetmq_cores > 0.05 {
        figures.insert(
            "delivered_per_fleetmq_cpu_sec".into(),
            delivered_per_sec / fleetmq_cores,
        );
    }
    if fleetmq_cores + nats_cores > 0.05 {
        figures.insert(
            "delivered_per_broker_cpu_sec".into(),
            delivered_per_sec / (fleetmq_cores + nats_cores),
        );
    }
    Ok(figures)
}

/// Polls every future to completion on this task (the flows of one
/// measurement run side by side).
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Admission histogram of a node: (count, sum seconds).
async fn admissions(metrics: std::net::SocketAddr) -> (f64, f64) {
    let body = http::get(metrics, "/metrics").await.unwrap_or_default();
    (
        http::metric_sum(&body, "fleetmq_cluster_connect_admission_seconds_count").unwrap_or(0.0),
        http::metric_sum(&body, "fleetmq_cluster_connect_admission_seconds_sum").unwrap_or(0.0),
    )
}

async fn traffic(setup: &Setup) -> (NodeTraffic, Instant) {
    let counted = match &setup.nats {
        Some(nats) => nats.node_traffic().await.unwrap_or_default(),
        None => NodeTraffic::default(),
    };
    (counted, Instant::now())
}

/// `devices` held mutual-TLS connections (TLS 1.2, ECDSA, a certificate
/// per device from `pool`) on node a: its
/// resident memory and heap before and while held, the nats-servers'
/// memory, and in a cluster the messages the nodes sent NATS per CONNECT
/// and per DISCONNECT (their idle heartbeat rate, measured first,
/// subtracted) and the admission histogram's mean.
async fn held_run(
    setup: &Setup,
    pki: &Pki,
    pool: &FleetPool,
    devices: usize,
    ramp: usize,
) -> Result<BTreeMap<String, f64>> {
    let (broker, running) = setup.nodes.first().context("no node")?;
    let endpoint = Endpoint {
        addr: Ports::addr(broker.ports.ecdsa),
        tls: Some(Clients::per_device(
            pki,
            Profile {
                version: Version::Tls12,
                server_key: ServerKey::Ecdsa,
                verify: Verify::Cached,
            },
            pool.first(devices)?,
        )?),
    };
    let metrics = Some(Ports::addr(broker.ports.http));
    let nats_rss = || -> u64 {
        setup
            .nats_pids()
            .iter()
            .filter_map(|pid| stats::rss_kib(*pid))
            .sum()
    };
    // The nodes' background traffic (heartbeats), over two seconds.
    let idle_from = traffic(setup).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_to = traffic(setup).await;
    let idle_rate = |t: (NodeTraffic, Instant), u: (NodeTraffic, Instant)| {
        let secs = u.1.duration_since(t.1).as_secs_f64().max(1e-9);
        (
            u.0.msgs_in.saturating_sub(t.0.msgs_in) as f64 / secs,
            u.0.msgs_out.saturating_sub(t.0.msgs_out) as f64 / secs,
        )
    };
    let background = idle_rate(idle_from, idle_to);
    let beyond = |t: (NodeTraffic, Instant), u: (NodeTraffic, Instant)| {
        let secs = u.1.duration_since(t.1).as_secs_f64();
        (
            (u.0.msgs_in.saturating_sub(t.0.msgs_in) as f64 - background.0 * secs).max(0.0),
            (u.0.msgs_out.saturating_sub(t.0.msgs_out) as f64 - background.1 * secs).max(0.0),
        )
    };

    let rss_idle = running.rss_kib().unwrap_or(0);
    let heap_idle = held::heap_kib(metrics).await;
    let nats_idle = nats_rss();
    let admitted_before = admissions(Ports::addr(broker.ports.http)).await;
    let before = traffic(setup).await;
    let config = held::fleet_config(devices, ramp);
    let fleet = Fleet::launch(&endpoint, &config);
    let mark = fleet.mark();
    let up = fleet
        .wait_all_connected(&mark, Duration::from_secs(60))
        .await;
    let held_at = traffic(setup).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let connected = fleet.connected();
    let rss_held = running.rss_kib().unwrap_or(0);
    let heap_held = held::heap_kib(metrics).await;
    let nats_held = nats_rss();
    let admitted_after = admissions(Ports::addr(broker.ports.http)).await;
    let settled = traffic(setup).await;
    let mut connacks = fleet.stop().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_stop = traffic(setup).await;
    let up = up?;

    let per = |value: f64| value / connected.max(1) as f64;
    let mut figures = BTreeMap::new();
    figures.insert("devices".into(), devices as f64);
    figures.insert("connected".into(), connected as f64);
    figures.insert("bringup_secs".into(), up.all_connacked_secs);
    figures.insert("failed_attempts".into(), up.failed_attempts as f64);
    // Every device's CONNECT to CONNACK (the wave's own percentiles are
    // not filled by `wait_all_connected`).
    let connack = connacks.percentiles();
    figures.insert("connack_p50_ms".into(), connack.p50_us / 1000.0);
    figures.insert("connack_p99_ms".into(), connack.p99_us / 1000.0);
    figures.insert(
        "rss_per_conn_kib".into(),
        per(rss_held.saturating_sub(rss_idle) as f64),
    );
    figures.insert("rss_idle_mib".into(), rss_idle as f64 / 1024.0);
    figures.insert(
        "heap_per_conn_kib".into(),
        per(heap_held.saturating_sub(heap_idle) as f64),
    );
    if setup.nats.is_some() {
        figures.insert(
            "nats_rss_per_conn_kib".into(),
            per(nats_held.saturating_sub(nats_idle) as f64),
        );
        let connects = up.connacks.max(1) as f64;
        let (sent, received) = beyond(before, held_at);
        figures.insert("nats_msgs_in_per_connect".into(), sent / connects);
        figures.insert("nats_msgs_out_per_connect".into(), received / connects);
        // What arrived while the fleet was merely held (should be ~0).
        let (held_sent, _) = beyond(held_at, settled);
        figures.insert("nats_msgs_in_while_held".into(), held_sent);
        let (gone_sent, gone_received) = beyond(settled, after_stop);
        figures.insert("nats_msgs_in_per_disconnect".into(), per(gone_sent));
        figures.insert("nats_msgs_out_per_disconnect".into(), per(gone_received));
        figures.insert("nats_background_msgs_in_per_sec".into(), background.0);
        let count = admitted_after.0 - admitted_before.0;
        if count > 0.0 {
            figures.insert("admissions".into(), count);
            figures.insert(
                "admission_mean_ms".into(),
                1000.0 * (admitted_after.1 - admitted_before.1) / count,
            );
        }
    }
    Ok(figures)
}

/// Medians over the repetitions, as markdown tables (what
/// `bench/results/issue19-cluster.md` quotes).
pub fn summary(records: &[ClusterRecord]) -> String {
    let mut cases: Vec<&str> = Vec::new();
    for record in records {
        if !cases.contains(&record.case.as_str()) {
            cases.push(&record.case);
        }
    }
    let median_of = |case: &str, figure: &str| {
        let values: Vec<f64> = records
            .iter()
            .filter(|r| r.case == case)
            .filter_map(|r| r.figures.get(figure).copied())
            .collect();
        median(&values)
    };
    let reps_of = |case: &str| {
        let ok = records
            .iter()
            .filter(|r| r.case == case && r.error.is_none())
            .count();
        let all = records.iter().filter(|r| r.case == case).count();
        format!("{ok}/{all}")
    };
    let table = |title: &str, filter: &dyn Fn(&str) -> bool, columns: &[(&str, &str, usize)]| {
        let mut out = format!("### {title}\n\n| case | reps ok |");
        for (_, header, _) in columns {
            out.push_str(&format!(" {header} |"));
        }
        out.push_str("\n|---|---|");
        for _ in columns {
            out.push_str("---:|");
        }
        out.push('\n');
        for case in cases.iter().filter(|c| filter(c)) {
            out.push_str(&format!("| `{case}` | {} |", reps_of(case)));
            for (figure, _, decimals) in columns {
                let value = median_of(case, figure);
                if value.is_finite() {
                    out.push_str(&format!(" {value:.prec$} |", prec = *decimals));
                } else {
                    out.push_str(" – |");
                }
            }
            out.push('\n');
        }
        out.push('\n');
        out
    };
    let mut out = String::new();
    out.push_str(&table(
        "Flows (medians)",
        &|c: &str| c.contains("/qos"),
        &[
            ("delivered_per_sec", "delivered/s", 0),
            ("published_per_sec", "published/s", 0),
            ("latency_p50_ms", "p50 ms", 2),
            ("latency_p99_ms", "p99 ms", 2),
            ("lost_pct", "lost %", 2),
            ("fleetmq_cpu_cores", "fleetmq cores", 2),
            ("nats_cpu_cores", "nats cores", 2),
            ("delivered_per_fleetmq_cpu_sec", "msgs/fleetmq CPU-s", 0),
            (
                "delivered_per_broker_cpu_sec",
                "msgs/(fleetmq+nats) CPU-s",
                0,
            ),
            ("other_cpu_cores", "other cores", 2),
        ],
    ));
    out.push_str(&table(
        "Held mutual-TLS connections on node a (medians)",
        &|c: &str| c.ends_with("/held-mtls"),
        &[
            ("connected", "held", 0),
            ("bringup_secs", "bring-up s", 2),
            ("connack_p99_ms", "CONNACK p99 ms", 1),
            ("rss_per_conn_kib", "RSS KiB/conn", 2),
            ("heap_per_conn_kib", "heap KiB/conn", 2),
            ("nats_rss_per_conn_kib", "nats RSS KiB/conn", 2),
            ("nats_msgs_in_per_connect", "node→NATS msgs/CONNECT", 2),
            ("nats_msgs_out_per_connect", "NATS→nodes msgs/CONNECT", 2),
            (
                "nats_msgs_in_per_disconnect",
                "node→NATS msgs/DISCONNECT",
                2,
            ),
            ("admission_mean_ms", "admission mean ms", 2),
        ],
    ));
    out.push_str(&table(
        "Start-up (NATS started to every node accepting QoS 1/2)",
        &|c: &str| c.ends_with("/startup"),
        &[("ready_secs", "ready s", 1)],
    ));
    for record in records.iter().filter(|r| r.error.is_some()) {
        out.push_str(&format!(
            "- rep {} `{}` failed: {}\n",
            record.rep + 1,
            record.case,
            record.error.as_deref().unwrap_or("")
        ));
    }
    out
}

/// The run's record on disk.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClusterReport {
    pub generated_at: String,
    pub command: String,
    pub plan: ClusterPlan,
    pub machine: crate::report::Machine,
    /// `/proc/loadavg` before and after.
    pub loadavg_before: String,
    pub loadavg_after: String,
    pub fleetmq: String,
    pub nats_server: String,
    pub records: Vec<ClusterRecord>,
}

/// `/proc/loadavg`'s three averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}
