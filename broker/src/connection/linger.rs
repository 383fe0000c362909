//! Lingering close: how a connection ends when the broker had the last
//! word (a DISCONNECT with a reason, a refusing CONNACK, a TLS alert).
//!
//! Closing a socket that still has unread input makes the kernel send a
//! reset instead of a FIN; a peer that is still sending then sees EPIPE or
//! ECONNRESET instead of the reason it was owed (decision 0087). So the
//! write side is shut down first (TLS: close_notify, then FIN), and input
//! is read and thrown away until the peer closes too, [`LINGER_TIME`]
//! passes or [`LINGER_BYTES`] were discarded; only then is the socket
//! closed. Bounded in time and bytes, on the connection's own task (its
//! per-address and connection-limit slots stay counted meanwhile), so a
//! lingering peer costs a descriptor for two seconds at most and holds up
//! no one else.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// Longest time a closing connection reads and discards input.
pub const LINGER_TIME: Duration = Duration::from_secs(2);

/// Most input bytes a closing connection reads and discards.
pub const LINGER_BYTES: usize = 1024 * 1024;

/// Shuts down the write side of `stream` (what was written before goes
/// out first), then discards input within the bounds above, then closes.
pub async fn lingering_close<S>(mut stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let deadline = Instant::now() + LINGER_TIME;
    match tokio::time::timeout_at(deadline, stream.shutdown()).await {
        Ok(Ok(())) => {}
        // The peer is gone or not reading: nothing would reach it.
        Ok(Err(_)) | Err(_) => return,
    }
    let mut discard = vec![0u8; 4096];
    let mut discarded = 0;
    while discarded < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, stream.read(&mut discard)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => discarded += n,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    /// The peer keeps sending after the broker's last packet: it can read
    /// that packet and then EOF, and its writes meanwhile succeed.
    #[tokio::test]
    async fn a_peer_still_sending_reads_the_last_packet_then_eof() {
        let (mut server, mut client) = pair().await;
        client.write_all(&[1u8; 10_000]).await.unwrap();
        server.write_all(b"reason").await.unwrap();
        let closing = tokio::spawn(lingering_close(server));
        for _ in 0..20 {
            client.write_all(&[2u8; 1000]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut got = Vec::new();
        client.shutdown().await.unwrap();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"reason");
        closing.await.unwrap();
    }

    /// A peer that never closes is given up on after the linger time.
    #[tokio::test(start_paused = true)]
    async fn lingering_is_bounded_in_time() {
        let (server, _client) = pair().await;
        let started = Instant::now();
        lingering_close(server).await;
        let took = started.elapsed();
        assert!(took >= LINGER_TIME && took < LINGER_TIME + Duration::from_millis(100));
    }
}
