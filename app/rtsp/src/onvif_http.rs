//! The ONVIF HTTP listener: SOAP endpoints under `/onvif/` handed to the sans-IO
//! [`OnvifService`], and JPEG snapshots at the URIs GetSnapshotUri returns.
//!
//! Snapshots take HTTP Digest or Basic credentials ([`HttpAuth`]). The snapshot of a camera
//! known to be offline ([`SourceHealth`], what its mount answers from) is refused with 503 at
//! once rather than after a read that times out (10 s): Home Assistant gives up on a snapshot
//! after 5 s and probes the first profile's twice while it sets the device up. A
//! `PullMessages` with nothing queued is held here until an event arrives
//! ([`HttpState::events_wake`]), its timeout passes or the worker stops. An accepted `SystemReboot` is answered first; the
//! restart of the appliance is asked of the supervisor right after.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::Notify;
use watchpost_onvif::http_auth::HttpAuth;
use watchpost_onvif::{CONTENT_TYPE, Handled, OnvifService, Outcome, RequestCtx, Then};
use watchpost_runtime::{Registry, WorkerCtx};

use crate::feed::Shared;
use crate::health::{SourceHealth, Verdict};
use crate::sources::{ThermalView, Upstream};

/// Request bodies larger than this are refused before parsing.
const MAX_BODY: usize = 64 * 1024;
/// A capture worker snapshot younger than this is served as is.
const SNAPSHOT_FRESH: Duration = Duration::from_secs(30);
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the handlers need.
#[derive(Clone)]
pub struct HttpState {
    pub service: Arc<Mutex<OnvifService>>,
    pub shared: Arc<Shared>,
    pub upstreams: Arc<Vec<Upstream>>,
    pub thermal: Arc<Vec<ThermalView>>,
    /// Where the capture worker keeps `<camera>.jpg`.
    pub snapshots_dir: PathBuf,
    /// HTTP Digest/Basic checking of snapshots; `None` = snapshots need no credentials.
    pub snapshot_auth: Option<Arc<Mutex<HttpAuth>>>,
    /// Whether each camera mount's source can be read (the RTSP server's knowledge).
    pub health: Arc<SourceHealth>,
    pub registry: Registry,
    /// Notified whenever an event is queued: waiting `PullMessages` look again.
    pub events_wake: Arc<Notify>,
    /// The worker: its shutdown ends waiting pulls; SystemReboot asks its supervisor.
    pub worker: Arc<WorkerCtx>,
}

/// Realm of the snapshot credentials.
pub const REALM: &str = "watchpost";

/// The snapshot checker for `users` (user → clear-text password), with a random nonce key.
pub fn snapshot_auth(users: HashMap<String, String>) -> Arc<Mutex<HttpAuth>> {
    let mut secret = [0u8; 32];
    secret[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    secret[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    Arc::new(Mutex::new(HttpAuth::new(users, REALM, secret)))
}

/// The users with the admin role (SystemReboot, SetSystemDateAndTime).
pub fn admin_users(config: &watchpost_config::Config) -> Vec<String> {
    config
        .auth
        .users
        .iter()
        .filter(|u| u.role == watchpost_config::core::Role::Admin)
        .map(|u| u.name.to_string())
        .collect()
}

/// How long after answering SystemReboot the restart is asked for (the reply goes out first).
const REBOOT_DELAY: Duration = Duration::from_millis(500);

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState").finish_non_exhaustive()
    }
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/onvif/{service}", post(soap))
        .route("/onvif/snapshot/{file}", get(snapshot))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Holds a PullMessages until it can be answered, its timeout passes or the worker stops.
async fn wait_for_events(
    st: &HttpState,
    wait: watchpost_onvif::PullWait,
    host: Option<String>,
) -> Handled {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait.timeout_s.max(0) as u64);
    let shutdown = st.worker.shutdown().clone();
    loop {
        let notified = st.events_wake.notified();
        tokio::pin!(notified);
        // Registered before looking, so an event queued in between is not missed.
        notified.as_mut().enable();
        let ready = {
            let svc = st.service.lock().unwrap_or_else(|p| p.into_inner());
            svc.pull_ready(&wait, now_unix())
        };
        if ready {
            break;
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => break,
            _ = shutdown.cancelled() => break,
        }
    }
    let ctx = RequestCtx {
        host,
        now_unix: now_unix(),
    };
    let mut svc = st.service.lock().unwrap_or_else(|p| p.into_inner());
    svc.finish_pull(&wait, &ctx)
}

