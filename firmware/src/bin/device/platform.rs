//! The ESP32 platform of the device loop: embassy-net over esp-radio WiFi,
//! SNTP over UDP, the embassy clock, the serial console, and the hooks that
//! give mbedTLS the wall clock and the crypto accelerators.

use core::cell::Cell;
use core::net::Ipv4Addr;

use alloc::boxed::Box;
use alloc::format;
use critical_section::Mutex;
use embassy_net::dns::DnsQueryType;
use embassy_net::tcp::{TcpReader, TcpSocket, TcpWriter};
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{IpAddress, IpEndpoint, Stack};
use embassy_time::{with_timeout, Duration, Instant, Timer};
use embedded_io_async::{ErrorType, Read, Write};
use fleetmq_firmware::machine::Phase;
use fleetmq_firmware::runner::{Clock, Log, Net, NetError};
use fleetmq_firmware::sntp;
use mbedtls_rs::sys::hook::backend::esp::{EspAccel, EspAccelQueue, EspHooksGuard};
use mbedtls_rs::sys::hook::timer::MbedtlsTimer;
use mbedtls_rs::sys::hook::wall_clock::MbedtlsWallClock;
use mbedtls_rs::sys::{mbedtls_ms_time_t, tm};
use mbedtls_rs::Split;
use static_cell::StaticCell;

/// TCP buffers of the one broker connection.
const TCP_BUFFER: usize = 4096;

fn fail(phase: Phase, message: alloc::string::String) -> NetError {
    NetError { phase, message }
}

/// Prints to the serial console (USB-JTAG or UART0).
pub struct SerialLog;

impl Log for SerialLog {
    fn line(&self, line: &str) {
        esp_println::println!("{line}");
    }
}

/// The embassy time driver (esp-rtos) and the radio-seeded RNG.
pub struct DeviceClock;

impl Clock for DeviceClock {
    fn now_ms(&self) -> u64 {
        Instant::now().as_millis()
    }

    async fn sleep_ms(&self, ms: u64) {
        Timer::after_millis(ms).await;
    }

    fn random_u32(&self) -> u32 {
        esp_hal::rng::Rng::new().random()
    }
}

/// WiFi, SNTP and TCP through embassy-net.
pub struct DeviceNet {
    stack: Stack<'static>,
    rx: Box<[u8]>,
    tx: Box<[u8]>,
}

impl DeviceNet {
    pub fn new(stack: Stack<'static>) -> DeviceNet {
        DeviceNet {
            stack,
            rx: alloc::vec![0; TCP_BUFFER].into_boxed_slice(),
            tx: alloc::vec![0; TCP_BUFFER].into_boxed_slice(),
        }
    }

    async fn resolve(&self, host: &str, phase: Phase) -> Result<IpAddress, NetError> {
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return Ok(IpAddress::Ipv4(ip));
        }
        let answers = self
            .stack
            .dns_query(host, DnsQueryType::A)
            .await
            .map_err(|e| fail(phase, format!("DNS lookup of {host} failed: {e:?}")))?;
        answers
            .first()
            .copied()
            .ok_or_else(|| fail(phase, format!("DNS: no address for {host}")))
    }
}

impl Net for DeviceNet {
    type Socket<'s> = DeviceSocket<'s>;

    async fn join_wifi(&mut self) -> Result<(), NetError> {
        let up = with_timeout(Duration::from_secs(30), self.stack.wait_config_up()).await;
        match (up, self.stack.config_v4()) {
            (Ok(()), Some(v4)) => {
                esp_println::println!("WiFi: connected, IP {}", v4.address);
                Ok(())
            }
            _ => Err(fail(
                Phase::Wifi,
                "no WiFi link or DHCP address within 30 s".into(),
            )),
        }
    }

    async fn sync_time(&mut self, server: &str) -> Result<u64, NetError> {
        let address = self.resolve(server, Phase::Time).await?;
        let mut rx_meta = [PacketMetadata::EMPTY; 2];
        let mut tx_meta = [PacketMetadata::EMPTY; 2];
        let mut rx_buffer = [0u8; 128];
        let mut tx_buffer = [0u8; 128];
        let mut socket = UdpSocket::new(
            self.stack,
            &mut rx_meta,
            &mut rx_buffer,
            &mut tx_meta,
            &mut tx_buffer,
        );
        socket
            .bind(0)
            .map_err(|e| fail(Phase::Time, format!("UDP bind: {e:?}")))?;
        socket
            .send_to(&sntp::request(), IpEndpoint::new(address, 123))
            .await
            .map_err(|e| fail(Phase::Time, format!("SNTP send: {e:?}")))?;
        let mut reply = [0u8; 48];
        let (len, _) = with_timeout(Duration::from_secs(5), socket.recv_from(&mut reply))
            .await
            .map_err(|_| {
                fail(
                    Phase::Time,
                    format!("no SNTP reply from {server} within 5 s"),
                )
            })?
            .map_err(|e| fail(Phase::Time, format!("SNTP receive: {e:?}")))?;
        let unix_us = sntp::parse_reply(&reply[..len])
            .map_err(|e| fail(Phase::Time, format!("SNTP reply from {server}: {e}")))?;
        WALL_CLOCK.set(unix_us);
        Ok(unix_us / 1_000_000)
    }

