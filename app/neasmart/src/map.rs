//! The SysBus register map: validated identifiers, addresses, and which entity a register
//! belongs to.
//!
//! All registers are 16-bit holding registers, addressed 0-based (the PDU address is the
//! register number). Zone `z` of base `b` starts at N = 1200·(b−1) + 100·z.

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

pub const BASES: u8 = 5;
pub const ZONES_PER_BASE: u8 = 12;
pub const MIXED_GROUPS: u8 = 3;
pub const DEHUMIDIFIERS: u8 = 9;
pub const PUMPS: u8 = 5;

/// Global operating mode (command register).
pub const GLOBAL_MODE: u16 = 1;
/// Global operating state (command register).
pub const GLOBAL_STATE: u16 = 2;
pub const ERRORS: u16 = 3;
pub const WARNINGS: u16 = 5;
pub const HINTS: u16 = 6;
pub const OUTSIDE_TEMPERATURE: u16 = 7;
pub const FILTERED_OUTSIDE_TEMPERATURE: u16 = 8;

/// Offsets inside a zone block.
pub mod zone_offset {
    /// Operating state (command register).
    pub const STATE: u16 = 0;
    /// Setpoint, DPT 9 (command register).
    pub const SETPOINT: u16 = 1;
    /// Current temperature, DPT 9.
    pub const TEMPERATURE: u16 = 2;
    /// Relative humidity, 0..100 in the low byte.
    pub const HUMIDITY: u16 = 10;
}

/// Offsets inside a mixed-group block.
pub mod mixed_offset {
    pub const VALVE_OPENING: u16 = 0;
    pub const PUMP_STATE: u16 = 1;
    pub const FLOW_TEMPERATURE: u16 = 2;
    pub const RETURN_TEMPERATURE: u16 = 3;
}

/// A room zone: base 1..=5, zone 1..=12. On the bus it is the two fields `"base"` and
/// `"zone"`; decoding checks the ranges.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(try_from = "RawZoneId")]
pub struct ZoneId {
    #[schema(minimum = 1, maximum = 5)]
    base: u8,
    #[schema(minimum = 1, maximum = 12)]
    zone: u8,
}

/// A [`ZoneId`] as it arrives, before its ranges are checked.
#[derive(Deserialize)]
struct RawZoneId {
    base: u8,
    zone: u8,
}

impl TryFrom<RawZoneId> for ZoneId {
    type Error = ModelError;
    fn try_from(raw: RawZoneId) -> Result<Self, ModelError> {
        ZoneId::new(raw.base, raw.zone)
    }
}

impl ZoneId {
    pub fn new(base: u8, zone: u8) -> Result<Self, ModelError> {
        if !(1..=BASES).contains(&base) {
            return Err(ModelError::BaseOutOfRange { base });
        }
        if !(1..=ZONES_PER_BASE).contains(&zone) {
            return Err(ModelError::ZoneOutOfRange { zone });
        }
        Ok(Self { base, zone })
    }
    pub fn base(self) -> u8 {
        self.base
    }
    pub fn zone(self) -> u8 {
        self.zone
    }
    /// The first register of the zone block, N.
    pub fn address(self) -> u16 {
        1200 * (u16::from(self.base) - 1) + 100 * u16::from(self.zone)
    }
    /// All 60 zones, in address order.
    pub fn all() -> impl Iterator<Item = ZoneId> {
        (1..=BASES).flat_map(|base| (1..=ZONES_PER_BASE).map(move |zone| ZoneId { base, zone }))
    }
}

