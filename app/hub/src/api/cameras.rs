//! `/api/v1/cameras`: the cameras of the `capture` worker, their live status, snapshots and
//! recording index.
//!
//! The list comes from the configuration (`[capture]`); each camera's status comes from the
//! capture worker's retained topic `<prefix>/capture/camera/<id>/status`, which a hub service
//! ([`start_status_cache`]) subscribes to once and keeps in the typed caches of
//! [`CaptureClient`] (`HubState::cameras`), together with the thermal statistics and the
//! worker's own `<prefix>/system/capture/status`: a status whose worker is gone, or that has not
//! been refreshed for [`STALE_AFTER_MS`], is reported `offline` with the reason. Snapshots, the
//! recording index and credentials are the capture contract's typed commands
//! (`watchpost_contract::capture`) sent with `Bus::request`; the worker's refusals come back as
//! [`CaptureCode`]s, mapped to HTTP by one exhaustive `match` ([`refused`]); no answer in time
//! is a 503. A snapshot of a camera that is (re)connecting waits a few seconds for its first
//! frame ([`FIRST_FRAME_WAIT`]) before answering `NO_FRAME`. Credentials are never part of an
//! answer: the source is described by its type and its URL without user information.
//!
//! Every handler carries its `#[utoipa::path]` with each status it can answer. The answers are
//! the hub's own view types; the configuration's enums are mirrored by [`CameraKindView`],
//! [`RecordModeView`] and [`RtspTransportView`] (converted by exhaustive `match`es), so the
//! OpenAPI schema is derived from the very types that are serialized.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use watchpost_bus::{Bus, ReplyError, RequestError};
use watchpost_config::capture::{
    CameraConfig, CameraKind, RecordMode, RtspTransport, SourceConfig,
};
use watchpost_contract::capture::{
    self, CameraCommand, CameraState, CameraStatus, CaptureCode, Credentials, Recording,
    Recordings, Snapshot, SnapshotTaken, ThermalStatistics, Topic,
};

use super::events::ListOrder;
use super::extract::{Path, Query};
use super::list::{Page, PageParams, PageRequest, Pagination, paginate};
use crate::error::{ApiError, ErrorBody};
use crate::state::HubState;

/// A status not refreshed for this long is stale (the worker republishes at least every 10 s).
pub const STALE_AFTER_MS: u64 = 30_000;
/// How long one snapshot command may take: the worker waits up to 2 s for its recorder's
/// newest group of pictures, then decodes it.
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(6);
/// How long a snapshot waits for a camera's first frame: right after the camera (re)connects,
/// a credentials change included, the worker has none and answers `NO_FRAME`; the hub asks
/// again every [`FIRST_FRAME_POLL`] until this has passed, then answers 503 `NO_FRAME`.
pub const FIRST_FRAME_WAIT: Duration = Duration::from_secs(5);
/// How often a snapshot asks again while it waits for the first frame.
pub const FIRST_FRAME_POLL: Duration = Duration::from_millis(250);
/// How long the worker may take to list its index, or to seal credentials.
pub const RECORDINGS_TIMEOUT: Duration = Duration::from_secs(3);

pub fn router() -> OpenApiRouter<HubState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one))
        .routes(routes!(snapshot))
        .routes(routes!(recordings))
        .routes(routes!(put_credentials))
}

/// The hub's client of the capture worker: typed caches of what it publishes (each camera's
/// retained status, each thermal camera's statistics, the worker's own presence), fed by
/// [`start_status_cache`], and its commands over `Bus::request`.
#[derive(Debug, Default)]
pub struct CaptureClient {
    cameras: Mutex<HashMap<String, CameraStatus>>,
    thermal: Mutex<HashMap<String, ThermalStatistics>>,
    /// The worker's own retained `system/capture/status` (`online`/`offline`), once heard.
    worker_online: Mutex<Option<bool>>,
}

impl CaptureClient {
    /// Applies one bus message (a camera's status or thermal statistics, or the worker's own
    /// status). An empty or undecodable payload removes the camera's entry.
    pub fn apply(&self, prefix: &str, topic: &str, payload: &[u8]) {
        match Topic::parse(prefix, topic) {
            Some(Topic::WorkerStatus) => {
                let online = match payload {
                    b"online" => Some(true),
                    b"offline" => Some(false),
                    _ => None,
                };
                *self.worker_online.lock().unwrap_or_else(|p| p.into_inner()) = online;
            }
            Some(Topic::Status(id)) => take(&self.cameras, topic, id, payload),
            Some(Topic::Thermal(id)) => take(&self.thermal, topic, id, payload),
            Some(
                Topic::Recording(_)
                | Topic::ThermalEvent(_)
                | Topic::Snapshot(_)
                | Topic::SnapshotEvent(_)
                | Topic::Command(..),
            )
            | None => {}
        }
    }

