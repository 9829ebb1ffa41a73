//! The RTSP server: gstreamer-rtsp-server on its own GLib main loop thread, one shared media
//! factory per mount, a per-mount client cap and optional digest authentication.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::gst_rtsp;
use gstreamer_rtsp_server::prelude::*;
use watchpost_runtime::Registry;

use crate::RtspError;
use crate::health::{SourceHealth, Verdict};
use crate::sources::Upstream;
use crate::stall::StallWatch;

/// What the dashboard mount needs from the feeder: the appsrcs of live dashboard media.
pub type AppSrcs = Arc<Mutex<Vec<gst_app::AppSrc>>>;

/// Dashboard stream parameters.
#[derive(Debug, Clone)]
pub struct DashboardMount {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub keyframe_interval_frames: u32,
    pub openh264: bool,
    pub sources: AppSrcs,
}

/// Encoder settings of a mount fed with raw RGB frames (the dashboard, the thermal views).
#[derive(Debug, Clone, Copy)]
pub struct EncoderSpec {
    pub bitrate_kbps: u32,
    pub keyframe_interval_frames: u32,
    pub openh264: bool,
}

/// One `/thermal/<id>` mount: frames come from the capture worker's view ring through the
/// thermal feeder, which pushes them into `sources`.
#[derive(Debug, Clone)]
pub struct ThermalMount {
    pub path: String,
    /// Caps used until the feeder sees the ring's real layout (the ring at start, if any).
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub ring: std::path::PathBuf,
    pub encoder: EncoderSpec,
    pub sources: AppSrcs,
}

/// RGB caps of `width`×`height` at `fps_num/fps_den`.
pub fn rgb_caps(width: u32, height: u32, fps_num: u32, fps_den: u32) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "RGB")
        .field("width", width as i32)
        .field("height", height as i32)
        .field(
            "framerate",
            gst::Fraction::new(fps_num.max(1) as i32, fps_den.max(1) as i32),
        )
        .build()
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub address: std::net::SocketAddr,
    pub udp: bool,
    pub max_clients_per_mount: u32,
    pub upstream_latency_ms: u32,
    /// Sessions without any sign of life for this long are removed with their connection.
    pub session_timeout_s: u32,
    /// A TCP player that takes nothing for this long while its source delivers is
    /// disconnected (0: never); see `stall.rs`.
    pub stalled_client_timeout_s: u32,
    /// How long an upstream read waits for the camera (TCP connect, each RTSP answer).
    pub upstream_timeout_ms: u32,
    /// `(user, password)` pairs; empty = no authentication.
    pub users: Vec<(String, String)>,
    /// Whether each camera mount's source can be read; a DESCRIBE of a mount whose source is
    /// known to be offline is answered 503 at once.
    pub health: Arc<SourceHealth>,
}

/// Threads that handle RTSP clients. Each client gets its own (a DESCRIBE waits while its
/// mount's media prepares, which takes up to the upstream timeout for a camera that does not
/// answer; clients sharing a thread would wait with it). Beyond this many, new clients share
/// the existing threads in turn.
fn client_threads(mounts: usize, max_clients_per_mount: u32) -> i32 {
    let wanted = mounts.saturating_mul(max_clients_per_mount as usize) + 8;
    wanted.clamp(16, 1024) as i32
}

/// A running server; dropping it stops the main loop.
#[derive(Debug)]
pub struct RunningServer {
    pub port: u16,
    main_loop: glib::MainLoop,
    thread: Option<std::thread::JoinHandle<()>>,
    pub clients: Arc<Mutex<HashMap<String, u32>>>,
}

