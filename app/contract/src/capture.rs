//! Cameras (the `capture` worker): retained camera status and thermal statistics, recording,
//! thermal and snapshot events, the four camera commands and their error codes.
//!
//! Topics, under the bus prefix, `<camera>` being the configured camera id:
//! - `capture/camera/<camera>/status`, retained [`CameraStatus`];
//! - `capture/camera/<camera>/recording`, [`RecordingEvent`];
//! - `capture/camera/<camera>/thermal`, retained [`ThermalStatistics`] (thermal cameras);
//! - `capture/camera/<camera>/thermal/event`, [`ThermalEvent`];
//! - `capture/camera/<camera>/snapshot`, the JPEG bytes of a snapshot (not JSON);
//! - `capture/camera/<camera>/snapshot/event`, [`SnapshotEvent`];
//! - `capture/camera/<camera>/<command>/set`, the commands [`Trigger`], [`Snapshot`],
//!   [`Recordings`] and [`Credentials`], answered in the one reply envelope of [`crate::rpc`]
//!   with a [`CaptureCode`] when refused;
//! - `system/capture/status`, the worker's own `online`/`offline` (plain text, retained).
//!
//! The topic helpers return levels for `Bus::topic` / `Bus::filter`; [`Topic::parse`] reads a
//! received topic back. The types the hub's REST API answers with (camera state, thermal
//! statistics, the recording index's segments) derive `utoipa::ToSchema` for its OpenAPI
//! document.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::rpc::Request;

/// First level of every capture topic.
pub const AREA: &str = "capture";
/// The worker's name (its `system/<worker>/status` topic).
pub const WORKER: &str = "capture";

/// `capture/camera/<camera>/status`.
pub fn status(camera: &str) -> [&str; 4] {
    [AREA, "camera", camera, "status"]
}

/// `capture/camera/<camera>/recording`.
pub fn recording(camera: &str) -> [&str; 4] {
    [AREA, "camera", camera, "recording"]
}

/// `capture/camera/<camera>/thermal`.
pub fn thermal(camera: &str) -> [&str; 4] {
    [AREA, "camera", camera, "thermal"]
}

/// `capture/camera/<camera>/thermal/event`.
pub fn thermal_event(camera: &str) -> [&str; 5] {
    [AREA, "camera", camera, "thermal", "event"]
}

/// `capture/camera/<camera>/snapshot` (JPEG bytes).
pub fn snapshot(camera: &str) -> [&str; 4] {
    [AREA, "camera", camera, "snapshot"]
}

/// `capture/camera/<camera>/snapshot/event`.
pub fn snapshot_event(camera: &str) -> [&str; 5] {
    [AREA, "camera", camera, "snapshot", "event"]
}

/// `capture/camera/<camera>/<command>/set`.
pub fn command(camera: &str, command: Command) -> [&str; 5] {
    [AREA, "camera", camera, command.as_str(), "set"]
}

/// `system/capture/status`: the worker's `online`/`offline`.
pub fn worker_status() -> [&'static str; 3] {
    ["system", WORKER, "status"]
}

/// Filter: every camera's status.
pub const STATUS_FILTER: [&str; 4] = [AREA, "camera", "+", "status"];
/// Filter: every thermal camera's statistics.
pub const THERMAL_FILTER: [&str; 4] = [AREA, "camera", "+", "thermal"];

/// Filter: `command` of every camera.
pub fn command_filter(command: Command) -> [&'static str; 5] {
    [AREA, "camera", "+", command.as_str(), "set"]
}

/// The camera commands, by their topic level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Trigger,
    Snapshot,
    Recordings,
    Credentials,
}

impl Command {
    pub const ALL: [Command; 4] = [
        Command::Trigger,
        Command::Snapshot,
        Command::Recordings,
        Command::Credentials,
    ];