macro_rules! small_id {
    ($name:ident, $max:expr, $err:ident) => {
        #[doc = concat!("A validated ", stringify!($name), " (1..=", stringify!($max), ").")]
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(try_from = "u8", into = "u8")]
        pub struct $name(u8);

        impl TryFrom<u8> for $name {
            type Error = ModelError;
            fn try_from(id: u8) -> Result<Self, ModelError> {
                Self::new(id)
            }
        }

        impl From<$name> for u8 {
            fn from(id: $name) -> u8 {
                id.0
            }
        }

        impl $name {
            pub fn new(id: u8) -> Result<Self, ModelError> {
                if (1..=$max).contains(&id) {
                    Ok(Self(id))
                } else {
                    Err(ModelError::$err { id })
                }
            }
            pub fn get(self) -> u8 {
                self.0
            }
            pub fn all() -> impl Iterator<Item = Self> {
                (1..=$max).map(Self)
            }
        }
    };
}

small_id!(MixedGroupId, MIXED_GROUPS, MixedGroupOutOfRange);
small_id!(DehumidifierId, DEHUMIDIFIERS, DehumidifierOutOfRange);
small_id!(PumpId, PUMPS, PumpOutOfRange);

impl MixedGroupId {
    /// First register of the group block: 10, 14, 18.
    pub fn address(self) -> u16 {
        10 + 4 * (u16::from(self.0) - 1)
    }
}

impl DehumidifierId {
    /// Status register: 22..=30.
    pub fn address(self) -> u16 {
        21 + u16::from(self.0)
    }
}

impl PumpId {
    /// Status register: 31..=35.
    pub fn address(self) -> u16 {
        30 + u16::from(self.0)
    }
}

/// Global operating mode, as written by a command (1..=5); a number on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u8")]
pub struct Mode(u8);

impl TryFrom<i64> for Mode {
    type Error = ModelError;
    fn try_from(mode: i64) -> Result<Self, ModelError> {
        Self::new(mode)
    }
}

impl From<Mode> for u8 {
    fn from(mode: Mode) -> u8 {
        mode.0
    }
}

impl Mode {
    pub const AUTO: Mode = Mode(1);
    pub const HEATING: Mode = Mode(2);
    pub const COOLING: Mode = Mode(3);
    pub const MANUAL_HEATING: Mode = Mode(4);
    pub const MANUAL_COOLING: Mode = Mode(5);

    pub fn new(mode: i64) -> Result<Self, ModelError> {
        match u8::try_from(mode) {
            Ok(m @ 1..=5) => Ok(Self(m)),
            _ => Err(ModelError::ModeOutOfRange { mode }),
        }
    }
    pub fn get(self) -> u8 {
        self.0
    }
    /// A name for logs and discovery.
    pub fn name(raw: u16) -> &'static str {
        match raw {
            1 => "auto",
            2 => "heating",
            3 => "cooling",
            4 => "manual_heating",
            5 => "manual_cooling",
            _ => "unknown",
        }
    }
}

/// Operating state of the system or of a zone, as written by a command (1..=6); a number on
/// the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u8")]
pub struct State(u8);

impl TryFrom<i64> for State {
    type Error = ModelError;
    fn try_from(state: i64) -> Result<Self, ModelError> {
        Self::new(state)
    }
}

impl From<State> for u8 {
    fn from(state: State) -> u8 {
        state.0
    }
}

impl State {
    pub const NORMAL: State = State(1);
    pub const REDUCED: State = State(2);
    pub const STANDBY: State = State(3);
    pub const TIME_PROGRAM: State = State(4);
    pub const PARTY: State = State(5);
    pub const HOLIDAY: State = State(6);

    pub fn new(state: i64) -> Result<Self, ModelError> {
        match u8::try_from(state) {
            Ok(s @ 1..=6) => Ok(Self(s)),
            _ => Err(ModelError::StateOutOfRange { state }),
        }
    }
    pub fn get(self) -> u8 {
        self.0
    }
    pub fn name(raw: u16) -> &'static str {
        match raw {
            1 => "normal",
            2 => "reduced",
            3 => "standby",
            4 => "time_program",
            5 => "party",
            6 => "holiday",
            _ => "unknown",
        }
    }
}

