//! Whether each camera mount's source can be read, so that a client asking for a camera that is
//! down is answered at once (503, or the "camera offline" picture) instead of waiting for the
//! upstream read to time out.
//!
//! Three sources of knowledge, in this order:
//! - the capture worker's status of the camera (`capture/camera/<id>/status`), when it is at
//!   most 30 s old: the capture worker reads the camera all the time, so `offline`/`error`/
//!   `disabled` mean the camera cannot be read now and `online` that it can;
//! - a failed read of our own (the mount's media did not prepare): the mount is offline for
//!   [`FAILURE_HOLD`], after which the next client tries again;
//! - a TCP connection probe of the camera's RTSP address (every [`PROBE_INTERVAL`], for the
//!   cameras the capture worker's status does not cover, e.g. `[[rtsp.extra_cameras]]`): a
//!   refused or unanswered connection makes the mount offline until a probe connects.
//!
//! With no knowledge the mount is served (the read is tried). The verdict logic is pure
//! ([`MountHealth::verdict`]); the probe loop is a thin async task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use watchpost_contract::capture::{CameraState, CameraStatus};

/// A capture worker status older than this says nothing (the worker republishes every 10 s).
pub const STATUS_FRESH_MS: u64 = 30_000;
/// After a failed read of its own, a mount is answered as offline for this long.
pub const FAILURE_HOLD: Duration = Duration::from_secs(10);
/// How often cameras without a fresh capture status are probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// How long a probe waits for the TCP connection.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What to do with a client of a mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Serve,
    Offline { reason: String },
}

/// What is known about one mount's source.
#[derive(Debug, Clone, Default)]
pub struct MountHealth {
    /// Camera id (capture statuses are per camera; main and sub share them).
    pub camera: String,
    /// `host:port` to probe (RTSP upstreams), `None` for shared-memory sources.
    pub probe: Option<(String, u16)>,
    /// The last capture worker status: state, reason, when computed (Unix ms).
    capture: Option<(CameraState, Option<String>, u64)>,
    /// The last failed read of our own and why.
    failed: Option<(Instant, String)>,
    /// The last probe's outcome (`Err` = why it could not connect).
    probed: Option<Result<(), String>>,
}

impl MountHealth {
    pub fn new(camera: &str, probe: Option<(String, u16)>) -> Self {
        Self {
            camera: camera.to_string(),
            probe,
            ..Self::default()
        }
    }

    fn fresh_capture(&self, now_unix_ms: u64) -> Option<(CameraState, Option<&str>)> {
        let (state, reason, at) = self.capture.as_ref()?;
        (now_unix_ms.saturating_sub(*at) <= STATUS_FRESH_MS).then_some((*state, reason.as_deref()))
    }

    /// Whether the probe loop should check this mount now.
    pub fn wants_probe(&self, now_unix_ms: u64) -> bool {
        self.probe.is_some() && self.fresh_capture(now_unix_ms).is_none()
    }

    pub fn verdict(&self, now: Instant, now_unix_ms: u64) -> Verdict {
        match self.fresh_capture(now_unix_ms) {
            Some((CameraState::Online, _)) => return Verdict::Serve,
            Some((
                state @ (CameraState::Offline | CameraState::Error | CameraState::Disabled),
                reason,
            )) => {
                return Verdict::Offline {
                    reason: match reason {
                        Some(r) => format!("camera {state}: {r}"),
                        None => format!("camera {state}"),
                    },
                };
            }
            // Starting, or nothing fresh: our own knowledge decides.
            Some((CameraState::Starting, _)) | None => {}
        }
        if let Some((at, reason)) = &self.failed
            && now.duration_since(*at) < FAILURE_HOLD
        {
            return Verdict::Offline {
                reason: reason.clone(),
            };
        }
        match &self.probed {
            Some(Err(reason)) if self.fresh_capture(now_unix_ms).is_none() => Verdict::Offline {
                reason: reason.clone(),
            },
            _ => Verdict::Serve,
        }
    }
}

