//! Handshake statistics for the dashboard's handshake panel: durations of
//! TLS handshakes (TCP accept -> TLS done) split one-way vs mutual and full
//! vs resumed, the median of each part of them (decision 0142) with the
//! mutual-vs-one-way and full-vs-resumed comparison, and failed handshakes
//! by reason.
//!
//! Percentiles are exact over a bounded window of the most recent
//! handshakes per group (what a lab engineer tuning a device looks at);
//! the histogram counts every handshake since start, in the same buckets as
//! the Prometheus histogram, so the page and Grafana agree.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::Serialize;

use fleetmq_core::peer::{AuthMode, HandshakeSplit, PeerCertificate};

/// Histogram bucket upper bounds, in seconds. From half a millisecond (a
/// resumed handshake on loopback) to 30 s (a mutual handshake of a classic
/// ESP32 over bad WiFi takes 2-5 s; the default handshake timeout is 10 s).
pub const DURATION_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0,
];

/// Handshakes per group kept for percentiles.
const WINDOW: usize = 2048;

/// Durations of one group of handshakes.
#[derive(Debug, Default, Clone)]
struct Series {
    /// Handshakes since start.
    count: u64,
    /// Most recent durations in seconds, oldest first.
    recent: VecDeque<f64>,
    /// Handshakes since start per bucket of [`DURATION_BUCKETS`], plus one
    /// for longer ones.
    buckets: Vec<u64>,
    /// The most recent handshakes' parts (decision 0142), in seconds, in
    /// the order of [`PART_NAMES`]; a part the kernel did not give is left
    /// out of its window.
    parts: [VecDeque<f64>; 5],
}

/// The parts of a handshake, as the API names them.
const PART_NAMES: [&str; 5] = [
    "broker_flight",
    "client_wait",
    "network_rtt",
    "device",
    "broker_verify",
];

fn part_values(split: &HandshakeSplit) -> [Option<Duration>; 5] {
    [
        Some(split.broker_flight),
        Some(split.client_wait),
        split.network_rtt,
        split.device(),
        Some(split.broker_verify),
    ]
}

impl Series {
    fn record(&mut self, seconds: f64) {
        self.count += 1;
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(seconds);
        if self.buckets.is_empty() {
            self.buckets = vec![0; DURATION_BUCKETS.len() + 1];
        }
        let index = DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        if let Some(bucket) = self.buckets.get_mut(index) {
            *bucket += 1;
        }
    }

    fn record_split(&mut self, split: &HandshakeSplit) {
        for (window, value) in self.parts.iter_mut().zip(part_values(split)) {
            if let Some(value) = value {
                if window.len() == WINDOW {
                    window.pop_front();
                }
                window.push_back(value.as_secs_f64());
            }
        }
    }

    /// The median of each part over its window.
    fn parts_p50(&self) -> BTreeMap<&'static str, Option<f64>> {
        PART_NAMES
            .iter()
            .zip(&self.parts)
            .map(|(name, window)| {
                let mut sorted: Vec<f64> = window.iter().copied().collect();
                sorted.sort_by(f64::total_cmp);
                (*name, percentile_ms(&sorted, 0.50))
            })
            .collect()
    }
}

/// One group's numbers, as the API shows them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HandshakeGroup {
    /// `one_way` or `mutual`.
    pub auth: &'static str,
    pub resumed: bool,
    /// Handshakes since start.
    pub count: u64,
    /// Handshakes the percentiles are computed over (the most recent).
    pub window: usize,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Handshakes since start per bucket of `buckets_ms` (upper bounds),
    /// the last entry counting longer ones.
    pub histogram: Vec<u64>,
    /// Median of each part of the handshake over the window: the broker's
    /// flight, the wait for the client, the network round trip, the
    /// device's own time, the broker's checks of the reply.
    pub parts_p50_ms: BTreeMap<&'static str, Option<f64>>,
}

/// The fleet's answer to "what does mutual TLS cost, and what does
/// resumption save", from the medians of the groups (full handshakes only
/// for the first; mutual ones for the second).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct HandshakeComparison {
    /// Median handshake, mutual full less one-way full.
    pub mutual_extra_ms: Option<f64>,
    /// Median device part, mutual full less one-way full.
    pub mutual_extra_device_ms: Option<f64>,
    /// Median handshake, mutual full less mutual resumed.
    pub resumption_saves_ms: Option<f64>,
    /// Median device part, mutual full less mutual resumed.
    pub resumption_saves_device_ms: Option<f64>,
    /// The same in one sentence, for the dashboard; None without data.
    pub text: Option<String>,
}