/// What a register belongs to (for publishing the entity whose register changed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    /// Global mode and state (1, 2).
    Global,
    /// Errors, warnings, hints (3, 5, 6).
    Notifications,
    /// Outside and filtered outside temperature (7, 8).
    Outside,
    MixedGroup(MixedGroupId),
    Dehumidifier(DehumidifierId),
    Pump(PumpId),
    Zone(ZoneId),
}

impl Entity {
    /// The entity of register `address`, if the map documents it.
    pub fn of(address: u16) -> Option<Entity> {
        match address {
            GLOBAL_MODE | GLOBAL_STATE => Some(Entity::Global),
            ERRORS | WARNINGS | HINTS => Some(Entity::Notifications),
            OUTSIDE_TEMPERATURE | FILTERED_OUTSIDE_TEMPERATURE => Some(Entity::Outside),
            10..=21 => Some(Entity::MixedGroup(MixedGroupId(
                (address - 10) as u8 / 4 + 1,
            ))),
            22..=30 => Some(Entity::Dehumidifier(DehumidifierId((address - 21) as u8))),
            31..=35 => Some(Entity::Pump(PumpId((address - 30) as u8))),
            100..=6010 => {
                let k = address / 100;
                let offset = address % 100;
                let documented = matches!(
                    offset,
                    zone_offset::STATE
                        | zone_offset::SETPOINT
                        | zone_offset::TEMPERATURE
                        | zone_offset::HUMIDITY
                );
                if !documented || !(1..=60).contains(&k) {
                    return None;
                }
                let k = k as u8 - 1;
                Some(Entity::Zone(ZoneId {
                    base: k / ZONES_PER_BASE + 1,
                    zone: k % ZONES_PER_BASE + 1,
                }))
            }
            _ => None,
        }
    }

    /// Every entity of the map.
    pub fn all() -> impl Iterator<Item = Entity> {
        [Entity::Global, Entity::Notifications, Entity::Outside]
            .into_iter()
            .chain(MixedGroupId::all().map(Entity::MixedGroup))
            .chain(DehumidifierId::all().map(Entity::Dehumidifier))
            .chain(PumpId::all().map(Entity::Pump))
            .chain(ZoneId::all().map(Entity::Zone))
    }
}

/// Whether `address` is a command register: global mode and state, and the state and setpoint
/// of every zone. These are read by the base (FC03) and written by both sides; they are never
/// restored after a restart and are protected while a command is pending.
pub fn is_command(address: u16) -> bool {
    match address {
        GLOBAL_MODE | GLOBAL_STATE => true,
        100..=6001 => {
            let offset = address % 100;
            (offset == zone_offset::STATE || offset == zone_offset::SETPOINT)
                && (1..=60).contains(&(address / 100))
        }
        _ => false,
    }
}