async fn soap(
    State(st): State<HttpState>,
    Path(service): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let ctx = RequestCtx {
        host: host.clone(),
        now_unix: now_unix(),
    };
    let mut handled = {
        let mut svc = st.service.lock().unwrap_or_else(|p| p.into_inner());
        svc.handle_endpoint(&service, &body, &ctx)
    };
    match handled.then {
        Then::Reply => {}
        Then::WaitForEvents(wait) => handled = wait_for_events(&st, wait, host).await,
        Then::Reboot => {
            let user = match &handled.outcome {
                Outcome::Answered { user: Some(u) } => u.clone(),
                _ => "-".into(),
            };
            tracing::warn!(%user, "ONVIF SystemReboot: restarting the appliance");
            let worker = st.worker.clone();
            tokio::spawn(async move {
                tokio::time::sleep(REBOOT_DELAY).await;
                if !worker.request_appliance_restart(format!("ONVIF SystemReboot by {user}")) {
                    tracing::warn!("no supervisor to restart the appliance (standalone worker)");
                }
            });
        }
    }
    let result = match &handled.outcome {
        Outcome::Answered { .. } => "ok",
        Outcome::Malformed(e) => {
            tracing::debug!(%service, error = %e, "malformed ONVIF request");
            "malformed"
        }
        Outcome::Unauthorized(e) => {
            tracing::info!(%service, operation = %handled.operation, reason = %e, "ONVIF request not authorized");
            "unauthorized"
        }
        Outcome::Fault(f) => {
            tracing::debug!(%service, operation = %handled.operation, reason = %f.reason, "ONVIF fault");
            "fault"
        }
    };
    st.registry
        .counter(
            "watchpost_rtsp_onvif_requests_total",
            "ONVIF SOAP requests by operation and result",
            &[("operation", &handled.operation), ("result", result)],
        )
        .inc();
    let status = StatusCode::from_u16(handled.reply.status).unwrap_or(StatusCode::OK);
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        handled.reply.body,
    )
        .into_response()
}

/// Checks a snapshot request's credentials; the 401 to send when they do not pass.
fn snapshot_unauthorized(st: &HttpState, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
    let auth = st.snapshot_auth.as_ref()?;
    let now = now_unix();
    let target = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let mut auth = auth.lock().unwrap_or_else(|p| p.into_inner());
    let err = match auth.check("GET", target, authorization, now) {
        Ok(_) => return None,
        Err(e) => e,
    };
    let result = if authorization.is_none() {
        "challenged"
    } else {
        tracing::info!(reason = %err, "snapshot request not authorized");
        "unauthorized"
    };
    st.registry
        .counter(
            "watchpost_rtsp_snapshot_auth_total",
            "Snapshot requests refused for credentials (challenged: none were sent)",
            &[("result", result)],
        )
        .inc();
    let mut response = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
    for value in auth.challenges(now, err.is_stale()) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().append(header::WWW_AUTHENTICATE, v);
        }
    }
    Some(response)
}

