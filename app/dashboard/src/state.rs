//! What the dashboard shows, and how bus messages update it.
//!
//! Topics are given relative to the bus prefix (documented in docs/bus.md, "rtsp" section):
//! - `sensors/<id>/state` (retained JSON): `name`, `state`, `alarm` (bool), `battery`
//!   (0–4 level or 5–100 percent), `changed_at` (RFC 3339 string or Unix seconds), `online`;
//! - `neasmart/zone/<bus>/<zone>` (retained JSON): `name`, `temperature_c`, `setpoint_c`;
//! - `capture/camera/<id>/status` (retained JSON, the capture contract's
//!   [`CameraStatus`], see docs/bus.md "Capture"), of which the dashboard shows `name`, `state`
//!   (`starting`/`online`/`offline`/`error`/`disabled`), `reason` and `updated_unix_ms`;
//! - `system/capture/status` (retained plain text `online`/`offline`): the capture worker itself.
//!
//! A camera counts as online only when its state is `online`, its status is at most
//! [`CAMERA_STATUS_MAX_AGE_S`] old, and the capture worker has not said `offline` (the same
//! rule as the hub's camera API). An empty payload removes the entry (MQTT's way of clearing a
//! retained topic). Unknown fields are ignored, so publishers may add more; a camera status
//! that is not the contract's is an error like any payload that does not decode.

use std::collections::BTreeMap;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use watchpost_contract::capture::{CameraState, CameraStatus};

/// One sensor tile.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    pub name: String,
    pub state: String,
    pub alarm: bool,
    /// Battery in percent (a 0–4 level is mapped to 0, 25, 50, 75, 100).
    pub battery_pct: Option<u8>,
    pub changed_at_unix: Option<i64>,
    pub online: bool,
}

/// A zone's place on the dashboard: base (bus) then zone, compared as numbers where they are
/// numbers, so "Zone 3.2" comes before "Zone 3.11".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneKey {
    pub bus: String,
    pub zone: String,
}

impl ZoneKey {
    pub fn new(bus: &str, zone: &str) -> Self {
        Self {
            bus: bus.to_string(),
            zone: zone.to_string(),
        }
    }
}

/// Numbers before text; numbers by value, text as text.
fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

impl Ord for ZoneKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        natural(&self.bus, &other.bus).then_with(|| natural(&self.zone, &other.zone))
    }
}

impl PartialOrd for ZoneKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One heating zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    pub name: String,
    pub temperature_c: Option<f64>,
    pub setpoint_c: Option<f64>,
}

/// A camera status older than this (seconds) is shown offline (the capture worker republishes
/// at least every 10 s).
pub const CAMERA_STATUS_MAX_AGE_S: i64 = 30;

/// One camera's health, as the capture worker last published it.
#[derive(Debug, Clone, PartialEq)]
pub struct Camera {
    pub name: String,
    pub state: CameraState,
    pub reason: Option<String>,
    /// When the status was computed (ms since the Unix epoch), if the publisher said.
    pub updated_unix_ms: Option<u64>,
}

/// How a camera is shown at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraView {
    pub online: bool,
    /// The word in large type: `online`, or the state / `offline` when stale.
    pub headline: String,
    /// The small print: the reason, or why the status is not trusted.
    pub detail: String,
}

/// Everything on the dashboard, keyed by id (sorted, so pages are stable).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DashboardState {
    pub sensors: BTreeMap<String, Sensor>,
    pub zones: BTreeMap<ZoneKey, Zone>,
    pub cameras: BTreeMap<String, Camera>,
    /// The capture worker's own status (`system/capture/status`); `None` until heard.
    pub capture_worker_online: Option<bool>,
    /// While the appliance has no administrator: the first-boot setup code, shown in a bar
    /// at the bottom of every page (proof of physical access for whoever sees the stream).
    pub setup_code: Option<String>,
}

