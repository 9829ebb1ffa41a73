//! The gateway's commands as typed requests (`watchpost_contract::Request`): what the hub
//! sends with `Bus::request` and what the fieldbus worker answers. Each is answered with the
//! state it changed, `{"ok": true, "state": <zone or global state>}`, or refused with a
//! [`NeasmartCode`].
//!
//! On the wire the bodies are the original add-on's: `{"state"?, "setpoint"?}` on
//! `neasmart/zone/<base>/<zone>/set`, `{"mode"}` on `neasmart/mode/set`, `{"state"}` on
//! `neasmart/state/set`. Other MQTT clients send them too, in looser spellings; the worker
//! therefore checks the raw body with [`crate::api`]'s validators, which accept every body
//! these types produce.

use serde::{Deserialize, Serialize};
use watchpost_contract::Request;

use crate::api::ZoneCommand;
use crate::codes::NeasmartCode;
use crate::map::{Mode, State, ZoneId};
use crate::model::Setpoint;
use crate::state::{GlobalState, ZoneState};
use crate::topics;

/// `neasmart/zone/<base>/<zone>/set`: a state, a setpoint, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ZoneSet {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setpoint: Option<Setpoint>,
}

impl ZoneSet {
    /// The command topic of `zone`, as levels under the prefix.
    pub fn topic(zone: ZoneId) -> Vec<String> {
        topics::zone_set(zone)
    }
}

impl From<&ZoneCommand> for ZoneSet {
    fn from(c: &ZoneCommand) -> Self {
        ZoneSet {
            state: c.state,
            setpoint: c.setpoint,
        }
    }
}

impl Request for ZoneSet {
    type Reply = ZoneReply;
    type Code = NeasmartCode;
}

/// The answer to [`ZoneSet`]: the zone's state with the command applied (and pending).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneReply {
    pub state: ZoneState,
}

/// `neasmart/mode/set`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeSet {
    pub mode: Mode,
}

impl ModeSet {
    /// The command topic, as levels under the prefix.
    pub fn topic() -> Vec<String> {
        topics::mode_set()
    }
}

impl Request for ModeSet {
    type Reply = GlobalReply;
    type Code = NeasmartCode;
}

/// `neasmart/state/set` (the global state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSet {
    pub state: State,
}

impl StateSet {
    /// The command topic, as levels under the prefix.
    pub fn topic() -> Vec<String> {
        topics::state_set()
    }
}

impl Request for StateSet {
    type Reply = GlobalReply;
    type Code = NeasmartCode;
}

/// The answer to [`ModeSet`] and [`StateSet`]: the global state with the command applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalReply {
    pub state: GlobalState,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use watchpost_contract::ReplyError;
    use watchpost_contract::rpc::{decode_reply, encode_reply};

    use super::*;
    use crate::api::{self, SetpointRange};

    fn reply_json<C: Request>(outcome: &Result<C::Reply, ReplyError<C::Code>>) -> Value {
        serde_json::from_slice(&encode_reply(outcome)).unwrap()
    }

    #[test]
    fn bodies_have_the_documented_shapes() {
        let z = ZoneId::new(1, 3).unwrap();
        let both = ZoneSet {
            state: Some(State::REDUCED),
            setpoint: Some(Setpoint::from_celsius(21.5).unwrap()),
        };
        assert_eq!(
            serde_json::to_value(both).unwrap(),
            json!({"state": 2, "setpoint": 21.5})
        );
        let only = ZoneSet {
            setpoint: Some(Setpoint::from_celsius(20.0).unwrap()),
            ..ZoneSet::default()
        };
        assert_eq!(
            serde_json::to_value(only).unwrap(),
            json!({"setpoint": 20.0})
        );
        assert_eq!(
            serde_json::from_value::<ZoneSet>(json!({"state": 2, "setpoint": 21.5})).unwrap(),
            both
        );
        assert_eq!(
            serde_json::to_value(ModeSet {
                mode: Mode::COOLING
            })
            .unwrap(),
            json!({"mode": 3})
        );
        assert_eq!(
            serde_json::to_value(StateSet {
                state: State::PARTY
            })
            .unwrap(),
            json!({"state": 5})
        );
        assert_eq!(ZoneSet::topic(z), ["neasmart", "zone", "1", "3", "set"]);
        assert_eq!(ModeSet::topic(), ["neasmart", "mode", "set"]);
        assert_eq!(StateSet::topic(), ["neasmart", "state", "set"]);
    }

    #[test]
    fn what_the_hub_sends_the_worker_accepts() {
        let z = ZoneId::new(2, 10).unwrap();
        let range = SetpointRange::default();
        let cmd = api::zone_command(z, &json!({"state": 3, "setpoint": 21.5}), range).unwrap();
        let sent = serde_json::to_value(ZoneSet::from(&cmd)).unwrap();
        assert_eq!(api::zone_command(z, &sent, range).unwrap(), cmd);
        let sent = serde_json::to_value(ModeSet { mode: Mode::AUTO }).unwrap();
        assert_eq!(api::mode_command(&sent).unwrap(), Mode::AUTO);
        let sent = serde_json::to_value(StateSet {
            state: State::HOLIDAY,
        })
        .unwrap();
        assert_eq!(api::state_command(&sent).unwrap(), State::HOLIDAY);
    }

    #[test]
    fn replies_round_trip_in_the_envelope() {
        let zone = json!({"base": 1, "zone": 3, "active": true, "state": 2,
            "state_name": "reduced", "setpoint": 21.5, "temperature": 19.9,
            "relative_humidity": 0, "pending_state": true, "pending_setpoint": true});
        let doc = json!({"ok": true, "state": zone});
        let reply: Result<ZoneReply, ReplyError<NeasmartCode>> =
            decode_reply(doc.to_string().as_bytes()).unwrap();
        assert_eq!(reply.as_ref().unwrap().state.state_name, "reduced");
        assert_eq!(reply_json::<ZoneSet>(&reply), doc);

        let global = json!({"mode": 3, "mode_name": "cooling", "state": 5,
            "state_name": "party", "pending_mode": true, "pending_state": true});
        let doc = json!({"ok": true, "state": global});
        let reply: Result<GlobalReply, ReplyError<NeasmartCode>> =
            decode_reply(doc.to_string().as_bytes()).unwrap();
        assert_eq!(reply.as_ref().unwrap().state.mode, 3);
        assert_eq!(reply_json::<ModeSet>(&reply), doc);

        let doc = json!({"ok": false, "error": {"code": "SETPOINT_OUT_OF_RANGE",
            "message": "setpoint 40 °C is outside 5..=35 °C", "details": {}}});
        let refusal: Result<ZoneReply, ReplyError<NeasmartCode>> =
            decode_reply(doc.to_string().as_bytes()).unwrap();
        assert_eq!(
            refusal.as_ref().unwrap_err().code,
            NeasmartCode::SetpointOutOfRange
        );
        assert_eq!(reply_json::<ZoneSet>(&refusal), doc);

        // A refusal from the validators becomes the envelope's error.
        let e = api::zone_command(
            ZoneId::new(1, 1).unwrap(),
            &json!({}),
            SetpointRange::default(),
        )
        .unwrap_err();
        let outcome: Result<ZoneReply, ReplyError<NeasmartCode>> = Err(e.into());
        assert_eq!(
            reply_json::<ZoneSet>(&outcome)["error"]["code"],
            json!("EMPTY_COMMAND")
        );
    }
}