/// `GET /api/handshakes/summary`, without the certificate list (the
/// registry adds it).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HandshakeSummary {
    /// Upper bounds of the histogram buckets, in milliseconds.
    pub buckets_ms: Vec<f64>,
    /// Four groups: one-way and mutual, each full and resumed.
    pub groups: Vec<HandshakeGroup>,
    /// Failed handshakes since start by reason (`unknown_ca`, `timeout`, ...).
    pub failures: BTreeMap<&'static str, u64>,
    pub failures_total: u64,
    /// The last failed handshakes, newest first, each in the lab's words
    /// (which certificate, what is wrong, what to do).
    pub recent_failures: Vec<FailedHandshake>,
    /// Mutual vs one-way, full vs resumed.
    pub comparison: HandshakeComparison,
    /// Full mutual handshakes by the client certificate's key type
    /// (`ECDSA P-256`, `RSA-2048`, ...): what the device signs with.
    pub mutual_full_by_key_type: Vec<KeyedGroup>,
    /// Full mutual handshakes by device group (the certificate's first
    /// OU; `(no OU)` without one).
    pub mutual_full_by_device_group: Vec<KeyedGroup>,
}

/// Full mutual handshakes of one key type or device group.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KeyedGroup {
    pub name: String,
    pub count: u64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub parts_p50_ms: BTreeMap<&'static str, Option<f64>>,
}

/// Key types or device groups tracked one by one; more share "other",
/// so a fleet of a thousand OUs cannot grow the broker's memory.
const MAX_KEYED: usize = 32;

/// Handshakes by a name (key type, device group), bounded.
#[derive(Debug, Default)]
struct Keyed(BTreeMap<String, Series>);

impl Keyed {
    fn record(&mut self, name: &str, seconds: f64, split: Option<&HandshakeSplit>) {
        let name = if self.0.contains_key(name) || self.0.len() < MAX_KEYED {
            name
        } else {
            "other"
        };
        // Looked up before inserting: a known name (nearly every
        // handshake) costs no allocation.
        let series = match self.0.get_mut(name) {
            Some(series) => series,
            None => self.0.entry(name.to_string()).or_default(),
        };
        series.record(seconds);
        if let Some(split) = split {
            series.record_split(split);
        }
    }

    fn groups(&self) -> Vec<KeyedGroup> {
        self.0
            .iter()
            .map(|(name, series)| {
                let mut sorted: Vec<f64> = series.recent.iter().copied().collect();
                sorted.sort_by(f64::total_cmp);
                KeyedGroup {
                    name: name.clone(),
                    count: series.count,
                    p50_ms: percentile_ms(&sorted, 0.50),
                    p90_ms: percentile_ms(&sorted, 0.90),
                    parts_p50_ms: series.parts_p50(),
                }
            })
            .collect()
    }
}

/// Failed handshakes the panel lists.
const RECENT_FAILURES: usize = 20;

/// One failed handshake, as the panel lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FailedHandshake {
    pub listener: String,
    pub peer: String,
    pub reason: &'static str,
    /// The log line's sentence.
    pub detail: String,
}

/// Handshake durations and failures since the broker started.
#[derive(Debug, Default)]
pub struct HandshakeStats {
    /// Indexed by [`group_index`].
    series: [Series; 4],
    failures: BTreeMap<&'static str, u64>,
    /// Newest last, at most [`RECENT_FAILURES`].
    recent_failures: VecDeque<FailedHandshake>,
    /// Full mutual handshakes by key type and by device group.
    by_key_type: Keyed,
    by_device_group: Keyed,
}

const GROUPS: [(AuthMode, bool); 4] = [
    (AuthMode::OneWay, false),
    (AuthMode::OneWay, true),
    (AuthMode::Mutual, false),
    (AuthMode::Mutual, true),
];

fn group_index(auth: AuthMode, resumed: bool) -> Option<usize> {
    GROUPS.iter().position(|g| *g == (auth, resumed))
}

impl HandshakeStats {
    /// Records a finished TLS handshake without its parts.
    #[cfg(test)]
    pub fn record(&mut self, auth: AuthMode, resumed: bool, duration: Duration) {
        self.record_with_split(auth, resumed, duration, None);
    }

