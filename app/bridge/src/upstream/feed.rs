//! The monitoring feed: the sensors' status in a stable JSON schema for an upstream
//! monitoring system (the YoLink seed's monitoring MQTT client). Documented in `docs/bus.md`
//! ("Upstream monitoring feed").
//!
//! The feed reads the bridge's own retained sensor states from the bus
//! (`<prefix>/sensors/<id>/state`, [`SensorView`]) and publishes, under the configured topic:
//! - `<topic>/devices/<id>`: one [`FeedMessage::Device`] per change of a sensor's status (a
//!   republished state with the same status is not sent again), and
//!   [`FeedMessage::Removed`] when the sensor's retained state is cleared;
//! - `<topic>/full`: [`FeedMessage::Full`], every sensor, after each connect to the upstream and
//!   every `full_interval_s`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use watchpost_contract::alarm::SensorView;
use watchpost_yolink::Condition;

/// The `schema` field of every feed message.
pub const SCHEMA: &str = "watchpost.feed.v1";

/// One device's status in the feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceStatus {
    pub id: String,
    pub name: String,
    /// The vendor's device type (YoLink: `DoorSensor`, `THSensor`…).
    #[serde(rename = "type")]
    pub device_type: String,
    /// `door`, `motion`, `leak`, `vibration`, `co_smoke`, `th`, `other`.
    pub kind: String,
    pub model: Option<String>,
    /// `open`, `closed`, `alert`, `normal`, `error`, `unknown`.
    pub state: String,
    /// An alarm condition (not a trouble) is active.
    pub alarm: bool,
    pub online: bool,
    /// Active conditions, sorted (`intrusion`, `water`, `low_battery`, `offline`…).
    pub conditions: Vec<Condition>,
    /// Battery level 0 (empty) – 4 (full).
    pub battery: Option<u8>,
    pub signal_dbm: Option<i32>,
    pub temperature_c: Option<f64>,
    pub humidity_pct: Option<f64>,
    /// The last report from the device, ms since the Unix epoch.
    pub last_seen_ms: Option<i64>,
    /// The last change of `state`, ms since the Unix epoch.
    pub changed_at_ms: Option<i64>,
}

impl DeviceStatus {
    pub fn from_view(v: &SensorView) -> Self {
        let s = &v.sensor;
        Self {
            id: s.id.clone(),
            name: s.name.clone(),
            device_type: s.device_type.clone(),
            kind: snake(&s.kind),
            model: s.model.clone(),
            state: snake(&s.state),
            alarm: v.alarm,
            online: s.online,
            conditions: s.conditions.iter().copied().collect(),
            battery: s.battery,
            signal_dbm: s.signal_dbm,
            temperature_c: s.temperature_c,
            humidity_pct: s.humidity_pct,
            last_seen_ms: s.last_seen_ms,
            changed_at_ms: v.changed_at,
        }
    }

    /// The status without the fields that change with every report (`last_seen_ms`,
    /// `signal_dbm`): what decides whether a republished state is a change.
    fn essence(&self) -> Self {
        Self {
            last_seen_ms: None,
            signal_dbm: None,
            ..self.clone()
        }
    }
}

/// The serde spelling of one of the sensor model's enums (without a second copy of the names).
fn snake<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// A message of the feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FeedMessage {
    /// A device's status changed (`<topic>/devices/<id>`).
    Device {
        schema: String,
        /// The appliance (its MQTT client id towards this upstream).
        source: String,
        /// When the message was made, ms since the Unix epoch.
        at_ms: i64,
        device: DeviceStatus,
    },
    /// A device is no longer known (`<topic>/devices/<id>`).
    Removed {
        schema: String,
        source: String,
        at_ms: i64,
        id: String,
    },
    /// Every device (`<topic>/full`).
    Full {
        schema: String,
        source: String,
        at_ms: i64,
        devices: Vec<DeviceStatus>,
    },
}

/// What the feed knows, and what it has to say about a bus message.
#[derive(Debug)]
pub struct Feed {
    topic: String,
    source: String,
    devices: BTreeMap<String, DeviceStatus>,
}

/// A feed message to publish upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub topic: String,
    pub payload: Vec<u8>,
}

impl Feed {
    /// `topic` is the remote prefix (without a trailing `/`), `source` names the appliance.
    pub fn new(topic: &str, source: &str) -> Self {
        Self {
            topic: topic.trim_end_matches('/').to_string(),
            source: source.to_string(),
            devices: BTreeMap::new(),
        }
    }

