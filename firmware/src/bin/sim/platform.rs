//! The simulated device's platform: tokio TCP instead of embassy-net over
//! WiFi, the host clock instead of SNTP, stdout instead of the serial port.

use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime};

use embedded_io_adapters::tokio_1::FromTokio;
use embedded_io_async::{ErrorType, Read, Write};
use fleetmq_firmware::machine::Phase;
use fleetmq_firmware::runner::{Clock, Log, Net, NetError};
use fleetmq_firmware::topic::Mac;
use mbedtls_rs::Split;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

/// How long a TCP connect may take (the device's limit too).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Monotonic time since the simulation started, tokio timers, host RNG.
pub struct HostClock {
    started: Instant,
}

impl HostClock {
    pub fn new() -> HostClock {
        HostClock {
            started: Instant::now(),
        }
    }
}

impl Clock for HostClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn sleep_ms(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    fn random_u32(&self) -> u32 {
        rand::random()
    }
}

/// Prints device log lines, prefixed with the client id in fleet mode.
pub struct HostLog {
    /// `[esp32_807A98] ` or empty for a single device.
    pub prefix: String,
}

impl Log for HostLog {
    fn line(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}{line}", self.prefix);
        let _ = out.flush();
    }
}

/// The network of one simulated device.
pub struct HostNet {
    /// Simulated station MAC (shown when "joining WiFi").
    pub mac: Mac,
    /// Where to print.
    pub log: HostLog,
}

impl Net for HostNet {
    type Socket<'s> = HostSocket;

    async fn join_wifi(&mut self) -> Result<(), NetError> {
        self.log.line(&format!(
            "WiFi: simulated station {} up (host network)",
            self.mac
        ));
        Ok(())
    }

    async fn sync_time(&mut self, _server: &str) -> Result<u64, NetError> {
        // mbedTLS reads the host clock through its std wall-clock hook.
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .map_err(|e| NetError {
                phase: Phase::Time,
                message: format!("host clock before 1970: {e}"),
            })
    }

    async fn connect(&mut self, host: &str, port: u16) -> Result<HostSocket, NetError> {
        let fail = |message: String| NetError {
            phase: Phase::Tcp,
            message,
        };
        let connect = TcpStream::connect((host, port));
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| {
                fail(format!(
                    "no answer from {host}:{port} within {CONNECT_TIMEOUT:?}"
                ))
            })?
            .map_err(|e| fail(format!("{host}:{port}: {e}")))?;
        let _ = stream.set_nodelay(true);
        Ok(HostSocket(FromTokio::new(stream)))
    }
}

/// A TCP connection as an `embedded-io-async` stream mbedTLS can split.
pub struct HostSocket(FromTokio<TcpStream>);

impl ErrorType for HostSocket {
    type Error = std::io::Error;
}

impl Read for HostSocket {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.0.read(buf).await
    }
}

impl Write for HostSocket {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.write(buf).await
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush().await
    }
}

impl Split for HostSocket {
    type Read<'a> = FromTokio<ReadHalf<'a>>;
    type Write<'a> = FromTokio<WriteHalf<'a>>;

    fn split(&mut self) -> (Self::Read<'_>, Self::Write<'_>) {
        let (read, write) = self.0.inner_mut().split();
        (FromTokio::new(read), FromTokio::new(write))
    }
}
