//! `[capture]`: cameras, thermal processing, recording, retention, snapshots, detection frames.
//!
//! Everything here is checked before the capture worker opens a camera: each camera's source,
//! its recording policy and schedule, thermal rules, and storage limits. Credentials are
//! [`Secret`]s (never printed) and must not be written into a URL; see `docs/capture.md` for how
//! they are kept encrypted at rest.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::types::{Days, Ident, Secret, TimeOfDay};
use crate::{Problem, problem};

fn default_true() -> bool {
    true
}

/// The `[capture]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    pub enabled: bool,
    /// Where recordings go; default `<system.data_dir>/recordings`.
    pub recordings_dir: Option<PathBuf>,
    /// Where the latest snapshot of each camera is kept; default `<system.data_dir>/snapshots`.
    pub snapshots_dir: Option<PathBuf>,
    /// Where the frame rings for detection live; default `/dev/shm/watchpost` when `/dev/shm`
    /// exists, else `<system.data_dir>/run/frames`.
    pub frames_dir: Option<PathBuf>,
    pub storage: StorageConfig,
    pub recording: RecordingDefaults,
    pub cameras: Vec<CameraConfig>,
}

impl CaptureConfig {
    /// The recordings directory under `data_dir` unless set.
    pub fn recordings_dir(&self, data_dir: &std::path::Path) -> PathBuf {
        self.recordings_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("recordings"))
    }

    /// The directory of the latest snapshot of each camera (`<id>.jpg`).
    pub fn snapshots_dir(&self, data_dir: &std::path::Path) -> PathBuf {
        self.snapshots_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("snapshots"))
    }

    /// The directory of the frame rings (`<id>.ring`).
    pub fn frames_dir(&self, data_dir: &std::path::Path) -> PathBuf {
        self.frames_dir.clone().unwrap_or_else(|| {
            if std::path::Path::new("/dev/shm").is_dir() {
                // Several appliances (tests) may share one machine: keep them apart.
                let tag: String = data_dir
                    .to_string_lossy()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                PathBuf::from("/dev/shm/watchpost").join(tag)
            } else {
                data_dir.join("run").join("frames")
            }
        })
    }
}

/// `[capture.storage]`: how much disk recordings may use.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Budget for all recordings together; 0 = no budget (only the free-space watermark).
    pub max_bytes: u64,
    /// Keep at least this share of the file system free.
    pub min_free_percent: f64,
    /// When a limit is hit, delete down to this far below it, so deletion runs in batches.
    pub headroom_bytes: u64,
    /// How often retention runs.
    pub check_interval_s: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            max_bytes: 0,
            min_free_percent: 10.0,
            headroom_bytes: 256 * 1024 * 1024,
            check_interval_s: 30,
        }
    }
}

/// `[capture.recording]`: defaults for every camera's recording.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingDefaults {
    /// A segment file is closed at the first keyframe after this long.
    pub segment_s: u32,
    /// Fragment length: at most this much is lost on a power cut.
    pub fragment_ms: u32,
    /// fdatasync after this many fragments (1 = every fragment; 0 = leave it to the kernel).
    pub sync_every_fragments: u32,
    /// Per-camera cap of bytes written per second (0 = none). Over the cap, whole groups of
    /// pictures are dropped and counted, so the card's wear stays bounded.
    pub max_write_bytes_per_s: u64,
}

impl Default for RecordingDefaults {
    fn default() -> Self {
        Self {
            segment_s: 60,
            fragment_ms: 1000,
            sync_every_fragments: 1,
            max_write_bytes_per_s: 0,
        }
    }
}

/// One `[[capture.cameras]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub id: Ident,
    #[serde(default)]
    pub name: String,
    #[serde(default = "default_true")]
    pub enabled: bool,
    pub source: SourceConfig,
    /// Credentials for RTSP/HTTP sources. Prefer setting them through the API, which keeps
    /// them encrypted; values here are for demos and tests.
    #[serde(default)]
    pub credentials: Option<CredentialsConfig>,
    #[serde(default)]
    pub kind: CameraKind,
    #[serde(default)]
    pub thermal: Option<ThermalConfig>,
    #[serde(default)]
    pub record: RecordConfig,
    #[serde(default)]
    pub detect: DetectFramesConfig,
    #[serde(default)]
    pub reconnect: ReconnectConfig,
}

