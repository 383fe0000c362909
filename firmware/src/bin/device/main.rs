//! The ESP32 firmware: esp-hal, WiFi through esp-radio, embassy-net, and
//! mbedTLS (mbedtls-rs) with the chip's SHA/RSA/AES accelerators, running
//! the same device loop as the host simulation (`fleetmq_firmware::runner`).
//!
//! The configuration and certificates are embedded at build time by
//! `build.rs` from `firmware/device.toml` and `firmware/fs/`. Build with
//! `firmware/build-device.sh` (see firmware/README.md).
#![no_std]
#![no_main]

extern crate alloc;

mod identity;
mod ota_flash;
mod platform;

use alloc::format;
use alloc::string::String;
use core::cell::RefCell;

use embassy_executor::Spawner;
use embassy_net::{Runner, StackResources};
use embassy_time::Timer;
use esp_hal::clock::CpuClock;
use esp_hal::rng::{Rng, Trng, TrngSource};
use esp_hal::timer::timg::TimerGroup;
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{
    AuthenticationMethodConfig, Config, ControllerConfig, Interface, Password, Ssid, WifiController,
};
use esp_storage::FlashStorage;
use fleetmq_firmware::config::{self, EmbeddedFiles};
use fleetmq_firmware::ota::agent::{Agent, Out};
use fleetmq_firmware::ota::otadata::ImageState;
use fleetmq_firmware::ota::slots::{AppStart, Slots};
use fleetmq_firmware::runner::ota::{OtaHook, OtaRun};
use fleetmq_firmware::runner::{self, ChipInfo, Clock as _, Device, Log as _};
use fleetmq_firmware::topic::Mac;
use mbedtls_rs::Tls;
use static_cell::StaticCell;
use {esp_alloc as _, esp_backtrace as _};

use platform::{DeviceClock, DeviceNet, SerialLog};

/// `device.toml` and the certificate files, embedded by `build.rs`.
mod device_files {
    include!(concat!(env!("OUT_DIR"), "/device_files.rs"));
}

esp_bootloader_esp_idf::esp_app_desc!();

static STACK_RESOURCES: StaticCell<StackResources<4>> = StaticCell::new();
static TRNG_SOURCE: StaticCell<TrngSource<'static>> = StaticCell::new();
static TRNG: StaticCell<Trng> = StaticCell::new();
static FLASH: StaticCell<RefCell<FlashStorage<'static>>> = StaticCell::new();

