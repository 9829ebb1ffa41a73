//! Commands from Home Assistant: plain payloads on `<prefix>/ha/<node>/set/...` turned into
//! the same bus requests the REST API sends (so the Neasmart pending-command rule and the
//! relay worker's checks apply alike). A payload that does not parse is refused here; a
//! refusal, by us or by the worker, is logged and published on `<prefix>/ha/<node>/error`.

use std::time::Duration;

use watchpost_bus::{Bus, RequestError};
use watchpost_contract::rpc::ErrorCode;
use watchpost_contract::{alarm, relay};
use watchpost_neasmart::commands::{ModeSet, StateSet, ZoneSet};
use watchpost_neasmart::{Mode, Setpoint, State, ZoneId};

use super::catalog::{HVAC_MODES, MODE_NAMES, STATE_NAMES};

/// How long a worker has to answer a command.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// One command as Home Assistant sent it, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Zone(ZoneId, ZoneSet),
    Mode(Mode),
    State(State),
    Relay {
        module: String,
        channel: String,
        on: bool,
    },
    /// A receiver's manual test (SIA: RX / CID 601).
    ReceiverTest(String),
}

/// Why a command was not carried out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refused {
    #[error("unknown command topic")]
    UnknownTopic,
    #[error("{0}")]
    BadPayload(String),
    #[error("{code}: {message}")]
    Worker { code: String, message: String },
    #[error("no answer from the {0} worker")]
    NoAnswer(&'static str),
}

impl Refused {
    pub fn code(&self) -> String {
        match self {
            Refused::UnknownTopic => "UNKNOWN_COMMAND".into(),
            Refused::BadPayload(_) => "INVALID_PAYLOAD".into(),
            Refused::Worker { code, .. } => code.clone(),
            Refused::NoAnswer(_) => "NO_ANSWER".into(),
        }
    }
}

fn position(names: &[&str], payload: &str) -> Option<i64> {
    names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(payload))
        .and_then(|i| i64::try_from(i + 1).ok())
}

fn bad(what: &str, payload: &str) -> Refused {
    let shown: String = payload.chars().take(40).collect();
    Refused::BadPayload(format!("`{shown}` is not {what}"))
}

/// Parses the levels after `set/` and the payload.
pub fn parse(levels: &[&str], payload: &[u8]) -> Result<Command, Refused> {
    let text = std::str::from_utf8(payload)
        .map_err(|_| Refused::BadPayload("the payload is not UTF-8".into()))?
        .trim();
    let num = |s: &str| s.parse::<u8>().ok();
    match levels {
        ["zone", b, z, field] => {
            let zone = match (num(b), num(z)) {
                (Some(b), Some(z)) => ZoneId::new(b, z).map_err(|_| Refused::UnknownTopic)?,
                _ => return Err(Refused::UnknownTopic),
            };
            let set = match *field {
                "setpoint" => {
                    let c: f64 = text.parse().map_err(|_| bad("a temperature", text))?;
                    let sp = Setpoint::from_celsius(c)
                        .map_err(|e| Refused::BadPayload(e.to_string()))?;
                    ZoneSet {
                        setpoint: Some(sp),
                        state: None,
                    }
                }
                "preset" => {
                    let i = position(&STATE_NAMES, text)
                        .ok_or_else(|| bad("one of the zone's presets", text))?;
                    let st = State::new(i).map_err(|e| Refused::BadPayload(e.to_string()))?;
                    ZoneSet {
                        state: Some(st),
                        setpoint: None,
                    }
                }
                _ => return Err(Refused::UnknownTopic),
            };
            Ok(Command::Zone(zone, set))
        }
        ["neasmart", "hvac_mode"] => {
            // auto → Auto, heat → Heating, cool → Cooling (the first of each in HVAC_MODES).
            let i = position(&HVAC_MODES, text).ok_or_else(|| bad("auto, heat or cool", text))?;
            Mode::new(i)
                .map(Command::Mode)
                .map_err(|e| Refused::BadPayload(e.to_string()))
        }
        ["neasmart", "mode"] => {
            let i = position(&MODE_NAMES, text).ok_or_else(|| bad("an operating mode", text))?;
            Mode::new(i)
                .map(Command::Mode)
                .map_err(|e| Refused::BadPayload(e.to_string()))
        }
        ["neasmart", "state"] => {
            let i = position(&STATE_NAMES, text).ok_or_else(|| bad("an operating state", text))?;
            State::new(i)
                .map(Command::State)
                .map_err(|e| Refused::BadPayload(e.to_string()))
        }
        ["relay", module, channel] => {
            let on = match text.to_ascii_uppercase().as_str() {
                "ON" => true,
                "OFF" => false,
                _ => return Err(bad("ON or OFF", text)),
            };
            Ok(Command::Relay {
                module: module.to_string(),
                channel: channel.to_string(),
                on,
            })
        }
        ["receiver", id, "test"] => Ok(Command::ReceiverTest(id.to_string())),
        _ => Err(Refused::UnknownTopic),
    }
}

