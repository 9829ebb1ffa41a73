//! The register model: one store of 65 536 holding registers shared by every unit id, with the
//! pending-command protocol and freshness tracking.
//!
//! ## Pending commands
//!
//! A command register (see [`crate::map::is_command`]) carries, on the same address, the
//! command the base reads (FC03) and the status the base writes back. A command from the API
//! is written into the register at once and marked *pending*. While it is pending:
//!
//! - a bus write of a **different** value to it is ignored (the command is kept, so a status
//!   broadcast cannot overwrite a command before the base has fetched it);
//! - a bus write of the **same** value confirms it and ends the pending mark;
//! - a bus **read** covering it ends the pending mark (the base has fetched the command; its
//!   later status writes are taken normally);
//! - after `command_timeout` without either, the mark expires and bus writes win again.
//!
//! ## Freshness
//!
//! The time of the last bus write (any register, broadcast included) is kept; API commands do
//! not count. Data is stale when no bus write arrived for `stale_after`, or none since start.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use watchpost_modbus::{ExceptionCode, RegisterBank};

use crate::dpt9;
use crate::error::ModelError;
use crate::map::{
    self, DehumidifierId, Entity, MixedGroupId, Mode, PumpId, State, ZoneId, mixed_offset,
    zone_offset,
};
use crate::state::{EntityState, GlobalState, Present, ZoneState};
use crate::views::{
    DehumidifierView, GlobalView, MixedGroupView, NotificationsView, OutsideView, PumpView,
    ZoneView,
};

/// Timings of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelConfig {
    /// How long a command stays protected if the base does not read it.
    pub command_timeout: Duration,
    /// Data is stale after this long without a bus write.
    pub stale_after: Duration,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            command_timeout: Duration::from_secs(30),
            stale_after: Duration::from_secs(180),
        }
    }
}

/// A zone setpoint that can be written: finite, encodable in DPT 9, and not one of the values
/// the base uses as a sentinel. On the bus it is the number of °C the base will see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Setpoint {
    raw: u16,
}

impl TryFrom<f64> for Setpoint {
    type Error = ModelError;
    fn try_from(celsius: f64) -> Result<Self, ModelError> {
        Self::from_celsius(celsius)
    }
}

impl From<Setpoint> for f64 {
    fn from(sp: Setpoint) -> f64 {
        sp.celsius()
    }
}

impl Setpoint {
    pub fn from_celsius(celsius: f64) -> Result<Self, ModelError> {
        match dpt9::encode(celsius) {
            Some(raw) if dpt9::decode(raw).is_some() => Ok(Self { raw }),
            _ => Err(ModelError::SetpointNotEncodable { celsius }),
        }
    }
    pub fn raw(self) -> u16 {
        self.raw
    }
    /// The value the base will see, after DPT 9 rounding.
    pub fn celsius(self) -> f64 {
        dpt9::decode_centi(self.raw) as f64 / 100.0
    }
}

/// A command from the API side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    ZoneState(ZoneId, State),
    ZoneSetpoint(ZoneId, Setpoint),
    GlobalMode(Mode),
    GlobalState(State),
}

impl Command {
    /// The register and value the command writes.
    pub fn register(self) -> (u16, u16) {
        match self {
            Self::ZoneState(z, s) => (z.address() + zone_offset::STATE, u16::from(s.get())),
            Self::ZoneSetpoint(z, sp) => (z.address() + zone_offset::SETPOINT, sp.raw()),
            Self::GlobalMode(m) => (map::GLOBAL_MODE, u16::from(m.get())),
            Self::GlobalState(s) => (map::GLOBAL_STATE, u16::from(s.get())),
        }
    }
}

/// A command waiting for the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub value: u16,
    pub since: Instant,
}

/// How fresh the bus data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    pub last_bus_write: Option<Instant>,
    pub age: Option<Duration>,
    pub stale: bool,
}

