//! One command that revokes a device's certificate and disconnects it
//! (issue 18): `POST /api/certs/{id}/revoke` (dashboard token, like the
//! rest of the API). `id` is a device id or a serial (hex). The lab PKI is
//! the one provisioning signs with (`provision.pki_dir`, default
//! `<data_dir>/pki`), the same `fleetmq certs revoke` writes; then every TLS
//! listener reloads its CRLs, as on SIGHUP, and the connections of the
//! revoked certificates are closed (5.0: DISCONNECT 0x87) at once.
//!
//! In a cluster the new `crl.pem` reaches every other node through the
//! shared CRL (decision 0188), which reloads their listeners the same way.
//!
//! It does not decide which listeners check that CRL: a listener must name
//! `<pki>/crl.pem` in its `crl` list for the revocation to bite there, and
//! the answer says how many connections were closed.

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::api::error;
use super::{AppState, PeerAddr};
use crate::certs::{CertError, Pki};

/// 200 `{"revoked": [{id, serial}], "crl", "disconnected"}`; 404 unknown
/// id or serial; 409 already revoked; 500 the PKI cannot be written.
pub(super) async fn revoke(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(id): Path<String>,
) -> Response {
    let config = &state.broker.config;
    let dir = crate::certs::lab_pki_dir(config);
    let query = id.clone();
    let revoked =
        tokio::task::spawn_blocking(move || Pki::open(&dir).and_then(|pki| pki.revoke(&query)))
            .await;
    let revoked = match revoked {
        Ok(Ok(revoked)) => revoked,
        Ok(Err(problem @ CertError::UnknownCertificate { .. })) => {
            return error(StatusCode::NOT_FOUND, "unknown", &problem.to_string())
        }
        Ok(Err(problem @ CertError::AlreadyRevoked { .. })) => {
            return error(
                StatusCode::CONFLICT,
                "already_revoked",
                &problem.to_string(),
            )
        }
        Ok(Err(problem)) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "pki",
                &problem.to_string(),
            )
        }
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "pki", "worker failed"),
    };
    for cert in &revoked.certs {
        tracing::info!(
            "Revoked certificate {} of {} from the dashboard ({}).",
            cert.serial,
            cert.id,
            peer.0
        );
    }
    let tls = std::sync::Arc::clone(&state.tls);
    let listeners = tls.len();
    let broker = std::sync::Arc::clone(&state.broker);
    let reloaded =
        tokio::task::spawn_blocking(move || crate::server::reload_tls_counting(&tls, &broker))
            .await;
    // A reload that did not run counts as every listener failing.
    let (failed, disconnected) = reloaded.unwrap_or((listeners, 0));
    let certs: Vec<_> = (revoked.certs.iter())
        .map(|cert| json!({"id": cert.id, "serial": cert.serial}))
        .collect();
    (
        StatusCode::OK,
        Json(json!({
            "revoked": certs,
            "crl": revoked.crl_path.display().to_string(),
            "disconnected": disconnected,
            "listeners_failed_to_reload": failed,
        })),
    )
        .into_response()
}