/// Health of every camera mount, shared by the RTSP server's client threads, the bus loop and
/// the probe task.
#[derive(Debug, Default)]
pub struct SourceHealth {
    mounts: Mutex<HashMap<String, MountHealth>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl SourceHealth {
    pub fn new(mounts: impl IntoIterator<Item = (String, MountHealth)>) -> Arc<Self> {
        Arc::new(Self {
            mounts: Mutex::new(mounts.into_iter().collect()),
        })
    }

    /// The verdict for `mount` now; mounts that are not cameras are always served.
    pub fn verdict(&self, mount: &str) -> Verdict {
        lock(&self.mounts)
            .get(mount)
            .map(|h| h.verdict(Instant::now(), now_unix_ms()))
            .unwrap_or(Verdict::Serve)
    }

    /// Mounts whose verdict is `Serve` now (for closing "offline" pictures when a camera is back).
    pub fn serving(&self) -> Vec<String> {
        let (now, unix) = (Instant::now(), now_unix_ms());
        lock(&self.mounts)
            .iter()
            .filter(|(_, h)| h.verdict(now, unix) == Verdict::Serve)
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// A capture worker status of a camera (applies to its main and sub mounts).
    pub fn capture_status(&self, status: &CameraStatus) {
        for h in lock(&self.mounts).values_mut() {
            if h.camera == status.id {
                h.capture = Some((status.state, status.reason.clone(), status.updated_unix_ms));
            }
        }
    }

    /// The camera's retained status was cleared (camera removed from the configuration).
    pub fn capture_status_cleared(&self, camera: &str) {
        for h in lock(&self.mounts).values_mut() {
            if h.camera == camera {
                h.capture = None;
            }
        }
    }

    /// A read of `mount` failed (its media did not prepare).
    pub fn read_failed(&self, mount: &str, reason: &str) {
        if let Some(h) = lock(&self.mounts).get_mut(mount) {
            h.failed = Some((Instant::now(), reason.to_string()));
        }
    }

    /// A read of `mount` delivered: forget earlier failures.
    pub fn read_ok(&self, mount: &str) {
        if let Some(h) = lock(&self.mounts).get_mut(mount) {
            h.failed = None;
            h.probed = None;
        }
    }

    fn to_probe(&self) -> Vec<(String, (String, u16))> {
        let unix = now_unix_ms();
        lock(&self.mounts)
            .iter()
            .filter(|(_, h)| h.wants_probe(unix))
            .filter_map(|(m, h)| Some((m.clone(), h.probe.clone()?)))
            .collect()
    }

    fn probed(&self, mount: &str, outcome: Result<(), String>) {
        if let Some(h) = lock(&self.mounts).get_mut(mount) {
            h.probed = Some(outcome);
        }
    }
}

/// `host` and `port` of an `rtsp://` / `rtsps://` URL (554/322 when the port is left out).
pub fn rtsp_host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "rtsp" => 554,
        "rtsps" => 322,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default,
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (authority.to_string(), default),
        }
    };
    (!host.is_empty()).then_some((host, port))
}

/// Probes the cameras that need it every [`PROBE_INTERVAL`] until `shutdown`.
pub async fn run_probes(health: Arc<SourceHealth>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let probes = health
            .to_probe()
            .into_iter()
            .map(|(mount, (host, port))| async move {
                let connect = tokio::net::TcpStream::connect((host.as_str(), port));
                let outcome = match tokio::time::timeout(PROBE_TIMEOUT, connect).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("cannot connect to {host}:{port}: {e}")),
                    Err(_) => Err(format!(
                        "no answer from {host}:{port} within {} s",
                        PROBE_TIMEOUT.as_secs()
                    )),
                };
                (mount, outcome)
            });
        for (mount, outcome) in futures_join_all(probes).await {
            if let Err(reason) = &outcome {
                tracing::debug!(%mount, %reason, "camera probe failed");
            }
            health.probed(&mount, outcome);
        }
    }
}

