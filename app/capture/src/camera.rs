//! One camera at run time: its source pipeline with reconnect and capped backoff, a stall
//! watchdog, and the status it reports. A camera's failure stays with that camera: each has
//! its own pipeline, recorder thread, state and reason.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use tokio_util::sync::CancellationToken;

use crate::mp4::{Codec, TrackInfo};
use crate::pipeline::{
    self, DetectBranch, HttpMjpegSource, Outputs, RtspSource, ThermalInput, V4l2Source,
};
use crate::recorder::{RecorderMsg, RecorderStats};
use crate::rtsp_client::{self, Ended, Target};
use crate::thermal::{ThermalProcessor, ThermalStats};
use crate::time::{SystemClock, WallClock, rfc3339};
use watchpost_frame_ring::RingWriter;
use watchpost_frame_ring::{PixelFormat, RingLayout};
use watchpost_thermal::Clock as _;

/// The status document of a camera and its state are the capture contract's: the worker
/// publishes them as they are.
pub use watchpost_contract::capture::{CameraState, CameraStatus, StreamCodec, StreamFacts};

/// A camera's source, resolved from config (credentials included, never logged).
#[derive(Clone)]
pub enum Source {
    Rtsp(RtspSource),
    V4l2(V4l2Source),
    HttpMjpeg(HttpMjpegSource),
    /// A radiometric camera; its frames go through the camera's [`ThermalHook`].
    Thermal(ThermalInput),
}

/// What a thermal camera's processing reports to the worker's main loop.
#[derive(Debug)]
pub enum ThermalOut {
    Stats(ThermalStats),
    Rule(watchpost_thermal::RuleEvent),
}

/// A thermal camera's processing, kept across reconnects (rule states survive an outage).
pub struct ThermalHook {
    pub processor: Arc<Mutex<ThermalProcessor>>,
    /// The colourised picture for restreaming, created at the first frame's size.
    pub view_ring: Arc<Mutex<Option<RingWriter>>>,
    pub view_ring_path: std::path::PathBuf,
    pub ring_slots: u32,
    pub fps: u32,
    pub out: tokio::sync::mpsc::UnboundedSender<ThermalOut>,
    pub clock: watchpost_thermal::MonotonicClock,
}

impl std::fmt::Debug for ThermalHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThermalHook")
            .field("view_ring_path", &self.view_ring_path)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Rtsp(r) => write!(f, "Rtsp({})", r.url),
            Source::V4l2(v) => write!(f, "V4l2({})", v.device),
            Source::HttpMjpeg(h) => write!(f, "HttpMjpeg({})", h.url),
            Source::Thermal(t) => write!(f, "Thermal({t:?})"),
        }
    }
}

/// Counters and state shared between the pipeline threads, the camera task and the status
/// publisher.
#[derive(Debug)]
pub struct CameraShared {
    pub id: String,
    pub name: String,
    state: Mutex<(CameraState, Option<String>)>,
    pub frames_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub frames_dropped: AtomicU64,
    pub reconnects: AtomicU64,
    pub last_frame_us: AtomicU64,
    pub detect_frames: AtomicU64,
    /// Sum and count of frame-arrival → ring latencies (µs) of the detection branch.
    pub detect_latency_us_sum: AtomicU64,
    pub detect_latency_count: AtomicU64,
    /// Arrival times (Unix ns) of recent access units by PTS, to date decoded frames.
    arrivals: Mutex<std::collections::VecDeque<(u64, u64)>>,
    /// What the recorded stream looks like (size, profile, keyframe interval).
    stream: Mutex<StreamMeter>,
    pub recorder: Arc<RecorderStats>,
}

/// Measures the facts of a stream from its access units and their track description.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StreamMeter {
    facts: Option<StreamFacts>,
    /// Access units since the last keyframe (`None` before the first keyframe).
    since_key: Option<u32>,
}

