//! Sensors and alarms: what the `bridge` worker publishes about YoLink sensors and how the
//! hub's alarm service acknowledges the numbered sensor events.
//!
//! Topics, under the bus prefix (payloads documented in `docs/bus.md`, "Sensors and alarms"):
//! - `sensors/<id>/state`, retained: [`SensorView`], the sensor model with two fields for
//!   displays; `<id>` is the YoLink deviceId (the bus turns `/ + #` into `_`);
//! - `sensors/events`: [`SensorEvent`], one per change that matters to alarms, numbered per
//!   bridge run and sent again until acknowledged;
//! - `alarms/intake/ack`: [`IntakeAck`], the hub has saved everything through a sequence;
//! - `alarms/intake/resend`: [`IntakeResend`], the hub asks for events again;
//! - `alarms/receiver/<id>/status`, retained: [`ReceiverStatus`], one alarm receiver's link and
//!   delivery queue (an empty retained payload: the receiver is no longer configured);
//! - `alarms/receiver/<id>/test`: [`TestRequest`], queue a manual test alarm, answered with
//!   [`TestQueued`] or an [`AlarmCode`].
//!
//! The sensor model itself is `watchpost_yolink::Sensor` (pure data; re-exported here).
//! Relay commands of alarm routes are the relay area's [`crate::relay::Set`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rpc::{ReplyError, Request};

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

/// `alarms/receiver/+/status`: every receiver's retained status (a subscription filter).
pub const RECEIVER_STATUSES: [&str; 4] = ["alarms", "receiver", "+", "status"];

/// `alarms/receiver/+/test`: the test commands of every receiver (a subscription filter).
pub const RECEIVER_TESTS: [&str; 4] = ["alarms", "receiver", "+", "test"];

/// `alarms/receiver/<id>/status`.
pub fn receiver_status(id: &str) -> Vec<String> {
    vec![
        "alarms".into(),
        "receiver".into(),
        id.into(),
        "status".into(),
    ]
}

/// `alarms/receiver/<id>/test`.
pub fn receiver_test(id: &str) -> Vec<String> {
    vec!["alarms".into(), "receiver".into(), id.into(), "test".into()]
}

/// The receiver id level of an `alarms/receiver/<id>/status` topic given as levels under the
/// prefix.
pub fn receiver_status_id<'a>(levels: &[&'a str]) -> Option<&'a str> {
    match levels {
        ["alarms", "receiver", id, "status"] => Some(id),
        _ => None,
    }
}

/// The receiver id level of an `alarms/receiver/<id>/test` topic given as levels under the
/// prefix.
pub fn receiver_test_id<'a>(levels: &[&'a str]) -> Option<&'a str> {
    match levels {
        ["alarms", "receiver", id, "test"] => Some(id),
        _ => None,
    }
}

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

/// The kind of an alarm receiver (`type` of `[[alarms.receivers]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReceiverType {
    /// A SIA DC-09 central station.
    Sia,
    /// A CHEKT bridge (HTTP).
    Chekt,
    /// Relay outputs of the fieldbus worker.
    Relay,
}

impl ReceiverType {
    pub const fn as_str(self) -> &'static str {
        match self {
            ReceiverType::Sia => "sia",
            ReceiverType::Chekt => "chekt",
            ReceiverType::Relay => "relay",
        }
    }
}

/// What a receiver's delivery task is doing (the `state` of `/api/v1/alarms/queues`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Nothing queued.
    Idle,
    /// A delivery round is under way.
    Delivering,
    /// The last round failed; the next waits for its back-off.
    Retrying,
}

impl DeliveryState {
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Idle => "idle",
            DeliveryState::Delivering => "delivering",
            DeliveryState::Retrying => "retrying",
        }
    }
}