    /// The status the worker last published for camera `id`.
    pub fn status(&self, id: &str) -> Option<CameraStatus> {
        self.cameras
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// The thermal statistics the worker last published for camera `id`.
    pub fn thermal(&self, id: &str) -> Option<ThermalStatistics> {
        self.thermal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Whether the worker says it is online; `None` until heard.
    pub fn worker_online(&self) -> Option<bool> {
        *self.worker_online.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `command` to camera `camera` and waits up to `timeout` for the worker's answer;
    /// a refusal or no answer is the API's error.
    pub async fn request<C: CameraCommand>(
        &self,
        bus: &Bus,
        camera: &str,
        command: &C,
        timeout: Duration,
    ) -> Result<C::Reply, ApiError> {
        let topic = bus.topic(&capture::command(camera, C::COMMAND));
        bus.request(&topic, command, timeout)
            .await
            .map_err(|e| request_error(&topic, e))
    }

    /// Takes a snapshot of camera `camera`, waiting up to [`FIRST_FRAME_WAIT`] for its first
    /// frame when the worker has none yet (the camera is starting or reconnecting).
    pub async fn snapshot(&self, bus: &Bus, camera: &str) -> Result<SnapshotTaken, ApiError> {
        let topic = bus.topic(&capture::command(camera, Snapshot::COMMAND));
        let deadline = tokio::time::Instant::now() + FIRST_FRAME_WAIT;
        loop {
            match bus.request(&topic, &Snapshot {}, SNAPSHOT_TIMEOUT).await {
                Err(RequestError::Refused { error, .. })
                    if error.code == CaptureCode::NoFrame
                        && tokio::time::Instant::now() + FIRST_FRAME_POLL < deadline =>
                {
                    tokio::time::sleep(FIRST_FRAME_POLL).await;
                }
                r => return r.map_err(|e| request_error(&topic, e)),
            }
        }
    }
}

/// Puts a decoded retained payload into `map`, or removes `id` for an empty or bad one.
fn take<T: serde::de::DeserializeOwned>(
    map: &Mutex<HashMap<String, T>>,
    topic: &str,
    id: &str,
    payload: &[u8],
) {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if payload.is_empty() {
        map.remove(id);
        return;
    }
    match serde_json::from_slice::<T>(payload) {
        Ok(v) => {
            map.insert(id.to_string(), v);
        }
        Err(e) => {
            tracing::debug!(%topic, error = %e, "capture payload is not the contract's JSON");
            map.remove(id);
        }
    }
}

/// A failed command as the API answers it.
fn request_error(topic: &str, e: RequestError<CaptureCode>) -> ApiError {
    match e {
        RequestError::Refused { error, .. } => refused(error),
        RequestError::Timeout { .. } | RequestError::Bus(_) => {
            tracing::warn!(%topic, error = %e, "camera command not answered");
            ApiError::unavailable(
                "CAPTURE_UNAVAILABLE",
                format!("the capture worker did not answer: {e}"),
            )
        }
        RequestError::BadReply { .. } => {
            tracing::warn!(%topic, error = %e, "camera command answered out of contract");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "CAPTURE_BAD_REPLY",
                format!("the capture worker's answer is not understood: {e}"),
            )
        }
    }
}

/// The capture worker's refusal as the API answers it.
pub fn refused(e: ReplyError<CaptureCode>) -> ApiError {
    let (status, code) = match e.code {
        // The hub found the camera in the configuration: the worker does not run it.
        CaptureCode::CameraNotFound => (StatusCode::SERVICE_UNAVAILABLE, "CAMERA_NOT_RUNNING"),
        CaptureCode::NoFrame => (StatusCode::SERVICE_UNAVAILABLE, "NO_FRAME"),
        CaptureCode::SnapshotFailed => (StatusCode::INTERNAL_SERVER_ERROR, "SNAPSHOT_FAILED"),
        CaptureCode::InvalidQuery => (StatusCode::BAD_REQUEST, "INVALID_QUERY"),
        CaptureCode::IndexUnreadable => (StatusCode::INTERNAL_SERVER_ERROR, "INDEX_UNREADABLE"),
        CaptureCode::InvalidCredentials => (StatusCode::BAD_REQUEST, "INVALID_CREDENTIALS"),
        CaptureCode::CredentialsNotSaved => {
            (StatusCode::INTERNAL_SERVER_ERROR, "CREDENTIALS_NOT_SAVED")
        }
        // The hub's own command did not decode: the two ends disagree on the contract.
        CaptureCode::InvalidBody => (StatusCode::BAD_GATEWAY, "CAPTURE_BAD_REQUEST"),
    };
    ApiError::new(status, code, e.message).with_details(e.details)
}

/// Hub service: keeps the capture client's caches filled from the bus until shutdown.
pub fn start_status_cache(state: &HubState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        if !state.config.capture.enabled {
            return;
        }
        let bus = &state.bus;
        let cams = bus.subscribe(&bus.filter(&capture::STATUS_FILTER)).await;
        let worker = bus.subscribe(&bus.topic(&capture::worker_status())).await;
        let thermal = bus.subscribe(&bus.filter(&capture::THERMAL_FILTER)).await;
        let (Ok(mut cams), Ok(mut worker), Ok(mut thermal)) = (cams, worker, thermal) else {
            tracing::warn!("camera status cache: cannot subscribe to the bus");
            return;
        };
        let client = &state.cameras;
        let prefix = bus.prefix().to_string();
        let shutdown = state.ctx.shutdown().clone();
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => return,
                m = cams.recv() => m,
                m = worker.recv() => m,
                m = thermal.recv() => m,
            };
            let Some(msg) = msg else { return };
            client.apply(&prefix, &msg.topic, &msg.payload);
        }
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A camera's status as the API reports it: the capture worker's, or `offline` with the
/// reason when that is stale or missing, `disabled` when the configuration says so.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CameraStatusView {
    pub state: CameraState,
    /// Why the camera is not online, when it is not.
    pub reason: Option<String>,
    pub input_fps: f64,
    pub bitrate_bps: f64,
    pub frames_dropped: u64,
    pub reconnects: u64,
    pub recording: bool,
    pub recording_bytes_per_s: f64,
    pub disk_used_bytes: u64,
    /// RFC 3339, `null` before the first frame.
    pub last_frame_at: Option<String>,
    pub recording_error: Option<String>,
    /// Mean delay from a frame's arrival to the detection ring (ms), when detection runs.
    pub detect_latency_ms: Option<f64>,
    /// When the capture worker computed the figures (ms since the Unix epoch), if ever.
    pub updated_unix_ms: Option<u64>,
}

