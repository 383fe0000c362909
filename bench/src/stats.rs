//! Measuring: a process-wide clock for payload stamps, latency samples with
//! percentiles, and CPU time and memory of a process read from `/proc`.

use std::fs;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The instant payload stamps count from (first use in this process).
pub fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since [`epoch`], for payload stamps.
pub fn now_nanos() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// Latency samples in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    micros: Vec<u32>,
    sorted: bool,
}

/// The summary of a [`Samples`] that reports keep.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl Samples {
    pub fn with_capacity(capacity: usize) -> Samples {
        Samples {
            micros: Vec::with_capacity(capacity),
            sorted: false,
        }
    }

    pub fn push(&mut self, elapsed: Duration) {
        self.micros
            .push(elapsed.as_micros().min(u32::MAX as u128) as u32);
        self.sorted = false;
    }

    pub fn push_nanos(&mut self, nanos: u64) {
        self.micros.push((nanos / 1000).min(u32::MAX as u64) as u32);
        self.sorted = false;
    }

    pub fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
        self.sorted = false;
    }

    pub fn len(&self) -> usize {
        self.micros.len()
    }

    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    fn sort(&mut self) {
        if !self.sorted {
            self.micros.sort_unstable();
            self.sorted = true;
        }
    }

    /// The value at quantile `q` (0..=1), nearest rank.
    pub fn quantile(&mut self, q: f64) -> f64 {
        self.sort();
        if self.is_empty() {
            return 0.0;
        }
        let rank = ((q * self.micros.len() as f64).ceil() as usize).clamp(1, self.micros.len());
        self.micros[rank - 1] as f64
    }

    pub fn percentiles(&mut self) -> Percentiles {
        Percentiles {
            count: self.micros.len() as u64,
            p50_us: self.quantile(0.50),
            p90_us: self.quantile(0.90),
            p99_us: self.quantile(0.99),
            max_us: self.quantile(1.0),
        }
    }

    /// Up to `points` (quantile, microseconds) pairs for a distribution
    /// plot, denser towards the tail (1 - 10^-k spacing).
    pub fn cdf(&mut self, points: usize) -> Vec<(f64, f64)> {
        self.sort();
        if self.micros.is_empty() {
            return Vec::new();
        }
        (0..points)
            .map(|i| {
                // From q = 0 to q = 0.9999 evenly in log10(1 - q).
                let depth = 4.0 * i as f64 / (points.max(2) - 1) as f64;
                let q = 1.0 - 10f64.powf(-depth);
                (q, self.quantile(q.max(0.0)))
            })
            .collect()
    }
}

/// CPU time (user + system) of a process so far, from `/proc/PID/stat`.
/// `None` when the process is gone or the file is not as expected.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields count from
    // the last ')'. utime and stime are fields 14 and 15 (1-based), in
    // clock ticks; Linux reports them in USER_HZ, 100 on every architecture
    // this runs on.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Resident memory of a process in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// CPU use of a process over a window, as a share of one core.
#[derive(Debug, Clone, Copy)]
pub struct CpuWindow {
    pid: u32,
    started_at: Instant,
    cpu_at_start: Duration,
}

impl CpuWindow {
    pub fn start(pid: u32) -> CpuWindow {
        CpuWindow {
            pid,
            started_at: Instant::now(),
            cpu_at_start: cpu_time(pid).unwrap_or_default(),
        }
    }

    /// Cores used on average since `start` (1.0 = one core busy).
    pub fn cores(&self) -> f64 {
        let wall = self.started_at.elapsed().as_secs_f64();
        let cpu = cpu_time(self.pid)
            .unwrap_or_default()
            .saturating_sub(self.cpu_at_start);
        if wall <= 0.0 {
            0.0
        } else {
            cpu.as_secs_f64() / wall
        }
    }
}

/// Busy CPU time of the whole machine (every core), from `/proc/stat`.
pub fn machine_busy() -> Option<Duration> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    Some(Duration::from_millis(busy * 10))
}

/// Waits (at most `limit`) until the machine's other work stays below
/// `threshold` cores for a 300 ms sample; returns the last sample. On a
/// shared machine this keeps a measurement from starting while someone
/// else's build or test holds the cores.
pub fn wait_for_quiet(threshold: f64, limit: Duration) -> f64 {
    let started = Instant::now();
    loop {
        let before = machine_busy().unwrap_or_default();
        let sample_started = Instant::now();
        std::thread::sleep(Duration::from_millis(300));
        let busy = machine_busy().unwrap_or_default().saturating_sub(before);
        let cores = busy.as_secs_f64() / sample_started.elapsed().as_secs_f64();
        if cores < threshold || started.elapsed() > limit {
            return cores;
        }
    }
}

/// CPU the rest of the machine used over a window: everything busy minus
/// the broker and this process. Other work on a shared machine shows here.
#[derive(Debug, Clone, Copy)]
pub struct Interference {
    broker: CpuWindow,
    me: CpuWindow,
    busy_at_start: Duration,
}

impl Interference {
    pub fn start(broker_pid: u32) -> Interference {
        Interference {
            broker: CpuWindow::start(broker_pid),
            me: CpuWindow::start(std::process::id()),
            busy_at_start: machine_busy().unwrap_or_default(),
        }
    }

    /// (broker cores, load generator cores, other processes' cores).
    pub fn cores(&self) -> (f64, f64, f64) {
        let wall = self.me.started_at.elapsed().as_secs_f64().max(1e-9);
        let busy = machine_busy()
            .unwrap_or_default()
            .saturating_sub(self.busy_at_start)
            .as_secs_f64()
            / wall;
        let broker = self.broker.cores();
        let me = self.me.cores();
        (broker, me, (busy - broker - me).max(0.0))
    }
}

/// The median of `values` (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(|a, b| a.total_cmp(b));
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples = Samples::default();
        for micros in 1..=100 {
            samples.push(Duration::from_micros(micros));
        }
        let p = samples.percentiles();
        assert_eq!((p.p50_us, p.p99_us, p.max_us), (50.0, 99.0, 100.0));
    }

    #[test]
    fn own_process_has_cpu_and_memory() {
        let me = std::process::id();
        assert!(rss_kib(me).is_some_and(|kib| kib > 0));
        assert!(cpu_time(me).is_some());
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
