//! A server-side TLS connection on rustls's unbuffered API, over the
//! handshake's [`SlotStream`]: the connection owns a TLS buffer only while
//! it has bytes in it.
//!
//! rustls's buffered `ServerConnection` (what tokio-rustls drives) keeps a
//! 4 KiB receive buffer for the life of every connection, idle or not:
//! with 10,000 held devices that alone was 4 KiB of the ~17 KiB each
//! cost (issue 22, decision 0194). Here the socket is read through a
//! per-thread buffer ([`READ_ROOM`] bytes), and the connection keeps only
//! what rustls could not use yet (a partial record), the plaintext the
//! reader has not taken, and the records the socket has not taken; each is
//! freed as soon as it is empty.
//!
//! Owns: the TLS record traffic of one accepted connection (the
//! handshake's messages, alerts, application data, close_notify), and
//! reading the ClientHello whole before any work on it
//! ([`TlsStream::read_client_hello`]). Must not: know MQTT, decide TLS
//! policy (the `ServerConfig` does), or hold handshake slots (the
//! [`SlotStream`] does).
//!
//! Behaves like tokio-rustls where the connection code can tell: reads end
//! with `Ok(0)` after the peer's close_notify and with an `UnexpectedEof`
//! error when the socket closes without one; a TLS error is an
//! `InvalidData` error carrying the `rustls::Error`, after one attempt to
//! send the alert rustls queued for it; shutdown sends close_notify.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustls::server::{Acceptor, ServerConfig, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::slot_stream::SlotStream;

/// The largest TLS record on the wire (16 KiB of plaintext, TLS 1.2's
/// largest expansion, the header): one socket read takes at most this.
pub const READ_ROOM: usize = 16_384 + 2_048 + 5;

/// The most plaintext one `poll_write` encrypts (four full records): the
/// records not yet written stay bounded.
const WRITE_CHUNK: usize = 4 * 16_384;

thread_local! {
    /// Socket reads land here first; only what rustls cannot use at once
    /// is copied into the connection.
    static SOCKET_READS: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Where [`TlsStream::run`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// rustls needs more bytes from the peer.
    NeedInput,
    /// Application data may be written; this much of what was offered was.
    Writable(usize),
    /// Both sides sent close_notify.
    Closed,
}

/// A TLS server connection; see the module doc.
pub struct TlsStream {
    io: SlotStream,
    conn: UnbufferedServerConnection,
    /// Bytes from the peer rustls has not consumed yet (a partial record).
    incoming: Vec<u8>,
    /// Decrypted bytes the reader has not taken, from `plain_at` on.
    plain: Vec<u8>,
    plain_at: usize,
    /// Records for the peer the socket has not taken, from `sent` on.
    outgoing: Vec<u8>,
    sent: usize,
    /// The peer's close_notify arrived: reads end cleanly.
    peer_closed: bool,
    /// The socket reached end of file.
    eof: bool,
    /// Our close_notify is queued.
    close_queued: bool,
    /// rustls failed; the connection is unusable.
    broken: bool,
}

/// Facts from the ClientHello, read before the connection exists.
#[derive(Debug, Default)]
pub struct ClientHelloFacts {
    pub server_name: Option<String>,
}

fn tls_error(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

fn broken() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the TLS connection failed earlier",
    )
}

/// Reads from `io` through the thread's buffer and appends what arrived
/// to `incoming`; `Ok(0)` at end of file.
fn poll_fill(
    io: &mut SlotStream,
    incoming: &mut Vec<u8>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    SOCKET_READS.with_borrow_mut(|room| {
        if room.len() < READ_ROOM {
            room.resize(READ_ROOM, 0);
        }
        let mut buf = ReadBuf::new(&mut room[..]);
        ready!(Pin::new(&mut *io).poll_read(cx, &mut buf))?;
        incoming.extend_from_slice(buf.filled());
        Poll::Ready(Ok(buf.filled().len()))
    })
}

/// Appends to `outgoing` what `fill` writes into the room it is given,
/// growing the room to what `fill` says it needs.
fn append<E>(
    outgoing: &mut Vec<u8>,
    first_guess: usize,
    mut fill: impl FnMut(&mut [u8]) -> Result<usize, E>,
    needs: impl Fn(&E) -> Option<usize>,
) -> Result<(), E> {
    let start = outgoing.len();
    let mut room = first_guess;
    loop {
        outgoing.resize(start + room, 0);
        match fill(&mut outgoing[start..]) {
            Ok(written) => {
                outgoing.truncate(start + written);
                return Ok(());
            }
            Err(error) => {
                outgoing.truncate(start);
                match needs(&error) {
                    Some(required) if required > room => room = required,
                    _ => return Err(error),
                }
            }
        }
    }
}

