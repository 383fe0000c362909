//! One client connection's IO: from the first byte to the close.
//!
//! [`serve`] reads the CONNECT (within `limits.connect_timeout_secs`),
//! attaches the session and answers CONNACK ([`handshake`]), then runs one
//! loop that reads bytes and feeds them to the client's socket-free
//! [`ClientProtocol`] (which decodes and answers them, and moves what the
//! session has queued into its outbox within the inflight window), writes
//! the outbox, waits for the store tickets acknowledgements wait for,
//! watches keep alive, and obeys take-over and shutdown requests; [`close`]
//! writes the last bytes and hands the will to the engine when the loop
//! ends. A connection where the broker had the last
//! word (a DISCONNECT or CONNACK with a reason) ends by [`linger`]ing, so
//! the reason reaches a peer that is still sending.
//!
//! Back-pressure: when a PUBLISH of this client was queued past a full
//! subscriber queue (`limits.queue_full_wait_ms`), the loop stops reading
//! the socket until every such queue has room, its reader went away, or it
//! counts as stalled; the client's TCP window then throttles it. Time spent
//! so does not count against its keep alive.
//!
//! The stream is generic so TLS streams use the same code. Socket writes
//! are batched: everything produced by one turn of the loop goes out
//! together, and a write that makes no progress for
//! `limits.write_timeout_secs` (a peer that stopped reading) ends the
//! connection; take-over and shutdown are still obeyed while a write
//! waits. No lock is held across an `.await`.

mod close;
mod handshake;
mod linger;

pub use linger::{lingering_close, LINGER_BYTES, LINGER_TIME};

use std::cell::RefCell;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

use fleetmq_codec::ReasonCode;
use fleetmq_core::config::ListenerConfig;
use fleetmq_core::engine::{Engine, Stats};
use fleetmq_core::events::ClientCounters;
use fleetmq_core::peer::{ConnectClock, TlsInfo};
use fleetmq_core::protocol::{ClientProtocol, Exit};
use fleetmq_core::session::{ControlReceiver, Session};
use fleetmq_core::store::Progress;

/// Where a connection came from, for logs and limits.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The peer's socket address.
    pub peer: SocketAddr,
    /// The listener's name.
    pub listener: Arc<str>,
    /// True when the connection exceeds a connection limit: its CONNECT is
    /// answered with "server busy" and the connection closed.
    pub over_limit: bool,
    /// Setup instants so far (TCP accept, TLS steps).
    pub clock: ConnectClock,
    /// The TLS session, on TLS listeners.
    pub tls: Option<TlsInfo>,
    /// The listener's settings (authentication options).
    pub settings: Arc<ListenerConfig>,
}

/// A connected, CONNACKed client: its socket and buffers, and the
/// protocol state it feeds. Its [`Origin`] went to the watchers with the
/// CONNACK (`Event::Connected`): a held connection keeps no copy of it.
struct Client<S> {
    stream: S,
    broker: Arc<Engine>,
    /// Bytes read but not yet decoded.
    read_buf: BytesMut,
    /// Room offered to the next read (see [`next_read_size`]).
    read_size: usize,
    /// Everything the client's protocol decides; its outbox is the write
    /// buffer.
    protocol: ClientProtocol,
    /// Keep alive enforced by the broker; zero disables it.
    keep_alive: Duration,
    control: ControlReceiver,
    /// The store's progress, when acknowledgements wait for it (the
    /// protocol holds its own receiver and reads it when told to).
    committed: Option<watch::Receiver<Progress>>,
    /// On a cluster node, wakes when JetStream settled a publish, which an
    /// acknowledgement may wait for (decision 0158).
    cluster_settled: Option<watch::Receiver<u64>>,
}