    /// Records a finished TLS handshake with its parts, without a
    /// certificate.
    #[cfg(test)]
    pub fn record_with_split(
        &mut self,
        auth: AuthMode,
        resumed: bool,
        duration: Duration,
        split: Option<&HandshakeSplit>,
    ) {
        self.record_handshake(auth, resumed, duration, split, None);
    }

    /// Records a finished TLS handshake with its parts, if known, and the
    /// client certificate it verified; plain connections are ignored.
    pub fn record_handshake(
        &mut self,
        auth: AuthMode,
        resumed: bool,
        duration: Duration,
        split: Option<&HandshakeSplit>,
        cert: Option<&PeerCertificate>,
    ) {
        let seconds = duration.as_secs_f64();
        if let Some(series) = group_index(auth, resumed).and_then(|i| self.series.get_mut(i)) {
            series.record(seconds);
            if let Some(split) = split {
                series.record_split(split);
            }
        }
        if let (AuthMode::Mutual, false, Some(cert)) = (auth, resumed, cert) {
            self.by_key_type.record(&cert.key_type, seconds, split);
            let group = cert
                .organizational_units
                .first()
                .map_or("(no OU)", |unit| &**unit);
            self.by_device_group.record(group, seconds, split);
        }
    }

    /// Records a failed handshake.
    pub fn failed(&mut self, reason: &'static str) {
        *self.failures.entry(reason).or_insert(0) += 1;
    }

    /// Remembers a failed handshake for the panel's list.
    pub fn remember_failure(&mut self, failure: FailedHandshake) {
        if self.recent_failures.len() == RECENT_FAILURES {
            self.recent_failures.pop_front();
        }
        self.recent_failures.push_back(failure);
    }

    pub fn summary(&self) -> HandshakeSummary {
        let groups = GROUPS
            .iter()
            .zip(&self.series)
            .map(|((auth, resumed), series)| {
                let mut sorted: Vec<f64> = series.recent.iter().copied().collect();
                sorted.sort_by(f64::total_cmp);
                HandshakeGroup {
                    auth: auth.as_str(),
                    resumed: *resumed,
                    count: series.count,
                    window: sorted.len(),
                    p50_ms: percentile_ms(&sorted, 0.50),
                    p90_ms: percentile_ms(&sorted, 0.90),
                    p99_ms: percentile_ms(&sorted, 0.99),
                    max_ms: sorted.last().map(|s| round_ms(*s)),
                    histogram: if series.buckets.is_empty() {
                        vec![0; DURATION_BUCKETS.len() + 1]
                    } else {
                        series.buckets.clone()
                    },
                    parts_p50_ms: series.parts_p50(),
                }
            })
            .collect::<Vec<_>>();
        let comparison = compare(&groups);
        HandshakeSummary {
            buckets_ms: DURATION_BUCKETS.iter().map(|s| s * 1000.0).collect(),
            groups,
            failures_total: self.failures.values().sum(),
            failures: self.failures.clone(),
            recent_failures: self.recent_failures.iter().rev().cloned().collect(),
            comparison,
            mutual_full_by_key_type: self.by_key_type.groups(),
            mutual_full_by_device_group: self.by_device_group.groups(),
        }
    }
}

/// [`HandshakeComparison`] from the four groups (in [`GROUPS`] order).
fn compare(groups: &[HandshakeGroup]) -> HandshakeComparison {
    let (Some(one_way), Some(mutual), Some(resumed)) =
        (groups.first(), groups.get(2), groups.get(3))
    else {
        return HandshakeComparison::default();
    };
    let less = |a: Option<f64>, b: Option<f64>| Some(round_ms((a? - b?) / 1000.0));
    let device = |g: &HandshakeGroup| g.parts_p50_ms.get("device").copied().flatten();
    let mut comparison = HandshakeComparison {
        mutual_extra_ms: less(mutual.p50_ms, one_way.p50_ms),
        mutual_extra_device_ms: less(device(mutual), device(one_way)),
        resumption_saves_ms: less(mutual.p50_ms, resumed.p50_ms),
        resumption_saves_device_ms: less(device(mutual), device(resumed)),
        text: None,
    };
    let mut sentences = Vec::new();
    match (comparison.mutual_extra_ms, comparison.mutual_extra_device_ms) {
        (Some(extra), _) if extra <= 0.0 => sentences.push(
            "Mutual TLS costs your devices no measurable time over one-way TLS (median, full handshakes).".to_string(),
        ),
        (Some(extra), Some(device)) if device > 0.0 => sentences.push(format!(
            "Mutual TLS costs your devices {} per connect over one-way TLS, {} of it their own work (median, full handshakes).",
            fmt_ms(extra),
            fmt_ms(device.min(extra))
        )),
        (Some(extra), _) => sentences.push(format!(
            "Mutual TLS costs your devices {} per connect over one-way TLS (median, full handshakes).",
            fmt_ms(extra)
        )),
        (None, _) => {}
    }
    match comparison.resumption_saves_ms {
        Some(saves) if saves > 0.0 => sentences.push(format!(
            "Resuming a mutual TLS session saves {} per connect.",
            fmt_ms(saves)
        )),
        Some(_) => {
            sentences.push("Resuming a mutual TLS session saves no measurable time.".to_string())
        }
        None => {}
    }
    comparison.text = (!sentences.is_empty()).then(|| sentences.join(" "));
    comparison
}

