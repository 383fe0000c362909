//! The TCP stream under a TLS connection, and the handshake slot it holds
//! only while its handshake has the peer's bytes to work on.
//!
//! `tls.max_concurrent_handshakes` bounds the handshakes doing
//! cryptography at once (key exchange, signatures, certificate checks).
//! A handshake also spends most of its life waiting for the peer: for its
//! ClientHello, and after the server's flight for the client's answer
//! (about 2 s for a classic ESP32's mutual-TLS CertificateVerify). A slot
//! held across those waits lets peers that send a ClientHello and then
//! stall fill every slot from a few addresses, and a good device queues
//! behind them for seconds (decision 0086). So the slot ([`HandshakeSlots`]) is taken when the
//! peer's bytes are ready to be read and given back as soon as a read
//! (or a write) would wait for the peer again: stalled peers hold a socket until
//! `tls.client_flight_timeout_secs`, never a slot.
//!
//! It also notes when the broker's flight went out and the peer's reply
//! began ([`FlightMarks`]), which divide the handshake between the two
//! sides (decision 0142).
//!
//! It must not know TLS records: it only watches read readiness and byte
//! counts. After the handshake, [`SlotStream::finish`] makes it a plain
//! pass-through.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use std::net::IpAddr;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::fair_slots::{HandshakeSlots, SlotPermit};

/// A pending wait for a slot.
type Acquiring = Pin<Box<dyn Future<Output = Option<SlotPermit>> + Send + Sync>>;

/// The slot bookkeeping of a handshake in progress.
struct Slot {
    slots: Arc<HandshakeSlots>,
    /// Whose turn a wait for a slot is ([`HandshakeSlots`] is fair across
    /// addresses).
    peer: IpAddr,
    /// Held while the handshake works on bytes the peer sent.
    permit: Option<SlotPermit>,
    /// Waiting for a slot since then, the peer's bytes being ready.
    acquiring: Option<(Instant, Acquiring)>,
    /// When the broker's flight and the peer's reply went by.
    marks: FlightMarks,
}

/// A TLS connection's TCP stream; see the module doc.
pub struct SlotStream {
    tcp: TcpStream,
    /// `None` outside the part of the handshake that slots bound. Boxed:
    /// a held connection keeps its stream long after the handshake.
    slot: Option<Box<Slot>>,
}

/// The instants that divide a handshake between the two sides: the last
/// write of the broker's flight before the peer answered, and the first
/// bytes of that answer. Recorded only while a slot is held or awaited
/// (the part of the handshake after the ClientHello).
#[derive(Debug, Clone, Copy, Default)]
pub struct FlightMarks {
    pub flight_sent: Option<Instant>,
    pub reply_started: Option<Instant>,
    /// Time the peer's bytes waited for a handshake slot once the flight
    /// was out: the broker's queue, not the peer's time.
    pub slot_wait: std::time::Duration,
}

impl std::fmt::Debug for SlotStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotStream")
            .field("tcp", &self.tcp)
            .field(
                "holds_slot",
                &self.slot.as_ref().is_some_and(|s| s.permit.is_some()),
            )
            .finish()
    }
}

impl SlotStream {
    /// A stream that holds no slot (reading the ClientHello needs none).
    pub fn new(tcp: TcpStream) -> SlotStream {
        SlotStream { tcp, slot: None }
    }

    /// From now until [`finish`](Self::finish), reads of the peer's bytes
    /// happen under a slot of `slots`; `permit` (one of them, taken for the
    /// work on the ClientHello) is held until the next read waits.
    pub fn hold(&mut self, slots: &Arc<HandshakeSlots>, peer: IpAddr, permit: SlotPermit) {
        self.slot = Some(Box::new(Slot {
            slots: Arc::clone(slots),
            peer,
            permit: Some(permit),
            acquiring: None,
            marks: FlightMarks::default(),
        }));
    }

    /// The handshake is over (done or failed): the slot goes back, and
    /// reads are plain reads from now on.
    pub fn finish(&mut self) {
        self.slot = None;
    }