impl StreamMeter {
    /// One access unit of the stream described by `track`.
    pub fn note(&mut self, track: &TrackInfo, keyframe: bool) {
        let codec = match track.codec {
            Codec::H264 => StreamCodec::H264,
            Codec::H265 => StreamCodec::H265,
        };
        // avcC: configurationVersion, AVCProfileIndication, …
        let h264_profile_idc = match codec {
            StreamCodec::H264 => track.codec_data.get(1).copied(),
            StreamCodec::H265 => None,
        };
        let f = self.facts.get_or_insert(StreamFacts {
            codec,
            width: track.width,
            height: track.height,
            h264_profile_idc,
            keyframe_interval_frames: None,
        });
        if (f.codec, f.width, f.height) != (codec, track.width, track.height) {
            // Another stream (the camera was reconfigured): the old interval is not its.
            *f = StreamFacts {
                codec,
                width: track.width,
                height: track.height,
                h264_profile_idc,
                keyframe_interval_frames: None,
            };
            self.since_key = None;
        }
        f.h264_profile_idc = h264_profile_idc;
        if keyframe {
            if let Some(n) = self.since_key {
                f.keyframe_interval_frames = Some(n + 1);
            }
            self.since_key = Some(0);
        } else if let Some(n) = self.since_key.as_mut() {
            *n = n.saturating_add(1);
        }
    }

    pub fn facts(&self) -> Option<StreamFacts> {
        self.facts
    }
}

/// How many recent arrivals are remembered (a few seconds of video).
const ARRIVALS_KEPT: usize = 256;

impl CameraShared {
    pub fn new(id: &str, name: &str, recorder: Arc<RecorderStats>) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            state: Mutex::new((CameraState::Starting, None)),
            frames_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            last_frame_us: AtomicU64::new(0),
            detect_frames: AtomicU64::new(0),
            detect_latency_us_sum: AtomicU64::new(0),
            detect_latency_count: AtomicU64::new(0),
            arrivals: Mutex::new(std::collections::VecDeque::with_capacity(ARRIVALS_KEPT)),
            stream: Mutex::default(),
            recorder,
        }
    }

    pub fn set_state(&self, state: CameraState, reason: Option<String>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.0 != state || s.1 != reason {
            tracing::info!(camera = %self.id, ?state, reason = reason.as_deref().unwrap_or(""), "camera state");
            *s = (state, reason);
        }
    }

    fn note_arrival(&self, pts_ns: u64, unix_ns: u64) {
        let mut a = self.arrivals.lock().unwrap_or_else(|p| p.into_inner());
        if a.len() == ARRIVALS_KEPT {
            a.pop_front();
        }
        a.push_back((pts_ns, unix_ns));
    }

    /// When the access unit with this PTS arrived, if it is recent.
    fn arrival_of(&self, pts_ns: u64) -> Option<u64> {
        let a = self.arrivals.lock().unwrap_or_else(|p| p.into_inner());
        a.iter().rev().find(|(p, _)| *p == pts_ns).map(|(_, t)| *t)
    }

    pub fn state(&self) -> (CameraState, Option<String>) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Computes rates between two status snapshots.
#[derive(Debug, Default)]
pub struct RateTracker {
    last: Option<(Instant, u64, u64, u64)>,
    last_latency: (u64, u64),
}

impl RateTracker {
    pub fn status(&mut self, c: &CameraShared, disk_used_bytes: u64) -> CameraStatus {
        let now = Instant::now();
        let frames = c.frames_in.load(Ordering::Relaxed);
        let bytes = c.bytes_in.load(Ordering::Relaxed);
        let written = c.recorder.bytes_written.load(Ordering::Relaxed);
        let (fps, bps, wps) = match self.last {
            Some((t, f, b, w)) => {
                let dt = now.duration_since(t).as_secs_f64().max(1e-3);
                (
                    (frames - f) as f64 / dt,
                    (bytes - b) as f64 * 8.0 / dt,
                    (written - w) as f64 / dt,
                )
            }
            None => (0.0, 0.0, 0.0),
        };
        self.last = Some((now, frames, bytes, written));
        let lat = (
            c.detect_latency_us_sum.load(Ordering::Relaxed),
            c.detect_latency_count.load(Ordering::Relaxed),
        );
        let (dsum, dcount) = (lat.0 - self.last_latency.0, lat.1 - self.last_latency.1);
        self.last_latency = lat;
        let detect_latency_ms =
            (dcount > 0).then(|| (dsum as f64 / dcount as f64 / 100.0).round() / 10.0);
        let (state, reason) = c.state();
        let last = c.last_frame_us.load(Ordering::Relaxed);
        CameraStatus {
            id: c.id.clone(),
            name: c.name.clone(),
            state,
            reason,
            input_fps: (fps * 10.0).round() / 10.0,
            bitrate_bps: bps.round(),
            frames_dropped: c.frames_dropped.load(Ordering::Relaxed)
                + c.recorder.frames_dropped_rate.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            recording: c.recorder.recording.load(Ordering::Relaxed),
            recording_bytes_per_s: wps.round(),
            disk_used_bytes,
            last_frame_at: (last > 0).then(|| rfc3339(last)),
            recording_error: c
                .recorder
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            detect_latency_ms,
            updated_unix_ms: SystemClock.now_us() / 1000,
            stream: c.stream.lock().unwrap_or_else(|p| p.into_inner()).facts(),
        }
    }
}