/// Where a camera's video comes from.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    Rtsp {
        /// `rtsp://host[:port]/path` of the main stream, without credentials.
        url: String,
        /// Optional lower-resolution stream, used for detection frames when present.
        #[serde(default)]
        sub_url: Option<String>,
        #[serde(default)]
        transport: RtspTransport,
        #[serde(default = "default_rtsp_latency_ms")]
        latency_ms: u32,
    },
    V4l2 {
        /// `/dev/videoN` or a stable `/dev/v4l/by-id/...` name.
        device: PathBuf,
        #[serde(default)]
        width: Option<u32>,
        #[serde(default)]
        height: Option<u32>,
        #[serde(default)]
        fps: Option<u32>,
        /// Pixel format to ask for (`YUYV`, `MJPG`, `Y16`, `H264`); the device's first otherwise.
        #[serde(default)]
        fourcc: Option<String>,
    },
    /// An HTTP camera serving `multipart/x-mixed-replace` JPEG frames; encoded once to H.264.
    HttpMjpeg {
        /// `http(s)://host[:port]/path`, without credentials.
        url: String,
        /// Frame rate the stream is recorded at (frames are repeated or dropped to keep it).
        #[serde(default = "default_mjpeg_fps")]
        fps: u32,
    },
    /// Raw radiometric frames over TCP in the framing of `watchpost_thermal::wire` (the
    /// simulator's thermal camera, or a bridge from a camera on another host).
    ThermalTcp {
        /// `host:port` to connect to.
        address: String,
        /// Frame rate the peer sends, for the colourised stream's encoder.
        #[serde(default = "default_thermal_fps")]
        fps: u32,
    },
}

fn default_thermal_fps() -> u32 {
    9
}

fn default_mjpeg_fps() -> u32 {
    10
}

/// Splits `host:port` (a bracketed IPv6 host is allowed).
pub fn split_host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && port != 0).then(|| (host.to_string(), port))
}

fn default_rtsp_latency_ms() -> u32 {
    200
}

/// RTSP lower transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RtspTransport {
    #[default]
    Tcp,
    Udp,
}

/// `credentials = { username = "...", password = "..." }`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsConfig {
    pub username: String,
    pub password: Secret,
}

/// What the camera sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CameraKind {
    #[default]
    Visible,
    Thermal,
}

/// Raw radiometric formats (see `watchpost-thermal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThermalFormat {
    /// 16-bit little-endian, 0.01 K per count (Lepton/PureThermal "Y16").
    Centikelvin16,
    /// Tall YUYV frame: picture on top, 16-bit 1/64 K values below.
    SplitFrame,
}

/// Thermal colour palettes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ThermalPalette {
    #[default]
    Ironbow,
    Rainbow,
    WhiteHot,
    BlackHot,
}

/// `[capture.cameras.thermal]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ThermalConfig {
    pub format: ThermalFormat,
    #[serde(default)]
    pub palette: ThermalPalette,
    /// Mark the hottest spot and print its temperature on the colourised video.
    #[serde(default = "default_true")]
    pub overlay: bool,
    /// Fixed colour span; both or neither. Without them the span follows each frame.
    #[serde(default)]
    pub range_min_c: Option<f32>,
    #[serde(default)]
    pub range_max_c: Option<f32>,
    /// How often frame statistics are published on the bus.
    #[serde(default = "default_stats_interval_ms")]
    pub stats_interval_ms: u64,
    #[serde(default)]
    pub rules: Vec<ThermalRuleConfig>,
}

fn default_stats_interval_ms() -> u64 {
    1000
}

/// A rectangle in thermogram pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// `[[capture.cameras.thermal.rules]]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ThermalRuleConfig {
    pub id: Ident,
    #[serde(default)]
    pub region: Option<RegionConfig>,
    #[serde(default)]
    pub statistic: RuleStatistic,
    #[serde(default)]
    pub comparison: RuleComparison,
    pub threshold_c: f32,
    #[serde(default)]
    pub hold_ms: u64,
    #[serde(default = "default_hysteresis_c")]
    pub hysteresis_c: f32,
    #[serde(default)]
    pub clear_hold_ms: u64,
}

/// Which number of a rule's region is compared with its threshold: `max` (default), `mean`
/// or `min`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RuleStatistic {
    #[default]
    Max,
    Mean,
    Min,
}

/// The direction of a rule: it fires `above` (default) or `below` its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RuleComparison {
    #[default]
    Above,
    Below,
}

