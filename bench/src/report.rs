//! The report: every record as JSON, and a markdown page with the median
//! of each figure per broker, its spread over the repetitions, the ratios
//! fleetmq/Mosquitto and fleetmq/rumqttd, the crypto limit, the targets
//! met or missed, and the plots.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::crypto::CryptoLimit;
use crate::runner::broker::Kind;
use crate::runner::plan::Plan;
use crate::runner::Record;
use crate::stats::median;
use crate::svg;
use crate::tls::Verify;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    /// RLIMIT_NOFILE (soft, hard): what caps held connections per process.
    pub nofile: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub kind: Kind,
    pub version: String,
    pub bin: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub generated_at: String,
    pub command: String,
    pub plan: Plan,
    pub verify: Verify,
    pub machine: Machine,
    pub brokers: Vec<BrokerInfo>,
    pub crypto: Option<CryptoLimit>,
    pub records: Vec<Record>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
    Neither,
}

/// One row of the figure table: a figure of a case.
struct Row {
    case: &'static str,
    figure: &'static str,
    label: &'static str,
    better: Better,
}

const fn row(case: &'static str, figure: &'static str, label: &'static str, better: Better) -> Row {
    Row {
        case,
        figure,
        label,
        better,
    }
}

use Better::{Higher, Lower, Neither};