/// Every command register, in address order (122 of them).
pub fn command_registers() -> impl Iterator<Item = u16> {
    [GLOBAL_MODE, GLOBAL_STATE]
        .into_iter()
        .chain(ZoneId::all().flat_map(|z| {
            [
                z.address() + zone_offset::STATE,
                z.address() + zone_offset::SETPOINT,
            ]
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_addresses_follow_the_manual() {
        assert_eq!(ZoneId::new(1, 1).unwrap().address(), 100);
        assert_eq!(ZoneId::new(1, 12).unwrap().address(), 1200);
        assert_eq!(ZoneId::new(2, 1).unwrap().address(), 1300);
        // The manual's example: slave 1 room 10 is 22xx.
        assert_eq!(ZoneId::new(2, 10).unwrap().address(), 2200);
        assert_eq!(ZoneId::new(5, 12).unwrap().address(), 6000);
        assert_eq!(ZoneId::all().count(), 60);
        assert!(ZoneId::new(0, 1).is_err());
        assert!(ZoneId::new(6, 1).is_err());
        assert!(ZoneId::new(1, 13).is_err());
    }

    #[test]
    fn groups_dehumidifiers_pumps() {
        let g: Vec<u16> = MixedGroupId::all().map(|g| g.address()).collect();
        assert_eq!(g, vec![10, 14, 18]);
        assert_eq!(DehumidifierId::new(1).unwrap().address(), 22);
        assert_eq!(DehumidifierId::new(9).unwrap().address(), 30);
        assert_eq!(PumpId::new(1).unwrap().address(), 31);
        assert_eq!(PumpId::new(5).unwrap().address(), 35);
        assert!(MixedGroupId::new(4).is_err());
        assert!(DehumidifierId::new(10).is_err());
        assert!(PumpId::new(0).is_err());
    }

    #[test]
    fn entities_of_addresses() {
        assert_eq!(Entity::of(0), None);
        assert_eq!(Entity::of(4), None);
        assert_eq!(Entity::of(9), None);
        assert_eq!(Entity::of(2), Some(Entity::Global));
        assert_eq!(
            Entity::of(17),
            Some(Entity::MixedGroup(MixedGroupId::new(2).unwrap()))
        );
        assert_eq!(
            Entity::of(21),
            Some(Entity::MixedGroup(MixedGroupId::new(3).unwrap()))
        );
        assert_eq!(
            Entity::of(2210),
            Some(Entity::Zone(ZoneId::new(2, 10).unwrap()))
        );
        assert_eq!(
            Entity::of(6002),
            Some(Entity::Zone(ZoneId::new(5, 12).unwrap()))
        );
        assert_eq!(Entity::of(105), None);
        assert_eq!(Entity::of(6100), None);
        // Every entity's own registers map back to it.
        for z in ZoneId::all() {
            for off in [0, 1, 2, 10] {
                assert_eq!(Entity::of(z.address() + off), Some(Entity::Zone(z)));
            }
        }
        assert_eq!(Entity::all().count(), 3 + 3 + 9 + 5 + 60);
    }

    #[test]
    fn command_register_set() {
        let all: Vec<u16> = (0..=u16::MAX).filter(|a| is_command(*a)).collect();
        assert_eq!(all.len(), 2 + 2 * 60);
        assert_eq!(command_registers().collect::<Vec<_>>(), all);
        assert!(is_command(1) && is_command(2) && is_command(100) && is_command(101));
        assert!(!is_command(102) && !is_command(110) && !is_command(7));
        assert!(is_command(6000) && is_command(6001) && !is_command(6100));
    }

    #[test]
    fn enums_validate() {
        assert!(Mode::new(0).is_err() && Mode::new(6).is_err() && Mode::new(-1).is_err());
        assert_eq!(Mode::new(5).unwrap(), Mode::MANUAL_COOLING);
        assert!(State::new(0).is_err() && State::new(7).is_err());
        assert_eq!(State::new(6).unwrap(), State::HOLIDAY);
        assert_eq!(State::name(4), "time_program");
    }

    #[test]
    fn decoding_checks_ranges() {
        let z: ZoneId = serde_json::from_str(r#"{"base": 2, "zone": 10}"#).unwrap();
        assert_eq!(z, ZoneId::new(2, 10).unwrap());
        assert_eq!(
            serde_json::to_value(z).unwrap(),
            serde_json::json!({"base": 2, "zone": 10})
        );
        assert!(serde_json::from_str::<ZoneId>(r#"{"base": 6, "zone": 1}"#).is_err());
        assert!(serde_json::from_str::<PumpId>("6").is_err());
        assert_eq!(serde_json::from_str::<PumpId>("5").unwrap().get(), 5);
        assert_eq!(serde_json::to_string(&Mode::COOLING).unwrap(), "3");
        assert!(serde_json::from_str::<Mode>("0").is_err());
        assert_eq!(serde_json::from_str::<State>("6").unwrap(), State::HOLIDAY);
        assert!(serde_json::from_str::<State>("2.5").is_err());
    }
}
