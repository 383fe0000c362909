//! Starting and stopping a broker from a [`Config`]: bind every listener,
//! start the accept loops, the `$SYS` publisher, the device registry and
//! the HTTP dashboard, wait for a signal, then
//! shut down in order (stop accepting, ask every client to leave, wait for
//! the connection tasks within a bound).
//!
//! It must not contain protocol logic.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::broker::Broker;
use crate::codec::ReasonCode;
use crate::config::{Config, ListenerConfig, TlsConfig};
use crate::http::{HttpError, HttpParts};
use crate::listener::Listener;
use crate::observe::metrics::ListenerLabel;
use crate::observe::registry::RegistryLimits;
use crate::observe::{Metrics, Registry};
use crate::tls::{TlsError, TlsListener};

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("listener \"{name}\": {source}")]
    Tls {
        name: String,
        #[source]
        source: crate::tls::TlsError,
    },
    #[error("cannot listen on {bind} for listener \"{name}\": {source}")]
    Bind {
        name: String,
        bind: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("cannot set up the metrics: {0}")]
    Metrics(#[from] prometheus::Error),
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
    /// TLS listeners, for certificate reloads.
    tls: Vec<Arc<TlsListener>>,
    /// The device registry behind the dashboard.
    pub registry: Arc<Registry>,
    /// Where the dashboard listens; `None` when `http.enabled = false`.
    pub http: Option<SocketAddr>,
    /// `/readyz` answers 200 while this is true.
    ready: Arc<AtomicBool>,
}

/// Binds every listener and starts serving.
pub async fn start(config: Config) -> Result<Running, ServerError> {
    let broker = Arc::new(Broker::new(Arc::new(config)));
    // Before any listener accepts, so the registry sees every connect.
    let events = broker.events.subscribe();
    let mut bound = Vec::new();
    for listener_config in &broker.config.listeners {
        let tls = match &listener_config.tls {
            Some(settings) => Some(Arc::new(
                tls_listener(&broker.config, listener_config, settings).map_err(|source| {
                    ServerError::Tls {
                        name: listener_config.name.clone(),
                        source,
                    }
                })?,
            )),
            None => None,
        };
        let listener = Listener::bind(listener_config, tls)
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
    let tls = bound.iter().filter_map(|l| l.tls.clone()).collect();
    let labels: Vec<ListenerLabel> = bound
        .iter()
        .map(|l| ListenerLabel {
            name: Arc::clone(&l.name),
            tls: l.tls.is_some(),
        })
        .collect();
    let registry = Arc::new(Registry::new(RegistryLimits {
        recent_disconnects: broker.config.http.recent_disconnects,
        connect_history: broker.config.http.connect_history,
    }));
    let metrics = Arc::new(Metrics::new(
        Arc::clone(&broker),
        Arc::clone(&registry),
        &labels,
    )?);
    crate::observe::spawn_watcher(
        Arc::clone(&broker),
        Arc::clone(&registry),
        Arc::clone(&metrics),
        events,
        shutdown_rx.clone(),
    );
    let ready = Arc::new(AtomicBool::new(false));
    let http = if broker.config.http.enabled {
        let parts = HttpParts {
            broker: Arc::clone(&broker),
            registry: Arc::clone(&registry),
            metrics,
            ready: Arc::clone(&ready),
            listeners: bound
                .iter()
                .map(|l| (Arc::clone(&l.name), l.local_addr))
                .collect(),
            shutdown: shutdown_rx.clone(),
        };
        Some(crate::http::start(&broker.config.http, parts).await?)
    } else {
        None
    };
    for listener in bound {
        tokio::spawn(listener.run(
            Arc::clone(&broker),
            Arc::clone(&global_open),
            shutdown_rx.clone(),
            done_tx.clone(),
        ));
    }
    crate::sys::spawn(Arc::clone(&broker), shutdown_rx);
    ready.store(true, Ordering::Release);
    tracing::info!("fleetmq version {} running.", env!("CARGO_PKG_VERSION"));
    Ok(Running {
        broker,
        listeners,
        shutdown,
        done,
        tls,
        registry,
        http,
        ready,
    })
}

impl Running {
    /// Re-reads every TLS listener's certificate, key, CA and CRL files.
    /// Existing connections keep their sessions; a listener whose new files
    /// are bad keeps its old configuration. Returns the number that failed.
    pub fn reload_tls(&self) -> usize {
        let mut failed = 0;
        for listener in &self.tls {
            match listener.reload() {
                Ok(()) => tracing::info!(
                    listener = %listener.name,
                    "Reloaded TLS certificates of listener \"{}\".",
                    listener.name
                ),
                Err(error) => {
                    failed += 1;
                    tracing::error!(
                        listener = %listener.name,
                        "Reload of listener \"{}\" failed, keeping its current certificates: {error}.",
                        listener.name
                    );
                }
            }
        }
        failed
    }

    /// Stops accepting, asks every client to leave (5.0: DISCONNECT 0x8B)
    /// and waits up to a few seconds for the connections to close.
    pub async fn shutdown(mut self) {
        tracing::info!("fleetmq shutting down.");
        self.ready.store(false, Ordering::Release);
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

/// Builds the TLS state of a listener, filling in lab-PKI files where the
/// configuration names none.
fn tls_listener(
    config: &Config,
    listener: &ListenerConfig,
    settings: &TlsConfig,
) -> Result<TlsListener, TlsError> {
    let files = crate::tls::resolve_files(&config.data_dir, settings)?;
    let name = if listener.name.is_empty() {
        Arc::from(format!("tls-{}", listener.bind))
    } else {
        Arc::from(listener.name.as_str())
    };
    TlsListener::new(name, settings, files)
}

/// Runs a broker until SIGINT or SIGTERM; SIGHUP reloads certificates.
pub async fn run(config: Config) -> Result<(), ServerError> {
    let running = start(config).await?;
    let mut signals = Signals::new();
    while let Signal::Reload = signals.next().await {
        tracing::info!("Received SIGHUP, reloading.");
        running.reload_tls();
    }
    running.shutdown().await;
    Ok(())
}

/// What a signal asks the broker to do.
enum Signal {
    Reload,
    Stop,
}

/// SIGHUP, SIGTERM and SIGINT as a stream of [`Signal`]s.
struct Signals {
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let listen = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(stream) => Some(stream),
                Err(error) => {
                    tracing::warn!("Cannot listen for {name}: {error}.");
                    None
                }
            };
            Signals {
                hangup: listen(SignalKind::hangup(), "SIGHUP"),
                terminate: listen(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            async fn recv(stream: &mut Option<tokio::signal::unix::Signal>) {
                match stream {
                    Some(stream) => {
                        stream.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = recv(&mut self.hangup) => Signal::Reload,
                _ = recv(&mut self.terminate) => Signal::Stop,
                _ = tokio::signal::ctrl_c() => Signal::Stop,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}