/// Everything a camera task needs.
pub struct CameraTask {
    pub shared: Arc<CameraShared>,
    pub source: Source,
    pub detect: Option<DetectBranch>,
    pub ring: Option<Arc<Mutex<RingWriter>>>,
    pub recorder: SyncSender<RecorderMsg>,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub stall_timeout: Duration,
    /// Notified to force a reconnect (new credentials).
    pub reconnect: Arc<tokio::sync::Notify>,
    /// Current credentials (replaced by the API).
    pub credentials: Arc<Mutex<Option<(String, String)>>>,
    /// Set for thermal cameras.
    pub thermal: Option<Arc<ThermalHook>>,
}

impl std::fmt::Debug for CameraTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraTask")
            .field("camera", &self.shared.id)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

fn outputs(task: &CameraTask) -> Outputs {
    let shared = task.shared.clone();
    let tx = task.recorder.clone();
    let clock = SystemClock;
    let detecting = task.ring.is_some();
    let on_access_unit = Arc::new(move |sample: crate::mp4::Sample, track: Arc<TrackInfo>| {
        let now = clock.now_us();
        if detecting {
            shared.note_arrival(sample.pts_ns.max(0) as u64, now * 1000);
        }
        shared
            .stream
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .note(&track, sample.keyframe);
        shared.frames_in.fetch_add(1, Ordering::Relaxed);
        shared
            .bytes_in
            .fetch_add(sample.data.len() as u64, Ordering::Relaxed);
        shared.last_frame_us.store(now, Ordering::Relaxed);
        match tx.try_send(RecorderMsg::Sample {
            sample,
            track,
            arrival_us: now,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                shared.frames_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let on_detect_frame = task.ring.clone().map(|ring| {
        let shared = task.shared.clone();
        Arc::new(move |pts: u64, data: &[u8]| {
            // The slot is dated with the compressed frame's arrival, so readers see the whole
            // delay; the worker keeps the arrival → ring figure for its status.
            let arrived_ns = shared.arrival_of(pts);
            let mut w = ring.lock().unwrap_or_else(|p| p.into_inner());
            let now_ns = SystemClock.now_us() * 1000;
            if w.write(pts, arrived_ns.unwrap_or(now_ns), data).is_ok() {
                shared.detect_frames.fetch_add(1, Ordering::Relaxed);
                if let Some(a) = arrived_ns {
                    let lat_us = SystemClock.now_us().saturating_sub(a / 1000);
                    shared
                        .detect_latency_us_sum
                        .fetch_add(lat_us, Ordering::Relaxed);
                    shared.detect_latency_count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }) as pipeline::FrameSink
    });
    Outputs {
        on_access_unit,
        on_detect_frame,
    }
}

/// Credentials set through the API replace the configured ones.
fn set_credentials(
    task: &CameraTask,
    username: &mut Option<String>,
    password: &mut Option<String>,
) {
    if let Some((u, p)) = task
        .credentials
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
    {
        *username = Some(u);
        *password = Some(p);
    }
}

fn build(task: &CameraTask) -> Result<gst::Pipeline, pipeline::PipelineError> {
    let id = &task.shared.id;
    match &task.source {
        Source::Rtsp(r) => {
            let mut r = r.clone();
            set_credentials(task, &mut r.username, &mut r.password);
            pipeline::build_rtsp(id, &r, outputs(task), task.detect)
        }
        Source::V4l2(v) => pipeline::build_v4l2(id, v, outputs(task), task.detect),
        Source::HttpMjpeg(h) => {
            let mut h = h.clone();
            set_credentials(task, &mut h.username, &mut h.password);
            pipeline::build_http_mjpeg(id, &h, outputs(task), task.detect)
        }
        Source::Thermal(input) => {
            let Some(hook) = task.thermal.clone() else {
                return Err(pipeline::PipelineError::Build {
                    camera: id.clone(),
                    reason: "a thermal source without thermal settings".into(),
                });
            };
            let format = hook
                .processor
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .format();
            let sink = thermal_sink(id, hook);
            pipeline::build_thermal(id, input, format, outputs(task), task.detect, sink)
        }
    }
}

/// The per-frame work of a thermal camera: temperatures, rules, statistics, the picture (also
/// written to the view ring).
fn thermal_sink(camera: &str, hook: Arc<ThermalHook>) -> pipeline::ThermalSink {
    let camera = camera.to_string();
    Arc::new(move |w, h, bytes| {
        let now_ms = hook.clock.now_ms();
        let out = hook
            .processor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .process(now_ms, w, h, bytes)
            .map_err(|e| format!("camera {camera}: {e}"))?;
        for e in out.events {
            let _ = hook.out.send(ThermalOut::Rule(e));
        }
        if let Some(s) = out.stats {
            let _ = hook.out.send(ThermalOut::Stats(s));
        }
        let mut ring = hook.view_ring.lock().unwrap_or_else(|p| p.into_inner());
        let fits = ring.as_ref().is_some_and(|r| {
            let l = r.layout();
            (l.width, l.height) == (out.view.width, out.view.height)
        });
        if !fits {
            let layout = RingLayout::new(
                &camera,
                out.view.width,
                out.view.height,
                PixelFormat::Rgb24,
                hook.ring_slots,
                hook.fps,
            );
            match RingWriter::create(&hook.view_ring_path, layout) {
                Ok(w) => *ring = Some(w),
                Err(e) => {
                    tracing::warn!(camera = %camera, error = %e, "cannot create the thermal view ring");
                    *ring = None;
                }
            }
        }
        if let Some(r) = ring.as_mut() {
            let now_ns = SystemClock.now_us() * 1000;
            let _ = r.write(now_ms * 1_000_000, now_ns, &out.view.data);
        }
        Ok(out.view)
    })
}

fn bus_problem(p: &gst::Pipeline) -> Option<String> {
    let bus = p.bus()?;
    let msg = bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos])?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(error_reason(
            &e.error().to_string(),
            e.debug().as_ref().map(|d| d.as_str()),
        )),
        gst::MessageView::Eos(_) => Some("end of stream".into()),
        _ => None,
    }
}

/// A GStreamer error as a camera's reason: the message, and the last line of the debug text
/// when it says more (`Failed to connect.`, `Unauthorized`) than the generic flow report.
fn error_reason(message: &str, debug: Option<&str>) -> String {
    let detail = debug
        .and_then(|d| d.lines().map(str::trim).rfind(|l| !l.is_empty()))
        .filter(|l| !l.starts_with("streaming stopped") && !message.contains(*l));
    match detail {
        Some(d) => format!("{message} ({d})"),
        None => message.to_string(),
    }
}

/// `host` and `port` of an `http(s)://` URL (80/443 when the port is left out).
fn http_host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default,
        };
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
        None => Some((authority.to_string(), default)),
    }
    .filter(|(h, _)| !h.is_empty())
}

