//! Players that hang on RTP over TCP.
//!
//! gstreamer-rtsp-server sends the RTP of a shared media to its TCP players from one send
//! thread per stream. When every TCP player of the stream reports back-pressure (its
//! connection takes nothing), that thread stops pulling from the media and waits to be woken
//! by a completed send; when another player joins, only the stream's next RTCP packet wakes it
//! (seconds later). A player that hung without closing its connection also keeps its client
//! slot and its backlog for as long as the connection stays open.
//!
//! The watch runs every second on the server's main context and
//! - wakes the send thread of every stream with a playing TCP player (`message_sent` on its
//!   transports), so a newly joined player is served; the hung player's backlog then fills
//!   and the server drops it from the stream;
//! - closes the connection of a TCP player that has taken nothing for
//!   `stalled_client_timeout_s` while its mount's source kept delivering (seen by a probe
//!   before the leaky queue `alive` of every mount's pipeline), so it holds neither a client
//!   slot nor its backlog.
//!
//! A paused player is not judged (its session media is not in the PLAYING state), nor is one
//! on UDP (nothing waits for it).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::glib::translate::ToGlibPtr;
use gstreamer::prelude::*;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::gst_rtsp;
use gstreamer_rtsp_server::prelude::*;
use watchpost_runtime::Registry;

/// A source counts as delivering when its last buffer is at most this old.
const SOURCE_ALIVE_MS: u64 = 2_000;

/// What a mount's source last delivered.
#[derive(Debug, Clone)]
struct Source {
    mount: String,
    last_ms: Arc<AtomicU64>,
}

