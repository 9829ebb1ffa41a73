//! The worker's main loop: start cameras, publish status and metrics, run retention, hand bus
//! commands to [`crate::commands`], stop cleanly. Everything published is a type of the
//! capture contract (`watchpost_contract::capture`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use watchpost_bus::{Bus, Retain};
use watchpost_config::Config;
use watchpost_config::capture::{
    CameraConfig, CameraKind, RtspTransport, SourceConfig, split_host_port,
};
use watchpost_contract::capture::{self, RecordingEvent};
use watchpost_runtime::{ExitCode, WorkerCtx};

use crate::camera::{
    self, CameraShared, CameraState, CameraTask, RateTracker, Source, ThermalHook, ThermalOut,
};
use crate::commands::{self, CameraHandle, Commands};
use crate::index::{RecordingIndex, SegmentState, StoreIndex};
use crate::pipeline::{DetectBranch, HttpMjpegSource, RtspSource, ThermalInput, V4l2Source};
use crate::recorder::{
    self, Recorder, RecorderEvent, RecorderMsg, RecorderSettings, RecorderStats,
};
use crate::retention::{self, RetentionLimits};
use crate::schedule::Schedule;
use crate::secrets::{self, CredentialVault};
use crate::segment;
use crate::time::{SystemClock, WallClock, rfc3339};
use watchpost_frame_ring::{PixelFormat, RingLayout, RingWriter};

/// Why the worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("opening the capture store {path}: {source}")]
    Store {
        path: PathBuf,
        source: Box<watchpost_store::StoreError>,
    },
    #[error("repairing recordings at start: {source}")]
    Recover { source: segment::SegmentError },
    #[error("reading the recording index: {source}")]
    Index { source: crate::index::IndexError },
    #[error("GStreamer is not usable: {source}")]
    Media {
        source: crate::pipeline::PipelineError,
    },
    #[error("camera credentials: {source}")]
    Secrets { source: secrets::SecretError },
    #[error("creating the frame ring of camera {camera}: {source}")]
    Ring {
        camera: String,
        source: watchpost_frame_ring::RingError,
    },
    #[error("starting the recorder thread of camera {camera}: {source}")]
    Thread {
        camera: String,
        source: std::io::Error,
    },
    /// A blocking start-up task (opening the store, repairing segments) panicked or was
    /// cancelled: a fault of this run, not of the configuration.
    #[error("the {task} task failed: {source}")]
    Task {
        task: &'static str,
        source: tokio::task::JoinError,
    },
    #[error("subscribing to the camera commands: {source}")]
    Commands { source: watchpost_bus::BusError },
}

impl CaptureError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CaptureError::Media { .. } | CaptureError::Store { .. } => ExitCode::Unavailable,
            CaptureError::Recover { .. }
            | CaptureError::Index { .. }
            | CaptureError::Secrets { .. }
            | CaptureError::Ring { .. }
            | CaptureError::Thread { .. }
            | CaptureError::Task { .. }
            | CaptureError::Commands { .. } => ExitCode::Failure,
        }
    }
}

struct Running {
    shared: Arc<CameraShared>,
    handle: CameraHandle,
    recorder_thread: Option<std::thread::JoinHandle<()>>,
    rates: RateTracker,
    last_published: Option<(CameraState, Option<String>, bool)>,
    last_publish_at: std::time::Instant,
    disk_used: u64,
}

fn source_of(c: &CameraConfig) -> Source {
    let thermal = c.kind == CameraKind::Thermal;
    match &c.source {
        SourceConfig::Rtsp {
            url,
            sub_url,
            transport,
            latency_ms,
        } => Source::Rtsp(RtspSource {
            url: url.clone(),
            sub_url: sub_url.clone(),
            tcp: *transport == RtspTransport::Tcp,
            latency_ms: *latency_ms,
            username: None,
            password: None,
        }),
        SourceConfig::V4l2 {
            device,
            width,
            height,
            fps,
            ..
        } if thermal => Source::Thermal(ThermalInput::V4l2 {
            device: device.to_string_lossy().into_owned(),
            width: *width,
            height: *height,
            fps: *fps,
        }),
        SourceConfig::V4l2 {
            device,
            width,
            height,
            fps,
            fourcc,
        } => Source::V4l2(V4l2Source {
            device: device.to_string_lossy().into_owned(),
            width: *width,
            height: *height,
            fps: *fps,
            fourcc: fourcc.clone(),
            restream_socket: None,
        }),
        SourceConfig::HttpMjpeg { url, fps } => Source::HttpMjpeg(HttpMjpegSource {
            url: url.clone(),
            fps: *fps,
            username: None,
            password: None,
            restream_socket: None,
        }),
        SourceConfig::ThermalTcp { address, fps } => {
            // The config check accepted the address; an unparsable one cannot connect anyway.
            let (host, port) = split_host_port(address).unwrap_or_default();
            Source::Thermal(ThermalInput::Tcp {
                host,
                port,
                fps: *fps,
            })
        }
    }
}