    /// The topic level.
    pub const fn as_str(self) -> &'static str {
        match self {
            Command::Trigger => "trigger",
            Command::Snapshot => "snapshot",
            Command::Recordings => "recordings",
            Command::Credentials => "credentials",
        }
    }

    fn from_level(level: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == level)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A camera command's request type and the topic level it is sent on.
pub trait CameraCommand: Request<Code = CaptureCode> {
    const COMMAND: Command;
}

/// A capture topic, read back from a received topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic<'a> {
    Status(&'a str),
    Recording(&'a str),
    Thermal(&'a str),
    ThermalEvent(&'a str),
    Snapshot(&'a str),
    SnapshotEvent(&'a str),
    Command(&'a str, Command),
    WorkerStatus,
}

impl<'a> Topic<'a> {
    /// Reads `topic` (prefix included); `None` for a topic of another prefix or area.
    pub fn parse(prefix: &str, topic: &'a str) -> Option<Self> {
        let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
        let levels: Vec<&'a str> = rest.split('/').collect();
        Some(match levels[..] {
            ["system", WORKER, "status"] => Topic::WorkerStatus,
            [AREA, "camera", id, "status"] => Topic::Status(id),
            [AREA, "camera", id, "recording"] => Topic::Recording(id),
            [AREA, "camera", id, "thermal"] => Topic::Thermal(id),
            [AREA, "camera", id, "thermal", "event"] => Topic::ThermalEvent(id),
            [AREA, "camera", id, "snapshot"] => Topic::Snapshot(id),
            [AREA, "camera", id, "snapshot", "event"] => Topic::SnapshotEvent(id),
            [AREA, "camera", id, cmd, "set"] => Topic::Command(id, Command::from_level(cmd)?),
            _ => return None,
        })
    }
}

/// Where a camera stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CameraState {
    Starting,
    Online,
    Offline,
    Error,
    Disabled,
}

impl CameraState {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            CameraState::Starting => "starting",
            CameraState::Online => "online",
            CameraState::Offline => "offline",
            CameraState::Error => "error",
            CameraState::Disabled => "disabled",
        }
    }
}

impl fmt::Display for CameraState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `capture/camera/<camera>/status`, retained: republished on every change of state, reason
/// or recording, and at least every 10 s. Readers treat a status older than 30 s, or one whose
/// worker says `offline`, as offline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraStatus {
    pub id: String,
    pub name: String,
    pub state: CameraState,
    pub reason: Option<String>,
    pub input_fps: f64,
    pub bitrate_bps: f64,
    pub frames_dropped: u64,
    pub reconnects: u64,
    pub recording: bool,
    pub recording_bytes_per_s: f64,
    pub disk_used_bytes: u64,
    /// RFC 3339, `null` before the first frame.
    pub last_frame_at: Option<String>,
    pub recording_error: Option<String>,
    /// Mean delay from a frame's arrival to its decoded copy in the detection ring, since the
    /// previous status (ms); `null` without detection frames.
    pub detect_latency_ms: Option<f64>,
    /// When this status was computed, ms since the Unix epoch (readers judge staleness).
    pub updated_unix_ms: u64,
    /// What the worker measured on the stream it records (the rtsp worker reports it through
    /// ONVIF); absent before the first frame and from workers that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamFacts>,
}

/// Compression of a recorded stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamCodec {
    H264,
    H265,
}

/// Facts the capture worker measures on a camera's recorded (main) stream: the size from its
/// parser's caps, the H.264 profile from the decoder configuration, the keyframe interval from
/// the access units. The frame rate and bit rate are the status's `input_fps`/`bitrate_bps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamFacts {
    pub codec: StreamCodec,
    pub width: u32,
    pub height: u32,
    /// `profile_idc` of the H.264 stream (66 baseline, 77 main, 100 high …).
    pub h264_profile_idc: Option<u8>,
    /// Frames from one keyframe to the next, as last seen; `None` until two were seen.
    pub keyframe_interval_frames: Option<u32>,
}