/// `alarms/receiver/<id>/status`, retained: one receiver's link and delivery queue, the same
/// figures as its entry in `/api/v1/alarms/queues`. Published when something in it changes (at
/// most every 500 ms) and at least every 60 s; an empty retained payload means the receiver is
/// no longer configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiverStatus {
    /// The receiver's configured id.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ReceiverType,
    /// A display name; receivers have none configured today, so it is left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The receiver acknowledged the last delivery round (an alarm, a test, a NULL link test):
    /// `false` after a failed round and before the first acknowledgement ever.
    pub link_up: bool,
    pub state: DeliveryState,
    /// What the last failed round means (`null` once a delivery is acknowledged).
    pub last_error: Option<String>,
    /// Deliveries waiting in the queue (the one in flight included).
    pub queued: u64,
    pub capacity: u64,
    /// When the oldest waiting delivery was queued (ms since the Unix epoch).
    pub oldest_queued_unix_ms: Option<i64>,
    pub delivered_total: u64,
    /// Delivery rounds that ended without an acknowledgement (each is retried).
    pub failed_total: u64,
    /// Tries the receiver answered as not understood (SIA DUH, HTTP 400/404/405/422, an
    /// unknown relay module or channel); retried like any failure.
    pub not_understood_total: u64,
    /// Deliveries ended without an acknowledgement because no retry could deliver them.
    pub given_up_total: u64,
    pub attempts_total: u64,
    /// Refused by a full queue (`overflow = "reject_new"`).
    pub rejected_total: u64,
    /// Removed from a full queue (`overflow = "drop_oldest"`).
    pub dropped_total: u64,
    pub last_delivered_unix_ms: Option<i64>,
    pub last_attempt_unix_ms: Option<i64>,
    /// The endpoint of the last round (`host:port`, a URL, `relay:<module>/<output>`).
    pub last_endpoint: Option<String>,
    /// SIA only: the clock correction learnt from the receiver's NAKs (s).
    pub clock_offset_s: Option<i64>,
    /// When this status was taken (ms since the Unix epoch).
    pub updated_unix_ms: i64,
}

/// `alarms/receiver/<id>/test` (and the body of `POST /api/v1/alarms/receivers/{id}/test`):
/// queue a manual test alarm (SIA RX / Contact ID 601) for the receiver, like a real alarm.
/// Every field is optional; the defaults come from the first mapping that routes to the
/// receiver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// SIA: the zone to report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<u16>,
    /// CHEKT: the channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u16>,
    /// Relay: the output to pulse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

impl Request for TestRequest {
    type Reply = TestQueued;
    type Code = AlarmCode;
}

impl TestRequest {
    /// Reads a test command from the bus: a JSON object with the optional fields, or any
    /// other payload (`null`, an empty or plain-text one such as Home Assistant's button
    /// `PRESS`) for the default test.
    pub fn from_body(body: &Value) -> Result<Self, ReplyError<AlarmCode>> {
        match body {
            Value::Object(_) => serde_json::from_value(body.clone()).map_err(|e| {
                ReplyError::new(AlarmCode::InvalidBody, format!("the test command: {e}"))
            }),
            Value::Null | Value::String(_) => Ok(Self::default()),
            _ => Err(ReplyError::new(
                AlarmCode::InvalidBody,
                "give {} or {\"zone\", \"channel\", \"output\"}",
            )),
        }
    }
}

/// The answer to [`TestRequest`]: the test alarm is queued for the receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TestQueued {
    pub alarm_id: u64,
    pub receiver: String,
    /// Its place in the receiver's durable queue.
    pub queue_seq: u64,
}

