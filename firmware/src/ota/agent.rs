//! The device's side of the OTA protocol, sans IO (docs/ota.md): it is
//! told what arrived (`on_online`, `on_offer`, `on_chunk`, `on_timer`) and
//! says what to publish, log, and when to reset, the same on the ESP32 and
//! in the host simulation.
//!
//! - An offer's manifest must verify against the broker's Ed25519 key and
//!   name this chip, or the offer is refused (`failed`, with the reason).
//! - Chunks are fetched one at a time into the slot that does not run;
//!   each carries its SHA-256, checked before it is written and read back
//!   after: a corrupt chunk is fetched again. After a disconnect the
//!   download resumes from the next chunk.
//! - The whole image is hashed from flash and its header checked against
//!   the manifest before the slot is marked bootable; then the device
//!   resets into it.
//! - The new image is confirmed only once it is online again (CONNACK on
//!   its certificate); a reset before that rolls it back ([`super::slots`]).
//!
//! Must not: do IO, or keep anything across a reset but what flash holds.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};

use super::flash::OtaFlash;
use super::flash::SECTOR;
use super::manifest::{self, Manifest, Offer};
use super::otadata::ImageState;
use super::progress;
use super::slots::Slots;
use super::{fetch_topic, image, status_topic};

/// A fetch unanswered for this long is sent again.
pub const FETCH_RETRY_MS: u64 = 5_000;
/// A chunk that arrives corrupt this many times fails the download.
pub const MAX_CHUNK_RETRIES: u32 = 5;

/// What the agent wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// Publish (QoS 1) `payload` on `topic`.
    Publish { topic: String, payload: Vec<u8> },
    /// One line for the device log.
    Log(String),
    /// Reset into the slot just activated.
    Reset,
}

/// A download in progress.
#[derive(Debug, Clone)]
struct Download {
    manifest: Manifest,
    slot: usize,
    /// The chunk asked for (all before it are written).
    next: u32,
    /// Corrupt arrivals of `next`.
    retries: u32,
    /// When `next` was asked for.
    asked_at_ms: u64,
    /// Last progress reported, in percent.
    reported: u32,
}

/// The OTA agent of one device.
pub struct Agent {
    client_id: String,
    chip: String,
    key: VerifyingKey,
    download: Option<Download>,
    /// Corrupt the next arrival of this chunk (the simulation's fault
    /// injection; `None` on a device).
    pub fault_corrupt_chunk: Option<u32>,
    /// Log every chunk written (`OTA chunk N written`; the simulation's
    /// tests count them).
    pub log_chunks: bool,
}

impl Agent {
    /// The agent of `client_id` on `chip`, trusting manifests signed by `key`.
    pub fn new(client_id: &str, chip: &str, key: VerifyingKey) -> Agent {
        Agent {
            client_id: String::from(client_id),
            chip: String::from(chip),
            key,
            download: None,
            fault_corrupt_chunk: None,
            log_chunks: false,
        }
    }

    /// At start (after a reset): takes up a download that flash says was
    /// in progress, if its manifest still verifies and its slot is still
    /// the one that does not run. It restarts at the first chunk of the
    /// flash sector holding the next one (the chunk being written when the
    /// power went may be torn), erasing from there.
    pub fn resume<F: OtaFlash>(&mut self, slots: &mut Slots<F>, now_ms: u64, out: &mut Vec<Out>) {
        let layout = slots.layout();
        let saved = match progress::load(slots.flash(), &layout) {
            Ok(Some(saved)) => saved,
            Ok(None) => return,
            Err(error) => {
                out.push(Out::Log(format!(
                    "OTA cannot read the saved progress: {}",
                    error.0
                )));
                return;
            }
        };
        let running = Self::running_version(slots);
        let inactive = slots.running().map(|b| 1 - b.slot).ok();
        let manifest = match manifest::parse_offer(&saved.manifest, &self.key) {
            Ok(Offer::Update(manifest))
                if Some(saved.slot) == inactive
                    && running.as_deref() != Some(manifest.version.as_str())
                    && manifest.chip == self.chip
                    && saved.next < manifest.chunks() =>
            {
                manifest
            }
            _ => {
                let _ = progress::clear(slots.flash(), &layout);
                return;
            }
        };
        let chunk_size = manifest.chunk_size.max(1);
        let mut next = saved.next;
        loop {
            let offset = next.saturating_mul(chunk_size);
            let sector_start = offset / SECTOR * SECTOR;
            if sector_start == offset || next == 0 {
                break;
            }
            next = sector_start / chunk_size;
        }
        let offset = next.saturating_mul(chunk_size);
        if let Err(error) = slots.erase_from(saved.slot, offset, manifest.size) {
            out.push(Out::Log(format!("OTA cannot resume: {}", error.0)));
            let _ = progress::clear(slots.flash(), &layout);
            return;
        }
        out.push(Out::Log(format!(
            "OTA resuming {} from chunk {next} of {} after a reset (slot ota_{})",
            manifest.version,
            manifest.chunks(),
            saved.slot
        )));
        let reported = next * 100 / manifest.chunks().max(1);
        self.download = Some(Download {
            manifest,
            slot: saved.slot,
            next,
            retries: 0,
            asked_at_ms: now_ms,
            reported: reported / 25 * 25,
        });
    }