/// Why a segment was recorded (also the recording index's, and a recording event's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RecordingTrigger {
    Continuous,
    Schedule,
    /// Event recording; `reason` is what started it (a bus trigger's reason, `thermal:<rule>`).
    Event {
        reason: String,
    },
}

/// State of a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SegmentState {
    /// Being written (or the writer died; repaired at the next start).
    Open,
    Closed,
    /// Closed by the repair after a crash: the file was cut at its last whole fragment.
    Recovered,
}

/// `capture/camera/<camera>/recording`: a recording session starting or ending (segment
/// rollovers are not events), or the recorder failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RecordingEvent {
    Started {
        camera: String,
        /// RFC 3339: the first frame of the session.
        at: String,
        /// The segment file, relative to the recordings directory.
        path: String,
        trigger: RecordingTrigger,
    },
    Stopped {
        camera: String,
        /// RFC 3339: the end of the last whole fragment.
        at: String,
        path: String,
        trigger: RecordingTrigger,
    },
    Error {
        camera: String,
        reason: String,
    },
}

/// A pixel of a thermogram and its temperature (°C rounded to 0.01).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ThermalSpot {
    pub x: u32,
    pub y: u32,
    pub celsius: f64,
}

/// Where a temperature rule stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ThermalRuleState {
    Normal,
    /// Past its threshold, waiting out its hold time.
    Pending,
    Active,
}

/// One rule in [`ThermalStatistics`], with the statistics of its region (the whole
/// thermogram for a rule without one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ThermalRuleStatus {
    pub id: String,
    pub state: ThermalRuleState,
    pub min_c: f64,
    pub max_c: f64,
    pub mean_c: f64,
    pub hottest: ThermalSpot,
}

/// `capture/camera/<camera>/thermal`, retained, every `stats_interval_ms` of a thermal
/// camera. Temperatures in °C rounded to 0.01.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ThermalStatistics {
    pub camera: String,
    /// RFC 3339.
    pub at: String,
    pub width: u32,
    pub height: u32,
    pub min_c: f64,
    pub max_c: f64,
    pub mean_c: f64,
    pub hottest: ThermalSpot,
    pub coldest: ThermalSpot,
    pub rules: Vec<ThermalRuleStatus>,
}

/// Whether a rule's condition started or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThermalTransition {
    Fired,
    Cleared,
}

/// `capture/camera/<camera>/thermal/event`: a temperature rule fired or cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThermalEvent {
    pub camera: String,
    pub rule: String,
    pub event: ThermalTransition,
    pub value_c: f64,
    pub threshold_c: f64,
    pub spot: ThermalSpot,
    /// RFC 3339.
    pub at: String,
}

/// `capture/camera/<camera>/snapshot/event`: a snapshot taken on an event (a trigger, a
/// thermal rule firing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEvent {
    pub camera: String,
    /// The trigger's reason, or `thermal:<rule>`.
    pub reason: String,
    /// The JPEG file (absolute path on the appliance).
    pub path: String,
    pub bytes: u64,
    /// RFC 3339: when the newest frame in the picture arrived.
    pub taken_at: String,
}

/// `capture/camera/<camera>/trigger/set`: an event recording starts (with pre-roll) or ends
/// (post-roll follows); a start also takes an event snapshot. Answered with a bare `ok`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    /// Start (`true`, the default) or end the event.
    #[serde(default = "yes")]
    pub active: bool,
    /// What the event is; `bus` when not given.
    #[serde(default = "bus_reason")]
    pub reason: String,
}

fn yes() -> bool {
    true
}

fn bus_reason() -> String {
    "bus".into()
}

impl Request for Trigger {
    type Reply = ();
    type Code = CaptureCode;
}

impl CameraCommand for Trigger {
    const COMMAND: Command = Command::Trigger;
}

/// `capture/camera/<camera>/snapshot/set`: decode the newest frame, write
/// `<snapshots_dir>/<camera>.jpg` and publish it on `.../snapshot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Snapshot {}