/// What the API says about a camera, from its configuration and what the worker published.
pub fn status_view(
    capture_enabled: bool,
    camera_enabled: bool,
    worker_online: Option<bool>,
    heard: Option<CameraStatus>,
    now_ms: u64,
) -> CameraStatusView {
    let mut v = CameraStatusView {
        state: CameraState::Offline,
        reason: None,
        input_fps: 0.0,
        bitrate_bps: 0.0,
        frames_dropped: 0,
        reconnects: 0,
        recording: false,
        recording_bytes_per_s: 0.0,
        disk_used_bytes: 0,
        last_frame_at: None,
        recording_error: None,
        detect_latency_ms: None,
        updated_unix_ms: None,
    };
    if !capture_enabled || !camera_enabled {
        v.state = CameraState::Disabled;
        v.reason = Some(if capture_enabled {
            "the camera is disabled in the configuration".into()
        } else {
            "the capture worker is disabled in the configuration".into()
        });
        return v;
    }
    let Some(s) = heard else {
        v.reason = Some(if worker_online == Some(false) {
            "the capture worker is not running".into()
        } else {
            "no status from the capture worker yet".into()
        });
        return v;
    };
    v.frames_dropped = s.frames_dropped;
    v.reconnects = s.reconnects;
    v.disk_used_bytes = s.disk_used_bytes;
    v.last_frame_at = s.last_frame_at;
    v.recording_error = s.recording_error;
    v.updated_unix_ms = (s.updated_unix_ms > 0).then_some(s.updated_unix_ms);
    let age_ms = now_ms.saturating_sub(s.updated_unix_ms);
    if worker_online == Some(false) {
        v.reason = Some("the capture worker is not running".into());
    } else if s.updated_unix_ms > 0 && age_ms > STALE_AFTER_MS {
        v.reason = Some(format!(
            "no status from the capture worker for {} s",
            age_ms / 1000
        ));
    } else {
        // Fresh: the worker's own view, rates included.
        v.state = s.state;
        v.reason = s.reason;
        v.input_fps = s.input_fps;
        v.bitrate_bps = s.bitrate_bps;
        v.recording = s.recording;
        v.recording_bytes_per_s = s.recording_bytes_per_s;
        v.detect_latency_ms = s.detect_latency_ms;
    }
    v
}

/// `scheme://host:port/path` without any user information.
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return String::new();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{host}{path}")
}

/// A camera's source as the API describes it: its type and where it is, never credentials.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceView {
    Rtsp {
        /// The main stream, without user information.
        url: String,
        /// The sub-stream, without user information.
        sub_url: Option<String>,
        transport: RtspTransportView,
    },
    V4l2 {
        #[schema(value_type = String)]
        device: PathBuf,
    },
    HttpMjpeg {
        url: String,
        fps: u32,
    },
    ThermalTcp {
        address: String,
        fps: u32,
    },
}

impl SourceView {
    fn of(c: &CameraConfig) -> Self {
        match &c.source {
            SourceConfig::Rtsp {
                url,
                sub_url,
                transport,
                ..
            } => SourceView::Rtsp {
                url: without_userinfo(url),
                sub_url: sub_url.as_deref().map(without_userinfo),
                transport: (*transport).into(),
            },
            SourceConfig::V4l2 { device, .. } => SourceView::V4l2 {
                device: device.clone(),
            },
            SourceConfig::HttpMjpeg { url, fps } => SourceView::HttpMjpeg {
                url: without_userinfo(url),
                fps: *fps,
            },
            SourceConfig::ThermalTcp { address, fps } => SourceView::ThermalTcp {
                address: address.clone(),
                fps: *fps,
            },
        }
    }
}

