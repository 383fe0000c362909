//! `fleetmq-sim --ota-flash DIR --ota-key FILE`: each simulated device
//! runs the device loop with the firmware's OTA agent
//! (`fleetmq_firmware::runner::ota`, as the ESP32 does) over a
//! file-backed flash: at "reset" the library's bootloader step picks the
//! slot (a bootloader with rollback, as `CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE`
//! builds one), the application's start step runs
//! (`Slots::app_start`, as on the chip), the version is read from the
//! booted image, and the device runs its usual loop (with its certificate,
//! or provisioned by claim with `--claim-state`) plus its offer and chunk
//! topics. A verified image makes it reset into the new slot; the new
//! version is confirmed only once it is online again. An image containing
//! [`NEVER_CONNECTS`] stands for a version that cannot reach the broker:
//! it never connects, and after `--ota-confirm-secs` the watchdog resets
//! the device, which rolls back.

use std::path::PathBuf;

use fleetmq_firmware::ota::agent::{Agent, Out};
use fleetmq_firmware::ota::flash::{Layout, OtaFlash as _};
use fleetmq_firmware::ota::image;
use fleetmq_firmware::ota::otadata::ImageState;
use fleetmq_firmware::ota::slots::{AppStart, Slots};
use fleetmq_firmware::runner::ota::OtaRun;
use fleetmq_firmware::runner::{self, Clock, Device, Log};
use fleetmq_firmware::topic::Mac;
use mbedtls_rs::TlsReference;

use crate::claim::{ClaimState, FolderStore, HostRandom};
use crate::ota_flash::FileFlash;
use crate::platform::{HostClock, HostLog, HostNet};

/// The marker of a simulated version that never reconnects.
pub const NEVER_CONNECTS: &[u8] = b"FLEETMQ-SIM-NEVER-CONNECTS";

/// The OTA options of `fleetmq-sim`.
#[derive(Debug, Clone)]
pub struct OtaOptions {
    pub flash_dir: PathBuf,
    pub key: ed25519_dalek::VerifyingKey,
    pub factory_version: String,
    pub chip: String,
    pub confirm_secs: u64,
    pub corrupt_chunk: Option<u32>,
    /// Log every chunk written (tests count them).
    pub log_chunks: bool,
    /// Pause after each chunk written (tests slow a download down).
    pub chunk_delay_ms: u64,
}

/// Reads the broker's public key (`ota-signing.pub`: 64 hex digits).
pub fn read_key(path: &std::path::Path) -> Result<ed25519_dalek::VerifyingKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut raw = [0u8; 32];
    fleetmq_firmware::ota::manifest::hex_decode(text.trim(), &mut raw)
        .ok_or_else(|| format!("{}: not 64 hex digits", path.display()))?;
    ed25519_dalek::VerifyingKey::from_bytes(&raw).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs one device with OTA until the process is killed: its own
/// certificate, or provisioned by claim with `claim`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    net: &mut HostNet,
    clock: &HostClock,
    log: &HostLog,
    device: &Device,
    mac: Mac,
    tls: TlsReference<'_>,
    options: &OtaOptions,
    claim: Option<&ClaimState>,
) {
    let client_id = device.names.client_id.clone();
    let Some(chip) = image::chip_id(&options.chip) else {
        log.line(&format!("OTA unknown chip {}", options.chip));
        return;
    };
    let factory = image::build(chip, &options.factory_version, b"fleetmq-sim factory image");
    let path = options.flash_dir.join(format!("{client_id}.flash"));
    let mut flash = match FileFlash::open(&path, &factory) {
        Ok(flash) => Some(flash),
        Err(message) => return log.line(&format!("OTA flash: {message}")),
    };
    loop {
        let Some(file) = flash.take() else { return };
        let mut slots = Slots::new(file, Layout::SIM);
        let booted = match slots.boot() {
            Ok(booted) => booted,
            Err(error) => return log.line(&format!("OTA boot failed: {}", error.0)),
        };
        // The application's own start step, as on the chip.
        match slots.app_start(booted.slot) {
            Ok(AppStart::Run(_)) => {}
            Ok(AppStart::RollBack) => {
                log.line("OTA rolled back by the application: resetting");
                flash = Some(slots.into_flash());
                continue;
            }
            Err(error) => return log.line(&format!("OTA start failed: {}", error.0)),
        }
        let version = slots
            .version(booted.slot)
            .ok()
            .flatten()
            .unwrap_or_default();
        let pending = booted.state == Some(ImageState::PendingVerify);
        log.line(&format!(
            "OTA boot: slot ota_{} version {version}{}",
            booted.slot,
            if pending { " (pending verify)" } else { "" }
        ));
        let mut body = vec![0u8; Layout::SIM.slot_size as usize];
        let never = slots
            .flash()
            .read(Layout::SIM.slots[booted.slot], &mut body)
            .is_ok()
            && body
                .windows(NEVER_CONNECTS.len())
                .any(|w| w == NEVER_CONNECTS);
        if never {
            log.line(&format!("OTA version {version} never connects (simulated)"));
            clock.sleep_ms(options.confirm_secs * 1000).await;
            log.line("OTA watchdog reset: not confirmed in time");
            flash = Some(slots.into_flash());
            continue;
        }
        let mut agent = Agent::new(&client_id, &options.chip, options.key);
        agent.fault_corrupt_chunk = options.corrupt_chunk;
        agent.log_chunks = options.log_chunks;
        let (mut ota, outs) = OtaRun::new(
            slots,
            agent,
            pending,
            clock.now_ms(),
            options.confirm_secs * 1000,
        );
        ota.pace_ms = options.chunk_delay_ms;
        for out in outs {
            if let Out::Log(line) = out {
                log.line(&line);
            }
        }
        match claim {
            None => runner::run(net, clock, log, device, tls, Some(&mut ota)).await,
            Some(state) => {
                let mut store = FolderStore::new(&state.dir, &client_id);
                runner::identity::run_provisioned(
                    net,
                    clock,
                    log,
                    device,
                    mac,
                    tls,
                    &mut store,
                    &mut HostRandom,
                    Some(&mut ota),
                )
                .await
            }
        }
        flash = Some(ota.slots.into_flash());
    }
}
