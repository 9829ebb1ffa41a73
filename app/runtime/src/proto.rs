//! Messages between a worker and the supervisor, and their framing.
//!
//! Each frame is a 4-byte little-endian length followed by that many bytes of JSON. Frames
//! larger than [`MAX_FRAME_BYTES`] are refused by the reader so a confused peer cannot make
//! the other side allocate without bound.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame either side accepts.
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// Environment variable set to `1` when the worker's standard input is its supervisor socket.
///
/// The supervisor passes one end of a socketpair as the child's stdin: std's `Stdio` does the
/// descriptor plumbing, so neither side needs `unsafe` to adopt an inherited descriptor.
pub const ENV_SUPERVISED: &str = "WATCHPOST_SUPERVISED";
/// Environment variable with the supervisor's pid (to close the PDEATHSIG race).
pub const ENV_SUPERVISOR_PID: &str = "WATCHPOST_SUPERVISOR_PID";
/// Environment variable with the heartbeat interval the supervisor expects, in ms.
pub const ENV_HEARTBEAT_MS: &str = "WATCHPOST_HEARTBEAT_MS";
/// Environment variable with the configuration file the supervisor runs with (the hub's
/// settings API validates overlays against it).
pub const ENV_CONFIG_FILE: &str = "WATCHPOST_CONFIG_FILE";

/// What a worker tells the supervisor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMsg {
    /// Devices are open and sockets bound; `listeners` maps a listener name to its address.
    Ready { listeners: BTreeMap<String, String> },
    /// Sent from the worker's main loop.
    Heartbeat,
    /// Asks the supervisor to restart the appliance: every worker stopped within its grace
    /// period, in reverse start order, then started again (ONVIF SystemReboot). `reason` is
    /// logged.
    RestartAppliance { reason: String },
    /// A short human-readable status line (shown in `/health` and systemd's STATUS=).
    Status { text: String },
    /// The worker's metrics in Prometheus text format.
    Metrics { text: String },
    /// The worker is about to exit because of `kind`; `reason` says why.
    Fatal { kind: FatalKind, reason: String },
    /// A request for the supervisor's view of the appliance (the hub serves it as /health).
    Query { id: u64 },
    /// What the status LED should show on behalf of this worker: an active alarm (hub), an
    /// update being installed (OTA). Sent when it changes.
    Indicators { alarm: bool, updating: bool },
    /// Warnings and errors the worker logged since its last report (sent with heartbeats),
    /// for the setup page's recent logs.
    Logs { lines: Vec<LogLine> },
    /// Asks the supervisor to load the configuration again (file, settings overlay,
    /// environment) and restart the workers whose sections changed; answered by
    /// [`SupervisorMsg::Applied`].
    ApplyConfig { id: u64 },
    /// The faults the worker works around now (the whole set, empty when none is left): a
    /// peripheral it cannot open, a port it cannot bind. The worker keeps running and retries;
    /// `/health` says `degraded` with the reasons. Sent when the set changes.
    Faults { faults: Vec<Fault> },
}

/// Something a running worker cannot use and keeps retrying (see [`WorkerMsg::Faults`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Fault {
    /// What is affected: `neasmart serial /dev/ttyUSB0`, `neasmart compat listener 0.0.0.0:5000`.
    pub subject: String,
    /// Why, as the failing operation reported it.
    pub reason: String,
}

/// Why a worker gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FatalKind {
    /// The configuration is invalid: do not restart in a loop.
    Config,
    /// A runtime failure: restart with backoff.
    Runtime,
}

/// What the supervisor tells a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SupervisorMsg {
    /// The answer to [`WorkerMsg::Query`].
    Snapshot { id: u64, snapshot: Snapshot },
    /// The answer to [`WorkerMsg::ApplyConfig`], sent before any restart it starts (so the
    /// asking worker hears it even when it is among the restarted).
    Applied { id: u64, report: ApplyReport },
}

/// What applying the configuration again did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApplyReport {
    /// Top-level sections that changed.
    pub changed_sections: Vec<String>,
    /// Workers being stopped and started again with the new configuration.
    pub restarted: Vec<String>,
    /// Workers newly enabled, being started.
    pub started: Vec<String>,
    /// Workers no longer enabled, being stopped.
    pub stopped: Vec<String>,
    /// Changed sections that the supervisor itself reads (`system`, `supervisor`): they take
    /// effect when the appliance restarts.
    pub needs_appliance_restart: Vec<String>,
    /// Why nothing was applied (the configuration does not load); `None` on success.
    pub error: Option<String>,
}

/// The supervisor's view of the appliance at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub supervisor_pid: u32,
    pub uptime_ms: u64,
    pub workers: Vec<WorkerStatus>,
    /// Prometheus text of the supervisor itself (restarts, states, watchdog).
    pub supervisor_metrics: String,
    /// The latest Prometheus text each worker reported, by worker name.
    pub worker_metrics: BTreeMap<String, String>,
    /// Listener addresses reported by workers, `worker.listener` → address.
    pub listeners: BTreeMap<String, String>,
    /// The board the supervisor runs on and what its LED, button and watchdog do.
    #[serde(default)]
    pub board: Option<BoardView>,
    /// The latest warnings and errors of the supervisor and every worker, oldest first.
    #[serde(default)]
    pub recent_logs: Vec<LogLine>,
}

