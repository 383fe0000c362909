//! `fleetmq-bench`: the load generator and the side-by-side runner.
//!
//! - `fleetmq-bench run` starts fleetmq, Mosquitto and rumqttd in turn with
//!   equivalent configurations, runs every scenario against each (broker on
//!   core 0, load on core 1), and writes `report.md`, `report.json` and SVG
//!   plots (`bench/run.sh` is the one command that builds and runs it all).
//! - `fleetmq-bench smoke` runs every scenario tiny against the debug
//!   fleetmq (and Mosquitto when installed) and checks the harness produced
//!   figures: CI's guard against rot, not a speed test.
//! - `fleetmq-bench load connect|held|flow|persist` aims one scenario at a broker you
//!   started yourself (under a profiler, say).
//! - `fleetmq-bench report DIR` renders `DIR/report.json` again.
//! - `fleetmq-bench cluster` measures fleetmq nodes on three nats-servers
//!   against one lone node (`runner::cluster`, docs/decisions/0187); the
//!   smoke run includes it, tiny, when nats-server is installed.
//!
//! Modules: [`case`] (the measurement names), [`mqtt`] (the packets),
//! [`tls`] (client configurations), [`conn`] (one connection),
//! [`scenario`] (the load), [`runner`] (brokers and the plan), [`report`]
//! (the JSON, the markdown page and its plots), [`svg`], [`crypto`] (the
//! `openssl speed` limit), [`pki`] (the shared certificates),
//! [`fleet_pki`] (a certificate per fleet device), [`stats`].

mod case;
mod conn;
mod crypto;
mod fleet_pki;
mod http;
mod load;
mod mqtt;
mod pki;
mod report;
mod runner;
mod scenario;
mod stats;
mod svg;
mod tls;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use report::{BrokerInfo, Report};
use runner::broker::{BrokerSetup, Kind, Ports};
use runner::plan::Plan;
use runner::Runner;
use tls::Verify;

#[derive(Debug, Parser)]
#[command(
    name = "fleetmq-bench",
    about = "Benchmarks fleetmq against Mosquitto and rumqttd"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the comparison and write the report.
    Run(RunArgs),
    /// Every scenario, tiny, against the debug fleetmq: checks the harness.
    Smoke(SmokeArgs),
    /// One scenario against a broker that is already running.
    Load {
        #[command(subcommand)]
        scenario: load::LoadCmd,
    },
    /// Render DIR/report.json into DIR/report.md and the plots again.
    Report { dir: PathBuf },
    /// fleetmq nodes on three nats-servers (`[cluster] backend = "nats"`)
    /// against one lone node: cross-node flows, 1 to 3 nodes, held
    /// connections (docs/decisions/0187).
    Cluster(ClusterArgs),
}

#[derive(Debug, Args)]
struct ClusterArgs {
    #[arg(long, default_value = "target/release/fleetmq")]
    fleetmq_bin: PathBuf,
    #[arg(long, default_value = "/usr/sbin/nats-server")]
    nats_bin: PathBuf,
    /// Repetitions (default: the plan's).
    #[arg(long)]
    reps: Option<usize>,
    /// Held mutual-TLS connections on one node (default: the plan's).
    #[arg(long)]
    held: Option<usize>,
    /// Use the smoke plan (tiny sizes).
    #[arg(long)]
    smoke: bool,
    /// The JSON record of the run; the median tables go next to it
    /// (`.tables.md`) and to stdout.
    #[arg(long, default_value = "bench/results/issue19-cluster.json")]
    out: PathBuf,
    /// Working folder: configurations, logs, JetStream stores.
    #[arg(long, default_value = "target/bench-cluster")]
    work: PathBuf,
}