async fn snapshot(
    State(st): State<HttpState>,
    Path(file): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = snapshot_unauthorized(&st, &uri, &headers) {
        return refused;
    }
    let Some(token) = file.strip_suffix(".jpg") else {
        return (StatusCode::NOT_FOUND, "no such snapshot\n").into_response();
    };
    let jpeg = if token == "dashboard" {
        let frame = st
            .shared
            .last_frame
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match frame {
            Some(f) => tokio::task::spawn_blocking(move || encode_rgb(f.width, f.height, &f.data))
                .await
                .ok()
                .flatten(),
            None => None,
        }
    } else if let Some(t) = st.thermal.iter().find(|t| t.token() == token).cloned() {
        tokio::task::spawn_blocking(move || {
            let (layout, data) = crate::thermal::latest_frame(&t.ring)?;
            encode_rgb(layout.width, layout.height, &data)
        })
        .await
        .ok()
        .flatten()
    } else if let Some(u) = st.upstreams.iter().find(|u| u.token() == token).cloned() {
        if let Verdict::Offline { reason } = st.health.verdict(&u.path) {
            count_snapshot(&st.registry, token, "offline");
            tracing::debug!(profile = token, %reason, "camera offline; snapshot answered 503");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("no picture: {reason}\n"),
            )
                .into_response();
        }
        let fresh = (u.variant == "main")
            .then(|| st.snapshots_dir.join(format!("{}.jpg", u.camera)))
            .and_then(|p| {
                let age = std::fs::metadata(&p)
                    .ok()?
                    .modified()
                    .ok()?
                    .elapsed()
                    .ok()?;
                (age < SNAPSHOT_FRESH).then_some(p)
            });
        match fresh {
            Some(p) => tokio::fs::read(p).await.ok(),
            None => tokio::task::spawn_blocking(move || grab_upstream(&u))
                .await
                .ok()
                .flatten(),
        }
    } else {
        return (StatusCode::NOT_FOUND, "no such snapshot\n").into_response();
    };
    count_snapshot(
        &st.registry,
        token,
        if jpeg.is_some() { "ok" } else { "failed" },
    );
    match jpeg {
        Some(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"))],
            bytes,
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no picture available yet\n",
        )
            .into_response(),
    }
}

/// Counts one snapshot request: `ok`, `failed` (no picture could be had) or `offline`
/// (refused at once: the camera is known to be offline).
fn count_snapshot(registry: &Registry, profile: &str, result: &str) {
    registry
        .counter(
            "watchpost_rtsp_snapshots_total",
            "Snapshots served by profile and result",
            &[("profile", profile), ("result", result)],
        )
        .inc();
}

/// JPEG of an RGB picture (rows in GStreamer's stride).
fn encode_rgb(width: u32, height: u32, data: &[u8]) -> Option<Vec<u8>> {
    let caps = crate::server::rgb_caps(width, height, 1, 1);
    let buffer = gst::Buffer::from_slice(data.to_vec());
    let sample = gst::Sample::builder().buffer(&buffer).caps(&caps).build();
    let out = gstreamer_video::convert_sample(
        &sample,
        &gst::Caps::builder("image/jpeg").build(),
        Some(gst::ClockTime::from_seconds(5)),
    )
    .ok()?;
    let map = out.buffer()?.map_readable().ok()?;
    Some(map.as_slice().to_vec())
}

