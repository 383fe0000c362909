//! `sd_notify`: telling the service manager how the broker is doing.
//!
//! systemd starts a `Type=notify` service with `NOTIFY_SOCKET` set to a
//! unix datagram socket (a path, or an abstract name written `@name`); the
//! service sends it newline-separated `KEY=VALUE` assignments: `READY=1`
//! once it serves, `STATUS=...` for `systemctl status`, `WATCHDOG=1` as a
//! keep-alive when `WatchdogSec=` is set, `STOPPING=1` when it begins to
//! shut down. Without `NOTIFY_SOCKET` every call here does nothing, so the
//! broker behaves the same outside systemd.
//!
//! Implemented on `std::os::unix::net::UnixDatagram` rather than a crate:
//! see docs/decisions/0040-sd-notify-without-a-crate.md.

use std::io;
use std::time::Duration;

/// The environment variable naming the notification socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
/// Microseconds within which systemd expects a `WATCHDOG=1`.
pub const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
/// The process the watchdog applies to, when set.
pub const WATCHDOG_PID: &str = "WATCHDOG_PID";

/// A connection to the service manager, or nothing when the broker was not
/// started by one.
#[derive(Debug, Default)]
pub struct Notifier {
    /// The socket and where its datagrams go; `None` outside systemd.
    target: Option<Target>,
}

#[derive(Debug)]
struct Target {
    socket: std::os::unix::net::UnixDatagram,
    address: std::os::unix::net::SocketAddr,
    /// `NOTIFY_SOCKET` as given, for messages.
    name: String,
}

impl Notifier {
    /// A notifier for `NOTIFY_SOCKET`, or a silent one when it is unset or
    /// empty. A value that cannot be used is logged and ignored: failing to
    /// notify must not keep the broker from serving (systemd will report the
    /// missing `READY=1` itself).
    pub fn from_env() -> Notifier {
        match std::env::var(NOTIFY_SOCKET) {
            Ok(value) if !value.is_empty() => {
                match Notifier::connect(&value) {
                    Ok(notifier) => notifier,
                    Err(error) => {
                        tracing::warn!("{NOTIFY_SOCKET}={value:?} cannot be used, not notifying systemd: {error}.");
                        Notifier::default()
                    }
                }
            }
            _ => Notifier::default(),
        }
    }

    /// A notifier sending to `socket`: a filesystem path, or `@name` for a
    /// Linux abstract socket.
    pub fn connect(socket: &str) -> io::Result<Notifier> {
        let address = socket_address(socket)?;
        let datagram = std::os::unix::net::UnixDatagram::unbound()?;
        // A full receive queue must drop a notification, not stall the broker.
        datagram.set_nonblocking(true)?;
        Ok(Notifier {
            target: Some(Target {
                socket: datagram,
                address,
                name: socket.to_string(),
            }),
        })
    }

    /// Whether notifications go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `state` (newline-separated assignments) as one datagram.
    pub fn send(&self, state: &str) -> io::Result<()> {
        match &self.target {
            Some(target) => target
                .socket
                .send_to_addr(state.as_bytes(), &target.address)
                .map(|_| ()),
            None => Ok(()),
        }
    }

    /// Sends `state`, logging (not returning) a failure: notifications are
    /// advisory.
    pub fn notify(&self, state: &str) {
        if let Err(error) = self.send(state) {
            if let Some(target) = &self.target {
                tracing::debug!("Could not notify systemd at {}: {error}.", target.name);
            }
        }
    }

    /// `READY=1` with a status line: the listeners are bound and serving.
    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// A `STATUS=` line shown by `systemctl status`.
    pub fn status(&self, status: &str) {
        self.notify(&format!("STATUS={}", one_line(status)));
    }

    /// `STOPPING=1` with a status line: shutdown has begun.
    pub fn stopping(&self, status: &str) {
        self.notify(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }

    /// `WATCHDOG=1`: the broker is alive.
    pub fn watchdog(&self) {
        self.notify("WATCHDOG=1");
    }
}

/// A status must stay one assignment: newlines would start new ones.
fn one_line(status: &str) -> String {
    status.replace(['\n', '\r'], " ")
}

fn socket_address(socket: &str) -> io::Result<std::os::unix::net::SocketAddr> {
    if let Some(name) = socket.strip_prefix('@') {
        abstract_address(name)
    } else if socket.starts_with('/') {
        std::os::unix::net::SocketAddr::from_pathname(socket)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "expected an absolute path or @abstract-name",
        ))
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_address(name: &str) -> io::Result<std::os::unix::net::SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_address(_name: &str) -> io::Result<std::os::unix::net::SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract unix sockets exist only on Linux",
    ))
}

/// How often to send `WATCHDOG=1`: half the `WATCHDOG_USEC` systemd set
/// (what `sd_watchdog_enabled(3)` recommends), or `None` when no watchdog
/// applies to this process.
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        std::env::var(WATCHDOG_USEC).ok().as_deref(),
        std::env::var(WATCHDOG_PID).ok().as_deref(),
        std::process::id(),
    )
}

/// [`watchdog_interval`] on given values, for tests.
fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|usec| *usec > 0)?;
    // WATCHDOG_PID names the process systemd watches; a child that
    // inherited the variables must not ping for its parent.
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(own_pid) {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::connect(path.to_str().unwrap()).unwrap();
        notifier.ready("serving\non 2 listeners");
        assert_eq!(receive(&receiver), "READY=1\nSTATUS=serving on 2 listeners");
        notifier.stopping("bye");
        assert_eq!(receive(&receiver), "STOPPING=1\nSTATUS=bye");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("fleetmq-unit-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&address).unwrap();
        let notifier = Notifier::connect(&format!("@{name}")).unwrap();
        notifier.watchdog();
        assert_eq!(receive(&receiver), "WATCHDOG=1");
    }

    #[test]
    fn a_relative_path_is_refused_and_a_silent_notifier_does_nothing() {
        assert!(Notifier::connect("notify.sock").is_err());
        let silent = Notifier::default();
        assert!(!silent.is_enabled());
        assert!(silent.send("READY=1").is_ok());
    }

    #[test]
    fn watchdog_interval_is_half_the_timeout_for_this_process_only() {
        assert_eq!(
            watchdog_interval_from(Some("2000000"), None, 7),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            watchdog_interval_from(Some("2000000"), Some("7"), 7),
            Some(Duration::from_secs(1))
        );
        assert_eq!(watchdog_interval_from(Some("2000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval_from(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval_from(None, None, 7), None);
    }
}
