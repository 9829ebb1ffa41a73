//! `/api/v1/system/tls`: the certificate of the hub's HTTPS listener (`[hub.tls]`).
//!
//! - `GET` — the certificate served now: subject, names, validity, fingerprint (never the key).
//! - `PUT` — `{"certificate": "<PEM chain, leaf first>", "private_key": "<PEM>"}`: checked
//!   (it parses, has not expired, the key belongs to the leaf), stored in `<data_dir>/tls/` and
//!   served from the next handshake on, without a restart. A refused upload changes nothing.
//! - `DELETE` — back to a fresh self-signed certificate made by the hub.
//!
//! With TLS off every route answers 409 `TLS_DISABLED`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::state::HubState;
use crate::tls::{CertificateInfo, TlsError, TlsHandle};

pub fn router() -> OpenApiRouter<HubState> {
    OpenApiRouter::new().routes(routes!(get_tls, put_tls, delete_tls))
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsUpload {
    /// The certificate chain, PEM, the server's certificate first, then intermediates.
    pub certificate: String,
    /// The certificate's private key, PEM (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub private_key: String,
}

fn handle(state: &HubState) -> Result<std::sync::Arc<TlsHandle>, ApiError> {
    state.tls.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "TLS_DISABLED",
            "HTTPS is off ([hub.tls] enabled = false)",
        )
    })
}

/// Maps a refused or failed certificate change to its answer.
fn tls_error(e: TlsError) -> ApiError {
    let unprocessable =
        |code, e: &TlsError| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string());
    match &e {
        TlsError::CertificatePem(_) | TlsError::CertificateParse(_) => {
            unprocessable("INVALID_CERTIFICATE", &e)
        }
        TlsError::CertificateExpired { .. } => unprocessable("CERTIFICATE_EXPIRED", &e),
        TlsError::KeyPem(_) | TlsError::KeyUnsupported(_) => {
            unprocessable("INVALID_PRIVATE_KEY", &e)
        }
        TlsError::KeyMismatch | TlsError::KeyCheck(_) => unprocessable("KEY_MISMATCH", &e),
        TlsError::CreateDir { .. }
        | TlsError::ReadFile { .. }
        | TlsError::WriteFile { .. }
        | TlsError::Generate { .. }
        | TlsError::ServerConfig(_) => {
            tracing::error!(error = %e, "changing the HTTPS certificate");
            ApiError::internal("TLS_STORE_FAILED", e.to_string())
        }
    }
}

/// Runs blocking certificate work (file writes, key generation) off the async threads.
async fn blocking<F>(f: F) -> Result<CertificateInfo, ApiError>
where
    F: FnOnce() -> Result<CertificateInfo, TlsError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal("TASK_FAILED", e.to_string()))?
        .map_err(tls_error)
}

/// The certificate the HTTPS listener serves now (never its key).
#[utoipa::path(
    get,
    path = "/system/tls",
    tag = "system",
    extensions(("x-watchpost-role" = json!("admin"))),
    responses(
        (status = 200, description = "The certificate served", body = CertificateInfo),
        (status = 409, description = "`TLS_DISABLED`: HTTPS is off", body = ErrorBody),
    ),
)]
async fn get_tls(State(state): State<HubState>) -> Result<Json<CertificateInfo>, ApiError> {
    Ok(Json(handle(&state)?.info()))
}

/// Replaces the HTTPS certificate with an uploaded one; served from the next connection on.
#[utoipa::path(
    put,
    path = "/system/tls",
    tag = "system",
    extensions(("x-watchpost-role" = json!("admin"))),
    request_body = TlsUpload,
    responses(
        (status = 200, description = "Stored and served", body = CertificateInfo),
        (status = 400, description = "`INVALID_BODY`", body = ErrorBody),
        (status = 409, description = "`TLS_DISABLED`: HTTPS is off", body = ErrorBody),
        (status = 422, description = "`INVALID_CERTIFICATE`, `CERTIFICATE_EXPIRED`, `INVALID_PRIVATE_KEY`, `KEY_MISMATCH` (the key does not belong to the certificate)", body = ErrorBody),
        (status = 500, description = "`TLS_STORE_FAILED`", body = ErrorBody),
    ),
)]
async fn put_tls(
    State(state): State<HubState>,
    crate::api::extract::Json(body): crate::api::extract::Json<TlsUpload>,
) -> Result<Json<CertificateInfo>, ApiError> {
    let tls = handle(&state)?;
    blocking(move || tls.install(&body.certificate, &body.private_key))
        .await
        .map(Json)
}

/// Goes back to a fresh self-signed certificate made by the hub.
#[utoipa::path(
    delete,
    path = "/system/tls",
    tag = "system",
    extensions(("x-watchpost-role" = json!("admin"))),
    responses(
        (status = 200, description = "The new self-signed certificate, served from the next connection on", body = CertificateInfo),
        (status = 409, description = "`TLS_DISABLED`: HTTPS is off", body = ErrorBody),
        (status = 500, description = "`TLS_STORE_FAILED`", body = ErrorBody),
    ),
)]
async fn delete_tls(State(state): State<HubState>) -> Result<Json<CertificateInfo>, ApiError> {
    let tls = handle(&state)?;
    blocking(move || tls.reset_self_signed()).await.map(Json)
}
