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

use crate::http::{HttpError, HttpParts};
use crate::listener::{Listener, PeerLimits};
use crate::observe::metrics::ListenerLabel;
use crate::observe::registry::RegistryLimits;
use crate::observe::{Metrics, Registry};
use crate::service::{ConfigSource, Notifier};
use crate::tls::{read_revoked, TicketKeys, TlsError, TlsListener};
use fleetmq_codec::ReasonCode;
use fleetmq_core::config::{Config, ListenerConfig, TlsConfig};
use fleetmq_core::engine::{AuthState, Engine};
use fleetmq_core::peer::RevokedSerials;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A bridge's TLS files cannot be used.
    #[error("{0}")]
    Bridge(String),
    #[error("cluster: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("{0}")]
    Store(#[from] fleetmq_core::store::StoreError),
    #[error("{0}")]
    Auth(fleetmq_core::auth::AuthError),
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
    /// The Mosquitto persistence file imported at the first start.
    #[error("{0}")]
    Import(String),
    /// The pid file or the user switch (`pid_file`, `user`).
    #[error("{0}")]
    Process(String),
}

/// How long shutdown waits for connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A started broker.
#[derive(Debug)]
pub struct Running {
    pub broker: Arc<Engine>,
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
    /// The cluster tasks a clean stop waits for (the node name's release).
    cluster: crate::cluster::Stopping,
    /// Removed at a clean stop (`pid_file`).
    _pid_file: Option<crate::service::process::PidFile>,
}