/// Waits until no session in `pressure` holds publishers back, checking
/// again at least every `recheck` (a queue turns stalled by time alone).
pub(crate) async fn wait_for_room(pressure: &mut Vec<Arc<Session>>, recheck: Duration) {
    while let Some(session) = pressure.last() {
        let session = Arc::clone(session);
        let notified = session.space.notified();
        tokio::pin!(notified);
        // Registered before the check, so a wake-up in between is kept.
        notified.as_mut().enable();
        if !session.holds_publishers() {
            pressure.pop();
            continue;
        }
        let _ = tokio::time::timeout(recheck, notified).await;
    }
}

/// [`wait_for_room`], boxed, when some session holds publishers back;
/// forever otherwise. `select!` makes a branch's future on every turn even
/// while the branch is off, and keeps room for it in the connection's
/// future: boxed, the wait costs a held connection 16 bytes instead of its
/// ~250, and allocates only while publishers are held back.
pub(crate) async fn room_when_pressed(pressure: &mut Vec<Arc<Session>>, recheck: Duration) {
    if pressure.is_empty() {
        std::future::pending::<()>().await;
    } else {
        Box::pin(wait_for_room(pressure, recheck)).await;
    }
}

/// Waits for the store to commit more (forever without a store).
pub(crate) async fn wait_commit(committed: &mut Option<watch::Receiver<Progress>>) {
    match committed {
        Some(receiver) => {
            if receiver.changed().await.is_err() {
                // The writer is gone (shutdown): nothing more will commit.
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

/// Waits for the cluster to settle another publish (forever off a cluster).
async fn wait_cluster(settled: &mut Option<watch::Receiver<u64>>) {
    match settled {
        Some(receiver) => {
            if receiver.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

/// Serves one accepted connection until it closes.
///
/// The stream and origin come boxed and CONNECT handling and the close run
/// in boxes of their own: this future lives as long as the connection, and
/// an async fn keeps its arguments and the room of its largest await for
/// its whole life (memory per held connection).
pub async fn serve<S>(
    connection: Box<(S, Origin)>,
    broker: Arc<Engine>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    // Moved out inside a block so the box itself is freed now: a box
    // moved out of is otherwise deallocated only when its binding goes out
    // of scope, at the end of the connection.
    let (stream, origin) = {
        let connection = connection;
        *connection
    };
    let accepted = Box::pin(handshake::accept(stream, origin, broker, &mut shutdown)).await;
    let Some(mut client) = accepted else {
        return;
    };
    let exit = client.run(&mut shutdown).await;
    Box::pin(client.close(exit)).await;
}

impl<S> Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// The read / write / keep-alive loop.
    async fn run(&mut self, shutdown: &mut watch::Receiver<bool>) -> Exit {
        let mut last_read = Instant::now();
        loop {
            self.protocol.drain(std::time::Instant::now());
            if !self.protocol.output().is_empty() {
                let stall = Duration::from_secs(self.broker.config.limits.write_timeout_secs);
                tokio::select! {
                    biased;
                    request = self.control.recv() => return Exit::requested(request),
                    _ = shutdown.changed() => return Exit::Control(ReasonCode::SERVER_SHUTTING_DOWN),
                    written = write_out(&mut self.stream, self.protocol.output(), stall) => {
                        match written {
                            Ok(bytes) => self.count_sent(bytes),
                            Err(WriteError::Io(error)) => return Exit::Io(error),
                            Err(WriteError::Stalled) => return Exit::WriteStalled(stall),
                        }
                    }
                }
            }
            let deadline = last_read + self.keep_alive.mul_f32(1.5);
            let reading = self.protocol.pressure().is_empty();
            let recheck =
                Duration::from_millis(self.broker.config.limits.queue_full_wait_ms.max(1));
            let session = Arc::clone(self.protocol.session());
            // A quiet client (small reads, nothing left over) owns no read
            // buffer while it waits: it reads through the thread's scratch
            // buffer ([`read_some`]). A busy one reads straight into its own.
            let quiet = self.read_buf.is_empty() && self.read_size <= READ_MIN;
            let spare = if quiet {
                if self.read_buf.capacity() > 0 {
                    self.read_buf = BytesMut::new();
                }
                // Nor a copy of its last topic: sharing it pays off only
                // for a busy publisher (decision 0191).
                self.protocol.forget_last_topic();
                READ_MIN
            } else {
                if self.read_buf.is_empty() && self.read_buf.capacity() > 2 * self.read_size {
                    // An idle client should not hold a buffer a burst grew.
                    self.read_buf = BytesMut::new();
                }
                self.read_buf.reserve(self.read_size);
                self.read_buf.capacity() - self.read_buf.len()
            };
            tokio::select! {
                biased;
                request = self.control.recv() => return Exit::requested(request),
                _ = shutdown.changed() => return Exit::Control(ReasonCode::SERVER_SHUTTING_DOWN),
                _ = room_when_pressed(self.protocol.pressure(), recheck), if !reading => {
                    // Paused by the broker, not silent: keep alive restarts.
                    last_read = Instant::now();
                }
                read = read_some(&mut self.stream, &mut self.read_buf, quiet), if reading => {
                    match read {
                        Ok(0) => return Exit::Closed,
                        Ok(n) => {
                            self.read_size = next_read_size(self.read_size, n, spare);
                            Stats::add(&self.broker.stats.bytes_received, n as u64);
                            let counters = self.protocol.counters();
                            ClientCounters::add(&counters.bytes_in, n as u64);
                            counters.touch();
                            last_read = Instant::now();
                            let now = last_read.into_std();
                            if let Err(exit) = self.protocol.on_input(&mut self.read_buf, now) {
                                return exit;
                            }
                        }
                        Err(error) => return Exit::Io(error),
                    }
                }
                _ = session.wakeup.notified() => {}
                _ = wait_commit(&mut self.committed), if self.protocol.has_pending_acks() => {
                    if let Err(exit) = self.protocol.on_commit() {
                        return exit;
                    }
                }
                _ = wait_cluster(&mut self.cluster_settled), if self.protocol.has_pending_acks() => {
                    if let Err(exit) = self.protocol.on_commit() {
                        return exit;
                    }
                }
                _ = tokio::time::sleep_until(deadline), if reading && !self.keep_alive.is_zero() => {
                    return Exit::KeepAliveTimeout;
                }
            }
        }
    }

    /// Writes everything buffered (the closing path: no stall limit of
    /// its own, callers bound it with a timeout).
    async fn flush(&mut self) -> std::io::Result<()> {
        let out = self.protocol.output();
        if out.is_empty() {
            return Ok(());
        }
        let bytes = out.len();
        self.stream.write_all(out).await?;
        self.stream.flush().await?;
        self.protocol.output().clear();
        self.count_sent(bytes);
        Ok(())
    }

    /// Counts written bytes, and gives back a write buffer that a burst
    /// grew, so an idle client does not keep it.
    fn count_sent(&mut self, bytes: usize) {
        Stats::add(&self.broker.stats.bytes_sent, bytes as u64);
        ClientCounters::add(&self.protocol.counters().bytes_out, bytes as u64);
        let out = self.protocol.output();
        if out.is_empty() && out.capacity() > KEEP_WRITE_CAPACITY {
            *out = BytesMut::new();
        }
    }
}

/// Smallest and largest room offered to one read.
const READ_MIN: usize = 256;
const READ_MAX: usize = 64 * 1024;

thread_local! {
    /// Where quiet connections read ([`read_some`]): one per worker
    /// thread, instead of one read buffer per held connection.
    static SCRATCH: RefCell<[u8; READ_MIN]> = const { RefCell::new([0; READ_MIN]) };
}

/// Reads what is there into `buf`. A `quiet` connection reads into the
/// thread's scratch buffer and copies only what came, so `buf` is
/// allocated only when bytes arrive (memory per held connection); reads
/// are at most [`READ_MIN`] bytes then, and one that fills them makes the
/// connection read straight into `buf` next time ([`next_read_size`]).
/// Cancel-safe: bytes read are in `buf` before the poll returns.
async fn read_some<S>(stream: &mut S, buf: &mut BytesMut, quiet: bool) -> std::io::Result<usize>
where
    S: AsyncRead + Unpin,
{
    if !quiet {
        return stream.read_buf(buf).await;
    }
    std::future::poll_fn(|cx| {
        SCRATCH.with_borrow_mut(|scratch| {
            let mut room = ReadBuf::new(&mut scratch[..]);
            ready!(Pin::new(&mut *stream).poll_read(cx, &mut room))?;
            buf.extend_from_slice(room.filled());
            Poll::Ready(Ok(room.filled().len()))
        })
    })
    .await
}

/// The room to offer the next read: doubled when a read filled all it was
/// given (a busy publisher gets large reads, few turns), halved when it used
/// under a quarter (an idle device waits on a small buffer: a held
/// connection costs memory only for what it actually sends).
fn next_read_size(current: usize, read: usize, offered: usize) -> usize {
    if read >= offered {
        (current * 2).min(READ_MAX)
    } else if read < offered / 4 {
        (current / 2).max(READ_MIN)
    } else {
        current
    }
}

/// Write buffer capacity kept between turns; a larger one is freed.
const KEEP_WRITE_CAPACITY: usize = 16 * 1024;

/// Why [`write_out`] stopped.
enum WriteError {
    Io(std::io::Error),
    /// No byte could be written for the stall limit.
    Stalled,
}

/// Writes and flushes all of `buf`, failing when no progress is made for
/// `stall`. Cancel-safe: whatever was written has left `buf`, so a caller
/// that drops this future (take-over, shutdown) can still close cleanly.
async fn write_out<S>(
    stream: &mut S,
    buf: &mut BytesMut,
    stall: Duration,
) -> Result<usize, WriteError>
where
    S: AsyncWrite + Unpin,
{
    let total = buf.len();
    while !buf.is_empty() {
        match tokio::time::timeout(stall, stream.write(buf)).await {
            Ok(Ok(0)) => return Err(WriteError::Io(std::io::ErrorKind::WriteZero.into())),
            Ok(Ok(n)) => buf.advance(n),
            Ok(Err(error)) => return Err(WriteError::Io(error)),
            Err(_) => return Err(WriteError::Stalled),
        }
    }
    // TLS streams may hold the last records until flushed.
    match tokio::time::timeout(stall, stream.flush()).await {
        Ok(Ok(())) => Ok(total),
        Ok(Err(error)) => Err(WriteError::Io(error)),
        Err(_) => Err(WriteError::Stalled),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_quiet_read_allocates_only_what_arrived() {
        let mut peer: &[u8] = b"\xc0\x00";
        let mut buf = BytesMut::new();
        let n = read_some(&mut peer, &mut buf, true).await.unwrap();
        assert_eq!((n, &buf[..]), (2, &b"\xc0\x00"[..]));
        assert!(buf.capacity() < READ_MIN, "capacity {}", buf.capacity());
    }

    #[tokio::test]
    async fn a_quiet_read_takes_at_most_read_min_and_keeps_the_rest() {
        let sent: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut peer: &[u8] = &sent;
        let mut buf = BytesMut::new();
        let n = read_some(&mut peer, &mut buf, true).await.unwrap();
        assert_eq!(n, READ_MIN);
        assert_eq!(next_read_size(READ_MIN, n, READ_MIN), 2 * READ_MIN);
        let m = read_some(&mut peer, &mut buf, false).await.unwrap();
        assert_eq!(&buf[..], &sent[..n + m]);
    }

    #[test]
    fn read_size_grows_when_reads_fill_it_and_shrinks_when_idle() {
        let mut size = READ_MIN;
        for _ in 0..20 {
            size = next_read_size(size, size, size);
        }
        assert_eq!(size, READ_MAX);
        size = next_read_size(size, READ_MAX / 2, READ_MAX);
        assert_eq!(size, READ_MAX, "a read of half the room keeps the size");
        for _ in 0..20 {
            size = next_read_size(size, 2, size);
        }
        assert_eq!(size, READ_MIN);
    }
}