impl TlsStream {
    /// Reads from `io` until `incoming` holds a whole ClientHello (and
    /// whatever followed it). A ClientHello rustls refuses is answered
    /// with its alert and returned as its error, but for bytes that
    /// `foreign` recognises as another protocol's (a PROXY header): their
    /// sender would read an alert as garbage, so they get none.
    pub async fn read_client_hello(
        io: &mut SlotStream,
        incoming: &mut Vec<u8>,
        foreign: fn(&[u8]) -> bool,
    ) -> io::Result<ClientHelloFacts> {
        use tokio::io::AsyncWriteExt;
        let mut acceptor = Acceptor::default();
        loop {
            let before = incoming.len();
            let read = std::future::poll_fn(|cx| poll_fill(io, incoming, cx)).await?;
            if read == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed before its ClientHello was complete",
                ));
            }
            let mut fresh = &incoming[before..];
            while !fresh.is_empty() {
                if acceptor.read_tls(&mut fresh)? == 0 {
                    break;
                }
            }
            match acceptor.accept() {
                Ok(None) => continue,
                Ok(Some(accepted)) => {
                    return Ok(ClientHelloFacts {
                        server_name: accepted.client_hello().server_name().map(str::to_string),
                    });
                }
                Err((error, _)) if foreign(incoming) => return Err(tls_error(error)),
                Err((error, mut alert)) => {
                    let mut bytes = Vec::new();
                    if alert.write_all(&mut bytes).is_ok() && !bytes.is_empty() {
                        // Best effort: the peer sent something broken.
                        let _ = io.write_all(&bytes).await;
                    }
                    return Err(tls_error(error));
                }
            }
        }
    }

    /// A connection with `config` over `io`, where `incoming` holds the
    /// bytes read so far (the ClientHello). Nothing is processed yet.
    pub fn new(
        io: SlotStream,
        config: Arc<ServerConfig>,
        incoming: Vec<u8>,
    ) -> Result<TlsStream, Box<(io::Error, SlotStream)>> {
        match UnbufferedServerConnection::new(config) {
            Ok(conn) => Ok(TlsStream {
                io,
                conn,
                incoming,
                plain: Vec::new(),
                plain_at: 0,
                outgoing: Vec::new(),
                sent: 0,
                peer_closed: false,
                eof: false,
                close_queued: false,
                broken: false,
            }),
            Err(error) => Err(Box::new((tls_error(error), io))),
        }
    }

    /// The socket (and its handshake marks).
    pub fn socket(&self) -> &SlotStream {
        &self.io
    }

    /// The socket, mutably (to end the handshake's slot bookkeeping).
    pub fn socket_mut(&mut self) -> &mut SlotStream {
        &mut self.io
    }

    /// The socket alone, for a lingering close after a refusal.
    pub fn into_socket(self) -> SlotStream {
        self.io
    }

    /// The negotiated facts: version, suite, peer certificates, ...
    pub fn connection(&self) -> &rustls::CommonState {
        &self.conn
    }

    /// Works on the bytes received so far without blocking: the
    /// ClientHello's answer (key exchange, signature, the flight into the
    /// outgoing records) happens in the first call.
    pub fn process(&mut self) -> io::Result<()> {
        self.run(None, false).map(|_| ())
    }

    /// Runs rustls over `incoming` until it needs more input or allows a
    /// write: its records go to `outgoing`, decrypted data to `plain`.
    /// With `data`, encrypts it once writing is allowed; with `close`,
    /// queues close_notify then.
    fn run(&mut self, data: Option<&[u8]>, close: bool) -> io::Result<Stop> {
        if self.broken {
            return Err(broken());
        }
        loop {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut self.incoming[..]);
            let outgoing = &mut self.outgoing;
            let stop = match state {
                Err(error) => {
                    self.incoming.drain(..discard.min(self.incoming.len()));
                    self.fail();
                    return Err(tls_error(error));
                }
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    while let Some(record) = traffic.next_record() {
                        match record {
                            Ok(record) => {
                                discard += record.discard;
                                self.plain.extend_from_slice(record.payload);
                            }
                            Err(error) => {
                                drop(traffic);
                                self.fail();
                                return Err(tls_error(error));
                            }
                        }
                    }
                    None
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    let encoded = append(outgoing, 512, |room| encode.encode(room), encode_needs);
                    if let Err(error) = encoded {
                        drop(encode);
                        self.fail();
                        return Err(io::Error::other(error));
                    }
                    None
                }
                // Sent by the callers, in order, before anything later.
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    transmit.done();
                    None
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.peer_closed = true;
                    None
                }
                Ok(ConnectionState::Closed) => Some(Stop::Closed),
                Ok(ConnectionState::BlockedHandshake) => Some(Stop::NeedInput),
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    let mut written = 0;
                    if let Some(data) = data.filter(|data| !data.is_empty()) {
                        let records = data.len().div_ceil(16_384);
                        let encrypted = append(
                            outgoing,
                            data.len() + records * 64,
                            |room| traffic.encrypt(data, room),
                            needs_room,
                        );
                        if let Err(error) = encrypted {
                            return Err(io::Error::other(error));
                        }
                        written = data.len();
                    }
                    if close && !self.close_queued {
                        let queued = append(
                            outgoing,
                            64,
                            |room| traffic.queue_close_notify(room),
                            needs_room,
                        );
                        if let Err(error) = queued {
                            return Err(io::Error::other(error));
                        }
                        self.close_queued = true;
                    }
                    Some(Stop::Writable(written))
                }
                Ok(ConnectionState::ReadEarlyData(_)) => {
                    // The configuration accepts no early data.
                    self.fail();
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "unexpected TLS early data",
                    ));
                }
                Ok(other) => {
                    let message = format!("unexpected TLS state {other:?}");
                    self.fail();
                    return Err(io::Error::other(message));
                }
            };
            self.incoming.drain(..discard.min(self.incoming.len()));
            if let Some(stop) = stop {
                if self.incoming.is_empty() {
                    self.incoming = Vec::new();
                }
                return Ok(stop);
            }
        }
    }

    /// After an error, collects the alert rustls queued for it into
    /// `outgoing` (sent by the caller's last attempt) and refuses more
    /// work.
    ///
    /// One call: a fatal error queues one alert, which rustls hands out
    /// before it deframes anything; a second call would deframe the bad
    /// record again. rustls may still point into the bytes it has not
    /// discarded, so it is given them again (never fewer).
    fn fail(&mut self) {
        self.broken = true;
        let status = self.conn.process_tls_records(&mut self.incoming[..]);
        if let Ok(ConnectionState::EncodeTlsData(mut encode)) = status.state {
            let _ = append(
                &mut self.outgoing,
                64,
                |room| encode.encode(room),
                encode_needs,
            );
        }
        self.incoming = Vec::new();
    }

    /// Writes `outgoing` to the socket; frees it once all went.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.outgoing.len() {
            let written =
                ready!(Pin::new(&mut self.io).poll_write(cx, &self.outgoing[self.sent..]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += written;
        }
        self.outgoing = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// One attempt to send what is queued (the alert after an error).
    pub fn send_alert(&mut self, cx: &mut Context<'_>) {
        let _ = self.poll_send(cx);
    }

    /// Drives the handshake to its end: sends rustls's records, reads the
    /// peer's. Call [`process`](Self::process) first.
    pub fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.sent < self.outgoing.len() {
                ready!(self.poll_send(cx))?;
            }
            let stop = match self.run(None, false) {
                Ok(stop) => stop,
                Err(error) => {
                    self.send_alert(cx);
                    return Poll::Ready(Err(error));
                }
            };
            if !self.outgoing.is_empty() {
                continue;
            }
            if !self.conn.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            if self.eof || self.peer_closed || stop == Stop::Closed {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "tls handshake eof",
                )));
            }
            if ready!(poll_fill(&mut self.io, &mut self.incoming, cx))? == 0 {
                self.eof = true;
            }
        }
    }
}