const ROWS: &[Row] = &[
    row(
        "connect/tls12-ecdsa/1core",
        "connects_per_sec",
        "1. mTLS 1.2 ECDSA P-256 connects/s, broker on 1 core",
        Higher,
    ),
    row(
        "connect/tls12-ecdsa/1core",
        "handshake_p50_ms",
        "   handshake p50 (ms)",
        Lower,
    ),
    row(
        "connect/tls12-ecdsa/1core",
        "handshake_p99_ms",
        "   handshake p99 (ms)",
        Lower,
    ),
    row(
        "connect/tls12-ecdsa/1core",
        "broker_cpu_cores",
        "   broker CPU (cores)",
        Neither,
    ),
    row(
        "connect/tls12-ecdsa/1core",
        "load_cpu_cores",
        "   load generator CPU (cores)",
        Neither,
    ),
    row(
        "connect/tls12-rsa/1core",
        "connects_per_sec",
        "1. mTLS 1.2 RSA-2048 server cert connects/s, 1 core",
        Higher,
    ),
    row(
        "connect/tls12-rsa/1core",
        "handshake_p99_ms",
        "   handshake p99 (ms)",
        Lower,
    ),
    row(
        "connect/tls13-ecdsa/1core",
        "connects_per_sec",
        "1. mTLS 1.3 ECDSA connects/s, 1 core",
        Higher,
    ),
    row(
        "connect/tls13-ecdsa/1core",
        "handshake_p99_ms",
        "   handshake p99 (ms)",
        Lower,
    ),
    row(
        "connect/tls12-ecdsa/2cores",
        "connects_per_sec",
        "1. mTLS 1.2 ECDSA connects/s, broker and load on both cores",
        Higher,
    ),
    row(
        "connect/tls12-ecdsa/2cores",
        "broker_cpu_cores",
        "   broker CPU (cores)",
        Neither,
    ),
    row(
        "fleet/full-handshakes",
        "bringup_secs",
        "3. 10,000 held mTLS connections: all CONNACKed (s)",
        Lower,
    ),
    row(
        "fleet/full-handshakes",
        "rss_per_conn_kib",
        "3. broker memory per held mTLS connection (KiB)",
        Lower,
    ),
    row(
        "fleet/full-handshakes",
        "restart_all_secs",
        "2. restart, 10,000 reconnect: all CONNACKed after listening (s)",
        Lower,
    ),
    row(
        "fleet/full-handshakes",
        "restart_from_kill_secs",
        "   same, from SIGTERM (s)",
        Lower,
    ),
    row(
        "fleet/resumption",
        "restart_all_secs",
        "2. restart, devices offer resumption: all CONNACKed (s)",
        Lower,
    ),
    row(
        "fleet/resumption",
        "restart_resumed",
        "   handshakes resumed after the restart",
        Higher,
    ),
    row(
        "fleet/full-handshakes",
        "drop_all_secs",
        "2. network drop (broker up), 10,000 reconnect, full handshakes (s)",
        Lower,
    ),
    row(
        "fleet/resumption",
        "drop_all_secs",
        "2. network drop, with resumption (s)",
        Lower,
    ),
    row(
        "fleet/resumption",
        "drop_resumed",
        "   handshakes resumed",
        Higher,
    ),
    row(
        "held/max",
        "devices",
        "3. largest fleet held (connections)",
        Higher,
    ),
    row("held/max", "bringup_secs", "   all CONNACKed (s)", Lower),
    row(
        "held/max",
        "rss_per_conn_kib",
        "   memory per connection (KiB)",
        Lower,
    ),
    row(
        "fan-in/qos0/max",
        "delivered_per_sec",
        "4. fan-in QoS 0, 100 pub -> 1 sub, 64 B: msgs/s",
        Higher,
    ),
    row(
        "fan-in/qos0/max",
        "delivered_per_sec_per_broker_cpu",
        "   per broker CPU-second",
        Higher,
    ),
    row("fan-in/qos0/max", "lost_pct", "   dropped (%)", Lower),
    row(
        "fan-in/qos0/max",
        "broker_cpu_cores",
        "   broker CPU (cores)",
        Neither,
    ),
    row(
        "fan-in/qos0/max",
        "load_cpu_cores",
        "   load generator CPU (cores)",
        Neither,
    ),
    row(
        "fan-in/qos1/max",
        "delivered_per_sec",
        "4. fan-in QoS 1: delivered msgs/s",
        Higher,
    ),
    row("fan-in/qos1/max", "lost_pct", "   dropped (%)", Lower),
    row(
        "fan-in/qos0/fixed-rate",
        "published_per_sec",
        "4. fan-in QoS 0 at half Mosquitto's peak: offered msgs/s",
        Neither,
    ),
    row(
        "fan-in/qos0/fixed-rate",
        "latency_p50_ms",
        "   latency p50 (ms)",
        Lower,
    ),
    row(
        "fan-in/qos0/fixed-rate",
        "latency_p99_ms",
        "   latency p99 (ms)",
        Lower,
    ),
    row(
        "fan-out/qos0/max",
        "delivered_per_sec",
        "5. fan-out QoS 0, 1 pub -> 100 subs: deliveries/s",
        Higher,
    ),
    row(
        "fan-out/qos0/max",
        "delivered_per_sec_per_broker_cpu",
        "   per broker CPU-second",
        Higher,
    ),
    row("fan-out/qos0/max", "lost_pct", "   dropped (%)", Lower),
    row(
        "fan-out/qos1/max",
        "delivered_per_sec",
        "5. fan-out QoS 1: deliveries/s",
        Higher,
    ),
    row("fan-out/qos1/max", "lost_pct", "   dropped (%)", Lower),
    row(
        "fan-out/qos0/fixed-rate",
        "published_per_sec",
        "5. fan-out QoS 0 at half Mosquitto's peak: offered publishes/s",
        Neither,
    ),
    row(
        "fan-out/qos0/fixed-rate",
        "latency_p50_ms",
        "   latency p50 (ms)",
        Lower,
    ),
    row(
        "fan-out/qos0/fixed-rate",
        "latency_p99_ms",
        "   latency p99 (ms)",
        Lower,
    ),
    row(
        "persist/qos1-offline",
        "accepted_per_sec",
        "6. QoS 1 into 100 offline sessions, durable: PUBACKs/s",
        Higher,
    ),
    row(
        "persist/qos1-offline",
        "ack_p99_ms",
        "   PUBACK p99 (ms)",
        Lower,
    ),
    row(
        "persist/qos1-offline",
        "delivered_after_restart_pct",
        "   delivered after a restart (%)",
        Higher,
    ),
    row(
        "persist/qos1-offline",
        "drained_per_sec",
        "   drain after restart, msgs/s",
        Higher,
    ),
];

