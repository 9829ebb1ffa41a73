//! Relay modules (the `fieldbus` worker's Modbus master side, and the board's GPIO relays):
//! retained module and channel state, the set and test commands, their error codes.
//!
//! Topics, under the bus prefix: `relay/<module>/status` (retained [`ModuleStatus`]),
//! `relay/<module>/channel/<channel>` (retained [`ChannelState`]),
//! `relay/<module>/channel/<channel>/set` ([`Set`]) and `.../test` ([`Test`]), both answered
//! with [`ChannelReply`]. `<module>` and `<channel>` are the configured names.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rpc::{ReplyError, Request};

/// First level of every relay topic.
pub const AREA: &str = "relay";

/// `relay/<module>/status`.
pub fn status(module: &str) -> Vec<String> {
    vec![AREA.into(), module.into(), "status".into()]
}

/// `relay/<module>/channel/<channel>`.
pub fn channel(module: &str, channel: &str) -> Vec<String> {
    vec![AREA.into(), module.into(), "channel".into(), channel.into()]
}

/// `relay/<module>/channel/<channel>/set`.
pub fn channel_set(module: &str, ch: &str) -> Vec<String> {
    let mut v = channel(module, ch);
    v.push("set".into());
    v
}

/// `relay/<module>/channel/<channel>/test`.
pub fn channel_test(module: &str, ch: &str) -> Vec<String> {
    let mut v = channel(module, ch);
    v.push("test".into());
    v
}

/// The circuit breaker of a module's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Breaker {
    Closed,
    Open,
    HalfOpen,
}

impl Breaker {
    pub fn as_str(self) -> &'static str {
        match self {
            Breaker::Closed => "closed",
            Breaker::Open => "open",
            Breaker::HalfOpen => "half_open",
        }
    }
}

/// How a channel is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Manual,
    Pulse,
    Follower,
}

/// `relay/<module>/channel/<channel>`, retained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelState {
    pub module: String,
    /// 1-based channel number on the module.
    pub channel: u16,
    pub name: String,
    pub mode: Mode,
    /// The coil as last read or written; `null` before the first.
    pub on: Option<bool>,
    /// What the worker drives the coil to; `null` to adopt what the module reports.
    pub desired: Option<bool>,
    pub pulse_active: bool,
}

/// `relay/<module>/status`, retained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModuleStatus {
    pub module: String,
    pub unit_id: u8,
    pub breaker: Breaker,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub last_ok_unix_ms: Option<u64>,
    pub channels: Vec<ChannelState>,
}

/// `relay/<module>/channel/<channel>/set`. On the wire the worker also takes `{"state":
/// "on"|"off"}` and plain `ON`/`OFF` from other MQTT clients; Watchpost's own callers send
/// one of these two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Set {
    /// `{"on": bool}` (a pulse channel pulses on every "on").
    Switch { on: bool },
    /// `{"pulse_ms": n}`: energise for `n` ms, then release.
    Pulse { pulse_ms: u64 },
}

impl Request for Set {
    type Reply = ChannelReply;
    type Code = RelayCode;
}

/// The longest pulse a [`Set`] may ask for (one hour).
pub const PULSE_MS_MAX: u64 = 3_600_000;

impl Set {
    /// Reads a set command in any of the spellings the worker accepts: `{"pulse_ms": n}`
    /// (1..=[`PULSE_MS_MAX`]), or an on/off value as [`on_off`] reads it (`{"on": bool}`,
    /// `{"state": "on"}`, `true`, `"OFF"`...). Both the hub (for REST bodies) and the worker
    /// (for bus messages from any client) check bodies with it.
    pub fn from_body(body: &Value) -> Result<Set, ReplyError<RelayCode>> {
        if let Some(ms) = body.get("pulse_ms") {
            return match ms.as_u64() {
                Some(pulse_ms @ 1..=PULSE_MS_MAX) => Ok(Set::Pulse { pulse_ms }),
                _ => Err(ReplyError::new(
                    RelayCode::InvalidBody,
                    format!("`pulse_ms` must be an integer 1..={PULSE_MS_MAX}"),
                )),
            };
        }
        match on_off(body) {
            Some(on) => Ok(Set::Switch { on }),
            None => Err(ReplyError::new(
                RelayCode::InvalidBody,
                "give {\"on\": true|false}, {\"state\": \"on\"|\"off\"} or {\"pulse_ms\": n}",
            )),
        }
    }
}

/// Reads a value as on/off: JSON booleans, numbers (non-zero = on), the strings on/off,
/// true/false, 1/0 (any case), and objects with `on` or `state` holding one of these. Set
/// commands and the topics follower channels copy use it.
pub fn on_off(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "on" | "true" | "1" => Some(true),
            "off" | "false" | "0" => Some(false),
            _ => None,
        },
        Value::Object(o) => o.get("on").or_else(|| o.get("state")).and_then(on_off),
        _ => None,
    }
}

/// `relay/<module>/channel/<channel>/test`: one pulse of the channel's configured length,
/// whatever its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Test {}

