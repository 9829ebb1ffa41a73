//! The bus topics of the Neasmart gateway, relative to the bus prefix (`watchpost/` by
//! default), so the fieldbus worker that publishes them and the hub that reads them agree.
//! `docs/bus.md` describes the payloads.

use crate::map::{DehumidifierId, Entity, MixedGroupId, PumpId, ZoneId};

/// First level of every Neasmart topic.
pub const AREA: &str = "neasmart";

/// The retained state topic of `entity`, as levels under the prefix.
pub fn entity(entity: Entity) -> Vec<String> {
    let mut v = vec![AREA.to_string()];
    match entity {
        Entity::Global => v.push("global".into()),
        Entity::Notifications => v.push("notifications".into()),
        Entity::Outside => v.push("outside".into()),
        Entity::MixedGroup(g) => v.extend(["mixedgroup".into(), g.get().to_string()]),
        Entity::Dehumidifier(d) => v.extend(["dehumidifier".into(), d.get().to_string()]),
        Entity::Pump(p) => v.extend(["pump".into(), p.get().to_string()]),
        Entity::Zone(z) => v.extend(["zone".into(), z.base().to_string(), z.zone().to_string()]),
    }
    v
}

pub fn zone(z: ZoneId) -> Vec<String> {
    entity(Entity::Zone(z))
}
pub fn mixed_group(g: MixedGroupId) -> Vec<String> {
    entity(Entity::MixedGroup(g))
}
pub fn dehumidifier(d: DehumidifierId) -> Vec<String> {
    entity(Entity::Dehumidifier(d))
}
pub fn pump(p: PumpId) -> Vec<String> {
    entity(Entity::Pump(p))
}

/// Freshness and counters (retained).
pub fn status() -> Vec<String> {
    vec![AREA.into(), "status".into()]
}

/// Command topic of a zone: `{"state"?, "setpoint"?}`.
pub fn zone_set(z: ZoneId) -> Vec<String> {
    let mut v = zone(z);
    v.push("set".into());
    v
}

/// Command topic of the global mode: `{"mode"}`.
pub fn mode_set() -> Vec<String> {
    vec![AREA.into(), "mode".into(), "set".into()]
}

/// Command topic of the global state: `{"state"}`.
pub fn state_set() -> Vec<String> {
    vec![AREA.into(), "state".into(), "set".into()]
}

/// What a topic under the prefix names, parsed back from its levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    State(Entity),
    Status,
    ZoneSet(ZoneId),
    ModeSet,
    StateSet,
}

/// Parses `levels` (the topic without the prefix, split at `/`).
pub fn parse(levels: &[&str]) -> Option<Parsed> {
    let num = |s: &str| s.parse::<u8>().ok();
    match levels {
        [AREA, "global"] => Some(Parsed::State(Entity::Global)),
        [AREA, "notifications"] => Some(Parsed::State(Entity::Notifications)),
        [AREA, "outside"] => Some(Parsed::State(Entity::Outside)),
        [AREA, "status"] => Some(Parsed::Status),
        [AREA, "mode", "set"] => Some(Parsed::ModeSet),
        [AREA, "state", "set"] => Some(Parsed::StateSet),
        [AREA, "mixedgroup", g] => MixedGroupId::new(num(g)?)
            .ok()
            .map(|g| Parsed::State(Entity::MixedGroup(g))),
        [AREA, "dehumidifier", d] => DehumidifierId::new(num(d)?)
            .ok()
            .map(|d| Parsed::State(Entity::Dehumidifier(d))),
        [AREA, "pump", p] => PumpId::new(num(p)?)
            .ok()
            .map(|p| Parsed::State(Entity::Pump(p))),
        [AREA, "zone", b, z] => ZoneId::new(num(b)?, num(z)?)
            .ok()
            .map(|z| Parsed::State(Entity::Zone(z))),
        [AREA, "zone", b, z, "set"] => ZoneId::new(num(b)?, num(z)?).ok().map(Parsed::ZoneSet),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_parses_back() {
        for e in Entity::all() {
            let levels = entity(e);
            let refs: Vec<&str> = levels.iter().map(String::as_str).collect();
            assert_eq!(parse(&refs), Some(Parsed::State(e)));
        }
        let z = ZoneId::new(5, 12).unwrap();
        let l = zone_set(z);
        let refs: Vec<&str> = l.iter().map(String::as_str).collect();
        assert_eq!(parse(&refs), Some(Parsed::ZoneSet(z)));
        assert_eq!(parse(&["neasmart", "zone", "6", "1"]), None);
        assert_eq!(parse(&["neasmart", "mode", "set"]), Some(Parsed::ModeSet));
    }
}