#[esp_rtos::main]
async fn main(spawner: Spawner) -> ! {
    esp_println::logger::init_logger(log::LevelFilter::Info);
    let peripherals = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    // WiFi buffers and mbedTLS (records, certificates, bignums) live here.
    esp_alloc::heap_allocator!(#[esp_hal::ram(reclaimed)] size: 64 * 1024);
    esp_alloc::heap_allocator!(size: 96 * 1024);

    let timg0 = TimerGroup::new(peripherals.TIMG0);
    esp_rtos::start(timg0.timer0, peripherals.FROM_CPU_INTR0);

    let log = SerialLog;
    let config = match config::parse(
        device_files::DEVICE_TOML,
        &EmbeddedFiles(device_files::FILES),
    ) {
        Ok(config) => config,
        Err(e) => halt(format!("device.toml: {e}")).await,
    };
    let station_config = match station_config(&config) {
        Ok(c) => c,
        Err(e) => halt(e).await,
    };

    let station = Interface::station();
    let mac = Mac(station.mac_address());
    let controller = match WifiController::new(
        peripherals.WIFI,
        ControllerConfig::default().with_initial_config(station_config),
    ) {
        Ok(controller) => controller,
        Err(e) => halt(format!("WiFi init failed: {e:?}")).await,
    };
    let rng = Rng::new();
    let seed = (u64::from(rng.random()) << 32) | u64::from(rng.random());
    let (stack, net_runner) = embassy_net::new(
        station,
        embassy_net::Config::dhcpv4(Default::default()),
        STACK_RESOURCES.init(StackResources::new()),
        seed,
    );
    spawner.spawn(
        wifi_task(controller)
            .map_err(|_| ())
            .unwrap_or_else(|()| halt_task()),
    );
    spawner.spawn(
        net_task(net_runner)
            .map_err(|_| ())
            .unwrap_or_else(|()| halt_task()),
    );

    // Hardware SHA, RSA (modular exponentiation) and AES for mbedTLS, and
    // the SNTP-set wall clock for certificate dates.
    platform::install_crypto_hooks(peripherals.SHA, peripherals.RSA, peripherals.AES);
    // The RNG fed by the SAR ADC and the radio: a true random source for
    // mbedTLS's DRBG seed.
    TRNG_SOURCE.init(TrngSource::new(peripherals.RNG, peripherals.ADC1));
    let trng = match Trng::try_new() {
        Ok(trng) => TRNG.init(trng),
        Err(e) => halt(format!("no true random source: {e:?}")).await,
    };
    let tls = match Tls::new(trng) {
        Ok(tls) => tls,
        Err(e) => halt(format!("mbedTLS init failed: {e:?}")).await,
    };

    let device = match Device::new(config, mac) {
        Ok(device) => device.on_chip(CHIP),
        Err(e) => halt(e).await,
    };
    let mut net = DeviceNet::new(stack);
    // The chip's flash: OTA slots and the identity partition.
    let flash: ota_flash::SharedFlash =
        FLASH.init(RefCell::new(FlashStorage::new(peripherals.FLASH)));
    let mut ota = start_ota(flash, &device, &log);
    let mut hook = ota.as_mut().map(|ota| ota as &mut dyn OtaHook);
    if !device.config.provision {
        runner::run(&mut net, &DeviceClock, &log, &device, tls.reference(), hook).await;
        // Only the OTA agent stops the loop: reset into the new slot (or
        // out of one not confirmed in time).
        esp_hal::system::software_reset()
    }
    // Provisioning by claim: the configured certificate is the batch's;
    // the device's own key and certificate live in the `fleetmq` partition.
    let mut store = match identity::PartitionFlash::open(flash) {
        Ok(flash) => identity::FlashIdentity(flash),
        Err(e) => halt(e).await,
    };
    let mut random = match Trng::try_new() {
        Ok(trng) => identity::TrngRandom(trng),
        Err(e) => halt(format!("no true random source: {e:?}")).await,
    };
    runner::identity::run_provisioned(
        &mut net,
        &DeviceClock,
        &log,
        &device,
        mac,
        tls.reference(),
        &mut store,
        &mut random,
        hook.take(),
    )
    .await;
    esp_hal::system::software_reset()
}

/// Firmware updates (`fleetmq.ota_key` set): the application's start step
/// on the OTA slots (it rolls back an image never confirmed online,
/// whatever the bootloader; decision 0174), then the agent. `None` (and a
/// log line) when updates are off or the partition table has no OTA
/// slots: the device runs without them rather than not at all.
fn start_ota(
    flash: ota_flash::SharedFlash,
    device: &Device,
    log: &SerialLog,
) -> Option<OtaRun<ota_flash::EspOtaFlash>> {
    let raw = device.config.ota_key?;
    let key = match ed25519_dalek::VerifyingKey::from_bytes(&raw) {
        Ok(key) => key,
        Err(e) => {
            log.line(&format!("OTA off: fleetmq.ota_key: {e}"));
            return None;
        }
    };
    let found = match ota_flash::open(flash) {
        Ok(found) => found,
        Err(e) => {
            log.line(&format!("OTA off: {e}"));
            return None;
        }
    };
    let mut slots = Slots::new(found.flash, found.layout);
    let booted = match slots.app_start(found.running_slot) {
        Ok(AppStart::Run(booted)) => booted,
        Ok(AppStart::RollBack) => {
            log.line("OTA this image was never confirmed online: rolling back, resetting");
            esp_hal::system::software_reset()
        }
        Err(e) => {
            log.line(&format!("OTA off: otadata: {}", e.0));
            return None;
        }
    };
    let pending = booted.state == Some(ImageState::PendingVerify);
    let version = slots
        .version(booted.slot)
        .ok()
        .flatten()
        .unwrap_or_default();
    log.line(&format!(
        "OTA boot: slot ota_{} version {version}{}",
        booted.slot,
        if pending { " (pending verify)" } else { "" }
    ));
    let agent = Agent::new(&device.names.client_id, CHIP.name, key);
    let confirm_ms = u64::from(device.config.ota_confirm_secs) * 1000;
    let (run, outs) = OtaRun::new(slots, agent, pending, DeviceClock.now_ms(), confirm_ms);
    for out in outs {
        if let Out::Log(line) = out {
            log.line(&line);
        }
    }
    Some(run)
}

/// The chip this image is built for, at the clock `CpuClock::max()` sets,
/// with mbedTLS on its SHA/AES/RSA accelerators (the device's report).
#[cfg(feature = "esp32c3")]
const CHIP: ChipInfo = ChipInfo {
    name: "esp32c3",
    cpu_mhz: Some(160),
    hw_crypto: true,
};
#[cfg(feature = "esp32c6")]
const CHIP: ChipInfo = ChipInfo {
    name: "esp32c6",
    cpu_mhz: Some(160),
    hw_crypto: true,
};
#[cfg(feature = "esp32")]
const CHIP: ChipInfo = ChipInfo {
    name: "esp32",
    cpu_mhz: Some(240),
    hw_crypto: true,
};
#[cfg(feature = "esp32s3")]
const CHIP: ChipInfo = ChipInfo {
    name: "esp32s3",
    cpu_mhz: Some(240),
    hw_crypto: true,
};

/// WiFi credentials from `wifi.sta.ssid` / `wifi.sta.pass`.
fn station_config(config: &config::DeviceConfig) -> Result<Config, String> {
    let ssid = config.wifi_ssid.as_deref().unwrap_or_default();
    let ssid = Ssid::try_from(ssid).map_err(|_| String::from("wifi.sta.ssid: too long"))?;
    let authentication = match config.wifi_pass.as_deref() {
        None | Some("") => AuthenticationMethodConfig::Open,
        Some(pass) => AuthenticationMethodConfig::Wpa2Personal(
            Password::try_from(pass)
                .map_err(|_| String::from("wifi.sta.pass: not a valid WPA2 password"))?,
        ),
    };
    Ok(Config::Station(
        StationConfig::default()
            .with_ssid(ssid)
            .with_authentication(authentication),
    ))
}

/// A device that cannot run prints why, every ten seconds, forever.
async fn halt(message: String) -> ! {
    loop {
        esp_println::println!("FATAL: {message}");
        Timer::after_secs(10).await;
    }
}

/// Spawning a task into a fresh executor cannot fail for want of room; if it
/// ever does, stop here rather than run without the network.
fn halt_task() -> ! {
    esp_println::println!("FATAL: cannot spawn a task");
    loop {
        core::hint::spin_loop();
    }
}

/// Keeps the station associated; reconnects after a drop.
#[embassy_executor::task]
async fn wifi_task(mut controller: WifiController<'static>) {
    loop {
        match controller.connect_async().await {
            Ok(_) => {
                let _ = controller.wait_for_disconnect_async().await;
                esp_println::println!("WiFi: disconnected");
            }
            Err(e) => esp_println::println!("WiFi: connect failed: {e:?}"),
        }
        Timer::after_secs(5).await;
    }
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Interface>) {
    runner.run().await
}