    /// Forgets the saved progress (the download ended one way or another).
    fn forget<F: OtaFlash>(slots: &mut Slots<F>) {
        let layout = slots.layout();
        let _ = progress::clear(slots.flash(), &layout);
    }

    fn status(
        &self,
        out: &mut Vec<Out>,
        state: &str,
        version: Option<&str>,
        running: Option<&str>,
        extra: &str,
    ) {
        let mut json = format!("{{\"state\":\"{state}\"");
        if let Some(version) = version {
            json.push_str(&format!(",\"version\":\"{}\"", escape(version)));
        }
        if let Some(running) = running {
            json.push_str(&format!(",\"running\":\"{}\"", escape(running)));
        }
        json.push_str(extra);
        json.push('}');
        out.push(Out::Publish {
            topic: status_topic(&self.client_id),
            payload: json.into_bytes(),
        });
    }

    fn failed<F: OtaFlash>(
        &mut self,
        slots: &mut Slots<F>,
        out: &mut Vec<Out>,
        version: &str,
        running: Option<&str>,
        reason: &str,
    ) {
        if self.download.is_some() {
            Self::forget(slots);
        }
        out.push(Out::Log(format!("OTA {version} failed: {reason}")));
        let extra = format!(",\"reason\":\"{}\"", escape(reason));
        self.status(out, "failed", Some(version), running, &extra);
        self.download = None;
    }

    fn fetch(&mut self, now_ms: u64, out: &mut Vec<Out>) {
        if let Some(download) = &mut self.download {
            download.asked_at_ms = now_ms;
            let payload = format!(
                "{{\"version\":\"{}\",\"chunk\":{}}}",
                escape(&download.manifest.version),
                download.next
            );
            out.push(Out::Publish {
                topic: fetch_topic(&self.client_id),
                payload: payload.into_bytes(),
            });
        }
    }

    /// The running version (from its image's descriptor).
    fn running_version<F: OtaFlash>(slots: &mut Slots<F>) -> Option<String> {
        let slot = slots.running().ok()?.slot;
        slots.version(slot).ok().flatten()
    }

    /// Connected and subscribed: confirm a new image (it reached the
    /// broker with its certificate), report where the device stands, and
    /// resume a download.
    pub fn on_online<F: OtaFlash>(
        &mut self,
        slots: &mut Slots<F>,
        now_ms: u64,
        out: &mut Vec<Out>,
    ) {
        let running = Self::running_version(slots);
        let running = running.as_deref();
        match slots.confirm() {
            Ok(true) => {
                let version = running.unwrap_or("unknown");
                out.push(Out::Log(format!(
                    "OTA confirmed version {version}: online with it"
                )));
                self.status(out, "running", Some(version), Some(version), "");
                return;
            }
            Ok(false) => {}
            Err(error) => {
                out.push(Out::Log(format!("OTA cannot confirm: {}", error.0)));
            }
        }
        if let Ok(Some((slot, state))) = slots.rolled_back() {
            let refused = slots.version(slot).ok().flatten().unwrap_or_default();
            let reason = if state == ImageState::Aborted {
                "booted but not confirmed online before the next reset"
            } else {
                "refused by the application"
            };
            let extra = format!(",\"reason\":\"{reason}\"");
            self.status(out, "rolled_back", Some(&refused), running, &extra);
        } else if let Some(download) = &self.download {
            let extra = format!(",\"progress\":{}", download.reported);
            let version = download.manifest.version.clone();
            self.status(out, "downloading", Some(&version), running, &extra);
        } else {
            self.status(out, "idle", None, running, "");
        }
        if self.download.is_some() {
            out.push(Out::Log(String::from("OTA resuming the download")));
            self.fetch(now_ms, out);
        }
    }

