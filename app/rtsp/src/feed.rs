//! The dashboard feeder: renders frames from the bus state at the configured rate (and at once
//! when the set of alarms changes) and pushes them into every live dashboard media.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use watchpost_dashboard::{DashboardState, Frame, Pager, Renderer};
use watchpost_runtime::Registry;

use crate::server::AppSrcs;

/// State shared between the bus loop, the feeder and the snapshot handler.
#[derive(Debug, Default)]
pub struct Shared {
    pub state: Mutex<DashboardState>,
    /// The most recent frame (for snapshots).
    pub last_frame: Mutex<Option<Arc<Frame>>>,
    /// Signalled when an alarm appears or clears (render without waiting for the tick).
    pub urgent: Notify,
    /// Where the hub keeps the first-boot setup code until the appliance is claimed
    /// (`watchpost_hub::auth::claim`); shown on the dashboard while it exists.
    pub setup_code_file: Option<std::path::PathBuf>,
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Runs until `shutdown`: renders at `fps` and feeds `sources`.
pub async fn run(
    renderer: Renderer,
    fps: u32,
    page_interval_ms: u64,
    shared: Arc<Shared>,
    sources: AppSrcs,
    registry: Registry,
    shutdown: CancellationToken,
) {
    let renderer = Arc::new(renderer);
    let mut setup_checked: Option<Instant> = None;
    let pager = Pager::new(page_interval_ms);
    let start = Instant::now();
    let render_seconds = registry.gauge(
        "watchpost_rtsp_dashboard_render_seconds",
        "Time to render the last dashboard frame",
        &[],
    );
    let frames = registry.counter(
        "watchpost_rtsp_dashboard_frames_total",
        "Dashboard frames rendered",
        &[],
    );
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(fps.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
            _ = shared.urgent.notified() => {}
        }
        // The hub keeps the first-boot setup code in this file until the appliance is claimed.
        if let Some(file) = &shared.setup_code_file
            && setup_checked.is_none_or(|t| t.elapsed() >= Duration::from_secs(2))
        {
            setup_checked = Some(Instant::now());
            let code = std::fs::read_to_string(file)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty());
            shared
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .setup_code = code;
        }
        let r = renderer.clone();
        let sh = shared.clone();
        let elapsed_ms = start.elapsed().as_millis() as u64;
        let rendered = tokio::task::spawn_blocking(move || {
            let t0 = Instant::now();
            let state = sh.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let page = pager.page_at(elapsed_ms, r.page_count(&state));
            let mut frame = Frame::new(r.width(), r.height());
            r.render(&state, page, now_unix(), &mut frame);
            (Arc::new(frame), t0.elapsed())
        })
        .await;
        let Ok((frame, took)) = rendered else {
            tracing::error!("dashboard render task failed");
            continue;
        };
        render_seconds.set(took.as_secs_f64());
        frames.inc();
        *shared.last_frame.lock().unwrap_or_else(|p| p.into_inner()) = Some(frame.clone());
        push(&sources, &frame);
        tracing::trace!(
            render_ms = took.as_millis() as u64,
            "dashboard frame pushed"
        );
    }
}

/// Pushes one frame into every live appsrc, forgetting those whose media has gone.
fn push(sources: &AppSrcs, frame: &Frame) {
    let mut list = sources.lock().unwrap_or_else(|p| p.into_inner());
    if list.is_empty() {
        return;
    }
    let buffer = gst::Buffer::from_slice(frame.data.clone());
    list.retain(|src| match src.push_buffer(buffer.clone()) {
        Ok(_) => true,
        // Flushing also happens while a media prepares; the media's `unprepared` handler
        // removes sources that are gone for good.
        Err(gst::FlowError::Flushing) => true,
        Err(e) => {
            tracing::debug!(error = ?e, "dashboard appsrc refused a frame; dropping it");
            false
        }
    });
}