/// Binds every listener and starts serving.
pub async fn start(config: Config) -> Result<Running, ServerError> {
    let config = Arc::new(config);
    let (store, restored) = if config.store.enabled {
        crate::mosquitto::db::at_start::import_on_first_start(&config)
            .map_err(ServerError::Import)?;
        let (store, restored) =
            crate::store::open(&config.data_dir, &config.store).map_err(ServerError::Store)?;
        (Some(store), Some(restored))
    } else {
        (None, None)
    };
    let auth = AuthState::load(&config).map_err(ServerError::Auth)?;
    let broker = Arc::new(Engine::new(config, store, auth));
    if let Some(restored) = restored {
        broker.restore(restored);
    }
    // Before any listener accepts, so the registry sees every connect.
    let events = broker.events.subscribe();
    let ticket_keys = ticket_keys(&broker.config)?;
    // One folder for every listener that asks for client certificates.
    let seen_certificates = broker
        .config
        .listeners
        .iter()
        .any(|l| {
            l.tls
                .as_ref()
                .is_some_and(|tls| tls.client_certs != fleetmq_core::config::ClientCertPolicy::None)
        })
        .then(|| crate::tls::SeenCertificates::open(&broker.config.data_dir));
    let mut bound = Vec::new();
    for listener_config in &broker.config.listeners {
        let tls = match &listener_config.tls {
            Some(settings) => Some(Arc::new(
                tls_listener(
                    &broker.config,
                    listener_config,
                    settings,
                    ticket_keys.as_ref(),
                )
                .map(|tls| match &seen_certificates {
                    Some(seen) => tls.keep_seen_certificates(Arc::clone(seen)),
                    None => tls,
                })
                .map_err(|source| ServerError::Tls {
                    name: listener_config.name.clone(),
                    source,
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
    let peers = Arc::new(PeerLimits::new(&broker.config.limits));
    let listeners = bound
        .iter()
        .map(|l| (Arc::clone(&l.name), l.local_addr))
        .collect();
    let tls: Vec<Arc<TlsListener>> = bound.iter().filter_map(|l| l.tls.clone()).collect();
    let tls_for_provision = tls.clone();
    let listeners_bound_names: Vec<Arc<str>> = bound.iter().map(|l| Arc::clone(&l.name)).collect();
    let labels: Vec<ListenerLabel> = bound
        .iter()
        .map(|l| ListenerLabel {
            name: Arc::clone(&l.name),
            tls: l.tls.is_some(),
            transport: l.transport().as_str(),
            chain_cache: l.tls.as_ref().map(|tls| tls.chain_cache_counters()),
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
    let provision_metrics = Arc::clone(&metrics);
    let cluster_view =
        crate::cluster::ClusterView::new(&broker.config.cluster, Arc::clone(&registry))?;
    if cluster_view.enabled {
        metrics.register(Box::new(crate::cluster::metrics::ClusterCollector::new(
            Arc::clone(&cluster_view),
            &broker,
        )?))?;
    }
    crate::observe::spawn_watcher(
        Arc::clone(&broker),
        Arc::clone(&registry),
        Arc::clone(&metrics),
        events,
        shutdown_rx.clone(),
    );
    let ready = Arc::new(AtomicBool::new(false));
    let bridges = crate::bridge::spawn(&broker, &shutdown_rx);
    metrics.register(Box::new(crate::bridge::metrics::BridgeCollector::new(
        Arc::clone(&broker),
        Arc::clone(&bridges),
    )))?;
    if broker.config.ota.enabled {
        metrics.register(Box::new(crate::ota::metrics::OtaCollector::new(
            crate::ota::store::OtaStore::new(&broker.config),
        )))?;
    }
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
            bridges: Arc::clone(&bridges),
            tls: Arc::new(tls.clone()),
            cluster: Arc::clone(&cluster_view),
        };
        // A taken dashboard port must not take MQTT service down with it
        // (8080 is popular on lab machines); bad tokens or certificates,
        // which are security settings, still stop the start.
        match crate::http::start(&broker.config.http, parts).await {
            Ok(addr) => Some(addr),
            Err(HttpError::Bind { bind, source }) => {
                tracing::error!(
                    "The dashboard cannot listen on {bind} (http.bind): {source}; MQTT service continues without it. Free the port or set [http] bind, then restart."
                );
                None
            }
            Err(other) => return Err(other.into()),
        }
    } else {
        tracing::info!(
            "HTTP dashboard off (http.enabled = false; FLEETMQ_HTTP__ENABLED=true turns it on)."
        );
        None
    };
    // Listeners and the dashboard are bound: write the pid file and leave
    // root (Mosquitto's `pid_file` and `user`) before accepting anyone.
    let pid_file = match &broker.config.pid_file {
        Some(path) => {
            Some(crate::service::process::PidFile::write(path).map_err(ServerError::Process)?)
        }
        None => None,
    };
    if let Some(user) = &broker.config.user {
        crate::service::process::switch_user(user).map_err(ServerError::Process)?;
        if broker.config.data_dir.is_dir() {
            crate::service::process::check_writable(&broker.config.data_dir)
                .map_err(ServerError::Process)?;
        }
    }
    let cluster = crate::cluster::start(
        &broker,
        &cluster_view,
        Arc::new(tls.clone()),
        shutdown_rx.clone(),
    )
    .await?;
    for listener in bound {
        tokio::spawn(listener.run(
            Arc::clone(&broker),
            Arc::clone(&global_open),
            Arc::clone(&peers),
            shutdown_rx.clone(),
            done_tx.clone(),
        ));
    }
    let provisioning = (broker.config.listeners.iter())
        .zip(&listeners_bound_names)
        .filter(|(config, _)| config.provision)
        .map(|(_, name)| Arc::clone(name))
        .collect();
    crate::provision::start(
        &broker,
        provisioning,
        tls_for_provision,
        &provision_metrics,
        shutdown_rx.clone(),
    )
    .map_err(ServerError::Process)?;
    crate::ota::start(&broker, shutdown_rx.clone()).map_err(ServerError::Process)?;
    crate::service::log_topic::spawn(Arc::clone(&broker), shutdown_rx.clone());
    crate::sys::spawn(Arc::clone(&broker), shutdown_rx);
    ready.store(true, Ordering::Release);
    tracing::info!("fleetmq version {} running.", env!("CARGO_PKG_VERSION"));
    let memory_limit = broker.config.limits.memory_limit;
    if memory_limit != 0 {
        tracing::info!(
            "Memory limit {memory_limit} bytes (limits.memory_limit); heap in use now {} bytes.",
            fleetmq_heap::in_use()
        );
    }
    Ok(Running {
        broker,
        listeners,
        shutdown,
        done,
        tls,
        registry,
        http,
        ready,
        cluster,
        _pid_file: pid_file,
    })
}

impl Running {
    /// Re-reads every TLS listener's certificate, key, CA and CRL files.
    /// Existing connections keep their sessions; a listener whose new files
    /// are bad keeps its old configuration. Returns the number that failed.
    pub fn reload_tls(&self) -> usize {
        reload_tls_listeners(&self.tls, &self.broker)
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
        self.cluster.wait().await;
    }
}

/// Re-reads the TLS files of `tls` (see [`Running::reload_tls`]) and
/// closes the connections the new CRLs revoke; also what the provisioning
/// service calls after it revoked a replaced certificate.
pub(crate) fn reload_tls_listeners(tls: &[Arc<TlsListener>], broker: &Engine) -> usize {
    reload_tls_counting(tls, broker).0
}

/// [`reload_tls_listeners`], also returning how many connections the new
/// CRLs closed: (listeners that failed, connections asked to close).
pub(crate) fn reload_tls_counting(tls: &[Arc<TlsListener>], broker: &Engine) -> (usize, usize) {
    let mut failed = 0;
    let mut revoked = RevokedSerials::default();
    for listener in tls {
        match listener.reload() {
            Ok(()) => {
                tracing::info!(
                    listener = %listener.name,
                    "Reloaded TLS certificates of listener \"{}\".",
                    listener.name
                );
                revoked.extend(listener_revocations(listener));
            }
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
    // Connections made before the new CRLs are checked against them
    // too (decision 0089).
    let disconnected = broker.disconnect_revoked(&revoked);
    (failed, disconnected)
}

/// The certificates the CRLs of a just reloaded listener revoke; none when
/// it asks for no client certificates. A CRL that cannot be read here was
/// read by the reload a moment ago: the error is logged, and new
/// handshakes still see the CRL.
fn listener_revocations(listener: &TlsListener) -> RevokedSerials {
    if listener.policy == fleetmq_core::config::ClientCertPolicy::None {
        return RevokedSerials::default();
    }
    read_revoked(&listener.files.crls).unwrap_or_else(|error| {
        tracing::error!(
            listener = %listener.name,
            "Listener \"{}\": cannot read its CRLs to close revoked connections: {error}.",
            listener.name
        );
        RevokedSerials::default()
    })
}

/// Reads and parses every file [`start`] reads, with the same code — the
/// password file, the ACL file, each TLS listener's certificate, key,
/// chain, client CA and CRLs, the dashboard's token file and HTTPS
/// certificate — without binding a socket or writing a file, and returns
/// every problem: what `fleetmq check-config` runs after loading. Not
/// checked: TLS listeners without `cert`/`key` (`run` creates the lab PKI
/// for them), the store (opening it creates it) and the ticket key file.
pub fn check_files(config: &Config) -> Vec<ServerError> {
    let mut problems = Vec::new();
    if let Err(error) = AuthState::load(config) {
        problems.push(ServerError::Auth(error));
    }
    for listener in &config.listeners {
        let Some(settings) = &listener.tls else {
            continue;
        };
        if settings.cert.is_none() && settings.key.is_none() {
            continue;
        }
        if let Err(source) = tls_listener(config, listener, settings, None) {
            problems.push(ServerError::Tls {
                name: listener.name.clone(),
                source,
            });
        }
    }
    problems.extend(
        crate::bridge::check(config)
            .into_iter()
            .map(ServerError::Bridge),
    );
    if config.http.enabled {
        if let Err(error) = crate::http::check(&config.http) {
            problems.push(error.into());
        }
    }
    problems
}

/// The session ticket keys of this process, kept in
/// `<data_dir>/tls-ticket-keys` so devices resume across restarts; None
/// when no listener uses tickets (then no key file is made).
fn ticket_keys(config: &Config) -> Result<Option<Arc<TicketKeys>>, ServerError> {
    let Some(first) = config
        .listeners
        .iter()
        .find(|l| l.tls.as_ref().is_some_and(|tls| tls.session_tickets))
    else {
        return Ok(None);
    };
    TicketKeys::open(&config.data_dir)
        .map(Some)
        .map_err(|error| ServerError::Tls {
            name: first.name.clone(),
            source: error.into(),
        })
}

/// Builds the TLS state of a listener, filling in lab-PKI files where the
/// configuration names none.
fn tls_listener(
    config: &Config,
    listener: &ListenerConfig,
    settings: &TlsConfig,
    ticket_keys: Option<&Arc<TicketKeys>>,
) -> Result<TlsListener, TlsError> {
    let files = crate::tls::resolve_files(&config.data_dir, settings)?;
    let name = if listener.name.is_empty() {
        Arc::from(format!("tls-{}", listener.bind))
    } else {
        Arc::from(listener.name.as_str())
    };
    TlsListener::new(name, settings, files, ticket_keys)
}

/// Runs a broker until SIGINT or SIGTERM; SIGHUP reloads certificates.
pub async fn run(config: Config) -> Result<(), ServerError> {
    run_service(config, None).await
}

/// Runs a broker as a service until SIGINT or SIGTERM: tells systemd when
/// the listeners are bound (`READY=1`), keeps its watchdog fed, and on
/// SIGHUP re-reads the configuration from `source` (logging every change
/// that needs a restart) and the TLS files (applied live).
pub async fn run_service(config: Config, source: Option<ConfigSource>) -> Result<(), ServerError> {
    // Handlers first: a signal that arrives while listeners are binding
    // (or right after READY=1) is then handled, not fatal.
    let mut signals = Signals::new();
    let notifier = Arc::new(Notifier::from_env());
    notifier.status("Starting: binding listeners");
    let running = match start(config).await {
        Ok(running) => running,
        Err(error) => {
            notifier.status(&format!("Failed to start: {error}"));
            return Err(error);
        }
    };
    let serving = serving_status(&running.listeners);
    notifier.ready(&serving);
    let watchdog = spawn_watchdog(Arc::clone(&notifier));
    // The configuration in force: the start-up one with what reloads have
    // applied since, so each reload reports changes against it.
    let mut in_force = Config::clone(&running.broker.config);
    while let Signal::Reload = signals.next().await {
        crate::service::log_file::reopen();
        tracing::info!("Received SIGHUP, reloading.");
        notifier.status("Reloading: re-reading the configuration and TLS files");
        if let Some(source) = &source {
            reload_config(&running, &mut in_force, source);
        }
        let failed = running.reload_tls();
        if failed > 0 {
            notifier.status(&format!(
                "{serving}; last reload: {failed} TLS listener(s) kept their old certificates"
            ));
        } else {
            notifier.status(&serving);
        }
    }
    notifier.stopping("Stopping: disconnecting clients");
    running.shutdown().await;
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    tracing::info!("fleetmq stopped.");
    Ok(())
}

/// `STATUS=` while serving: every listener and its address.
fn serving_status(listeners: &[(Arc<str>, SocketAddr)]) -> String {
    let list: Vec<String> = listeners
        .iter()
        .map(|(name, addr)| format!("{name} on {addr}"))
        .collect();
    format!("Serving MQTT: {}", list.join(", "))
}

/// Sends `WATCHDOG=1` at half the interval systemd asked for, from a task
/// on the broker's runtime: if the runtime stalls, the pings stop and
/// systemd restarts the service.
fn spawn_watchdog(notifier: Arc<Notifier>) -> Option<tokio::task::JoinHandle<()>> {
    let interval = crate::service::notify::watchdog_interval()?;
    if !notifier.is_enabled() {
        return None;
    }
    tracing::info!(
        "systemd watchdog enabled, notifying every {} ms.",
        interval.as_millis()
    );
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        loop {
            ticks.tick().await;
            notifier.watchdog();
        }
    }))
}

/// Re-reads the configuration, logs how it differs from the one in force,
/// and records in `in_force` what the reload applied.
fn reload_config(running: &Running, in_force: &mut Config, source: &ConfigSource) {
    match source.load() {
        Ok(loaded) => {
            let changes = crate::service::reload::changes(in_force, &loaded.config);
            crate::service::reload::log_changes(&changes);
            match running.broker.reload_auth(&loaded.config) {
                Ok(()) => {
                    crate::service::reload::record_applied(in_force, &loaded.config);
                    tracing::info!("Reloaded password file and ACL rules.")
                }
                Err(error) => tracing::error!(
                    "Reload: password file or ACL rules not reloaded, the ones in force stay: {error}."
                ),
            }
        }
        Err(error) => {
            tracing::error!(
                "Reload: cannot use the configuration from {source}; the running configuration stays:"
            );
            for line in error.to_string().lines() {
                tracing::error!("{line}");
            }
        }
    }
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
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
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
                interrupt: listen(SignalKind::interrupt(), "SIGINT"),
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
                _ = recv(&mut self.interrupt) => Signal::Stop,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}
