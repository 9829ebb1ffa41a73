//! `/api/v1/cameras`: the cameras of the `capture` worker, their live status, snapshots and
//! recording index.
//!
//! The list comes from the configuration (`[capture]`); each camera's status comes from the
//! capture worker's retained topic `<prefix>/capture/camera/<id>/status`, which a hub service
//! ([`start_status_cache`]) subscribes to once and keeps in memory, together with the worker's
//! own `<prefix>/system/capture/status`: a status whose worker is gone, or that has not been
//! refreshed for [`STALE_AFTER_MS`], is reported `offline` with the reason. Snapshots and the
//! recording index are asked of the worker over the bus (`.../snapshot/set`,
//! `.../recordings/set`); when it does not answer in time the API says 503. Credentials are
//! never part of an answer: the source is described by its type and its URL without user
//! information.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{oneshot, watch};
use watchpost_bus::Retain;
use watchpost_config::capture::{CameraConfig, CameraKind, SourceConfig};
use watchpost_runtime::WorkerCtx;
use watchpost_store::{Page, Pagination};

use crate::error::ApiError;
use crate::state::HubState;

/// A status not refreshed for this long is stale (the worker republishes at least every 10 s).
pub const STALE_AFTER_MS: u64 = 30_000;
/// How long a snapshot may take: the worker waits up to 2 s for a frame, then decodes.
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(6);
/// How long the worker may take to list its index.
pub const RECORDINGS_TIMEOUT: Duration = Duration::from_secs(3);
pub const MAX_LIMIT: u32 = 500;

pub fn router() -> Router<HubState> {
    Router::new()
        .route("/cameras", get(list))
        .route("/cameras/{id}", get(one))
        .route("/cameras/{id}/snapshot", get(snapshot))
        .route("/cameras/{id}/recordings", get(recordings))
        .route("/cameras/{id}/credentials", put(put_credentials))
}

/// The capture worker's status document of one camera, as far as the API uses it (unknown
/// fields are ignored, missing ones default).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct WorkerStatus {
    pub state: String,
    pub reason: Option<String>,
    pub input_fps: f64,
    pub bitrate_bps: f64,
    pub frames_dropped: u64,
    pub reconnects: u64,
    pub recording: bool,
    pub recording_bytes_per_s: f64,
    pub disk_used_bytes: u64,
    pub last_frame_at: Option<String>,
    pub recording_error: Option<String>,
    pub detect_latency_ms: Option<f64>,
    pub updated_unix_ms: u64,
}

/// A camera's status as the API reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraStatusView {
    /// `online`, `offline`, `error`, `starting` or `disabled`.
    pub state: String,
    pub reason: Option<String>,
    pub input_fps: f64,
    pub bitrate_bps: f64,
    pub frames_dropped: u64,
    pub reconnects: u64,
    pub recording: bool,
    pub recording_bytes_per_s: f64,
    pub disk_used_bytes: u64,
    pub last_frame_at: Option<String>,
    pub recording_error: Option<String>,
    /// Mean delay from a frame's arrival to the detection ring (ms), when detection runs.
    pub detect_latency_ms: Option<f64>,
    /// When the capture worker computed the figures (ms since the Unix epoch), if ever.
    pub updated_unix_ms: Option<u64>,
}

/// What the hub has heard from the capture worker, and its requests waiting for a reply.
#[derive(Debug)]
pub struct StatusCache {
    cameras: Mutex<HashMap<String, WorkerStatus>>,
    /// Latest `.../capture/camera/<id>/thermal` statistics of thermal cameras, as published.
    thermal: Mutex<HashMap<String, serde_json::Value>>,
    /// The worker's own retained `system/capture/status` (`online`/`offline`), once heard.
    worker_online: Mutex<Option<bool>>,
    /// `<prefix>/reply/hub-<pid>/capture`: replies to this hub's commands arrive below it.
    reply_base: Mutex<Option<String>>,
    pending: Mutex<HashMap<String, oneshot::Sender<serde_json::Value>>>,
    next_request: AtomicU64,
    /// True once the reply subscription is in place.
    subscribed: watch::Sender<bool>,
}

