//! The device's main loop, shared by the ESP32 firmware and the host
//! simulation: the [`Machine`] decides, this module does the IO through a
//! platform ([`Net`], [`Clock`], [`Log`]) and mbedTLS.
//!
//! One connection attempt: TCP connect, TLS handshake (offering the saved
//! session), then the [`MqttSession`] conversation until the connection
//! ends. Log lines follow Mongoose-OS (`MQTT0 connecting to ...`,
//! `ciphersuite: ...`, `MQTT0 TCP connect ok (0)`, `MQTT0 CONNACK 0`, `MQTT
//! connected`, `Published:OK ...`) plus the handshake duration measured on
//! the device.

pub mod identity;
pub mod ota;
pub mod provision;
mod socket;
pub mod tls;

use alloc::format;
use alloc::string::String;
use alloc::vec;

use embassy_futures::select::{select, Either};
use embedded_io_async::{Read, Write};
use mbedtls_rs::{SavedSession, Session, SessionConfig, Split, TlsReference};

use crate::backoff::Backoff;
use crate::config::DeviceConfig;
use crate::machine::{Machine, Phase, Step};
use crate::mqtt::session::SessionSettings;
use crate::mqtt::{decode, MqttSession, Output};
use crate::ota::agent::Out;
use crate::topic::{DeviceNames, Mac};
use ota::OtaHook;
use socket::Observed;
pub use tls::TlsSetup;

/// Receive buffer for MQTT packets from the broker.
const RX_BUFFER: usize = 2048;
/// With OTA: a chunk of up to 8 KiB, its header and topic.
const OTA_RX_BUFFER: usize = 9 * 1024;

/// Why the device loop returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The certificate is due for renewal (`run_until`'s deadline).
    RenewalDue,
    /// The OTA agent asked for a reset (a new image is bootable, or a
    /// pending one was not confirmed in time): the platform resets.
    Reset,
}

/// How one connection ended.
enum Attempt {
    Failed(NetError),
    Reset,
}

/// Why the network side failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetError {
    /// Which phase it belongs to (`Wifi` when the link is down).
    pub phase: Phase,
    /// What happened.
    pub message: String,
}

/// Monotonic time, sleeping and randomness.
#[allow(async_fn_in_trait)] // single-threaded executors; no Send bound wanted
pub trait Clock {
    /// Milliseconds since boot.
    fn now_ms(&self) -> u64;
    /// Sleeps `ms` milliseconds.
    async fn sleep_ms(&self, ms: u64);
    /// A random number (backoff jitter).
    fn random_u32(&self) -> u32;
}

/// The device log (serial console on the ESP32, stdout in the simulation).
pub trait Log {
    /// Prints one line.
    fn line(&self, line: &str);
}

/// WiFi, SNTP and TCP.
#[allow(async_fn_in_trait)]
pub trait Net {
    /// A connected TCP socket.
    type Socket<'s>: Read + Write + Split
    where
        Self: 's;
    /// Joins the access point and gets an address.
    async fn join_wifi(&mut self) -> Result<(), NetError>;
    /// Sets the wall clock from `server` (SNTP); returns Unix seconds.
    async fn sync_time(&mut self, server: &str) -> Result<u64, NetError>;
    /// Resolves `host` and connects to `port`.
    async fn connect(&mut self, host: &str, port: u16) -> Result<Self::Socket<'_>, NetError>;
}

/// One device: configuration, names and parsed TLS material.
pub struct Device {
    /// The checked configuration.
    pub config: DeviceConfig,
    /// Client id and topics for this device's MAC.
    pub names: DeviceNames,
    /// Certificates and key parsed by mbedTLS.
    pub tls: TlsSetup,
    /// What it runs on, for its report to the broker.
    pub chip: ChipInfo,
}

/// The chip a device runs on, as its connection report tells the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChipInfo {
    /// `esp32c3`, `esp32`, `esp32s3`, `host-sim`.
    pub name: &'static str,
    /// CPU clock, where known.
    pub cpu_mhz: Option<u16>,
    /// mbedTLS uses the chip's SHA/AES/RSA accelerators.
    pub hw_crypto: bool,
}

impl ChipInfo {
    /// Until the platform says.
    pub const UNKNOWN: ChipInfo = ChipInfo {
        name: "unknown",
        cpu_mhz: None,
        hw_crypto: false,
    };
}

impl Device {
    /// Prepares a device; errors name the configuration key at fault.
    pub fn new(config: DeviceConfig, mac: Mac) -> Result<Device, String> {
        let names = DeviceNames::new(&config.client_id, &config.topics, mac);
        let tls = TlsSetup::new(&config.tls)?;
        Ok(Device {
            config,
            names,
            tls,
            chip: ChipInfo::UNKNOWN,
        })
    }

