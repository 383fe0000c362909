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
    /// Extra time before each CertificateVerify (`--sign-delay-ms`).
    pub sign_delay: Duration,
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
        Ok(HostSocket {
            stream: FromTokio::new(stream),
            sign_delay: self.sign_delay,
            signing: Signing::Ahead,
        })
    }
}

/// A TCP connection as an `embedded-io-async` stream mbedTLS can split.
pub struct HostSocket {
    stream: FromTokio<TcpStream>,
    /// Waited before writing a CertificateVerify: a stand-in for a slower
    /// chip's signing time, so tests can check that the broker attributes
    /// it to the device (decision 0142).
    sign_delay: Duration,
    /// Where the CertificateVerify delay stands.
    signing: Signing,
}

/// Where in `buf` a TLS 1.2 handshake record holding a CertificateVerify
/// starts (content type 22, handshake type 15; in the clear before
/// ChangeCipherSpec), walking the records `buf` begins with. mbedTLS may
/// hand over its whole flight in one write.
fn certificate_verify_at(buf: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(header) = buf.get(at..at + 6) {
        if header[0] == 22 && header[5] == 15 {
            return Some(at);
        }
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        at += 5 + length;
    }
    None
}

impl ErrorType for HostSocket {
    type Error = std::io::Error;
}

impl Read for HostSocket {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.stream.read(buf).await
    }
}

/// Where a connection is with its CertificateVerify delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// No CertificateVerify seen yet.
    Ahead,
    /// Seen: nothing more is written before this instant.
    Until(tokio::time::Instant),
    /// Served (once per connection).
    Done,
}

/// Holds a CertificateVerify back by `--sign-delay-ms`, once per
/// connection; everything else is written as it comes. The hold is a
/// deadline kept in `signing`, not a sleep: mbedTLS drops a pending write
/// and asks again later, and each ask waits for the same deadline.
async fn write_signing<W: Write>(
    stream: &mut W,
    sign_delay: Duration,
    signing: &mut Signing,
    buf: &[u8],
) -> Result<usize, W::Error> {
    if !sign_delay.is_zero() && *signing == Signing::Ahead {
        match certificate_verify_at(buf) {
            // What comes before it goes now; the caller writes the rest
            // next, starting with the CertificateVerify.
            Some(at) if at > 0 => return stream.write(&buf[..at]).await,
            Some(_) => *signing = Signing::Until(tokio::time::Instant::now() + sign_delay),
            None => {}
        }
    }
    if let Signing::Until(deadline) = *signing {
        tokio::time::sleep_until(deadline).await;
        *signing = Signing::Done;
    }
    stream.write(buf).await
}

impl Write for HostSocket {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        write_signing(&mut self.stream, self.sign_delay, &mut self.signing, buf).await
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.stream.flush().await
    }
}

/// The write half mbedTLS uses once it splits the socket (it does for the
/// handshake too).
pub struct SigningWriteHalf<'a> {
    half: FromTokio<WriteHalf<'a>>,
    sign_delay: Duration,
    signing: &'a mut Signing,
}

impl ErrorType for SigningWriteHalf<'_> {
    type Error = std::io::Error;
}

impl Write for SigningWriteHalf<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        write_signing(&mut self.half, self.sign_delay, self.signing, buf).await
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.half.flush().await
    }
}

impl Split for HostSocket {
    type Read<'a> = FromTokio<ReadHalf<'a>>;
    type Write<'a> = SigningWriteHalf<'a>;

    fn split(&mut self) -> (Self::Read<'_>, Self::Write<'_>) {
        let (read, write) = self.stream.inner_mut().split();
        (
            FromTokio::new(read),
            SigningWriteHalf {
                half: FromTokio::new(write),
                sign_delay: self.sign_delay,
                signing: &mut self.signing,
            },
        )
    }
}
