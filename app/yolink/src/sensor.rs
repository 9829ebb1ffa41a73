//! The appliance's sensor model and how a YoLink report changes it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::report::{as_f64, as_i64};

/// What kind of sensor a YoLink device type is, as far as alarms are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SensorKind {
    Door,
    Motion,
    Leak,
    Vibration,
    CoSmoke,
    Th,
    Other,
}

impl SensorKind {
    /// From YoLink's `type` string.
    pub fn from_type(device_type: &str) -> Self {
        match device_type {
            "DoorSensor" => SensorKind::Door,
            "MotionSensor" => SensorKind::Motion,
            "LeakSensor" | "MultiCapsLeakSensor" => SensorKind::Leak,
            "VibrationSensor" => SensorKind::Vibration,
            "COSmokeSensor" | "SmokeAlarm" => SensorKind::CoSmoke,
            "THSensor" => SensorKind::Th,
            _ => SensorKind::Other,
        }
    }
}

/// How long a device may stay silent before it counts as offline (YoLink's keep-alive
/// classes: battery sensors report at least every few hours, mains devices more often).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceClass {
    Battery,
    Mains,
    Hub,
}

impl DeviceClass {
    pub fn from_type(device_type: &str) -> Self {
        match device_type {
            "Hub" | "SpeakerHub" => DeviceClass::Hub,
            "Siren" | "Outlet" | "MultiOutlet" | "Switch" | "Manipulator" | "GarageDoor"
            | "Dimmer" | "Thermostat" => DeviceClass::Mains,
            _ => DeviceClass::Battery,
        }
    }

    /// The silence after which a device of this class is offline.
    pub fn silence_ms(self) -> i64 {
        match self {
            DeviceClass::Battery => 9 * 3600 * 1000,
            DeviceClass::Mains => 70 * 60 * 1000,
            DeviceClass::Hub => 10 * 60 * 1000,
        }
    }
}

/// The sensor's primary state.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SensorState {
    Open,
    Closed,
    Alert,
    Normal,
    Error,
    #[default]
    Unknown,
}

/// A condition a sensor can be in; alarm rules raise and restore on these.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Door/window open, motion, vibration.
    Intrusion,
    /// Water leak.
    Water,
    Smoke,
    CarbonMonoxide,
    /// Heat alarm of a smoke/CO detector.
    Heat,
    /// High temperature alarm of a temperature sensor.
    HighTemperature,
    /// Low temperature alarm (freeze).
    Freeze,
    HighHumidity,
    LowHumidity,
    LowBattery,
    /// Detector error, sensor error state, base lost the sensor.
    Fault,
    /// The device reports its case opened or the sensor removed (a `tamper` flag).
    Tamper,
    /// No report for longer than the offline silence.
    Offline,
}