#[derive(Debug, Args)]
struct Bins {
    #[arg(long, default_value = "target/release/fleetmq")]
    fleetmq_bin: PathBuf,
    #[arg(long, default_value = "/usr/sbin/mosquitto")]
    mosquitto_bin: PathBuf,
    #[arg(long, default_value = "target/tools/bin/rumqttd")]
    rumqttd_bin: PathBuf,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Brokers to compare, in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fleetmq,mosquitto,rumqttd"
    )]
    brokers: Vec<Kind>,
    #[command(flatten)]
    bins: Bins,
    /// Repetitions (default: the plan's).
    #[arg(long)]
    reps: Option<usize>,
    /// Only these scenarios: connect, fleet, held-max, nat (the held
    /// fleet from a few source addresses), flow, latency, persist, bridge.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where the report goes.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Working folder: PKI, configurations, broker logs and data.
    #[arg(long, default_value = "target/bench")]
    work: PathBuf,
    /// How the load generator checks the broker's certificate chain and
    /// handshake signatures.
    #[arg(long, value_enum, default_value = "sampled")]
    verify: Verify,
    /// Use the smoke plan (tiny sizes) instead of the full one.
    #[arg(long)]
    smoke: bool,
    /// Skip `openssl speed`.
    #[arg(long)]
    no_crypto: bool,
    /// fleetmq's `[store] fsync` (`always`, `batch`, `periodic`); its
    /// default when left out. A `,wal` suffix (`batch,wal`) sets the
    /// store's write-ahead log on (its default, decision 0178), `,nowal`
    /// off.
    #[arg(long)]
    store_fsync: Option<String>,
}