/// RTSP lower transport (the configuration's `transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RtspTransportView {
    Tcp,
    Udp,
}

impl From<RtspTransport> for RtspTransportView {
    fn from(t: RtspTransport) -> Self {
        match t {
            RtspTransport::Tcp => Self::Tcp,
            RtspTransport::Udp => Self::Udp,
        }
    }
}

/// What the camera sees (the configuration's `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CameraKindView {
    Visible,
    Thermal,
}

impl From<CameraKind> for CameraKindView {
    fn from(k: CameraKind) -> Self {
        match k {
            CameraKind::Visible => Self::Visible,
            CameraKind::Thermal => Self::Thermal,
        }
    }
}

/// When the camera records (the configuration's `record.mode`): always, around events, inside
/// the schedule's windows, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordModeView {
    Continuous,
    Event,
    Schedule,
    Off,
}

impl From<RecordMode> for RecordModeView {
    fn from(m: RecordMode) -> Self {
        match m {
            RecordMode::Continuous => Self::Continuous,
            RecordMode::Event => Self::Event,
            RecordMode::Schedule => Self::Schedule,
            RecordMode::Off => Self::Off,
        }
    }
}

/// One camera as `GET /api/v1/cameras` and `GET /api/v1/cameras/{id}` answer it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CameraView {
    pub id: String,
    /// The configured name, or the id when it has none.
    pub name: String,
    pub enabled: bool,
    pub kind: CameraKindView,
    pub source: SourceView,
    pub credentials_configured: bool,
    pub record_mode: RecordModeView,
    pub detect: bool,
    pub status: CameraStatusView,
    /// A thermal camera's latest statistics as the worker published them; `null` for other
    /// cameras and before the first.
    pub thermal: Option<ThermalStatistics>,
}

pub(crate) fn camera_view(state: &HubState, c: &CameraConfig) -> CameraView {
    let client = &state.cameras;
    let id = c.id.as_str();
    CameraView {
        id: id.to_string(),
        name: if c.name.is_empty() { id } else { &c.name }.to_string(),
        enabled: c.enabled,
        kind: c.kind.into(),
        source: SourceView::of(c),
        credentials_configured: c.credentials.is_some(),
        record_mode: c.record.mode.into(),
        detect: c.detect.enabled,
        status: status_view(
            state.config.capture.enabled,
            c.enabled,
            client.worker_online(),
            client.status(id),
            now_ms(),
        ),
        thermal: match c.kind {
            CameraKind::Thermal => client.thermal(id),
            _ => None,
        },
    }
}

fn find<'a>(state: &'a HubState, id: &str) -> Result<&'a CameraConfig, ApiError> {
    state
        .config
        .capture
        .cameras
        .iter()
        .find(|c| c.id.as_str() == id)
        .ok_or_else(|| {
            ApiError::not_found("CAMERA_NOT_FOUND", format!("no camera `{id}`"))
                .with_details(json!({"id": id}))
        })
}

/// The `{id}` path parameter of `/api/v1/cameras/{id}/...`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CameraId {
    /// The camera's configured id.
    #[param(example = "yard")]
    id: String,
}

/// The configured cameras, in configuration order, each with its live status.
#[utoipa::path(
    get,
    path = "/cameras",
    tag = "cameras",
    operation_id = "list_cameras",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(PageParams),
    responses(
        (status = 200, description = "One page of cameras", body = Page<CameraView>),
        (status = 401, description = "No valid credentials (`UNAUTHORIZED`)", body = ErrorBody,
            headers(("www-authenticate" = String, description = "`Basic realm=\"watchpost\"`"))),
        (status = 400, description = "A parameter is out of range (`INVALID_PAGE`, `INVALID_LIMIT`), not a number or unknown (`INVALID_QUERY`)", body = ErrorBody),
    ),
)]
async fn list(
    State(state): State<HubState>,
    Query(p): Query<PageParams>,
) -> Result<Json<Page<CameraView>>, ApiError> {
    let req = p.check()?;
    let cams = &state.config.capture.cameras;
    Ok(Json(paginate(
        cams.iter().map(|c| camera_view(&state, c)),
        req,
    )))
}