impl Condition {
    pub const ALL: [Condition; 13] = [
        Condition::Intrusion,
        Condition::Water,
        Condition::Smoke,
        Condition::CarbonMonoxide,
        Condition::Heat,
        Condition::HighTemperature,
        Condition::Freeze,
        Condition::HighHumidity,
        Condition::LowHumidity,
        Condition::LowBattery,
        Condition::Fault,
        Condition::Tamper,
        Condition::Offline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Intrusion => "intrusion",
            Condition::Water => "water",
            Condition::Smoke => "smoke",
            Condition::CarbonMonoxide => "carbon_monoxide",
            Condition::Heat => "heat",
            Condition::HighTemperature => "high_temperature",
            Condition::Freeze => "freeze",
            Condition::HighHumidity => "high_humidity",
            Condition::LowHumidity => "low_humidity",
            Condition::LowBattery => "low_battery",
            Condition::Fault => "fault",
            Condition::Tamper => "tamper",
            Condition::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// What one report says about a device (fields the report did not carry are `None`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reading {
    pub state: Option<SensorState>,
    /// Conditions the device reported explicitly (alarm flags).
    pub flags: BTreeMap<Condition, bool>,
    /// The device's own "still open" reminder (`alertType: openRemind`).
    pub reminder: bool,
    pub battery: Option<u8>,
    pub signal_dbm: Option<i32>,
    pub temperature_c: Option<f64>,
    pub humidity_pct: Option<f64>,
    pub state_changed_ms: Option<i64>,
    /// Online flag of a `getState` answer.
    pub online: Option<bool>,
}

fn flag(obj: &Map<String, Value>, key: &str) -> Option<bool> {
    match obj.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => Some(n.as_i64() != Some(0)),
        Value::String(s) => match s.as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn state_word(s: &str) -> SensorState {
    match s {
        "open" => SensorState::Open,
        "closed" => SensorState::Closed,
        "alert" | "full" | "leak" => SensorState::Alert,
        "normal" | "dry" => SensorState::Normal,
        "error" => SensorState::Error,
        _ => SensorState::Unknown,
    }
}

/// Reads the `data` object of a report (or the `state` object of a `getState` answer) of a
/// device of `kind`.
pub fn read(kind: SensorKind, data: &Map<String, Value>) -> Reading {
    let mut r = Reading {
        battery: data
            .get("battery")
            .and_then(as_i64)
            .map(|b| b.clamp(0, 4) as u8),
        signal_dbm: data
            .get("loraInfo")
            .and_then(Value::as_object)
            .and_then(|l| l.get("signal"))
            .and_then(as_i64)
            .and_then(|s| i32::try_from(s).ok()),
        state_changed_ms: data.get("stateChangedAt").and_then(as_i64),
        online: flag(data, "online"),
        ..Reading::default()
    };
    let state_value = data.get("state");
    match kind {
        SensorKind::CoSmoke => {
            if let Some(st) = state_value.and_then(Value::as_object) {
                let smoke = flag(st, "smokeAlarm").unwrap_or(false)
                    || flag(st, "denseSmokeAlarm").unwrap_or(false);
                let co = flag(st, "gasAlarm").unwrap_or(false);
                let heat = flag(st, "highTempAlarm").unwrap_or(false);
                r.flags.insert(Condition::Smoke, smoke);
                r.flags.insert(Condition::CarbonMonoxide, co);
                r.flags.insert(Condition::Heat, heat);
                if let Some(low) = flag(st, "sLowBattery") {
                    r.flags.insert(Condition::LowBattery, low);
                }
                if let Some(lost) = flag(st, "unexpected") {
                    r.flags.insert(Condition::Fault, lost);
                }
                r.state = Some(if smoke || co || heat {
                    SensorState::Alert
                } else {
                    SensorState::Normal
                });
            }
        }
        _ => {
            r.state = match state_value {
                Some(Value::String(s)) => Some(state_word(s)),
                // MultiCapsLeakSensor: {"state": {"waterDetection": "leak"}}
                Some(Value::Object(o)) => o
                    .get("waterDetection")
                    .and_then(Value::as_str)
                    .map(state_word),
                _ => None,
            };
        }
    }
    if kind == SensorKind::Door {
        r.reminder = data.get("alertType").and_then(Value::as_str) == Some("openRemind");
    }
    let alarm_state = data.get("alarmState").and_then(Value::as_object);
    if let Some(err) = alarm_state.and_then(|a| flag(a, "detectorError")) {
        r.flags.insert(Condition::Fault, err);
    }
    // None of the documented YoLink payloads carries a tamper switch; a device that does report
    // one (`tamper` in `alarmState`, or beside `state`) raises and clears Tamper with it.
    if let Some(t) = alarm_state
        .and_then(|a| flag(a, "tamper"))
        .or_else(|| flag(data, "tamper"))
    {
        r.flags.insert(Condition::Tamper, t);
    }
    if kind == SensorKind::Th {
        r.temperature_c = data.get("temperature").and_then(as_f64);
        r.humidity_pct = data.get("humidity").and_then(as_f64);
        if let Some(alarm) = data.get("alarm").and_then(Value::as_object) {
            for (key, cond) in [
                ("lowTemp", Condition::Freeze),
                ("highTemp", Condition::HighTemperature),
                ("lowHumidity", Condition::LowHumidity),
                ("highHumidity", Condition::HighHumidity),
                ("lowBattery", Condition::LowBattery),
            ] {
                if let Some(v) = flag(alarm, key) {
                    r.flags.insert(cond, v);
                }
            }
        }
    }
    r
}

/// A sensor as the appliance knows it; published retained on the bus. Readers ignore fields
/// they do not know (a newer bridge may add some), as everywhere on the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Sensor {
    pub id: String,
    pub name: String,
    /// YoLink's type string, e.g. `DoorSensor`.
    #[serde(rename = "type")]
    pub device_type: String,
    pub kind: SensorKind,
    pub model: Option<String>,
    pub state: SensorState,
    /// Active conditions, sorted.
    pub conditions: BTreeSet<Condition>,
    /// YoLink battery level 0 (empty) – 4 (full).
    pub battery: Option<u8>,
    pub signal_dbm: Option<i32>,
    pub temperature_c: Option<f64>,
    pub humidity_pct: Option<f64>,
    pub last_seen_ms: Option<i64>,
    pub state_changed_ms: Option<i64>,
    pub online: bool,
    /// The last report was the device's "still open" reminder.
    pub reminder: bool,
}

/// What [`Sensor::apply`] or [`Sensor::check_online`] changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    pub raised: Vec<Condition>,
    pub cleared: Vec<Condition>,
    pub state_changed: bool,
    /// The report was the device's "still open" reminder.
    pub reminder: bool,
    /// Anything published about the sensor changed (including battery, signal, last seen).
    pub changed: bool,
}