impl Report {
    fn values(&self, kind: Kind, case: &str, figure: &str) -> Vec<f64> {
        self.records
            .iter()
            .filter(|r| r.broker == kind && r.case == case)
            .filter_map(|r| r.figures.get(figure).copied())
            .collect()
    }

    /// The median of a figure over the repetitions (NaN: not measured).
    pub fn median(&self, kind: Kind, case: &str, figure: &str) -> f64 {
        median(&self.values(kind, case, figure))
    }

    fn kinds(&self) -> Vec<Kind> {
        let mut kinds: Vec<Kind> = self.brokers.iter().map(|b| b.kind).collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    /// Writes `report.json`, `report.md` and the plots into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        fs::write(dir.join("report.json"), serde_json::to_string_pretty(self)?)?;
        let plots = self.plots();
        for (name, svg) in &plots {
            fs::write(dir.join(name), svg)?;
        }
        let names: Vec<&str> = plots.iter().map(|(name, _)| name.as_str()).collect();
        fs::write(dir.join("report.md"), self.markdown(&names))?;
        Ok(())
    }

    fn cell(&self, kind: Kind, case: &str, figure: &str) -> String {
        let values = self.values(kind, case, figure);
        let m = median(&values);
        if !m.is_finite() {
            let failed = self
                .records
                .iter()
                .any(|r| r.broker == kind && r.case == case && r.error.is_some());
            return if failed {
                "failed".into()
            } else {
                "–".into()
            };
        }
        let (lo, hi) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        let spread = if values.len() > 1 && m.abs() > 0.0 {
            format!(" ±{:.0}%", 100.0 * (hi - lo) / (2.0 * m.abs()))
        } else {
            String::new()
        };
        format!("{}{spread}", fmt_value(m))
    }

    fn ratio(&self, case: &str, figure: &str, other: Kind) -> String {
        let ours = self.median(Kind::Fleetmq, case, figure);
        let theirs = self.median(other, case, figure);
        if ours.is_finite() && theirs.is_finite() && theirs != 0.0 {
            format!("{:.2}", ours / theirs)
        } else {
            "–".into()
        }
    }