/// "12.3 ms" or "1.40 s".
fn fmt_ms(ms: f64) -> String {
    if ms.abs() >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.1} ms")
    }
}

/// Nearest-rank percentile of sorted seconds, in milliseconds.
fn percentile_ms(sorted: &[f64], quantile: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted.get(index).map(|s| round_ms(*s))
}

fn round_ms(seconds: f64) -> f64 {
    (seconds * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_per_group() {
        let mut stats = HandshakeStats::default();
        for ms in 1..=100 {
            stats.record(AuthMode::Mutual, false, Duration::from_millis(ms));
        }
        stats.record(AuthMode::OneWay, true, Duration::from_micros(700));
        stats.record(AuthMode::Plain, false, Duration::from_secs(1));
        let summary = stats.summary();
        let mutual = &summary.groups[2];
        assert_eq!((mutual.auth, mutual.resumed), ("mutual", false));
        assert_eq!(mutual.count, 100);
        assert_eq!(mutual.p50_ms, Some(50.0));
        assert_eq!(mutual.p90_ms, Some(90.0));
        assert_eq!(mutual.p99_ms, Some(99.0));
        assert_eq!(mutual.max_ms, Some(100.0));
        let resumed = &summary.groups[1];
        assert_eq!(
            (resumed.auth, resumed.resumed, resumed.count),
            ("one_way", true, 1)
        );
        assert_eq!(resumed.p50_ms, Some(0.7));
        assert_eq!(summary.groups[0].p50_ms, None);
        let total: u64 = summary.groups.iter().map(|g| g.count).sum();
        assert_eq!(total, 101, "plain connections are not TLS handshakes");
    }

    #[test]
    fn parts_and_the_comparison_come_from_the_medians() {
        let mut stats = HandshakeStats::default();
        let split = |device_ms: u64| HandshakeSplit {
            broker_flight: Duration::from_millis(2),
            client_wait: Duration::from_millis(device_ms + 10),
            network_rtt: Some(Duration::from_millis(10)),
            broker_verify: Duration::from_millis(1),
            broker_queue: Duration::ZERO,
            broker_scheduling: Duration::ZERO,
        };
        for _ in 0..3 {
            stats.record_with_split(
                AuthMode::OneWay,
                false,
                Duration::from_millis(300),
                Some(&split(200)),
            );
            stats.record_with_split(
                AuthMode::Mutual,
                false,
                Duration::from_millis(1700),
                Some(&split(1600)),
            );
            stats.record_with_split(
                AuthMode::Mutual,
                true,
                Duration::from_millis(100),
                Some(&split(50)),
            );
        }
        let summary = stats.summary();
        let mutual = &summary.groups[2];
        assert_eq!(mutual.parts_p50_ms["device"], Some(1600.0));
        assert_eq!(mutual.parts_p50_ms["network_rtt"], Some(10.0));
        assert_eq!(summary.groups[0].parts_p50_ms["broker_flight"], Some(2.0));
        let comparison = &summary.comparison;
        assert_eq!(comparison.mutual_extra_ms, Some(1400.0));
        assert_eq!(comparison.mutual_extra_device_ms, Some(1400.0));
        assert_eq!(comparison.resumption_saves_ms, Some(1600.0));
        assert_eq!(comparison.resumption_saves_device_ms, Some(1550.0));
        assert_eq!(
            comparison.text.as_deref(),
            Some("Mutual TLS costs your devices 1.40 s per connect over one-way TLS, 1.40 s of it their own work (median, full handshakes). Resuming a mutual TLS session saves 1.60 s per connect.")
        );
        assert_eq!(HandshakeStats::default().summary().comparison.text, None);
    }

    #[test]
    fn mutual_handshakes_are_grouped_by_key_type_and_ou_within_bounds() {
        let mut stats = HandshakeStats::default();
        let cert = |key: &str, ou: Option<&str>| PeerCertificate {
            key_type: key.to_string().into(),
            organizational_units: ou.map(|ou| vec![ou.into()]).unwrap_or_default().into(),
            ..blank()
        };
        for (key, ou, ms) in [
            ("ECDSA P-256", Some("sensors"), 300),
            ("ECDSA P-256", Some("sensors"), 310),
            ("RSA-2048", Some("gateways"), 900),
            ("RSA-2048", None, 950),
        ] {
            stats.record_handshake(
                AuthMode::Mutual,
                false,
                Duration::from_millis(ms),
                None,
                Some(&cert(key, ou)),
            );
        }
        // Resumed and one-way handshakes sign nothing: not grouped.
        stats.record_handshake(
            AuthMode::Mutual,
            true,
            Duration::from_millis(5),
            None,
            Some(&cert("RSA-2048", None)),
        );
        let summary = stats.summary();
        let keys: Vec<(&str, u64)> = summary
            .mutual_full_by_key_type
            .iter()
            .map(|g| (g.name.as_str(), g.count))
            .collect();
        assert_eq!(keys, [("ECDSA P-256", 2), ("RSA-2048", 2)]);
        assert_eq!(summary.mutual_full_by_key_type[1].p50_ms, Some(900.0));
        let groups: Vec<&str> = summary
            .mutual_full_by_device_group
            .iter()
            .map(|g| g.name.as_str())
            .collect();
        assert_eq!(groups, ["(no OU)", "gateways", "sensors"]);
        for n in 0..100 {
            stats.record_handshake(
                AuthMode::Mutual,
                false,
                Duration::from_millis(1),
                None,
                Some(&cert("RSA-2048", Some(&format!("ou-{n}")))),
            );
        }
        let groups = stats.summary().mutual_full_by_device_group;
        assert_eq!(groups.len(), MAX_KEYED + 1, "bounded, the rest under other");
        assert!(groups.iter().any(|g| g.name == "other" && g.count > 0));
    }

    fn blank() -> PeerCertificate {
        PeerCertificate {
            cn: None,
            subject: String::new(),
            organizational_units: [].into(),
            san_dns: Vec::new(),
            san_uri: Vec::new(),
            san_email: Vec::new(),
            serial: "".into(),
            fingerprint_sha256: "".into(),
            issuer: "".into(),
            not_before: 0,
            not_after: 0,
            version: 3,
            weakness: None,
            key_type: "".into(),
        }
    }

    #[test]
    fn histogram_uses_the_metric_buckets() {
        let mut stats = HandshakeStats::default();
        stats.record(AuthMode::OneWay, false, Duration::from_micros(400));
        stats.record(AuthMode::OneWay, false, Duration::from_millis(2000));
        stats.record(AuthMode::OneWay, false, Duration::from_secs(60));
        let summary = stats.summary();
        let histogram = &summary.groups[0].histogram;
        assert_eq!(histogram.len(), DURATION_BUCKETS.len() + 1);
        assert_eq!(histogram[0], 1, "0.4 ms <= 0.5 ms");
        let two_seconds = DURATION_BUCKETS.iter().position(|b| *b == 2.0).unwrap();
        assert_eq!(histogram[two_seconds], 1, "bounds are inclusive");
        assert_eq!(histogram[DURATION_BUCKETS.len()], 1, "overflow bucket");
        assert_eq!(summary.buckets_ms[0], 0.5);
    }

    #[test]
    fn window_keeps_the_most_recent() {
        let mut stats = HandshakeStats::default();
        for _ in 0..WINDOW {
            stats.record(AuthMode::Mutual, true, Duration::from_secs(5));
        }
        for _ in 0..WINDOW {
            stats.record(AuthMode::Mutual, true, Duration::from_millis(1));
        }
        let group = &stats.summary().groups[3];
        assert_eq!(group.count, 2 * WINDOW as u64);
        assert_eq!(group.window, WINDOW);
        assert_eq!(group.p99_ms, Some(1.0));
    }

    #[test]
    fn failures_are_counted_by_reason() {
        let mut stats = HandshakeStats::default();
        stats.failed("unknown_ca");
        stats.failed("unknown_ca");
        stats.failed("timeout");
        let summary = stats.summary();
        assert_eq!(summary.failures.get("unknown_ca"), Some(&2));
        assert_eq!(summary.failures_total, 3);
    }
}