    async fn connect(&mut self, host: &str, port: u16) -> Result<DeviceSocket<'_>, NetError> {
        if !self.stack.is_link_up() {
            return Err(fail(Phase::Wifi, "WiFi link is down".into()));
        }
        let address = self.resolve(host, Phase::Tcp).await?;
        let mut socket = TcpSocket::new(self.stack, &mut self.rx, &mut self.tx);
        // A silent peer must not hold the device forever; MQTT keepalive
        // watches established connections.
        socket.set_timeout(Some(Duration::from_secs(120)));
        with_timeout(
            Duration::from_secs(10),
            socket.connect(IpEndpoint::new(address, port)),
        )
        .await
        .map_err(|_| {
            fail(
                Phase::Tcp,
                format!("no answer from {host}:{port} within 10 s"),
            )
        })?
        .map_err(|e| fail(Phase::Tcp, format!("{host}:{port}: {e:?}")))?;
        Ok(DeviceSocket(socket))
    }
}

/// A TCP socket mbedTLS can split into read and write halves.
pub struct DeviceSocket<'a>(TcpSocket<'a>);

impl ErrorType for DeviceSocket<'_> {
    type Error = embassy_net::tcp::Error;
}

impl Read for DeviceSocket<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.0.read(buf).await
    }
}

impl Write for DeviceSocket<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.write(buf).await
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush().await
    }
}

impl<'s> Split for DeviceSocket<'s> {
    type Read<'a>
        = TcpReader<'a>
    where
        Self: 'a;
    type Write<'a>
        = TcpWriter<'a>
    where
        Self: 'a;

    fn split(&mut self) -> (TcpReader<'_>, TcpWriter<'_>) {
        self.0.split()
    }
}

/// Wall clock set by SNTP: Unix microseconds at `Instant` zero. Until the
/// first sync it answers `None`, and mbedTLS refuses every certificate
/// (fails closed) rather than accept one with unchecked dates.
struct SntpWallClock {
    unix_us_at_boot: Mutex<Cell<Option<u64>>>,
}

impl SntpWallClock {
    fn set(&self, unix_us: u64) {
        let at_boot = unix_us.saturating_sub(Instant::now().as_micros());
        critical_section::with(|cs| self.unix_us_at_boot.borrow(cs).set(Some(at_boot)));
    }
}

impl MbedtlsWallClock for SntpWallClock {
    fn instant(&self) -> Option<tm> {
        let at_boot = critical_section::with(|cs| self.unix_us_at_boot.borrow(cs).get())?;
        let now = sntp::utc_from_unix((at_boot + Instant::now().as_micros()) / 1_000_000);
        Some(tm {
            tm_sec: now.second as _,
            tm_min: now.minute as _,
            tm_hour: now.hour as _,
            tm_mday: now.day as _,
            tm_mon: (now.month - 1) as _,
            tm_year: (now.year - 1900) as _,
            tm_wday: now.weekday as _,
            tm_yday: now.year_day as _,
            tm_isdst: 0,
        })
    }
}

/// Monotonic milliseconds for mbedTLS timeouts.
struct EmbassyTimer;

impl MbedtlsTimer for EmbassyTimer {
    fn now(&self) -> mbedtls_ms_time_t {
        Instant::now().as_millis() as mbedtls_ms_time_t
    }
}

static WALL_CLOCK: SntpWallClock = SntpWallClock {
    unix_us_at_boot: Mutex::new(Cell::new(None)),
};
static TIMER: EmbassyTimer = EmbassyTimer;
static ACCEL: StaticCell<EspAccel<'static>> = StaticCell::new();
static QUEUE: StaticCell<EspAccelQueue<'static, 'static>> = StaticCell::new();
static HOOKS: StaticCell<EspHooksGuard<'static>> = StaticCell::new();

/// Starts the SHA/RSA/AES work queues and points mbedTLS at them and at the
/// SNTP wall clock. Called once, before the first mbedTLS call.
#[allow(unsafe_code)]
pub fn install_crypto_hooks(
    sha: esp_hal::peripherals::SHA<'static>,
    rsa: esp_hal::peripherals::RSA<'static>,
    aes: esp_hal::peripherals::AES<'static>,
) {
    let accel = ACCEL.init(EspAccel::new().with_sha(sha).with_rsa(rsa).with_aes(aes));
    let queue: &'static EspAccelQueue<'static, 'static> = QUEUE.init(accel.start());
    // SAFETY: runs once at boot before any mbedTLS state exists; the queues
    // and the guard are statics, so the hooks stay valid (and serviced) for
    // the life of the firmware; the clocks are statics too.
    unsafe {
        HOOKS.init(queue.hook());
        mbedtls_rs::sys::hook::timer::hook_timer(Some(&TIMER));
        mbedtls_rs::sys::hook::wall_clock::hook_wall_clock(Some(&WALL_CLOCK));
    }
}
