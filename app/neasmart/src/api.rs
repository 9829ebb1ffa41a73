//! Validation of the commands the REST API and the bus accept, shared by the hub (which answers
//! 400 at once) and the fieldbus worker (which checks again before touching a register).
//! Bodies are JSON objects as the original add-on takes them: `{"state": 1..6}` and/or
//! `{"setpoint": number}` for a zone, `{"mode": 1..5}`, `{"state": 1..6}`. Other MQTT clients
//! send these bodies as they like (extra fields, integers for setpoints), so the worker checks
//! the raw body here rather than decoding the typed commands of [`crate::commands`].

use serde_json::Value;
use watchpost_contract::ReplyError;

use crate::codes::NeasmartCode;
use crate::map::{DehumidifierId, MixedGroupId, Mode, PumpId, State, ZoneId};
use crate::model::{Command, Setpoint};

/// The setpoints the installation accepts, in °C.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SetpointRange {
    pub min_celsius: f64,
    pub max_celsius: f64,
}

impl Default for SetpointRange {
    fn default() -> Self {
        Self {
            min_celsius: 5.0,
            max_celsius: 35.0,
        }
    }
}

/// A refused command: a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    pub code: NeasmartCode,
    pub message: String,
}

impl From<CommandError> for ReplyError<NeasmartCode> {
    fn from(e: CommandError) -> Self {
        ReplyError::new(e.code, e.message)
    }
}

fn err(code: NeasmartCode, message: impl Into<String>) -> CommandError {
    CommandError {
        code,
        message: message.into(),
    }
}

/// A validated zone command: a state, a setpoint, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneCommand {
    pub zone: ZoneId,
    pub state: Option<State>,
    pub setpoint: Option<Setpoint>,
}

impl ZoneCommand {
    /// The register commands, state first.
    pub fn commands(&self) -> Vec<Command> {
        let mut v = Vec::new();
        if let Some(s) = self.state {
            v.push(Command::ZoneState(self.zone, s));
        }
        if let Some(sp) = self.setpoint {
            v.push(Command::ZoneSetpoint(self.zone, sp));
        }
        v
    }
}

fn small(v: i64, code: NeasmartCode, what: &str, max: u8) -> Result<u8, CommandError> {
    u8::try_from(v)
        .ok()
        .filter(|v| (1..=max).contains(v))
        .ok_or_else(|| err(code, format!("invalid {what} id {v}: must be 1..={max}")))
}

/// A zone from path parameters.
pub fn zone_id(base: i64, zone: i64) -> Result<ZoneId, CommandError> {
    let b = small(base, NeasmartCode::InvalidBase, "base", 5)?;
    let z = small(zone, NeasmartCode::InvalidZone, "zone", 12)?;
    ZoneId::new(b, z).map_err(|e| err(e.code(), e.to_string()))
}

pub fn mixed_group_id(id: i64) -> Result<MixedGroupId, CommandError> {
    let v = small(id, NeasmartCode::InvalidMixedGroup, "mixed group", 3)?;
    MixedGroupId::new(v).map_err(|e| err(e.code(), e.to_string()))
}

pub fn dehumidifier_id(id: i64) -> Result<DehumidifierId, CommandError> {
    let v = small(id, NeasmartCode::InvalidDehumidifier, "dehumidifier", 9)?;
    DehumidifierId::new(v).map_err(|e| err(e.code(), e.to_string()))
}

pub fn pump_id(id: i64) -> Result<PumpId, CommandError> {
    let v = small(id, NeasmartCode::InvalidPump, "pump", 5)?;
    PumpId::new(v).map_err(|e| err(e.code(), e.to_string()))
}

fn object(body: &Value) -> Result<&serde_json::Map<String, Value>, CommandError> {
    body.as_object()
        .ok_or_else(|| err(NeasmartCode::InvalidBody, "the body must be a JSON object"))
}

fn integer(v: &Value, key: &str) -> Result<i64, CommandError> {
    v.as_i64().ok_or_else(|| {
        err(
            NeasmartCode::InvalidBody,
            format!("`{key}` must be an integer"),
        )
    })
}

fn parse_state(v: &Value) -> Result<State, CommandError> {
    let n = integer(v, "state")?;
    State::new(n).map_err(|_| {
        err(
            NeasmartCode::InvalidState,
            format!("invalid state {n}: must be 1..=6"),
        )
    })
}

