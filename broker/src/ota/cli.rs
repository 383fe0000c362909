//! `fleetmq firmware ...`: the operator's side of firmware updates, on the
//! files the broker shares (`ota::store`, `ota::rollout`). The broker
//! needs no signal: it reads new rollouts and control words within a
//! second.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use fleetmq_core::config::Config;

use super::rollout::{self, Rollout};
use super::store::{chip_id, OtaStore};
use crate::certs::CertKind;

/// `fleetmq firmware`.
#[derive(Debug, Args)]
pub struct FirmwareArgs {
    /// The broker's configuration (fleetmq.toml): where `[ota]` keeps its
    /// files and the signing key. Without it, the defaults.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: FirmwareCommand,
}

#[derive(Debug, Subcommand)]
enum FirmwareCommand {
    /// Store an image and its signed manifest. Refused whole when the
    /// chip is unknown or not the image's, the version is not the image's
    /// or was uploaded before, or the file is empty or too large.
    Upload {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[arg(long)]
        version: String,
        /// esp32c3, esp32c6, esp32 or esp32s3.
        #[arg(long)]
        chip: String,
    },
    /// Roll an uploaded version out to a group (certificate OU in the lab
    /// PKI) or a list of devices, in waves.
    Rollout {
        #[arg(long)]
        version: String,
        #[arg(long)]
        chip: String,
        /// Every unrevoked device certificate of this group (OU).
        #[arg(long, conflicts_with = "devices", required_unless_present = "devices")]
        group: Option<String>,
        /// Device ids, comma separated.
        #[arg(long, value_delimiter = ',')]
        devices: Vec<String>,
        /// A number of equal waves, or cumulative percentages (10%,50%,100%).
        #[arg(long, default_value = "1")]
        waves: String,
        /// The rollout's name (default: the version and a timestamp).
        #[arg(long)]
        id: Option<String>,
        /// Failures and rollbacks in one wave that halt the rollout until
        /// `resume` (or `abort`): a number of devices, or a percentage of
        /// the wave (rounded up, at least one device).
        #[arg(long, default_value = "10%", value_name = "N|P%")]
        max_failures: String,
    },
    /// Pause a rollout: no more offers or chunks until resumed.
    Pause { id: String },
    /// Resume a paused rollout, or one the broker halted after too many
    /// failures (those failures are then accepted).
    Resume { id: String },
    /// Abort a rollout: devices still downloading are told to stop.
    Abort { id: String },
    /// Rollouts and each device's state.
    Status { id: Option<String> },
}

/// Runs `fleetmq firmware ...`.
pub fn run(args: &FirmwareArgs) -> ExitCode {
    match run_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("fleetmq firmware: {message}");
            ExitCode::from(1)
        }
    }
}

fn run_inner(args: &FirmwareArgs) -> Result<(), String> {
    let config = match &args.config {
        Some(path) => fleetmq_core::config::load(Some(path))
            .map_err(|e| format!("{}: {e}", path.display()))?,
        None => Config::default(),
    };
    let store = OtaStore::new(&config);
    match &args.command {
        FirmwareCommand::Upload {
            file,
            version,
            chip,
        } => {
            let info = store.upload(file, version, chip)?;
            println!(
                "uploaded {} for {}: {} bytes, sha256 {}, chunks of {} bytes, manifest signed with {}",
                info.version,
                info.chip,
                info.size,
                info.sha256,
                info.chunk_size,
                store.pki_dir.join("ota-signing.key").display()
            );
            Ok(())
        }
        FirmwareCommand::Rollout {
            version,
            chip,
            group,
            devices,
            waves,
            id,
            max_failures,
        } => {
            let max_failures = rollout::FailureLimit::parse(max_failures)?;
            if chip_id(chip).is_none() {
                return Err(format!("unknown chip `{chip}`"));
            }
            if !store.has_image(chip, version) {
                return Err(format!(
                    "no image {version} for {chip}: upload it first (fleetmq firmware upload)"
                ));
            }
            let devices = match group {
                Some(group) => group_devices(&store, group)?,
                None => {
                    let mut seen = std::collections::BTreeSet::new();
                    devices
                        .iter()
                        .filter(|d| !d.is_empty() && seen.insert(d.to_string()))
                        .cloned()
                        .collect()
                }
            };
            if devices.is_empty() {
                return Err(String::from("no devices given"));
            }
            let waves = rollout::parse_waves(waves, devices.len())?;
            let id = id
                .clone()
                .unwrap_or_else(|| format!("{version}-{}", rollout::now()));
            let valid = id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !valid || id.starts_with('.') {
                return Err(format!("rollout id `{id}`: letters, digits, . _ -"));
            }
            let dir = store.rollouts_dir();
            if rollout::path(&dir, &id).exists() {
                return Err(format!("rollout {id} exists already"));
            }
            let mut rollout = Rollout::new(&id, version, chip, devices, waves);
            rollout.max_failures = max_failures;
            rollout::save(&dir, &rollout)?;
            println!(
                "rollout {id}: {version} to {} devices in {} waves ({:?}), halted at {} failures \
                 in a wave",
                rollout.devices.len(),
                rollout.waves.len(),
                rollout.waves,
                rollout.max_failures
            );
            Ok(())
        }
        FirmwareCommand::Pause { id } => control(&store, id, "pause"),
        FirmwareCommand::Resume { id } => control(&store, id, "resume"),
        FirmwareCommand::Abort { id } => control(&store, id, "abort"),
        FirmwareCommand::Status { id } => {
            let all = rollout::load_all(&store.rollouts_dir())?;
            for rollout in all
                .iter()
                .filter(|r| id.as_ref().is_none_or(|id| &r.id == id))
            {
                println!(
                    "rollout {} {} {} {:?} wave {}/{}",
                    rollout.id,
                    rollout.version,
                    rollout.chip,
                    rollout.state,
                    rollout.wave + 1,
                    rollout.waves.len()
                );
                if let Some(reason) = &rollout.reason {
                    println!("  halted: {reason}");
                }
                for device in &rollout.devices {
                    if let Some(status) = rollout.status.get(device) {
                        println!(
                            "  {device} {:?} {}% {}",
                            status.state,
                            status.progress,
                            status.reason.as_deref().unwrap_or("")
                        );
                    }
                }
            }
            Ok(())
        }
    }
}

fn group_devices(store: &OtaStore, group: &str) -> Result<Vec<String>, String> {
    let pki = crate::certs::Pki::open(&store.pki_dir)
        .map_err(|e| format!("{}: {e}", store.pki_dir.display()))?;
    let mut devices: Vec<String> = pki
        .list()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|cert| {
            cert.kind == CertKind::Device
                && cert.revoked_at.is_none()
                && cert.group.as_deref() == Some(group)
        })
        .map(|cert| cert.id)
        .collect();
    devices.sort();
    devices.dedup();
    if devices.is_empty() {
        return Err(format!(
            "unknown group `{group}`: no unrevoked device certificate of that OU in {}",
            store.pki_dir.display()
        ));
    }
    Ok(devices)
}

fn control(store: &OtaStore, id: &str, word: &str) -> Result<(), String> {
    let dir = store.rollouts_dir();
    if !rollout::path(&dir, id).exists() {
        return Err(format!("no rollout {id}"));
    }
    let path = dir.join(format!("{id}.control"));
    std::fs::write(&path, word).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("rollout {id}: {word} sent to the broker");
    Ok(())
}