    fn markdown(&self, plots: &[&str]) -> String {
        let mut md = String::new();
        let kinds = self.kinds();
        let _ = writeln!(md, "# fleetmq benchmark report\n");
        let _ = writeln!(
            md,
            "Generated {} by `{}` (plan `{}`: {} repetitions; medians, ± is half the \
             min–max spread as a share of the median).\n",
            self.generated_at, self.command, self.plan.name, self.plan.reps
        );
        let _ = writeln!(
            md,
            "Reproduce with one command from the repository root: `bench/run.sh` \
            (builds fleetmq in release, installs rumqttd into `target/tools` once, runs every \
            scenario and rewrites this folder). Profiling notes: [PROFILING.md](PROFILING.md).\n"
        );
        let _ = writeln!(md, "## Machine and brokers\n");
        let m = &self.machine;
        let _ = writeln!(
            md,
            "- CPU: {} — {} cores; {:.0} GiB RAM; kernel {}; open files per process {}",
            m.cpu_model, m.cores, m.memory_gib, m.kernel, m.nofile
        );
        let _ = writeln!(
            md,
            "- Shared machine: other sessions' builds and tests ran on the same 2 cores. Each \
             measurement waits (up to 5 s) for their load to fall under 0.3 cores, and the \
             report keeps what they took anyway (`other processes` rows) and each rate per \
             broker CPU-second, which shows efficiency even when CPU was taken.\n\
             - Placement: every broker pinned to core 0 and the load generator (one tokio \
             worker) to core 1 (`taskset`, `sched_setaffinity`), except the rows that say \
             both cores. Loopback only; clients use source addresses 127.0.0.2–251."
        );
        let _ = writeln!(
            md,
            "- Load generator TLS: rustls 0.23 (aws-lc-rs), X25519 only, one suite per run \
             (TLS 1.2: ECDHE-ECDSA/ECDHE-RSA-AES128-GCM-SHA256; TLS 1.3: AES128-GCM), \
             no resumption unless stated; server chain check: {:?} (docs/decisions/0061).",
            self.verify
        );
        for broker in &self.brokers {
            let _ = writeln!(
                md,
                "- {}: {} (`{}`)",
                broker.kind, broker.version, broker.bin
            );
        }
        let _ = writeln!(
            md,
            "- Same PKI for all (ECDSA P-256 CA and device certificates, ECDSA P-256 and \
             RSA-2048 server certificates), same limits (inflight {}, queue {}), no `$SYS`, \
             warnings-only logs; configurations are written by `bench/src/runner/broker.rs`.\n",
            crate::runner::broker::MAX_INFLIGHT,
            crate::runner::broker::MAX_QUEUED
        );
        if let Some(crypto) = &self.crypto {
            self.crypto_section(&mut md, crypto);
        }

        let _ = writeln!(md, "## Figures\n");
        let mut header = String::from("| figure |");
        let mut rule = String::from("|---|");
        for kind in &kinds {
            let _ = write!(header, " {kind} |");
            rule.push_str("---:|");
        }
        for other in kinds.iter().filter(|k| **k != Kind::Fleetmq) {
            let _ = write!(header, " fleetmq/{other} |");
            rule.push_str("---:|");
        }
        let _ = writeln!(md, "{header}\n{rule}");
        for row in ROWS {
            if kinds
                .iter()
                .all(|k| self.values(*k, row.case, row.figure).is_empty())
                && !self.records.iter().any(|r| r.case == row.case)
            {
                continue;
            }
            let arrow = match row.better {
                Higher => " ↑",
                Lower => " ↓",
                Neither => "",
            };
            let mut line = format!("| {}{arrow} |", row.label.trim_start());
            if row.label.starts_with("   ") {
                line = format!("| &nbsp;&nbsp;{}{arrow} |", row.label.trim_start());
            }
            for kind in &kinds {
                let _ = write!(line, " {} |", self.cell(*kind, row.case, row.figure));
            }
            for other in kinds.iter().filter(|k| **k != Kind::Fleetmq) {
                let _ = write!(line, " {} |", self.ratio(row.case, row.figure, *other));
            }
            let _ = writeln!(md, "{line}");
        }
        let _ = writeln!(md, "\n↑ higher is better, ↓ lower is better.\n");

        self.targets_section(&mut md);

        let failures: Vec<&Record> = self.records.iter().filter(|r| r.error.is_some()).collect();
        if !failures.is_empty() {
            let _ = writeln!(md, "## Failed measurements\n");
            for r in failures {
                let _ = writeln!(
                    md,
                    "- {} {} (rep {}): {}",
                    r.broker,
                    r.case,
                    r.rep + 1,
                    r.error.as_deref().unwrap_or("").replace('\n', " ")
                );
            }
            let _ = writeln!(md);
        }
        if !plots.is_empty() {
            let _ = writeln!(md, "## Plots\n");
            for plot in plots {
                let _ = writeln!(md, "![{plot}]({plot})\n");
            }
        }
        let _ = writeln!(
            md,
            "## Plan\n\n```json\n{}\n```",
            serde_json::to_string_pretty(&self.plan).unwrap_or_default()
        );
        md
    }