impl Request for Snapshot {
    type Reply = SnapshotTaken;
    type Code = CaptureCode;
}

impl CameraCommand for Snapshot {
    const COMMAND: Command = Command::Snapshot;
}

/// The answer to [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotTaken {
    /// The JPEG file (absolute path on the appliance).
    pub path: String,
    pub bytes: u64,
    /// RFC 3339: when the newest frame in the picture arrived.
    pub taken_at: String,
}

/// The largest page of [`Recordings`].
pub const MAX_RECORDINGS_LIMIT: u32 = 500;

/// `capture/camera/<camera>/recordings/set`: one page of the camera's recording index. Any
/// configured camera may be asked, running or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recordings {
    /// Counts from 1.
    #[serde(default = "first_page")]
    pub page: u32,
    /// 1..=[`MAX_RECORDINGS_LIMIT`].
    #[serde(default = "default_limit")]
    pub limit: u32,
    /// Only segments that end at or after this time (µs since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_us: Option<u64>,
    /// Only segments that start before this time (µs since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_us: Option<u64>,
    /// Newest first unless set.
    #[serde(default)]
    pub oldest_first: bool,
}

fn first_page() -> u32 {
    1
}

fn default_limit() -> u32 {
    50
}

impl Default for Recordings {
    fn default() -> Self {
        Self {
            page: first_page(),
            limit: default_limit(),
            since_us: None,
            until_us: None,
            oldest_first: false,
        }
    }
}

impl Recordings {
    /// The query's own refusal (`INVALID_QUERY`), if it has one.
    pub fn check(&self) -> Result<(), crate::rpc::ReplyError<CaptureCode>> {
        if self.page == 0 {
            return Err(crate::rpc::ReplyError::new(
                CaptureCode::InvalidQuery,
                "page counts from 1",
            ));
        }
        if self.limit == 0 || self.limit > MAX_RECORDINGS_LIMIT {
            return Err(crate::rpc::ReplyError::new(
                CaptureCode::InvalidQuery,
                format!("limit must be 1..={MAX_RECORDINGS_LIMIT}"),
            ));
        }
        Ok(())
    }
}

impl Request for Recordings {
    type Reply = RecordingsPage;
    type Code = CaptureCode;
}

impl CameraCommand for Recordings {
    const COMMAND: Command = Command::Recordings;
}

/// One segment in a [`RecordingsPage`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recording {
    pub camera: String,
    /// RFC 3339.
    pub start: String,
    /// RFC 3339.
    pub end: String,
    pub start_us: u64,
    pub end_us: u64,
    pub duration_ms: u64,
    /// Relative to the recordings directory.
    pub path: String,
    pub bytes: u64,
    pub fragments: u32,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub trigger: RecordingTrigger,
    pub state: SegmentState,
}

/// The answer to [`Recordings`]: the page and how many segments match in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingsPage {
    pub items: Vec<Recording>,
    pub total: u64,
}

/// `capture/camera/<camera>/credentials/set`: sealed with the device key into the worker's
/// store; the camera reconnects with them. Answered with a bare `ok`. The password is never
/// echoed, logged or published (this type's `Debug` leaves it out).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// Not empty, without `:`.
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The refusal (`INVALID_CREDENTIALS`) of a username that is empty or has a `:`.
    pub fn check(&self) -> Result<(), crate::rpc::ReplyError<CaptureCode>> {
        if self.username.is_empty() || self.username.contains(':') {
            return Err(crate::rpc::ReplyError::new(
                CaptureCode::InvalidCredentials,
                "the username must be non-empty and without `:`",
            ));
        }
        Ok(())
    }
}

impl Request for Credentials {
    type Reply = ();
    type Code = CaptureCode;
}

impl CameraCommand for Credentials {
    const COMMAND: Command = Command::Credentials;
}

