//! The end of a connection's IO: the protocol settles the session and puts
//! the DISCONNECT a 5.0 client is owed in the outbox (`protocol::close`);
//! this writes it within a time limit, closes lingering so that it
//! arrives, and hands the will to the engine's will scheduler.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::{lingering_close, Client, Exit};

/// How long a closing connection may spend writing its last packets.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

impl<S> Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Closes the connection for `exit`.
    pub(super) async fn close(mut self, exit: Exit) {
        let closing = self.protocol.begin_close(&exit);
        let linger = closing.linger;
        let mut written = false;
        if closing.write_last {
            let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, async {
                written = self.flush().await.is_ok();
                if !linger {
                    let _ = self.stream.shutdown().await;
                }
            })
            .await;
        }
        let will = self.protocol.finish_close(closing, Instant::now());
        // In a cluster the will keeper decides which node publishes it
        // (decision 0183); it also hears of an end without a will.
        match self.broker.cluster().and_then(|link| link.wills()) {
            Some(keeper) => keeper.ended(
                std::sync::Arc::clone(self.protocol.client_id()),
                self.protocol.generation(),
                will,
            ),
            None => {
                if let Some(will) = will {
                    self.broker.schedule_will(will);
                }
            }
        }
        if linger && written {
            lingering_close(self.stream).await;
        }
    }
}
