//! The retained state the fieldbus worker publishes per entity (`docs/bus.md`, "Fieldbus"),
//! and what the hub reads back. Zone and global payloads carry a few fields beyond the
//! original add-on's views (ids, names, pending marks); the other entities are published as
//! their views ([`crate::views`]). [`EntityState`] is any one of them.

use serde::{Deserialize, Serialize};

use crate::map::{Entity, ZoneId};
use crate::views::{
    DehumidifierView, MixedGroupView, ModeView, NotificationsView, OutsideView, PumpView,
    StateView, ZoneView,
};

/// `neasmart/zone/<base>/<zone>`, retained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ZoneState {
    /// `"base"` and `"zone"`.
    #[serde(flatten)]
    pub id: ZoneId,
    /// Whether the base has reported anything for the zone.
    pub active: bool,
    /// Operating state 1..=6, 0 = unknown.
    pub state: u16,
    /// [`crate::State::name`] of `state`.
    pub state_name: String,
    /// °C, `null` when not applicable (standby) or not yet known.
    pub setpoint: Option<f64>,
    /// °C, `null` when not yet known.
    pub temperature: Option<f64>,
    /// %, 0 when the zone has no humidity sensor.
    pub relative_humidity: u16,
    /// A state command waits for the base.
    pub pending_state: bool,
    /// A setpoint command waits for the base.
    pub pending_setpoint: bool,
}

impl From<&ZoneState> for ZoneView {
    fn from(z: &ZoneState) -> Self {
        ZoneView {
            state: z.state,
            setpoint: z.setpoint,
            temperature: z.temperature,
            relative_humidity: z.relative_humidity,
        }
    }
}

/// `neasmart/global`, retained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GlobalState {
    /// Operating mode 1..=5, 0 = unknown.
    pub mode: u16,
    /// [`crate::Mode::name`] of `mode`.
    pub mode_name: String,
    /// Operating state 1..=6, 0 = unknown.
    pub state: u16,
    /// [`crate::State::name`] of `state`.
    pub state_name: String,
    /// A mode command waits for the base.
    pub pending_mode: bool,
    /// A state command waits for the base.
    pub pending_state: bool,
}

impl From<&GlobalState> for ModeView {
    fn from(g: &GlobalState) -> Self {
        ModeView { mode: g.mode }
    }
}

impl From<&GlobalState> for StateView {
    fn from(g: &GlobalState) -> Self {
        StateView { state: g.state }
    }
}

/// The retained payload of a mixed group, dehumidifier or pump: its view (the original
/// add-on's fields) and whether the base station has written it ([`crate::Model::exists`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Present<V> {
    #[serde(flatten)]
    pub view: V,
    /// The base station has written this device: it exists on this installation.
    #[serde(default)]
    pub active: bool,
}

/// The retained payload of one entity. It serialises as the payload itself; which variant a
/// payload is follows from its topic ([`EntityState::from_slice`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EntityState {
    Zone(ZoneState),
    Global(GlobalState),
    Outside(OutsideView),
    Notifications(NotificationsView),
    MixedGroup(Present<MixedGroupView>),
    Dehumidifier(Present<DehumidifierView>),
    Pump(Present<PumpView>),
}

impl EntityState {
    /// Decodes the retained payload published on the topic of `entity`.
    pub fn from_slice(entity: Entity, payload: &[u8]) -> Result<Self, serde_json::Error> {
        Ok(match entity {
            Entity::Zone(_) => Self::Zone(serde_json::from_slice(payload)?),
            Entity::Global => Self::Global(serde_json::from_slice(payload)?),
            Entity::Outside => Self::Outside(serde_json::from_slice(payload)?),
            Entity::Notifications => Self::Notifications(serde_json::from_slice(payload)?),
            Entity::MixedGroup(_) => Self::MixedGroup(serde_json::from_slice(payload)?),
            Entity::Dehumidifier(_) => Self::Dehumidifier(serde_json::from_slice(payload)?),
            Entity::Pump(_) => Self::Pump(serde_json::from_slice(payload)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::map::{MixedGroupId, PumpId};

    /// Decodes `doc` as `entity`'s payload and checks it encodes back to the same JSON.
    fn round_trip(entity: Entity, doc: Value) -> EntityState {
        let s = EntityState::from_slice(entity, doc.to_string().as_bytes()).unwrap();
        assert_eq!(serde_json::to_value(&s).unwrap(), doc);
        s
    }

    // The payloads below are the shapes of docs/bus.md, "Fieldbus".

    #[test]
    fn zone_payload() {
        let z = ZoneId::new(2, 1).unwrap();
        let doc = json!({"base": 2, "zone": 1, "active": true, "state": 1,
            "state_name": "normal", "setpoint": 22.5, "temperature": 19.9,
            "relative_humidity": 48, "pending_state": false, "pending_setpoint": true});
        let EntityState::Zone(s) = round_trip(Entity::Zone(z), doc) else {
            panic!("not a zone");
        };
        assert_eq!(s.id, z);
        assert_eq!(
            serde_json::to_value(ZoneView::from(&s)).unwrap(),
            json!({"state": 1, "setpoint": 22.5, "temperature": 19.9, "relative_humidity": 48})
        );
        // Unknown values are null.
        let doc = json!({"base": 1, "zone": 1, "active": true, "state": 3,
            "state_name": "standby", "setpoint": null, "temperature": null,
            "relative_humidity": 0, "pending_state": false, "pending_setpoint": false});
        round_trip(Entity::Zone(ZoneId::new(1, 1).unwrap()), doc);
        // A zone outside the map does not decode.
        let bad = json!({"base": 6, "zone": 1, "active": true, "state": 3,
            "state_name": "standby", "setpoint": null, "temperature": null,
            "relative_humidity": 0, "pending_state": false, "pending_setpoint": false});
        assert!(EntityState::from_slice(Entity::Zone(z), bad.to_string().as_bytes()).is_err());
    }

    #[test]
    fn global_payload() {
        let doc = json!({"mode": 2, "mode_name": "heating", "state": 4,
            "state_name": "time_program", "pending_mode": true, "pending_state": false});
        let EntityState::Global(g) = round_trip(Entity::Global, doc) else {
            panic!("not the global state");
        };
        assert_eq!(
            serde_json::to_value(ModeView::from(&g)).unwrap(),
            json!({"mode": 2})
        );
        assert_eq!(
            serde_json::to_value(StateView::from(&g)).unwrap(),
            json!({"state": 4})
        );
    }

    #[test]
    fn the_other_entities_are_their_views() {
        round_trip(
            Entity::Outside,
            json!({"outside_temperature": -5.0, "filtered_outside_temperature": null}),
        );
        round_trip(
            Entity::Notifications,
            json!({"hints_present": false, "warnings_present": true, "error_present": true}),
        );
        round_trip(
            Entity::MixedGroup(MixedGroupId::new(2).unwrap()),
            json!({"pump_state": 1, "mixing_valve_opening_percentage": 66,
                "flow_temperature": 35.0, "return_temperature": 20.0, "active": true}),
        );
        round_trip(
            Entity::Dehumidifier(crate::DehumidifierId::new(1).unwrap()),
            json!({"dehumidifier_state": 1, "active": true}),
        );
        round_trip(
            Entity::Pump(PumpId::new(5).unwrap()),
            json!({"pump_state": 0, "active": false}),
        );
        // A payload of another entity's shape is refused, not misread.
        assert!(EntityState::from_slice(Entity::Global, br#"{"pump_state": 1}"#).is_err());
    }
}
