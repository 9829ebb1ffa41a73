//! `/cameras`: every configured camera with its latest snapshot (refreshed by the page's
//! script every 10 s), its status and the appliance's own RTSP restream of it
//! (`rtsp://<host>:<port>/cameras/<id>`, the rtsp worker's mount naming).

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};

use crate::api::cameras::CameraView;
use crate::pages::fmt;
use crate::pages::layout::{self, PageCtx};
use crate::state::HubState;

/// What the page shows.
#[derive(Debug, Clone, Default)]
pub struct CamerasData {
    pub cameras: Vec<CameraView>,
    /// The RTSP server's port, when the rtsp worker is enabled.
    pub rtsp_port: Option<u16>,
}

pub async fn gather(state: &HubState) -> CamerasData {
    let cameras = state
        .config
        .capture
        .cameras
        .iter()
        .map(|c| crate::api::cameras::camera_view(state, c))
        .collect();
    let rtsp_port = if state.config.rtsp.enabled {
        // The port the worker bound (it may be an ephemeral one), else the configured one.
        let bound = state.snapshot().await.ok().and_then(|s| {
            s.listeners
                .get("rtsp.rtsp")
                .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                .map(|a| a.port())
        });
        bound.or(Some(state.config.rtsp.listen.addr().port()))
    } else {
        None
    };
    CamerasData { cameras, rtsp_port }
}

/// The RTSP URL of camera `id` on `host`.
pub fn rtsp_url(host: &str, port: u16, id: &str) -> String {
    format!("rtsp://{host}:{port}/cameras/{}", layout::url_encode(id))
}

fn snapshot_url(id: &str) -> String {
    format!("/api/v1/cameras/{}/snapshot", layout::url_encode(id))
}

/// One camera's figure: snapshot, name, status.
pub fn figure(c: &CameraView, big: bool) -> Markup {
    let state = c.status.state.as_str();
    let class = match state {
        "online" => "ok",
        "starting" => "warn",
        "disabled" => "muted",
        _ => "bad",
    };
    html! {
        figure {
            @if c.enabled {
                img src=(snapshot_url(&c.id)) data-refresh=(snapshot_url(&c.id))
                    alt=(format!("Latest snapshot of camera {}", c.name))
                    width=(if big { 640 } else { 320 }) height=(if big { 360 } else { 180 }) loading="lazy";
            }
            figcaption {
                strong { (c.name) } " · "
                span class=(class) { (state) }
                @if let Some(r) = &c.status.reason { br; span class="muted" { (r) } }
            }
        }
    }
}

pub fn render(ctx: &PageCtx, data: &CamerasData) -> Markup {
    html! {
        @if data.cameras.is_empty() {
            p class="muted" { "No cameras are configured ([[capture.cameras]])." }
        }
        div class="cams" {
            @for c in &data.cameras {
                section class="card" aria-label=(format!("Camera {}", c.name)) {
                    (figure(c, true))
                    dl class="kv" {
                        dt { "Frame rate" } dd { (format!("{:.1} fps", c.status.input_fps)) }
                        dt { "Bit rate" } dd { (fmt::bytes((c.status.bitrate_bps / 8.0) as u64)) "/s" }
                        dt { "Recording" } dd { (if c.status.recording { "yes" } else { "no" }) }
                        dt { "Last frame" } dd { (c.status.last_frame_at.as_deref().unwrap_or("–")) }
                        @if let (Some(port), true) = (data.rtsp_port, c.enabled) {
                            dt { "Live stream" }
                            dd { a href=(rtsp_url(&ctx.host, port, &c.id)) { (rtsp_url(&ctx.host, port, &c.id)) } }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /cameras`.
pub async fn get(State(state): State<HubState>, ctx: PageCtx) -> Response {
    let data = gather(&state).await;
    layout::page("Cameras", &ctx, render(&ctx, &data))
}

#[cfg(test)]
mod tests {
    use watchpost_config::Role;

    use super::*;
    use crate::pages::layout::tests_support::ctx;

    #[test]
    fn renders_empty_state_and_rtsp_urls() {
        let h = render(&ctx(Role::Viewer), &CamerasData::default()).into_string();
        assert!(h.contains("No cameras are configured"));
        assert_eq!(
            rtsp_url("box.local", 8554, "yard"),
            "rtsp://box.local:8554/cameras/yard"
        );
    }
}