    /// The same device, on `chip`.
    pub fn on_chip(mut self, chip: ChipInfo) -> Device {
        self.chip = chip;
        self
    }
}

/// The device's view of one connection, as JSON for the broker
/// (`$fleetmq/device/handshake`, decision 0143).
fn report(device: &Device, handshake_ms: u64, tcp_ms: u64, version: &str, resumed: bool) -> String {
    let chip = device.chip;
    let cpu_mhz = chip
        .cpu_mhz
        .map_or_else(|| String::from("null"), |mhz| format!("{mhz}"));
    format!(
        "{{\"tls_handshake_ms\":{handshake_ms},\"tcp_connect_ms\":{tcp_ms},\"version\":\"{version}\",\"resumed\":{resumed},\"mutual\":{},\"chip\":\"{}\",\"cpu_mhz\":{cpu_mhz},\"hw_crypto\":{},\"tls_library\":\"mbedTLS\"}}",
        device.tls.is_mutual(),
        chip.name,
        chip.hw_crypto
    )
}

/// Runs the device; returns only when the OTA agent asks for a reset
/// (never without `ota`).
pub async fn run<N: Net, C: Clock, L: Log>(
    net: &mut N,
    clock: &C,
    log: &L,
    device: &Device,
    tls: TlsReference<'_>,
    mut ota: Option<&mut dyn OtaHook>,
) {
    loop {
        if run_until(net, clock, log, device, tls, None, reborrow(&mut ota)).await == Stopped::Reset
        {
            return;
        }
    }
}

/// Runs the device until `until_ms` (its clock), then closes the connection
/// with DISCONNECT and returns: the caller renews the certificate and runs
/// the device again. `None` runs forever. With `ota`, the OTA agent runs
/// on the connection and may stop the loop for a reset.
pub async fn run_until<N: Net, C: Clock, L: Log>(
    net: &mut N,
    clock: &C,
    log: &L,
    device: &Device,
    tls: TlsReference<'_>,
    until_ms: Option<u64>,
    mut ota: Option<&mut dyn OtaHook>,
) -> Stopped {
    let config = &device.config;
    let mut machine = Machine::new(
        config.mqtt_enable,
        Backoff::new(config.reconnect_min_ms, config.reconnect_max_ms),
    );
    let mut saved: Option<SavedSession> = None;
    let past = |clock: &C| until_ms.is_some_and(|until| clock.now_ms() >= until);
    log.line(&format!(
        "Device {} ({} TLS), MQTT server {}",
        device.names.client_id,
        if device.tls.is_mutual() {
            "mutual"
        } else {
            "one-way"
        },
        config.server
    ));
    loop {
        if past(clock) {
            return Stopped::RenewalDue;
        }
        if ota
            .as_deref_mut()
            .is_some_and(|ota| ota.confirm_overdue(clock.now_ms()))
        {
            log.line("OTA watchdog reset: not confirmed in time");
            return Stopped::Reset;
        }
        let failure = match machine.step() {
            Step::Disabled => {
                log.line("MQTT disabled (mqtt.enable = false)");
                clock.sleep_ms(3_600_000).await;
                continue;
            }
            Step::Wait { ms } => {
                let ms = match until_ms {
                    Some(until) => u64::from(ms).min(until.saturating_sub(clock.now_ms())),
                    None => u64::from(ms),
                };
                clock.sleep_ms(ms).await;
                machine.waited();
                continue;
            }
            Step::JoinWifi => match net.join_wifi().await {
                Ok(()) => {
                    machine.wifi_joined();
                    continue;
                }
                Err(e) => e,
            },
            Step::SyncTime => match net.sync_time(&config.sntp_server).await {
                Ok(unix) => {
                    log.line(&format!("SNTP: time set to {unix} (Unix seconds)"));
                    machine.time_synced();
                    continue;
                }
                Err(e) => e,
            },
            Step::Connect { resume } => {
                let offer = if resume { saved.as_ref() } else { None };
                let (attempt, next) = connect_once(
                    net,
                    clock,
                    log,
                    device,
                    tls,
                    offer,
                    &mut machine,
                    until_ms,
                    reborrow(&mut ota),
                )
                .await;
                let failure = match attempt {
                    Attempt::Failed(failure) => failure,
                    Attempt::Reset => return Stopped::Reset,
                };
                if let Some(next) = next {
                    saved = Some(next);
                } else if failure.phase == Phase::Tls {
                    saved = None;
                }
                if past(clock) {
                    log.line("MQTT0 disconnected: the certificate is due for renewal");
                    return Stopped::RenewalDue;
                }
                failure
            }
        };
        let wait = machine.failed(failure.phase, clock.random_u32());
        log.line(&format!(
            "MQTT0 {} failed: {}; reconnecting in {wait} ms (attempt {})",
            failure.phase.as_str(),
            failure.message,
            machine.failures()
        ));
    }
}

