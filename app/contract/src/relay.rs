//! Relay modules (the `fieldbus` worker's Modbus master side, and the board's GPIO relays):
//! retained module and channel state, the set and test commands, their error codes.
//!
//! Topics, under the bus prefix: `relay/<module>/status` (retained [`ModuleStatus`]),
//! `relay/<module>/channel/<channel>` (retained [`ChannelState`]),
//! `relay/<module>/channel/<channel>/set` ([`Set`]) and `.../test` ([`Test`]), both answered
//! with [`ChannelReply`]. `<module>` and `<channel>` are the configured names.

use serde::{Deserialize, Serialize};

use crate::rpc::Request;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Manual,
    Pulse,
    Follower,
}

/// `relay/<module>/channel/<channel>`, retained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// `relay/<module>/channel/<channel>/test`: one pulse of the channel's configured length,
/// whatever its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Test {}

impl Request for Test {
    type Reply = ChannelReply;
    type Code = RelayCode;
}

/// The answer to [`Set`] and [`Test`] once the coil write succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    fn state_round_trips_in_the_documented_shape() {
        let v = json!({"module": "m1", "unit_id": 1, "breaker": "half_open",
            "consecutive_failures": 2, "last_error": null, "last_ok_unix_ms": 5,
            "channels": [{"module": "m1", "channel": 1, "name": "siren", "mode": "pulse",
            "on": null, "desired": false, "pulse_active": true}]});
        let s: ModuleStatus = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(s.breaker, Breaker::HalfOpen);
        assert_eq!(serde_json::to_value(&s).unwrap(), v);
    }
}
