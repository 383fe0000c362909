//! Command line of `fleetmq-sim`.

use std::path::PathBuf;

use fleetmq_firmware::topic::Mac;

pub const USAGE: &str =
    "usage: fleetmq-sim --config device.toml [--fs DIR] [--mac AA:BB:CC:DD:EE:FF]
                   [--devices N] [--device-certs DIR] [--sign-delay-ms MS]
                   [--claim-state DIR [--renew-before-secs S]]
                   [--ota-flash DIR --ota-key FILE [--ota-version V] [--ota-chip C]
                    [--ota-confirm-secs S] [--ota-corrupt-chunk N]
                   [--ota-log-chunks] [--ota-chunk-delay-ms MS]]

  --config FILE        device configuration (mos.yml keys in TOML)
  --fs DIR             folder of the certificate files it names
                       (default: `fs` next to the configuration)
  --mac MAC            station MAC of the (first) device (default 24:0A:C4:80:7A:98)
  --devices N          simulate N devices with consecutive MACs (default 1)
  --device-certs DIR   each device presents DIR/<client id>.crt and .key
  --sign-delay-ms MS   wait MS before sending the TLS CertificateVerify, as a
                       slower chip signs (a classic ESP32: about 1500)
  --claim-state DIR    the configured certificate is a claim certificate: each
                       device without DIR/<client id>.crt and .key makes a
                       P-256 key, asks the broker for its certificate
                       ($fleetmq/provision/...), keeps both in DIR (its flash)
                       and connects with them from then on
  --renew-before-secs S  with --claim-state: renew the device's certificate
                       S seconds before its end, at start or while connected
                       (default 30 days)
  --ota-flash DIR      firmware updates (docs/ota.md): each device keeps its
                       flash in DIR/<client id>.flash and follows the broker's
                       offers (with --claim-state too, on its own certificate)
  --ota-key FILE       the broker's manifest key (ota-signing.pub, hex)
  --ota-version V      version of the factory image of a new flash (1.0.0)
  --ota-chip C         the chip the devices claim to be (esp32c3)
  --ota-confirm-secs S a new version not online within S s is rolled back (30)
  --ota-corrupt-chunk N  fault injection: the first arrival of chunk N is
                       corrupted on the device
  --ota-log-chunks     log `OTA chunk N written` for every chunk
  --ota-chunk-delay-ms MS  pause MS after each chunk written (slow download)";

/// Parsed options.
#[derive(Debug)]
pub struct Options {
    pub config: PathBuf,
    pub fs: PathBuf,
    pub mac: Mac,
    pub devices: u32,
    pub device_certs: Option<PathBuf>,
    /// Extra time before each CertificateVerify, in milliseconds.
    pub sign_delay_ms: u64,
    /// Provisioning by claim: where each device keeps its key and
    /// certificate (the simulation's flash).
    pub claim_state: Option<PathBuf>,
    /// Renew a stored certificate this close to its end (seconds).
    pub renew_before_secs: i64,
    /// Firmware updates (`--ota-*`).
    pub ota: Option<crate::ota::OtaOptions>,
}

pub fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut config = None;
    let mut fs = None;
    let mut mac = Mac([0x24, 0x0A, 0xC4, 0x80, 0x7A, 0x98]);
    let mut devices = 1;
    let mut device_certs = None;
    let mut sign_delay_ms = 0;
    let mut claim_state = None;
    let mut renew_before_secs = 30 * 86_400;
    let mut ota_flash: Option<PathBuf> = None;
    let mut ota_key: Option<PathBuf> = None;
    let mut ota_version = String::from("1.0.0");
    let mut ota_chip = String::from("esp32c3");
    let mut ota_confirm_secs = 30;
    let mut ota_corrupt_chunk = None;
    let mut ota_log_chunks = false;
    let mut ota_chunk_delay_ms = 0;
    let mut args = args;
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--config" => config = Some(PathBuf::from(value()?)),
            "--fs" => fs = Some(PathBuf::from(value()?)),
            "--mac" => mac = parse_mac(&value()?)?,
            "--devices" => {
                devices = value()?
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or("--devices takes a number from 1 to 10000")?;
            }
            "--device-certs" => device_certs = Some(PathBuf::from(value()?)),
            "--claim-state" => claim_state = Some(PathBuf::from(value()?)),
            "--renew-before-secs" => {
                renew_before_secs = value()?
                    .parse::<i64>()
                    .ok()
                    .filter(|secs| *secs >= 0)
                    .ok_or("--renew-before-secs takes seconds")?;
            }
            "--sign-delay-ms" => {
                sign_delay_ms = value()?
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| *ms <= 60_000)
                    .ok_or("--sign-delay-ms takes milliseconds from 0 to 60000")?;
            }
            "--ota-flash" => ota_flash = Some(PathBuf::from(value()?)),
            "--ota-key" => ota_key = Some(PathBuf::from(value()?)),
            "--ota-version" => ota_version = value()?,
            "--ota-chip" => ota_chip = value()?,
            "--ota-confirm-secs" => {
                ota_confirm_secs = value()?
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=3600).contains(s))
                    .ok_or("--ota-confirm-secs takes seconds from 1 to 3600")?;
            }
            "--ota-corrupt-chunk" => {
                ota_corrupt_chunk = Some(
                    value()?
                        .parse::<u32>()
                        .map_err(|_| "--ota-corrupt-chunk takes a chunk number")?,
                );
            }
            "--ota-log-chunks" => ota_log_chunks = true,
            "--ota-chunk-delay-ms" => {
                ota_chunk_delay_ms = value()?
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| *ms <= 60_000)
                    .ok_or("--ota-chunk-delay-ms takes milliseconds from 0 to 60000")?;
            }
            "-h" | "--help" => return Err(String::from("help")),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let config = config.ok_or("--config is required")?;
    let fs = fs.unwrap_or_else(|| {
        config
            .parent()
            .map(|dir| dir.join("fs"))
            .unwrap_or_else(|| PathBuf::from("fs"))
    });
    let ota = match (ota_flash, ota_key) {
        (Some(flash_dir), Some(key)) => {
            std::fs::create_dir_all(&flash_dir)
                .map_err(|e| format!("{}: {e}", flash_dir.display()))?;
            Some(crate::ota::OtaOptions {
                flash_dir,
                key: crate::ota::read_key(&key)?,
                factory_version: ota_version,
                chip: ota_chip,
                confirm_secs: ota_confirm_secs,
                corrupt_chunk: ota_corrupt_chunk,
                log_chunks: ota_log_chunks,
                chunk_delay_ms: ota_chunk_delay_ms,
            })
        }
        (None, None) => None,
        _ => return Err(String::from("--ota-flash and --ota-key go together")),
    };
    Ok(Options {
        ota,
        config,
        fs,
        mac,
        devices,
        device_certs,
        sign_delay_ms,
        claim_state,
        renew_before_secs,
    })
}

fn parse_mac(text: &str) -> Result<Mac, String> {
    let bytes: Vec<u8> = text
        .split([':', '-'])
        .map(|part| u8::from_str_radix(part, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("`{text}` is not a MAC address"))?;
    let bytes: [u8; 6] = bytes
        .try_into()
        .map_err(|_| format!("`{text}` is not a 6-byte MAC address"))?;
    Ok(Mac(bytes))
}