/// One decoded frame from the camera, as JPEG (a separate short upstream read).
fn grab_upstream(u: &Upstream) -> Option<Vec<u8>> {
    let launch = if u.shm_socket.is_some() {
        "shmsrc name=src is-live=true do-timestamp=true ! video/x-h264,stream-format=byte-stream,alignment=au ! h264parse ! avdec_h264 ! videoconvert ! jpegenc ! appsink name=sink max-buffers=1 sync=false"
    } else {
        "rtspsrc name=src latency=0 protocols=tcp ! rtph264depay ! h264parse ! avdec_h264 ! videoconvert ! jpegenc ! appsink name=sink max-buffers=1 sync=false"
    };
    let pipeline = gst::parse::launch(launch)
        .ok()?
        .downcast::<gst::Pipeline>()
        .ok()?;
    let src = pipeline.by_name("src")?;
    if let Some(socket) = &u.shm_socket {
        src.set_property("socket-path", socket.to_string_lossy().as_ref());
    } else {
        src.set_property("location", &u.url);
        if let Some(user) = &u.username {
            src.set_property("user-id", user);
        }
        if let Some(pass) = &u.password {
            src.set_property("user-pw", pass);
        }
    }
    let sink = pipeline
        .by_name("sink")?
        .downcast::<gst_app::AppSink>()
        .ok()?;
    pipeline.set_state(gst::State::Playing).ok()?;
    let sample = sink.try_pull_sample(gst::ClockTime::from_nseconds(
        SNAPSHOT_TIMEOUT.as_nanos() as u64
    ));
    let _ = pipeline.set_state(gst::State::Null);
    let sample = sample?;
    let map = sample.buffer()?.map_readable().ok()?;
    Some(map.as_slice().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use watchpost_contract::capture::{CameraState, CameraStatus};
    use watchpost_onvif::{AuthPolicy, Authenticator};

    fn state(dir: &std::path::Path) -> HttpState {
        let config: watchpost_config::Config = toml::from_str(&format!(
            r#"
[system]
data_dir = "{}"
[capture]
[[capture.cameras]]
id = "gate"
source = {{ type = "rtsp", url = "rtsp://127.0.0.1:9/stream" }}
"#,
            dir.display()
        ))
        .expect("test config");
        let ups = crate::sources::upstreams(&config);
        let model = crate::sources::device_model(&config, &ups, &[], 8000, 8554, "1.0");
        let users = HashMap::from([("admin".to_string(), "pw".to_string())]);
        let health = SourceHealth::new(ups.iter().map(|u| {
            (
                u.path.clone(),
                crate::health::MountHealth::new(&u.camera, None),
            )
        }));
        HttpState {
            service: Arc::new(Mutex::new(OnvifService::new(
                model,
                Authenticator::new(users.clone(), AuthPolicy::default()),
                true,
            ))),
            shared: Arc::default(),
            upstreams: Arc::new(ups),
            thermal: Arc::default(),
            snapshots_dir: dir.to_path_buf(),
            snapshot_auth: Some(snapshot_auth(users)),
            health,
            registry: Registry::new(),
            events_wake: Arc::default(),
            worker: Arc::new(
                WorkerCtx::from_env("rtsp", tokio_util::sync::CancellationToken::new())
                    .expect("standalone worker context"),
            ),
        }
    }

    fn offline_status(at: u64) -> CameraStatus {
        CameraStatus {
            id: "gate".into(),
            name: "Gate".into(),
            state: CameraState::Offline,
            reason: Some("connection refused".into()),
            input_fps: 0.0,
            bitrate_bps: 0.0,
            frames_dropped: 0,
            reconnects: 3,
            recording: false,
            recording_bytes_per_s: 0.0,
            disk_used_bytes: 0,
            last_frame_at: None,
            recording_error: None,
            detect_latency_ms: None,
            updated_unix_ms: at,
            stream: None,
        }
    }

    async fn get(st: &HttpState, file: &str, auth: Option<&str>) -> (StatusCode, String) {
        let uri: Uri = format!("/onvif/snapshot/{file}")
            .parse()
            .expect("snapshot uri");
        let mut headers = HeaderMap::new();
        if let Some(a) = auth {
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(a).expect("header"),
            );
        }
        let r = snapshot(State(st.clone()), Path(file.to_string()), uri, headers).await;
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), 4096)
            .await
            .expect("snapshot body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// A camera the capture worker reports offline: its snapshot is refused at once with the
    /// reason (no read of the camera that would time out), after the credentials are checked.
    #[tokio::test]
    async fn snapshot_of_a_camera_known_offline_is_refused_at_once() {
        let dir = std::env::temp_dir().join(format!("wp-snap-{}", uuid::Uuid::new_v4()));
        let st = state(&dir);
        st.health
            .capture_status(&offline_status(crate::health::now_unix_ms()));
        // "admin:pw"
        let basic = Some("Basic YWRtaW46cHc=");
        let (status, body) = get(&st, "cam_gate_main.jpg", basic).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body, "no picture: camera offline: connection refused\n",
            "{body}"
        );
        let metrics = st.registry.render();
        assert!(
            metrics.contains(
                r#"watchpost_rtsp_snapshots_total{profile="cam_gate_main",result="offline"} 1"#
            ),
            "{metrics}"
        );
        // Credentials first: without them, a challenge, not the camera's state.
        let (status, body) = get(&st, "cam_gate_main.jpg", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(!body.contains("offline"), "{body}");
    }
}
