//! The `rtsp` worker: makes the appliance look like an ordinary IP camera to NVRs.
//!
//! Role: serves RTSP mounts — `/cameras/<id>` (and `/cameras/<id>/sub`) restreaming each RTSP
//! camera of `[capture]` (plus `[[rtsp.extra_cameras]]`) without re-encoding, each V4L2 and MJPEG
//! camera from the capture worker's shared-memory H.264 stream, `/thermal/<id>` encoded from each
//! thermal camera's view ring ([`thermal`]), and `/dashboard`, the sensor dashboard rendered by `watchpost-dashboard` from retained bus
//! topics and encoded to H.264 at a low rate — the ONVIF device, media and event services over
//! HTTP (`/onvif/device_service`, `/onvif/media_service`, `/onvif/event_service` with its pull
//! points fed from the bus by [`onvif_events`], snapshots at `/onvif/snapshot/<profile>.jpg`)
//! and a WS-Discovery responder.
//!
//! Design:
//! - gstreamer-rtsp-server runs on its own GLib main loop thread ([`server`]). Every mount is a
//!   shared media: however many clients play it, there is one upstream read (or one encoder),
//!   started with the first client and stopped after the last. Restreams are
//!   `rtspsrc ! rtph264depay ! h264parse ! rtph264pay` (no decoding); upstream URLs and
//!   credentials are set as element properties, never spliced into a launch line. A PLAY
//!   beyond `max_clients_per_mount` is answered 503. RTSP digest authentication uses the
//!   `[auth]` users that have a clear-text password.
//! - The ONVIF protocol lives in the sans-IO `watchpost-onvif` crate; [`onvif_http`] is a thin
//!   axum listener around it, [`discovery`] a thin UDP loop.
//! - The dashboard feeder ([`feed`]) renders at the configured rate, and at once when an alarm
//!   appears, and pushes frames into the live dashboard media's appsrc.
//!
//! Failure and shutdown: configuration problems (bad dashboard size) exit with
//! `ExitCode::Config`; a listener that cannot bind or a missing GStreamer plugin exits with
//! `Unavailable`, so the supervisor retries with backoff. If the GLib thread dies, the main loop
//! stops heartbeating and returns an error. On shutdown the ONVIF listener stops accepting, a
//! WS-Discovery Bye is sent, and the RTSP main loop is quit (clients see the connection close).
// Two FFI reads the bindings do not cover (stall.rs), each with a SAFETY comment.
#![deny(unsafe_code)]

pub mod discovery;
pub mod feed;
pub mod health;
pub mod onvif_events;
pub mod onvif_http;
pub mod server;
pub mod sources;
mod stall;
pub mod thermal;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use watchpost_config::Config;
use watchpost_config::rtsp::DashboardEncoder;
use watchpost_dashboard::{RenderError, Renderer};
use watchpost_onvif::{AuthPolicy, Authenticator, OnvifService};
use watchpost_runtime::{ExitCode, WorkerCtx};

/// Why the worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum RtspError {
    #[error("initialising GStreamer: {message}")]
    GstInit { message: String },
    #[error("GStreamer element `{element}` is missing (install the plugin that provides it)")]
    MissingElement { element: &'static str },
    #[error("dashboard: {0}")]
    Dashboard(#[from] RenderError),
    #[error("setting up the RTSP server: {what}")]
    ServerSetup { what: &'static str },
    #[error("starting the RTSP server thread: {source}")]
    Thread { source: std::io::Error },
    #[error("binding the RTSP listener {addr}: {message}")]
    BindRtsp { addr: SocketAddr, message: String },
    #[error("binding the ONVIF listener {addr}: {source}")]
    BindOnvif {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("binding the WS-Discovery socket {addr}: {source}")]
    BindDiscovery {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("subscribing to {filter}: {message}")]
    Subscribe { filter: String, message: String },
    #[error("the RTSP server main loop stopped unexpectedly")]
    ServerDied,
}

impl RtspError {
    /// The process exit code for this error (see the worker contract).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            RtspError::Dashboard(_) => ExitCode::Config,
            RtspError::GstInit { .. }
            | RtspError::MissingElement { .. }
            | RtspError::BindRtsp { .. }
            | RtspError::BindOnvif { .. }
            | RtspError::BindDiscovery { .. } => ExitCode::Unavailable,
            RtspError::ServerSetup { .. }
            | RtspError::Thread { .. }
            | RtspError::Subscribe { .. }
            | RtspError::ServerDied => ExitCode::Failure,
        }
    }
}