    fn crypto_section(&self, md: &mut String, crypto: &CryptoLimit) {
        let _ = writeln!(md, "## Crypto limit\n");
        let _ = writeln!(
            md,
            "`openssl speed ecdsap256 ecdhx25519 rsa2048` on core 0 ({}): ECDSA P-256 sign \
             {:.0}/s, verify {:.0}/s; X25519 {:.0}/s; RSA-2048 sign {:.0}/s. A full mutual \
             handshake costs the server one signature, two ECDSA verifications (device \
             certificate, CertificateVerify) and two X25519 operations: {:.0} µs with the \
             ECDSA certificate ⇒ at most **{:.0} handshakes/s per core**; {:.0} µs with the \
             RSA-2048 certificate ⇒ **{:.0}/s**.\n",
            crypto.openssl_version,
            crypto.ecdsa_p256_sign_per_sec,
            crypto.ecdsa_p256_verify_per_sec,
            crypto.x25519_per_sec,
            crypto.rsa2048_sign_per_sec,
            crypto.ecdsa_handshake_us,
            crypto.ecdsa_handshakes_per_sec,
            crypto.rsa_handshake_us,
            crypto.rsa_handshakes_per_sec,
        );
        let mut lines = Vec::new();
        for kind in self.kinds() {
            let share = |case: &str, limit: f64| {
                let rate = self.median(kind, case, "connects_per_sec");
                if rate.is_finite() {
                    format!("{:.0}%", 100.0 * rate / limit)
                } else {
                    "–".into()
                }
            };
            lines.push(format!(
                "| {kind} | {} | {} | {} |",
                share("connect/tls12-ecdsa/1core", crypto.ecdsa_handshakes_per_sec),
                share("connect/tls12-rsa/1core", crypto.rsa_handshakes_per_sec),
                share(
                    "connect/tls12-ecdsa/2cores",
                    2.0 * crypto.ecdsa_handshakes_per_sec
                ),
            ));
        }
        let _ = writeln!(
            md,
            "Share of the limit reached:\n\n| broker | ECDSA, 1 core | RSA, 1 core | ECDSA, 2 cores |\n|---|---:|---:|---:|\n{}\n",
            lines.join("\n")
        );
    }