/// One camera with its live status.
#[utoipa::path(
    get,
    path = "/cameras/{id}",
    tag = "cameras",
    operation_id = "get_camera",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(CameraId),
    responses(
        (status = 200, description = "The camera", body = CameraView),
        (status = 401, description = "No valid credentials (`UNAUTHORIZED`)", body = ErrorBody,
            headers(("www-authenticate" = String, description = "`Basic realm=\"watchpost\"`"))),
        (status = 400, description = "The id is not valid UTF-8 once decoded (`INVALID_PATH`)", body = ErrorBody),
        (status = 404, description = "No camera of that id is configured (`CAMERA_NOT_FOUND`)", body = ErrorBody),
    ),
)]
async fn one(
    State(state): State<HubState>,
    Path(CameraId { id }): Path<CameraId>,
) -> Result<Json<CameraView>, ApiError> {
    let c = find(&state, &id)?;
    Ok(Json(camera_view(&state, c)))
}

/// Refuses cameras the worker does not run, before asking it anything.
fn require_running(state: &HubState, c: &CameraConfig) -> Result<(), ApiError> {
    if !state.config.capture.enabled {
        return Err(ApiError::unavailable(
            "CAPTURE_DISABLED",
            "the capture worker is disabled in the configuration",
        ));
    }
    if !c.enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "CAMERA_DISABLED",
            format!("camera `{}` is disabled in the configuration", c.id),
        ));
    }
    Ok(())
}

/// A JPEG picture's bytes (the snapshot answer's body, named here for the OpenAPI document).
#[derive(Debug, utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Jpeg(pub Vec<u8>);

/// The camera's newest frame as a JPEG, taken now by the capture worker.
#[utoipa::path(
    get,
    path = "/cameras/{id}/snapshot",
    tag = "cameras",
    operation_id = "get_camera_snapshot",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(CameraId),
    responses(
        (status = 200, description = "The picture", content_type = "image/jpeg", body = Jpeg,
            headers(
                ("x-snapshot-taken-at" = String, description = "RFC 3339: when the newest frame in the picture arrived"),
                ("cache-control" = String, description = "`no-store`"),
            )),
        (status = 401, description = "No valid credentials (`UNAUTHORIZED`)", body = ErrorBody,
            headers(("www-authenticate" = String, description = "`Basic realm=\"watchpost\"`"))),
        (status = 400, description = "The id is not valid UTF-8 once decoded (`INVALID_PATH`)", body = ErrorBody),
        (status = 404, description = "No camera of that id is configured (`CAMERA_NOT_FOUND`)", body = ErrorBody),
        (status = 409, description = "The camera is disabled in the configuration (`CAMERA_DISABLED`)", body = ErrorBody),
        (status = 500, description = "The frame could not be decoded, written or read back (`SNAPSHOT_FAILED`)", body = ErrorBody),
        (status = 502, description = "The capture worker's answer is out of contract (`CAPTURE_BAD_REPLY`), or it did not understand the hub's command (`CAPTURE_BAD_REQUEST`)", body = ErrorBody),
        (status = 503, description = "The capture worker is disabled (`CAPTURE_DISABLED`), did not answer (`CAPTURE_UNAVAILABLE`), does not run the camera (`CAMERA_NOT_RUNNING`), or still has no frame from the camera after waiting 5 s for its first (`NO_FRAME`)", body = ErrorBody),
    ),
)]
async fn snapshot(
    State(state): State<HubState>,
    Path(CameraId { id }): Path<CameraId>,
) -> Result<Response, ApiError> {
    let c = find(&state, &id)?;
    require_running(&state, c)?;
    let taken = state.cameras.snapshot(&state.bus, &id).await?;
    // The worker wrote the JPEG to the snapshots directory both processes know.
    let path = state
        .config
        .capture
        .snapshots_dir(&state.config.system.data_dir)
        .join(format!("{id}.jpg"));
    let jpeg = tokio::fs::read(&path).await.map_err(|e| {
        ApiError::internal(
            "SNAPSHOT_FAILED",
            format!("reading the snapshot {}: {e}", path.display()),
        )
    })?;
    let mut resp = (
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        jpeg,
    )
        .into_response();
    if let Ok(v) = header::HeaderValue::from_str(&taken.taken_at) {
        resp.headers_mut().insert("x-snapshot-taken-at", v);
    }
    Ok(resp)
}

/// Body of `PUT /api/v1/cameras/{id}/credentials`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialsBody {
    /// Not empty, without `:`.
    #[schema(min_length = 1, pattern = "^[^:]+$", example = "viewer")]
    username: String,
    /// Never echoed, logged or published.
    #[schema(example = "s3cret")]
    password: String,
}