impl RunningServer {
    /// Whether the main loop thread is still alive.
    pub fn is_alive(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Clients currently playing, per mount.
    pub fn clients_per_mount(&self) -> HashMap<String, u32> {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The mount a request URI addresses: its path without a trailing `/` or `stream=N` control.
fn mount_of(uri: &str) -> String {
    let after_scheme = uri.split_once("://").map(|(_, r)| r).unwrap_or(uri);
    let path = after_scheme
        .find('/')
        .map(|i| &after_scheme[i..])
        .unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path).trim_end_matches('/');
    let path = match path.rsplit_once('/') {
        Some((head, last)) if last.starts_with("stream=") => head,
        _ => path,
    };
    if path.is_empty() {
        "/".into()
    } else {
        path.to_string()
    }
}

fn restream_launch(u: &Upstream, latency_ms: u32) -> String {
    if u.shm_socket.is_some() {
        // The capture worker's H.264 byte stream (SPS/PPS with every keyframe), one access
        // unit per buffer; the socket path is set as a property in media-configure. The leaky
        // queue, as below, keeps the reader going when the server stops pulling.
        return "( shmsrc name=src is-live=true do-timestamp=true ! queue name=alive leaky=downstream max-size-buffers=0 max-size-bytes=8388608 max-size-time=2000000000 ! video/x-h264,stream-format=byte-stream,alignment=au ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 config-interval=-1 )".into();
    }
    // Only fixed, numeric values go into the launch line; the URL and the credentials are
    // set as properties in media-configure, so nothing from the config is parsed as syntax.
    // The leaky queue bounds what piles up when the server stops pulling (a client that
    // stopped reading can hold the shared media): at most 2 s (or 8 MiB) of RTP, oldest
    // dropped, instead of the jitter buffer growing at the camera's bitrate for as long as
    // the stall lasts. The queue is also where the stall watch sees the source deliver
    // (stall.rs). The caps pick the H.264 video stream of a camera that also sends audio.
    format!(
        "( rtspsrc name=src latency={latency_ms} protocols={} ! application/x-rtp,media=video,encoding-name=H264 ! queue name=alive leaky=downstream max-size-buffers=0 max-size-bytes=8388608 max-size-time=2000000000 ! rtph264depay ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 config-interval=-1 )",
        if u.tcp { "tcp" } else { "udp+tcp" }
    )
}

/// `appsrc (RGB) ! videoconvert ! H.264 ! rtph264pay`; only numbers go into the line. The
/// appsrc caps are given here (`Some`) or set on the element in media-configure (`None`).
///
/// Without fixed caps (the thermal views) a `videorate` puts the frames, stamped on arrival, on
/// the exact grid of the caps' frame rate, so that clients see the ring's nominal rate. The
/// leaky `alive` queue lets the stall watch see frames arrive while the server is not pulling.
fn raw_encode_launch(caps: Option<(u32, u32, u32)>, e: EncoderSpec) -> String {
    // One slice per picture: with zerolatency's sliced threads x264 cuts each picture into
    // one slice per thread, and a keyframe's later slices did not survive RTP payloading (every
    // client decoded the lower half of each keyframe as concealed garbage: the dashboard's
    // "stretched tiles").
    let encoder = if e.openh264 {
        format!(
            "openh264enc bitrate={} gop-size={} rate-control=bitrate complexity=low",
            e.bitrate_kbps * 1000,
            e.keyframe_interval_frames
        )
    } else {
        format!(
            "x264enc tune=zerolatency speed-preset=ultrafast sliced-threads=false bitrate={} key-int-max={} ! video/x-h264,profile=constrained-baseline",
            e.bitrate_kbps, e.keyframe_interval_frames
        )
    };
    let (caps, rate) = match caps {
        Some((w, h, fps)) => (
            format!(" caps=video/x-raw,format=RGB,width={w},height={h},framerate={fps}/1"),
            "",
        ),
        None => (String::new(), " ! videorate"),
    };
    format!(
        "( appsrc name=src is-live=true format=time do-timestamp=true max-buffers=2 leaky-type=downstream{caps} ! queue name=alive leaky=downstream max-size-buffers=2 max-size-bytes=0 max-size-time=0{rate} ! videoconvert ! video/x-raw,format=I420 ! {encoder} ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )
}

fn dashboard_launch(d: &DashboardMount) -> String {
    raw_encode_launch(
        Some((d.width, d.height, d.fps)),
        EncoderSpec {
            bitrate_kbps: d.bitrate_kbps,
            keyframe_interval_frames: d.keyframe_interval_frames,
            openh264: d.openh264,
        },
    )
}

/// Registers the appsrc of a newly configured raw-fed media in `sources` (and forgets it when
/// the media is unprepared); returns it.
fn register_appsrc(media: &rtsp::RTSPMedia, sources: &AppSrcs) -> Option<gst_app::AppSrc> {
    let src = media
        .element()
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("src"))
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())?;
    sources
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(src.clone());
    let sources = sources.clone();
    let registered = src.clone();
    media.connect_unprepared(move |_| {
        sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|s| s != &registered);
    });
    Some(src)
}

