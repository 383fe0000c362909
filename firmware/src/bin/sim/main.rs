//! `fleetmq-sim`: the device firmware's logic on the host, over std
//! networking and the same mbedTLS (mbedtls-rs) as the ESP32.
//!
//! ```text
//! fleetmq-sim --config firmware/device.toml [--fs DIR] [--mac 24:0A:C4:80:7A:98]
//!             [--devices N --device-certs DIR]
//! ```
//!
//! With `--devices N` it runs N devices in one process, device `i` with MAC
//! `base + i`; with `--device-certs DIR` each one presents its own
//! certificate `DIR/<client id>.crt` and key `DIR/<client id>.key` (what
//! `fleetmq certs device ID --out DIR` writes). Log lines are the device's,
//! prefixed with `[client id]` when more than one device runs.

mod claim;
mod cli;
mod ota;
mod ota_flash;
mod platform;

use std::process::ExitCode;
use std::time::Duration;

use critical_section as _;
use fleetmq_firmware::config::{self, DeviceConfig, FileSource};
use fleetmq_firmware::runner::{self, ChipInfo, Device};
use fleetmq_firmware::topic::{self, Mac};
use mbedtls_rs::Tls;

use cli::Options;
use platform::{HostClock, HostLog, HostNet};

/// Certificate files on disk.
struct DiskFiles(std::path::PathBuf);

impl FileSource for DiskFiles {
    fn read(&self, name: &str) -> Result<Vec<u8>, String> {
        std::fs::read(self.0.join(name)).map_err(|e| e.to_string())
    }
    fn display(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) if message == "help" => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("fleetmq-sim: {message}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let devices = match prepare(&options) {
        Ok(devices) => devices,
        Err(message) => {
            eprintln!("fleetmq-sim: {message}");
            return ExitCode::from(2);
        }
    };
    match simulate(
        devices,
        Duration::from_millis(options.sign_delay_ms),
        options.claim_state.clone().map(|dir| claim::ClaimState {
            dir,
            renew_before_secs: options.renew_before_secs,
        }),
        options.ota.clone(),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("fleetmq-sim: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the configuration once per device (each may have its own files).
fn prepare(options: &Options) -> Result<Vec<(Device, Mac)>, String> {
    let text = std::fs::read_to_string(&options.config)
        .map_err(|e| format!("{}: cannot read: {e}", options.config.display()))?;
    let base: DeviceConfig = config::parse(&text, &DiskFiles(options.fs.clone()))
        .map_err(|e| format!("{}: {e}", options.config.display()))?;
    let mut devices = Vec::new();
    for index in 0..options.devices {
        let mac = options.mac.offset(index);
        let mut config = base.clone();
        if let Some(dir) = &options.device_certs {
            let client_id = topic::expand(&config.client_id, mac, "");
            let files = DiskFiles(dir.clone());
            let read = |ext: &str| {
                let name = format!("{client_id}.{ext}");
                files
                    .read(&name)
                    .map_err(|e| format!("{}: cannot read: {e}", files.display(&name)))
            };
            config.tls.client = Some(config::ClientIdentity {
                cert_pem: read("crt")?,
                key_pem: read("key")?,
            });
        }
        let device = Device::new(config, mac)
            .map_err(|e| format!("device {mac}: {e}"))?
            .on_chip(ChipInfo {
                name: "host-sim",
                cpu_mhz: None,
                hw_crypto: false,
            });
        devices.push((device, mac));
    }
    Ok(devices)
}

/// Runs every device until the process is killed.
fn simulate(
    devices: Vec<(Device, Mac)>,
    sign_delay: Duration,
    claim_state: Option<claim::ClaimState>,
    ota: Option<ota::OtaOptions>,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let rng: &'static mut HostRng = Box::leak(Box::new(HostRng));
    let tls = Tls::new(rng).map_err(|e| format!("cannot start mbedTLS: {e:?}"))?;
    // One mbedTLS instance serves every simulated device for the whole run.
    let tls: &'static Tls<'static> = Box::leak(Box::new(tls));
    install_clock_hooks();
    let fleet = devices.len() > 1;
    let local = tokio::task::LocalSet::new();
    let clock: &'static HostClock = Box::leak(Box::new(HostClock::new()));
    for (device, mac) in devices {
        let tls = tls.reference();
        let prefix = if fleet {
            format!("[{}] ", device.names.client_id)
        } else {
            String::new()
        };
        let claim_state = claim_state.clone();
        let ota = ota.clone();
        local.spawn_local(async move {
            let log = HostLog {
                prefix: prefix.clone(),
            };
            let mut net = HostNet {
                mac,
                log: HostLog { prefix },
                sign_delay,
            };
            let mut device = device;
            if let Some(state) = &claim_state {
                device.config.renew_before_secs =
                    u32::try_from(state.renew_before_secs).unwrap_or(u32::MAX);
            }
            match (&claim_state, &ota) {
                (claim, Some(ota)) => {
                    ota::run(
                        &mut net,
                        clock,
                        &log,
                        &device,
                        mac,
                        tls,
                        ota,
                        claim.as_ref(),
                    )
                    .await
                }
                (Some(state), None) => {
                    let mut store = claim::FolderStore::new(&state.dir, &device.names.client_id);
                    runner::identity::run_provisioned(
                        &mut net,
                        clock,
                        &log,
                        &device,
                        mac,
                        tls,
                        &mut store,
                        &mut claim::HostRandom,
                        None,
                    )
                    .await
                }
                (None, None) => runner::run(&mut net, clock, &log, &device, tls, None).await,
            }
        });
    }
    runtime.block_on(local.run_until(async {
        let _ = tokio::signal::ctrl_c().await;
    }));
    Ok(())
}

/// mbedTLS checks certificate dates against the host clock.
#[allow(unsafe_code)]
fn install_clock_hooks() {
    use mbedtls_rs::sys::hook::backend::std::{timer::StdTimer, wall_clock::StdWallClock};
    static TIMER: StdTimer = StdTimer;
    static WALL_CLOCK: StdWallClock = StdWallClock;
    // SAFETY: called once, before any TLS session exists; the hooks are
    // statics that live for the whole process.
    unsafe {
        mbedtls_rs::sys::hook::timer::hook_timer(Some(&TIMER));
        mbedtls_rs::sys::hook::wall_clock::hook_wall_clock(Some(&WALL_CLOCK));
    }
}

/// The operating system's RNG for mbedTLS's DRBG seed and nonces.
struct HostRng;

impl rand::TryRng for HostRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(rand::random())
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(rand::random())
    }

    fn try_fill_bytes(&mut self, destination: &mut [u8]) -> Result<(), Self::Error> {
        rand::fill(destination);
        Ok(())
    }
}

impl rand::TryCryptoRng for HostRng {}