/// Elements the pipelines need, checked before anything binds.
fn check_elements(config: &Config) -> Result<(), RtspError> {
    let mut needed = vec![
        "rtspsrc",
        "rtph264depay",
        "h264parse",
        "rtph264pay",
        "avdec_h264",
        "jpegenc",
        "videoconvert",
        "appsrc",
        "appsink",
    ];
    if sources::upstreams(config)
        .iter()
        .any(|u| u.shm_socket.is_some())
    {
        needed.push("shmsrc");
    }
    let thermal = !sources::thermal_views(config).is_empty();
    if thermal {
        needed.push("videorate");
    }
    if config.rtsp.dashboard.enabled || thermal {
        needed.push(match config.rtsp.dashboard.encoder {
            DashboardEncoder::X264 => "x264enc",
            DashboardEncoder::Openh264 => "openh264enc",
        });
    }
    for element in needed {
        if gstreamer::ElementFactory::find(element).is_none() {
            return Err(RtspError::MissingElement { element });
        }
    }
    Ok(())
}

/// Users whose clear-text password is known (digests need it).
fn digest_users(config: &Config) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for u in &config.auth.users {
        match &u.password {
            Some(p) => v.push((u.name.to_string(), p.expose().to_string())),
            None => tracing::warn!(
                user = %u.name,
                "user has only a password hash: it cannot log in over RTSP/ONVIF digest"
            ),
        }
    }
    v
}

/// A capture worker status of `camera`: whether its mounts can be served, and what its
/// stream measures for the ONVIF profile. An empty payload clears the retained status.
fn camera_status(
    camera: &str,
    payload: &[u8],
    health: &health::SourceHealth,
    service: &Mutex<OnvifService>,
) -> Result<(), serde_json::Error> {
    if payload.is_empty() {
        health.capture_status_cleared(camera);
        return Ok(());
    }
    let status: watchpost_contract::capture::CameraStatus = serde_json::from_slice(payload)?;
    health.capture_status(&status);
    let mut svc = service.lock().unwrap_or_else(|p| p.into_inner());
    let mut model = svc.model().clone();
    if sources::apply_measured(&mut model, &status) {
        tracing::debug!(%camera, "ONVIF profile follows the measured stream");
        svc.set_model(model);
    }
    Ok(())
}