/// The room an [`append`] of a handshake record needs, if more room helps.
fn encode_needs(error: &EncodeError) -> Option<usize> {
    match error {
        EncodeError::InsufficientSize(size) => Some(size.required_size),
        EncodeError::AlreadyEncoded => None,
    }
}

/// The room an [`append`] of encrypted data needs, if more room helps.
fn needs_room(error: &EncryptError) -> Option<usize> {
    match error {
        EncryptError::InsufficientSize(size) => Some(size.required_size),
        EncryptError::EncryptExhausted => None,
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.plain_at < this.plain.len() {
                let take = buf.remaining().min(this.plain.len() - this.plain_at);
                buf.put_slice(&this.plain[this.plain_at..this.plain_at + take]);
                this.plain_at += take;
                if this.plain_at == this.plain.len() {
                    this.plain = Vec::new();
                    this.plain_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.peer_closed {
                return Poll::Ready(Ok(()));
            }
            let stop = match this.run(None, false) {
                Ok(stop) => stop,
                Err(error) => {
                    this.send_alert(cx);
                    return Poll::Ready(Err(error));
                }
            };
            // Records rustls answered with (a TLS 1.3 key update) go out
            // now if the socket takes them, else with the next write.
            if this.sent < this.outgoing.len() {
                if let Poll::Ready(Err(error)) = this.poll_send(cx) {
                    return Poll::Ready(Err(error));
                }
            }
            if this.plain_at < this.plain.len() || this.peer_closed {
                continue;
            }
            if stop == Stop::Closed {
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed connection without sending TLS close_notify",
                )));
            }
            if ready!(poll_fill(&mut this.io, &mut this.incoming, cx))? == 0 {
                this.eof = true;
            }
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.sent < this.outgoing.len() {
            ready!(this.poll_send(cx))?;
        }
        let chunk = &buf[..buf.len().min(WRITE_CHUNK)];
        match this.run(Some(chunk), false) {
            Ok(Stop::Writable(written)) => {
                if let Poll::Ready(Err(error)) = this.poll_send(cx) {
                    return Poll::Ready(Err(error));
                }
                Poll::Ready(Ok(written))
            }
            Ok(Stop::Closed) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            Ok(Stop::NeedInput) => Poll::Ready(Err(io::Error::other(
                "TLS handshake not complete; cannot write application data",
            ))),
            Err(error) => {
                this.send_alert(cx);
                Poll::Ready(Err(error))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_queued && !this.broken {
            // A failure here leaves only the TCP shutdown to do.
            match this.run(None, true) {
                Ok(_) => {}
                Err(_) => this.close_queued = true,
            }
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "stream_tests.rs"]
mod tests;
