//! The dashboard's dynamic-security view and actions (token-guarded like
//! the rest of the API): `GET /api/dynsec/clients/{username}` (the
//! client's roles, groups and whether it is disabled, as `getClient`
//! answers), `POST /api/dynsec/clients/{username}/disable` and
//! `/enable`. Each runs the same `disableClient` / `enableClient` command
//! an MQTT admin would send, so the file is saved and the client is
//! disconnected exactly as then; kicking a connection is
//! `DELETE /api/clients/{client_id}` (`api.rs`).

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::api::error;
use super::{AppState, PeerAddr};

/// `POST /api/dynsec/clients/{username}/{action}`, action `enable` or
/// `disable`. 200: done; 404: no such dynsec client, or no dynsec.
pub(super) async fn client_action(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path((username, action)): Path<(String, String)>,
) -> Response {
    let command = match action.as_str() {
        "disable" => "disableClient",
        "enable" => "enableClient",
        other => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no action {other:?} (use enable or disable)"),
            )
        }
    };
    let payload = json!({"commands": [{"command": command, "username": username}]}).to_string();
    let by = format!("dashboard {}", peer.0);
    let Some(response) = state.broker.dynsec_run(&by, payload.as_bytes()) else {
        return error(
            StatusCode::NOT_FOUND,
            "no_dynsec",
            "dynamic security is not configured (auth.dynsec_file)",
        );
    };
    let answer: Value = serde_json::from_str(&response).unwrap_or(Value::Null);
    match answer["responses"][0]["error"].as_str() {
        None => (
            StatusCode::OK,
            Json(json!({ "username": username, "disabled": action == "disable" })),
        )
            .into_response(),
        Some(problem) => error(StatusCode::NOT_FOUND, "dynsec", problem),
    }
}

/// `GET /api/dynsec/clients/{username}`: the `getClient` answer's client
/// (username, roles, groups, disabled; never the password hash). 404: no
/// such dynsec client, or no dynsec.
pub(super) async fn client(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(username): Path<String>,
) -> Response {
    let payload = json!({"commands": [{"command": "getClient", "username": username}]}).to_string();
    let by = format!("dashboard {}", peer.0);
    let Some(response) = state.broker.dynsec_run(&by, payload.as_bytes()) else {
        return error(
            StatusCode::NOT_FOUND,
            "no_dynsec",
            "dynamic security is not configured (auth.dynsec_file)",
        );
    };
    let mut answer: Value = serde_json::from_str(&response).unwrap_or(Value::Null);
    let first = answer["responses"][0].take();
    match first["error"].as_str() {
        None => (StatusCode::OK, Json(first["data"]["client"].clone())).into_response(),
        Some(problem) => error(StatusCode::NOT_FOUND, "dynsec", problem),
    }
}