fn configure_factory(f: &rtsp::RTSPMediaFactory, settings: &ServerSettings) {
    f.set_shared(true);
    f.set_eos_shutdown(false);
    f.set_suspend_mode(rtsp::RTSPSuspendMode::None);
    let mut protocols = gst_rtsp::RTSPLowerTrans::TCP;
    if settings.udp {
        protocols |= gst_rtsp::RTSPLowerTrans::UDP;
    }
    f.set_protocols(protocols);
    if !settings.users.is_empty() {
        let role = gst::Structure::builder("user")
            .field("media.factory.access", true)
            .field("media.factory.construct", true)
            .build();
        f.add_role_from_structure(&role);
    }
}

/// Metrics of the RTSP side.
#[derive(Debug, Clone)]
struct Meters {
    registry: Registry,
    /// Clients playing per mount (shared with the client handlers), for the fan-out.
    clients: Arc<Mutex<HashMap<String, u32>>>,
}

impl Meters {
    fn upstream_open(&self, mount: &str) {
        self.registry
            .counter(
                "watchpost_rtsp_media_prepared_total",
                "Shared media pipelines started (one upstream read each)",
                &[("mount", mount)],
            )
            .inc();
    }
    fn session(&self, mount: &str, ok: bool) {
        let name = if ok {
            "watchpost_rtsp_session_starts_total"
        } else {
            "watchpost_rtsp_session_refusals_total"
        };
        self.registry
            .counter(
                name,
                "RTSP PLAY requests accepted / refused",
                &[("mount", mount)],
            )
            .inc();
    }
    fn offline(&self, mount: &str) {
        self.registry
            .counter(
                "watchpost_rtsp_offline_answers_total",
                "DESCRIBE requests answered at once because the mount's camera is offline",
                &[("mount", mount)],
            )
            .inc();
    }
    fn clients(&self, mount: &str, n: u32) {
        self.registry
            .gauge(
                "watchpost_rtsp_clients",
                "Clients playing, per mount",
                &[("mount", mount)],
            )
            .set(f64::from(n));
    }
    fn bytes_counter(&self, mount: &str) -> watchpost_runtime::metrics::Counter {
        self.registry.counter(
            "watchpost_rtsp_payload_bytes_total",
            "RTP payload bytes produced per mount (before fan-out to clients)",
            &[("mount", mount)],
        )
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One client stopped playing `mounts`.
fn release(
    clients: &Mutex<HashMap<String, u32>>,
    meters: &Meters,
    mounts: impl IntoIterator<Item = String>,
) {
    let mut map = lock(clients);
    for mount in mounts {
        if let Some(n) = map.get_mut(&mount) {
            *n = n.saturating_sub(1);
            meters.clients(&mount, *n);
        }
    }
}

/// Counts a mount's RTP payload once as produced and, times the clients playing it, as sent.
fn count_payload(media: &rtsp::RTSPMedia, meters: &Meters, mount: &str) {
    let produced = meters.bytes_counter(mount);
    let sent = meters.registry.counter(
        "watchpost_rtsp_bytes_out_total",
        "RTP payload bytes sent to clients per mount (produced bytes times the clients playing)",
        &[("mount", mount)],
    );
    let clients = meters.clients.clone();
    let mount = mount.to_string();
    let Some(pay) = media
        .element()
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("pay0"))
    else {
        return;
    };
    if let Some(pad) = pay.static_pad("src") {
        // The payloader pushes fragmented NAL units (FU-A) as buffer lists: count both.
        pad.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
            move |_, info| {
                let size = match &info.data {
                    Some(gst::PadProbeData::Buffer(b)) => b.size() as u64,
                    Some(gst::PadProbeData::BufferList(l)) => l.calculate_size() as u64,
                    _ => 0,
                };
                if size > 0 {
                    produced.add(size);
                    let playing = clients
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(&mount)
                        .copied()
                        .unwrap_or(0);
                    sent.add(size * u64::from(playing));
                }
                gst::PadProbeReturn::Ok
            },
        );
    }
}