/// Publishes a thermal camera's statistics and rule events, and turns rules into event
/// recording triggers (active while any rule of the camera is).
async fn publish_thermal(
    bus: &Bus,
    camera: &str,
    out: ThermalOut,
    active: &mut HashMap<String, std::collections::HashSet<String>>,
    recorder: Option<&SyncSender<RecorderMsg>>,
) {
    let now = rfc3339(SystemClock.now_us());
    match out {
        ThermalOut::Stats(s) => {
            let topic = bus.topic(&capture::thermal(camera));
            let published = bus
                .publish_json(&topic, &s.statistics(camera, now), Retain::Yes)
                .await;
            if let Err(e) = published {
                tracing::debug!(camera, error = %e, "cannot publish thermal statistics");
            }
        }
        ThermalOut::Rule(e) => {
            let fired = crate::thermal::is_fired(&e);
            tracing::info!(camera, rule = %e.rule_id, fired, value_c = e.value_c, threshold_c = e.threshold_c, "thermal rule");
            let topic = bus.topic(&capture::thermal_event(camera));
            let event = crate::thermal::event(camera, &e, now);
            if let Err(err) = bus.publish_json(&topic, &event, Retain::No).await {
                tracing::warn!(camera, rule = %e.rule_id, error = %err, "cannot publish a thermal event");
            }
            let set = active.entry(camera.to_string()).or_default();
            let was_active = !set.is_empty();
            if fired {
                set.insert(e.rule_id.clone());
            } else {
                set.remove(&e.rule_id);
            }
            let now_active = !set.is_empty();
            if let Some(tx) = recorder
                && was_active != now_active
            {
                let _ = tx.try_send(RecorderMsg::Trigger {
                    active: now_active,
                    reason: format!("thermal:{}", e.rule_id),
                });
            }
        }
    }
}

/// A recorder's report as the `.../recording` event of `camera`.
fn recording_event(camera: &str, event: RecorderEvent) -> RecordingEvent {
    let camera = camera.to_string();
    match event {
        RecorderEvent::Started(r) => RecordingEvent::Started {
            camera,
            at: rfc3339(r.start_us),
            path: r.path,
            trigger: r.trigger,
        },
        RecorderEvent::Stopped(r) => RecordingEvent::Stopped {
            camera,
            at: rfc3339(r.end_us),
            path: r.path,
            trigger: r.trigger,
        },
        RecorderEvent::Failed { reason } => RecordingEvent::Error { camera, reason },
    }
}