    fn targets_section(&self, md: &mut String) {
        let f = Kind::Fleetmq;
        let mq = Kind::Mosquitto;
        let rq = Kind::Rumqttd;
        let get = |k: Kind, case: &str, fig: &str| self.median(k, case, fig);
        // (target, ours, goal, met)
        let mut rows: Vec<(String, f64, f64, bool)> = Vec::new();
        let mut at_least = |name: &str, ours: f64, goal: f64| {
            if ours.is_finite() && goal.is_finite() {
                rows.push((name.to_string(), ours, goal, ours >= goal));
            }
        };
        at_least(
            "mTLS ECDSA connects/s, 1 core ≥ 2.5× Mosquitto",
            get(f, "connect/tls12-ecdsa/1core", "connects_per_sec"),
            2.5 * get(mq, "connect/tls12-ecdsa/1core", "connects_per_sec"),
        );
        at_least(
            "same, per broker CPU-second ≥ 2.5× Mosquitto",
            get(
                f,
                "connect/tls12-ecdsa/1core",
                "connects_per_sec_per_broker_cpu",
            ),
            2.5 * get(
                mq,
                "connect/tls12-ecdsa/1core",
                "connects_per_sec_per_broker_cpu",
            ),
        );
        at_least(
            "mTLS ECDSA connects/s, both cores ≥ 3.5× Mosquitto",
            get(f, "connect/tls12-ecdsa/2cores", "connects_per_sec"),
            3.5 * get(mq, "connect/tls12-ecdsa/2cores", "connects_per_sec"),
        );
        for (case, fig, label) in [
            (
                "fan-in/qos0/max",
                "delivered_per_sec",
                "fan-in QoS 0 msgs/s ≥ rumqttd",
            ),
            (
                "fan-out/qos0/max",
                "delivered_per_sec",
                "fan-out QoS 0 deliveries/s ≥ rumqttd",
            ),
            (
                "fan-in/qos1/max",
                "delivered_per_sec",
                "fan-in QoS 1 msgs/s ≥ rumqttd",
            ),
        ] {
            at_least(label, get(f, case, fig), get(rq, case, fig));
        }
        let mut at_most = |name: &str, ours: f64, goal: f64| {
            if ours.is_finite() && goal.is_finite() {
                rows.push((name.to_string(), ours, goal, ours <= goal));
            }
        };
        at_most(
            "10,000 reconnect after restart ≥ 3× faster than Mosquitto (s)",
            get(f, "fleet/full-handshakes", "restart_all_secs"),
            get(mq, "fleet/full-handshakes", "restart_all_secs") / 3.0,
        );
        at_most(
            "same with resumption ≥ 5× faster than Mosquitto (s)",
            get(f, "fleet/resumption", "restart_all_secs"),
            get(mq, "fleet/resumption", "restart_all_secs") / 5.0,
        );
        at_most(
            "fan-in QoS 1 loss = 0 (%)",
            get(f, "fan-in/qos1/max", "lost_pct"),
            0.0,
        );
        at_most(
            "fan-in p99 at half Mosquitto's peak < Mosquitto's (ms)",
            get(f, "fan-in/qos0/fixed-rate", "latency_p99_ms"),
            get(mq, "fan-in/qos0/fixed-rate", "latency_p99_ms"),
        );
        at_most(
            "fan-out p99 at half Mosquitto's peak < Mosquitto's (ms)",
            get(f, "fan-out/qos0/fixed-rate", "latency_p99_ms"),
            get(mq, "fan-out/qos0/fixed-rate", "latency_p99_ms"),
        );
        at_most(
            "memory per held mTLS connection ≤ 18 KiB",
            get(f, "fleet/full-handshakes", "rss_per_conn_kib"),
            18.0,
        );
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "## Targets\n\n| target | fleetmq | goal | met | by |\n|---|---:|---:|:---:|---:|"
        );
        for (name, ours, goal, met) in rows {
            let by = if goal != 0.0 {
                format!("{:+.0}%", 100.0 * (ours - goal) / goal.abs())
            } else {
                format!("{ours:+.2}")
            };
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {by} |",
                fmt_value(ours),
                fmt_value(goal),
                if met { "yes" } else { "**no**" }
            );
        }
        let _ = writeln!(
            md,
            "\nWhy a target is missed and what would close it: [PROFILING.md](PROFILING.md).\n"
        );
    }

    fn plots(&self) -> Vec<(String, String)> {
        let kinds = self.kinds();
        let series: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
        let mut plots = Vec::new();
        let connect_cases = [
            ("connect/tls12-ecdsa/1core", "1.2 ECDSA, 1 core"),
            ("connect/tls12-rsa/1core", "1.2 RSA, 1 core"),
            ("connect/tls13-ecdsa/1core", "1.3 ECDSA, 1 core"),
            ("connect/tls12-ecdsa/2cores", "1.2 ECDSA, 2 cores"),
        ];
        let groups: Vec<String> = connect_cases.iter().map(|(_, l)| l.to_string()).collect();
        let values: Vec<Vec<f64>> = connect_cases
            .iter()
            .map(|(case, _)| {
                kinds
                    .iter()
                    .map(|k| self.median(*k, case, "connects_per_sec"))
                    .collect()
            })
            .collect();
        if values.iter().flatten().any(|v| v.is_finite()) {
            plots.push((
                "connect-rates.svg".to_string(),
                svg::bars(
                    "Mutual-TLS connects per second (median)",
                    "connects/s",
                    &groups,
                    &series,
                    &values,
                ),
            ));
        }
        let fleet_cases = [
            ("fleet/full-handshakes", "bringup_secs", "bring-up"),
            ("fleet/full-handshakes", "restart_all_secs", "restart"),
            (
                "fleet/resumption",
                "restart_all_secs",
                "restart, resumption",
            ),
            ("fleet/full-handshakes", "drop_all_secs", "drop"),
            ("fleet/resumption", "drop_all_secs", "drop, resumption"),
        ];
        let groups: Vec<String> = fleet_cases.iter().map(|(_, _, l)| l.to_string()).collect();
        let values: Vec<Vec<f64>> = fleet_cases
            .iter()
            .map(|(case, fig, _)| kinds.iter().map(|k| self.median(*k, case, fig)).collect())
            .collect();
        if values.iter().flatten().any(|v| v.is_finite()) {
            plots.push((
                "fleet-times.svg".to_string(),
                svg::bars(
                    &format!(
                        "{} devices: seconds until all CONNACKed (median)",
                        self.plan.fleet_devices
                    ),
                    "seconds",
                    &groups,
                    &series,
                    &values,
                ),
            ));
        }
        for (case, file, title) in [
            (
                "fan-in/qos0/fixed-rate",
                "latency-fan-in.svg",
                "Fan-in QoS 0 latency at half Mosquitto's peak rate",
            ),
            (
                "fan-out/qos0/fixed-rate",
                "latency-fan-out.svg",
                "Fan-out QoS 0 latency at half Mosquitto's peak rate",
            ),
            (
                "fan-in/qos1/max",
                "latency-fan-in-qos1-max.svg",
                "Fan-in QoS 1 latency at full load",
            ),
        ] {
            let lines: Vec<(String, Vec<(f64, f64)>)> = kinds
                .iter()
                .filter_map(|k| self.median_cdf(*k, case).map(|cdf| (k.to_string(), cdf)))
                .collect();
            if !lines.is_empty() {
                plots.push((file.to_string(), svg::distribution(title, &lines)));
            }
        }
        plots
    }

    /// The latency distribution of the repetition with the median p99.
    fn median_cdf(&self, kind: Kind, case: &str) -> Option<Vec<(f64, f64)>> {
        let mut runs: Vec<&Record> = self
            .records
            .iter()
            .filter(|r| r.broker == kind && r.case == case && r.error.is_none())
            .collect();
        runs.sort_by(|a, b| {
            let p = |r: &Record| r.figures.get("latency_p99_ms").copied().unwrap_or(0.0);
            p(a).total_cmp(&p(b))
        });
        let run = runs.get(runs.len() / 2)?;
        let cdf: Vec<(f64, f64)> =
            serde_json::from_value(run.detail.get("latency_cdf")?.clone()).ok()?;
        (!cdf.is_empty()).then_some(cdf)
    }
}

