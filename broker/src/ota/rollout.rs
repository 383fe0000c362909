//! A rollout: one image to a list of devices in waves, with each device's
//! state, kept in `rollouts/<id>.json` and rewritten (atomically) when a
//! device's state changes, so a broker killed mid-rollout resumes it at
//! start. Operators create rollouts and drop `pause`/`resume`/`abort`
//! into `rollouts/<id>.control`; only the broker writes `<id>.json` once
//! it exists.
//!
//! Owns: the document, wave arithmetic and state transitions. Must not
//! publish (the worker in `ota/mod.rs` does what [`Rollout`] returns).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    Running,
    Paused,
    /// Paused by the broker: too many failures in the wave (decision 0176).
    Halted,
    Aborted,
    Done,
}

impl RolloutState {
    /// Still going, or waiting for an operator.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            RolloutState::Running | RolloutState::Paused | RolloutState::Halted
        )
    }
}

/// How many failures and rollbacks in one wave halt a rollout
/// (`--max-failures`, decision 0176): a number of devices, or a
/// percentage of the wave's devices (rounded up, at least one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureLimit {
    Devices(usize),
    Percent(u32),
}

impl Default for FailureLimit {
    /// 10 % of the wave: any failure halts a wave of up to ten devices.
    fn default() -> Self {
        FailureLimit::Percent(10)
    }
}

impl FailureLimit {
    /// `N` devices or `P%` of the wave.
    pub fn parse(text: &str) -> Result<FailureLimit, String> {
        let problem = || {
            format!(
                "--max-failures `{text}`: a number of devices (1 or more) or a percentage of \
                 the wave (1% to 100%)"
            )
        };
        let text = text.trim();
        if let Some(percent) = text.strip_suffix('%') {
            let percent = percent.trim().parse::<u32>().map_err(|_| problem())?;
            if !(1..=100).contains(&percent) {
                return Err(problem());
            }
            return Ok(FailureLimit::Percent(percent));
        }
        match text.parse::<usize>() {
            Ok(count) if count >= 1 => Ok(FailureLimit::Devices(count)),
            _ => Err(problem()),
        }
    }

    /// Failures that halt a wave of `wave_size` devices.
    pub fn of(self, wave_size: usize) -> usize {
        match self {
            FailureLimit::Devices(count) => count,
            FailureLimit::Percent(percent) => (wave_size * percent as usize).div_ceil(100).max(1),
        }
    }
}

impl std::fmt::Display for FailureLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureLimit::Devices(count) => write!(f, "{count}"),
            FailureLimit::Percent(percent) => write!(f, "{percent}%"),
        }
    }
}

/// Where one device stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// In a later wave.
    Waiting,
    Offered,
    Downloading,
    Verified,
    /// Reconnected with its certificate on the new version and confirmed it.
    Running,
    RolledBack,
    Failed,
}

impl DeviceState {
    /// No more will happen to it in this rollout.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeviceState::Running | DeviceState::RolledBack | DeviceState::Failed
        )
    }
}

/// One device's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStatus {
    pub state: DeviceState,
    /// Percent downloaded.
    #[serde(default)]
    pub progress: u32,
    /// Why it failed or was rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The version it last said it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<String>,
    /// Unix seconds of the last change.
    pub updated_at: i64,
}

/// A rollout document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: String,
    pub version: String,
    pub chip: String,
    /// Devices in wave order.
    pub devices: Vec<String>,
    /// Cumulative number of devices after each wave.
    pub waves: Vec<usize>,
    /// The wave in progress (index into `waves`).
    pub wave: usize,
    pub state: RolloutState,
    pub created_at: i64,
    pub status: BTreeMap<String, DeviceStatus>,
    /// Failures and rollbacks in one wave that halt the rollout.
    #[serde(default)]
    pub max_failures: FailureLimit,
    /// Failures of the current wave that a `resume` after a halt
    /// accepted: the rollout halts again only when as many more come.
    #[serde(default)]
    pub accepted_failures: usize,
    /// Why the broker halted the rollout (shown until it is resumed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `--waves`: `N` equal waves, or cumulative percentages `10%,50%,100%`.