crate::error_codes! {
    /// Why a camera command failed.
    pub enum CaptureCode {
        #[invalid_body]
        /// The command's body does not decode.
        InvalidBody = "INVALID_BODY",
        /// The worker runs no camera of that id (not configured, or disabled).
        CameraNotFound = "CAMERA_NOT_FOUND",
        /// No frame received from the camera yet.
        NoFrame = "NO_FRAME",
        /// Decoding or writing the snapshot failed.
        SnapshotFailed = "SNAPSHOT_FAILED",
        /// A recordings query out of range (page 0, limit 0 or too large).
        InvalidQuery = "INVALID_QUERY",
        /// The recording index cannot be read.
        IndexUnreadable = "INDEX_UNREADABLE",
        /// The username is empty or contains `:`.
        InvalidCredentials = "INVALID_CREDENTIALS",
        /// The credentials could not be sealed into the store.
        CredentialsNotSaved = "CREDENTIALS_NOT_SAVED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::{Outcome, ReplyError, decode_reply, encode_reply};
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    /// `literal` decodes into `T` and encodes back to the same JSON.
    fn round_trip<T: Serialize + DeserializeOwned + fmt::Debug>(literal: Value) -> T {
        let t: T = serde_json::from_value(literal.clone())
            .unwrap_or_else(|e| panic!("{literal} does not decode: {e}"));
        assert_eq!(serde_json::to_value(&t).unwrap(), literal, "{t:?}");
        t
    }

    #[test]
    fn topics_and_filters() {
        assert_eq!(status("gate"), ["capture", "camera", "gate", "status"]);
        assert_eq!(
            thermal_event("t").join("/"),
            "capture/camera/t/thermal/event"
        );
        assert_eq!(
            snapshot_event("t").join("/"),
            "capture/camera/t/snapshot/event"
        );
        assert_eq!(
            command("gate", Snapshot::COMMAND).join("/"),
            "capture/camera/gate/snapshot/set"
        );
        assert_eq!(
            command_filter(Command::Credentials).join("/"),
            "capture/camera/+/credentials/set"
        );
        assert_eq!(STATUS_FILTER.join("/"), "capture/camera/+/status");
        assert_eq!(THERMAL_FILTER.join("/"), "capture/camera/+/thermal");
        assert_eq!(worker_status().join("/"), "system/capture/status");
    }

    #[test]
    fn topics_parse_back() {
        fn p(t: &str) -> Option<Topic<'_>> {
            Topic::parse("wp", t)
        }
        assert_eq!(
            p("wp/capture/camera/gate/status"),
            Some(Topic::Status("gate"))
        );
        assert_eq!(
            p("wp/capture/camera/gate/thermal"),
            Some(Topic::Thermal("gate"))
        );
        assert_eq!(
            p("wp/capture/camera/gate/thermal/event"),
            Some(Topic::ThermalEvent("gate"))
        );
        assert_eq!(
            p("wp/capture/camera/gate/recordings/set"),
            Some(Topic::Command("gate", Command::Recordings))
        );
        for c in Command::ALL {
            let topic = format!("wp/{}", command("c", c).join("/"));
            assert_eq!(p(&topic), Some(Topic::Command("c", c)));
        }
        assert_eq!(p("wp/system/capture/status"), Some(Topic::WorkerStatus));
        assert_eq!(p("wp/capture/camera/gate/reboot/set"), None);
        assert_eq!(p("other/capture/camera/gate/status"), None);
        assert_eq!(p("wpx/capture/camera/gate/status"), None);
        assert_eq!(p("wp/system/hub/status"), None);
    }

    #[test]
    fn camera_status_has_the_documented_shape() {
        let s: CameraStatus = round_trip(json!({
            "id": "gate", "name": "Gate", "state": "online", "reason": null,
            "input_fps": 15.0, "bitrate_bps": 2_000_000.0, "frames_dropped": 0,
            "reconnects": 1, "recording": true, "recording_bytes_per_s": 250_000.0,
            "disk_used_bytes": 1_048_576, "last_frame_at": "2026-11-22T10:00:00.000Z",
            "recording_error": null, "detect_latency_ms": 12.5,
            "updated_unix_ms": 1_795_341_600_000_u64
        }));
        assert_eq!(s.state, CameraState::Online);
        for state in ["starting", "online", "offline", "error", "disabled"] {
            let st: CameraState = serde_json::from_value(json!(state)).unwrap();
            assert_eq!(st.as_str(), state);
        }
        assert!(serde_json::from_value::<CameraState>(json!("sleeping")).is_err());
    }

    #[test]
    fn recording_events_have_the_documented_shapes() {
        let e: RecordingEvent = round_trip(json!({
            "event": "started", "camera": "gate", "at": "2026-11-22T10:00:00.000Z",
            "path": "gate/2026-11-22/10-00-00.mp4",
            "trigger": {"kind": "event", "reason": "thermal:hot"}
        }));
        assert!(matches!(
            e,
            RecordingEvent::Started {
                trigger: RecordingTrigger::Event { .. },
                ..
            }
        ));
        round_trip::<RecordingEvent>(json!({
            "event": "stopped", "camera": "gate", "at": "2026-11-22T10:01:00.000Z",
            "path": "gate/2026-11-22/10-00-00.mp4", "trigger": {"kind": "continuous"}
        }));
        round_trip::<RecordingEvent>(json!({
            "event": "error", "camera": "gate", "reason": "disk full"
        }));
        round_trip::<RecordingTrigger>(json!({"kind": "schedule"}));
    }

    #[test]
    fn thermal_documents_have_the_documented_shapes() {
        let s: ThermalStatistics = round_trip(json!({
            "camera": "lepton", "at": "2026-11-22T10:00:00.000Z", "width": 160,
            "height": 120, "min_c": 5.1, "max_c": 65.35, "mean_c": 23.07,
            "hottest": {"x": 100, "y": 40, "celsius": 65.35},
            "coldest": {"x": 20, "y": 80, "celsius": 5.1},
            "rules": [{"id": "hotspot", "state": "pending", "min_c": 65.35,
                "max_c": 65.35, "mean_c": 65.35,
                "hottest": {"x": 100, "y": 40, "celsius": 65.35}}]
        }));
        assert_eq!(s.rules[0].state, ThermalRuleState::Pending);
        let e: ThermalEvent = round_trip(json!({
            "camera": "lepton", "rule": "hotspot", "event": "fired", "value_c": 65.35,
            "threshold_c": 50.0, "spot": {"x": 100, "y": 40, "celsius": 65.35},
            "at": "2026-11-22T10:00:02.000Z"
        }));
        assert_eq!(e.event, ThermalTransition::Fired);
        round_trip::<SnapshotEvent>(json!({
            "camera": "lepton", "reason": "thermal:hotspot",
            "path": "/var/lib/watchpost/snapshots/lepton.jpg", "bytes": 20480,
            "taken_at": "2026-11-22T10:00:02.000Z"
        }));
    }

    #[test]
    fn commands_have_the_documented_shapes() {
        assert_eq!(
            round_trip::<Trigger>(json!({"active": false, "reason": "door"})),
            Trigger {
                active: false,
                reason: "door".into()
            }
        );
        // Both fields may be left out: a start, by `bus`.
        assert_eq!(
            serde_json::from_value::<Trigger>(json!({})).unwrap(),
            Trigger {
                active: true,
                reason: "bus".into()
            }
        );
        round_trip::<Snapshot>(json!({}));
        let q: Recordings = round_trip(json!({
            "page": 2, "limit": 10, "since_us": 5, "until_us": 9, "oldest_first": true
        }));
        assert!(q.check().is_ok());
        assert_eq!(
            serde_json::from_value::<Recordings>(json!({})).unwrap(),
            Recordings::default()
        );
        // What the hub sent before `since_us`/`until_us` were left out when unset.
        assert_eq!(
            serde_json::from_value::<Recordings>(json!({"since_us": null, "until_us": null}))
                .unwrap(),
            Recordings::default()
        );
        for bad in [
            json!({"page": 0}),
            json!({"limit": 0}),
            json!({"limit": 501}),
        ] {
            let q: Recordings = serde_json::from_value(bad).unwrap();
            assert_eq!(q.check().unwrap_err().code, CaptureCode::InvalidQuery);
        }
        let c: Credentials = round_trip(json!({"username": "viewer", "password": "s3cret"}));
        assert!(c.check().is_ok());
        assert!(!format!("{c:?}").contains("s3cret"));
        for name in ["", "a:b"] {
            let c = Credentials {
                username: name.into(),
                password: "p".into(),
            };
            assert_eq!(c.check().unwrap_err().code, CaptureCode::InvalidCredentials);
        }
    }

    #[test]
    fn replies_have_the_one_envelope() {
        let ok: Outcome<Snapshot> = Ok(SnapshotTaken {
            path: "/data/snapshots/gate.jpg".into(),
            bytes: 2048,
            taken_at: "2026-11-22T10:00:00.000Z".into(),
        });
        let literal = json!({"ok": true, "path": "/data/snapshots/gate.jpg", "bytes": 2048,
            "taken_at": "2026-11-22T10:00:00.000Z"});
        assert_eq!(
            serde_json::from_slice::<Value>(&encode_reply(&ok)).unwrap(),
            literal
        );
        assert_eq!(
            decode_reply::<SnapshotTaken, CaptureCode>(&serde_json::to_vec(&literal).unwrap())
                .unwrap(),
            ok
        );

        let page = json!({"ok": true, "total": 3, "items": [{"camera": "gate",
            "start": "2026-11-22T10:00:00.000Z", "end": "2026-11-22T10:01:00.000Z",
            "start_us": 1_795_341_600_000_000_u64, "end_us": 1_795_341_660_000_000_u64,
            "duration_ms": 60000, "path": "gate/2026-11-22/10-00-00.mp4", "bytes": 123_456,
            "fragments": 60, "codec": "h264", "width": 320, "height": 240,
            "trigger": {"kind": "continuous"}, "state": "closed"}]});
        let got = decode_reply::<RecordingsPage, CaptureCode>(&serde_json::to_vec(&page).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(got.total, 3);
        assert_eq!(got.items[0].state, SegmentState::Closed);
        assert_eq!(
            serde_json::from_slice::<Value>(&encode_reply::<_, CaptureCode>(&Ok(got))).unwrap(),
            page
        );

        let bare: Outcome<Credentials> = Ok(());
        assert_eq!(encode_reply(&bare), br#"{"ok":true}"#);

        let refused: Outcome<Snapshot> = Err(ReplyError::new(
            CaptureCode::CameraNotFound,
            "no camera `x`",
        ));
        let literal = json!({"ok": false, "error": {"code": "CAMERA_NOT_FOUND",
            "message": "no camera `x`", "details": {}}});
        assert_eq!(
            serde_json::from_slice::<Value>(&encode_reply(&refused)).unwrap(),
            literal
        );
        assert_eq!(
            decode_reply::<SnapshotTaken, CaptureCode>(&serde_json::to_vec(&literal).unwrap())
                .unwrap(),
            refused
        );
    }

    #[test]
    fn error_codes_are_spelled_as_documented() {
        let spelled: Vec<&str> = CaptureCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            spelled,
            [
                "INVALID_BODY",
                "CAMERA_NOT_FOUND",
                "NO_FRAME",
                "SNAPSHOT_FAILED",
                "INVALID_QUERY",
                "INDEX_UNREADABLE",
                "INVALID_CREDENTIALS",
                "CREDENTIALS_NOT_SAVED",
            ]
        );
        for c in CaptureCode::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), json!(c.as_str()));
        }
    }
}