/// A figure for a table: thousands separated, or two or three significant
/// digits for small values.
pub fn fmt_value(value: f64) -> String {
    if !value.is_finite() {
        return "–".into();
    }
    let abs = value.abs();
    if abs >= 1000.0 {
        let rounded = value.round() as i64;
        let digits = rounded.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if rounded < 0 {
            out.insert(0, '-');
        }
        out
    } else if abs >= 100.0 {
        format!("{value:.0}")
    } else if abs >= 10.0 {
        format!("{value:.1}")
    } else if abs == 0.0 {
        "0".into()
    } else {
        format!("{value:.2}")
    }
}

/// What this machine is, for the report.
pub fn machine() -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let memory_gib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let nofile = fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .map(|l| {
                    let parts: Vec<&str> = l.split_whitespace().collect();
                    format!(
                        "{}/{}",
                        parts.get(3).unwrap_or(&"?"),
                        parts.get(4).unwrap_or(&"?")
                    )
                })
        })
        .unwrap_or_default();
    Machine {
        cpu_model,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib,
        kernel,
        nofile,
    }
}

/// Groups the records by case for quick checks (smoke): case -> brokers
/// that produced figures.
pub fn cases_with_figures(records: &[Record]) -> BTreeMap<String, Vec<Kind>> {
    let mut cases: BTreeMap<String, Vec<Kind>> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.error.is_none() && !r.figures.is_empty())
    {
        cases.entry(r.case.clone()).or_default().push(r.broker);
    }
    cases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_format_for_tables() {
        assert_eq!(fmt_value(1_234_567.4), "1,234,567");
        assert_eq!(fmt_value(123.4), "123");
        assert_eq!(fmt_value(12.34), "12.3");
        assert_eq!(fmt_value(1.234), "1.23");
        assert_eq!(fmt_value(f64::NAN), "–");
    }
}