/// One connection, from TCP connect until it ends. Returns why it ended
/// and the TLS session to offer next time (if a handshake succeeded).
#[allow(clippy::too_many_arguments)] // the platform's parts plus this attempt's
async fn connect_once<N: Net, C: Clock, L: Log>(
    net: &mut N,
    clock: &C,
    log: &L,
    device: &Device,
    tls: TlsReference<'_>,
    offer: Option<&SavedSession>,
    machine: &mut Machine,
    until_ms: Option<u64>,
    ota: Option<&mut dyn OtaHook>,
) -> (Attempt, Option<SavedSession>) {
    let config = &device.config;
    log.line(&format!("MQTT0 connecting to {}", config.server));
    let started = clock.now_ms();
    let socket = match net.connect(&config.host, config.port).await {
        Ok(socket) => socket,
        Err(e) => return (Attempt::Failed(e), None),
    };
    let tcp_ms = clock.now_ms().saturating_sub(started);
    let mut observed = Observed::new(socket);
    let client_config = SessionConfig::Client(device.tls.client_config());
    let mut session = match Session::new(tls, &mut observed, &client_config) {
        Ok(session) => session,
        Err(e) => {
            return (
                Attempt::Failed(fail(Phase::Tls, format!("cannot create TLS session: {e}"))),
                None,
            )
        }
    };
    let handshake_started = clock.now_ms();
    let result = match offer {
        Some(saved) => session.connect_with_session(saved).await,
        None => session.connect().await,
    };
    let handshake_ms = clock.now_ms().saturating_sub(handshake_started);
    if let Err(e) = result {
        let why = tls::explain(&e, device.tls.is_mutual());
        return (
            Attempt::Failed(fail(
                Phase::Tls,
                format!("{why} ({e}) after {handshake_ms} ms"),
            )),
            None,
        );
    }
    let next = session.save().ok();
    machine.handshake_done(next.is_some());
    let summary = session.stream().observer.summary();
    let (version, suite, resumed) = match summary {
        Some(s) => (s.version, format!("{}", s.suite_name()), s.resumed),
        None => ("TLS", String::from("unknown"), false),
    };
    log.line(&format!("ciphersuite: {suite}"));
    log.line("MQTT0 TCP connect ok (0)");
    log.line(&format!(
        "MQTT0 TLS handshake {handshake_ms} ms ({version}, {}, {}), TCP {tcp_ms} ms",
        if resumed { "resumed" } else { "full" },
        if device.tls.is_mutual() {
            "mutual"
        } else {
            "one-way"
        },
    ));
    let mut mqtt = MqttSession::new(SessionSettings {
        names: device.names.clone(),
        keep_alive_secs: config.keep_alive_secs,
        will_message: config.will_message.clone(),
        user: config.user.clone(),
        pass: config.pass.clone(),
        report: config
            .report_connection
            .then(|| report(device, handshake_ms, tcp_ms, version, resumed)),
        ota: ota.is_some(),
    });
    let attempt = match session.split().await {
        Ok((mut reader, mut writer)) => {
            serve(
                &mut reader,
                &mut writer,
                &mut mqtt,
                clock,
                log,
                machine,
                until_ms,
                ota,
            )
            .await
        }
        Err(e) => Attempt::Failed(fail(Phase::Tls, format!("{e}"))),
    };
    (attempt, next)
}

fn fail(phase: Phase, message: String) -> NetError {
    NetError { phase, message }
}