fn refused<E: ErrorCode>(worker: &'static str, e: RequestError<E>) -> Refused {
    match e {
        RequestError::Refused { error, .. } => Refused::Worker {
            code: error.code.as_str().to_string(),
            message: error.message,
        },
        RequestError::Timeout { .. } => Refused::NoAnswer(worker),
        other => Refused::Worker {
            code: "BUS_ERROR".into(),
            message: other.to_string(),
        },
    }
}

/// Sends `command` to its worker and waits for the answer.
pub async fn execute(bus: &Bus, command: Command) -> Result<(), Refused> {
    let topic = |l: Vec<String>| {
        let refs: Vec<&str> = l.iter().map(String::as_str).collect();
        bus.topic(&refs)
    };
    match command {
        Command::Zone(z, set) => bus
            .request(&topic(ZoneSet::topic(z)), &set, TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|e| refused("fieldbus", e)),
        Command::Mode(mode) => bus
            .request(&topic(ModeSet::topic()), &ModeSet { mode }, TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|e| refused("fieldbus", e)),
        Command::State(state) => bus
            .request(&topic(StateSet::topic()), &StateSet { state }, TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|e| refused("fieldbus", e)),
        Command::Relay {
            module,
            channel,
            on,
        } => bus
            .request(
                &topic(relay::channel_set(&module, &channel)),
                &relay::Set::Switch { on },
                TIMEOUT,
            )
            .await
            .map(|_| ())
            .map_err(|e| refused("fieldbus", e)),
        Command::ReceiverTest(id) => bus
            .request(
                &topic(alarm::receiver_test(&id)),
                &alarm::TestRequest::default(),
                TIMEOUT,
            )
            .await
            .map(|_| ())
            .map_err(|e| refused("hub", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_assistant_payloads_parse() {
        let z = ZoneId::new(1, 3).unwrap();
        assert_eq!(
            parse(&["zone", "1", "3", "setpoint"], b"21.5").unwrap(),
            Command::Zone(
                z,
                ZoneSet {
                    setpoint: Some(Setpoint::from_celsius(21.5).unwrap()),
                    state: None
                }
            )
        );
        assert_eq!(
            parse(&["zone", "1", "3", "preset"], b"Party").unwrap(),
            Command::Zone(
                z,
                ZoneSet {
                    state: Some(State::new(5).unwrap()),
                    setpoint: None
                }
            )
        );
        assert_eq!(
            parse(&["neasmart", "hvac_mode"], b"cool").unwrap(),
            Command::Mode(Mode::COOLING)
        );
        assert_eq!(
            parse(&["neasmart", "mode"], b"Forced Heating").unwrap(),
            Command::Mode(Mode::MANUAL_HEATING)
        );
        assert_eq!(
            parse(&["relay", "m", "c"], b"ON").unwrap(),
            Command::Relay {
                module: "m".into(),
                channel: "c".into(),
                on: true
            }
        );
    }

    #[test]
    fn bad_commands_are_refused_with_a_reason() {
        assert_eq!(
            parse(&["zone", "9", "3", "setpoint"], b"21"),
            Err(Refused::UnknownTopic)
        );
        assert!(matches!(
            parse(&["zone", "1", "3", "setpoint"], b"warm"),
            Err(Refused::BadPayload(m)) if m.contains("warm")
        ));
        assert!(matches!(
            parse(&["zone", "1", "3", "setpoint"], b"NaN"),
            Err(Refused::BadPayload(_))
        ));
        assert!(parse(&["zone", "1", "3", "preset"], b"Disco").is_err());
        assert!(parse(&["relay", "m", "c"], b"maybe").is_err());
        assert!(parse(&["neasmart", "mode"], &[0xff, 0xfe]).is_err());
        assert_eq!(parse(&["x"], b""), Err(Refused::UnknownTopic));
        assert_eq!(
            parse(&["receiver", "cms", "test"], b"PRESS"),
            Ok(Command::ReceiverTest("cms".into()))
        );
    }
}
