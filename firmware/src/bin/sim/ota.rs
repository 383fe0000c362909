//! `fleetmq-sim --ota-flash DIR --ota-key FILE`: each simulated device
//! runs the firmware's OTA agent (`fleetmq_firmware::ota`) over a
//! file-backed flash instead of the plain device loop: at "reset" the
//! library's bootloader step picks the slot, the version is read from the
//! booted image, the device connects with its certificate, subscribes to
//! its offer and chunk topics, and follows offers. A verified image makes
//! it reset into the new slot; the new version is confirmed only once it
//! is online again. An image containing [`NEVER_CONNECTS`] stands for a
//! version that cannot reach the broker: it never connects, and after
//! `--ota-confirm-secs` the watchdog resets the device, which rolls back.

use std::path::PathBuf;

use embassy_futures::select::{select, Either};
use embedded_io_async::Write;
use fleetmq_firmware::mqtt::codec::{self, Connect, Packet};
use fleetmq_firmware::ota::agent::{Agent, Out};
use fleetmq_firmware::ota::flash::{Layout, OtaFlash as _};
use fleetmq_firmware::ota::otadata::ImageState;
use fleetmq_firmware::ota::slots::Slots;
use fleetmq_firmware::ota::{chunk_topic, image, offer_topic};
use fleetmq_firmware::runner::{Clock, Device, Log, Net};
use mbedtls_rs::{Session, SessionConfig, TlsReference};

use crate::ota_flash::FileFlash;
use crate::platform::{HostClock, HostLog, HostNet};

/// The marker of a simulated version that never reconnects.
pub const NEVER_CONNECTS: &[u8] = b"FLEETMQ-SIM-NEVER-CONNECTS";

/// Largest packet taken (a chunk of up to 8 KiB and its header).
const RX_BUFFER: usize = 16 * 1024;

/// The OTA options of `fleetmq-sim`.
#[derive(Debug, Clone)]
pub struct OtaOptions {
    pub flash_dir: PathBuf,
    pub key: ed25519_dalek::VerifyingKey,
    pub factory_version: String,
    pub chip: String,
    pub confirm_secs: u64,
    pub corrupt_chunk: Option<u32>,
}

/// Reads the broker's public key (`ota-signing.pub`: 64 hex digits).
pub fn read_key(path: &std::path::Path) -> Result<ed25519_dalek::VerifyingKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut raw = [0u8; 32];
    fleetmq_firmware::ota::manifest::hex_decode(text.trim(), &mut raw)
        .ok_or_else(|| format!("{}: not 64 hex digits", path.display()))?;
    ed25519_dalek::VerifyingKey::from_bytes(&raw).map_err(|e| format!("{}: {e}", path.display()))
}

enum Ended {
    Reset,
    Failed(String),
}

/// Runs one device with OTA until the process is killed.
pub async fn run(
    net: &mut HostNet,
    clock: &HostClock,
    log: &HostLog,
    device: &Device,
    tls: TlsReference<'_>,
    options: &OtaOptions,
) {
    let client_id = device.names.client_id.clone();
    let Some(chip) = image::chip_id(&options.chip) else {
        log.line(&format!("OTA unknown chip {}", options.chip));
        return;
    };
    let factory = image::build(chip, &options.factory_version, b"fleetmq-sim factory image");
    let path = options.flash_dir.join(format!("{client_id}.flash"));
    let flash = match FileFlash::open(&path, &factory) {
        Ok(flash) => flash,
        Err(message) => return log.line(&format!("OTA flash: {message}")),
    };
    let mut slots = Slots::new(flash, Layout::SIM);
    let mut agent = Agent::new(&client_id, &options.chip, options.key);
    agent.fault_corrupt_chunk = options.corrupt_chunk;
    loop {
        let booted = match slots.boot() {
            Ok(booted) => booted,
            Err(error) => return log.line(&format!("OTA boot failed: {}", error.0)),
        };
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
        let deadline = pending.then(|| clock.now_ms() + options.confirm_secs * 1000);
        if never {
            log.line(&format!("OTA version {version} never connects (simulated)"));
            clock.sleep_ms(options.confirm_secs * 1000).await;
            log.line("OTA watchdog reset: not confirmed in time");
            continue;
        }
        loop {
            let ended = session(net, clock, log, device, tls, &mut slots, &mut agent).await;
            match ended {
                Ended::Reset => break,
                Ended::Failed(why) => log.line(&format!("MQTT0 failed: {why}; reconnecting")),
            }
            let confirmed =
                matches!(slots.running(), Ok(b) if b.state != Some(ImageState::PendingVerify));
            if deadline.is_some_and(|d| clock.now_ms() >= d) && !confirmed {
                log.line("OTA watchdog reset: not confirmed in time");
                break;
            }
            clock.sleep_ms(500).await;
        }
    }
}

async fn send<W: Write>(writer: &mut W, bytes: &[u8]) -> Result<(), String> {
    writer
        .write_all(bytes)
        .await
        .map_err(|e| format!("write failed: {e:?}"))?;
    writer
        .flush()
        .await
        .map_err(|e| format!("write failed: {e:?}"))
}

