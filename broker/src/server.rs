//! Starting and stopping a broker from a [`Config`]: bind every listener,
//! start the accept loops and the `$SYS` publisher, wait for a signal, then
//! shut down in order (stop accepting, ask every client to leave, wait for
//! the connection tasks within a bound).
//!
//! It must not contain protocol logic.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::broker::Broker;
use crate::codec::ReasonCode;
use crate::config::Config;
use crate::listener::Listener;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {bind} for listener \"{name}\": {source}")]
    Bind {
        name: String,
        bind: String,
        #[source]
        source: std::io::Error,
    },
}

/// How long shutdown waits for connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A started broker.
#[derive(Debug)]
pub struct Running {
    pub broker: Arc<Broker>,
    /// Each listener's name and bound address (useful when a port was 0).
    pub listeners: Vec<(Arc<str>, SocketAddr)>,
    shutdown: watch::Sender<bool>,
    /// Closed when every connection task has ended.
    done: mpsc::Receiver<()>,
}

/// Binds every listener and starts serving.
pub async fn start(config: Config) -> Result<Running, ServerError> {
    let broker = Arc::new(Broker::new(Arc::new(config)));
    let mut bound = Vec::new();
    for listener_config in &broker.config.listeners {
        let listener =
            Listener::bind(listener_config)
                .await
                .map_err(|source| ServerError::Bind {
                    name: listener_config.name.clone(),
                    bind: listener_config.bind.clone(),
                    source,
                })?;
        bound.push(listener);
    }
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (done_tx, done) = mpsc::channel(1);
    let global_open = Arc::new(AtomicUsize::new(0));
    let listeners = bound
        .iter()
        .map(|l| (Arc::clone(&l.name), l.local_addr))
        .collect();
    for listener in bound {
        tokio::spawn(listener.run(
            Arc::clone(&broker),
            Arc::clone(&global_open),
            shutdown_rx.clone(),
            done_tx.clone(),
        ));
    }
    crate::sys::spawn(Arc::clone(&broker), shutdown_rx);
    tracing::info!("fleetmq version {} running.", env!("CARGO_PKG_VERSION"));
    Ok(Running {
        broker,
        listeners,
        shutdown,
        done,
    })
}

impl Running {
    /// Stops accepting, asks every client to leave (5.0: DISCONNECT 0x8B)
    /// and waits up to a few seconds for the connections to close.
    pub async fn shutdown(mut self) {
        tracing::info!("fleetmq shutting down.");
        let _ = self.shutdown.send(true);
        self.broker.disconnect_all(ReasonCode::SERVER_SHUTTING_DOWN);
        let wait = tokio::time::timeout(SHUTDOWN_GRACE, self.done.recv()).await;
        if wait.is_err() {
            tracing::warn!(
                "Some connections did not close within {}s.",
                SHUTDOWN_GRACE.as_secs()
            );
        }
    }
}

/// Runs a broker until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), ServerError> {
    let running = start(config).await?;
    wait_for_stop_signal().await;
    running.shutdown().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!("Cannot listen for SIGTERM ({error}); only Ctrl-C stops the broker.");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_stop_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