crate::error_codes! {
    /// Why an alarm command failed (the same codes as the REST API's alarm routes).
    pub enum AlarmCode {
        #[invalid_body]
        /// The command's body does not decode.
        InvalidBody = "INVALID_BODY",
        /// No receiver of that id is configured.
        ReceiverNotFound = "RECEIVER_NOT_FOUND",
        /// The test cannot be addressed (a relay receiver with no output given or mapped).
        InvalidTest = "INVALID_TEST",
        /// `[alarms] enabled = false`.
        AlarmsDisabled = "ALARMS_DISABLED",
        /// The alarm service is not running (starting, stopping, or stopped on an error).
        AlarmsUnavailable = "ALARMS_UNAVAILABLE",
        /// The receiver's queue is full (`overflow = "reject_new"`).
        QueueFull = "QUEUE_FULL",
        /// The queue or the service's state could not be written.
        AlarmServiceError = "ALARM_SERVICE_ERROR",
        /// The secrets of receivers added through the API cannot be opened.
        AlarmSecrets = "ALARM_SECRETS",
    }
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
        assert_eq!(
            receiver_status("cms"),
            ["alarms", "receiver", "cms", "status"]
        );
        assert_eq!(receiver_test("cms"), ["alarms", "receiver", "cms", "test"]);
        assert_eq!(
            receiver_status_id(&["alarms", "receiver", "cms", "status"]),
            Some("cms")
        );
        assert_eq!(
            receiver_test_id(&["alarms", "receiver", "cms", "test"]),
            Some("cms")
        );
        assert_eq!(
            receiver_test_id(&["alarms", "receiver", "cms", "status"]),
            None
        );
        assert_eq!(receiver_status_id(&["alarms", "intake", "ack"]), None);
    }

    #[test]
    fn receiver_status_has_the_documented_shape() {
        let status = ReceiverStatus {
            id: "cms".into(),
            kind: ReceiverType::Sia,
            name: None,
            link_up: false,
            state: DeliveryState::Retrying,
            last_error: Some("127.0.0.1:5000: no answer in time".into()),
            queued: 2,
            capacity: 1000,
            oldest_queued_unix_ms: Some(1_700_000_000_000),
            delivered_total: 7,
            failed_total: 3,
            not_understood_total: 1,
            given_up_total: 0,
            attempts_total: 11,
            rejected_total: 0,
            dropped_total: 0,
            last_delivered_unix_ms: Some(1_699_999_000_000),
            last_attempt_unix_ms: Some(1_700_000_001_000),
            last_endpoint: Some("127.0.0.1:5000".into()),
            clock_offset_s: Some(0),
            updated_unix_ms: 1_700_000_001_500,
        };
        let v = serde_json::to_value(&status).unwrap();
        assert_eq!(
            v,
            json!({"id": "cms", "type": "sia", "link_up": false, "state": "retrying",
                "last_error": "127.0.0.1:5000: no answer in time", "queued": 2,
                "capacity": 1000, "oldest_queued_unix_ms": 1_700_000_000_000_i64,
                "delivered_total": 7, "failed_total": 3, "not_understood_total": 1,
                "given_up_total": 0, "attempts_total": 11, "rejected_total": 0,
                "dropped_total": 0, "last_delivered_unix_ms": 1_699_999_000_000_i64,
                "last_attempt_unix_ms": 1_700_000_001_000_i64,
                "last_endpoint": "127.0.0.1:5000", "clock_offset_s": 0,
                "updated_unix_ms": 1_700_000_001_500_i64})
        );
        assert_eq!(
            serde_json::from_value::<ReceiverStatus>(v.clone()).unwrap(),
            status
        );
        let mut named = v;
        named["name"] = json!("Central station");
        named["type"] = json!("relay");
        let back: ReceiverStatus = serde_json::from_value(named).unwrap();
        assert_eq!(back.name.as_deref(), Some("Central station"));
        assert_eq!(back.kind, ReceiverType::Relay);
        for (k, s) in [
            (DeliveryState::Idle, "idle"),
            (DeliveryState::Delivering, "delivering"),
            (DeliveryState::Retrying, "retrying"),
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), json!(s));
            assert_eq!(k.as_str(), s);
        }
        for k in [ReceiverType::Sia, ReceiverType::Chekt, ReceiverType::Relay] {
            assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
        }
    }

    #[test]
    fn the_test_command_and_its_answers_have_the_documented_shapes() {
        use crate::rpc::{Incoming, decode_reply, encode_reply, encode_request};
        let request = TestRequest {
            zone: Some(5),
            ..TestRequest::default()
        };
        let wire = encode_request(&request, "1", "wp/reply/c/1").unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&wire).unwrap(),
            json!({"zone": 5, "request_id": "1", "reply_to": "wp/reply/c/1"})
        );
        let incoming = Incoming::<TestRequest>::parse("wp/alarms/receiver/cms/test", &wire);
        assert_eq!(TestRequest::from_body(&incoming.body), Ok(request));
        // Any plain payload (Home Assistant's button sends `PRESS`) is the default test.
        for payload in [&b"PRESS"[..], b"", b"{}", b"null"] {
            let incoming = Incoming::<TestRequest>::parse("t", payload);
            assert_eq!(
                TestRequest::from_body(&incoming.body),
                Ok(TestRequest::default()),
                "{payload:?}"
            );
        }
        for body in [
            json!({"zone": "five"}),
            json!({"siren": 1}),
            json!([1]),
            json!(3),
        ] {
            assert_eq!(
                TestRequest::from_body(&body).unwrap_err().code,
                AlarmCode::InvalidBody,
                "{body}"
            );
        }

        let queued = TestQueued {
            alarm_id: 9,
            receiver: "cms".into(),
            queue_seq: 4,
        };
        let bytes = encode_reply::<_, AlarmCode>(&Ok(queued.clone()));
        assert_eq!(
            serde_json::from_slice::<Value>(&bytes).unwrap(),
            json!({"ok": true, "alarm_id": 9, "receiver": "cms", "queue_seq": 4})
        );
        assert_eq!(
            decode_reply::<TestQueued, AlarmCode>(&bytes).unwrap(),
            Ok(queued)
        );
        let refusal = ReplyError::new(AlarmCode::ReceiverNotFound, "no receiver `x`");
        let bytes = encode_reply::<TestQueued, _>(&Err(refusal.clone()));
        assert_eq!(
            serde_json::from_slice::<Value>(&bytes).unwrap(),
            json!({"ok": false, "error": {"code": "RECEIVER_NOT_FOUND",
                "message": "no receiver `x`", "details": {}}})
        );
        assert_eq!(
            decode_reply::<TestQueued, AlarmCode>(&bytes).unwrap(),
            Err(refusal)
        );
        for code in AlarmCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
        }
    }
}