impl Update {
    /// Whether alarm rules need to look at this update.
    pub fn is_significant(&self) -> bool {
        !self.raised.is_empty() || !self.cleared.is_empty() || self.state_changed || self.reminder
    }
}

impl Sensor {
    pub fn new(id: &str, name: &str, device_type: &str, model: Option<&str>) -> Self {
        Self {
            id: id.to_string(),
            name: name.to_string(),
            device_type: device_type.to_string(),
            kind: SensorKind::from_type(device_type),
            model: model.map(str::to_string),
            state: SensorState::Unknown,
            conditions: BTreeSet::new(),
            battery: None,
            signal_dbm: None,
            temperature_c: None,
            humidity_pct: None,
            last_seen_ms: None,
            state_changed_ms: None,
            online: true,
            reminder: false,
        }
    }

    /// Merges `reading` received at `now_ms`. A battery level at or below
    /// `low_battery_level` raises [`Condition::LowBattery`].
    pub fn apply(&mut self, reading: &Reading, now_ms: i64, low_battery_level: u8) -> Update {
        let before = self.clone();
        let mut conditions = self.conditions.clone();
        let mut set = |c: Condition, on: bool| {
            if on {
                conditions.insert(c);
            } else {
                conditions.remove(&c);
            }
        };
        if let Some(state) = reading.state {
            self.state = state;
            match self.kind {
                SensorKind::Door => set(Condition::Intrusion, state == SensorState::Open),
                SensorKind::Motion | SensorKind::Vibration => {
                    set(Condition::Intrusion, state == SensorState::Alert)
                }
                SensorKind::Leak => set(Condition::Water, state == SensorState::Alert),
                _ => {}
            }
            if !reading.flags.contains_key(&Condition::Fault) {
                set(Condition::Fault, state == SensorState::Error);
            }
        }
        for (&c, &on) in &reading.flags {
            if c != Condition::LowBattery {
                set(c, on);
            }
        }
        let by_level = reading.battery.map(|b| b <= low_battery_level);
        let by_flag = reading.flags.get(&Condition::LowBattery).copied();
        match (by_level, by_flag) {
            (None, None) => {}
            (a, b) => set(
                Condition::LowBattery,
                a.unwrap_or(false) || b.unwrap_or(false),
            ),
        }
        let online = reading.online.unwrap_or(true);
        set(Condition::Offline, !online);
        self.online = online;
        if reading.battery.is_some() {
            self.battery = reading.battery;
        }
        if reading.signal_dbm.is_some() {
            self.signal_dbm = reading.signal_dbm;
        }
        if reading.temperature_c.is_some() {
            self.temperature_c = reading.temperature_c;
        }
        if reading.humidity_pct.is_some() {
            self.humidity_pct = reading.humidity_pct;
        }
        if reading.state_changed_ms.is_some() {
            self.state_changed_ms = reading.state_changed_ms;
        } else if before.state != self.state {
            self.state_changed_ms = Some(now_ms);
        }
        self.last_seen_ms = Some(now_ms);
        self.reminder = reading.reminder;
        self.finish(before, conditions, reading.reminder)
    }

    /// Records that the device was heard from (a settings echo or other stateless report).
    pub fn seen(&mut self, now_ms: i64) -> Update {
        let before = self.clone();
        let mut conditions = self.conditions.clone();
        conditions.remove(&Condition::Offline);
        self.online = true;
        self.last_seen_ms = Some(now_ms);
        self.reminder = false;
        self.finish(before, conditions, false)
    }

