//! The dashboard's side of provisioning (token-guarded like the rest of
//! the API): `GET /api/provision/pending` lists the requests that wait,
//! `POST /api/provision/pending/{id}/approve` and `/deny` decide one,
//! `GET /api/provision/certificates` is every device certificate of the
//! lab PKI index (how it was issued, when it ends, revoked, what it
//! replaces): the per-device certificate state.
//! The same files as `fleetmq certs pending|approve|deny`
//! (`provision::approvals`), read and written off the async threads.

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::api::error;
use super::{AppState, PeerAddr};
use crate::provision::approvals::Approvals;

fn approvals(state: &AppState) -> Approvals {
    Approvals::new(&state.broker.config.data_dir.join("provision"))
}

/// `GET /api/provision/pending`: `{"enabled", "pending": [...]}`.
pub(super) async fn pending(State(state): State<AppState>) -> Response {
    let enabled = state.broker.config.provision.enabled;
    let approvals = approvals(&state);
    match tokio::task::spawn_blocking(move || approvals.list()).await {
        Ok(Ok(pending)) => Json(json!({ "enabled": enabled, "pending": pending })).into_response(),
        Ok(Err(problem)) => error(StatusCode::INTERNAL_SERVER_ERROR, "provision", &problem),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "provision",
            "worker failed",
        ),
    }
}

/// `POST /api/provision/pending/{id}/{action}`, action `approve` or
/// `deny`. 200: done; 404: nothing of that id waits.
pub(super) async fn decide(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let approvals = approvals(&state);
    let approve = match action.as_str() {
        "approve" => true,
        "deny" => false,
        other => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no action {other:?} (use approve or deny)"),
            )
        }
    };
    let id_for_worker = id.clone();
    let done = tokio::task::spawn_blocking(move || {
        if approve {
            approvals.approve(&id_for_worker)
        } else {
            approvals.deny(&id_for_worker)
        }
    })
    .await;
    match done {
        Ok(Ok(request)) => {
            tracing::info!(
                "Provisioning request of {id} {} from the dashboard ({}).",
                if approve { "approved" } else { "denied" },
                peer.0
            );
            (
                StatusCode::OK,
                Json(json!({ "device_id": id, "approved": approve, "key_sha256": request.key_sha256 })),
            )
                .into_response()
        }
        Ok(Err(problem)) => error(StatusCode::NOT_FOUND, "not_pending", &problem),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "provision",
            "worker failed",
        ),
    }
}

/// `GET /api/provision/certificates`: `{"certificates": [...]}`, oldest
/// first; 404 when the PKI folder has no CA.
pub(super) async fn certificates(State(state): State<AppState>) -> Response {
    let config = &state.broker.config;
    let dir = config
        .provision
        .pki_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("pki"));
    let listed = tokio::task::spawn_blocking(move || {
        crate::certs::Pki::open(&dir).and_then(|pki| pki.list())
    })
    .await;
    let rfc3339 = |at: time::OffsetDateTime| {
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    match listed {
        Ok(Ok(certs)) => {
            let rows: Vec<_> = certs
                .iter()
                .filter(|cert| cert.kind == crate::certs::CertKind::Device)
                .map(|cert| {
                    json!({
                        "id": cert.id,
                        "group": cert.group,
                        "serial": cert.serial,
                        "issued_by": cert.issued_by.as_deref().unwrap_or("cli"),
                        "issued_at": rfc3339(cert.issued_at),
                        "not_after": rfc3339(cert.not_after),
                        "days_left": cert.days_left,
                        "revoked_at": cert.revoked_at.map(rfc3339),
                        "replaces": cert.replaces,
                    })
                })
                .collect();
            Json(json!({ "certificates": rows })).into_response()
        }
        Ok(Err(problem)) => error(StatusCode::NOT_FOUND, "no_pki", &problem.to_string()),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "provision",
            "worker failed",
        ),
    }
}