/// Why a bus message was not applied.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("topic {topic}: payload is not the expected JSON: {source}")]
    Payload {
        topic: String,
        source: serde_json::Error,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Timestamp {
    Unix(f64),
    Text(String),
}

impl Timestamp {
    fn unix(&self) -> Option<i64> {
        match self {
            // Milliseconds if it is too large to be seconds.
            Timestamp::Unix(v) if *v > 1e11 => Some((*v / 1000.0) as i64),
            Timestamp::Unix(v) => Some(*v as i64),
            Timestamp::Text(s) => OffsetDateTime::parse(s, &Rfc3339)
                .ok()
                .map(|t| t.unix_timestamp()),
        }
    }
}

#[derive(Deserialize)]
struct SensorMsg {
    name: Option<String>,
    state: Option<serde_json::Value>,
    #[serde(default)]
    alarm: bool,
    battery: Option<f64>,
    #[serde(alias = "last_change", alias = "changed")]
    changed_at: Option<Timestamp>,
    online: Option<bool>,
}

#[derive(Deserialize)]
struct ZoneMsg {
    name: Option<String>,
    #[serde(alias = "temperature", alias = "actual_temperature_c")]
    temperature_c: Option<f64>,
    #[serde(alias = "setpoint", alias = "setpoint_temperature_c")]
    setpoint_c: Option<f64>,
    /// The fieldbus worker publishes every possible zone with `active: false` until the base
    /// station writes it; such a zone has no tile. Other publishers may leave it out.
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

fn parse<T: for<'de> Deserialize<'de>>(topic: &[&str], payload: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(payload).map_err(|source| StateError::Payload {
        topic: topic.join("/"),
        source,
    })
}

impl DashboardState {
    /// Applies one bus message (`levels` = topic levels after the prefix). Returns whether
    /// the dashboard changed; topics the dashboard does not show return `Ok(false)`.
    pub fn apply(&mut self, levels: &[&str], payload: &[u8]) -> Result<bool, StateError> {
        let clear = payload.iter().all(u8::is_ascii_whitespace);
        match levels {
            ["sensors", id, "state"] => {
                if clear {
                    return Ok(self.sensors.remove(*id).is_some());
                }
                let m: SensorMsg = parse(levels, payload)?;
                let state = match m.state {
                    Some(serde_json::Value::String(s)) => s,
                    Some(serde_json::Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                };
                let battery_pct = m.battery.map(|b| {
                    if b <= 4.0 && b.fract() == 0.0 {
                        (b * 25.0) as u8
                    } else {
                        b.clamp(0.0, 100.0) as u8
                    }
                });
                let s = Sensor {
                    name: m.name.unwrap_or_else(|| id.to_string()),
                    state,
                    alarm: m.alarm,
                    battery_pct,
                    changed_at_unix: m.changed_at.as_ref().and_then(Timestamp::unix),
                    online: m.online.unwrap_or(true),
                };
                Ok(self.sensors.insert(id.to_string(), s.clone()) != Some(s))
            }
            ["neasmart", "zone", bus, zone] => {
                let key = ZoneKey::new(bus, zone);
                if clear {
                    return Ok(self.zones.remove(&key).is_some());
                }
                let m: ZoneMsg = parse(levels, payload)?;
                if !m.active {
                    return Ok(self.zones.remove(&key).is_some());
                }
                let z = Zone {
                    name: m.name.unwrap_or_else(|| format!("Zone {bus}.{zone}")),
                    temperature_c: m.temperature_c,
                    setpoint_c: m.setpoint_c,
                };
                Ok(self.zones.insert(key, z.clone()) != Some(z))
            }
            ["capture", "camera", id, "status"] => {
                if clear {
                    return Ok(self.cameras.remove(*id).is_some());
                }
                let m: CameraStatus = parse(levels, payload)?;
                let c = Camera {
                    name: Some(m.name)
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| id.to_string()),
                    state: m.state,
                    reason: m.reason.filter(|r| !r.is_empty()),
                    updated_unix_ms: Some(m.updated_unix_ms),
                };
                Ok(self.cameras.insert(id.to_string(), c.clone()) != Some(c))
            }
            ["system", "capture", "status"] => {
                let text = String::from_utf8_lossy(payload);
                let online = match text.trim() {
                    "online" => Some(true),
                    "offline" => Some(false),
                    _ => None,
                };
                let changed = self.capture_worker_online != online;
                self.capture_worker_online = online;
                Ok(changed)
            }
            _ => Ok(false),
        }
    }

    /// Sensors in alarm, by id.
    pub fn alarms(&self) -> Vec<(&str, &Sensor)> {
        self.sensors
            .iter()
            .filter(|(_, s)| s.alarm)
            .map(|(id, s)| (id.as_str(), s))
            .collect()
    }

    /// How camera `c` is shown at Unix time `now` (seconds).
    pub fn camera_view(&self, c: &Camera, now: i64) -> CameraView {
        let reason = c.reason.clone().unwrap_or_default();
        if self.capture_worker_online == Some(false) {
            return CameraView {
                online: false,
                headline: "offline".into(),
                detail: "capture worker offline".into(),
            };
        }
        if let Some(ms) = c.updated_unix_ms {
            let age = now - (ms / 1000) as i64;
            if age > CAMERA_STATUS_MAX_AGE_S {
                return CameraView {
                    online: false,
                    headline: "offline".into(),
                    detail: format!("no status for {age} s"),
                };
            }
        }
        CameraView {
            online: c.state == CameraState::Online,
            headline: c.state.as_str().into(),
            detail: reason,
        }
    }

    /// Number of tiles (sensors, then zones, then cameras).
    pub fn tile_count(&self) -> usize {
        self.sensors.len() + self.zones.len() + self.cameras.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_the_base_never_wrote_have_no_tile_and_zones_sort_by_number() {
        let mut s = DashboardState::default();
        for (b, z, active) in [
            ("3", "11", true),
            ("3", "2", true),
            ("1", "5", false),
            ("10", "1", true),
        ] {
            let payload = format!(
                r#"{{"base":{b},"zone":{z},"active":{active},"temperature":null,"setpoint":21.0}}"#
            );
            s.apply(&["neasmart", "zone", b, z], payload.as_bytes())
                .unwrap();
        }
        let names: Vec<&str> = s.zones.values().map(|z| z.name.as_str()).collect();
        assert_eq!(names, ["Zone 3.2", "Zone 3.11", "Zone 10.1"]);
        assert_eq!(s.zones[&ZoneKey::new("3", "2")].temperature_c, None);
        // A zone that stops being active loses its tile.
        assert!(
            s.apply(&["neasmart", "zone", "3", "2"], br#"{"active":false}"#)
                .unwrap()
        );
        assert_eq!(s.tile_count(), 2);
    }

    #[test]
    fn applies_and_clears() {
        let mut s = DashboardState::default();
        assert!(
            s.apply(
                &["sensors", "door1", "state"],
                br#"{"name":"Front door","state":"open","alarm":true,"battery":3,"changed_at":"2026-11-22T10:00:00Z"}"#,
            )
            .unwrap()
        );
        let d = &s.sensors["door1"];
        assert_eq!(d.battery_pct, Some(75));
        assert!(d.alarm);
        assert_eq!(d.changed_at_unix, Some(1_795_341_600));
        assert_eq!(s.alarms().len(), 1);
        // Same message again: no change.
        assert!(
            !s.apply(
                &["sensors", "door1", "state"],
                br#"{"name":"Front door","state":"open","alarm":true,"battery":3,"changed_at":"2026-11-22T10:00:00Z"}"#,
            )
            .unwrap()
        );
        assert!(
            s.apply(
                &["neasmart", "zone", "1", "3"],
                br#"{"temperature_c":21.5,"setpoint_c":22}"#
            )
            .unwrap()
        );
        assert_eq!(s.zones[&ZoneKey::new("1", "3")].name, "Zone 1.3");
        let unnamed = String::from_utf8(CAPTURE_STATUS.to_vec())
            .unwrap()
            .replace(r#""name":"Gate""#, r#""name":"""#);
        assert!(
            s.apply(
                &["capture", "camera", "front", "status"],
                unnamed.as_bytes()
            )
            .unwrap()
        );
        assert_eq!(s.cameras["front"].name, "front");
        assert!(s.camera_view(&s.cameras["front"], NOW).online);
        assert_eq!(s.tile_count(), 3);
        assert!(s.apply(&["sensors", "door1", "state"], b"").unwrap());
        assert!(s.alarms().is_empty());
        assert!(!s.apply(&["other", "x"], b"{}").unwrap());
        assert!(s.apply(&["sensors", "x", "state"], b"not json").is_err());
    }

    /// A status as the capture worker publishes the contract's `CameraStatus`.
    const CAPTURE_STATUS: &[u8] = br#"{"id":"gate","name":"Gate","state":"online","reason":null,"input_fps":15.0,"bitrate_bps":2000000.0,"frames_dropped":0,"reconnects":1,"recording":true,"recording_bytes_per_s":250000.0,"disk_used_bytes":1048576,"last_frame_at":"2026-11-22T10:00:00.000Z","recording_error":null,"detect_latency_ms":null,"updated_unix_ms":1795341600000}"#;
    const NOW: i64 = 1_795_341_605;

    #[test]
    fn capture_worker_status_payload() {
        let mut s = DashboardState::default();
        let topic = ["capture", "camera", "gate", "status"];
        assert!(s.apply(&topic, CAPTURE_STATUS).unwrap());
        let c = s.cameras["gate"].clone();
        assert_eq!(c.name, "Gate");
        assert_eq!(c.updated_unix_ms, Some(1_795_341_600_000));
        let v = s.camera_view(&c, NOW);
        assert!(v.online, "{v:?}");
        assert_eq!(v.headline, "online");

        // Stale: more than 30 s without a republish.
        let v = s.camera_view(&c, NOW + 30);
        assert!(!v.online);
        assert_eq!(v.detail, "no status for 35 s");

        // The worker itself went away (its last will).
        assert!(
            s.apply(&["system", "capture", "status"], b"offline")
                .unwrap()
        );
        assert!(!s.camera_view(&c, NOW).online);
        assert!(
            s.apply(&["system", "capture", "status"], b"online")
                .unwrap()
        );
        assert!(s.camera_view(&c, NOW).online);

        // An error with its reason.
        let err = String::from_utf8(CAPTURE_STATUS.to_vec()).unwrap().replace(
            r#""state":"online","reason":null"#,
            r#""state":"error","reason":"connection refused""#,
        );
        assert!(s.apply(&topic, err.as_bytes()).unwrap());
        let v = s.camera_view(&s.cameras["gate"], NOW);
        assert!(!v.online);
        assert_eq!(
            (v.headline.as_str(), v.detail.as_str()),
            ("error", "connection refused")
        );

        // A status that is not the contract's (an unknown state, a missing field) is refused.
        let unknown = String::from_utf8(CAPTURE_STATUS.to_vec())
            .unwrap()
            .replace(r#""state":"online""#, r#""state":"sleeping""#);
        assert!(s.apply(&topic, unknown.as_bytes()).is_err());
        assert!(
            s.apply(&topic, br#"{"id":"gate","name":"Gate","state":"online"}"#)
                .is_err()
        );

        // The old topic is not read any more; clearing the retained status removes the tile.
        assert!(!s.apply(&["cameras", "gate", "status"], b"{}").unwrap());
        assert!(s.apply(&topic, b"").unwrap());
        assert!(s.cameras.is_empty());
    }
}