/// Counts of what the pending-command protocol did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PendingStats {
    /// Commands issued.
    pub issued: u64,
    /// Pending marks ended by a bus read.
    pub delivered: u64,
    /// Pending marks ended by a bus write of the same value.
    pub confirmed: u64,
    /// Pending marks that timed out.
    pub expired: u64,
    /// Bus writes ignored because they differed from a pending command.
    pub writes_ignored: u64,
}

/// The register store (see the module documentation).
#[derive(Debug, Clone)]
pub struct Model {
    config: ModelConfig,
    regs: Vec<u16>,
    /// One bit per register that was ever set to non-zero, so snapshots do not scan all 65 536.
    touched: Vec<u64>,
    /// One bit per register the base station has written (or that was restored): what exists
    /// on this installation ([`Model::exists`]).
    written: Vec<u64>,
    pending: BTreeMap<u16, Pending>,
    last_bus_write: Option<Instant>,
    changed: BTreeSet<Entity>,
    measurements_dirty: bool,
    stats: PendingStats,
}

impl Model {
    pub fn new(config: ModelConfig) -> Self {
        Self {
            config,
            regs: vec![0; 0x1_0000],
            touched: vec![0; 0x1_0000 / 64],
            written: vec![0; 0x1_0000 / 64],
            pending: BTreeMap::new(),
            last_bus_write: None,
            changed: BTreeSet::new(),
            measurements_dirty: false,
            stats: PendingStats::default(),
        }
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The raw value of one register.
    pub fn register(&self, address: u16) -> u16 {
        self.regs[usize::from(address)]
    }

    fn set(&mut self, address: u16, value: u16) {
        let slot = &mut self.regs[usize::from(address)];
        if *slot != value {
            *slot = value;
            self.touched[usize::from(address / 64)] |= 1 << (address % 64);
            if let Some(e) = Entity::of(address) {
                self.changed.insert(e);
            }
            if !map::is_command(address) {
                self.measurements_dirty = true;
            }
        }
    }

    fn pending_expired(&self, p: &Pending, now: Instant) -> bool {
        now.saturating_duration_since(p.since) >= self.config.command_timeout
    }

    /// A bus read (FC03, the read of FC23): returns the registers and ends the pending mark of
    /// every command register it covers.
    pub fn bus_read(&mut self, address: u16, count: u16, now: Instant) -> Vec<u16> {
        let start = usize::from(address);
        let end = (start + usize::from(count)).min(self.regs.len());
        let last = (end.max(start + 1) - 1) as u16;
        let covered: Vec<u16> = self
            .pending
            .range(address..=last)
            .map(|(a, _)| *a)
            .collect();
        for a in covered {
            if let Some(p) = self.pending.remove(&a) {
                if self.pending_expired(&p, now) {
                    self.stats.expired += 1;
                } else {
                    self.stats.delivered += 1;
                }
            }
        }
        self.regs[start..end].to_vec()
    }

    /// A bus write (FC06, FC16, FC22, FC23, broadcast or not), applied under the pending rules.
    pub fn bus_write(&mut self, address: u16, values: &[u16], now: Instant) {
        self.last_bus_write = Some(now);
        for (i, &v) in values.iter().enumerate() {
            let Some(a) = address.checked_add(i as u16) else {
                break;
            };
            self.mark_written(a);
            if let Some(p) = self.pending.get(&a).copied() {
                if self.pending_expired(&p, now) {
                    self.pending.remove(&a);
                    self.stats.expired += 1;
                } else if v == p.value {
                    self.pending.remove(&a);
                    self.stats.confirmed += 1;
                    continue;
                } else {
                    self.stats.writes_ignored += 1;
                    continue;
                }
            }
            self.set(a, v);
        }
    }

    /// Applies a command: the register takes the value at once and is protected until the
    /// base reads it or the command times out.
    pub fn command(&mut self, command: Command, now: Instant) {
        let (address, value) = command.register();
        self.set(address, value);
        self.pending.insert(address, Pending { value, since: now });
        self.stats.issued += 1;
    }

    /// Ends the pending marks that have timed out; returns their registers and values.
    pub fn expire(&mut self, now: Instant) -> Vec<(u16, u16)> {
        let expired: Vec<(u16, u16)> = self
            .pending
            .iter()
            .filter(|(_, p)| self.pending_expired(p, now))
            .map(|(a, p)| (*a, p.value))
            .collect();
        for (a, _) in &expired {
            self.pending.remove(a);
        }
        self.stats.expired += expired.len() as u64;
        expired
    }

    /// When the next pending mark times out.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|p| p.since + self.config.command_timeout)
            .min()
    }

    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    pub fn pending(&self, address: u16) -> Option<Pending> {
        self.pending.get(&address).copied()
    }

