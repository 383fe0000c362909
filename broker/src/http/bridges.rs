//! `GET /api/bridges`: every bridge's state, remote, queued messages,
//! counters and last error (see `crate::bridge::status`).
//!
//! It must not change a bridge: links are configured in the file only.

use axum::extract::State;
use axum::response::{IntoResponse, Json, Response};

use super::AppState;

pub(super) async fn bridges(State(state): State<AppState>) -> Response {
    Json(state.bridges.views(&state.broker)).into_response()
}