pub fn parse_waves(text: &str, devices: usize) -> Result<Vec<usize>, String> {
    let mut waves = Vec::new();
    if let Ok(count) = text.parse::<usize>() {
        if count == 0 || count > devices.max(1) {
            return Err(format!("--waves {count}: from 1 to the {devices} devices"));
        }
        for wave in 1..=count {
            waves.push((devices * wave).div_ceil(count));
        }
        return Ok(waves);
    }
    for part in text.split(',') {
        let percent = part
            .trim()
            .strip_suffix('%')
            .and_then(|p| p.parse::<usize>().ok())
            .filter(|p| (1..=100).contains(p))
            .ok_or_else(|| {
                format!("--waves `{text}`: a count, or percentages like 10%,50%,100%")
            })?;
        let upto = (devices * percent).div_ceil(100).max(1);
        if waves.last().is_some_and(|last| *last >= upto) {
            return Err(format!("--waves `{text}`: percentages must grow"));
        }
        waves.push(upto);
    }
    if waves.last() != Some(&devices) {
        return Err(format!("--waves `{text}`: the last wave must reach 100%"));
    }
    Ok(waves)
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Rollout {
    /// A new rollout of `version` to `devices` (deduplicated, in order).
    pub fn new(
        id: &str,
        version: &str,
        chip: &str,
        devices: Vec<String>,
        waves: Vec<usize>,
    ) -> Rollout {
        let created_at = now();
        let status = devices
            .iter()
            .map(|device| {
                (
                    device.clone(),
                    DeviceStatus {
                        state: DeviceState::Waiting,
                        progress: 0,
                        reason: None,
                        running: None,
                        updated_at: created_at,
                    },
                )
            })
            .collect();
        Rollout {
            id: id.to_owned(),
            version: version.to_owned(),
            chip: chip.to_owned(),
            devices,
            waves,
            wave: 0,
            state: RolloutState::Running,
            created_at,
            status,
            max_failures: FailureLimit::default(),
            accepted_failures: 0,
            reason: None,
        }
    }

    /// Devices of the wave in progress only.
    pub fn wave_devices(&self) -> &[String] {
        let from = match self.wave {
            0 => 0,
            wave => self.waves.get(wave - 1).copied().unwrap_or(0),
        };
        let started = self.started();
        &started[from.min(started.len())..]
    }

    /// Devices of the wave in progress that failed or rolled back.
    pub fn wave_failures(&self) -> usize {
        self.wave_devices()
            .iter()
            .filter(|d| {
                self.status.get(*d).is_some_and(|s| {
                    matches!(s.state, DeviceState::Failed | DeviceState::RolledBack)
                })
            })
            .count()
    }

    /// Halts a running rollout whose wave reached its failure limit
    /// (beyond what a resume accepted) while devices remain to update;
    /// true when it just halted. A rollout whose every device is final
    /// has nothing left to protect: it ends as done.
    pub fn halt_if_failing(&mut self) -> bool {
        let pending = self.status.values().any(|s| !s.state.is_final());
        if self.state != RolloutState::Running || !pending {
            return false;
        }
        let failures = self.wave_failures();
        let limit = self.max_failures.of(self.wave_devices().len());
        if failures < self.accepted_failures + limit {
            return false;
        }
        self.state = RolloutState::Halted;
        self.reason = Some(format!(
            "{failures} of the {} devices of wave {}/{} failed or rolled back \
             (--max-failures {}): resume to go on, abort to stop",
            self.wave_devices().len(),
            self.wave + 1,
            self.waves.len(),
            self.max_failures
        ));
        true
    }

    /// Back to running after a pause or a halt; a halt's failures so far
    /// are accepted.
    pub fn resume(&mut self) {
        if self.state == RolloutState::Halted {
            self.accepted_failures = self.wave_failures();
        }
        self.state = RolloutState::Running;
        self.reason = None;
    }

    /// Devices of the waves started so far.
    pub fn started(&self) -> &[String] {
        let upto = self
            .waves
            .get(self.wave)
            .copied()
            .unwrap_or(self.devices.len());
        &self.devices[..upto.min(self.devices.len())]
    }

    /// Whether `device` should be (re)offered the image now.
    pub fn should_offer(&self, device: &str) -> bool {
        self.state == RolloutState::Running
            && self.started().iter().any(|d| d == device)
            && self.status.get(device).is_some_and(|s| !s.state.is_final())
    }

    /// Marks the started devices still waiting as offered; returns them.
    pub fn offer_started(&mut self) -> Vec<String> {
        let at = now();
        let mut offered = Vec::new();
        for device in self.started().to_vec() {
            if let Some(status) = self.status.get_mut(&device) {
                if status.state == DeviceState::Waiting {
                    status.state = DeviceState::Offered;
                    status.updated_at = at;
                    offered.push(device);
                }
            }
        }
        offered
    }

    /// When every started device is final: the next wave starts (true),
    /// or the rollout is done.
    pub fn advance(&mut self) -> bool {
        if self.state != RolloutState::Running {
            return false;
        }
        let settled = self
            .started()
            .iter()
            .all(|d| self.status.get(d).is_some_and(|s| s.state.is_final()));
        if !settled {
            return false;
        }
        if self.wave + 1 < self.waves.len() {
            self.wave += 1;
            self.accepted_failures = 0;
            true
        } else {
            self.state = RolloutState::Done;
            false
        }
    }

    /// Devices offered and silent for `timeout_secs` fail as timed out.
    pub fn time_out(&mut self, timeout_secs: u64) -> bool {
        let at = now();
        let mut changed = false;
        for status in self.status.values_mut() {
            let active = !status.state.is_final() && status.state != DeviceState::Waiting;
            if active && at.saturating_sub(status.updated_at) >= timeout_secs as i64 {
                status.state = DeviceState::Failed;
                status.reason = Some(format!("timed out: nothing heard for {timeout_secs} s"));
                status.updated_at = at;
                changed = true;
            }
        }
        changed
    }

    /// Counts of devices by state, for logs and the CLI.
    pub fn counts(&self) -> BTreeMap<DeviceState, usize> {
        let mut counts = BTreeMap::new();
        for status in self.status.values() {
            *counts.entry(status.state).or_insert(0) += 1;
        }
        counts
    }
}

impl PartialOrd for DeviceState {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DeviceState {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (*self as u8).cmp(&(*other as u8))
    }
}

/// `rollouts/<id>.json`.
pub fn path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

/// Writes `rollout` atomically (temporary file, fsync, rename).
pub fn save(dir: &Path, rollout: &Rollout) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let target = path(dir, &rollout.id);
    let temp = dir.join(format!(".{}.tmp", rollout.id));
    let text = serde_json::to_vec_pretty(rollout).map_err(|e| e.to_string())?;
    (|| {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&temp, &target)
    })()
    .map_err(|e| format!("{}: {e}", target.display()))
}

