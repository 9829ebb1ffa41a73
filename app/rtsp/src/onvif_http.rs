//! The ONVIF HTTP listener: SOAP endpoints under `/onvif/` handed to the sans-IO
//! [`OnvifService`], and JPEG snapshots at the URIs GetSnapshotUri returns.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use watchpost_onvif::{CONTENT_TYPE, OnvifService, Outcome, RequestCtx};
use watchpost_runtime::Registry;

use crate::feed::Shared;
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
    /// Users for HTTP Basic on snapshots; `None` = snapshots need no credentials.
    pub snapshot_users: Option<Arc<HashMap<String, String>>>,
    pub registry: Registry,
}

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

async fn soap(
    State(st): State<HttpState>,
    Path(service): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = RequestCtx {
        host: headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string),
        now_unix: now_unix(),
    };
    let handled = {
        let mut svc = st.service.lock().unwrap_or_else(|p| p.into_inner());
        svc.handle(&body, &ctx)
    };
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

fn basic_ok(headers: &HeaderMap, users: &HashMap<String, String>) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(b64) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return false;
    };
    let Some((user, pass)) = text.split_once(':') else {
        return false;
    };
    users.get(user).is_some_and(|p| {
        p.len() == pass.len()
            && p.bytes()
                .zip(pass.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    })
}

async fn snapshot(
    State(st): State<HttpState>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(users) = &st.snapshot_users
        && !basic_ok(&headers, users)
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"watchpost\""),
            )],
            "authentication required\n",
        )
            .into_response();
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
    let result = if jpeg.is_some() { "ok" } else { "failed" };
    st.registry
        .counter(
            "watchpost_rtsp_snapshots_total",
            "Snapshots served by profile and result",
            &[("profile", token), ("result", result)],
        )
        .inc();
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