fn default_hysteresis_c() -> f32 {
    1.0
}

/// When a camera records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RecordMode {
    #[default]
    Continuous,
    /// Only around events (bus triggers, thermal rules), with pre-roll and post-roll.
    Event,
    /// Inside the schedule's windows.
    Schedule,
    Off,
}

/// `[capture.cameras.record]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordConfig {
    pub mode: RecordMode,
    /// Seconds kept in memory before an event and written when it fires.
    pub preroll_s: u32,
    /// Seconds recorded after the last event ends.
    pub postroll_s: u32,
    /// Segments older than this are deleted (0 = keep until space runs out).
    pub max_age_days: u32,
    /// Overrides `[capture.recording] segment_s` for this camera.
    pub segment_s: Option<u32>,
    pub schedule: Vec<ScheduleWindowConfig>,
    /// Minutes east of UTC in which the schedule's times are written (0 = UTC).
    pub schedule_utc_offset_min: i32,
}

impl Default for RecordConfig {
    fn default() -> Self {
        Self {
            mode: RecordMode::Continuous,
            preroll_s: 5,
            postroll_s: 10,
            max_age_days: 0,
            segment_s: None,
            schedule: Vec::new(),
            schedule_utc_offset_min: 0,
        }
    }
}

/// One schedule window: on these days, from `start` to `stop` (`HH:MM`). A window whose stop
/// is not after its start runs past midnight into the next day.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleWindowConfig {
    /// `mon`..`sun`, or `daily` / `weekdays` / `weekends` (any case: `Mon` is `mon`).
    pub days: Days,
    pub start: TimeOfDay,
    pub stop: TimeOfDay,
}

/// `[capture.cameras.detect]`: the decoded, scaled branch for the detection worker.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectFramesConfig {
    pub enabled: bool,
    pub fps: u32,
    pub width: u32,
    pub height: u32,
    /// Slots in the ring (the reader always takes the newest).
    pub ring_slots: u32,
}

impl Default for DetectFramesConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            fps: 5,
            width: 300,
            height: 300,
            ring_slots: 4,
        }
    }
}

/// `[capture.cameras.reconnect]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconnectConfig {
    pub initial_ms: u64,
    pub max_ms: u64,
    /// No frame for this long counts as a dropped source.
    pub stall_timeout_ms: u64,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        Self {
            initial_ms: 500,
            max_ms: 30_000,
            stall_timeout_ms: 5000,
        }
    }
}

fn check_url(p: &mut Vec<Problem>, key: &str, url: &str, schemes: &[&str]) {
    let Some((scheme, rest)) = url.split_once("://") else {
        p.push(problem(key, format!("`{url}` is not a URL")));
        return;
    };
    if !schemes.contains(&scheme.to_ascii_lowercase().as_str()) {
        p.push(problem(
            key,
            format!("scheme `{scheme}` is not one of {}", schemes.join(", ")),
        ));
    }
    let authority = rest.split('/').next().unwrap_or("");
    if authority.contains('@') {
        // Never echo the URL here: it holds a secret.
        p.push(problem(
            key,
            "contains credentials; put them in `credentials` (or set them through the API)",
        ));
    } else if authority.is_empty() {
        p.push(problem(key, format!("`{url}` has no host")));
    }
}

