//! Firmware updates over MQTT (issue 21; docs/ota.md; decisions
//! 0163-0166): images and Ed25519-signed manifests in a state folder,
//! rollouts in waves, and the worker that answers devices on their
//! reserved topics (`$fleetmq/ota/<id>/...`, see `fleetmq_core::ota`).
//!
//! - [`store`]: the state folder, upload checks, the signing key.
//! - [`rollout`]: a rollout document, its waves and devices' states.
//! - [`metrics`]: devices by state and wave per rollout, at each scrape.
//! - [`cli`]: `fleetmq firmware upload|rollout|pause|resume|abort|status`.
//!
//! This module owns the worker task: connections only queue device
//! messages (`fleetmq_core::ota::OtaService`); the worker updates the
//! rollout, answers fetches with chunks and offers, and every 500 ms
//! picks up new rollouts and control words from the folder, times out
//! silent devices and starts the next wave. Rollout documents are written
//! by one thread of this module, in order, off the async threads; the
//! worker never holds a lock across an `.await`.

pub mod cli;
pub mod metrics;
pub mod rollout;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fleetmq_codec::QoS;
use fleetmq_core::engine::Engine;
use fleetmq_core::message::Message;
use fleetmq_core::ota::{chunk_topic, offer_topic, DeviceMessage, DeviceMessageKind, OtaService};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use rollout::{DeviceState, Rollout, RolloutState};
use store::OtaStore;

/// Device messages queued at most (a fleet fetching at once).
const QUEUE: usize = 1024;
/// How often the folder is read for new rollouts and control words.
const TICK: Duration = Duration::from_millis(500);

#[derive(Debug)]
struct Queue {
    sender: mpsc::Sender<DeviceMessage>,
}

impl OtaService for Queue {
    fn submit(&self, message: DeviceMessage) -> bool {
        self.sender.try_send(message).is_ok()
    }
}

/// What a device reports on its status topic.
#[derive(Debug, Deserialize)]
struct Status {
    state: String,
    version: Option<String>,
    running: Option<String>,
    progress: Option<u32>,
    reason: Option<String>,
}

/// A chunk request.
#[derive(Debug, Deserialize)]
struct Fetch {
    version: String,
    chunk: u32,
}

/// Starts the service when `[ota] enabled`.
pub fn start(broker: &Arc<Engine>, shutdown: watch::Receiver<bool>) -> Result<(), String> {
    if !broker.config.ota.enabled {
        return Ok(());
    }
    let store = OtaStore::new(&broker.config);
    store.signing_key()?;
    let rollouts = rollout::load_all(&store.rollouts_dir())?;
    for rollout in &rollouts {
        if rollout.state.is_open() {
            tracing::info!(
                "OTA rollout {} of {} resumed at wave {}/{} ({:?}).",
                rollout.id,
                rollout.version,
                rollout.wave + 1,
                rollout.waves.len(),
                rollout.state
            );
        }
    }
    let store_dir = store.rollouts_dir();
    let (sender, messages) = mpsc::channel(QUEUE);
    broker.set_ota_service(Arc::new(Queue { sender }));
    tracing::info!(
        "Firmware updates on ($fleetmq/ota/<id>/...), state in {}.",
        store.dir.display()
    );
    tokio::spawn(
        Worker {
            broker: Arc::clone(broker),
            timeout_secs: broker.config.ota.device_timeout_secs,
            store,
            rollouts,
            images: HashMap::new(),
            writer: spawn_writer(store_dir),
        }
        .run(messages, shutdown),
    );
    Ok(())
}

/// A signed manifest and its image.
type Stored = (Bytes, Arc<Vec<u8>>);

struct Worker {
    broker: Arc<Engine>,
    store: OtaStore,
    /// Every rollout known, oldest first (finished ones too, for status).
    rollouts: Vec<Rollout>,
    /// Manifest and image per (chip, version), read once.
    images: HashMap<(String, String), Stored>,
    timeout_secs: u64,
    /// Rollout snapshots to write, in order (see [`spawn_writer`]).
    writer: std::sync::mpsc::Sender<Rollout>,
}

/// The thread that writes rollout documents: one at a time, in the order
/// the worker changed them, so the file on disk is never older than an
/// earlier write. It ends when the worker drops its sender.
fn spawn_writer(dir: std::path::PathBuf) -> std::sync::mpsc::Sender<Rollout> {
    let (sender, snapshots) = std::sync::mpsc::channel::<Rollout>();
    let spawned = std::thread::Builder::new()
        .name("ota-writer".into())
        .spawn(move || {
            for rollout in snapshots {
                if let Err(error) = rollout::save(&dir, &rollout) {
                    tracing::error!("OTA rollout {} not saved: {error}.", rollout.id);
                }
            }
        });
    if let Err(error) = spawned {
        tracing::error!("OTA rollout writer not started: {error}.");
    }
    sender
}