/// Why an HTTP camera cannot be reached at all, or `None` when a connection opens.
async fn http_unreachable(url: &str) -> Option<String> {
    let (host, port) = http_host_port(url)?;
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(Duration::from_secs(3), connect).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(format!("cannot connect to {host}:{port}: {e}")),
        Err(_) => Some(format!("no answer from {host}:{port} within 3 s")),
    }
}

/// The RTSP client's target when the camera's main stream is only recorded (no detection, or
/// detection from the sub stream): then it is read by [`crate::rtsp_client`] and never
/// enters GStreamer. `None` when GStreamer must read it (detection decodes it, or the stream
/// turned out to need GStreamer's parser).
fn client_target(task: &CameraTask, use_client: bool) -> Option<Target> {
    let Source::Rtsp(r) = &task.source else {
        return None;
    };
    let main_decoded = task.detect.is_some() && task.ring.is_some() && r.sub_url.is_none();
    if !use_client || main_decoded {
        return None;
    }
    let mut r = r.clone();
    set_credentials(task, &mut r.username, &mut r.password);
    Some(Target {
        source: r,
        timeout: task.stall_timeout.max(Duration::from_secs(2)),
    })
}

/// One session of a camera whose main stream the RTSP client records; a sub stream for
/// detection runs in its own small GStreamer pipeline beside it.
async fn run_client_session(
    task: &CameraTask,
    target: &Target,
    started: Instant,
    frames_at_start: u64,
    shutdown: &CancellationToken,
    backoff: &mut Duration,
) -> (String, bool) {
    let out = outputs(task);
    let source = &target.source;
    let detect = match (&source.sub_url, task.detect, out.on_detect_frame.clone()) {
        (Some(url), Some(d), Some(on_frame)) => {
            match pipeline::build_rtsp_sub_detect(&task.shared.id, source, url, d, on_frame) {
                Ok(p) => Some(p),
                Err(e) => {
                    task.shared
                        .set_state(CameraState::Error, Some(e.to_string()));
                    return (e.to_string(), false);
                }
            }
        }
        _ => None,
    };
    if let Some(p) = &detect
        && let Err(e) = p.set_state(gst::State::Playing)
    {
        let reason = format!("cannot start the sub stream: {e}");
        stop(p.clone()).await;
        return (reason, false);
    }
    let camera = task.shared.id.clone();
    let mut ingest = Box::pin(rtsp_client::run(&camera, target, out.on_access_unit));
    let mut needs_parser = false;
    let reason = watch(
        task,
        detect.as_ref(),
        Some((ingest.as_mut(), &mut needs_parser)),
        started,
        frames_at_start,
        shutdown,
        backoff,
    )
    .await;
    if let Some(p) = detect {
        stop(p).await;
    }
    (reason, needs_parser)
}