#[derive(Debug, Args)]
struct SmokeArgs {
    #[arg(long, default_value = "target/debug/fleetmq")]
    fleetmq_bin: PathBuf,
    /// Also run Mosquitto when it is installed here.
    #[arg(long)]
    mosquitto: bool,
    /// Mosquitto; also the bridge scenario's remote, with or without
    /// `--mosquitto`.
    #[arg(long, default_value = "/usr/sbin/mosquitto")]
    mosquitto_bin: PathBuf,
    /// Working folder (a temporary one by default).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Debian's nats-server: the cluster scenario runs tiny when it is
    /// there, and is skipped with a message otherwise.
    #[arg(long, default_value = "/usr/sbin/nats-server")]
    nats_bin: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    runner::broker::kill_all_on_signal();
    let outcome = match cli.command {
        Cmd::Run(args) => run(args),
        Cmd::Smoke(args) => smoke(args),
        Cmd::Load { scenario } => load::load(scenario),
        Cmd::Report { dir } => rerender(&dir),
        Cmd::Cluster(args) => cluster(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fleetmq-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn setups(
    brokers: &[(Kind, PathBuf)],
    work: &Path,
    pki: &pki::Pki,
    store_fsync: Option<&str>,
) -> Result<Vec<BrokerSetup>> {
    brokers
        .iter()
        .map(|(kind, bin)| {
            // Brokers run in their own folders: the path must not be relative.
            let bin = bin
                .canonicalize()
                .with_context(|| format!("{kind}: no binary at {}", bin.display()))?;
            Ok(BrokerSetup {
                kind: *kind,
                bin,
                work: runner::work_dir(work, *kind),
                pki: pki.clone(),
                ports: Ports::free()?,
                store_fsync: store_fsync.map(str::to_string),
                extra_toml: String::new(),
            })
        })
        .collect()
}

/// Mosquitto as the bridge scenario's remote, when it is installed (an
/// absolute path: brokers run in their own folders).
fn remote_bin(bin: &Path) -> Option<PathBuf> {
    bin.canonicalize().ok()
}

fn version_of(kind: Kind, bin: &Path) -> String {
    let output = match kind {
        Kind::Fleetmq => Command::new(bin).arg("--version").output(),
        // Mosquitto prints its version in the usage text, and exits 3.
        Kind::Mosquitto => Command::new(bin).arg("-h").output(),
        Kind::Rumqttd => Command::new(bin).arg("--version").output(),
    };
    let text = output
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).to_string();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s
        })
        .unwrap_or_default();
    let line = text
        .lines()
        .find(|l| l.contains("version") || l.contains(&kind.to_string()))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    match kind {
        Kind::Fleetmq => {
            let commit = Command::new("git")
                .args(["rev-parse", "--short", "HEAD"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            format!("{line} (git {commit}, release build)")
        }
        Kind::Rumqttd => format!("{line} (crates.io, features verify-client-cert)"),
        Kind::Mosquitto => format!("{line} (Debian package)"),
    }
}

fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn run(args: RunArgs) -> Result<()> {
    let mut plan = if args.smoke {
        Plan::smoke()
    } else {
        Plan::full()
    };
    if let Some(reps) = args.reps {
        plan.reps = reps.max(1);
    }
    for scenario in &args.only {
        if !runner::SCENARIOS.contains(&scenario.as_str()) {
            bail!(
                "unknown scenario {scenario}; known: {}",
                runner::SCENARIOS.join(", ")
            );
        }
    }
    // Brokers run inside the work folder: every path handed to them must
    // be absolute.
    let work = std::path::absolute(&args.work)?;
    let pki = pki::Pki::load_or_create(&work.join("pki"))?;
    let fleet = fleet_pki::FleetPool::load_or_create(&pki, plan.fleet_pool_size())?;
    let brokers: Vec<(Kind, PathBuf)> = args
        .brokers
        .iter()
        .map(|kind| {
            let bin = match kind {
                Kind::Fleetmq => &args.bins.fleetmq_bin,
                Kind::Mosquitto => &args.bins.mosquitto_bin,
                Kind::Rumqttd => &args.bins.rumqttd_bin,
            };
            (*kind, bin.clone())
        })
        .collect();
    let setups = setups(&brokers, &work, &pki, args.store_fsync.as_deref())?;
    let crypto = if args.no_crypto {
        None
    } else {
        eprintln!("== openssl speed (crypto limit) on core 0");
        crypto::measure(Some(0), if args.smoke { 1 } else { 3 })
            .map_err(|e| eprintln!("   openssl speed failed: {e:#}"))
            .ok()
    };
    let infos = brokers
        .iter()
        .map(|(kind, bin)| BrokerInfo {
            kind: *kind,
            version: version_of(*kind, bin),
            bin: bin.display().to_string(),
        })
        .collect();
    let mut runner = Runner::new(plan.clone(), setups, pki, fleet, args.verify);
    runner.only = args.only.clone();
    runner.remote_bin = remote_bin(&args.bins.mosquitto_bin);
    // The limit again before each broker's storms in each repetition,
    // when the one above worked (runner::paired).
    runner.crypto_seconds = crypto.as_ref().map(|_| 1);
    runner.run()?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let report = Report {
        generated_at: now_utc(),
        command,
        plan,
        verify: args.verify,
        machine: report::machine(),
        brokers: infos,
        crypto,
        records: runner.records,
    };
    report.write(&args.out)?;
    eprintln!("report: {}", args.out.join("report.md").display());
    Ok(())
}

fn smoke(args: SmokeArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let temp;
    let work = match &args.work {
        Some(work) => std::path::absolute(work)?,
        None => {
            temp = TempDir::new()?;
            temp.path.clone()
        }
    };
    let pki = pki::Pki::load_or_create(&work.join("pki"))?;
    let mut brokers = vec![(Kind::Fleetmq, args.fleetmq_bin.clone())];
    if args.mosquitto && args.mosquitto_bin.exists() {
        brokers.push((Kind::Mosquitto, args.mosquitto_bin.clone()));
    }
    let setups = setups(&brokers, &work, &pki, None)?;
    let plan = Plan::smoke();
    let fleet = fleet_pki::FleetPool::load_or_create(&pki, plan.fleet_pool_size())?;
    let mut runner = Runner::new(plan.clone(), setups, pki.clone(), fleet, Verify::Full);
    runner.remote_bin = remote_bin(&args.mosquitto_bin);
    runner.run()?;
    let report = Report {
        generated_at: now_utc(),
        command: "fleetmq-bench smoke".into(),
        plan,
        verify: Verify::Full,
        machine: report::machine(),
        brokers: brokers
            .iter()
            .map(|(kind, bin)| BrokerInfo {
                kind: *kind,
                version: "smoke".into(),
                bin: bin.display().to_string(),
            })
            .collect(),
        crypto: None,
        records: runner.records.clone(),
    };
    report.write(&work.join("results"))?;
    // The harness works when every case produced figures for every broker
    // and the report rendered.
    let cases = report::cases_with_figures(&runner.records);
    let mut missing = Vec::new();
    for record in &runner.records {
        let ok = cases
            .get(&record.case)
            .is_some_and(|kinds| kinds.contains(&record.broker));
        if !ok {
            missing.push(format!(
                "{} {}: {}",
                record.broker,
                record.case,
                record.error.as_deref().unwrap_or("no figures")
            ));
        }
    }
    let expected_cases = case::Case::ALL.len();
    if cases.len() < expected_cases {
        missing.push(format!(
            "only {} of {expected_cases} cases measured",
            cases.len()
        ));
    }
    if !missing.is_empty() {
        bail!("smoke run failed:\n  {}", missing.join("\n  "));
    }
    eprintln!(
        "smoke: {} cases x {} broker(s) measured, report rendered, in {:.0} s",
        cases.len(),
        brokers.len(),
        started.elapsed().as_secs_f64()
    );
    cluster_smoke(&args, &work, &pki)
}

/// The cluster scenario, tiny, when Debian's nats-server is installed
/// (skipped with a message otherwise): three nodes come up, and the held
/// connections and both cross-node flows produce figures.
fn cluster_smoke(args: &SmokeArgs, work: &Path, pki: &pki::Pki) -> Result<()> {
    let Some(nats_bin) = args.nats_bin.canonicalize().ok() else {
        eprintln!(
            "smoke: cluster scenario skipped: no nats-server at {} (apt-get install nats-server)",
            args.nats_bin.display()
        );
        return Ok(());
    };
    let started = std::time::Instant::now();
    let mut bench = runner::cluster::ClusterBench {
        plan: runner::cluster::ClusterPlan::smoke(),
        fleetmq_bin: args
            .fleetmq_bin
            .canonicalize()
            .with_context(|| format!("no fleetmq at {}", args.fleetmq_bin.display()))?,
        nats_bin,
        work: work.join("cluster"),
        pki: pki.clone(),
        records: Vec::new(),
    };
    bench.run()?;
    let failed: Vec<String> = bench
        .records
        .iter()
        .filter(|r| r.error.is_some() || r.figures.is_empty())
        .map(|r| format!("{}: {}", r.case, r.error.as_deref().unwrap_or("no figures")))
        .collect();
    let wanted = [
        "cluster3/startup",
        "cluster3/held-mtls",
        "cluster3/cross/qos1-at-200",
        "cluster3/cross/qos0-at-200",
    ];
    let measured = wanted
        .iter()
        .filter(|case| {
            bench
                .records
                .iter()
                .any(|r| r.case == **case && r.error.is_none())
        })
        .count();
    if !failed.is_empty() || measured < wanted.len() {
        bail!(
            "cluster smoke failed ({measured} of {} cases measured):\n  {}",
            wanted.len(),
            failed.join("\n  ")
        );
    }
    eprintln!(
        "smoke: cluster scenario ({} cases) measured in {:.0} s",
        measured,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn cluster(args: ClusterArgs) -> Result<()> {
    let mut plan = if args.smoke {
        runner::cluster::ClusterPlan::smoke()
    } else {
        runner::cluster::ClusterPlan::full()
    };
    if let Some(reps) = args.reps {
        plan.reps = reps.max(1);
    }
    if let Some(held) = args.held {
        plan.held_devices = held;
    }
    let work = std::path::absolute(&args.work)?;
    let pki = pki::Pki::load_or_create(&work.join("pki"))?;
    let fleetmq_bin = args
        .fleetmq_bin
        .canonicalize()
        .with_context(|| format!("no fleetmq at {}", args.fleetmq_bin.display()))?;
    let nats_bin = args.nats_bin.canonicalize().with_context(|| {
        format!(
            "no nats-server at {} (apt-get install nats-server)",
            args.nats_bin.display()
        )
    })?;
    let loadavg_before = runner::cluster::loadavg();
    let mut bench = runner::cluster::ClusterBench {
        plan: plan.clone(),
        fleetmq_bin: fleetmq_bin.clone(),
        nats_bin: nats_bin.clone(),
        work: work.join("runs"),
        pki,
        records: Vec::new(),
    };
    bench.run()?;
    let nats_version = Command::new(&nats_bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let report = runner::cluster::ClusterReport {
        generated_at: now_utc(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        plan,
        machine: report::machine(),
        loadavg_before,
        loadavg_after: runner::cluster::loadavg(),
        fleetmq: version_of(Kind::Fleetmq, &fleetmq_bin),
        nats_server: nats_version,
        records: bench.records.clone(),
    };
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let tables = format!(
        "Load average before {}, after {}.\n\n{}",
        report.loadavg_before,
        report.loadavg_after,
        runner::cluster::summary(&bench.records)
    );
    let tables_path = args.out.with_extension("tables.md");
    std::fs::write(&tables_path, &tables)
        .with_context(|| format!("writing {}", tables_path.display()))?;
    println!("{tables}");
    eprintln!(
        "cluster: {} and {}",
        args.out.display(),
        tables_path.display()
    );
    Ok(())
}

/// A temporary folder removed on drop (the smoke run's work folder).
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new() -> Result<TempDir> {
        let path = std::env::temp_dir().join(format!("fleetmq-bench-smoke-{}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn rerender(dir: &Path) -> Result<()> {
    let path = dir.join("report.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let report: Report =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    report.write(dir)
}
