//! `/api/v1/system/update`: over-the-air updates (docs/update.md). Reading the status is for
//! viewers; uploading a bundle and marking slots is for administrators.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use watchpost_update::{MarkState, SlotRef};

use crate::api::extract::Query;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::state::HubState;
use crate::update::{UpdateError, UpdateStatus};

pub fn router() -> OpenApiRouter<HubState> {
    OpenApiRouter::new()
        .routes(routes!(status, upload))
        .routes(routes!(mark))
}

impl From<UpdateError> for ApiError {
    fn from(e: UpdateError) -> Self {
        let status = match &e {
            UpdateError::Busy => StatusCode::CONFLICT,
            UpdateError::LengthRequired => StatusCode::LENGTH_REQUIRED,
            UpdateError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UpdateError::NoSpace { .. } => StatusCode::INSUFFICIENT_STORAGE,
            UpdateError::UploadTruncated { .. } => StatusCode::BAD_REQUEST,
            UpdateError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            UpdateError::Rauc(_) => StatusCode::SERVICE_UNAVAILABLE,
            UpdateError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

/// The update status: state, progress, the bundle, RAUC's slots.
#[utoipa::path(
    get,
    path = "/system/update",
    tag = "update",
    extensions(("x-watchpost-role" = json!("viewer"))),
    responses((status = 200, description = "Where the update stands", body = UpdateStatus)),
)]
async fn status(State(state): State<HubState>) -> Json<UpdateStatus> {
    Json(state.update.status().await)
}

/// `POST /system/update`'s query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// Install a bundle older than the running version (never one for another compatible).
    #[serde(default)]
    pub force: bool,
}

/// Uploads a RAUC bundle (the raw bytes, with Content-Length) and installs it. The bundle is
/// streamed to the data partition and checked before RAUC installs it; the answer comes when
/// the install has started, and `GET /system/update` follows it.
#[utoipa::path(
    post,
    path = "/system/update",
    tag = "update",
    params(UploadQuery),
    extensions(("x-watchpost-role" = json!("admin"))),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The bundle (.raucb)"),
    responses(
        (status = 202, description = "Checked and installing", body = UpdateStatus),
        (status = 400, description = "`BUNDLE_TRUNCATED`: the upload ended early", body = ErrorBody),
        (status = 409, description = "`UPDATE_IN_PROGRESS`", body = ErrorBody),
        (status = 411, description = "`LENGTH_REQUIRED`: no Content-Length", body = ErrorBody),
        (status = 413, description = "`BUNDLE_TOO_LARGE`: over `[hub.update] max_bundle_bytes`", body = ErrorBody),
        (status = 422, description = "Refused: `BUNDLE_TRUNCATED`, `NOT_A_BUNDLE`, `BAD_SIGNATURE`, `WRONG_COMPATIBLE`, `OLDER_VERSION`, `UNKNOWN_VERSION`", body = ErrorBody),
        (status = 503, description = "`RAUC_UNAVAILABLE`", body = ErrorBody),
        (status = 507, description = "`NOT_ENOUGH_SPACE` on the data partition", body = ErrorBody),
    ),
)]
async fn upload(
    State(state): State<HubState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<UpdateStatus>), ApiError> {
    let updates = state.update.clone();
    let guard = updates.try_begin()?;
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let result = async {
        let size = updates.admit_upload(length)?;
        crate::update::record(
            &state.store,
            "update.upload_started",
            &p.user,
            watchpost_store::Severity::Info,
            serde_json::json!({"size": size, "force": q.force}),
        )
        .await;
        let path = updates.receive(size, body.into_data_stream()).await?;
        updates
            .install(
                path,
                q.force,
                guard,
                state.store.clone(),
                &p.user,
                state.ctx.shutdown().clone(),
            )
            .await
    }
    .await;
    match result {
        Ok(s) => Ok((StatusCode::ACCEPTED, Json(s))),
        Err(e) => {
            updates.refused(&state.store, &p.user, &e).await;
            Err(e.into())
        }
    }
}

/// `POST /system/update/mark`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRequest {
    /// `good`, `bad` or `active`.
    pub state: MarkKind,
    /// `booted`, `other`, or a RAUC slot name (`rootfs.1`).
    #[serde(default = "booted")]
    pub slot: String,
}

fn booted() -> String {
    "booted".into()
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MarkKind {
    Good,
    Bad,
    Active,
}

/// What `Mark` did.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct MarkView {
    pub slot: String,
    pub message: String,
}

/// Marks a slot good, bad or active (RAUC's `Mark`). Marking the booted slot good confirms
/// an update that runs unconfirmed.
#[utoipa::path(
    post,
    path = "/system/update/mark",
    tag = "update",
    extensions(("x-watchpost-role" = json!("admin"))),
    request_body = MarkRequest,
    responses(
        (status = 200, description = "Marked", body = MarkView),
        (status = 400, description = "`INVALID_BODY`: not a JSON object with `good` or `bad`", body = ErrorBody),
        (status = 503, description = "`RAUC_UNAVAILABLE`, or RAUC refused (its message)", body = ErrorBody),
    ),
)]
async fn mark(
    State(state): State<HubState>,
    Extension(p): Extension<Principal>,
    crate::api::extract::Json(req): crate::api::extract::Json<MarkRequest>,
) -> Result<Json<MarkView>, ApiError> {
    let kind = match req.state {
        MarkKind::Good => MarkState::Good,
        MarkKind::Bad => MarkState::Bad,
        MarkKind::Active => MarkState::Active,
    };
    let slot = match req.slot.as_str() {
        "booted" => SlotRef::Booted,
        "other" => SlotRef::Other,
        n => SlotRef::Named(n.to_string()),
    };
    let m = state.update.mark(&state.store, &p.user, kind, slot).await?;
    Ok(Json(MarkView {
        slot: m.slot,
        message: m.message,
    }))
}