/// Tells `health` whether the media of `mount` prepared (the source delivered) or was
/// unprepared without ever preparing (the read failed).
fn track_outcome(media: &rtsp::RTSPMedia, health: &Arc<SourceHealth>, mount: &str) {
    let prepared = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (h, m, p) = (health.clone(), mount.to_string(), prepared.clone());
    media.connect_prepared(move |_| {
        p.store(true, std::sync::atomic::Ordering::Relaxed);
        h.read_ok(&m);
    });
    let (h, m) = (health.clone(), mount.to_string());
    media.connect_unprepared(move |_| {
        if !prepared.load(std::sync::atomic::Ordering::Relaxed) {
            tracing::info!(mount = %m, "the camera delivered no stream; the mount counts as offline for a while");
            h.read_failed(
                &m,
                "the camera delivered no stream (refused, timed out or no H.264 video)",
            );
        }
    });
}

/// Starts the server with its mounts on a new main loop thread.
pub fn start(
    settings: &ServerSettings,
    upstreams: &[Upstream],
    dashboard: Option<&DashboardMount>,
    thermal: &[ThermalMount],
    registry: &Registry,
) -> Result<RunningServer, RtspError> {
    let clients: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let meters = Meters {
        registry: registry.clone(),
        clients: clients.clone(),
    };
    let watch = StallWatch::new(settings.stalled_client_timeout_s, registry);
    let context = glib::MainContext::new();
    let main_loop = glib::MainLoop::new(Some(&context), false);
    let server = rtsp::RTSPServer::new();
    let pool = rtsp::RTSPThreadPool::new();
    pool.set_max_threads(client_threads(
        upstreams.len() + thermal.len() + usize::from(dashboard.is_some()),
        settings.max_clients_per_mount,
    ));
    server.set_thread_pool(Some(&pool));
    server.set_address(&settings.address.ip().to_string());
    server.set_service(&settings.address.port().to_string());
    let mounts = server.mount_points().ok_or(RtspError::ServerSetup {
        what: "mount points",
    })?;
    for u in upstreams {
        let f = rtsp::RTSPMediaFactory::new();
        f.set_launch(&restream_launch(u, settings.upstream_latency_ms));
        configure_factory(&f, settings);
        let shm = u.shm_socket.clone();
        let (url, user, pass, path) = (
            u.url.clone(),
            u.username.clone(),
            u.password.clone(),
            u.path.clone(),
        );
        let meters = meters.clone();
        let watch = watch.clone();
        let health = settings.health.clone();
        let tcp_timeout_us = u64::from(settings.upstream_timeout_ms) * 1000;
        f.connect_media_configure(move |_, media| {
            meters.upstream_open(&path);
            count_payload(media, &meters, &path);
            watch.watch_source(media, &path);
            track_outcome(media, &health, &path);
            let src = media
                .element()
                .downcast_ref::<gst::Bin>()
                .and_then(|b| b.by_name("src"));
            if let (Some(src), Some(socket)) = (&src, &shm) {
                src.set_property("socket-path", socket.to_string_lossy().as_ref());
            } else if let Some(src) = src {
                src.set_property("location", &url);
                src.set_property("tcp-timeout", tcp_timeout_us);
                if let Some(user) = &user {
                    src.set_property("user-id", user);
                }
                if let Some(pass) = &pass {
                    src.set_property("user-pw", pass);
                }
            }
        });
        mounts.add_factory(&u.path, f);
    }
    if let Some(d) = dashboard {
        let f = rtsp::RTSPMediaFactory::new();
        f.set_launch(&dashboard_launch(d));
        configure_factory(&f, settings);
        let sources = d.sources.clone();
        let meters = meters.clone();
        let watch = watch.clone();
        f.connect_media_configure(move |_, media| {
            meters.upstream_open("/dashboard");
            count_payload(media, &meters, "/dashboard");
            watch.watch_source(media, "/dashboard");
            register_appsrc(media, &sources);
        });
        mounts.add_factory("/dashboard", f);
    }
    for t in thermal {
        let f = rtsp::RTSPMediaFactory::new();
        f.set_launch(&raw_encode_launch(None, t.encoder));
        configure_factory(&f, settings);
        let t2 = t.clone();
        let meters = meters.clone();
        let watch = watch.clone();
        f.connect_media_configure(move |_, media| {
            meters.upstream_open(&t2.path);
            count_payload(media, &meters, &t2.path);
            watch.watch_source(media, &t2.path);
            // The ring's layout as it is now (the capture worker may have restarted with
            // another size since we started); the feeder follows later changes.
            let (w, h, num, den) = match watchpost_frame_ring::RingReader::open(&t2.ring) {
                Ok(r) => {
                    let l = r.layout();
                    (l.width, l.height, l.fps_num, l.fps_den)
                }
                Err(_) => (t2.width, t2.height, t2.fps, 1),
            };
            if let Some(src) = register_appsrc(media, &t2.sources) {
                src.set_caps(Some(&rgb_caps(w, h, num, den)));
            }
        });
        mounts.add_factory(&t.path, f);
    }
    if !settings.users.is_empty() {
        let auth = rtsp::RTSPAuth::new();
        auth.set_supported_methods(gst_rtsp::RTSPAuthMethod::Digest);
        let token = rtsp::RTSPToken::builder()
            .field("media.factory.role", "user")
            .build();
        for (user, pass) in &settings.users {
            auth.add_digest(user, pass, &token);
        }
        server.set_auth(Some(&auth));
    }

    // Client accounting: which mounts each client plays, for the cap and the gauge. A client
    // counts once per mount however many PLAYs it sends (PAUSE then PLAY resumes, it does not
    // start a second session); TEARDOWN or closing the connection releases it.
    let playing: Arc<Mutex<HashMap<usize, BTreeSet<String>>>> = Arc::default();
    let cap = settings.max_clients_per_mount;
    let mount_in = |ctx: &rtsp::RTSPContext| {
        ctx.uri()
            .map(|u| mount_of(&u.request_uri()))
            .unwrap_or_default()
    };
    {
        let clients = clients.clone();
        let playing = playing.clone();
        let meters = meters.clone();
        let session_timeout = settings.session_timeout_s;
        let watch = watch.clone();
        let health = settings.health.clone();
        server.connect_client_connected(move |_, client| {
            let id = client.as_ptr() as usize;
            // A session that expires takes its TCP connection with it (a hung player that
            // stopped reading would otherwise keep the connection, and the media, forever).
            client.set_post_session_timeout(0);
            client.connect_new_session(move |_, session| session.set_timeout(session_timeout));
            let (h0, m0) = (health.clone(), meters.clone());
            client.connect_pre_describe_request(move |_, ctx| {
                let mount = mount_in(ctx);
                match h0.verdict(&mount) {
                    Verdict::Serve => gst_rtsp::RTSPStatusCode::Ok,
                    Verdict::Offline { reason } => {
                        m0.offline(&mount);
                        tracing::debug!(%mount, %reason, "camera offline; DESCRIBE answered 503");
                        gst_rtsp::RTSPStatusCode::ServiceUnavailable
                    }
                }
            });
            let (c1, p1, m1) = (clients.clone(), playing.clone(), meters.clone());
            client.connect_pre_play_request(move |_, ctx| {
                let mount = mount_in(ctx);
                let resumed = lock(&p1).get(&id).is_some_and(|m| m.contains(&mount));
                let n = lock(&c1).get(&mount).copied().unwrap_or(0);
                if !resumed && n >= cap {
                    m1.session(&mount, false);
                    tracing::warn!(%mount, clients = n, "client cap reached; PLAY refused");
                    gst_rtsp::RTSPStatusCode::ServiceUnavailable
                } else {
                    gst_rtsp::RTSPStatusCode::Ok
                }
            });
            let (c2, p2, m2) = (clients.clone(), playing.clone(), meters.clone());
            let w2 = watch.clone();
            client.connect_play_request(move |_, ctx| {
                if let Some(session) = ctx.session() {
                    w2.played(session);
                }
                let mount = mount_in(ctx);
                if !lock(&p2).entry(id).or_default().insert(mount.clone()) {
                    return;
                }
                let mut map = lock(&c2);
                let n = map.entry(mount.clone()).or_insert(0);
                *n += 1;
                m2.clients(&mount, *n);
                m2.session(&mount, true);
            });
            let (c3, p3, m3) = (clients.clone(), playing.clone(), meters.clone());
            client.connect_teardown_request(move |_, ctx| {
                let mount = mount_in(ctx);
                if lock(&p3).get_mut(&id).is_some_and(|m| m.remove(&mount)) {
                    release(&c3, &m3, [mount]);
                }
            });
            let (c4, p4, m4) = (clients.clone(), playing.clone(), meters.clone());
            client.connect_closed(move |_| {
                let mounts = lock(&p4).remove(&id).unwrap_or_default();
                release(&c4, &m4, mounts);
            });
        });
    }

    // Expired sessions are removed only when someone asks: the pool's watch does, on the
    // server's own main context.
    if let Some(pool) = server.session_pool() {
        pool.create_watch(None, glib::Priority::DEFAULT, |pool| {
            let removed = pool.cleanup();
            if removed > 0 {
                tracing::info!(removed, "expired RTSP sessions removed");
            }
            glib::ControlFlow::Continue
        })
        .attach(Some(&context));
    }

    // Once a second: wake the streams of TCP players, close the players that hung.
    {
        let server = server.clone();
        glib::timeout_source_new(
            std::time::Duration::from_secs(1),
            Some("rtsp-stall-watch"),
            glib::Priority::DEFAULT,
            move || {
                watch.tick(&server);
                glib::ControlFlow::Continue
            },
        )
        .attach(Some(&context));
    }

    let (tx, rx) = std::sync::mpsc::channel::<Result<u16, String>>();
    let ml = main_loop.clone();
    let thread = std::thread::Builder::new()
        .name("rtsp-glib".into())
        .spawn(move || {
            let r = context.with_thread_default(|| match server.attach(Some(&context)) {
                Ok(_source) => {
                    let _ = tx.send(Ok(server.bound_port().max(0) as u16));
                    ml.run();
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            });
            if let Err(e) = r {
                tracing::error!(error = %e, "cannot acquire the RTSP main context");
            }
        })
        .map_err(|source| RtspError::Thread { source })?;
    let port = match rx.recv_timeout(std::time::Duration::from_secs(10)) {
        Ok(Ok(p)) => p,
        Ok(Err(message)) => {
            return Err(RtspError::BindRtsp {
                addr: settings.address,
                message,
            });
        }
        Err(_) => {
            return Err(RtspError::BindRtsp {
                addr: settings.address,
                message: "the RTSP server thread did not start".into(),
            });
        }
    };
    Ok(RunningServer {
        port,
        main_loop,
        thread: Some(thread),
        clients,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_from_uris() {
        assert_eq!(mount_of("rtsp://h:1/dashboard/"), "/dashboard");
        assert_eq!(mount_of("rtsp://h:1/cameras/a/stream=0"), "/cameras/a");
        assert_eq!(mount_of("rtsp://h:1/cameras/a/sub"), "/cameras/a/sub");
        assert_eq!(mount_of("rtsp://h:1"), "/");
    }
}