/// One logged warning or error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogLine {
    /// Unix time in milliseconds.
    pub ts_ms: u64,
    /// `WARN` or `ERROR`.
    pub level: String,
    /// `supervisor`, or the worker's name.
    pub process: String,
    pub target: String,
    /// The message with its fields (`key=value`).
    pub message: String,
}

/// The board as the supervisor drives it (part of `/health`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BoardView {
    /// Description name (`rpi4`) and title.
    pub name: String,
    pub title: String,
    /// `hardware` or `simulated`.
    pub io: String,
    /// The state the status LED shows (`booting`, `healthy`, `degraded`, `alarm`,
    /// `updating`, `confirm_reset`), or `None` without a status LED.
    pub led: Option<String>,
    /// The armed hardware watchdog (device path, or `simulated`), if any.
    pub watchdog: Option<String>,
    pub button: bool,
    /// The last button gesture and when (ms since the supervisor started).
    pub last_button: Option<String>,
    /// Why board I/O is missing, when opening it failed.
    pub error: Option<String>,
}

/// One worker as the supervisor sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerStatus {
    pub name: String,
    pub state: WorkerState,
    pub essential: bool,
    pub pid: Option<u32>,
    pub restarts: u32,
    pub heartbeat_age_ms: Option<u64>,
    pub last_error: Option<String>,
    pub status_text: Option<String>,
    /// The faults the running worker reported ([`WorkerMsg::Faults`]); cleared when it restarts.
    #[serde(default)]
    pub faults: Vec<Fault>,
}

/// Lifecycle state of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Spawned, not ready yet.
    Starting,
    /// Ready and sending heartbeats.
    Running,
    /// Exited or killed; waiting before the next start.
    Backoff,
    /// Not restarted: configuration error or restart budget exhausted.
    Failed,
    /// Stopped on purpose (shutdown).
    Stopped,
}

impl WorkerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Backoff => "backoff",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }
}

/// Errors reading or writing frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("reading or writing a supervisor frame: {0}")]
    Io(#[from] std::io::Error),
    #[error("supervisor frame of {len} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge { len: usize },
    #[error("decoding a supervisor frame: {0}")]
    Decode(#[source] serde_json::Error),
    #[error("encoding a supervisor frame: {0}")]
    Encode(#[source] serde_json::Error),
}

fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(msg).map_err(FrameError::Encode)?;
    if body.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge { len: body.len() });
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Writes one frame (blocking).
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), FrameError> {
    w.write_all(&encode(msg)?)?;
    Ok(())
}

/// Reads one frame (blocking). `Ok(None)` on a clean end of stream.
pub fn read_frame<T: for<'de> Deserialize<'de>>(
    r: &mut impl Read,
) -> Result<Option<T>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge { len });
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(FrameError::Decode)
}

/// Writes one frame (async).
pub async fn write_frame_async<T: Serialize>(
    w: &mut (impl AsyncWrite + Unpin),
    msg: &T,
) -> Result<(), FrameError> {
    w.write_all(&encode(msg)?).await?;
    Ok(())
}

/// Reads one frame (async). `Ok(None)` on a clean end of stream.
pub async fn read_frame_async<T: for<'de> Deserialize<'de>>(
    r: &mut (impl AsyncRead + Unpin),
) -> Result<Option<T>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge { len });
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(FrameError::Decode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        let msgs = vec![
            WorkerMsg::Ready {
                listeners: BTreeMap::from([("http".into(), "127.0.0.1:1".into())]),
            },
            WorkerMsg::Heartbeat,
            WorkerMsg::Fatal {
                kind: FatalKind::Config,
                reason: "bad key".into(),
            },
            WorkerMsg::Query { id: 7 },
            WorkerMsg::ApplyConfig { id: 8 },
        ];
        for m in &msgs {
            write_frame(&mut buf, m).unwrap();
        }
        let mut r = buf.as_slice();
        for m in &msgs {
            let got: WorkerMsg = read_frame(&mut r).unwrap().unwrap();
            assert_eq!(&got, m);
        }
        assert!(read_frame::<WorkerMsg>(&mut r).unwrap().is_none());
    }

    #[test]
    fn oversized_frame_is_refused() {
        let mut buf = ((MAX_FRAME_BYTES + 1) as u32).to_le_bytes().to_vec();
        buf.extend_from_slice(b"{}");
        let err = read_frame::<WorkerMsg>(&mut buf.as_slice()).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }));
    }

    #[test]
    fn wire_shape_is_tagged_json() {
        let v = serde_json::to_value(WorkerMsg::Heartbeat).unwrap();
        assert_eq!(v, serde_json::json!({"type": "heartbeat"}));
    }
}