async fn stop(p: gst::Pipeline) {
    // Changing to Null can block on streaming threads; keep it off the async workers.
    let _ = tokio::task::spawn_blocking(move || p.set_state(gst::State::Null)).await;
}

/// Why a session ended when a reconnect was asked for (new credentials).
const RECONNECT_REQUESTED: &str = "reconnect requested";

/// Runs one camera until `shutdown`.
pub async fn run(task: CameraTask, shutdown: CancellationToken) {
    let shared = task.shared.clone();
    let mut backoff = task.backoff_initial;
    let mut use_client = true;
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        shared.set_state(
            if shared.reconnects.load(Ordering::Relaxed) == 0 {
                CameraState::Starting
            } else {
                CameraState::Offline
            },
            shared.state().1,
        );
        let started = Instant::now();
        let frames_at_start = shared.frames_in.load(Ordering::Relaxed);
        let reason = if let Some(target) = client_target(&task, use_client) {
            let (reason, needs_parser) = run_client_session(
                &task,
                &target,
                started,
                frames_at_start,
                &shutdown,
                &mut backoff,
            )
            .await;
            if needs_parser {
                tracing::info!(camera = %shared.id, %reason, "recording through GStreamer's RTSP chain from now on");
                use_client = false;
            }
            reason
        } else {
            match build(&task) {
                Err(e) => {
                    shared.set_state(CameraState::Error, Some(e.to_string()));
                    e.to_string()
                }
                Ok(p) => {
                    let reason = if let Err(e) = p.set_state(gst::State::Playing) {
                        format!("cannot start: {e}")
                    } else {
                        watch(
                            &task,
                            Some(&p),
                            None,
                            started,
                            frames_at_start,
                            &shutdown,
                            &mut backoff,
                        )
                        .await
                    };
                    stop(p).await;
                    reason
                }
            }
        };
        let _ = task.recorder.try_send(RecorderMsg::SourceDown);
        if shutdown.is_cancelled() {
            break;
        }
        // `souphttpsrc` reports a refused or unanswered connection only as a generic flow
        // error: when nothing arrived, say what the connection itself does.
        let reason = match &task.source {
            Source::HttpMjpeg(h) if shared.frames_in.load(Ordering::Relaxed) == frames_at_start => {
                http_unreachable(&h.url).await.unwrap_or(reason)
            }
            _ => reason,
        };
        shared.reconnects.fetch_add(1, Ordering::Relaxed);
        if shared.state().0 != CameraState::Error {
            shared.set_state(CameraState::Offline, Some(reason.clone()));
        }
        if reason == RECONNECT_REQUESTED {
            // Asked for (new credentials): not a failure, so no wait and no longer backoff.
            tracing::info!(camera = %shared.id, "camera reconnecting as asked");
            backoff = task.backoff_initial;
            continue;
        }
        tracing::warn!(camera = %shared.id, %reason, retry_in_ms = backoff.as_millis() as u64, "camera source lost");
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
            _ = task.reconnect.notified() => {}
        }
        backoff = (backoff * 2).min(task.backoff_max);
    }
    shared.set_state(CameraState::Offline, Some("stopped".into()));
}

/// The RTSP client's session, and where to say that the stream needs GStreamer's parser.
type Ingest<'a> = (
    std::pin::Pin<&'a mut (dyn std::future::Future<Output = Ended> + Send)>,
    &'a mut bool,
);