impl Request for Test {
    type Reply = ChannelReply;
    type Code = RelayCode;
}

/// The answer to [`Set`] and [`Test`] once the coil write succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelReply {
    pub channel: ChannelState,
}

crate::error_codes! {
    /// Why a relay command failed.
    pub enum RelayCode {
        #[invalid_body]
        /// The command's body is none of the accepted spellings.
        InvalidBody = "INVALID_BODY",
        /// No module of that name is configured.
        RelayNotFound = "RELAY_NOT_FOUND",
        /// The module has no channel of that name.
        ChannelNotFound = "CHANNEL_NOT_FOUND",
        /// The module's link failed often enough that commands are refused for a while.
        RelayBreakerOpen = "RELAY_BREAKER_OPEN",
        /// The module did not answer in time.
        RelayTimeout = "RELAY_TIMEOUT",
        /// The module's port cannot be opened or was closed.
        RelayUnreachable = "RELAY_UNREACHABLE",
        /// The module answered with something other than the request's echo.
        RelayBadResponse = "RELAY_BAD_RESPONSE",
        /// A board GPIO line could not be driven.
        RelayGpioFailed = "RELAY_GPIO_FAILED",
        /// The port's command queue is full.
        RelayBusy = "RELAY_BUSY",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commands_have_the_documented_shapes() {
        assert_eq!(
            serde_json::to_value(Set::Switch { on: true }).unwrap(),
            json!({"on": true})
        );
        assert_eq!(
            serde_json::to_value(Set::Pulse { pulse_ms: 250 }).unwrap(),
            json!({"pulse_ms": 250})
        );
        assert_eq!(serde_json::to_value(Test {}).unwrap(), json!({}));
    }

    #[test]
    fn set_bodies_in_every_accepted_spelling() {
        let on = Set::Switch { on: true };
        let off = Set::Switch { on: false };
        for (body, want) in [
            (json!({"on": true}), on),
            (json!({"on": false}), off),
            (json!({"state": "on"}), on),
            (json!({"state": "OFF"}), off),
            (json!("ON"), on),
            (json!("off"), off),
            (json!(true), on),
            (json!(0), off),
            (json!({"on": 1}), on),
            (json!({"pulse_ms": 250}), Set::Pulse { pulse_ms: 250 }),
        ] {
            assert_eq!(Set::from_body(&body), Ok(want), "{body}");
        }
        for body in [
            json!({"pulse_ms": 0}),
            json!({"pulse_ms": 3_600_001}),
            json!({"pulse_ms": "250"}),
            json!({"on": "maybe"}),
            json!({"x": 1}),
            json!([]),
            json!(null),
        ] {
            assert_eq!(
                Set::from_body(&body).unwrap_err().code,
                RelayCode::InvalidBody,
                "{body}"
            );
        }
        // What Watchpost's own callers send reads back as itself.
        for set in [on, off, Set::Pulse { pulse_ms: 1 }] {
            assert_eq!(Set::from_body(&serde_json::to_value(set).unwrap()), Ok(set));
        }
    }

    #[test]
    fn replies_round_trip_in_the_envelope() {
        use crate::rpc::{decode_reply, encode_reply};
        let doc = json!({"ok": true, "channel": {"module": "out", "channel": 3,
            "name": "door", "mode": "manual", "on": true, "desired": true,
            "pulse_active": false}});
        let reply = decode_reply::<ChannelReply, RelayCode>(doc.to_string().as_bytes()).unwrap();
        assert_eq!(reply.as_ref().unwrap().channel.mode, Mode::Manual);
        let back: Value = serde_json::from_slice(&encode_reply(&reply)).unwrap();
        assert_eq!(back, doc);
        let doc = json!({"ok": false, "error": {"code": "RELAY_BREAKER_OPEN",
            "message": "the circuit breaker of module out is open", "details": {}}});
        let refusal = decode_reply::<ChannelReply, RelayCode>(doc.to_string().as_bytes()).unwrap();
        assert_eq!(
            refusal.as_ref().unwrap_err().code,
            RelayCode::RelayBreakerOpen
        );
        let back: Value = serde_json::from_slice(&encode_reply(&refusal)).unwrap();
        assert_eq!(back, doc);
        for code in RelayCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
        }
    }

    #[test]
    fn state_round_trips_in_the_documented_shape() {
        let v = json!({"module": "m1", "unit_id": 1, "breaker": "half_open",
            "consecutive_failures": 2, "last_error": null, "last_ok_unix_ms": 5,
            "channels": [{"module": "m1", "channel": 1, "name": "siren", "mode": "pulse",
            "on": null, "desired": false, "pulse_active": true}]});
        let s: ModuleStatus = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(s.breaker, Breaker::HalfOpen);
        assert_eq!(serde_json::to_value(&s).unwrap(), v);
        let ch = json!({"module": "m1", "channel": 2, "name": "light", "mode": "follower",
            "on": true, "desired": null, "pulse_active": false});
        let c: ChannelState = serde_json::from_value(ch.clone()).unwrap();
        assert_eq!(serde_json::to_value(&c).unwrap(), ch);
    }
}