    /// An offer (or a withdrawal) arrived.
    pub fn on_offer<F: OtaFlash>(
        &mut self,
        payload: &[u8],
        slots: &mut Slots<F>,
        now_ms: u64,
        out: &mut Vec<Out>,
    ) {
        let running = Self::running_version(slots);
        let manifest = match manifest::parse_offer(payload, &self.key) {
            Ok(Offer::Update(manifest)) => manifest,
            Ok(Offer::Cancel(version)) => {
                if self
                    .download
                    .as_ref()
                    .is_some_and(|d| d.manifest.version == version)
                {
                    out.push(Out::Log(format!("OTA {version} withdrawn by the broker")));
                    self.download = None;
                    Self::forget(slots);
                }
                return;
            }
            Err(error) => {
                let version = offered_version(payload).unwrap_or_else(|| String::from("unknown"));
                self.failed(
                    slots,
                    out,
                    &version,
                    running.as_deref(),
                    &format!("{error}"),
                );
                return;
            }
        };
        let version = manifest.version.clone();
        if running.as_deref() == Some(version.as_str()) {
            self.status(out, "running", Some(&version), Some(&version), "");
            return;
        }
        if self
            .download
            .as_ref()
            .is_some_and(|d| d.manifest == manifest)
        {
            self.fetch(now_ms, out);
            return;
        }
        if manifest.chip != self.chip {
            let reason = format!("image for {}, this is {}", manifest.chip, self.chip);
            self.failed(slots, out, &version, running.as_deref(), &reason);
            return;
        }
        let slot = match slots.begin(manifest.size) {
            Ok(slot) => slot,
            Err(error) => {
                self.failed(slots, out, &version, running.as_deref(), &error.0);
                return;
            }
        };
        out.push(Out::Log(format!(
            "OTA offer {version}: {} bytes in {} chunks, signature good, into slot ota_{slot}",
            manifest.size,
            manifest.chunks()
        )));
        let layout = slots.layout();
        if let Err(error) = progress::start(slots.flash(), &layout, payload, slot, 0) {
            out.push(Out::Log(format!("OTA progress not kept: {}", error.0)));
        }
        self.download = Some(Download {
            manifest,
            slot,
            next: 0,
            retries: 0,
            asked_at_ms: now_ms,
            reported: 0,
        });
        self.status(
            out,
            "downloading",
            Some(&version),
            running.as_deref(),
            ",\"progress\":0",
        );
        self.fetch(now_ms, out);
    }

    /// A chunk arrived: `index (u32 BE) | version length (u8) | version |
    /// sha256 (32) | data`.
    pub fn on_chunk<F: OtaFlash>(
        &mut self,
        payload: &[u8],
        slots: &mut Slots<F>,
        now_ms: u64,
        out: &mut Vec<Out>,
    ) {
        let Some((index, version, hash, data)) = split_chunk(payload) else {
            out.push(Out::Log(String::from("OTA chunk malformed; ignored")));
            return;
        };
        let Some(download) = &mut self.download else {
            return;
        };
        if version != download.manifest.version || index != download.next {
            return; // a late answer to an earlier fetch
        }
        let manifest = &download.manifest;
        let offset = index.saturating_mul(manifest.chunk_size);
        let expected = manifest
            .chunk_size
            .min(manifest.size.saturating_sub(offset));
        let mut data = Vec::from(data);
        if self.fault_corrupt_chunk == Some(index) {
            self.fault_corrupt_chunk = None;
            if let Some(byte) = data.first_mut() {
                *byte ^= 0x5A;
            }
        }
        let digest: [u8; 32] = Sha256::digest(&data).into();
        let good = data.len() as u32 == expected && digest == hash;
        let written = good && matches!(slots.write_chunk(download.slot, offset, &data), Ok(true));
        if !written {
            download.retries += 1;
            let retries = download.retries;
            if retries > MAX_CHUNK_RETRIES {
                let version = download.manifest.version.clone();
                let running = Self::running_version(slots);
                let reason = format!("chunk {index} corrupt {retries} times");
                self.failed(slots, out, &version, running.as_deref(), &reason);
                return;
            }
            out.push(Out::Log(format!(
                "OTA chunk {index} rejected ({}); fetching it again",
                if good {
                    "flash write did not read back"
                } else {
                    "sha256 mismatch"
                }
            )));
            self.fetch(now_ms, out);
            return;
        }
        download.next += 1;
        download.retries = 0;
        if self.log_chunks {
            out.push(Out::Log(format!("OTA chunk {index} written")));
        }
        let layout = slots.layout();
        if let Err(error) = progress::record(slots.flash(), &layout, download.next) {
            out.push(Out::Log(format!("OTA progress not kept: {}", error.0)));
        }
        let chunks = download.manifest.chunks();
        let percent = download.next * 100 / chunks.max(1);
        if percent / 25 > download.reported / 25 && download.next < chunks {
            download.reported = percent;
            let version = download.manifest.version.clone();
            let extra = format!(",\"progress\":{percent}");
            self.status(out, "downloading", Some(&version), None, &extra);
        }
        if self.download.as_ref().is_some_and(|d| d.next < chunks) {
            self.fetch(now_ms, out);
        } else {
            self.finish(slots, out);
        }
    }