/// Runs the worker until `ctx.shutdown()` is cancelled.
pub async fn run(config: Config, ctx: Arc<WorkerCtx>) -> Result<(), RtspError> {
    gstreamer::init().map_err(|e| RtspError::GstInit {
        message: e.to_string(),
    })?;
    check_elements(&config)?;
    let rc = &config.rtsp;
    let dash_cfg = &rc.dashboard;
    let renderer = if dash_cfg.enabled {
        Some(Renderer::new(
            dash_cfg.width,
            dash_cfg.height,
            &dash_cfg.title,
        )?)
    } else {
        None
    };
    let upstreams = sources::upstreams(&config);
    let thermal_views = sources::thermal_views(&config);
    let users = digest_users(&config);
    let registry = ctx.metrics().clone();
    let shutdown = ctx.shutdown().clone();

    // RTSP server.
    let appsrcs: server::AppSrcs = Arc::default();
    let dashboard_mount = renderer.as_ref().map(|_| server::DashboardMount {
        width: dash_cfg.width,
        height: dash_cfg.height,
        fps: dash_cfg.fps,
        bitrate_kbps: dash_cfg.bitrate_kbps,
        keyframe_interval_frames: dash_cfg.keyframe_interval_frames,
        openh264: dash_cfg.encoder == DashboardEncoder::Openh264,
        sources: appsrcs.clone(),
    });
    let thermal_mounts: Vec<server::ThermalMount> = thermal_views
        .iter()
        .map(|t| server::ThermalMount {
            path: t.path.clone(),
            width: t.width,
            height: t.height,
            fps: t.fps,
            ring: t.ring.clone(),
            encoder: server::EncoderSpec {
                bitrate_kbps: rc.thermal.bitrate_kbps,
                keyframe_interval_frames: rc.thermal.keyframe_interval_frames,
                openh264: dash_cfg.encoder == DashboardEncoder::Openh264,
            },
            sources: Arc::default(),
        })
        .collect();
    let health = health::SourceHealth::new(upstreams.iter().map(|u| {
        let probe = match u.shm_socket {
            Some(_) => None,
            None => health::rtsp_host_port(&u.url),
        };
        (u.path.clone(), health::MountHealth::new(&u.camera, probe))
    }));
    let settings = server::ServerSettings {
        address: rc.listen.addr(),
        udp: rc.udp,
        max_clients_per_mount: rc.max_clients_per_mount,
        upstream_latency_ms: rc.upstream_latency_ms,
        session_timeout_s: rc.session_timeout_s,
        stalled_client_timeout_s: rc.stalled_client_timeout_s,
        upstream_timeout_ms: rc.upstream_timeout_ms,
        users: if rc.rtsp_auth {
            users.clone()
        } else {
            Vec::new()
        },
        health: health.clone(),
    };
    if rc.rtsp_auth && users.is_empty() {
        tracing::warn!("rtsp_auth is on but no user has a clear-text password: nobody can play");
    }
    let rtsp = server::start(
        &settings,
        &upstreams,
        dashboard_mount.as_ref(),
        &thermal_mounts,
        &registry,
    )?;
    let thermal_tasks: Vec<_> = thermal_mounts
        .iter()
        .map(|t| {
            tokio::spawn(thermal::run(
                t.ring.clone(),
                t.sources.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    let probe_task = tokio::spawn(health::run_probes(health.clone(), shutdown.clone()));
    let rtsp_addr = SocketAddr::new(rc.listen.ip(), rtsp.port);

    // ONVIF over HTTP.
    let onvif_listener = tokio::net::TcpListener::bind(rc.onvif_listen.addr())
        .await
        .map_err(|source| RtspError::BindOnvif {
            addr: rc.onvif_listen.addr(),
            source,
        })?;
    let onvif_addr = onvif_listener
        .local_addr()
        .map_err(|source| RtspError::BindOnvif {
            addr: rc.onvif_listen.addr(),
            source,
        })?;
    let model = sources::device_model(
        &config,
        &upstreams,
        &thermal_views,
        onvif_addr.port(),
        rtsp.port,
        env!("CARGO_PKG_VERSION"),
    );
    let user_map: HashMap<String, String> = users.iter().cloned().collect();
    let authenticator = Authenticator::new(
        user_map.clone(),
        AuthPolicy {
            created_window_s: i64::from(rc.onvif_auth_window_s),
            ..AuthPolicy::default()
        },
    );
    let identity = watchpost_onvif::discovery::Identity {
        endpoint: sources::endpoint_uuid(&model.network.mac),
        scopes: model.scopes.clone(),
        xaddrs: vec![format!(
            "http://{}:{}/onvif/device_service",
            model.advertised_host,
            onvif_addr.port()
        )],
        metadata_version: 1,
    };
    let mut onvif = OnvifService::new(model, authenticator, rc.onvif_auth);
    onvif.set_admins(onvif_http::admin_users(&config));
    let service = Arc::new(Mutex::new(onvif));
    let events_wake = Arc::new(tokio::sync::Notify::new());
    let shared = Arc::new(feed::Shared {
        // Written by the hub while nobody has claimed the box.
        setup_code_file: Some(config.system.data_dir.join("setup-code")),
        ..Default::default()
    });
    let http_state = onvif_http::HttpState {
        service: service.clone(),
        shared: shared.clone(),
        upstreams: Arc::new(upstreams.clone()),
        thermal: Arc::new(thermal_views.clone()),
        snapshots_dir: config.capture.snapshots_dir(&config.system.data_dir),
        snapshot_auth: rc.onvif_auth.then(|| onvif_http::snapshot_auth(user_map)),
        health: health.clone(),
        registry: registry.clone(),
        events_wake: events_wake.clone(),
        worker: ctx.clone(),
    };
    let app = onvif_http::router(http_state);
    let http_shutdown = shutdown.clone();
    let http_task = tokio::spawn(async move {
        let r = axum::serve(onvif_listener, app)
            .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "ONVIF listener failed");
        }
    });

    // WS-Discovery.
    let mut listeners: Vec<(String, SocketAddr)> =
        vec![("rtsp".into(), rtsp_addr), ("onvif".into(), onvif_addr)];
    let discovery_task = if rc.discovery.enabled {
        let d = &rc.discovery;
        let responder =
            discovery::Responder::bind(d.bind, d.port, d.interface_addr, d.multicast, identity)?;
        if let Some(a) = responder.local_addr() {
            listeners.push(("discovery".into(), a));
        }
        Some(tokio::spawn(
            responder.run(registry.clone(), shutdown.clone()),
        ))
    } else {
        None
    };

    // Bus: the dashboard's inputs.
    let bus = watchpost_bus::Bus::connect(&config, "rtsp", shutdown.clone());
    // ONVIF events from what the bus knows (sensors, cameras, thermal rules, detections).
    let events_task = onvif_events::start(
        &bus,
        service.clone(),
        events_wake,
        registry.clone(),
        shutdown.clone(),
    )
    .await?;
    let mut subscriptions = Vec::new();
    // Filters are written out: `Bus::topic` sanitises levels, wildcards included. Camera
    // tiles come from the capture worker's status (and its own liveness); the same status
    // says whether a camera mount can be served and what its stream measures (ONVIF).
    let mut tails = vec!["capture/camera/+/status"];
    if renderer.is_some() {
        tails.extend([
            "sensors/+/state",
            "neasmart/zone/+/+",
            "system/capture/status",
        ]);
    }
    {
        for tail in tails {
            let filter = format!("{}/{tail}", bus.prefix());
            let rx = bus
                .subscribe(&filter)
                .await
                .map_err(|e| RtspError::Subscribe {
                    filter: filter.clone(),
                    message: e.to_string(),
                })?;
            subscriptions.push(rx);
        }
    }
    let (msg_tx, mut msg_rx) = tokio::sync::mpsc::channel::<watchpost_bus::Message>(1024);
    for mut rx in subscriptions {
        let tx = msg_tx.clone();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if tx.send(m).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(msg_tx);

    let feed_task = renderer.map(|r| {
        tokio::spawn(feed::run(
            r,
            dash_cfg.fps,
            dash_cfg.page_interval_ms,
            shared.clone(),
            appsrcs.clone(),
            registry.clone(),
            shutdown.clone(),
        ))
    });

    ctx.ready(listeners);
    ctx.status(format!(
        "{} camera stream(s), {} thermal view(s){}",
        upstreams.len(),
        thermal_views.len(),
        if dash_cfg.enabled { " + dashboard" } else { "" }
    ));
    let bad_payloads = registry.counter(
        "watchpost_rtsp_bus_payload_errors_total",
        "Bus messages the dashboard could not read",
        &[],
    );
    let prefix = format!("{}/", bus.prefix());
    let mut heartbeat = tokio::time::interval(ctx.heartbeat_interval());
    let mut last_log = std::time::Instant::now() - Duration::from_secs(60);
    let result = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            _ = heartbeat.tick() => {
                if !rtsp.is_alive() {
                    break Err(RtspError::ServerDied);
                }
                ctx.heartbeat();
            }
            Some(m) = msg_rx.recv() => {
                let Some(rel) = m.topic.strip_prefix(&prefix) else { continue };
                let levels: Vec<&str> = rel.split('/').collect();
                if let ["capture", "camera", camera, "status"] = levels.as_slice() {
                    if let Err(e) = camera_status(camera, &m.payload, &health, &service) {
                        bad_payloads.inc();
                        if last_log.elapsed() >= Duration::from_secs(10) {
                            last_log = std::time::Instant::now();
                            tracing::warn!(error = %e, "ignoring a camera status");
                        }
                    }
                    if !dash_cfg.enabled {
                        continue;
                    }
                }
                let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
                let alarms_before = state.alarms().len();
                match state.apply(&levels, &m.payload) {
                    Ok(true) => {
                        if state.alarms().len() != alarms_before {
                            tracing::debug!(alarms = state.alarms().len(), "alarm set changed; rendering now");
                            shared.urgent.notify_one();
                        }
                    }
                    Ok(false) => {}
                    Err(e) => {
                        bad_payloads.inc();
                        if last_log.elapsed() >= Duration::from_secs(10) {
                            last_log = std::time::Instant::now();
                            tracing::warn!(error = %e, "ignoring a bus message");
                        }
                    }
                }
            }
        }
    };
    // Graceful stop: HTTP drains, discovery says Bye, the feeder stops, RTSP loop quits.
    shutdown.cancel();
    let grace = Duration::from_secs(2);
    let _ = tokio::time::timeout(grace, http_task).await;
    if let Some(t) = discovery_task {
        let _ = tokio::time::timeout(grace, t).await;
    }
    if let Some(t) = feed_task {
        let _ = tokio::time::timeout(grace, t).await;
    }
    for t in thermal_tasks {
        let _ = tokio::time::timeout(grace, t).await;
    }
    let _ = tokio::time::timeout(grace, probe_task).await;
    let _ = tokio::time::timeout(grace, events_task).await;
    drop(rtsp);
    result
}