/// Runs the probes concurrently (a few cameras: one task each).
async fn futures_join_all<F, T>(futs: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: CameraState, reason: Option<&str>, at: u64) -> CameraStatus {
        CameraStatus {
            id: "gate".into(),
            name: "Gate".into(),
            state,
            reason: reason.map(str::to_string),
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
            updated_unix_ms: at,
            stream: None,
        }
    }

    #[test]
    fn capture_status_decides_when_fresh() {
        let t0 = Instant::now();
        let mut h = MountHealth::new("gate", Some(("10.0.0.5".into(), 554)));
        assert_eq!(h.verdict(t0, 100_000), Verdict::Serve);
        assert!(h.wants_probe(100_000));
        h.capture = Some((
            CameraState::Offline,
            Some("connection refused".into()),
            100_000,
        ));
        assert_eq!(
            h.verdict(t0, 110_000),
            Verdict::Offline {
                reason: "camera offline: connection refused".into()
            }
        );
        assert!(!h.wants_probe(110_000));
        // A stale status says nothing: the probe (none yet) decides, so the read is tried.
        assert_eq!(h.verdict(t0, 140_001), Verdict::Serve);
        assert!(h.wants_probe(140_001));
        // An online capture status wins over a failed probe.
        h.probed = Some(Err("cannot connect".into()));
        h.capture = Some((CameraState::Online, None, 140_000));
        assert_eq!(h.verdict(t0, 141_000), Verdict::Serve);
    }

    #[test]
    fn own_failure_holds_then_the_probe_decides() {
        let t0 = Instant::now();
        let mut h = MountHealth::new("lab", Some(("127.0.0.1".into(), 9)));
        h.failed = Some((t0, "no stream from the camera".into()));
        assert_eq!(
            h.verdict(t0 + Duration::from_secs(1), 0),
            Verdict::Offline {
                reason: "no stream from the camera".into()
            }
        );
        assert_eq!(h.verdict(t0 + FAILURE_HOLD, 0), Verdict::Serve);
        h.probed = Some(Err("cannot connect to 127.0.0.1:9".into()));
        assert!(matches!(
            h.verdict(t0 + FAILURE_HOLD, 0),
            Verdict::Offline { .. }
        ));
        h.probed = Some(Ok(()));
        assert_eq!(h.verdict(t0 + FAILURE_HOLD, 0), Verdict::Serve);
    }

    #[test]
    fn statuses_apply_to_every_mount_of_the_camera() {
        let health = SourceHealth::new([
            ("/cameras/gate".to_string(), MountHealth::new("gate", None)),
            (
                "/cameras/gate/sub".to_string(),
                MountHealth::new("gate", None),
            ),
            ("/cameras/lab".to_string(), MountHealth::new("lab", None)),
        ]);
        health.capture_status(&status(CameraState::Error, None, now_unix_ms()));
        assert!(matches!(
            health.verdict("/cameras/gate/sub"),
            Verdict::Offline { .. }
        ));
        assert_eq!(health.verdict("/cameras/lab"), Verdict::Serve);
        assert_eq!(health.verdict("/dashboard"), Verdict::Serve);
        let mut serving = health.serving();
        serving.sort();
        assert_eq!(serving, ["/cameras/lab"]);
        health.capture_status_cleared("gate");
        assert_eq!(health.verdict("/cameras/gate"), Verdict::Serve);
    }

    #[test]
    fn rtsp_urls_give_host_and_port() {
        let hp = |u: &str| rtsp_host_port(u).map(|(h, p)| format!("{h} {p}"));
        assert_eq!(hp("rtsp://10.0.0.5/main").as_deref(), Some("10.0.0.5 554"));
        assert_eq!(
            hp("rtsp://u:p@cam.local:8554/x?y").as_deref(),
            Some("cam.local 8554")
        );
        assert_eq!(
            hp("rtsp://[fe80::1]:10554/v").as_deref(),
            Some("fe80::1 10554")
        );
        assert_eq!(hp("rtsps://cam/v").as_deref(), Some("cam 322"));
        assert_eq!(hp("http://x/y"), None);
        assert_eq!(hp("rtsp://:554/"), None);
    }
}