/// The MQTT conversation until the connection ends (or the OTA agent
/// asks for a reset).
#[allow(clippy::too_many_arguments)]
async fn serve<R: Read, W: Write, C: Clock, L: Log>(
    reader: &mut R,
    writer: &mut W,
    mqtt: &mut MqttSession,
    clock: &C,
    log: &L,
    machine: &mut Machine,
    until_ms: Option<u64>,
    mut ota: Option<&mut dyn OtaHook>,
) -> Attempt {
    let phase = |mqtt: &MqttSession| {
        if mqtt.is_online() {
            Phase::Online
        } else {
            Phase::Mqtt
        }
    };
    let failed = |phase: Phase, message: String| Attempt::Failed(fail(phase, message));
    let rx_buffer = if ota.is_some() {
        OTA_RX_BUFFER
    } else {
        RX_BUFFER
    };
    let mut outputs = vec![Output::Send(mqtt.start(clock.now_ms()))];
    let mut buf = vec![0u8; rx_buffer];
    let mut filled = 0;
    loop {
        let mut pace = false;
        while !outputs.is_empty() {
            let batch = core::mem::take(&mut outputs);
            for output in batch {
                let mut agent = alloc::vec::Vec::new();
                match output {
                    Output::Send(bytes) => {
                        let written = match writer.write_all(&bytes).await {
                            Ok(()) => writer.flush().await,
                            Err(e) => Err(e),
                        };
                        if let Err(e) = written {
                            return failed(phase(mqtt), format!("write failed: {e:?}"));
                        }
                    }
                    Output::Log(line) => log.line(&line),
                    Output::Online => machine.online(),
                    Output::Close(why) => return failed(Phase::Online, why),
                    Output::OtaReady => {
                        if let Some(ota) = reborrow(&mut ota) {
                            ota.online(clock.now_ms(), &mut agent);
                        }
                    }
                    Output::Ota { chunk, payload } => {
                        if let Some(ota) = reborrow(&mut ota) {
                            ota.message(chunk, &payload, clock.now_ms(), &mut agent);
                            pace |= chunk;
                        }
                    }
                }
                if apply(agent, mqtt, clock.now_ms(), log, &mut outputs) {
                    let _ = writer.write_all(&crate::mqtt::codec::disconnect()).await;
                    let _ = writer.flush().await;
                    log.line("OTA reset into the new slot");
                    return Attempt::Reset;
                }
            }
        }
        if let Some(ota) = reborrow(&mut ota) {
            if pace && ota.pace_ms() > 0 {
                clock.sleep_ms(ota.pace_ms()).await;
            }
            if ota.confirm_overdue(clock.now_ms()) {
                log.line("OTA watchdog reset: not confirmed in time");
                return Attempt::Reset;
            }
        }
        let now = clock.now_ms();
        if until_ms.is_some_and(|until| now >= until) {
            // A clean end: the broker does not publish the will.
            let _ = writer.write_all(&crate::mqtt::codec::disconnect()).await;
            let _ = writer.flush().await;
            return failed(Phase::Online, String::from("renewal due"));
        }
        let mut next = until_ms.map_or(mqtt.next_timer_ms(), |until| {
            until.min(mqtt.next_timer_ms())
        });
        if ota.is_some() {
            // The agent's fetch retries and the confirmation deadline.
            next = next.min(now + 1000);
        }
        let wait = next.saturating_sub(now);
        let Some(free) = buf.get_mut(filled..) else {
            return failed(phase(mqtt), String::from("receive buffer overflow"));
        };
        match select(reader.read(free), clock.sleep_ms(wait)).await {
            Either::First(Ok(0)) => {
                return failed(phase(mqtt), String::from("connection closed by the broker"))
            }
            Either::First(Ok(n)) => {
                filled += n;
                loop {
                    let used = match decode(&buf[..filled], rx_buffer) {
                        Ok(Some((packet, used))) => {
                            if let Err(e) = mqtt.on_packet(packet, clock.now_ms(), &mut outputs) {
                                // Log what the session said before failing (CONNACK n).
                                for output in outputs.drain(..) {
                                    if let Output::Log(line) = output {
                                        log.line(&line);
                                    }
                                }
                                return failed(phase(mqtt), format!("{e}"));
                            }
                            used
                        }
                        Ok(None) => break,
                        Err(e) => return failed(phase(mqtt), format!("{e}")),
                    };
                    buf.copy_within(used..filled, 0);
                    filled -= used;
                }
            }
            Either::First(Err(e)) => return failed(phase(mqtt), format!("read failed: {e:?}")),
            Either::Second(()) if until_ms.is_some_and(|until| clock.now_ms() >= until) => {}
            Either::Second(()) => {
                if let Err(e) = mqtt.on_timer(clock.now_ms(), &mut outputs) {
                    return failed(phase(mqtt), format!("{e}"));
                }
                if let Some(ota) = reborrow(&mut ota) {
                    if mqtt.is_online() {
                        let mut agent = alloc::vec::Vec::new();
                        ota.tick(clock.now_ms(), &mut agent);
                        // A tick only ever fetches again.
                        apply(agent, mqtt, clock.now_ms(), log, &mut outputs);
                    }
                }
            }
        }
    }
}

/// A shorter borrow of the OTA hook (for each call of a loop).
pub(crate) fn reborrow<'b>(ota: &'b mut Option<&mut dyn OtaHook>) -> Option<&'b mut dyn OtaHook> {
    match ota {
        Some(ota) => Some(&mut **ota),
        None => None,
    }
}

/// What the OTA agent said, as session outputs; true when it asks for a reset.
fn apply<L: Log>(
    agent: alloc::vec::Vec<Out>,
    mqtt: &mut MqttSession,
    now_ms: u64,
    log: &L,
    outputs: &mut alloc::vec::Vec<Output>,
) -> bool {
    let mut reset = false;
    for out in agent {
        match out {
            Out::Publish { topic, payload } => {
                mqtt.publish_quiet(&topic, &payload, now_ms, outputs)
            }
            Out::Log(line) => log.line(&line),
            Out::Reset => reset = true,
        }
    }
    reset
}