    /// Every chunk is written: hash the slot, check the header, activate.
    fn finish<F: OtaFlash>(&mut self, slots: &mut Slots<F>, out: &mut Vec<Out>) {
        let Some(download) = self.download.take() else {
            return;
        };
        Self::forget(slots);
        let manifest = &download.manifest;
        let running = Self::running_version(slots);
        let hash = match slots.verify(download.slot, manifest.size) {
            Ok(hash) => hash,
            Err(error) => {
                return self.failed(slots, out, &manifest.version, running.as_deref(), &error.0)
            }
        };
        if hash != manifest.sha256 {
            return self.failed(
                slots,
                out,
                &manifest.version,
                running.as_deref(),
                "image sha256 does not match the manifest",
            );
        }
        let described = slots.descriptor(download.slot).ok().flatten();
        let chip = image::chip_id(&manifest.chip);
        if described.as_ref().map(|(c, _)| Some(*c)) != Some(chip) {
            let reason = "the image's header names another chip than the manifest";
            return self.failed(slots, out, &manifest.version, running.as_deref(), reason);
        }
        if described.as_ref().map(|(_, v)| v.as_str()) != Some(manifest.version.as_str()) {
            let reason = "the image's descriptor does not carry the manifest's version";
            return self.failed(slots, out, &manifest.version, running.as_deref(), reason);
        }
        if let Err(error) = slots.activate(download.slot) {
            return self.failed(slots, out, &manifest.version, running.as_deref(), &error.0);
        }
        out.push(Out::Log(format!(
            "OTA {} verified (sha256 and signature); slot ota_{} marked bootable, resetting",
            manifest.version, download.slot
        )));
        self.status(
            out,
            "verified",
            Some(&manifest.version),
            running.as_deref(),
            "",
        );
        out.push(Out::Reset);
    }

    /// Time passed: ask again for a chunk that did not come.
    pub fn on_timer(&mut self, now_ms: u64, out: &mut Vec<Out>) {
        if self
            .download
            .as_ref()
            .is_some_and(|d| now_ms.saturating_sub(d.asked_at_ms) >= FETCH_RETRY_MS)
        {
            self.fetch(now_ms, out);
        }
    }
}

/// The `version=` of a manifest whose signature failed, for the report.
fn offered_version(payload: &[u8]) -> Option<String> {
    let text = core::str::from_utf8(payload).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("version="))
        .map(String::from)
}

/// The parts of a chunk message.
pub fn split_chunk(payload: &[u8]) -> Option<(u32, &str, [u8; 32], &[u8])> {
    let index = u32::from_be_bytes(payload.get(0..4)?.try_into().ok()?);
    let len = usize::from(*payload.get(4)?);
    let version = core::str::from_utf8(payload.get(5..5 + len)?).ok()?;
    let hash: [u8; 32] = payload.get(5 + len..37 + len)?.try_into().ok()?;
    Some((index, version, hash, payload.get(37 + len..)?))
}

fn escape(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| match c {
            '"' | '\\' => ['\\', c].into_iter().take(2),
            c => [c, c].into_iter().take(1),
        })
        .collect()
}
