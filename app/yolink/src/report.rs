//! MQTT `…/report` payloads: `{"event": "<Type>.<Name>", "time", "msgid", "deviceId", "data"}`.

use serde_json::{Map, Value};

use crate::error::{YolinkError, excerpt};

/// The part of `event` after the device type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventName {
    Alert,
    Report,
    StatusChange,
    GetState,
    SetState,
    DevEvent,
    /// Anything else, e.g. `setOpenRemind`: a settings echo that carries no state.
    Other(String),
}

impl EventName {
    fn parse(s: &str) -> Self {
        match s {
            "Alert" => EventName::Alert,
            "Report" => EventName::Report,
            "StatusChange" => EventName::StatusChange,
            "getState" => EventName::GetState,
            "setState" => EventName::SetState,
            "DevEvent" => EventName::DevEvent,
            other => EventName::Other(other.to_string()),
        }
    }

    /// Whether a report with this event describes the device's state.
    pub fn carries_state(&self) -> bool {
        matches!(
            self,
            EventName::Alert
                | EventName::Report
                | EventName::StatusChange
                | EventName::GetState
                | EventName::SetState
        )
    }

    pub fn as_str(&self) -> &str {
        match self {
            EventName::Alert => "Alert",
            EventName::Report => "Report",
            EventName::StatusChange => "StatusChange",
            EventName::GetState => "getState",
            EventName::SetState => "setState",
            EventName::DevEvent => "DevEvent",
            EventName::Other(s) => s,
        }
    }
}

/// One parsed report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub device_id: String,
    /// `DoorSensor`, `THSensor`, … (the part of `event` before the dot).
    pub device_type: String,
    pub event: EventName,
    /// When the cloud or hub emitted the report (ms since the epoch), if given.
    pub time_ms: Option<i64>,
    pub msgid: Option<String>,
    /// The device-specific object (empty when absent).
    pub data: Map<String, Value>,
}

/// The device id in a report topic (`yl-home/<home>/<device>/report`,
/// `ylsubnet/<subnet>/<device>/report`), if the topic has that shape.
pub fn topic_device_id(topic: &str) -> Option<&str> {
    let mut levels = topic.split('/');
    let (_, _, device, kind) = (
        levels.next()?,
        levels.next()?,
        levels.next()?,
        levels.next()?,
    );
    (levels.next().is_none() && kind == "report" && !device.is_empty()).then_some(device)
}

/// Parses a report payload received on `topic`.
pub fn parse_report(topic: &str, payload: &[u8]) -> Result<Report, YolinkError> {
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| YolinkError::ParseReportJson {
            topic: excerpt(topic),
            reason: e.to_string(),
        })?;
    let Value::Object(mut obj) = value else {
        return Err(YolinkError::ParseReportJson {
            topic: excerpt(topic),
            reason: "not an object".into(),
        });
    };
    let missing = |field| YolinkError::ParseReportField {
        topic: excerpt(topic),
        field,
    };
    let event = obj
        .get("event")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("event"))?;
    let (device_type, name) = event.split_once('.').ok_or_else(|| missing("event type"))?;
    if device_type.is_empty() || name.is_empty() {
        return Err(missing("event type"));
    }
    let (device_type, event) = (device_type.to_string(), EventName::parse(name));
    let payload_id = obj
        .get("deviceId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let device_id = match (topic_device_id(topic), payload_id) {
        (Some(t), Some(p)) if t != p => {
            return Err(YolinkError::ParseReportDeviceMismatch {
                topic: excerpt(topic),
                topic_id: excerpt(t),
                payload_id: excerpt(&p),
            });
        }
        (_, Some(p)) => p,
        (Some(t), None) => t.to_string(),
        (None, None) => return Err(missing("deviceId")),
    };
    let time_ms = obj.get("time").and_then(as_i64);
    let msgid = obj.get("msgid").and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let data = match obj.remove("data") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    Ok(Report {
        device_id,
        device_type,
        event,
        time_ms,
        msgid,
        data,
    })
}

/// An integer from a JSON number or numeric string.
pub(crate) fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A float from a JSON number or numeric string.
pub(crate) fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn door_report() {
        let p = br#"{"event":"DoorSensor.Alert","time":1734000000000,"msgid":"1734000000000",
            "deviceId":"d1","data":{"state":"open","alertType":"normal","battery":4,
            "loraInfo":{"signal":-62,"gatewayId":"h1","gateways":1},"stateChangedAt":1734000000000}}"#;
        let r = parse_report("yl-home/home1/d1/report", p).unwrap();
        assert_eq!(r.device_id, "d1");
        assert_eq!(r.device_type, "DoorSensor");
        assert_eq!(r.event, EventName::Alert);
        assert!(r.event.carries_state());
        assert_eq!(r.time_ms, Some(1_734_000_000_000));
        assert_eq!(r.data["state"], "open");
    }

    #[test]
    fn settings_echo_and_errors() {
        let r = parse_report(
            "ylsubnet/s1/d2/report",
            br#"{"event":"DoorSensor.setOpenRemind","data":{"openRemindDelay":60}}"#,
        )
        .unwrap();
        assert_eq!(r.device_id, "d2");
        assert!(!r.event.carries_state());
        assert!(parse_report("t", b"[1]").is_err());
        assert!(parse_report("t", b"{").is_err());
        assert!(parse_report("a/b/c/report", br#"{"event":"Door"}"#).is_err());
        assert!(parse_report("x", br#"{"event":"DoorSensor.Alert"}"#).is_err());
        assert!(matches!(
            parse_report("a/b/c/report", br#"{"event":"A.Alert","deviceId":"d"}"#),
            Err(YolinkError::ParseReportDeviceMismatch { .. })
        ));
    }
}