impl Worker {
    async fn run(
        mut self,
        mut messages: mpsc::Receiver<DeviceMessage>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => self.tick(),
                message = messages.recv() => {
                    let Some(message) = message else { return };
                    self.handle(message);
                }
                _ = shutdown.changed() => return,
            }
        }
    }

    fn publish(&self, topic: String, payload: Bytes) {
        self.broker.publish(Arc::new(Message {
            topic: Arc::from(topic),
            payload,
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
            expires_at: None,
            publisher: None,
        }));
    }

    fn image(&mut self, chip: &str, version: &str) -> Option<Stored> {
        let key = (chip.to_owned(), version.to_owned());
        if let Some(found) = self.images.get(&key) {
            return Some(found.clone());
        }
        match self.store.image(chip, version) {
            Ok((manifest, image)) => {
                let entry = (Bytes::from(manifest), Arc::new(image));
                self.images.insert(key, entry.clone());
                Some(entry)
            }
            Err(error) => {
                tracing::error!("OTA image unreadable: {error}.");
                None
            }
        }
    }

    fn offer(&mut self, index: usize, device: &str) {
        let Some(rollout) = self.rollouts.get(index) else {
            return;
        };
        let (chip, version) = (rollout.chip.clone(), rollout.version.clone());
        if let Some((manifest, _)) = self.image(&chip, &version) {
            self.publish(offer_topic(device), manifest);
        }
    }

    /// Hands a snapshot of the rollout to the writer thread, which
    /// writes snapshots in order, off the async threads.
    fn save(&self, index: usize) {
        if let Some(rollout) = self.rollouts.get(index) {
            if self.writer.send(rollout.clone()).is_err() {
                tracing::error!("OTA rollout {} not saved: writer stopped.", rollout.id);
            }
        }
    }

    /// The newest unfinished rollout that includes `device`.
    fn rollout_of(&self, device: &str) -> Option<usize> {
        self.rollouts
            .iter()
            .rposition(|r| r.state.is_open() && r.status.contains_key(device))
    }

    fn handle(&mut self, message: DeviceMessage) {
        let device = message.identity.client_id.to_string();
        match message.kind {
            DeviceMessageKind::Fetch => {
                let Ok(fetch) = serde_json::from_slice::<Fetch>(&message.payload) else {
                    return;
                };
                self.answer_fetch(&device, fetch);
            }
            DeviceMessageKind::Status => {
                let Ok(status) = serde_json::from_slice::<Status>(&message.payload) else {
                    return;
                };
                if let Some(index) = self.rollout_of(&device) {
                    self.update(index, &device, status);
                }
            }
        }
    }

    fn answer_fetch(&mut self, device: &str, fetch: Fetch) {
        let Some(index) = self.rollout_of(device) else {
            return;
        };
        let rollout = &self.rollouts[index];
        if rollout.version != fetch.version || !rollout.should_offer(device) {
            return;
        }
        let chip = rollout.chip.clone();
        let Some((manifest, image)) = self.image(&chip, &fetch.version) else {
            return;
        };
        let chunk_size = manifest_chunk_size(&manifest).unwrap_or(self.store.chunk_bytes) as usize;
        let start = (fetch.chunk as usize).saturating_mul(chunk_size);
        let Some(data) = image.get(start..(start + chunk_size).min(image.len())) else {
            return;
        };
        if data.is_empty() {
            return;
        }
        let version = fetch.version.as_bytes();
        let mut payload = Vec::with_capacity(37 + version.len() + data.len());
        payload.extend_from_slice(&fetch.chunk.to_be_bytes());
        payload.push(version.len() as u8);
        payload.extend_from_slice(version);
        payload.extend_from_slice(&Sha256::digest(data));
        payload.extend_from_slice(data);
        self.publish(chunk_topic(device), Bytes::from(payload));
    }

    fn update(&mut self, index: usize, device: &str, report: Status) {
        let target = self.rollouts[index].version.clone();
        let for_target = report.version.as_deref() == Some(target.as_str());
        let running_target = report.running.as_deref() == Some(target.as_str());
        let new_state = match report.state.as_str() {
            "running" if for_target && running_target => Some(DeviceState::Running),
            "idle" if running_target => Some(DeviceState::Running),
            "downloading" if for_target => Some(DeviceState::Downloading),
            "verified" if for_target => Some(DeviceState::Verified),
            "rolled_back" if for_target => Some(DeviceState::RolledBack),
            "failed" if for_target => Some(DeviceState::Failed),
            _ => None,
        };
        let rollout = &mut self.rollouts[index];
        let Some(status) = rollout.status.get_mut(device) else {
            return;
        };
        if status.state.is_final() {
            return;
        }
        let mut changed = false;
        if report.running.is_some() && status.running != report.running {
            status.running = report.running.clone();
            changed = true;
        }
        if let Some(state) = new_state {
            if status.state != state || report.progress.is_some_and(|p| p != status.progress) {
                status.state = state;
                status.progress = match state {
                    DeviceState::Verified | DeviceState::Running => 100,
                    _ => report.progress.unwrap_or(status.progress),
                };
                status.reason = report.reason.clone();
                status.updated_at = rollout::now();
                changed = true;
                tracing::info!(
                    client = %device,
                    "OTA {device} {}: {:?}{}",
                    target,
                    state,
                    report.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
                );
            }
        }
        let reoffer = report.state == "idle" && rollout.should_offer(device);
        if changed {
            self.halt_if_failing(index);
            self.save(index);
            self.advance(index);
        }
        if reoffer {
            self.offer(index, device);
        }
    }

    /// Halts the rollout when its wave reached the failure limit
    /// (decision 0176); the caller saves.
    fn halt_if_failing(&mut self, index: usize) {
        let rollout = &mut self.rollouts[index];
        if rollout.halt_if_failing() {
            tracing::warn!(
                "OTA rollout {} of {} halted: {}.",
                rollout.id,
                rollout.version,
                rollout.reason.as_deref().unwrap_or("")
            );
        }
    }

    /// Starts waves whose turn came and offers their devices.
    fn advance(&mut self, index: usize) {
        loop {
            let offered = self.rollouts[index].offer_started();
            let rollout = &self.rollouts[index];
            if !offered.is_empty() {
                tracing::info!(
                    "OTA rollout {}: wave {}/{} offers {} to {} devices.",
                    rollout.id,
                    rollout.wave + 1,
                    rollout.waves.len(),
                    rollout.version,
                    offered.len()
                );
                self.save(index);
                for device in &offered {
                    self.offer(index, device);
                }
            }
            let before = self.rollouts[index].state;
            let next = self.rollouts[index].advance();
            if self.rollouts[index].state != before {
                let rollout = &self.rollouts[index];
                tracing::info!(
                    "OTA rollout {} of {} finished: {:?}.",
                    rollout.id,
                    rollout.version,
                    rollout.counts()
                );
                self.save(index);
            }
            if !next {
                return;
            }
        }
    }

    fn tick(&mut self) {
        let dir = self.store.rollouts_dir();
        if let Ok(all) = rollout::load_all(&dir) {
            for new in all {
                if !self.rollouts.iter().any(|r| r.id == new.id) {
                    tracing::info!(
                        "OTA rollout {} of {} to {} devices in {} waves.",
                        new.id,
                        new.version,
                        new.devices.len(),
                        new.waves.len()
                    );
                    self.rollouts.push(new);
                }
            }
        }
        for index in 0..self.rollouts.len() {
            let id = self.rollouts[index].id.clone();
            if let Some(word) = rollout::take_control(&dir, &id) {
                self.control(index, &word);
            }
            if self.rollouts[index].state == RolloutState::Running {
                if self.rollouts[index].time_out(self.timeout_secs) {
                    self.halt_if_failing(index);
                    self.save(index);
                }
                self.advance(index);
            }
        }
    }

    fn control(&mut self, index: usize, word: &str) {
        let rollout = &mut self.rollouts[index];
        let next = match (word, rollout.state) {
            ("pause", RolloutState::Running) => RolloutState::Paused,
            ("resume", RolloutState::Paused | RolloutState::Halted) => RolloutState::Running,
            ("abort", state) if state.is_open() => RolloutState::Aborted,
            _ => {
                tracing::warn!(
                    "OTA rollout {}: `{word}` ignored in state {:?}.",
                    rollout.id,
                    rollout.state
                );
                return;
            }
        };
        if next == RolloutState::Running {
            rollout.resume();
        } else {
            rollout.state = next;
        }
        tracing::info!("OTA rollout {} {:?}.", rollout.id, next);
        let cancel: Vec<String> = if next == RolloutState::Aborted {
            rollout
                .status
                .iter()
                .filter(|(_, s)| !s.state.is_final() && s.state != DeviceState::Waiting)
                .map(|(d, _)| d.clone())
                .collect()
        } else {
            Vec::new()
        };
        let version = rollout.version.clone();
        self.save(index);
        for device in cancel {
            let payload = format!("fleetmq-ota-cancel-v1\nversion={version}\n");
            self.publish(offer_topic(&device), Bytes::from(payload));
        }
        if next == RolloutState::Running {
            let started = self.rollouts[index].started().to_vec();
            for device in started {
                if self.rollouts[index].should_offer(&device) {
                    self.offer(index, &device);
                }
            }
        }
    }
}

fn manifest_chunk_size(manifest: &[u8]) -> Option<u32> {
    std::str::from_utf8(manifest)
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("chunk_size="))?
        .parse()
        .ok()
}
