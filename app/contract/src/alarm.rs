//! Sensors and alarms: what the `bridge` worker publishes about YoLink sensors and how the
//! hub's alarm service acknowledges the numbered sensor events.
//!
//! Topics, under the bus prefix (payloads documented in `docs/bus.md`, "Sensors and alarms"):
//! - `sensors/<id>/state`, retained: [`SensorView`], the sensor model with two fields for
//!   displays; `<id>` is the YoLink deviceId (the bus turns `/ + #` into `_`);
//! - `sensors/events`: [`SensorEvent`], one per change that matters to alarms, numbered per
//!   bridge run and sent again until acknowledged;
//! - `alarms/intake/ack`: [`IntakeAck`], the hub has saved everything through a sequence;
//! - `alarms/intake/resend`: [`IntakeResend`], the hub asks for events again.
//!
//! The sensor model itself is `watchpost_yolink::Sensor` (pure data; re-exported here).
//! Relay commands of alarm routes are the relay area's [`crate::relay::Set`].

use serde::{Deserialize, Serialize};

pub use watchpost_yolink::Sensor;

/// First level of the sensor topics.
pub const SENSORS: &str = "sensors";

/// `sensors/events`.
pub const EVENTS: [&str; 2] = [SENSORS, "events"];

/// `sensors/+/state`: every sensor's retained state (a subscription filter).
pub const SENSOR_STATES: [&str; 3] = [SENSORS, "+", "state"];

/// `alarms/intake/ack`.
pub const INTAKE_ACK: [&str; 3] = ["alarms", "intake", "ack"];

/// `alarms/intake/resend`.
pub const INTAKE_RESEND: [&str; 3] = ["alarms", "intake", "resend"];

/// `sensors/<id>/state`.
pub fn sensor_state(id: &str) -> Vec<String> {
    vec![SENSORS.into(), id.into(), "state".into()]
}

/// The sensor id level of a `sensors/<id>/state` topic given as levels under the prefix.
pub fn sensor_state_id<'a>(levels: &[&'a str]) -> Option<&'a str> {
    match levels {
        [SENSORS, id, "state"] => Some(id),
        _ => None,
    }
}

/// `sensors/<id>/state`, retained: the sensor model and what displays need besides it. An
/// empty retained payload means the sensor is gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SensorView {
    #[serde(flatten)]
    pub sensor: Sensor,
    /// An alarm condition (not a trouble such as a low battery) is active.
    pub alarm: bool,
    /// The last state change (ms since the Unix epoch), as `sensor.state_changed_ms`.
    pub changed_at: Option<i64>,
}

/// `sensors/events`: one change of a sensor that matters to alarms (a condition raised or
/// cleared, a state change, the door's "still open" reminder) or a state poll (`sync`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorEvent {
    /// The bridge run (its start time in ms); sequence numbers restart with each run.
    pub epoch: u64,
    /// Counts from 1 within the run.
    pub seq: u64,
    /// The oldest sequence number the bridge still holds (unacknowledged).
    pub head: u64,
    /// When the bridge recorded the event (ms since the Unix epoch).
    pub at_ms: i64,
    /// The update was the sensor's "still open" reminder.
    #[serde(default)]
    pub reminder: bool,
    /// The update re-publishes known state (bridge start, reconnect), not a change.
    #[serde(default)]
    pub sync: bool,
    pub sensor: Sensor,
}

/// `alarms/intake/ack`: the hub has saved everything of run `epoch` through `through`; the
/// bridge forgets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntakeAck {
    pub epoch: u64,
    pub through: u64,
}

/// `alarms/intake/resend`: send again from `from` in run `epoch`; when `epoch` is not the
/// bridge's current run, everything it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntakeResend {
    pub epoch: u64,
    pub from: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn door() -> Sensor {
        let mut s = Sensor::new("d/1", "Front door", "DoorSensor", Some("YS7704-UC"));
        s.battery = Some(3);
        s.state_changed_ms = Some(1_700_000_000_123);
        s
    }

    #[test]
    fn state_has_the_documented_shape() {
        let view = SensorView {
            sensor: door(),
            alarm: true,
            changed_at: Some(1_700_000_000_123),
        };
        let v = serde_json::to_value(&view).unwrap();
        assert_eq!(
            v,
            json!({"id": "d/1", "name": "Front door", "type": "DoorSensor", "kind": "door",
                "model": "YS7704-UC", "state": "unknown", "conditions": [], "battery": 3,
                "signal_dbm": null, "temperature_c": null, "humidity_pct": null,
                "last_seen_ms": null, "state_changed_ms": 1_700_000_000_123_i64, "online": true,
                "reminder": false, "alarm": true, "changed_at": 1_700_000_000_123_i64})
        );
        assert_eq!(serde_json::from_value::<SensorView>(v).unwrap(), view);
    }

    #[test]
    fn event_and_intake_messages_have_the_documented_shapes() {
        let ev = SensorEvent {
            epoch: 7,
            seq: 3,
            head: 2,
            at_ms: 5,
            reminder: true,
            sync: false,
            sensor: door(),
        };
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["epoch"], 7);
        assert_eq!(v["seq"], 3);
        assert_eq!(v["head"], 2);
        assert_eq!(v["at_ms"], 5);
        assert_eq!(v["reminder"], true);
        assert_eq!(v["sync"], false);
        assert_eq!(v["sensor"]["id"], "d/1");
        assert_eq!(
            serde_json::from_value::<SensorEvent>(v.clone()).unwrap(),
            ev
        );
        // `reminder` and `sync` may be left out.
        let mut short = v;
        short.as_object_mut().unwrap().remove("reminder");
        short.as_object_mut().unwrap().remove("sync");
        let back: SensorEvent = serde_json::from_value(short).unwrap();
        assert!(!back.reminder && !back.sync);

        let ack = IntakeAck {
            epoch: 7,
            through: 9,
        };
        assert_eq!(
            serde_json::to_value(ack).unwrap(),
            json!({"epoch": 7, "through": 9})
        );
        let resend = IntakeResend { epoch: 0, from: 1 };
        assert_eq!(
            serde_json::to_value(resend).unwrap(),
            json!({"epoch": 0, "from": 1})
        );
        assert!(serde_json::from_value::<IntakeAck>(json!({"epoch": 7})).is_err());
    }

    #[test]
    fn state_topics() {
        assert_eq!(sensor_state("door1"), ["sensors", "door1", "state"]);
        assert_eq!(
            sensor_state_id(&["sensors", "door1", "state"]),
            Some("door1")
        );
        assert_eq!(sensor_state_id(&["sensors", "events"]), None);
    }
}
