//! The "Targets" table of the report: the goals fleetmq set itself against
//! Mosquitto and rumqttd (or a fixed figure), as a table of data, and
//! whether the medians meet them.
//!
//! It owns the targets and their rendering; it must not measure anything.

use std::fmt::Write;

use super::{fmt_value, Report};
use crate::case::Case;
use crate::runner::broker::Kind;

/// Which side of the goal fleetmq's median must be on.
#[derive(Clone, Copy)]
enum Test {
    AtLeast,
    AtMost,
}

/// The figure fleetmq's median is held against.
#[derive(Clone, Copy)]
enum Goal {
    /// The other broker's median of the same figure, times a factor.
    Times(Kind, f64),
    /// The other broker's median of the same figure, divided (a time that
    /// must be that many times shorter).
    Over(Kind, f64),
    /// A figure of its own.
    Fixed(f64),
}

struct Target {
    label: &'static str,
    case: Case,
    figure: &'static str,
    test: Test,
    goal: Goal,
}

const fn target(
    label: &'static str,
    case: Case,
    figure: &'static str,
    test: Test,
    goal: Goal,
) -> Target {
    Target {
        label,
        case,
        figure,
        test,
        goal,
    }
}

use Goal::{Fixed, Over, Times};
use Kind::{Mosquitto, Rumqttd};
use Test::{AtLeast, AtMost};

/// The targets, in the order of the report.
#[rustfmt::skip]
const TARGETS: &[Target] = &[
    target("mTLS ECDSA connects/s, 1 core ≥ 2.5× Mosquitto",
        Case::Tls12Ecdsa1Core, "connects_per_sec", AtLeast, Times(Mosquitto, 2.5)),
    target("same, per broker CPU-second ≥ 2.5× Mosquitto",
        Case::Tls12Ecdsa1Core, "connects_per_sec_per_broker_cpu", AtLeast, Times(Mosquitto, 2.5)),
    target("mTLS ECDSA connects/s, both cores ≥ 3.5× Mosquitto",
        Case::Tls12Ecdsa2Cores, "connects_per_sec", AtLeast, Times(Mosquitto, 3.5)),
    target("fan-in QoS 0 msgs/s ≥ rumqttd",
        Case::FanInQos0Max, "delivered_per_sec", AtLeast, Times(Rumqttd, 1.0)),
    target("fan-out QoS 0 deliveries/s ≥ rumqttd",
        Case::FanOutQos0Max, "delivered_per_sec", AtLeast, Times(Rumqttd, 1.0)),
    target("fan-in QoS 1 msgs/s ≥ rumqttd",
        Case::FanInQos1Max, "delivered_per_sec", AtLeast, Times(Rumqttd, 1.0)),
    target("10,000 reconnect after restart ≥ 3× faster than Mosquitto (s)",
        Case::FleetFullHandshakes, "restart_all_secs", AtMost, Over(Mosquitto, 3.0)),
    target("same with resumption ≥ 5× faster than Mosquitto (s)",
        Case::FleetResumption, "restart_all_secs", AtMost, Over(Mosquitto, 5.0)),
    target("fan-in QoS 1 loss = 0 (%)",
        Case::FanInQos1Max, "lost_pct", AtMost, Fixed(0.0)),
    target("fan-in p99 at half Mosquitto's peak < Mosquitto's (ms)",
        Case::FanInQos0FixedRate, "latency_p99_ms", AtMost, Times(Mosquitto, 1.0)),
    target("fan-out p99 at half Mosquitto's peak < Mosquitto's (ms)",
        Case::FanOutQos0FixedRate, "latency_p99_ms", AtMost, Times(Mosquitto, 1.0)),
    target("memory per held mTLS connection ≤ 18 KiB",
        Case::FleetFullHandshakes, "rss_per_conn_kib", AtMost, Fixed(18.0)),
];

/// Where the table sends a reader who wants to know why.
const FOOTER: &str =
    "\nWhy a target is missed and what would close it: [PROFILING.md](PROFILING.md).\n";

impl Report {
    /// Appends the "Targets" section: one line per target both sides of
    /// which were measured (nothing when none was).
    pub(super) fn targets_section(&self, md: &mut String) {
        // (target, ours, goal, met)
        let mut rows: Vec<(&str, f64, f64, bool)> = Vec::new();
        for target in TARGETS {
            let case = target.case.name();
            let ours = self.median(Kind::Fleetmq, case, target.figure);
            let goal = match target.goal {
                Times(kind, factor) => factor * self.median(kind, case, target.figure),
                Over(kind, divisor) => self.median(kind, case, target.figure) / divisor,
                Fixed(goal) => goal,
            };
            if ours.is_finite() && goal.is_finite() {
                let met = match target.test {
                    AtLeast => ours >= goal,
                    AtMost => ours <= goal,
                };
                rows.push((target.label, ours, goal, met));
            }
        }
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
        let _ = writeln!(md, "{FOOTER}");
    }
}
