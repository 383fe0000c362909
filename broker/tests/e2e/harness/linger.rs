//! A client that keeps writing after it made the broker close, as devices
//! do (a batch in flight, a send loop that reads afterwards), and then
//! reads to the end: did the reason it was owed arrive, or a reset?
//!
//! A broker that closes a socket with unread input makes the kernel send a
//! reset: the client's next write fails (EPIPE / ECONNRESET) and its read
//! may too. Every wait is bounded.

use std::io::{self, ErrorKind, Read, Write};
use std::thread;
use std::time::{Duration, Instant};

/// What the client saw.
#[derive(Debug)]
pub struct Ending {
    /// Writes that succeeded.
    pub writes: usize,
    /// The write that failed, if one did.
    pub write_error: Option<io::Error>,
    /// Bytes read before the end.
    pub received: Vec<u8>,
    /// How the reading ended: `None` for EOF, else the error (a reset, or
    /// for TLS the alert rustls reports).
    pub read_error: Option<io::Error>,
}

/// Writes `filler` to `stream` every `every` for `duration` (stopping at
/// the first failed write), then reads until EOF, an error or `timeout`.
pub fn keep_sending_then_read<S: Read + Write>(
    stream: &mut S,
    filler: &[u8],
    every: Duration,
    duration: Duration,
    timeout: Duration,
) -> Ending {
    let started = Instant::now();
    let mut writes = 0;
    let mut write_error = None;
    while started.elapsed() < duration {
        match stream.write_all(filler).and_then(|()| stream.flush()) {
            Ok(()) => writes += 1,
            Err(error) => {
                write_error = Some(error);
                break;
            }
        }
        thread::sleep(every);
    }
    let deadline = Instant::now() + timeout;
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let read_error = loop {
        if Instant::now() > deadline {
            break Some(io::Error::new(ErrorKind::TimedOut, "no EOF in time"));
        }
        match stream.read(&mut chunk) {
            Ok(0) => break None,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(error) => break Some(error),
        }
    };
    Ending {
        writes,
        write_error,
        received,
        read_error,
    }
}
