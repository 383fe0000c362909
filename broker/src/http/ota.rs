//! The dashboard's side of firmware updates (token-guarded like the rest
//! of the API), on the same files as `fleetmq firmware` (`ota::store`,
//! `ota::rollout`), read and written off the async threads:
//!
//! - `GET /api/ota/rollouts`: every rollout with each device's state.
//! - `POST /api/ota/rollouts/{id}/{pause|resume|abort}`: a control word
//!   the OTA worker applies within a second.
//! - `POST /api/ota/images/{chip}/{version}` with the image as the body:
//!   an upload, checked as `fleetmq firmware upload` checks it.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::api::error;
use super::AppState;
use crate::ota::rollout;
use crate::ota::store::OtaStore;

/// `GET /api/ota/rollouts`: `{"enabled", "rollouts": [...]}`.
pub(super) async fn rollouts(State(state): State<AppState>) -> Response {
    let enabled = state.broker.config.ota.enabled;
    let store = OtaStore::new(&state.broker.config);
    match tokio::task::spawn_blocking(move || rollout::load_all(&store.rollouts_dir())).await {
        Ok(Ok(all)) => Json(json!({ "enabled": enabled, "rollouts": all })).into_response(),
        Ok(Err(problem)) => error(StatusCode::INTERNAL_SERVER_ERROR, "ota", &problem),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "ota", "worker failed"),
    }
}

/// `POST /api/ota/rollouts/{id}/{action}`.
pub(super) async fn control(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    if !matches!(action.as_str(), "pause" | "resume" | "abort") {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no action {action:?} (use pause, resume or abort)"),
        );
    }
    let store = OtaStore::new(&state.broker.config);
    let dir = store.rollouts_dir();
    let valid = !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !valid || !rollout::path(&dir, &id).exists() {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no rollout {id}"),
        );
    }
    match std::fs::write(dir.join(format!("{id}.control")), &action) {
        Ok(()) => Json(json!({ "rollout": id, "sent": action })).into_response(),
        Err(problem) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ota",
            &problem.to_string(),
        ),
    }
}

/// `POST /api/ota/images/{chip}/{version}`: 201 with the manifest, 400
/// with the reason it was refused.
pub(super) async fn upload(
    State(state): State<AppState>,
    Path((chip, version)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let store = OtaStore::new(&state.broker.config);
    let done = tokio::task::spawn_blocking(move || {
        let staged = tempfile_in(&store)?;
        std::fs::write(&staged, &body).map_err(|e| format!("{}: {e}", staged.display()))?;
        let result = store.upload(&staged, &version, &chip);
        let _ = std::fs::remove_file(&staged);
        result
    })
    .await;
    match done {
        Ok(Ok(info)) => (StatusCode::CREATED, Json(json!({ "manifest": info }))).into_response(),
        Ok(Err(problem)) => error(StatusCode::BAD_REQUEST, "refused", &problem),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "ota", "worker failed"),
    }
}

fn tempfile_in(store: &OtaStore) -> Result<std::path::PathBuf, String> {
    let dir = store.dir.join("uploads");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok(dir.join(format!("upload-{}-{nanos}.bin", std::process::id())))
}