/// Runs the capture worker until `ctx.shutdown()` is cancelled.
pub async fn run(config: Config, ctx: Arc<WorkerCtx>) -> Result<(), CaptureError> {
    let cap = &config.capture;
    let data_dir = config.system.data_dir.clone();
    let recordings = cap.recordings_dir(&data_dir);
    let snapshots = cap.snapshots_dir(&data_dir);
    let frames = cap.frames_dir(&data_dir);
    let store_path = data_dir.join("capture.redb");
    let store = tokio::task::spawn_blocking({
        let p = store_path.clone();
        move || watchpost_store::Store::open(&p)
    })
    .await
    .map_err(|source| CaptureError::Task {
        task: "store opening",
        source,
    })?
    .map_err(|source| CaptureError::Store {
        path: store_path.clone(),
        source: Box::new(source),
    })?;
    let index: Arc<dyn RecordingIndex> = Arc::new(StoreIndex::new(store.clone()));
    // Repair what a crash left open, before anything records.
    {
        let index = index.clone();
        let root = recordings.clone();
        tokio::task::spawn_blocking(move || -> Result<(), CaptureError> {
            let open: Vec<_> = index
                .list()
                .map_err(|source| CaptureError::Index { source })?
                .into_iter()
                .filter(|r| r.state == SegmentState::Open)
                .collect();
            for r in open {
                let outcome = segment::repair(&root, &r, index.as_ref())
                    .map_err(|source| CaptureError::Recover { source })?;
                tracing::info!(camera = %r.camera, path = %r.path, ?outcome, "segment repaired after an unclean stop");
            }
            Ok(())
        })
        .await
        .map_err(|source| CaptureError::Task {
            task: "segment repair",
            source,
        })??;
    }
    let key = secrets::device_key(&data_dir).map_err(|source| CaptureError::Secrets { source })?;
    let vault = CredentialVault::new(key, store.clone());
    let enabled: Vec<&CameraConfig> = cap.cameras.iter().filter(|c| c.enabled).collect();
    if !enabled.is_empty() {
        crate::pipeline::init("*").map_err(|source| CaptureError::Media { source })?;
    }
    let shutdown = ctx.shutdown().clone();
    let cameras_token = CancellationToken::new();
    let bus = Bus::connect(&config, "capture", shutdown.clone());
    let (events_tx, mut events_rx) =
        tokio::sync::mpsc::unbounded_channel::<(String, RecorderEvent)>();
    let clock: Arc<dyn WallClock> = Arc::new(SystemClock);
    let mut running: HashMap<String, Running> = HashMap::new();
    let (thermal_tx, mut thermal_rx) =
        tokio::sync::mpsc::unbounded_channel::<(String, ThermalOut)>();
    let mut camera_tasks = Vec::new();
    for c in &enabled {
        let id = c.id.to_string();
        let stats = Arc::new(RecorderStats::default());
        let shared = Arc::new(CameraShared::new(&id, &c.name, stats.clone()));
        let (tx, rx) = sync_channel::<RecorderMsg>(512);
        let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
        let fwd = events_tx.clone();
        let fwd_id = id.clone();
        tokio::spawn(async move {
            while let Some(e) = ev_rx.recv().await {
                if fwd.send((fwd_id.clone(), e)).is_err() {
                    break;
                }
            }
        });
        let settings = RecorderSettings {
            camera: id.clone(),
            root: recordings.clone(),
            mode: c.record.mode,
            preroll_us: u64::from(c.record.preroll_s) * 1_000_000,
            postroll_us: u64::from(c.record.postroll_s) * 1_000_000,
            segment_us: u64::from(c.record.segment_s.unwrap_or(cap.recording.segment_s))
                * 1_000_000,
            fragment_ms: cap.recording.fragment_ms,
            sync_every_fragments: cap.recording.sync_every_fragments,
            max_write_bytes_per_s: cap.recording.max_write_bytes_per_s,
            schedule: Schedule::from_config(&c.record.schedule, c.record.schedule_utc_offset_min),
            clock: clock.clone(),
        };
        let rec = Recorder::new(settings, index.clone(), stats, ev_tx);
        let thread = std::thread::Builder::new()
            .name(format!("rec-{id}"))
            .spawn(move || recorder::run(rec, rx))
            .map_err(|source| CaptureError::Thread {
                camera: id.clone(),
                source,
            })?;
        let creds = match vault.get(&id) {
            Ok(Some(c)) => Some(c),
            Ok(None) => c
                .credentials
                .as_ref()
                .map(|k| (k.username.clone(), k.password.expose().to_string())),
            Err(e) => {
                tracing::warn!(camera = %id, error = %e, "stored credentials unusable");
                None
            }
        };
        let credentials = Arc::new(Mutex::new(creds));
        let reconnect = Arc::new(tokio::sync::Notify::new());
        let detect = c.detect.enabled.then_some(DetectBranch {
            fps: c.detect.fps,
            width: c.detect.width,
            height: c.detect.height,
        });
        let ring = if let Some(d) = detect {
            let layout = RingLayout::new(
                &id,
                d.width,
                d.height,
                PixelFormat::Rgb24,
                c.detect.ring_slots,
                d.fps,
            );
            let w = RingWriter::create(&frames.join(format!("{id}.ring")), layout).map_err(
                |source| CaptureError::Ring {
                    camera: id.clone(),
                    source,
                },
            )?;
            Some(Arc::new(Mutex::new(w)))
        } else {
            None
        };
        let thermal = match (&c.thermal, c.kind) {
            (Some(t), CameraKind::Thermal) => {
                let (out, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let fwd = thermal_tx.clone();
                let fwd_id = id.clone();
                tokio::spawn(async move {
                    while let Some(o) = rx.recv().await {
                        if fwd.send((fwd_id.clone(), o)).is_err() {
                            break;
                        }
                    }
                });
                Some(Arc::new(ThermalHook {
                    processor: Arc::new(Mutex::new(crate::thermal::ThermalProcessor::from_config(
                        t,
                    ))),
                    view_ring: Arc::new(Mutex::new(None)),
                    view_ring_path: frames.join(format!("{id}.view.ring")),
                    ring_slots: c.detect.ring_slots,
                    fps: match &c.source {
                        SourceConfig::ThermalTcp { fps, .. } => *fps,
                        SourceConfig::V4l2 { fps, .. } => fps.unwrap_or(9),
                        _ => 9,
                    },
                    out,
                    clock: watchpost_thermal::MonotonicClock::new(),
                }))
            }
            _ => None,
        };
        let task = CameraTask {
            thermal,
            shared: shared.clone(),
            source: {
                let mut source = source_of(c);
                // The rtsp worker restreams V4L2 and HTTP MJPEG cameras (whose H.264 only
                // this worker has) from this socket (docs/capture.md).
                let slot = match &mut source {
                    Source::V4l2(v) => Some(&mut v.restream_socket),
                    Source::HttpMjpeg(h) => Some(&mut h.restream_socket),
                    Source::Rtsp(_) | Source::Thermal(_) => None,
                };
                if let Some(slot) = slot
                    && config.rtsp.enabled
                {
                    let socket = data_dir
                        .join("run")
                        .join("restream")
                        .join(format!("{}.sock", c.id));
                    // A Unix socket path is limited to 107 bytes; without the branch the
                    // camera still records.
                    if socket.as_os_str().len() < 108 {
                        *slot = Some(socket);
                    } else {
                        tracing::warn!(camera = %c.id, socket = %socket.display(), "restream socket path too long; not restreamed");
                    }
                }
                source
            },
            detect,
            ring,
            recorder: tx.clone(),
            backoff_initial: Duration::from_millis(c.reconnect.initial_ms),
            backoff_max: Duration::from_millis(c.reconnect.max_ms),
            stall_timeout: Duration::from_millis(c.reconnect.stall_timeout_ms),
            reconnect: reconnect.clone(),
            credentials: credentials.clone(),
        };
        camera_tasks.push(tokio::spawn(camera::run(task, cameras_token.clone())));
        running.insert(
            id,
            Running {
                shared,
                handle: CameraHandle {
                    recorder_tx: tx,
                    reconnect,
                    credentials,
                },
                recorder_thread: Some(thread),
                rates: RateTracker::default(),
                last_published: None,
                last_publish_at: std::time::Instant::now(),
                disk_used: 0,
            },
        );
    }
    drop(events_tx);
    drop(thermal_tx);
    let mut thermal_active: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
    let commands_ctx = Arc::new(Commands {
        bus: bus.clone(),
        cameras: running
            .iter()
            .map(|(id, r)| (id.clone(), r.handle.clone()))
            .collect(),
        configured: cap.cameras.iter().map(|c| c.id.to_string()).collect(),
        vault,
        index: index.clone(),
        snapshots: snapshots.clone(),
        decoders: tokio::sync::Semaphore::new(2),
    });
    let subscriptions = commands::Subscriptions::new(&bus)
        .await
        .map_err(|source| CaptureError::Commands { source })?;
    tokio::spawn(commands::serve(
        commands_ctx.clone(),
        subscriptions,
        shutdown.clone(),
    ));
    ctx.ready(Vec::<(String, std::net::SocketAddr)>::new());
    let metrics = ctx.metrics().clone();
    let mut heartbeat = tokio::time::interval(ctx.heartbeat_interval());
    let mut status_tick = tokio::time::interval(Duration::from_secs(1));
    let mut retention_tick =
        tokio::time::interval(Duration::from_secs(cap.storage.check_interval_s.max(1)));
    let limits = {
        let mut l = RetentionLimits {
            max_bytes: cap.storage.max_bytes,
            min_free_bytes: 0,
            headroom_bytes: cap.storage.headroom_bytes,
            ..Default::default()
        };
        for c in &cap.cameras {
            if c.record.max_age_days > 0 {
                l.max_age_us.insert(
                    c.id.to_string(),
                    u64::from(c.record.max_age_days) * 86_400 * 1_000_000,
                );
            }
        }
        l
    };
    let min_free_percent = cap.storage.min_free_percent;
    let mut retention_job: Option<tokio::task::JoinHandle<HashMap<String, u64>>> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = heartbeat.tick() => ctx.heartbeat(),
            _ = status_tick.tick() => {
                let mut online = 0;
                for r in running.values_mut() {
                    let st = r.rates.status(&r.shared, r.disk_used);
                    if st.state == CameraState::Online {
                        online += 1;
                    }
                    update_metrics(&metrics, &st, &r.shared);
                    let key = (st.state, st.reason.clone(), st.recording);
                    if r.last_published.as_ref() != Some(&key) || r.last_publish_at.elapsed() >= Duration::from_secs(10) {
                        r.last_published = Some(key);
                        r.last_publish_at = std::time::Instant::now();
                        let topic = bus.topic(&capture::status(&st.id));
                        if let Err(e) = bus.publish_json(&topic, &st, Retain::Yes).await {
                            tracing::debug!(camera = %st.id, error = %e, "cannot publish the camera status");
                        }
                    }
                }
                ctx.status(format!("{online}/{} cameras online", running.len()));
            }
            _ = retention_tick.tick(), if retention_job.is_none() => {
                let index = index.clone();
                let root = recordings.clone();
                let mut limits = limits.clone();
                let now = clock.now_us();
                retention_job = Some(tokio::task::spawn_blocking(move || {
                    let disk = retention::disk_space(&root);
                    if let Some(d) = disk {
                        limits.min_free_bytes = (d.total_bytes as f64 * min_free_percent / 100.0) as u64;
                    }
                    run_retention(&root, index.as_ref(), &limits, disk, now)
                }));
            }
            done = async {
                match retention_job.as_mut() {
                    Some(j) => j.await.ok(),
                    None => std::future::pending().await,
                }
            }, if retention_job.is_some() => {
                retention_job = None;
                if let Some(used) = done {
                    for (cam, r) in running.iter_mut() {
                        r.disk_used = used.get(cam).copied().unwrap_or(0);
                    }
                }
            }
            Some((camera, event)) = events_rx.recv() => {
                let topic = bus.topic(&capture::recording(&camera));
                let event = recording_event(&camera, event);
                if let Err(e) = bus.publish_json(&topic, &event, Retain::No).await {
                    tracing::warn!(%camera, error = %e, "cannot publish a recording event");
                }
            }
            Some((camera, out)) = thermal_rx.recv() => {
                if let ThermalOut::Rule(e) = &out
                    && crate::thermal::is_fired(e)
                {
                    let reason = format!("thermal:{}", e.rule_id);
                    tokio::spawn(commands_ctx.clone().snapshot_on_event(camera.clone(), reason));
                }
                let recorder = running.get(&camera).map(|r| &r.handle.recorder_tx);
                publish_thermal(&bus, &camera, out, &mut thermal_active, recorder).await;
            }
        }
    }
    // Stop: pipelines first, then let every recorder close its segment.
    cameras_token.cancel();
    for t in camera_tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    let mut threads = Vec::new();
    for r in running.values_mut() {
        let _ = r.handle.recorder_tx.send(RecorderMsg::Shutdown);
        threads.extend(r.recorder_thread.take());
    }
    let _ = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        }),
    )
    .await;
    Ok(())
}