/// `{"state": 1..6}` and/or `{"setpoint": number}` for `zone`.
pub fn zone_command(
    zone: ZoneId,
    body: &Value,
    range: SetpointRange,
) -> Result<ZoneCommand, CommandError> {
    let o = object(body)?;
    let state = o.get("state").map(parse_state).transpose()?;
    let setpoint = match o.get("setpoint") {
        None => None,
        Some(v) => {
            let c = v
                .as_f64()
                .ok_or_else(|| err(NeasmartCode::InvalidBody, "`setpoint` must be a number"))?;
            if !(range.min_celsius..=range.max_celsius).contains(&c) {
                return Err(err(
                    NeasmartCode::SetpointOutOfRange,
                    format!(
                        "setpoint {c} °C is outside {}..={} °C",
                        range.min_celsius, range.max_celsius
                    ),
                ));
            }
            Some(Setpoint::from_celsius(c).map_err(|e| err(e.code(), e.to_string()))?)
        }
    };
    if state.is_none() && setpoint.is_none() {
        return Err(err(
            NeasmartCode::EmptyCommand,
            "give `state` (1..=6) and/or `setpoint` (°C)",
        ));
    }
    Ok(ZoneCommand {
        zone,
        state,
        setpoint,
    })
}

/// `{"mode": 1..5}`.
pub fn mode_command(body: &Value) -> Result<Mode, CommandError> {
    let o = object(body)?;
    let v = o
        .get("mode")
        .ok_or_else(|| err(NeasmartCode::EmptyCommand, "give `mode` (1..=5)"))?;
    let n = integer(v, "mode")?;
    Mode::new(n).map_err(|_| {
        err(
            NeasmartCode::InvalidMode,
            format!("invalid mode {n}: must be 1..=5"),
        )
    })
}

/// `{"state": 1..6}` (global state).
pub fn state_command(body: &Value) -> Result<State, CommandError> {
    let o = object(body)?;
    let v = o
        .get("state")
        .ok_or_else(|| err(NeasmartCode::EmptyCommand, "give `state` (1..=6)"))?;
    parse_state(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn zone_commands() {
        let z = zone_id(2, 10).unwrap();
        let c = zone_command(
            z,
            &json!({"state": 3, "setpoint": 21.5}),
            SetpointRange::default(),
        )
        .unwrap();
        assert_eq!(c.commands().len(), 2);
        assert_eq!(c.commands()[1].register(), (2201, 0x0C33));
        let e = zone_command(z, &json!({}), SetpointRange::default()).unwrap_err();
        assert_eq!(e.code, NeasmartCode::EmptyCommand);
        let e = zone_command(z, &json!({"state": 7}), SetpointRange::default()).unwrap_err();
        assert_eq!(e.code, NeasmartCode::InvalidState);
        let e = zone_command(z, &json!({"setpoint": 40}), SetpointRange::default()).unwrap_err();
        assert_eq!(e.code, NeasmartCode::SetpointOutOfRange);
        let e =
            zone_command(z, &json!({"setpoint": "warm"}), SetpointRange::default()).unwrap_err();
        assert_eq!(e.code, NeasmartCode::InvalidBody);
        let e = zone_command(z, &json!([1]), SetpointRange::default()).unwrap_err();
        assert_eq!(e.code, NeasmartCode::InvalidBody);
    }

    #[test]
    fn ids() {
        assert_eq!(zone_id(0, 1).unwrap_err().code, NeasmartCode::InvalidBase);
        assert_eq!(zone_id(6, 1).unwrap_err().code, NeasmartCode::InvalidBase);
        assert_eq!(zone_id(1, 13).unwrap_err().code, NeasmartCode::InvalidZone);
        assert_eq!(zone_id(1, -1).unwrap_err().code, NeasmartCode::InvalidZone);
        assert_eq!(
            mixed_group_id(4).unwrap_err().code,
            NeasmartCode::InvalidMixedGroup
        );
        assert!(dehumidifier_id(9).is_ok());
        assert_eq!(pump_id(6).unwrap_err().code, NeasmartCode::InvalidPump);
    }

    #[test]
    fn global_commands() {
        assert_eq!(mode_command(&json!({"mode": 3})).unwrap(), Mode::COOLING);
        assert_eq!(
            mode_command(&json!({"mode": 0})).unwrap_err().code,
            NeasmartCode::InvalidMode
        );
        assert_eq!(
            mode_command(&json!({})).unwrap_err().code,
            NeasmartCode::EmptyCommand
        );
        assert_eq!(state_command(&json!({"state": 6})).unwrap(), State::HOLIDAY);
        assert_eq!(
            state_command(&json!({"state": 1.5})).unwrap_err().code,
            NeasmartCode::InvalidBody
        );
    }
}