/// Watches a camera session until it fails: errors of the pipeline `p` (if any), the end of the
/// RTSP client's session `ingest` (if any), or no frame for the stall timeout.
async fn watch(
    task: &CameraTask,
    p: Option<&gst::Pipeline>,
    mut ingest: Option<Ingest<'_>>,
    started: Instant,
    frames_at_start: u64,
    shutdown: &CancellationToken,
    backoff: &mut Duration,
) -> String {
    let shared = &task.shared;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut online = false;
    let mut last_count = frames_at_start;
    let mut last_progress = started;
    loop {
        let ended = async {
            match ingest.as_mut() {
                Some((f, _)) => f.as_mut().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return "shutdown".into(),
            _ = task.reconnect.notified() => return RECONNECT_REQUESTED.into(),
            end = ended => {
                return match end {
                    Ended::Failed(reason) => reason,
                    Ended::NeedsParser(reason) => {
                        if let Some((_, flag)) = ingest.as_mut() {
                            **flag = true;
                        }
                        reason
                    }
                };
            }
            _ = tick.tick() => {}
        }
        if let Some(problem) = p.and_then(bus_problem) {
            return problem;
        }
        let count = shared.frames_in.load(Ordering::Relaxed);
        if count != last_count {
            last_count = count;
            last_progress = Instant::now();
            if !online {
                online = true;
                *backoff = task.backoff_initial;
                shared.set_state(CameraState::Online, None);
            }
        } else if last_progress.elapsed() >= task.stall_timeout {
            return if online {
                format!("no frame for {} ms", task.stall_timeout.as_millis())
            } else {
                format!(
                    "no frame within {} ms of connecting",
                    task.stall_timeout.as_millis()
                )
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        Codec, StreamCodec, StreamFacts, StreamMeter, TrackInfo, error_reason, http_host_port,
    };

    #[test]
    fn stream_meter_measures_size_profile_and_keyframe_interval() {
        let track = |w, h| TrackInfo {
            codec: Codec::H264,
            width: w,
            height: h,
            codec_data: vec![1, 77, 0, 31],
        };
        let mut m = StreamMeter::default();
        assert_eq!(m.facts(), None);
        let t = track(1280, 720);
        // Two non-key frames before the first keyframe, then a keyframe every 30 frames.
        for i in 0..95u32 {
            m.note(&t, i >= 2 && (i - 2) % 30 == 0);
        }
        assert_eq!(
            m.facts(),
            Some(StreamFacts {
                codec: StreamCodec::H264,
                width: 1280,
                height: 720,
                h264_profile_idc: Some(77),
                keyframe_interval_frames: Some(30),
            })
        );
        // A new size starts over: no interval until two keyframes of the new stream.
        let t = track(640, 360);
        m.note(&t, true);
        let f = m.facts().unwrap();
        assert_eq!(
            (f.width, f.height, f.keyframe_interval_frames),
            (640, 360, None)
        );
        for _ in 0..9 {
            m.note(&t, false);
        }
        m.note(&t, true);
        assert_eq!(m.facts().unwrap().keyframe_interval_frames, Some(10));
    }

    #[test]
    fn http_urls_give_host_and_port() {
        let hp = |u: &str| http_host_port(u).map(|(h, p)| format!("{h} {p}"));
        assert_eq!(
            hp("http://10.0.0.9/video.mjpg").as_deref(),
            Some("10.0.0.9 80")
        );
        assert_eq!(
            hp("https://cam.local:8443/x?y").as_deref(),
            Some("cam.local 8443")
        );
        assert_eq!(hp("http://[fe80::1]:81/v").as_deref(), Some("fe80::1 81"));
        assert_eq!(hp("http://[fe80::1]/v").as_deref(), Some("fe80::1 80"));
        assert_eq!(hp("rtsp://x/y"), None);
        assert_eq!(hp("http://:80/"), None);
    }

    #[test]
    fn reasons_keep_the_useful_debug_line() {
        let debug = "../gst/rtsp/gstrtspsrc.c(8336): gst_rtspsrc_retrieve_sdp (): /GstPipeline:p/GstRTSPSrc:main:\nFailed to connect. (Generic error)";
        assert_eq!(
            error_reason(
                "Could not open resource for reading and writing.",
                Some(debug)
            ),
            "Could not open resource for reading and writing. (Failed to connect. (Generic error))"
        );
        let flow = "../libs/gst/base/gstbasesrc.c(3132): gst_base_src_loop (): /GstPipeline:p:\nstreaming stopped, reason error (-5)";
        assert_eq!(
            error_reason("Internal data stream error.", Some(flow)),
            "Internal data stream error."
        );
        assert_eq!(error_reason("end", None), "end");
    }
}