impl Default for StatusCache {
    fn default() -> Self {
        Self {
            cameras: Mutex::default(),
            thermal: Mutex::default(),
            worker_online: Mutex::default(),
            reply_base: Mutex::default(),
            pending: Mutex::default(),
            next_request: AtomicU64::new(1),
            subscribed: watch::channel(false).0,
        }
    }
}

impl StatusCache {
    /// Hands a reply to the request waiting for it; false when `topic` is no reply of ours.
    fn take_reply(&self, topic: &str, payload: &[u8]) -> bool {
        let Some(tx) = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(topic)
        else {
            return false;
        };
        let value = serde_json::from_slice(payload).unwrap_or(serde_json::Value::Null);
        let _ = tx.send(value);
        true
    }

    /// Publishes `body` (a JSON object) with `request_id`/`reply_to` to `topic` and waits for
    /// the worker's reply, which comes through this cache's own subscription.
    async fn request(
        &self,
        bus: &watchpost_bus::Bus,
        topic: &str,
        body: serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut ready = self.subscribed.subscribe();
        let waited = tokio::time::timeout_at(deadline, ready.wait_for(|s| *s)).await;
        let base = self
            .reply_base
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (Ok(Ok(_)), Some(base)) = (waited, base) else {
            return Err("the reply subscription is not in place".into());
        };
        let serde_json::Value::Object(mut obj) = body else {
            return Err("a request is a JSON object".into());
        };
        let id = self
            .next_request
            .fetch_add(1, Ordering::Relaxed)
            .to_string();
        let reply_to = format!("{base}/{id}");
        obj.insert("request_id".into(), id.into());
        obj.insert("reply_to".into(), reply_to.clone().into());
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(reply_to.clone(), tx);
        let sent = bus
            .publish_json(topic, &serde_json::Value::Object(obj), Retain::No)
            .await;
        let result = match sent {
            Err(e) => Err(e.to_string()),
            Ok(()) => match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(v)) => Ok(v),
                _ => Err(format!(
                    "no reply on {topic} within {} ms",
                    timeout.as_millis()
                )),
            },
        };
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&reply_to);
        result
    }

    /// Applies one bus message (`.../capture/camera/<id>/status` or `.../system/capture/status`).
    pub fn apply(&self, prefix: &str, topic: &str, payload: &[u8]) {
        let Some(rest) = topic.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) else {
            return;
        };
        let levels: Vec<&str> = rest.split('/').collect();
        match levels.as_slice() {
            ["system", "capture", "status"] => {
                let online = match payload {
                    b"online" => Some(true),
                    b"offline" => Some(false),
                    _ => None,
                };
                *self.worker_online.lock().unwrap_or_else(|p| p.into_inner()) = online;
            }
            ["capture", "camera", id, "thermal"] => {
                let mut t = self.thermal.lock().unwrap_or_else(|p| p.into_inner());
                match serde_json::from_slice::<serde_json::Value>(payload) {
                    Ok(v) if v.is_object() => {
                        t.insert((*id).to_string(), v);
                    }
                    _ => {
                        t.remove(*id);
                    }
                }
            }
            ["capture", "camera", id, "status"] => {
                let mut cams = self.cameras.lock().unwrap_or_else(|p| p.into_inner());
                if payload.is_empty() {
                    cams.remove(*id);
                    return;
                }
                match serde_json::from_slice::<WorkerStatus>(payload) {
                    Ok(s) => {
                        cams.insert((*id).to_string(), s);
                    }
                    Err(e) => {
                        tracing::debug!(%topic, error = %e, "camera status is not the expected JSON")
                    }
                }
            }
            _ => {}
        }
    }

    fn get(&self, id: &str) -> Option<WorkerStatus> {
        self.cameras
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn thermal(&self, id: &str) -> Option<serde_json::Value> {
        self.thermal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn worker_online(&self) -> Option<bool> {
        *self.worker_online.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Hub service: registers this hub's status cache and keeps it filled from the bus until
/// shutdown. Registration happens before this returns, so no request finds no cache.
pub fn start_status_cache(state: &HubState) -> tokio::task::JoinHandle<()> {
    let cache = state.cameras.clone();
    let state = state.clone();
    tokio::spawn(async move {
        if !state.config.capture.enabled {
            return;
        }
        let bus = &state.bus;
        // Replies come on a subscription of our own: `Bus::request_json` builds its reply
        // filter with `Bus::topic`, which escapes the `#`, so its replies never arrive.
        let reply_base = format!("{}/reply/hub-{}/capture", bus.prefix(), std::process::id());
        let replies = bus.subscribe(&format!("{reply_base}/#")).await;
        let cams = bus
            .subscribe(&format!("{}/capture/camera/+/status", bus.prefix()))
            .await;
        let worker = bus
            .subscribe(&bus.topic(&["system", "capture", "status"]))
            .await;
        let thermal = bus
            .subscribe(&format!("{}/capture/camera/+/thermal", bus.prefix()))
            .await;
        let (Ok(mut cams), Ok(mut worker), Ok(mut replies), Ok(mut thermal)) =
            (cams, worker, replies, thermal)
        else {
            tracing::warn!("camera status cache: cannot subscribe to the bus");
            return;
        };
        *cache.reply_base.lock().unwrap_or_else(|p| p.into_inner()) = Some(reply_base);
        cache.subscribed.send_replace(true);
        let prefix = bus.prefix().to_string();
        let shutdown = state.ctx.shutdown().clone();
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => return,
                m = cams.recv() => m,
                m = worker.recv() => m,
                m = replies.recv() => m,
                m = thermal.recv() => m,
            };
            let Some(msg) = msg else { return };
            if !cache.take_reply(&msg.topic, &msg.payload) {
                cache.apply(&prefix, &msg.topic, &msg.payload);
            }
        }
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What the API says about a camera, from its configuration and what the worker published.
pub fn status_view(
    capture_enabled: bool,
    camera_enabled: bool,
    worker_online: Option<bool>,
    heard: Option<WorkerStatus>,
    now_ms: u64,
) -> CameraStatusView {
    let mut v = CameraStatusView {
        state: "offline".into(),
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
        v.state = "disabled".into();
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
        v.state = if s.state.is_empty() {
            "offline".into()
        } else {
            s.state
        };
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

fn source_json(c: &CameraConfig) -> serde_json::Value {
    match &c.source {
        SourceConfig::Rtsp {
            url,
            sub_url,
            transport,
            ..
        } => json!({
            "type": "rtsp",
            "url": without_userinfo(url),
            "sub_url": sub_url.as_deref().map(without_userinfo),
            "transport": transport,
        }),
        SourceConfig::V4l2 { device, .. } => json!({"type": "v4l2", "device": device}),
        SourceConfig::HttpMjpeg { url, fps } => {
            json!({"type": "http_mjpeg", "url": without_userinfo(url), "fps": fps})
        }
        SourceConfig::ThermalTcp { address, fps } => {
            json!({"type": "thermal_tcp", "address": address, "fps": fps})
        }
    }
}

fn camera_json(
    state: &HubState,
    cache: Option<&StatusCache>,
    c: &CameraConfig,
) -> serde_json::Value {
    let cap = &state.config.capture;
    let status = status_view(
        cap.enabled,
        c.enabled,
        cache.and_then(StatusCache::worker_online),
        cache.and_then(|k| k.get(c.id.as_str())),
        now_ms(),
    );
    json!({
        "id": c.id.as_str(),
        "name": if c.name.is_empty() { c.id.as_str() } else { c.name.as_str() },
        "enabled": c.enabled,
        "kind": c.kind,
        "source": source_json(c),
        "credentials_configured": c.credentials.is_some(),
        "record_mode": c.record.mode,
        "detect": c.detect.enabled,
        "status": status,
        "thermal": if c.kind == CameraKind::Thermal {
            cache.and_then(|k| k.thermal(c.id.as_str()))
        } else {
            None
        },
    })
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

fn parse_page(page: Option<u32>, limit: Option<u32>) -> Result<(u32, u32), ApiError> {
    let page = NonZeroU32::new(page.unwrap_or(1))
        .ok_or_else(|| ApiError::bad_request("INVALID_PAGE", "page counts from 1"))?;
    let limit = NonZeroU32::new(limit.unwrap_or(50))
        .filter(|l| l.get() <= MAX_LIMIT)
        .ok_or_else(|| {
            ApiError::bad_request("INVALID_LIMIT", format!("limit must be 1..={MAX_LIMIT}"))
        })?;
    Ok((page.get(), limit.get()))
}

fn pagination(page: u32, limit: u32, total: u64) -> Pagination {
    Pagination {
        page,
        limit,
        total,
        total_pages: total.div_ceil(u64::from(limit)),
    }
}

/// Query parameters of `GET /api/v1/cameras`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    page: Option<u32>,
    limit: Option<u32>,
}

async fn list(
    State(state): State<HubState>,
    Query(p): Query<ListParams>,
) -> Result<Json<Page<serde_json::Value>>, ApiError> {
    let (page, limit) = parse_page(p.page, p.limit)?;
    let cache = Some(state.cameras.clone());
    let cams = &state.config.capture.cameras;
    let items: Vec<serde_json::Value> = cams
        .iter()
        .skip((page as usize - 1).saturating_mul(limit as usize))
        .take(limit as usize)
        .map(|c| camera_json(&state, cache.as_deref(), c))
        .collect();
    Ok(Json(Page {
        items,
        pagination: pagination(page, limit, cams.len() as u64),
    }))
}

async fn one(
    State(state): State<HubState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = find(&state, &id)?;
    let cache = Some(state.cameras.clone());
    Ok(Json(camera_json(&state, cache.as_deref(), c)))
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

/// Sends a command to the capture worker and maps a missing or negative answer to an error.
async fn ask(
    state: &HubState,
    id: &str,
    command: &str,
    body: serde_json::Value,
    timeout: Duration,
) -> Result<serde_json::Value, ApiError> {
    let topic = state.bus.topic(&["capture", "camera", id, command, "set"]);
    let cache = Some(state.cameras.clone()).ok_or_else(|| {
        ApiError::unavailable("CAPTURE_UNAVAILABLE", "the camera service is not running")
    })?;
    let answer = cache
        .request(&state.bus, &topic, body, timeout)
        .await
        .map_err(|e| {
            ApiError::unavailable(
                "CAPTURE_UNAVAILABLE",
                format!("the capture worker did not answer: {e}"),
            )
        })?;
    if answer.get("ok").and_then(|v| v.as_bool()) == Some(true) {
        return Ok(answer);
    }
    let code = answer.get("code").and_then(|v| v.as_str()).unwrap_or("");
    let message = answer
        .get("error")
        .and_then(|v| v.as_str())
        .unwrap_or("the capture worker refused the request")
        .to_string();
    Err(match code {
        "CAMERA_NOT_FOUND" => ApiError::unavailable("CAMERA_NOT_RUNNING", message),
        "NO_FRAME" => ApiError::unavailable("NO_FRAME", message),
        "INVALID_QUERY" => ApiError::bad_request("INVALID_QUERY", message),
        "INVALID_CREDENTIALS" => ApiError::bad_request("INVALID_CREDENTIALS", message),
        "CREDENTIALS_NOT_SAVED" => ApiError::internal("CREDENTIALS_NOT_SAVED", message),
        "INDEX_UNREADABLE" => ApiError::internal("INDEX_UNREADABLE", message),
        _ => ApiError::internal("SNAPSHOT_FAILED", message),
    })
}

async fn snapshot(
    State(state): State<HubState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let c = find(&state, &id)?;
    require_running(&state, c)?;
    let answer = ask(&state, &id, "snapshot", json!({}), SNAPSHOT_TIMEOUT).await?;
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
    let taken_at = answer
        .get("taken_at")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let mut resp = (
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        jpeg,
    )
        .into_response();
    if let Ok(v) = header::HeaderValue::from_str(&taken_at) {
        resp.headers_mut().insert("x-snapshot-taken-at", v);
    }
    Ok(resp)
}

/// Body of `PUT /api/v1/cameras/{id}/credentials`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsBody {
    username: String,
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
async fn put_credentials(
    State(state): State<HubState>,
    Path(id): Path<String>,
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
    if body.username.is_empty() || body.username.contains(':') {
        return Err(ApiError::bad_request(
            "INVALID_CREDENTIALS",
            "the username must be non-empty and without `:`",
        ));
    }
    ask(
        &state,
        &id,
        "credentials",
        json!({"username": body.username, "password": body.password}),
        RECORDINGS_TIMEOUT,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query parameters of `GET /api/v1/cameras/{id}/recordings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingParams {
    page: Option<u32>,
    limit: Option<u32>,
    /// Segments ending after this time (µs since the epoch).
    since_us: Option<u64>,
    /// Segments starting before this time.
    until_us: Option<u64>,
    /// `newest` (default) or `oldest` first.
    order: Option<String>,
}

async fn recordings(
    State(state): State<HubState>,
    Path(id): Path<String>,
    Query(p): Query<RecordingParams>,
) -> Result<Json<Page<serde_json::Value>>, ApiError> {
    let _ = find(&state, &id)?;
    if !state.config.capture.enabled {
        return Err(ApiError::unavailable(
            "CAPTURE_DISABLED",
            "the capture worker is disabled in the configuration",
        ));
    }
    let (page, limit) = parse_page(p.page, p.limit)?;
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
    let body = json!({
        "page": page, "limit": limit, "since_us": p.since_us, "until_us": p.until_us,
        "oldest_first": oldest_first,
    });
    let answer = ask(&state, &id, "recordings", body, RECORDINGS_TIMEOUT).await?;
    let total = answer.get("total").and_then(|v| v.as_u64()).unwrap_or(0);
    let items = match answer.get("items") {
        Some(serde_json::Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    Ok(Json(Page {
        items,
        pagination: pagination(page, limit, total),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fresh(now: u64) -> WorkerStatus {
        WorkerStatus {
            state: "online".into(),
            input_fps: 15.0,
            bitrate_bps: 300_000.0,
            recording: true,
            recording_bytes_per_s: 40_000.0,
            reconnects: 2,
            disk_used_bytes: 1234,
            updated_unix_ms: now - 1000,
            ..Default::default()
        }
    }

    #[test]
    fn cache_follows_topics_and_empty_payloads() {
        let c = StatusCache::default();
        let body = serde_json::to_vec(
            &json!({"id": "a", "state": "online", "input_fps": 5.0, "extra": 1}),
        )
        .unwrap();
        c.apply("watchpost", "watchpost/capture/camera/a/status", &body);
        c.apply(
            "watchpost",
            "watchpost/capture/camera/b/status",
            b"not json",
        );
        c.apply("watchpost", "watchpost/system/capture/status", b"online");
        c.apply(
            "watchpost",
            "watchpost/capture/camera/a/thermal",
            br#"{"max_c": 65.35}"#,
        );
        assert_eq!(c.thermal("a").unwrap()["max_c"], 65.35);
        c.apply("watchpost", "other/capture/camera/z/status", &body);
        assert_eq!(c.get("a").unwrap().input_fps, 5.0);
        assert!(c.get("b").is_none() && c.get("z").is_none());
        assert_eq!(c.worker_online(), Some(true));
        c.apply("watchpost", "watchpost/capture/camera/a/status", b"");
        assert!(c.get("a").is_none());
    }

    #[test]
    fn fresh_status_is_the_workers() {
        let now = 10_000_000;
        let v = status_view(true, true, Some(true), Some(fresh(now)), now);
        assert_eq!(v.state, "online");
        assert_eq!((v.input_fps, v.recording, v.reconnects), (15.0, true, 2));
    }

    #[test]
    fn stale_or_orphaned_status_is_offline_with_counters_kept() {
        let now = 10_000_000;
        let v = status_view(true, true, Some(false), Some(fresh(now)), now);
        assert_eq!(v.state, "offline");
        assert_eq!(
            v.reason.as_deref(),
            Some("the capture worker is not running")
        );
        assert_eq!((v.input_fps, v.recording, v.reconnects), (0.0, false, 2));
        let v = status_view(true, true, Some(true), Some(fresh(now)), now + 60_000);
        assert_eq!(v.state, "offline");
        assert!(v.reason.unwrap().contains("for 61 s"));
    }

    #[test]
    fn disabled_and_unheard_cameras() {
        assert_eq!(status_view(false, true, None, None, 0).state, "disabled");
        assert_eq!(status_view(true, false, None, None, 0).state, "disabled");
        let v = status_view(true, true, None, None, 0);
        assert_eq!(v.state, "offline");
        assert_eq!(
            v.reason.as_deref(),
            Some("no status from the capture worker yet")
        );
    }

    #[test]
    fn urls_lose_user_information() {
        assert_eq!(without_userinfo("rtsp://u:p@h:554/a/b"), "rtsp://h:554/a/b");
        assert_eq!(without_userinfo("rtsp://h"), "rtsp://h");
        assert_eq!(without_userinfo("garbage"), "");
    }
}
