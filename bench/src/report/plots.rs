//! The report's plots: which cases each SVG shows and under which title,
//! as tables of data, turned into bars and latency distributions by
//! [`crate::svg`].
//!
//! It owns the choice of plots; the drawing belongs to `svg`.

use super::Report;
use crate::case::Case;
use crate::runner::broker::Kind;
use crate::runner::Record;
use crate::svg;

/// The bars of `connect-rates.svg`: connects/s per case.
const CONNECT_BARS: [(Case, &str); 5] = [
    (Case::Tls12Ecdsa1Core, "1.2 ECDSA, 1 core"),
    // First connects, 1 core (the labels have about 16 characters of room).
    (Case::Tls12EcdsaFirst1Core, "1.2 ECDSA, first"),
    (Case::Tls12Rsa1Core, "1.2 RSA, 1 core"),
    (Case::Tls13Ecdsa1Core, "1.3 ECDSA, 1 core"),
    (Case::Tls12Ecdsa2Cores, "1.2 ECDSA, 2 cores"),
];

/// The bars of `fleet-times.svg`: seconds until the fleet is back.
const FLEET_BARS: [(Case, &str, &str); 5] = [
    (Case::FleetFullHandshakes, "bringup_secs", "bring-up"),
    (Case::FleetFullHandshakes, "restart_all_secs", "restart"),
    (
        Case::FleetResumption,
        "restart_all_secs",
        "restart, resumption",
    ),
    (Case::FleetFullHandshakes, "drop_all_secs", "drop"),
    (Case::FleetResumption, "drop_all_secs", "drop, resumption"),
];

/// The latency distributions: case, file, title.
const LATENCY_PLOTS: [(Case, &str, &str); 3] = [
    (
        Case::FanInQos0FixedRate,
        "latency-fan-in.svg",
        "Fan-in QoS 0 latency at half Mosquitto's peak rate",
    ),
    (
        Case::FanOutQos0FixedRate,
        "latency-fan-out.svg",
        "Fan-out QoS 0 latency at half Mosquitto's peak rate",
    ),
    (
        Case::FanInQos1Max,
        "latency-fan-in-qos1-max.svg",
        "Fan-in QoS 1 latency at full load",
    ),
];

impl Report {
    /// Every plot with something to show, as (file name, SVG).
    pub(super) fn plots(&self) -> Vec<(String, String)> {
        let kinds = self.kinds();
        let series: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
        let mut plots = Vec::new();
        let groups: Vec<String> = CONNECT_BARS.iter().map(|(_, l)| l.to_string()).collect();
        let values: Vec<Vec<f64>> = CONNECT_BARS
            .iter()
            .map(|(case, _)| {
                kinds
                    .iter()
                    .map(|k| self.median(*k, case.name(), "connects_per_sec"))
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
        let groups: Vec<String> = FLEET_BARS.iter().map(|(_, _, l)| l.to_string()).collect();
        let values: Vec<Vec<f64>> = FLEET_BARS
            .iter()
            .map(|(case, fig, _)| {
                kinds
                    .iter()
                    .map(|k| self.median(*k, case.name(), fig))
                    .collect()
            })
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
        for (case, file, title) in LATENCY_PLOTS {
            let lines: Vec<(String, Vec<(f64, f64)>)> = kinds
                .iter()
                .filter_map(|k| {
                    self.median_cdf(*k, case.name())
                        .map(|cdf| (k.to_string(), cdf))
                })
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