fn update_metrics(m: &watchpost_runtime::Registry, st: &camera::CameraStatus, c: &CameraShared) {
    use std::sync::atomic::Ordering;
    let l = [("camera", st.id.as_str())];
    m.gauge(
        "watchpost_capture_camera_online",
        "1 when the camera delivers frames.",
        &l,
    )
    .set(if st.state == CameraState::Online {
        1.0
    } else {
        0.0
    });
    m.gauge(
        "watchpost_capture_input_fps",
        "Frames per second received.",
        &l,
    )
    .set(st.input_fps);
    m.gauge(
        "watchpost_capture_input_bitrate_bps",
        "Bits per second received.",
        &l,
    )
    .set(st.bitrate_bps);
    m.gauge(
        "watchpost_capture_recording",
        "1 while the camera is being recorded.",
        &l,
    )
    .set(if st.recording { 1.0 } else { 0.0 });
    m.gauge(
        "watchpost_capture_recording_bytes_per_second",
        "Bytes per second written to recordings.",
        &l,
    )
    .set(st.recording_bytes_per_s);
    m.gauge(
        "watchpost_capture_disk_used_bytes",
        "Bytes of recordings on disk.",
        &l,
    )
    .set(st.disk_used_bytes as f64);
    if let Some(ms) = st.detect_latency_ms {
        m.gauge(
            "watchpost_capture_detect_latency_seconds",
            "Mean delay from a frame's arrival to its decoded copy in the detection ring.",
            &l,
        )
        .set(ms / 1000.0);
    }
    let set = |name: &str, help: &str, v: u64| {
        let ctr = m.counter(name, help, &l);
        let cur = ctr.get();
        if v > cur {
            ctr.add(v - cur);
        }
    };
    set(
        "watchpost_capture_frames_total",
        "Access units received.",
        c.frames_in.load(Ordering::Relaxed),
    );
    set(
        "watchpost_capture_dropped_frames_total",
        "Frames dropped (queue full or write budget).",
        st.frames_dropped,
    );
    set(
        "watchpost_capture_reconnects_total",
        "Times the source was lost and reconnected.",
        st.reconnects,
    );
    set(
        "watchpost_capture_recorded_bytes_total",
        "Bytes written to recordings.",
        c.recorder.bytes_written.load(Ordering::Relaxed),
    );
    set(
        "watchpost_capture_detect_frames_total",
        "Frames written to the detection ring.",
        c.detect_frames.load(Ordering::Relaxed),
    );
}