    pub fn stats(&self) -> PendingStats {
        self.stats
    }

    /// Freshness at `now`.
    pub fn freshness(&self, now: Instant) -> Freshness {
        let age = self
            .last_bus_write
            .map(|t| now.saturating_duration_since(t));
        Freshness {
            last_bus_write: self.last_bus_write,
            age,
            stale: age.is_none_or(|a| a > self.config.stale_after),
        }
    }

    /// Loads persisted registers. Command registers are skipped: replaying an old command
    /// after a restart would push stale presets and setpoints to the base. Returns how many
    /// registers were taken.
    pub fn restore(&mut self, values: impl IntoIterator<Item = (u16, u16)>) -> usize {
        let mut n = 0;
        for (a, v) in values {
            if !map::is_command(a) {
                self.regs[usize::from(a)] = v;
                self.touched[usize::from(a / 64)] |= 1 << (a % 64);
                self.mark_written(a);
                n += 1;
            }
        }
        n
    }

    /// Every non-zero measurement (non-command) register, in address order, for persisting.
    pub fn measurements(&self) -> Vec<(u16, u16)> {
        let mut out = Vec::new();
        for (w, &bits) in self.touched.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let a = (w * 64 + bits.trailing_zeros() as usize) as u16;
                bits &= bits - 1;
                let v = self.regs[usize::from(a)];
                if v != 0 && !map::is_command(a) {
                    out.push((a, v));
                }
            }
        }
        out
    }

    /// Whether a measurement register changed since the last call.
    pub fn take_measurements_dirty(&mut self) -> bool {
        std::mem::take(&mut self.measurements_dirty)
    }

    /// Marks the measurements as changed (a failed write is retried at the next interval).
    pub fn mark_measurements_dirty(&mut self) {
        self.measurements_dirty = true;
    }

    /// The entities whose registers changed since the last call.
    pub fn take_changed(&mut self) -> BTreeSet<Entity> {
        std::mem::take(&mut self.changed)
    }

    /// Register access for the bus at time `now` (a [`RegisterBank`] for the Modbus slave).
    pub fn bus(&mut self, now: Instant) -> BusAccess<'_> {
        BusAccess { model: self, now }
    }

    fn temperature(&self, address: u16) -> Option<f64> {
        dpt9::decode(self.register(address))
    }

    fn low_byte(&self, address: u16) -> u16 {
        self.register(address) & 0xFF
    }

    fn flag(&self, address: u16) -> u16 {
        self.register(address) & 1
    }

    pub fn zone(&self, zone: ZoneId) -> ZoneView {
        let n = zone.address();
        ZoneView {
            state: self.low_byte(n + zone_offset::STATE),
            setpoint: self.temperature(n + zone_offset::SETPOINT),
            temperature: self.temperature(n + zone_offset::TEMPERATURE),
            relative_humidity: self.low_byte(n + zone_offset::HUMIDITY),
        }
    }

    fn mark_written(&mut self, address: u16) {
        let bit = 1u64 << (address % 64);
        let word = &mut self.written[usize::from(address / 64)];
        if *word & bit == 0 {
            *word |= bit;
            // The entity appears: its retained state is published again with `active`.
            if let Some(e) = Entity::of(address) {
                self.changed.insert(e);
            }
        }
    }

    /// Whether the base station has written `address` (since start, or before a restart:
    /// restored measurements count).
    pub fn written(&self, address: u16) -> bool {
        self.written[usize::from(address / 64)] & (1 << (address % 64)) != 0
    }

    /// Whether `entity` exists on this installation: the base station has written one of its
    /// registers. A command alone does not make a zone exist. The REST lists, the dashboards
    /// and Home Assistant discovery all show only what exists. The global entities (mode and
    /// state, outside temperatures, notifications) always exist.
    pub fn exists(&self, entity: Entity) -> bool {
        match entity {
            Entity::Zone(z) => {
                let n = z.address();
                [
                    zone_offset::STATE,
                    zone_offset::SETPOINT,
                    zone_offset::TEMPERATURE,
                    zone_offset::HUMIDITY,
                ]
                .iter()
                .any(|o| self.written(n + o))
            }
            Entity::MixedGroup(g) => {
                let m = g.address();
                (0..4).any(|o| self.written(m + o))
            }
            Entity::Dehumidifier(d) => self.written(d.address()),
            Entity::Pump(p) => self.written(p.address()),
            Entity::Global | Entity::Outside | Entity::Notifications => true,
        }
    }

    /// Whether the base has written any of the zone's registers ([`Model::exists`]).
    pub fn zone_active(&self, zone: ZoneId) -> bool {
        self.exists(Entity::Zone(zone))
    }

    /// The zone's retained state: its view, whether it is active and its pending marks.
    pub fn zone_state(&self, zone: ZoneId) -> ZoneState {
        let v = self.zone(zone);
        let n = zone.address();
        ZoneState {
            id: zone,
            active: self.zone_active(zone),
            state: v.state,
            state_name: State::name(v.state).to_string(),
            setpoint: v.setpoint,
            temperature: v.temperature,
            relative_humidity: v.relative_humidity,
            pending_state: self.pending.contains_key(&(n + zone_offset::STATE)),
            pending_setpoint: self.pending.contains_key(&(n + zone_offset::SETPOINT)),
        }
    }

    /// The global mode and state with their names and pending marks.
    pub fn global_state(&self) -> GlobalState {
        let g = self.global();
        GlobalState {
            mode: g.mode,
            mode_name: Mode::name(g.mode).to_string(),
            state: g.state,
            state_name: State::name(g.state).to_string(),
            pending_mode: self.pending.contains_key(&map::GLOBAL_MODE),
            pending_state: self.pending.contains_key(&map::GLOBAL_STATE),
        }
    }

    /// The retained state of `entity`, as the fieldbus worker publishes it.
    pub fn entity_state(&self, entity: Entity) -> EntityState {
        match entity {
            Entity::Zone(z) => EntityState::Zone(self.zone_state(z)),
            Entity::Global => EntityState::Global(self.global_state()),
            Entity::Outside => EntityState::Outside(self.outside()),
            Entity::Notifications => EntityState::Notifications(self.notifications()),
            Entity::MixedGroup(g) => EntityState::MixedGroup(Present {
                view: self.mixed_group(g),
                active: self.exists(entity),
            }),
            Entity::Dehumidifier(d) => EntityState::Dehumidifier(Present {
                view: self.dehumidifier(d),
                active: self.exists(entity),
            }),
            Entity::Pump(p) => EntityState::Pump(Present {
                view: self.pump(p),
                active: self.exists(entity),
            }),
        }
    }

    pub fn mixed_group(&self, group: MixedGroupId) -> MixedGroupView {
        let m = group.address();
        MixedGroupView {
            pump_state: self.flag(m + mixed_offset::PUMP_STATE),
            mixing_valve_opening_percentage: self.low_byte(m + mixed_offset::VALVE_OPENING),
            flow_temperature: self.temperature(m + mixed_offset::FLOW_TEMPERATURE),
            return_temperature: self.temperature(m + mixed_offset::RETURN_TEMPERATURE),
        }
    }

    pub fn outside(&self) -> OutsideView {
        OutsideView {
            outside_temperature: self.temperature(map::OUTSIDE_TEMPERATURE),
            filtered_outside_temperature: self.temperature(map::FILTERED_OUTSIDE_TEMPERATURE),
        }
    }

    pub fn notifications(&self) -> NotificationsView {
        NotificationsView {
            hints_present: self.flag(map::HINTS) == 1,
            warnings_present: self.flag(map::WARNINGS) == 1,
            error_present: self.flag(map::ERRORS) == 1,
        }
    }

    pub fn global(&self) -> GlobalView {
        GlobalView {
            mode: self.low_byte(map::GLOBAL_MODE),
            state: self.low_byte(map::GLOBAL_STATE),
        }
    }

    pub fn dehumidifier(&self, id: DehumidifierId) -> DehumidifierView {
        DehumidifierView {
            dehumidifier_state: self.flag(id.address()),
        }
    }

    pub fn pump(&self, id: PumpId) -> PumpView {
        PumpView {
            pump_state: self.flag(id.address()),
        }
    }
}

