//! A transport wrapper that shows the handshake bytes to a
//! [`HandshakeObserver`] on their way between mbedTLS and the socket.
//!
//! Only the reads and writes of the whole stream (the handshake) are
//! observed; after [`mbedtls_rs::Session::split`] the halves go straight to
//! the socket, so application data is never copied.

use embedded_io_async::{ErrorType, Read, Write};
use mbedtls_rs::Split;

use crate::tls_observe::HandshakeObserver;

/// `inner` plus what the handshake looked like.
pub struct Observed<T> {
    inner: T,
    /// The start of each direction, until both hellos are in.
    pub observer: HandshakeObserver,
}

impl<T> Observed<T> {
    /// Wraps a connected socket.
    pub fn new(inner: T) -> Observed<T> {
        Observed {
            inner,
            observer: HandshakeObserver::new(),
        }
    }
}

impl<T: ErrorType> ErrorType for Observed<T> {
    type Error = T::Error;
}

impl<T: Read> Read for Observed<T> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = self.inner.read(buf).await?;
        if !self.observer.is_complete() {
            self.observer.server_bytes(&buf[..n]);
        }
        Ok(n)
    }
}

impl<T: Write> Write for Observed<T> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let n = self.inner.write(buf).await?;
        if !self.observer.is_complete() {
            self.observer.client_bytes(&buf[..n]);
        }
        Ok(n)
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.inner.flush().await
    }
}

impl<T: Split> Split for Observed<T> {
    type Read<'a>
        = T::Read<'a>
    where
        Self: 'a;
    type Write<'a>
        = T::Write<'a>
    where
        Self: 'a;

    fn split(&mut self) -> (Self::Read<'_>, Self::Write<'_>) {
        self.inner.split()
    }
}