/// Deletes what retention plans (file first, then record); returns bytes per camera after.
fn run_retention(
    root: &std::path::Path,
    index: &dyn RecordingIndex,
    limits: &RetentionLimits,
    disk: Option<retention::DiskSpace>,
    now_us: u64,
) -> HashMap<String, u64> {
    let records = match index.list() {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "retention: cannot list the index");
            return HashMap::new();
        }
    };
    let plan = retention::plan(&records, limits, disk, now_us);
    let mut gone = std::collections::HashSet::new();
    for (r, why) in &plan {
        let path = root.join(&r.path);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "retention: cannot delete");
                continue;
            }
        }
        if let Err(e) = index.remove(&r.camera, r.start_us) {
            tracing::warn!(error = %e, "retention: cannot remove the record");
            continue;
        }
        tracing::info!(camera = %r.camera, path = %r.path, reason = ?why, "recording deleted by retention");
        gone.insert((r.camera.clone(), r.start_us));
        if let Some(dir) = path.parent() {
            // Empty day directories go too; a non-empty one stays (the error is expected).
            let _ = std::fs::remove_dir(dir);
        }
    }
    let mut used = HashMap::new();
    for r in records {
        if !gone.contains(&(r.camera.clone(), r.start_us)) {
            *used.entry(r.camera).or_insert(0) += r.bytes;
        }
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_start_up_task_is_restarted_not_taken_for_a_configuration_error() {
        let task = tokio::spawn(std::future::pending::<()>());
        task.abort();
        let source = task.await.unwrap_err();
        let e = CaptureError::Task {
            task: "store opening",
            source,
        };
        assert_eq!(e.exit_code(), ExitCode::Failure);
        assert!(
            e.to_string().starts_with("the store opening task failed"),
            "{e}"
        );
    }
}
