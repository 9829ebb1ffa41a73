//! What the dashboard shows, and how bus messages update it.
//!
//! Topics are given relative to the bus prefix (documented in docs/bus.md, "rtsp" section):
//! - `sensors/<id>/state` (retained JSON): `name`, `state`, `alarm` (bool), `battery`
//!   (0–4 level or 5–100 percent), `changed_at` (RFC 3339 string or Unix seconds), `online`;
//! - `neasmart/zone/<bus>/<zone>` (retained JSON): `name`, `temperature_c`, `setpoint_c`;
//! - `cameras/<id>/status` (retained JSON): `name`, `online` (bool) or `state` (string);
//!
//! An empty payload removes the entry (MQTT's way of clearing a retained topic). Unknown
//! fields are ignored, so publishers may add more.

use std::collections::BTreeMap;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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

/// One heating zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    pub name: String,
    pub temperature_c: Option<f64>,
    pub setpoint_c: Option<f64>,
}

/// One camera's health.
#[derive(Debug, Clone, PartialEq)]
pub struct Camera {
    pub name: String,
    pub online: bool,
    pub detail: String,
}

/// Everything on the dashboard, keyed by id (sorted, so pages are stable).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DashboardState {
    pub sensors: BTreeMap<String, Sensor>,
    pub zones: BTreeMap<String, Zone>,
    pub cameras: BTreeMap<String, Camera>,
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
}

#[derive(Deserialize)]
struct CameraMsg {
    name: Option<String>,
    online: Option<bool>,
    state: Option<String>,
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
                let key = format!("{bus}/{zone}");
                if clear {
                    return Ok(self.zones.remove(&key).is_some());
                }
                let m: ZoneMsg = parse(levels, payload)?;
                let z = Zone {
                    name: m.name.unwrap_or_else(|| format!("Zone {bus}.{zone}")),
                    temperature_c: m.temperature_c,
                    setpoint_c: m.setpoint_c,
                };
                Ok(self.zones.insert(key, z.clone()) != Some(z))
            }
            ["cameras", id, "status"] => {
                if clear {
                    return Ok(self.cameras.remove(*id).is_some());
                }
                let m: CameraMsg = parse(levels, payload)?;
                let online = m.online.unwrap_or(matches!(
                    m.state.as_deref(),
                    Some("online" | "streaming" | "ok" | "healthy" | "running")
                ));
                let c = Camera {
                    name: m.name.unwrap_or_else(|| id.to_string()),
                    online,
                    detail: m
                        .state
                        .unwrap_or_else(|| if online { "online" } else { "offline" }.into()),
                };
                Ok(self.cameras.insert(id.to_string(), c.clone()) != Some(c))
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

    /// Number of tiles (sensors, then zones, then cameras).
    pub fn tile_count(&self) -> usize {
        self.sensors.len() + self.zones.len() + self.cameras.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(s.zones["1/3"].name, "Zone 1.3");
        assert!(
            s.apply(&["cameras", "front", "status"], br#"{"state":"streaming"}"#)
                .unwrap()
        );
        assert!(s.cameras["front"].online);
        assert_eq!(s.tile_count(), 3);
        assert!(s.apply(&["sensors", "door1", "state"], b"").unwrap());
        assert!(s.alarms().is_empty());
        assert!(!s.apply(&["other", "x"], b"{}").unwrap());
        assert!(s.apply(&["sensors", "x", "state"], b"not json").is_err());
    }
}
