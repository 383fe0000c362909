//! fleetmq-tcp-info: what the kernel knows about one TCP connection
//! (`getsockopt(TCP_INFO)`), for splitting a TLS handshake's time into
//! network, device and broker (decision 0142).
//!
//! Owns: the one `getsockopt` call and reading its answer. Must not: keep
//! state, log, or decide what the figures mean.
//!
//! On systems other than Linux every figure is `None`.
#![deny(unsafe_code)]

use std::os::fd::AsRawFd;
use std::time::Duration;

/// The figures fleetmq uses from `struct tcp_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    /// Smoothed round-trip time (`tcpi_rtt`), as the kernel estimates it
    /// from the ACKs it has seen.
    pub rtt: Duration,
    /// Its mean deviation (`tcpi_rttvar`).
    pub rtt_var: Duration,
    /// Segments retransmitted over the connection's life
    /// (`tcpi_total_retrans`): a handshake that lost packets waited for
    /// retransmission timers, which is network time too.
    pub total_retrans: u32,
}

/// Reads `TCP_INFO` from `socket`; `None` if the kernel refuses (not a
/// TCP socket, or not Linux).
#[cfg(target_os = "linux")]
pub fn read(socket: &impl AsRawFd) -> Option<TcpInfo> {
    let info = raw(socket.as_raw_fd())?;
    Some(TcpInfo {
        rtt: Duration::from_micros(u64::from(info.tcpi_rtt)),
        rtt_var: Duration::from_micros(u64::from(info.tcpi_rttvar)),
        total_retrans: info.tcpi_total_retrans,
    })
}

#[cfg(not(target_os = "linux"))]
pub fn read(_socket: &impl AsRawFd) -> Option<TcpInfo> {
    None
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn raw(fd: std::os::fd::RawFd) -> Option<libc::tcp_info> {
    // SAFETY: `tcp_info` is plain old data (integers only), so all zeroes
    // is a valid value; getsockopt writes at most `len` bytes into it and
    // reports how many it wrote, and the fd is only read.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::tcp_info>()).ok()?;
    let result = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            std::ptr::addr_of_mut!(info).cast(),
            &mut len,
        )
    };
    (result == 0).then_some(info)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_loopback_connection_has_a_small_rtt_and_a_file_has_none() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        for _ in 0..3 {
            server.write_all(b"ping").unwrap();
            let mut buf = [0u8; 4];
            client.read_exact(&mut buf).unwrap();
            client.write_all(b"pong").unwrap();
            server.read_exact(&mut buf).unwrap();
        }
        let info = read(&server).unwrap();
        assert!(info.rtt > Duration::ZERO, "{info:?}");
        assert!(info.rtt < Duration::from_millis(100), "{info:?}");
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert_eq!(read(&file), None);
    }
}