impl std::fmt::Debug for CredentialsBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsBody")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Replaces a camera's credentials: the capture worker seals them with the device key, stores
/// them and reconnects the camera with them. Answers 204; the password is never echoed.
#[utoipa::path(
    put,
    path = "/cameras/{id}/credentials",
    tag = "cameras",
    operation_id = "put_camera_credentials",
    extensions(("x-watchpost-role" = json!("admin"))),
    params(CameraId),
    request_body(content = CredentialsBody, content_type = "application/json"),
    responses(
        (status = 204, description = "Stored; the camera reconnects with them"),
        (status = 401, description = "No valid credentials (`UNAUTHORIZED`)", body = ErrorBody,
            headers(("www-authenticate" = String, description = "`Basic realm=\"watchpost\"`"))),
        (status = 400, description = "The body is not `{\"username\", \"password\"}` or the username is empty or has a `:` (`INVALID_CREDENTIALS`), or the id is not valid UTF-8 once decoded (`INVALID_PATH`)", body = ErrorBody),
        (status = 404, description = "No camera of that id is configured (`CAMERA_NOT_FOUND`)", body = ErrorBody),
        (status = 409, description = "The camera is disabled in the configuration (`CAMERA_DISABLED`)", body = ErrorBody),
        (status = 500, description = "The capture worker could not store them (`CREDENTIALS_NOT_SAVED`)", body = ErrorBody),
        (status = 502, description = "The capture worker's answer is out of contract (`CAPTURE_BAD_REPLY`), or it did not understand the hub's command (`CAPTURE_BAD_REQUEST`)", body = ErrorBody),
        (status = 503, description = "The capture worker is disabled (`CAPTURE_DISABLED`), did not answer (`CAPTURE_UNAVAILABLE`) or does not run the camera (`CAMERA_NOT_RUNNING`)", body = ErrorBody),
    ),
)]
async fn put_credentials(
    State(state): State<HubState>,
    Path(CameraId { id }): Path<CameraId>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let c = find(&state, &id)?;
    require_running(&state, c)?;
    let body: CredentialsBody = serde_json::from_slice(&body).map_err(|_| {
        ApiError::bad_request(
            "INVALID_CREDENTIALS",
            "expected {\"username\": \"...\", \"password\": \"...\"}",
        )
    })?;
    let credentials = Credentials {
        username: body.username,
        password: body.password,
    };
    credentials.check().map_err(refused)?;
    state
        .cameras
        .request(&state.bus, &id, &credentials, RECORDINGS_TIMEOUT)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query parameters of `GET /api/v1/cameras/{id}/recordings`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecordingParams {
    /// Page number, from 1.
    #[param(minimum = 1)]
    page: Option<u32>,
    /// Segments per page, 1..=500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Only segments that end at or after this time (µs since the Unix epoch).
    #[param(maximum = 9223372036854775807_u64)]
    since_us: Option<u64>,
    /// Only segments that start before this time (µs since the Unix epoch).
    #[param(maximum = 9223372036854775807_u64)]
    until_us: Option<u64>,
    /// `newest` first (default) or `oldest` first, by start time.
    #[param(inline, value_type = Option<ListOrder>)]
    order: Option<String>,
}

/// One page of the camera's recording index: its segments, newest first unless asked.
#[utoipa::path(
    get,
    path = "/cameras/{id}/recordings",
    tag = "cameras",
    operation_id = "list_camera_recordings",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(CameraId, RecordingParams),
    responses(
        (status = 200, description = "One page of segments", body = Page<Recording>),
        (status = 401, description = "No valid credentials (`UNAUTHORIZED`)", body = ErrorBody,
            headers(("www-authenticate" = String, description = "`Basic realm=\"watchpost\"`"))),
        (status = 400, description = "A parameter is out of range (`INVALID_PAGE`, `INVALID_LIMIT`, `INVALID_ORDER`), not a number or unknown (`INVALID_QUERY`), or the id is not valid UTF-8 once decoded (`INVALID_PATH`)", body = ErrorBody),
        (status = 404, description = "No camera of that id is configured (`CAMERA_NOT_FOUND`)", body = ErrorBody),
        (status = 500, description = "The recording index cannot be read (`INDEX_UNREADABLE`)", body = ErrorBody),
        (status = 502, description = "The capture worker's answer is out of contract (`CAPTURE_BAD_REPLY`), or it did not understand the hub's command (`CAPTURE_BAD_REQUEST`)", body = ErrorBody),
        (status = 503, description = "The capture worker is disabled (`CAPTURE_DISABLED`), did not answer (`CAPTURE_UNAVAILABLE`) or does not know the camera (`CAMERA_NOT_RUNNING`)", body = ErrorBody),
    ),
)]
async fn recordings(
    State(state): State<HubState>,
    Path(CameraId { id }): Path<CameraId>,
    Query(p): Query<RecordingParams>,
) -> Result<Json<Page<Recording>>, ApiError> {
    let _ = find(&state, &id)?;
    if !state.config.capture.enabled {
        return Err(ApiError::unavailable(
            "CAPTURE_DISABLED",
            "the capture worker is disabled in the configuration",
        ));
    }
    let req = PageRequest::new(p.page, p.limit)?;
    crate::api::list::time_us("since_us", p.since_us)?;
    crate::api::list::time_us("until_us", p.until_us)?;
    let oldest_first = match p.order.as_deref() {
        None | Some("newest") => false,
        Some("oldest") => true,
        Some(o) => {
            return Err(ApiError::bad_request(
                "INVALID_ORDER",
                format!("order `{o}` is not `newest` or `oldest`"),
            ));
        }
    };
    let query = Recordings {
        page: req.page.get(),
        limit: req.limit.get(),
        since_us: p.since_us,
        until_us: p.until_us,
        oldest_first,
    };
    let page = state
        .cameras
        .request(&state.bus, &id, &query, RECORDINGS_TIMEOUT)
        .await?;
    Ok(Json(Page {
        items: page.items,
        pagination: Pagination::new(req.page, req.limit, page.total),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fresh(now: u64) -> CameraStatus {
        CameraStatus {
            id: "a".into(),
            name: "A".into(),
            state: CameraState::Online,
            reason: None,
            input_fps: 15.0,
            bitrate_bps: 300_000.0,
            frames_dropped: 0,
            reconnects: 2,
            recording: true,
            recording_bytes_per_s: 40_000.0,
            disk_used_bytes: 1234,
            last_frame_at: None,
            recording_error: None,
            detect_latency_ms: None,
            updated_unix_ms: now - 1000,
            stream: None,
        }
    }

    #[test]
    fn cache_follows_topics_and_empty_payloads() {
        let c = CaptureClient::default();
        let body = serde_json::to_vec(&fresh(10_000)).unwrap();
        c.apply("watchpost", "watchpost/capture/camera/a/status", &body);
        c.apply(
            "watchpost",
            "watchpost/capture/camera/b/status",
            b"not json",
        );
        c.apply("watchpost", "watchpost/system/capture/status", b"online");
        let thermal = json!({"camera": "a", "at": "2026-11-22T10:00:00.000Z", "width": 160,
            "height": 120, "min_c": 5.1, "max_c": 65.35, "mean_c": 23.07,
            "hottest": {"x": 1, "y": 2, "celsius": 65.35},
            "coldest": {"x": 3, "y": 4, "celsius": 5.1}, "rules": []});
        c.apply(
            "watchpost",
            "watchpost/capture/camera/a/thermal",
            thermal.to_string().as_bytes(),
        );
        assert_eq!(c.thermal("a").unwrap().max_c, 65.35);
        // The REST answer carries the statistics as published.
        assert_eq!(serde_json::to_value(c.thermal("a")).unwrap(), thermal);
        c.apply("watchpost", "other/capture/camera/z/status", &body);
        assert_eq!(c.status("a").unwrap().input_fps, 15.0);
        assert!(c.status("b").is_none() && c.status("z").is_none());
        assert_eq!(c.worker_online(), Some(true));
        c.apply("watchpost", "watchpost/capture/camera/a/status", b"");
        assert!(c.status("a").is_none());
        c.apply("watchpost", "watchpost/capture/camera/a/thermal", b"");
        assert!(c.thermal("a").is_none());
        c.apply("watchpost", "watchpost/system/capture/status", b"offline");
        assert_eq!(c.worker_online(), Some(false));
    }

    #[test]
    fn fresh_status_is_the_workers() {
        let now = 10_000_000;
        let v = status_view(true, true, Some(true), Some(fresh(now)), now);
        assert_eq!(v.state, CameraState::Online);
        assert_eq!((v.input_fps, v.recording, v.reconnects), (15.0, true, 2));
        assert_eq!(serde_json::to_value(&v).unwrap()["state"], "online");
    }

    #[test]
    fn stale_or_orphaned_status_is_offline_with_counters_kept() {
        let now = 10_000_000;
        let v = status_view(true, true, Some(false), Some(fresh(now)), now);
        assert_eq!(v.state, CameraState::Offline);
        assert_eq!(
            v.reason.as_deref(),
            Some("the capture worker is not running")
        );
        assert_eq!((v.input_fps, v.recording, v.reconnects), (0.0, false, 2));
        let v = status_view(true, true, Some(true), Some(fresh(now)), now + 60_000);
        assert_eq!(v.state, CameraState::Offline);
        assert!(v.reason.unwrap().contains("for 61 s"));
    }

    #[test]
    fn disabled_and_unheard_cameras() {
        let disabled = CameraState::Disabled;
        assert_eq!(status_view(false, true, None, None, 0).state, disabled);
        assert_eq!(status_view(true, false, None, None, 0).state, disabled);
        let v = status_view(true, true, None, None, 0);
        assert_eq!(v.state, CameraState::Offline);
        assert_eq!(
            v.reason.as_deref(),
            Some("no status from the capture worker yet")
        );
    }

    #[test]
    fn every_capture_code_has_its_http_answer() {
        for &code in CaptureCode::ALL {
            let e = refused(ReplyError::new(code, "why"));
            assert_eq!(e.message, "why");
            let expected = match code {
                CaptureCode::CameraNotFound => (503, "CAMERA_NOT_RUNNING"),
                CaptureCode::NoFrame => (503, "NO_FRAME"),
                CaptureCode::InvalidQuery => (400, "INVALID_QUERY"),
                CaptureCode::InvalidCredentials => (400, "INVALID_CREDENTIALS"),
                CaptureCode::SnapshotFailed => (500, "SNAPSHOT_FAILED"),
                CaptureCode::IndexUnreadable => (500, "INDEX_UNREADABLE"),
                CaptureCode::CredentialsNotSaved => (500, "CREDENTIALS_NOT_SAVED"),
                CaptureCode::InvalidBody => (502, "CAPTURE_BAD_REQUEST"),
            };
            assert_eq!((e.status.as_u16(), e.code), expected, "{code}");
        }
        let timeout = request_error(
            "t",
            RequestError::Timeout {
                topic: "t".into(),
                timeout_ms: 5,
            },
        );
        assert_eq!(
            (timeout.status, timeout.code),
            (StatusCode::SERVICE_UNAVAILABLE, "CAPTURE_UNAVAILABLE")
        );
    }

    #[test]
    fn sources_are_described_without_credentials() {
        let rtsp = SourceView::Rtsp {
            url: without_userinfo("rtsp://u:p@h:554/a"),
            sub_url: None,
            transport: RtspTransportView::Tcp,
        };
        assert_eq!(
            serde_json::to_value(&rtsp).unwrap(),
            json!({"type": "rtsp", "url": "rtsp://h:554/a", "sub_url": null, "transport": "tcp"})
        );
        let tcp = SourceView::ThermalTcp {
            address: "127.0.0.1:9000".into(),
            fps: 9,
        };
        assert_eq!(
            serde_json::to_value(&tcp).unwrap(),
            json!({"type": "thermal_tcp", "address": "127.0.0.1:9000", "fps": 9})
        );
    }

    #[test]
    fn view_enums_spell_the_configurations_values() {
        fn same<C: Serialize + Copy, V: Serialize + From<C>>(values: &[C]) {
            for &c in values {
                assert_eq!(
                    serde_json::to_value(c).unwrap(),
                    serde_json::to_value(V::from(c)).unwrap()
                );
            }
        }
        same::<_, CameraKindView>(&[CameraKind::Visible, CameraKind::Thermal]);
        same::<_, RtspTransportView>(&[RtspTransport::Tcp, RtspTransport::Udp]);
        same::<_, RecordModeView>(&[
            RecordMode::Continuous,
            RecordMode::Event,
            RecordMode::Schedule,
            RecordMode::Off,
        ]);
    }

    #[test]
    fn the_document_describes_every_camera_route_and_answer() {
        let doc = serde_json::to_value(crate::openapi()).unwrap();
        let statuses = |path: &str, method: &str| -> Vec<String> {
            let op = &doc["paths"][format!("/api/v1{path}")][method];
            let mut v: Vec<String> = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} is not in the document"))
                .keys()
                .cloned()
                .collect();
            v.sort();
            v
        };
        // 401, 403 and 429 are the guard's (lib.rs `GuardResponses`).
        let errors = ["400", "401", "404", "409", "429", "500", "502", "503"];
        assert_eq!(statuses("/cameras", "get"), ["200", "400", "401", "429"]);
        assert_eq!(
            statuses("/cameras/{id}", "get"),
            ["200", "400", "401", "404", "429"]
        );
        assert_eq!(
            statuses("/cameras/{id}/snapshot", "get"),
            [&["200"][..], &errors].concat()
        );
        assert_eq!(
            statuses("/cameras/{id}/credentials", "put"),
            [
                "204", "400", "401", "403", "404", "409", "429", "500", "502", "503"
            ]
        );
        assert_eq!(
            statuses("/cameras/{id}/recordings", "get"),
            ["200", "400", "401", "404", "429", "500", "502", "503"]
        );
        for (path, method, role) in [
            ("/cameras", "get", "viewer"),
            ("/cameras/{id}", "get", "viewer"),
            ("/cameras/{id}/snapshot", "get", "viewer"),
            ("/cameras/{id}/recordings", "get", "viewer"),
            ("/cameras/{id}/credentials", "put", "admin"),
        ] {
            let op = &doc["paths"][format!("/api/v1{path}")][method];
            assert_eq!(op["x-watchpost-role"], role, "{method} {path}");
        }
        let jpeg = &doc["paths"]["/api/v1/cameras/{id}/snapshot"]["get"]["responses"]["200"];
        assert_eq!(
            jpeg["content"]["image/jpeg"]["schema"]["$ref"],
            "#/components/schemas/Jpeg"
        );
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["Jpeg"]["format"], "binary");
        for name in [
            "CameraView",
            "Recording",
            "ThermalStatistics",
            "CredentialsBody",
        ] {
            assert!(schemas[name].is_object(), "{name} is not in the document");
        }
    }

    #[test]
    fn urls_lose_user_information() {
        assert_eq!(without_userinfo("rtsp://u:p@h:554/a/b"), "rtsp://h:554/a/b");
        assert_eq!(without_userinfo("rtsp://h"), "rtsp://h");
        assert_eq!(without_userinfo("garbage"), "");
    }
}