    /// Marks the sensor offline when it has been silent for more than `silence_ms` at
    /// `now_ms`. A sensor never seen counts from `since_ms` (when watching began).
    pub fn check_online(&mut self, now_ms: i64, silence_ms: i64, since_ms: i64) -> Update {
        let last = self.last_seen_ms.unwrap_or(since_ms);
        if !self.online || now_ms.saturating_sub(last) <= silence_ms {
            return Update::default();
        }
        let before = self.clone();
        let mut conditions = self.conditions.clone();
        conditions.insert(Condition::Offline);
        self.online = false;
        self.reminder = false;
        self.finish(before, conditions, false)
    }

    fn finish(
        &mut self,
        before: Sensor,
        conditions: BTreeSet<Condition>,
        reminder: bool,
    ) -> Update {
        let raised = conditions.difference(&before.conditions).copied().collect();
        let cleared = before.conditions.difference(&conditions).copied().collect();
        self.conditions = conditions;
        Update {
            raised,
            cleared,
            state_changed: before.state != self.state,
            reminder,
            changed: before != *self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn door_open_close_and_reminder() {
        let mut s = Sensor::new("d1", "Front door", "DoorSensor", Some("YS7704-UC"));
        let open = read(
            SensorKind::Door,
            &obj(json!({"state": "open", "alertType": "normal", "battery": 4,
                "loraInfo": {"signal": -60}, "stateChangedAt": 1000})),
        );
        let u = s.apply(&open, 1005, 1);
        assert_eq!(u.raised, vec![Condition::Intrusion]);
        assert!(u.state_changed && u.is_significant() && !u.reminder);
        assert_eq!(
            (s.state, s.battery, s.signal_dbm),
            (SensorState::Open, Some(4), Some(-60))
        );
        let remind = read(
            SensorKind::Door,
            &obj(json!({"state": "open", "alertType": "openRemind", "battery": 4})),
        );
        let u = s.apply(&remind, 65_000, 1);
        assert!(u.raised.is_empty() && u.reminder && !u.state_changed && u.is_significant());
        let closed = read(
            SensorKind::Door,
            &obj(json!({"state": "closed", "battery": 4})),
        );
        let u = s.apply(&closed, 70_000, 1);
        assert_eq!(u.cleared, vec![Condition::Intrusion]);
        assert_eq!(s.state_changed_ms, Some(70_000));
        let err = read(SensorKind::Door, &obj(json!({"state": "error"})));
        assert_eq!(s.apply(&err, 80_000, 1).raised, vec![Condition::Fault]);
    }

    #[test]
    fn tamper_flag_raises_and_clears_tamper() {
        let mut s = Sensor::new("m", "Hall", "MotionSensor", None);
        let u = s.apply(
            &read(
                SensorKind::Motion,
                &obj(json!({"state": "normal", "alarmState": {"tamper": true}})),
            ),
            1,
            1,
        );
        assert_eq!(u.raised, vec![Condition::Tamper]);
        assert!(u.is_significant());
        // A report without the flag leaves it as it was; the flag beside `state` clears it.
        let u = s.apply(&read(SensorKind::Motion, &obj(json!({"battery": 4}))), 2, 1);
        assert!(u.raised.is_empty() && u.cleared.is_empty());
        let u = s.apply(
            &read(SensorKind::Motion, &obj(json!({"tamper": false}))),
            3,
            1,
        );
        assert_eq!(u.cleared, vec![Condition::Tamper]);
    }

    #[test]
    fn battery_level_is_not_a_percentage() {
        let mut s = Sensor::new("m", "Hall", "MotionSensor", None);
        let u = s.apply(
            &read(
                SensorKind::Motion,
                &obj(json!({"state": "normal", "battery": 1})),
            ),
            1,
            1,
        );
        assert_eq!(u.raised, vec![Condition::LowBattery]);
        let u = s.apply(&read(SensorKind::Motion, &obj(json!({"battery": 3}))), 2, 1);
        assert_eq!(u.cleared, vec![Condition::LowBattery]);
        let r = read(SensorKind::Motion, &obj(json!({"battery": 99})));
        assert_eq!(r.battery, Some(4));
    }

    #[test]
    fn motion_leak_vibration() {
        let mut m = Sensor::new("m", "Hall", "MotionSensor", None);
        assert_eq!(
            m.apply(
                &read(SensorKind::Motion, &obj(json!({"state": "alert"}))),
                1,
                1
            )
            .raised,
            vec![Condition::Intrusion]
        );
        let mut v = Sensor::new("v", "Safe", "VibrationSensor", None);
        assert_eq!(
            v.apply(
                &read(SensorKind::Vibration, &obj(json!({"state": "alert"}))),
                1,
                1
            )
            .raised,
            vec![Condition::Intrusion]
        );
        let mut l = Sensor::new("l", "Basement", "LeakSensor", None);
        let u = l.apply(
            &read(
                SensorKind::Leak,
                &obj(json!({"state": "full", "alarmState": {"detectorError": true}})),
            ),
            1,
            1,
        );
        assert_eq!(u.raised, vec![Condition::Water, Condition::Fault]);
        let mut mc = Sensor::new("l2", "Sink", "MultiCapsLeakSensor", None);
        let u = mc.apply(
            &read(
                SensorKind::Leak,
                &obj(json!({"state": {"waterDetection": "leak"}})),
            ),
            1,
            1,
        );
        assert_eq!(u.raised, vec![Condition::Water]);
    }

    #[test]
    fn co_smoke_object_state() {
        let mut s = Sensor::new("c", "Kitchen", "COSmokeSensor", None);
        let r = read(
            SensorKind::CoSmoke,
            &obj(json!({"state": {"smokeAlarm": true, "gasAlarm": false,
            "highTempAlarm": true, "sLowBattery": false, "unexpected": false}, "battery": 4})),
        );
        let u = s.apply(&r, 1, 1);
        assert_eq!(u.raised, vec![Condition::Smoke, Condition::Heat]);
        assert_eq!(s.state, SensorState::Alert);
        let r = read(
            SensorKind::CoSmoke,
            &obj(json!({"state": {"smokeAlarm": false, "gasAlarm": true,
            "highTempAlarm": false}})),
        );
        let u = s.apply(&r, 2, 1);
        assert_eq!(u.raised, vec![Condition::CarbonMonoxide]);
        assert_eq!(u.cleared, vec![Condition::Smoke, Condition::Heat]);
    }

    #[test]
    fn th_sensor_alarms() {
        let mut s = Sensor::new("t", "Cellar", "THSensor", None);
        let r = read(
            SensorKind::Th,
            &obj(
                json!({"state": "alert", "temperature": 2.5, "humidity": "71.5",
            "mode": "c", "alarm": {"lowBattery": false, "lowTemp": true, "highTemp": false,
            "lowHumidity": false, "highHumidity": true, "period": false, "code": 0}, "battery": 2}),
            ),
        );
        let u = s.apply(&r, 1, 1);
        assert_eq!(u.raised, vec![Condition::Freeze, Condition::HighHumidity]);
        assert_eq!((s.temperature_c, s.humidity_pct), (Some(2.5), Some(71.5)));
    }

    #[test]
    fn offline_after_silence_and_back() {
        let mut s = Sensor::new("d", "Door", "DoorSensor", None);
        s.apply(
            &read(SensorKind::Door, &obj(json!({"state": "closed"}))),
            1000,
            1,
        );
        assert_eq!(s.check_online(5000, 10_000, 0), Update::default());
        let u = s.check_online(11_001, 10_000, 0);
        assert_eq!(u.raised, vec![Condition::Offline]);
        assert!(!s.online);
        assert_eq!(s.check_online(20_000, 10_000, 0), Update::default());
        let u = s.seen(21_000);
        assert_eq!(u.cleared, vec![Condition::Offline]);
        let mut never = Sensor::new("n", "N", "DoorSensor", None);
        assert_eq!(never.check_online(9_000, 10_000, 0), Update::default());
        assert_eq!(
            never.check_online(10_001, 10_000, 0).raised,
            vec![Condition::Offline]
        );
        assert_eq!(
            DeviceClass::from_type("DoorSensor").silence_ms(),
            9 * 3_600_000
        );
        assert_eq!(DeviceClass::from_type("Hub").silence_ms(), 600_000);
    }

    #[test]
    fn model_serialises_stably() {
        let s = Sensor::new("d", "Door", "DoorSensor", None);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["type"], "DoorSensor");
        assert_eq!(v["kind"], "door");
        assert_eq!(v["state"], "unknown");
        let back: Sensor = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }
}