/// One connection: until it fails, or the agent wants a reset.
async fn session(
    net: &mut HostNet,
    clock: &HostClock,
    log: &HostLog,
    device: &Device,
    tls: TlsReference<'_>,
    slots: &mut Slots<FileFlash>,
    agent: &mut Agent,
) -> Ended {
    let config = &device.config;
    let client_id = device.names.client_id.as_str();
    let mut socket = match net.connect(&config.host, config.port).await {
        Ok(socket) => socket,
        Err(e) => return Ended::Failed(e.message),
    };
    let client_config = SessionConfig::Client(device.tls.client_config());
    let mut session = match Session::new(tls, &mut socket, &client_config) {
        Ok(session) => session,
        Err(e) => return Ended::Failed(format!("TLS session: {e}")),
    };
    if let Err(e) = session.connect().await {
        return Ended::Failed(format!("TLS handshake failed: {e}"));
    }
    let connect = codec::connect(&Connect {
        client_id,
        keep_alive: 30,
        clean_session: true,
        will: None,
        username: None,
        password: None,
    });
    if let Err(e) = send(&mut session, &connect).await {
        return Ended::Failed(e);
    }
    let (offers, chunks) = (offer_topic(client_id), chunk_topic(client_id));
    let mut buf = vec![0u8; RX_BUFFER];
    let mut filled = 0;
    let mut packet_id: u16 = 10;
    let mut last_ping = clock.now_ms();
    loop {
        let mut outs = Vec::new();
        loop {
            let used = match codec::decode(&buf[..filled], RX_BUFFER) {
                Ok(Some((packet, used))) => {
                    match packet {
                        Packet::ConnAck { code: 0, .. } => {
                            let sub = [
                                codec::subscribe(1, &offers, 1),
                                codec::subscribe(2, &chunks, 1),
                            ]
                            .concat();
                            if let Err(e) = send(&mut session, &sub).await {
                                return Ended::Failed(e);
                            }
                        }
                        Packet::ConnAck { code, .. } => {
                            return Ended::Failed(format!("CONNACK {code}"))
                        }
                        Packet::SubAck {
                            packet_id: 2,
                            codes,
                        } => {
                            if codes.first() == Some(&0x80) {
                                return Ended::Failed(String::from(
                                    "subscription to the OTA topics refused",
                                ));
                            }
                            log.line("MQTT connected");
                            agent.on_online(slots, clock.now_ms(), &mut outs);
                        }
                        Packet::Publish {
                            topic,
                            payload,
                            qos,
                            packet_id,
                            ..
                        } => {
                            if let (1, Some(id)) = (qos, packet_id) {
                                if let Err(e) = send(&mut session, &codec::ack(0x40, id)).await {
                                    return Ended::Failed(e);
                                }
                            }
                            if topic == offers {
                                agent.on_offer(payload, slots, clock.now_ms(), &mut outs);
                            } else if topic == chunks {
                                agent.on_chunk(payload, slots, clock.now_ms(), &mut outs);
                            }
                        }
                        _ => {}
                    }
                    used
                }
                Ok(None) => break,
                Err(e) => return Ended::Failed(format!("{e}")),
            };
            buf.copy_within(used..filled, 0);
            filled -= used;
        }
        for out in outs {
            match out {
                Out::Log(line) => log.line(&line),
                Out::Publish { topic, payload } => {
                    packet_id = packet_id.checked_add(1).unwrap_or(10);
                    if let Err(e) = send(
                        &mut session,
                        &codec::publish(&topic, &payload, 1, false, packet_id),
                    )
                    .await
                    {
                        return Ended::Failed(e);
                    }
                }
                Out::Reset => {
                    let _ = send(&mut session, &codec::disconnect()).await;
                    log.line("OTA reset into the new slot");
                    return Ended::Reset;
                }
            }
        }
        if clock.now_ms().saturating_sub(last_ping) >= 15_000 {
            last_ping = clock.now_ms();
            if let Err(e) = send(&mut session, &codec::pingreq()).await {
                return Ended::Failed(e);
            }
        }
        let Some(free) = buf.get_mut(filled..) else {
            return Ended::Failed(String::from("receive buffer overflow"));
        };
        match select(session.read(free), clock.sleep_ms(1000)).await {
            Either::First(Ok(0)) => {
                return Ended::Failed(String::from("connection closed by the broker"))
            }
            Either::First(Ok(n)) => filled += n,
            Either::First(Err(e)) => return Ended::Failed(format!("read failed: {e:?}")),
            Either::Second(()) => {
                let mut outs = Vec::new();
                agent.on_timer(clock.now_ms(), &mut outs);
                for out in outs {
                    if let Out::Publish { topic, payload } = out {
                        packet_id = packet_id.checked_add(1).unwrap_or(10);
                        if let Err(e) = send(
                            &mut session,
                            &codec::publish(&topic, &payload, 1, false, packet_id),
                        )
                        .await
                        {
                            return Ended::Failed(e);
                        }
                    }
                }
            }
        }
    }
}
