//! JSON API handlers, `/metrics`, health endpoints, and the one admin
//! action: disconnecting a client. Shapes are documented in the README
//! ("Dashboard and API") and defined in [`crate::observe`].

use std::sync::atomic::Ordering;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{AppState, PeerAddr};
use crate::observe::Metrics;
use fleetmq_codec::ReasonCode;

/// `GET /healthz`: the process is alive and serving HTTP.
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: every MQTT listener is bound and accepting and the store
/// (when enabled) can commit; 503 before that, while store commits fail
/// (QoS 1/2 publishes are refused then), and once shutdown has begun.
pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let listening = state.ready.load(Ordering::Acquire);
    let store_failure = state
        .broker
        .store
        .as_ref()
        .and_then(|store| store.health().reason());
    let ready = listening && store_failure.is_none();
    let listeners: Vec<_> = state
        .listeners
        .iter()
        .map(|(name, addr)| json!({ "name": &**name, "addr": addr.to_string() }))
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "listeners": listeners,
    });
    if let Some(reason) = store_failure {
        body["reason"] = json!(reason);
    }
    (status, Json(body)).into_response()
}

/// `GET /api/status`: what the page shows in its header.
pub(super) async fn status(State(state): State<AppState>) -> Json<serde_json::Value> {
    let listeners: Vec<_> = state
        .listeners
        .iter()
        .map(|(name, addr)| json!({ "name": &**name, "addr": addr.to_string() }))
        .collect();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.broker.started_at.elapsed().as_secs(),
        "listeners": listeners,
        "auth_required": !state.access.is_open(),
    }))
}

/// `GET /api/clients`: connected clients.
pub(super) async fn clients(State(state): State<AppState>) -> Response {
    Json(state.registry.clients()).into_response()
}

/// `GET /api/disconnected`: recently disconnected clients, newest first.
pub(super) async fn disconnected(State(state): State<AppState>) -> Response {
    Json(state.registry.disconnected()).into_response()
}

/// `GET /api/clients/{client_id}`: one client with its last connects.
pub(super) async fn client(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
) -> Response {
    match state.registry.client(&client_id) {
        Some(detail) => Json(detail).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no client {client_id:?} is connected or recently seen"),
        ),
    }
}

/// `DELETE /api/clients/{client_id}`: disconnects the client (5.0:
/// DISCONNECT 0x98 Administrative action). 202: asked to leave; 404: not
/// connected.
pub(super) async fn kick(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(client_id): Path<String>,
) -> Response {
    if state
        .broker
        .disconnect_client(&client_id, ReasonCode::ADMINISTRATIVE_ACTION)
    {
        tracing::info!(
            client = %client_id,
            peer = %peer.0,
            "Client {client_id} kicked from the dashboard by {}.",
            peer.0
        );
        (
            StatusCode::ACCEPTED,
            Json(json!({ "client_id": client_id, "kicked": true })),
        )
            .into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            "not_connected",
            &format!("no client {client_id:?} is connected"),
        )
    }
}

/// `GET /api/handshakes/summary`.
pub(super) async fn handshake_summary(State(state): State<AppState>) -> Response {
    Json(state.registry.summary()).into_response()
}

/// `GET /metrics`: the Prometheus text format.
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    // Reading broker tables takes short locks; keep them off the runtime's
    // async workers.
    let metrics = std::sync::Arc::clone(&state.metrics);
    match tokio::task::spawn_blocking(move || metrics.render()).await {
        Ok(Ok(text)) => {
            let mut response = text.into_response();
            if let Ok(value) = HeaderValue::from_str(&Metrics::content_type()) {
                response.headers_mut().insert(CONTENT_TYPE, value);
            }
            response
        }
        Ok(Err(failure)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics",
            &failure.to_string(),
        ),
        Err(failure) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics",
            &failure.to_string(),
        ),
    }
}

/// Unknown paths.
pub(super) async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such page")
}

pub(super) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": code, "message": message }))).into_response()
}