    /// A write that waits for the peer to read (its window is closed)
    /// gives the slot back too: the work that needs one comes after the
    /// peer's next bytes, and reading them takes a slot again.
    fn waiting_for_peer(&mut self, pending: bool) {
        if let (true, Some(slot)) = (pending, self.slot.as_mut()) {
            slot.permit = None;
        }
    }

    /// When the broker's flight went out and the reply began (nothing
    /// after [`finish`](Self::finish)).
    pub fn marks(&self) -> FlightMarks {
        self.slot
            .as_ref()
            .map(|slot| slot.marks)
            .unwrap_or_default()
    }

    /// A write of the handshake: part of the broker's flight until the
    /// peer has answered.
    fn wrote(&mut self, written: &Poll<io::Result<usize>>) {
        if let Some(slot) = self.slot.as_mut() {
            if slot.marks.reply_started.is_none() && matches!(written, Poll::Ready(Ok(n)) if *n > 0)
            {
                slot.marks.flight_sent = Some(Instant::now());
            }
        }
    }

    /// True while a slot is held (for tests).
    pub fn holds_slot(&self) -> bool {
        self.slot.as_ref().is_some_and(|s| s.permit.is_some())
    }

    /// The TCP stream.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }
}

impl AsyncRead for SlotStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(slot) = this.slot.as_mut() else {
            return Pin::new(&mut this.tcp).poll_read(cx, buf);
        };
        if slot.permit.is_none() {
            // The peer's turn: wait for its bytes holding nothing, then for
            // a slot to work on them.
            ready!(this.tcp.poll_read_ready(cx))?;
            let (slots, peer) = (Arc::clone(&slot.slots), slot.peer);
            let acquiring = slot
                .acquiring
                .get_or_insert_with(|| (Instant::now(), Box::pin(slots.acquire(peer))));
            let permit = ready!(acquiring.1.as_mut().poll(cx))
                .ok_or_else(|| io::Error::other("the listener's handshake slots are closed"))?;
            if let Some((since, _)) = slot.acquiring.take() {
                if slot.marks.flight_sent.is_some() {
                    slot.marks.slot_wait += since.elapsed();
                }
            }
            slot.permit = Some(permit);
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if read.is_pending() {
            slot.permit = None;
        }
        if slot.marks.flight_sent.is_some()
            && slot.marks.reply_started.is_none()
            && buf.filled().len() > before
        {
            slot.marks.reply_started = Some(Instant::now());
        }
        read
    }
}

impl AsyncWrite for SlotStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.tcp).poll_write(cx, buf);
        this.waiting_for_peer(written.is_pending());
        this.wrote(&written);
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        this.waiting_for_peer(written.is_pending());
        this.wrote(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (SlotStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (SlotStream::new(server), client)
    }

    /// A read that waits for the peer gives the slot back; bytes from the
    /// peer take one again, and wait for it when none is free.
    #[tokio::test]
    async fn the_slot_is_held_only_while_there_are_bytes_to_work_on() {
        let slots = HandshakeSlots::new(1);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let take = || Arc::clone(&slots).acquire(peer);
        let (mut server, mut client) = pair().await;
        server.hold(&slots, peer, take().await.unwrap());
        assert_eq!(slots.in_use(), 1);
        let mut buf = [0u8; 16];
        // Nothing sent: the read waits, and the slot is free meanwhile.
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(50), server.read(&mut buf)).await;
        assert!(waited.is_err());
        assert!(!server.holds_slot());
        assert_eq!(slots.in_use(), 0);
        // Someone else holds the only slot: the peer's bytes wait for it.
        let other = take().await.unwrap();
        client.write_all(b"hello").await.unwrap();
        let blocked =
            tokio::time::timeout(std::time::Duration::from_millis(50), server.read(&mut buf)).await;
        assert!(blocked.is_err(), "read without a slot");
        drop(other);
        let n = server.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert!(server.holds_slot());
        server.finish();
        assert_eq!(slots.in_use(), 0);
        // After the handshake reads need no slot.
        let _all = take().await.unwrap();
        client.write_all(b"mqtt").await.unwrap();
        let n = server.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"mqtt");
    }
}
