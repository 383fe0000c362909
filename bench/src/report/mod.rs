//! The report: every record as JSON, and a markdown page with the median
//! of each figure per broker, its spread over the repetitions, the ratios
//! fleetmq/Mosquitto and fleetmq/rumqttd, the crypto limit, the targets
//! met or missed, and the plots.
//!
//! This module owns the report's data (what `report.json` holds) and the
//! queries on it (median, spread, ratio of a figure); it must not measure.
//! The page is assembled in [`markdown`] from the prose templates in
//! `text/`, the figure table ([`figures`], data in `figures.md`), the
//! targets ([`targets`]) and the [`plots`]; [`machine`](mod@machine)
//! reads what the machine is.

mod figures;
mod machine;
mod markdown;
mod plots;
mod targets;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::case::Case;
use crate::crypto::CryptoLimit;
use crate::runner::broker::Kind;
use crate::runner::paired;
use crate::runner::plan::Plan;
use crate::runner::Record;
use crate::stats::median;
use crate::tls::Verify;

pub use machine::machine;

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

    /// The median of a broker's per-repetition shares of the crypto limit
    /// measured just before its storms ([`paired`]; NaN: the records do
    /// not carry them, as with `--no-crypto` or an older report).
    pub fn paired_share(&self, kind: Kind, case: Case) -> f64 {
        self.median(kind, case.name(), paired::SHARE)
    }

    /// A broker's share of the crypto limit in a connect case: the paired
    /// median when there is one, else the median rate over the run's one
    /// limit (NaN: neither). One place for the crypto table and its target.
    pub fn crypto_share(&self, kind: Kind, case: Case) -> f64 {
        let paired = self.paired_share(kind, case);
        if paired.is_finite() {
            return paired;
        }
        let rate = self.median(kind, case.name(), "connects_per_sec");
        self.crypto
            .as_ref()
            .and_then(|crypto| crypto.handshakes_per_sec(case))
            .map_or(f64::NAN, |limit| rate / limit)
    }

    /// The lowest and highest paired limit of a case over every broker and
    /// repetition (None: no record carries one).
    pub fn paired_limits(&self, case: Case) -> Option<(f64, f64)> {
        self.records
            .iter()
            .filter(|r| r.case == case.name())
            .filter_map(|r| r.figures.get(paired::LIMIT).copied())
            .filter(|limit| limit.is_finite())
            .fold(None, |range, limit| match range {
                None => Some((limit, limit)),
                Some((lo, hi)) => Some((limit.min(lo), limit.max(hi))),
            })
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
        fs::write(dir.join("report.md"), self.markdown(&names)?)?;
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
    use crate::case::Case;

    /// fleetmq's ECDSA 1-core storm of repetition `rep` with `figures`.
    pub(super) fn storm(rep: usize, figures: &[(&str, f64)]) -> Record {
        Record {
            broker: Kind::Fleetmq,
            rep,
            case: Case::Tls12Ecdsa1Core.name().to_string(),
            figures: figures.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            detail: serde_json::Value::Null,
            error: None,
        }
    }

    /// A report of fleetmq alone with `records` and, when given, a one-off
    /// crypto limit of `limit` ECDSA handshakes/s per core.
    pub(super) fn report_of(records: Vec<Record>, limit: Option<f64>) -> Report {
        Report {
            generated_at: String::new(),
            command: String::new(),
            plan: Plan::smoke(),
            verify: Verify::Sampled,
            machine: Machine {
                cpu_model: String::new(),
                cores: 2,
                memory_gib: 1.0,
                kernel: String::new(),
                nofile: String::new(),
            },
            brokers: vec![BrokerInfo {
                kind: Kind::Fleetmq,
                version: String::new(),
                bin: String::new(),
            }],
            crypto: limit.map(|limit| CryptoLimit {
                ecdsa_handshakes_per_sec: limit,
                ..CryptoLimit::default()
            }),
            records,
        }
    }

    /// Three repetitions with paired limits and shares 0.96, 0.90, 0.97:
    /// 4,320 of 4,500, 4,500 of 5,000 and 3,880 of 4,000 connects/s.
    pub(super) fn paired_reps() -> Vec<Record> {
        [(4_320.0, 4_500.0), (4_500.0, 5_000.0), (3_880.0, 4_000.0)]
            .iter()
            .enumerate()
            .map(|(rep, (rate, limit))| {
                storm(
                    rep,
                    &[
                        ("connects_per_sec", *rate),
                        (paired::LIMIT, *limit),
                        (paired::SHARE, rate / limit),
                    ],
                )
            })
            .collect()
    }

    #[test]
    fn crypto_share_is_the_median_of_paired_shares_else_rate_over_the_limit() {
        let paired = report_of(paired_reps(), Some(5_000.0));
        let share = paired.crypto_share(Kind::Fleetmq, Case::Tls12Ecdsa1Core);
        assert!((share - 0.96).abs() < 1e-9, "{share}");
        assert_eq!(
            paired.paired_limits(Case::Tls12Ecdsa1Core),
            Some((4_000.0, 5_000.0))
        );
        // The same storms without paired figures: median rate 4,320 over
        // the one limit of 5,000.
        let records = [4_320.0, 4_500.0, 3_880.0]
            .iter()
            .enumerate()
            .map(|(rep, rate)| storm(rep, &[("connects_per_sec", *rate)]))
            .collect();
        let old = report_of(records, Some(5_000.0));
        let share = old.crypto_share(Kind::Fleetmq, Case::Tls12Ecdsa1Core);
        assert!((share - 0.864).abs() < 1e-9, "{share}");
        assert_eq!(old.paired_limits(Case::Tls12Ecdsa1Core), None);
        assert!(report_of(Vec::new(), None)
            .crypto_share(Kind::Fleetmq, Case::Tls12Ecdsa1Core)
            .is_nan());
    }

    #[test]
    fn values_format_for_tables() {
        assert_eq!(fmt_value(1_234_567.4), "1,234,567");
        assert_eq!(fmt_value(123.4), "123");
        assert_eq!(fmt_value(12.34), "12.3");
        assert_eq!(fmt_value(1.234), "1.23");
        assert_eq!(fmt_value(f64::NAN), "–");
    }
}