    /// A retained sensor state from the bus (`id` is the topic level): the change message, if
    /// the status changed. An empty payload removes the device; a payload that does not decode
    /// is an error for the caller to count.
    pub fn on_state(
        &mut self,
        id: &str,
        payload: &[u8],
        now_ms: i64,
    ) -> Result<Option<Outgoing>, serde_json::Error> {
        let topic = format!("{}/devices/{id}", self.topic);
        if payload.is_empty() {
            if self.devices.remove(id).is_none() {
                return Ok(None);
            }
            let msg = FeedMessage::Removed {
                schema: SCHEMA.into(),
                source: self.source.clone(),
                at_ms: now_ms,
                id: id.to_string(),
            };
            return Ok(Some(Outgoing {
                topic,
                payload: serde_json::to_vec(&msg)?,
            }));
        }
        let view: SensorView = serde_json::from_slice(payload)?;
        let status = DeviceStatus::from_view(&view);
        let unchanged = self
            .devices
            .get(id)
            .is_some_and(|old| old.essence() == status.essence());
        self.devices.insert(id.to_string(), status.clone());
        if unchanged {
            return Ok(None);
        }
        let msg = FeedMessage::Device {
            schema: SCHEMA.into(),
            source: self.source.clone(),
            at_ms: now_ms,
            device: status,
        };
        Ok(Some(Outgoing {
            topic,
            payload: serde_json::to_vec(&msg)?,
        }))
    }

    /// The full state message.
    pub fn full(&self, now_ms: i64) -> Result<Outgoing, serde_json::Error> {
        let msg = FeedMessage::Full {
            schema: SCHEMA.into(),
            source: self.source.clone(),
            at_ms: now_ms,
            devices: self.devices.values().cloned().collect(),
        };
        Ok(Outgoing {
            topic: format!("{}/full", self.topic),
            payload: serde_json::to_vec(&msg)?,
        })
    }

    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use watchpost_yolink::{Sensor, SensorState};

    use super::*;

    fn view(state: SensorState, last_seen: i64) -> Vec<u8> {
        let mut s = Sensor::new("door1", "Front door", "DoorSensor", Some("YS7704"));
        s.state = state;
        s.battery = Some(4);
        s.last_seen_ms = Some(last_seen);
        s.state_changed_ms = Some(1_000);
        if state == SensorState::Open {
            s.conditions.insert(Condition::Intrusion);
        }
        serde_json::to_vec(&SensorView {
            alarm: state == SensorState::Open,
            changed_at: s.state_changed_ms,
            sensor: s,
        })
        .unwrap()
    }

    #[test]
    fn one_message_per_change_in_the_documented_schema() {
        let mut f = Feed::new("sites/17/feed/", "watchpost-mon");
        let m = f
            .on_state("door1", &view(SensorState::Closed, 5), 10)
            .unwrap()
            .unwrap();
        assert_eq!(m.topic, "sites/17/feed/devices/door1");
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "type": "device", "schema": "watchpost.feed.v1", "source": "watchpost-mon",
                "at_ms": 10,
                "device": {
                    "id": "door1", "name": "Front door", "type": "DoorSensor", "kind": "door",
                    "model": "YS7704", "state": "closed", "alarm": false, "online": true,
                    "conditions": [], "battery": 4, "signal_dbm": null, "temperature_c": null,
                    "humidity_pct": null, "last_seen_ms": 5, "changed_at_ms": 1000
                }
            })
        );
        // A report that only refreshes last_seen is not a change.
        assert!(
            f.on_state("door1", &view(SensorState::Closed, 6), 11)
                .unwrap()
                .is_none()
        );
        let m = f
            .on_state("door1", &view(SensorState::Open, 7), 12)
            .unwrap()
            .unwrap();
        let FeedMessage::Device { device, .. } = serde_json::from_slice(&m.payload).unwrap() else {
            panic!()
        };
        assert_eq!(device.state, "open");
        assert!(device.alarm);
        assert_eq!(device.conditions, [Condition::Intrusion]);

        let full = f.full(20).unwrap();
        assert_eq!(full.topic, "sites/17/feed/full");
        let FeedMessage::Full { devices, .. } = serde_json::from_slice(&full.payload).unwrap()
        else {
            panic!()
        };
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].last_seen_ms, Some(7));

        let gone = f.on_state("door1", b"", 30).unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&gone.payload).unwrap();
        assert_eq!(v["type"], "removed");
        assert_eq!(v["id"], "door1");
        assert!(f.is_empty());
        assert!(f.on_state("door1", b"", 31).unwrap().is_none());
        assert!(f.on_state("door1", b"{", 32).is_err());
    }
}