/// The stall watch of one server.
#[derive(Debug)]
pub(crate) struct StallWatch {
    base: Instant,
    timeout: Option<Duration>,
    registry: Registry,
    /// Per prepared media (by pointer): its mount and its source's last delivery.
    sources: Mutex<HashMap<usize, Source>>,
    /// Per TCP stream transport (by pointer): when a message last finished sending on it.
    sent: Mutex<HashMap<usize, Arc<AtomicU64>>>,
    /// Set while the watch itself calls `message_sent` to wake a stream, so that the wake-up
    /// is not taken for a completed send.
    waking: Arc<AtomicBool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn key<T: glib::object::ObjectType>(o: &T) -> usize {
    o.as_ptr() as usize
}

/// Whether `tr` carries RTP over the RTSP TCP connection.
fn is_tcp(tr: &rtsp::RTSPStreamTransport) -> bool {
    #[allow(unsafe_code)]
    // SAFETY: `tr` is a valid GstRTSPStreamTransport for the whole call (we hold a reference).
    // The returned GstRTSPTransport is owned by `tr`, may be NULL before SETUP, and is only
    // read here, before `tr` can go.
    unsafe {
        let t = rtsp::ffi::gst_rtsp_stream_transport_get_transport(tr.to_glib_none().0);
        !t.is_null() && (*t).lower_transport & gst_rtsp::ffi::GST_RTSP_LOWER_TRANS_TCP != 0
    }
}

/// Whether the session media is playing (not paused, not yet started).
fn is_playing(sm: &rtsp::RTSPSessionMedia) -> bool {
    #[allow(unsafe_code)]
    // SAFETY: `sm` is a valid GstRTSPSessionMedia for the whole call (we hold a reference);
    // the function only reads its state under the object's lock.
    let state = unsafe { rtsp::ffi::gst_rtsp_session_media_get_rtsp_state(sm.to_glib_none().0) };
    state == gst_rtsp::ffi::GST_RTSP_STATE_PLAYING
}

impl StallWatch {
    /// `timeout_s` 0: players are woken for but never disconnected.
    pub(crate) fn new(timeout_s: u32, registry: &Registry) -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            timeout: (timeout_s > 0).then(|| Duration::from_secs(u64::from(timeout_s))),
            registry: registry.clone(),
            sources: Mutex::default(),
            sent: Mutex::default(),
            waking: Arc::default(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// Watches the source of a newly configured media of `mount` (the sink pad of its
    /// `alive` queue) until the media is unprepared.
    pub(crate) fn watch_source(self: &Arc<Self>, media: &rtsp::RTSPMedia, mount: &str) {
        let Some(pad) = media
            .element()
            .downcast_ref::<gst::Bin>()
            .and_then(|b| b.by_name("alive"))
            .and_then(|q| q.static_pad("sink"))
        else {
            tracing::warn!(%mount, "no alive queue in the mount's pipeline; stalled players of it are not detected");
            return;
        };
        let last_ms = Arc::new(AtomicU64::new(0));
        let (base, seen) = (self.base, last_ms.clone());
        pad.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
            move |_, _| {
                seen.store(base.elapsed().as_millis() as u64, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            },
        );
        let id = key(media);
        lock(&self.sources).insert(
            id,
            Source {
                mount: mount.to_string(),
                last_ms,
            },
        );
        let watch = Arc::downgrade(self);
        media.connect_unprepared(move |_| {
            if let Some(w) = watch.upgrade() {
                lock(&w.sources).remove(&id);
            }
        });
    }

    /// A PLAY of `session` was answered: (re)start the send clock of its TCP transports and
    /// wake their streams.
    pub(crate) fn played(&self, session: &rtsp::RTSPSession) {
        let now = self.now_ms();
        for sm in session.filter(None) {
            let Some(media) = sm.media() else { continue };
            for idx in 0..media.n_streams() {
                let Some(tr) = sm.transport(idx) else {
                    continue;
                };
                if !is_tcp(&tr) {
                    continue;
                }
                self.hook(&tr, now);
                self.wake(&tr);
            }
        }
    }

    /// Records, from now on, when a message finishes sending on `tr`. This is the transport's
    /// plain `message_sent` callback; the stream itself uses the `_full` one, which stays.
    fn hook(&self, tr: &rtsp::RTSPStreamTransport, now: u64) {
        let last = Arc::new(AtomicU64::new(now));
        let (base, seen, waking) = (self.base, last.clone(), self.waking.clone());
        tr.set_message_sent(move || {
            if !waking.load(Ordering::Relaxed) {
                seen.store(base.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
        });
        lock(&self.sent).insert(key(tr), last);
    }

    /// Wakes the send thread of `tr`'s stream.
    fn wake(&self, tr: &rtsp::RTSPStreamTransport) {
        self.waking.store(true, Ordering::Relaxed);
        tr.message_sent();
        self.waking.store(false, Ordering::Relaxed);
    }

    /// One round: wake every stream with a playing TCP player, close the players that hung.
    pub(crate) fn tick(&self, server: &rtsp::RTSPServer) {
        let now = self.now_ms();
        let sources = lock(&self.sources).clone();
        let mut seen = HashSet::new();
        let mut hung: Vec<(rtsp::RTSPClient, String, u64)> = Vec::new();
        for client in server.client_filter(None) {
            let mut verdict: Option<(String, u64)> = None;
            for session in client.session_filter(None) {
                for sm in session.filter(None) {
                    if !is_playing(&sm) {
                        continue;
                    }
                    let Some(media) = sm.media() else { continue };
                    let source = sources.get(&key(&media));
                    for idx in 0..media.n_streams() {
                        let Some(tr) = sm.transport(idx) else {
                            continue;
                        };
                        if !is_tcp(&tr) {
                            continue;
                        }
                        seen.insert(key(&tr));
                        let last = lock(&self.sent).get(&key(&tr)).cloned();
                        let Some(last) = last else {
                            self.hook(&tr, now);
                            self.wake(&tr);
                            continue;
                        };
                        self.wake(&tr);
                        let (Some(timeout), Some(source)) = (self.timeout, source) else {
                            continue;
                        };
                        let idle = now.saturating_sub(last.load(Ordering::Relaxed));
                        let delivering = now.saturating_sub(source.last_ms.load(Ordering::Relaxed))
                            <= SOURCE_ALIVE_MS;
                        if delivering && idle > timeout.as_millis() as u64 {
                            verdict = Some((source.mount.clone(), idle));
                        }
                    }
                }
            }
            if let Some((mount, idle)) = verdict {
                hung.push((client, mount, idle));
            }
        }
        lock(&self.sent).retain(|k, _| seen.contains(k));
        for (client, mount, idle_ms) in hung {
            tracing::warn!(
                %mount,
                idle_ms,
                "an RTSP player on TCP has taken nothing while the source kept sending; closing its connection"
            );
            self.registry
                .counter(
                    "watchpost_rtsp_stalled_clients_closed_total",
                    "Players on RTP over TCP disconnected because their connection took nothing",
                    &[("mount", mount.as_str())],
                )
                .inc();
            client.close();
        }
    }
}