/// Every rollout in `dir`.
pub fn load_all(dir: &Path) -> Result<Vec<Rollout>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(format!("{}: {error}", dir.display())),
    };
    let mut rollouts = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let rollout: Rollout =
            serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        rollouts.push(rollout);
    }
    rollouts.sort_by_key(|r| r.created_at);
    Ok(rollouts)
}

/// Takes (and removes) a pending control word for `id`.
pub fn take_control(dir: &Path, id: &str) -> Option<String> {
    let path = dir.join(format!("{id}.control"));
    let text = std::fs::read_to_string(&path).ok()?;
    let _ = std::fs::remove_file(&path);
    Some(text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn waves_by_count_and_by_percentage() {
        assert_eq!(parse_waves("3", 20).unwrap(), vec![7, 14, 20]);
        assert_eq!(parse_waves("10%,50%,100%", 20).unwrap(), vec![2, 10, 20]);
        assert!(parse_waves("10%,50%", 20).is_err());
        assert!(parse_waves("0", 20).is_err());
    }

    #[test]
    fn the_next_wave_starts_when_the_started_devices_are_final() {
        let devices: Vec<String> = (0..4).map(|n| format!("d{n}")).collect();
        let mut rollout = Rollout::new("r", "1.1.0", "esp32c3", devices, vec![2, 4]);
        assert_eq!(rollout.offer_started(), vec!["d0", "d1"]);
        assert!(!rollout.should_offer("d2"));
        rollout.status.get_mut("d0").unwrap().state = DeviceState::Running;
        assert!(!rollout.advance());
        rollout.status.get_mut("d1").unwrap().state = DeviceState::Failed;
        assert!(rollout.advance());
        assert_eq!(rollout.offer_started(), vec!["d2", "d3"]);
        for d in ["d2", "d3"] {
            rollout.status.get_mut(d).unwrap().state = DeviceState::Running;
        }
        assert!(!rollout.advance());
        assert_eq!(rollout.state, RolloutState::Done);
    }

    #[test]
    fn failure_limits_by_count_and_by_percentage_of_the_wave() {
        assert_eq!(FailureLimit::parse("3"), Ok(FailureLimit::Devices(3)));
        assert_eq!(FailureLimit::parse("25%"), Ok(FailureLimit::Percent(25)));
        for bad in ["0", "0%", "101%", "x", "-1", ""] {
            assert!(FailureLimit::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(FailureLimit::Percent(10).of(7), 1);
        assert_eq!(FailureLimit::Percent(10).of(20), 2);
        assert_eq!(FailureLimit::Percent(50).of(0), 1);
        assert_eq!(FailureLimit::Devices(2).of(7), 2);
    }

    #[test]
    fn a_wave_that_reaches_its_failure_limit_halts_and_resume_accepts_them() {
        let devices: Vec<String> = (0..6).map(|n| format!("d{n}")).collect();
        let mut rollout = Rollout::new("r", "1.1.0", "esp32c3", devices, vec![3, 6]);
        rollout.max_failures = FailureLimit::Devices(2);
        rollout.offer_started();
        rollout.status.get_mut("d0").unwrap().state = DeviceState::Failed;
        assert!(!rollout.halt_if_failing());
        rollout.status.get_mut("d1").unwrap().state = DeviceState::RolledBack;
        assert!(rollout.halt_if_failing());
        assert_eq!(rollout.state, RolloutState::Halted);
        assert!(rollout
            .reason
            .as_deref()
            .unwrap()
            .contains("2 of the 3 devices of wave 1/2"));
        assert!(!rollout.should_offer("d2"));
        assert!(!rollout.advance());
        rollout.resume();
        assert_eq!(
            (rollout.state, rollout.reason.clone()),
            (RolloutState::Running, None)
        );
        assert!(!rollout.halt_if_failing());
        rollout.status.get_mut("d2").unwrap().state = DeviceState::Running;
        assert!(rollout.advance());
        // The next wave counts its own failures.
        assert_eq!(rollout.wave_devices(), ["d3", "d4", "d5"]);
        assert_eq!(rollout.accepted_failures, 0);
        rollout.offer_started();
        rollout.status.get_mut("d3").unwrap().state = DeviceState::Failed;
        assert!(!rollout.halt_if_failing());
        // The last failures of a rollout leave nothing to protect.
        for d in ["d4", "d5"] {
            rollout.status.get_mut(d).unwrap().state = DeviceState::Failed;
        }
        assert!(!rollout.halt_if_failing());
        assert!(!rollout.advance());
        assert_eq!(rollout.state, RolloutState::Done);
    }
}