impl CaptureConfig {
    /// Cross-key checks; each problem names its key.
    pub fn validate(&self, p: &mut Vec<Problem>) {
        let r = &self.recording;
        if !(100..=10_000).contains(&r.fragment_ms) {
            p.push(problem(
                "capture.recording.fragment_ms",
                "must be 100..=10000",
            ));
        }
        if r.segment_s == 0 || u64::from(r.segment_s) * 1000 < u64::from(r.fragment_ms) {
            p.push(problem(
                "capture.recording.segment_s",
                "must be at least one fragment long",
            ));
        }
        let s = &self.storage;
        if !(0.0..100.0).contains(&s.min_free_percent) {
            p.push(problem(
                "capture.storage.min_free_percent",
                "must be 0..100",
            ));
        }
        if s.max_bytes > 0 && s.headroom_bytes >= s.max_bytes {
            p.push(problem(
                "capture.storage.headroom_bytes",
                "must be smaller than capture.storage.max_bytes",
            ));
        }
        if s.check_interval_s == 0 {
            p.push(problem(
                "capture.storage.check_interval_s",
                "must be at least 1",
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for (i, c) in self.cameras.iter().enumerate() {
            let key = format!("capture.cameras[{i}]");
            if !ids.insert(c.id.as_str()) {
                p.push(problem(
                    &format!("{key}.id"),
                    format!("duplicate camera `{}`", c.id),
                ));
            }
            c.validate(&key, p);
        }
    }
}

impl CameraConfig {
    fn validate(&self, key: &str, p: &mut Vec<Problem>) {
        match &self.source {
            SourceConfig::Rtsp { url, sub_url, .. } => {
                check_url(p, &format!("{key}.source.url"), url, &["rtsp", "rtsps"]);
                if let Some(sub) = sub_url {
                    check_url(p, &format!("{key}.source.sub_url"), sub, &["rtsp", "rtsps"]);
                }
            }
            SourceConfig::HttpMjpeg { url, fps } => {
                check_url(p, &format!("{key}.source.url"), url, &["http", "https"]);
                if !(1..=60).contains(fps) {
                    p.push(problem(&format!("{key}.source.fps"), "must be 1..=60"));
                }
            }
            SourceConfig::ThermalTcp { address, fps } => {
                if split_host_port(address).is_none() {
                    p.push(problem(
                        &format!("{key}.source.address"),
                        format!("`{address}` is not host:port"),
                    ));
                }
                if !(1..=60).contains(fps) {
                    p.push(problem(&format!("{key}.source.fps"), "must be 1..=60"));
                }
                if self.kind != CameraKind::Thermal {
                    p.push(problem(
                        &format!("{key}.kind"),
                        "a thermal_tcp source needs kind = \"thermal\"",
                    ));
                }
            }
            SourceConfig::V4l2 {
                device,
                width,
                height,
                fps,
                fourcc,
            } => {
                if !device.starts_with("/dev/") {
                    p.push(problem(
                        &format!("{key}.source.device"),
                        format!("`{}` is not a device under /dev", device.display()),
                    ));
                }
                if width.is_some() != height.is_some() {
                    p.push(problem(
                        &format!("{key}.source.width"),
                        "give width and height together",
                    ));
                }
                if *fps == Some(0) {
                    p.push(problem(&format!("{key}.source.fps"), "must be at least 1"));
                }
                if let Some(f) = fourcc
                    && (f.len() != 4 || !f.is_ascii())
                {
                    p.push(problem(
                        &format!("{key}.source.fourcc"),
                        format!("`{f}` is not a four-character code"),
                    ));
                }
            }
        }
        if let Some(c) = &self.credentials
            && (c.username.is_empty() || c.username.contains(':'))
        {
            p.push(problem(
                &format!("{key}.credentials.username"),
                "must be non-empty and contain no `:`",
            ));
        }
        match (self.kind, &self.thermal) {
            (CameraKind::Thermal, None) => p.push(problem(
                &format!("{key}.thermal"),
                "a thermal camera needs a [thermal] table with its raw format",
            )),
            (CameraKind::Visible, Some(_)) => p.push(problem(
                &format!("{key}.thermal"),
                "given for a camera of kind `visible`",
            )),
            _ => {}
        }
        if self.kind == CameraKind::Thermal
            && !matches!(
                self.source,
                SourceConfig::V4l2 { .. } | SourceConfig::ThermalTcp { .. }
            )
        {
            p.push(problem(
                &format!("{key}.source"),
                "radiometric thermal frames come from a V4L2 device or a thermal_tcp peer",
            ));
        }
        if let Some(t) = &self.thermal {
            match (t.range_min_c, t.range_max_c) {
                (Some(lo), Some(hi))
                    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) =>
                {
                    p.push(problem(
                        &format!("{key}.thermal.range_max_c"),
                        "must be above range_min_c",
                    ))
                }
                (Some(_), None) | (None, Some(_)) => p.push(problem(
                    &format!("{key}.thermal.range_min_c"),
                    "give range_min_c and range_max_c together",
                )),
                _ => {}
            }
            for (j, r) in t.rules.iter().enumerate() {
                let rk = format!("{key}.thermal.rules[{j}]");
                if r.hysteresis_c.is_nan() || r.hysteresis_c < 0.0 || !r.threshold_c.is_finite() {
                    p.push(problem(
                        &format!("{rk}.hysteresis_c"),
                        "threshold must be finite and hysteresis at least 0",
                    ));
                }
                if let Some(reg) = &r.region
                    && (reg.width == 0 || reg.height == 0)
                {
                    p.push(problem(&format!("{rk}.region"), "must not be empty"));
                }
            }
        }
        let rec = &self.record;
        if rec.segment_s == Some(0) {
            p.push(problem(
                &format!("{key}.record.segment_s"),
                "must be at least 1",
            ));
        }
        if rec.preroll_s > 60 {
            p.push(problem(
                &format!("{key}.record.preroll_s"),
                "at most 60 s (kept in memory)",
            ));
        }
        if !(-14 * 60..=14 * 60).contains(&rec.schedule_utc_offset_min) {
            p.push(problem(
                &format!("{key}.record.schedule_utc_offset_min"),
                "must be within ±14 h",
            ));
        }
        if rec.mode == RecordMode::Schedule && rec.schedule.is_empty() {
            p.push(problem(
                &format!("{key}.record.schedule"),
                "mode `schedule` needs at least one window",
            ));
        }
        let d = &self.detect;
        if d.enabled {
            if !(1..=30).contains(&d.fps) {
                p.push(problem(&format!("{key}.detect.fps"), "must be 1..=30"));
            }
            if !(16..=4096).contains(&d.width) || !(16..=4096).contains(&d.height) {
                p.push(problem(
                    &format!("{key}.detect.width"),
                    "width and height must be 16..=4096",
                ));
            }
            if !(2..=64).contains(&d.ring_slots) {
                p.push(problem(
                    &format!("{key}.detect.ring_slots"),
                    "must be 2..=64",
                ));
            }
        }
        let rc = &self.reconnect;
        if rc.initial_ms == 0 || rc.max_ms < rc.initial_ms {
            p.push(problem(
                &format!("{key}.reconnect.max_ms"),
                "initial_ms must be > 0 and max_ms at least initial_ms",
            ));
        }
        if rc.stall_timeout_ms < 500 {
            p.push(problem(
                &format!("{key}.reconnect.stall_timeout_ms"),
                "must be at least 500",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CaptureConfig, String> {
        toml::from_str::<CaptureConfig>(text).map_err(|e| e.to_string())
    }

    fn problems(c: &CaptureConfig) -> Vec<String> {
        let mut p = Vec::new();
        c.validate(&mut p);
        p.into_iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn full_camera_parses_and_validates() {
        let c = parse(
            r#"
            enabled = true
            [storage]
            max_bytes = 1000000000
            headroom_bytes = 100000000
            [[cameras]]
            id = "front"
            source = { type = "rtsp", url = "rtsp://10.0.0.5:554/Preview_01_main", transport = "udp" }
            credentials = { username = "admin", password = "pw" }
            record = { mode = "schedule", schedule = [{ days = ["weekdays"], start = "18:00", stop = "07:30" }] }
            detect = { enabled = true }
            [[cameras]]
            id = "heat"
            kind = "thermal"
            source = { type = "v4l2", device = "/dev/video0" }
            thermal = { format = "centikelvin16", rules = [{ id = "hot", threshold_c = 60.0, hold_ms = 10000 }] }
            "#,
        )
        .unwrap();
        assert_eq!(problems(&c), Vec::<String>::new());
        assert!(!format!("{c:?}").contains("\"pw\""));
    }

    #[test]
    fn bad_cameras_name_their_keys() {
        let c = parse(
            r#"
            [[cameras]]
            id = "a"
            source = { type = "rtsp", url = "rtsp://user:secret@10.0.0.5/x" }
            record = { mode = "schedule" }
            [[cameras]]
            id = "a"
            kind = "thermal"
            source = { type = "http_mjpeg", url = "ftp://x/y" }
            "#,
        )
        .unwrap();
        let p = problems(&c).join("\n");
        assert!(
            p.contains("capture.cameras[0].source.url: contains credentials"),
            "{p}"
        );
        assert!(!p.contains("secret"), "{p}");
        assert!(p.contains("capture.cameras[0].record.schedule"), "{p}");
        assert!(
            p.contains("capture.cameras[1].id: duplicate camera `a`"),
            "{p}"
        );
        assert!(p.contains("capture.cameras[1].thermal"), "{p}");
        assert!(
            p.contains("capture.cameras[1].source.url: scheme `ftp`"),
            "{p}"
        );
        assert!(parse("[[cameras]]\nid = \"x\"\nsource = { type = \"rtsp\", url = \"rtsp://h/\", bogus = 1 }").is_err());
    }

    #[test]
    fn thermal_tcp_sources() {
        let c = parse(
            r#"
            [[cameras]]
            id = "heat"
            kind = "thermal"
            source = { type = "thermal_tcp", address = "127.0.0.1:9100" }
            thermal = { format = "split_frame" }
            [[cameras]]
            id = "bad"
            source = { type = "thermal_tcp", address = "nowhere", fps = 0 }
            "#,
        )
        .unwrap();
        let p = problems(&c).join("\n");
        assert!(!p.contains("cameras[0]"), "{p}");
        assert!(p.contains("capture.cameras[1].source.address"), "{p}");
        assert!(p.contains("capture.cameras[1].source.fps"), "{p}");
        assert!(p.contains("capture.cameras[1].kind"), "{p}");
        assert_eq!(
            split_host_port("[::1]:9100"),
            Some(("::1".to_string(), 9100))
        );
        assert_eq!(split_host_port("h:0"), None);
    }

    fn thermal_rule(extra: &str) -> Result<CaptureConfig, String> {
        parse(&format!(
            "[[cameras]]\nid = \"heat\"\nkind = \"thermal\"\n\
             source = {{ type = \"v4l2\", device = \"/dev/video0\" }}\n\
             [cameras.thermal]\nformat = \"centikelvin16\"\n\
             [[cameras.thermal.rules]]\nid = \"r\"\nthreshold_c = 1.0\n{extra}"
        ))
    }

    fn rule_of(c: &CaptureConfig) -> &ThermalRuleConfig {
        &c.cameras[0].thermal.as_ref().unwrap().rules[0]
    }

    #[test]
    fn rule_statistic_and_comparison_are_closed_sets() {
        let c = thermal_rule("").unwrap();
        let r = rule_of(&c);
        assert_eq!(
            (r.statistic, r.comparison),
            (RuleStatistic::Max, RuleComparison::Above)
        );
        let c = thermal_rule("statistic = \"mean\"\ncomparison = \"below\"\n").unwrap();
        let r = rule_of(&c);
        assert_eq!(
            (r.statistic, r.comparison),
            (RuleStatistic::Mean, RuleComparison::Below)
        );
        let c = thermal_rule("statistic = \"min\"\n").unwrap();
        assert_eq!(rule_of(&c).statistic, RuleStatistic::Min);

        let e = thermal_rule("statistic = \"maximum\"\n").unwrap_err();
        assert!(e.contains("line 10") && e.contains("`maximum`"), "{e}");
        let e = thermal_rule("comparison = \"over\"\n").unwrap_err();
        assert!(e.contains("line 10") && e.contains("`over`"), "{e}");
        assert!(thermal_rule("statistic = \"Max\"\n").is_err());
    }

    fn schedule_window(w: &str) -> Result<CaptureConfig, String> {
        parse(&format!(
            "[[cameras]]\nid = \"c\"\nsource = {{ type = \"rtsp\", url = \"rtsp://h/\" }}\n\
             [cameras.record]\nmode = \"schedule\"\n[[cameras.record.schedule]]\n{w}"
        ))
    }

    #[test]
    fn schedule_windows_are_typed() {
        let c = schedule_window("days = [\"Mon\", \"tue\"]\nstart = \"07:30\"\nstop = \"24:00\"\n")
            .unwrap();
        assert_eq!(problems(&c), Vec::<String>::new());
        let w = &c.cameras[0].record.schedule[0];
        assert_eq!(
            (w.days.mask(), w.start.minutes(), w.stop.minutes()),
            (3, 450, 1440)
        );

        let bad = [
            (
                "days = [\"Mon\", \"Funday\"]\nstart = \"07:30\"\nstop = \"08:00\"\n",
                "line 7",
                "`Funday` is not a day",
            ),
            (
                "days = []\nstart = \"07:30\"\nstop = \"08:00\"\n",
                "line 7",
                "at least one day",
            ),
            (
                "days = [\"daily\"]\nstart = \"7.30\"\nstop = \"08:00\"\n",
                "line 8",
                "HH:MM",
            ),
            (
                "days = [\"daily\"]\nstart = \"07:30\"\nstop = \"25:00\"\n",
                "line 9",
                "between 00:00 and 24:00",
            ),
        ];
        for (text, line, reason) in bad {
            let e = schedule_window(text).unwrap_err();
            assert!(e.contains(line) && e.contains(reason), "{e}");
        }
    }
}