/// The model seen from the bus at one instant; see [`Model::bus`].
#[derive(Debug)]
pub struct BusAccess<'a> {
    model: &'a mut Model,
    now: Instant,
}

impl RegisterBank for BusAccess<'_> {
    fn read_holding(&mut self, address: u16, count: u16) -> Result<Vec<u16>, ExceptionCode> {
        if usize::from(address) + usize::from(count) > 0x1_0000 {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        Ok(self.model.bus_read(address, count, self.now))
    }

    fn peek_holding(&mut self, address: u16) -> Result<u16, ExceptionCode> {
        Ok(self.model.register(address))
    }

    fn write_holding(&mut self, address: u16, values: &[u16]) -> Result<(), ExceptionCode> {
        if usize::from(address) + values.len() > 0x1_0000 {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        self.model.bus_write(address, values, self.now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        Model::new(ModelConfig::default())
    }

    fn z(b: u8, zn: u8) -> ZoneId {
        ZoneId::new(b, zn).unwrap()
    }

    #[test]
    fn zone_view_decodes_registers() {
        let mut m = model();
        let t = Instant::now();
        m.bus_write(1300, &[1, 0x0C65, 0x07C6], t);
        m.bus_write(1310, &[0x0132], t);
        assert_eq!(
            m.zone(z(2, 1)),
            ZoneView {
                state: 1,
                setpoint: Some(22.5),
                temperature: Some(19.9),
                relative_humidity: 0x32,
            }
        );
        assert!(m.zone_active(z(2, 1)));
        assert!(!m.zone_active(z(2, 2)));
        // Standby setpoint and uninitialised temperature read as null.
        m.bus_write(100, &[3, dpt9::NOT_APPLICABLE, dpt9::INVALID], t);
        let v = m.zone(z(1, 1));
        assert_eq!((v.setpoint, v.temperature), (None, None));
    }

    #[test]
    fn retained_state_carries_names_and_pending_marks() {
        let mut m = model();
        let t = Instant::now();
        m.bus_write(1300, &[1, 0x0C65, 0x07C6], t);
        m.command(
            Command::ZoneSetpoint(z(2, 1), Setpoint::from_celsius(21.5).unwrap()),
            t,
        );
        m.command(Command::GlobalMode(Mode::COOLING), t);
        assert_eq!(
            serde_json::to_value(m.entity_state(Entity::Zone(z(2, 1)))).unwrap(),
            serde_json::json!({"base": 2, "zone": 1, "active": true, "state": 1,
                "state_name": "normal", "setpoint": 21.5, "temperature": 19.9,
                "relative_humidity": 0, "pending_state": false, "pending_setpoint": true})
        );
        assert_eq!(
            serde_json::to_value(m.entity_state(Entity::Global)).unwrap(),
            serde_json::json!({"mode": 3, "mode_name": "cooling", "state": 0,
                "state_name": "unknown", "pending_mode": true, "pending_state": false})
        );
        assert_eq!(
            serde_json::to_value(m.entity_state(Entity::Pump(PumpId::new(1).unwrap()))).unwrap(),
            serde_json::json!({"pump_state": 0, "active": false})
        );
        // A pump exists once the base writes its register, even a 0 (stopped); a command to a
        // zone the base never wrote does not make the zone exist.
        m.bus_write(31, &[0], t);
        assert_eq!(
            serde_json::to_value(m.entity_state(Entity::Pump(PumpId::new(1).unwrap()))).unwrap(),
            serde_json::json!({"pump_state": 0, "active": true})
        );
        assert!(
            m.take_changed()
                .contains(&Entity::Pump(PumpId::new(1).unwrap()))
        );
        m.command(
            Command::ZoneSetpoint(z(5, 12), Setpoint::from_celsius(21.5).unwrap()),
            t,
        );
        assert!(!m.exists(Entity::Zone(z(5, 12))));
        // Restored measurements (after a restart) count as written.
        let mut r = model();
        r.restore(m.measurements());
        assert!(r.exists(Entity::Zone(z(2, 1))));
        assert!(!r.exists(Entity::MixedGroup(MixedGroupId::new(1).unwrap())));
    }

    #[test]
    fn pending_command_wins_until_read() {
        let mut m = model();
        let t = Instant::now();
        let zone = z(1, 3);
        let sp = Setpoint::from_celsius(21.5).unwrap();
        m.command(Command::ZoneSetpoint(zone, sp), t);
        assert_eq!(m.register(301), 0x0C33);
        assert_eq!(m.pending_count(), 1);
        // The base broadcasts its old status before reading: ignored.
        m.bus_write(301, &[0x07D0], t + Duration::from_secs(1));
        assert_eq!(m.register(301), 0x0C33);
        assert_eq!(m.stats().writes_ignored, 1);
        // The base reads the zone block: it sees the command, and the mark ends.
        let read = m.bus_read(300, 11, t + Duration::from_secs(2));
        assert_eq!(read[1], 0x0C33);
        assert_eq!(m.pending_count(), 0);
        assert_eq!(m.stats().delivered, 1);
        // Later status writes are taken normally.
        m.bus_write(301, &[0x07D0], t + Duration::from_secs(3));
        assert_eq!(m.register(301), 0x07D0);
    }

    #[test]
    fn same_value_write_confirms() {
        let mut m = model();
        let t = Instant::now();
        m.command(Command::GlobalMode(Mode::COOLING), t);
        m.bus_write(1, &[3], t);
        assert_eq!(m.pending_count(), 0);
        assert_eq!(m.stats().confirmed, 1);
    }

    #[test]
    fn pending_expires() {
        let mut m = model();
        let t = Instant::now();
        m.command(Command::GlobalState(State::PARTY), t);
        assert_eq!(m.next_expiry(), Some(t + Duration::from_secs(30)));
        assert!(m.expire(t + Duration::from_secs(29)).is_empty());
        assert_eq!(m.expire(t + Duration::from_secs(30)), vec![(2, 5)]);
        m.bus_write(2, &[1], t + Duration::from_secs(31));
        assert_eq!(m.register(2), 1);
        // A write after the timeout wins even if expire() was not called in between.
        m.command(Command::GlobalState(State::PARTY), t);
        m.bus_write(2, &[4], t + Duration::from_secs(60));
        assert_eq!(m.register(2), 4);
        assert_eq!(m.stats().expired, 2);
    }

    #[test]
    fn pending_only_protects_its_own_register() {
        let mut m = model();
        let t = Instant::now();
        m.command(Command::ZoneState(z(1, 1), State::STANDBY), t);
        // An FC16 over the whole zone block keeps the command, takes the rest.
        m.bus_write(100, &[1, 0x07D0, 0x07C6], t);
        assert_eq!(&m.regs[100..103], &[3, 0x07D0, 0x07C6]);
    }

    #[test]
    fn freshness() {
        let mut m = model();
        let t = Instant::now();
        assert!(m.freshness(t).stale);
        m.command(Command::GlobalMode(Mode::AUTO), t);
        assert!(
            m.freshness(t).stale,
            "API commands do not count as bus activity"
        );
        m.bus_write(7, &[0x0C65], t);
        assert!(!m.freshness(t + Duration::from_secs(180)).stale);
        let f = m.freshness(t + Duration::from_secs(181));
        assert!(f.stale);
        assert_eq!(f.age, Some(Duration::from_secs(181)));
    }

    #[test]
    fn restore_skips_command_registers() {
        let mut m = model();
        let n = m.restore([
            (1, 3),
            (2, 4),
            (100, 1),
            (101, 0x0C65),
            (102, 0x07C6),
            (7, 0x860C),
        ]);
        assert_eq!(n, 2);
        assert_eq!(m.global(), GlobalView { mode: 0, state: 0 });
        assert_eq!(m.zone(z(1, 1)).temperature, Some(19.9));
        assert_eq!(m.zone(z(1, 1)).state, 0);
        assert_eq!(m.outside().outside_temperature, Some(-5.0));
        assert!(!m.take_measurements_dirty());
    }

    #[test]
    fn measurements_and_change_tracking() {
        let mut m = model();
        let t = Instant::now();
        m.bus_write(100, &[1, 0x0C65, 0x07C6], t);
        m.bus_write(31, &[1], t);
        assert!(m.take_measurements_dirty());
        assert!(!m.take_measurements_dirty());
        assert_eq!(m.measurements(), vec![(31, 1), (102, 0x07C6)]);
        let changed = m.take_changed();
        assert!(changed.contains(&Entity::Zone(z(1, 1))));
        assert!(changed.contains(&Entity::Pump(PumpId::new(1).unwrap())));
        // Writing the same values again changes nothing.
        m.bus_write(100, &[1, 0x0C65, 0x07C6], t);
        assert!(m.take_changed().is_empty());
        assert!(!m.take_measurements_dirty());
    }

    #[test]
    fn other_views() {
        let mut m = model();
        let t = Instant::now();
        m.bus_write(3, &[1, 0, 0, 1], t);
        m.bus_write(14, &[0x0042, 1, 0x0ED6, 0x07D0], t);
        m.bus_write(22, &[1], t);
        assert_eq!(
            m.notifications(),
            NotificationsView {
                hints_present: true,
                warnings_present: false,
                error_present: true
            }
        );
        assert_eq!(
            m.mixed_group(MixedGroupId::new(2).unwrap()),
            MixedGroupView {
                pump_state: 1,
                mixing_valve_opening_percentage: 0x42,
                flow_temperature: Some(35.0),
                return_temperature: Some(20.0),
            }
        );
        assert_eq!(
            m.dehumidifier(DehumidifierId::new(1).unwrap())
                .dehumidifier_state,
            1
        );
        assert_eq!(m.pump(PumpId::new(1).unwrap()).pump_state, 0);
    }

    #[test]
    fn setpoints_refuse_sentinels_and_nonsense() {
        assert!(Setpoint::from_celsius(-17.7).is_err());
        assert!(Setpoint::from_celsius(f64::NAN).is_err());
        assert!(Setpoint::from_celsius(200.0).is_err());
        assert_eq!(Setpoint::from_celsius(20.49).unwrap().celsius(), 20.5);
    }

    #[test]
    fn setpoints_are_their_rounded_celsius_on_the_bus() {
        let sp: Setpoint = serde_json::from_str("20.49").unwrap();
        assert_eq!(serde_json::to_string(&sp).unwrap(), "20.5");
        assert_eq!(serde_json::from_str::<Setpoint>("20.5").unwrap(), sp);
        assert_eq!(
            serde_json::from_str::<Setpoint>("21").unwrap().raw(),
            0x0C1A
        );
        assert!(serde_json::from_str::<Setpoint>("-17.7").is_err());
    }
}
