//! `GET /api/cluster` (token-guarded like the rest of the API): the
//! cluster's nodes and which node holds which client id, as
//! `cluster::view` reads them (decision 0185). On a broker without
//! `[cluster]` it answers `{"enabled": false, "message": ...}`; 503 when
//! this node cannot read NATS JetStream now.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::api::error;
use super::AppState;

/// `GET /api/cluster`.
pub(super) async fn cluster(State(state): State<AppState>) -> Response {
    let ready = state.broker.cluster().is_some_and(|link| link.is_ready());
    match state.cluster.snapshot(ready).await {
        Ok(view) => Json(view).into_response(),
        Err(problem) => error(StatusCode::SERVICE_UNAVAILABLE, "cluster", &problem),
    }
}
