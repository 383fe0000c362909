//! The HTTP side (axum) on its own listener: the dashboard page, the JSON
//! API, the live event stream, Prometheus `/metrics`, and `/healthz` and
//! `/readyz` for supervisors.
//!
//! - [`auth`]: the access token (bearer header or login cookie); health
//!   endpoints stay open.
//! - [`sessions`]: server-side login sessions (random ids, expiry, logout).
//! - [`throttle`]: wrong tokens per IP, logged, with a lockout.
//! - [`api`]: JSON handlers, `/metrics`, health, and the one admin action
//!   (disconnecting a client).
//! - [`live`]: Server-Sent Events pushing registry snapshots to the page.
//! - [`assets`]: the page, its script and style, embedded in the binary.
//! - [`tls`]: HTTPS, when `[http.tls]` is configured.
//! - [`serve`]: the accept loop: connection cap, header and idle timeouts.
//! - [`host`]: the `Host` header check against DNS rebinding.
//!
//! It must not change broker state except through explicit admin actions,
//! and reads the registry and metrics only when asked.

mod api;
mod assets;
mod auth;
mod bridges;
mod cluster;
mod dynsec;
mod host;
mod live;
mod ota;
mod provision;
mod revoke;
mod serve;
mod sessions;
mod throttle;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::observe::{Metrics, Registry};
use fleetmq_core::config::HttpConfig;
use fleetmq_core::engine::Engine;

pub use auth::Access;

/// Why the HTTP server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {bind} for the dashboard (http.bind): {source}")]
    Bind {
        bind: String,
        #[source]
        source: std::io::Error,
    },
    #[error("http.token_file {}: {detail}", path.display())]
    TokenFile { path: PathBuf, detail: String },
    #[error("http.tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// What every handler can reach.
#[derive(Clone)]
pub(crate) struct AppState {
    pub broker: Arc<Engine>,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub access: Arc<Access>,
    /// True once every listener is bound and serving; false again when
    /// shutdown starts (`/readyz`).
    pub ready: Arc<AtomicBool>,
    /// MQTT listeners and their bound addresses, for `/readyz` and the page.
    pub listeners: Arc<Vec<(Arc<str>, SocketAddr)>>,
    pub shutdown: watch::Receiver<bool>,
    /// Bridge links, for `/api/bridges`.
    pub bridges: Arc<crate::bridge::Bridges>,
    /// The TLS listeners, whose CRLs a revocation reloads.
    pub tls: Arc<Vec<Arc<crate::tls::TlsListener>>>,
    /// The cluster backend, for `/api/cluster`.
    pub cluster: Arc<crate::cluster::ClusterView>,
}

/// Everything the HTTP server needs from the running broker.
pub struct HttpParts {
    pub broker: Arc<Engine>,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    pub listeners: Vec<(Arc<str>, SocketAddr)>,
    pub shutdown: watch::Receiver<bool>,
    pub bridges: Arc<crate::bridge::Bridges>,
    pub tls: Arc<Vec<Arc<crate::tls::TlsListener>>>,
    pub cluster: Arc<crate::cluster::ClusterView>,
}

/// Binds the HTTP listener and serves until shutdown. Returns the bound
/// address (useful when the port was 0).
pub async fn start(config: &HttpConfig, parts: HttpParts) -> Result<SocketAddr, HttpError> {
    let (access, tls) = check(config)?;
    let socket = TcpListener::bind(&config.bind)
        .await
        .map_err(|source| HttpError::Bind {
            bind: config.bind.clone(),
            source,
        })?;
    let local_addr = socket.local_addr().map_err(|source| HttpError::Bind {
        bind: config.bind.clone(),
        source,
    })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let protection = if access.is_open() {
        "no token: open to anyone who can reach it"
    } else {
        "token required"
    };
    let state = AppState {
        broker: parts.broker,
        registry: parts.registry,
        metrics: parts.metrics,
        access: Arc::new(access.with_secure_cookie(tls.is_some())),
        ready: parts.ready,
        listeners: Arc::new(parts.listeners),
        shutdown: parts.shutdown.clone(),
        bridges: parts.bridges,
        tls: parts.tls,
        cluster: parts.cluster,
    };
    let hosts = host::AllowedHosts::new(local_addr, &config.allowed_hosts);
    let app = router(state, hosts);
    serve::spawn(
        socket,
        tls,
        app,
        serve::Bounds::from_config(config),
        parts.shutdown,
    );
    // Tests and scripts parse this line for the address (port 0).
    tracing::info!("HTTP dashboard listening on {scheme}://{local_addr}/ ({protection}).");
    Ok(local_addr)
}

/// Reads what the dashboard needs from files (the token file, the HTTPS
/// certificate and key) and checks it, binding nothing: `run` and
/// `check-config` both go through here.
pub fn check(
    config: &HttpConfig,
) -> Result<(Access, Option<Arc<rustls::ServerConfig>>), HttpError> {
    let access = Access::from_config(config)?;
    let tls = match &config.tls {
        Some(files) => Some(tls::server_config(files)?),
        None => None,
    };
    Ok((access, tls))
}

/// The routes; everything but the health endpoints, the login page and
/// the static assets passes the access check.
fn router(state: AppState, hosts: host::AllowedHosts) -> Router {
    let protected = Router::new()
        .route("/", get(assets::index))
        .route("/api/status", get(api::status))
        .route("/api/clients", get(api::clients))
        .route(
            "/api/clients/{client_id}",
            get(api::client).delete(api::kick),
        )
        .route("/api/dynsec/clients/{username}", get(dynsec::client))
        .route(
            "/api/dynsec/clients/{username}/{action}",
            post(dynsec::client_action),
        )
        .route("/api/certs/{id}/revoke", post(revoke::revoke))
        .route("/api/provision/pending", get(provision::pending))
        .route("/api/provision/certificates", get(provision::certificates))
        .route(
            "/api/provision/pending/{id}/{action}",
            post(provision::decide),
        )
        .route("/api/ota/rollouts", get(ota::rollouts))
        .route("/api/ota/rollouts/{id}/{action}", post(ota::control))
        .route("/api/ota/images/{chip}/{version}", post(ota::upload))
        .route("/api/disconnected", get(api::disconnected))
        .route("/api/bridges", get(bridges::bridges))
        .route("/api/cluster", get(cluster::cluster))
        .route("/api/handshakes/summary", get(api::handshake_summary))
        .route("/api/events", get(live::events))
        .route("/metrics", get(api::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_access,
        ));
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        // Public: the login page needs the style sheet, and nothing in
        // them is secret.
        .route("/assets/{file}", get(assets::asset))
        .merge(protected)
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(hosts),
            host::check_host,
        ))
        .with_state(state)
}

/// The peer of an HTTP connection, for log lines of admin actions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub SocketAddr);
