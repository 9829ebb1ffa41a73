//! The rules engine: sensor updates and the current time in, alarms out. No I/O, no clock:
//! the service passes `now_ms` in, and timers (debounce, door prop) are due times the service
//! wakes up for ([`Engine::next_due_ms`]).
//!
//! Per mapped sensor the engine remembers which conditions it has alarmed (`active`), so it
//! raises on a condition's start and restores on its end, whatever the sensor source reports
//! or re-reports (a bridge restart re-publishes every sensor; nothing is raised twice). This
//! memory is part of [`EngineState`], which the service saves with every batch.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use watchpost_config::alarms::{AlarmsConfig, MappingConfig};
use watchpost_yolink::{Condition, Sensor, SensorKind, SensorState};

use crate::event::{EventKind, Phase, sensor_condition};

/// The rule of one sensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub sensor: String,
    pub name: Option<String>,
    /// Conditions that alarm; `None`: the defaults of the sensor's kind.
    pub conditions: Option<BTreeSet<Condition>>,
    pub restore: bool,
    /// Own door-prop timer (0: only the sensor's reminder).
    pub door_prop_ms: u64,
    pub debounce_ms: u64,
    pub rate_limit_per_min: u32,
}

impl Rule {
    pub fn from_mapping(m: &MappingConfig, defaults: &AlarmsConfig) -> Self {
        Self {
            sensor: m.sensor.clone(),
            name: m.name.clone(),
            conditions: m
                .conditions
                .as_ref()
                .map(|cs| cs.iter().copied().map(sensor_condition).collect()),
            restore: m.restore,
            door_prop_ms: m
                .door_prop_s
                .unwrap_or(defaults.door_prop_s)
                .saturating_mul(1000),
            debounce_ms: m.debounce_ms.unwrap_or(defaults.debounce_ms),
            rate_limit_per_min: m.rate_limit_per_min.unwrap_or(defaults.rate_limit_per_min),
        }
    }

    fn watched(&self, kind: SensorKind) -> BTreeSet<Condition> {
        self.conditions
            .clone()
            .unwrap_or_else(|| default_conditions(kind))
    }
}

/// Conditions a sensor kind alarms on when its mapping does not list them.
pub fn default_conditions(kind: SensorKind) -> BTreeSet<Condition> {
    use Condition as C;
    let mut set: BTreeSet<Condition> = match kind {
        SensorKind::Door | SensorKind::Motion | SensorKind::Vibration => [C::Intrusion].into(),
        SensorKind::Leak => [C::Water].into(),
        SensorKind::CoSmoke => [C::Smoke, C::CarbonMonoxide, C::Heat].into(),
        SensorKind::Th => [
            C::Freeze,
            C::HighTemperature,
            C::HighHumidity,
            C::LowHumidity,
        ]
        .into(),
        SensorKind::Other => Condition::ALL.into_iter().collect(),
    };
    set.extend([C::LowBattery, C::Fault, C::Tamper, C::Offline]);
    set
}

/// One alarm or restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    pub id: u64,
    pub sensor: String,
    pub sensor_name: String,
    pub kind: EventKind,
    pub phase: Phase,
    pub at_ms: i64,
    /// The mapping asks for restores to be reported (relays that follow get them anyway).
    pub report_restore: bool,
}

/// Something the engine decided not to send, for the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    pub sensor: String,
    pub kind: EventKind,
    pub phase: Phase,
    pub reason: &'static str,
}

/// What one input produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    pub alarms: Vec<Alarm>,
    pub suppressed: Vec<Suppressed>,
}

/// What the engine remembers about one mapped sensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorMemory {
    pub name: String,
    pub kind: SensorKind,
    /// Conditions alarmed (or suppressed by the rate limit) and not yet restored.
    pub active: BTreeSet<Condition>,
    /// Active conditions whose alarm was not sent (their restore is not sent either).
    pub suppressed: BTreeSet<Condition>,
    /// Conditions the sensor reported last.
    pub observed: BTreeSet<Condition>,
    /// Debounce: when a condition whose observed state differs from `active` takes effect.
    pub pending: BTreeMap<Condition, i64>,
    /// When the door opened (door sensors with an active intrusion).
    pub open_since_ms: Option<i64>,
    pub prop_active: bool,
    pub prop_suppressed: bool,
    /// Times of recent alarms (rate limit).
    pub recent_ms: VecDeque<i64>,
}

impl SensorMemory {
    fn new(name: &str, kind: SensorKind) -> Self {
        Self {
            name: name.to_string(),
            kind,
            active: BTreeSet::new(),
            suppressed: BTreeSet::new(),
            observed: BTreeSet::new(),
            pending: BTreeMap::new(),
            open_since_ms: None,
            prop_active: false,
            prop_suppressed: false,
            recent_ms: VecDeque::new(),
        }
    }
}

/// Everything the engine must remember across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EngineState {
    pub sensors: BTreeMap<String, SensorMemory>,
    pub next_alarm_id: u64,
}

/// The rules engine.
#[derive(Debug, Clone)]
pub struct Engine {
    rules: HashMap<String, Rule>,
    state: EngineState,
}

impl Engine {
    pub fn new(rules: Vec<Rule>, state: EngineState) -> Self {
        Self {
            rules: rules.into_iter().map(|r| (r.sensor.clone(), r)).collect(),
            state,
        }
    }

    /// Replaces the rules (configuration changed); memory of sensors stays.
    pub fn set_rules(&mut self, rules: Vec<Rule>) {
        self.rules = rules.into_iter().map(|r| (r.sensor.clone(), r)).collect();
    }

    pub fn rule(&self, sensor: &str) -> Option<&Rule> {
        self.rules.get(sensor)
    }

    /// Whether any sensor has an active alarm (intrusion, water, smoke, CO, heat,
    /// temperature): what the status LED shows. Troubles (battery, tamper, fault, offline,
    /// humidity) are not alarms here.
    pub fn alarm_active(&self) -> bool {
        self.state.sensors.values().any(|m| {
            m.active.iter().any(|c| {
                matches!(
                    c,
                    Condition::Intrusion
                        | Condition::Water
                        | Condition::Smoke
                        | Condition::CarbonMonoxide
                        | Condition::Heat
                        | Condition::HighTemperature
                        | Condition::Freeze
                )
            })
        })
    }

    pub fn state(&self) -> &EngineState {
        &self.state
    }

    fn next_id(&mut self) -> u64 {
        self.state.next_alarm_id += 1;
        self.state.next_alarm_id
    }

    /// A sensor update (`reminder`: it was the sensor's "still open" reminder).
    pub fn on_sensor(&mut self, sensor: &Sensor, reminder: bool, now_ms: i64) -> Output {
        let mut out = Output::default();
        let Some(rule) = self.rules.get(&sensor.id).cloned() else {
            return out;
        };
        let name = rule.name.clone().unwrap_or_else(|| sensor.name.clone());
        let watched = rule.watched(sensor.kind);
        let mut mem = self
            .state
            .sensors
            .remove(&sensor.id)
            .unwrap_or_else(|| SensorMemory::new(&name, sensor.kind));
        mem.name = name;
        mem.kind = sensor.kind;
        // A sensor whose state was never read (only its silence is known) says nothing about
        // its other conditions: judge only `offline` for it.
        let judged: BTreeSet<Condition> = if sensor.state == SensorState::Unknown {
            watched
                .intersection(&[Condition::Offline].into())
                .copied()
                .collect()
        } else {
            watched.clone()
        };
        let mut observed: BTreeSet<Condition> = mem.observed.difference(&judged).copied().collect();
        observed.extend(sensor.conditions.intersection(&judged).copied());
        mem.observed = observed;
        for c in &judged {
            let want = mem.observed.contains(c);
            if want == mem.active.contains(c) {
                mem.pending.remove(c);
            } else if rule.debounce_ms == 0 {
                self.transition(&rule, &mut mem, *c, want, now_ms, &mut out);
            } else {
                let due =
                    now_ms.saturating_add(i64::try_from(rule.debounce_ms).unwrap_or(i64::MAX));
                mem.pending.entry(*c).or_insert(due);
            }
        }
        if reminder
            && mem.kind == SensorKind::Door
            && mem.active.contains(&Condition::Intrusion)
            && !mem.prop_active
        {
            self.raise_prop(&rule, &mut mem, now_ms, &mut out);
        }
        self.state.sensors.insert(sensor.id.clone(), mem);
        out
    }

    /// Fires what is due at `now_ms` (debounced changes, door-prop timers).
    pub fn tick(&mut self, now_ms: i64) -> Output {
        let mut out = Output::default();
        let ids: Vec<String> = self.state.sensors.keys().cloned().collect();
        for id in ids {
            let Some(rule) = self.rules.get(&id).cloned() else {
                continue;
            };
            let Some(mut mem) = self.state.sensors.remove(&id) else {
                continue;
            };
            let due: Vec<Condition> = mem
                .pending
                .iter()
                .filter(|(_, t)| **t <= now_ms)
                .map(|(c, _)| *c)
                .collect();
            for c in due {
                mem.pending.remove(&c);
                let want = mem.observed.contains(&c);
                if want != mem.active.contains(&c) {
                    self.transition(&rule, &mut mem, c, want, now_ms, &mut out);
                }
            }
            if let Some(since) = mem.open_since_ms
                && rule.door_prop_ms > 0
                && !mem.prop_active
                && now_ms.saturating_sub(since)
                    >= i64::try_from(rule.door_prop_ms).unwrap_or(i64::MAX)
            {
                self.raise_prop(&rule, &mut mem, now_ms, &mut out);
            }
            self.state.sensors.insert(id, mem);
        }
        out
    }

    /// The earliest time [`Engine::tick`] has something to do.
    pub fn next_due_ms(&self) -> Option<i64> {
        let mut next: Option<i64> = None;
        for (id, mem) in &self.state.sensors {
            let Some(rule) = self.rules.get(id) else {
                continue;
            };
            let mut cands: Vec<i64> = mem.pending.values().copied().collect();
            if let Some(since) = mem.open_since_ms
                && rule.door_prop_ms > 0
                && !mem.prop_active
            {
                cands.push(
                    since.saturating_add(i64::try_from(rule.door_prop_ms).unwrap_or(i64::MAX)),
                );
            }
            for c in cands {
                next = Some(next.map_or(c, |n| n.min(c)));
            }
        }
        next
    }

    /// A test alarm (not tied to a sensor).
    pub fn test_alarm(&mut self, now_ms: i64) -> Alarm {
        Alarm {
            id: self.next_id(),
            sensor: String::new(),
            sensor_name: "test".into(),
            kind: EventKind::Test,
            phase: Phase::Alarm,
            at_ms: now_ms,
            report_restore: false,
        }
    }

    fn alarm(
        &mut self,
        rule: &Rule,
        mem: &SensorMemory,
        kind: EventKind,
        phase: Phase,
        now_ms: i64,
    ) -> Alarm {
        Alarm {
            id: self.next_id(),
            sensor: rule.sensor.clone(),
            sensor_name: mem.name.clone(),
            kind,
            phase,
            at_ms: now_ms,
            report_restore: rule.restore,
        }
    }

    /// Counts an alarm against the rate limit; true when it must be suppressed.
    fn rate_limited(rule: &Rule, mem: &mut SensorMemory, now_ms: i64) -> bool {
        if rule.rate_limit_per_min == 0 {
            return false;
        }
        while mem
            .recent_ms
            .front()
            .is_some_and(|t| now_ms.saturating_sub(*t) >= 60_000)
        {
            mem.recent_ms.pop_front();
        }
        if mem.recent_ms.len() >= rule.rate_limit_per_min as usize {
            return true;
        }
        mem.recent_ms.push_back(now_ms);
        false
    }

    fn transition(
        &mut self,
        rule: &Rule,
        mem: &mut SensorMemory,
        c: Condition,
        on: bool,
        now_ms: i64,
        out: &mut Output,
    ) {
        let kind = EventKind::from(c);
        let door = mem.kind == SensorKind::Door && c == Condition::Intrusion;
        if on {
            mem.active.insert(c);
            if door {
                mem.open_since_ms = Some(now_ms);
            }
            if Self::rate_limited(rule, mem, now_ms) {
                mem.suppressed.insert(c);
                out.suppressed.push(Suppressed {
                    sensor: rule.sensor.clone(),
                    kind,
                    phase: Phase::Alarm,
                    reason: "rate_limit",
                });
            } else {
                let a = self.alarm(rule, mem, kind, Phase::Alarm, now_ms);
                out.alarms.push(a);
            }
        } else {
            mem.active.remove(&c);
            if door {
                mem.open_since_ms = None;
                if mem.prop_active {
                    mem.prop_active = false;
                    if mem.prop_suppressed {
                        mem.prop_suppressed = false;
                    } else {
                        let a = self.alarm(rule, mem, EventKind::DoorProp, Phase::Restore, now_ms);
                        out.alarms.push(a);
                    }
                }
            }
            if mem.suppressed.remove(&c) {
                out.suppressed.push(Suppressed {
                    sensor: rule.sensor.clone(),
                    kind,
                    phase: Phase::Restore,
                    reason: "alarm_was_rate_limited",
                });
            } else {
                let a = self.alarm(rule, mem, kind, Phase::Restore, now_ms);
                out.alarms.push(a);
            }
        }
    }

    fn raise_prop(&mut self, rule: &Rule, mem: &mut SensorMemory, now_ms: i64, out: &mut Output) {
        mem.prop_active = true;
        if Self::rate_limited(rule, mem, now_ms) {
            mem.prop_suppressed = true;
            out.suppressed.push(Suppressed {
                sensor: rule.sensor.clone(),
                kind: EventKind::DoorProp,
                phase: Phase::Alarm,
                reason: "rate_limit",
            });
        } else {
            let a = self.alarm(rule, mem, EventKind::DoorProp, Phase::Alarm, now_ms);
            out.alarms.push(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use watchpost_yolink::{Reading, read};

    fn rule(sensor: &str) -> Rule {
        Rule {
            sensor: sensor.into(),
            name: None,
            conditions: None,
            restore: true,
            door_prop_ms: 0,
            debounce_ms: 0,
            rate_limit_per_min: 0,
        }
    }

    fn door(state: &str, reminder: bool) -> Reading {
        let data = serde_json::json!({"state": state, "alertType": if reminder {"openRemind"} else {"normal"}, "battery": 4});
        read(SensorKind::Door, data.as_object().unwrap())
    }

    fn kinds(o: &Output) -> Vec<(EventKind, Phase)> {
        o.alarms.iter().map(|a| (a.kind, a.phase)).collect()
    }

    #[test]
    fn open_raises_close_restores_repeats_do_nothing() {
        let mut e = Engine::new(vec![rule("d1")], EngineState::default());
        let mut s = Sensor::new("d1", "Front door", "DoorSensor", None);
        s.apply(&door("open", false), 1000, 1);
        let o = e.on_sensor(&s, false, 1000);
        assert_eq!(kinds(&o), vec![(EventKind::Intrusion, Phase::Alarm)]);
        assert_eq!(o.alarms[0].sensor_name, "Front door");
        assert!(e.on_sensor(&s, false, 1500).alarms.is_empty());
        s.apply(&door("closed", false), 2000, 1);
        assert_eq!(
            kinds(&e.on_sensor(&s, false, 2000)),
            vec![(EventKind::Intrusion, Phase::Restore)]
        );
        // Unmapped sensors produce nothing.
        let other = Sensor::new("zz", "x", "DoorSensor", None);
        assert_eq!(e.on_sensor(&other, false, 1), Output::default());
        assert!(!e.state().sensors.contains_key("zz"));
    }

    #[test]
    fn tamper_is_its_own_alarm_and_restore_beside_intrusion() {
        let mut e = Engine::new(vec![rule("m1")], EngineState::default());
        let mut s = Sensor::new("m1", "Hall", "MotionSensor", None);
        let data = serde_json::json!({"state": "alert", "alarmState": {"tamper": true}});
        s.apply(
            &read(SensorKind::Motion, data.as_object().unwrap()),
            1000,
            1,
        );
        assert_eq!(
            kinds(&e.on_sensor(&s, false, 1000)),
            vec![
                (EventKind::Intrusion, Phase::Alarm),
                (EventKind::Tamper, Phase::Alarm)
            ]
        );
        let data = serde_json::json!({"state": "alert", "alarmState": {"tamper": false}});
        s.apply(
            &read(SensorKind::Motion, data.as_object().unwrap()),
            2000,
            1,
        );
        assert_eq!(
            kinds(&e.on_sensor(&s, false, 2000)),
            vec![(EventKind::Tamper, Phase::Restore)]
        );
    }

    #[test]
    fn only_alarm_conditions_light_the_alarm_indicator() {
        let mut e = Engine::new(vec![rule("m1")], EngineState::default());
        let mut s = Sensor::new("m1", "Hall", "MotionSensor", None);
        let data = serde_json::json!({"state": "normal", "alarmState": {"tamper": true}});
        s.apply(
            &read(SensorKind::Motion, data.as_object().unwrap()),
            1000,
            1,
        );
        e.on_sensor(&s, false, 1000);
        assert!(!e.alarm_active(), "a tamper trouble is not an alarm");
        let data = serde_json::json!({"state": "alert", "alarmState": {"tamper": true}});
        s.apply(
            &read(SensorKind::Motion, data.as_object().unwrap()),
            2000,
            1,
        );
        e.on_sensor(&s, false, 2000);
        assert!(e.alarm_active());
        let data = serde_json::json!({"state": "normal"});
        s.apply(
            &read(SensorKind::Motion, data.as_object().unwrap()),
            3000,
            1,
        );
        e.on_sensor(&s, false, 3000);
        assert!(!e.alarm_active());
    }

    #[test]
    fn state_survives_a_restart() {
        let mut e = Engine::new(vec![rule("d1")], EngineState::default());
        let mut s = Sensor::new("d1", "Door", "DoorSensor", None);
        s.apply(&door("open", false), 1000, 1);
        e.on_sensor(&s, false, 1000);
        let saved = serde_json::to_string(e.state()).unwrap();
        let mut e2 = Engine::new(vec![rule("d1")], serde_json::from_str(&saved).unwrap());
        // The bridge re-publishes the open door after a restart: no second alarm.
        assert!(e2.on_sensor(&s, false, 5000).alarms.is_empty());
        s.apply(&door("closed", false), 6000, 1);
        let o = e2.on_sensor(&s, false, 6000);
        assert_eq!(kinds(&o), vec![(EventKind::Intrusion, Phase::Restore)]);
        assert_eq!(o.alarms[0].id, 2);
    }

    #[test]
    fn door_prop_by_timer_and_by_reminder() {
        let mut r = rule("d1");
        r.door_prop_ms = 30_000;
        let mut e = Engine::new(vec![r], EngineState::default());
        let mut s = Sensor::new("d1", "Door", "DoorSensor", None);
        s.apply(&door("open", false), 0, 1);
        e.on_sensor(&s, false, 0);
        assert_eq!(e.next_due_ms(), Some(30_000));
        assert!(e.tick(29_999).alarms.is_empty());
        assert_eq!(
            kinds(&e.tick(30_000)),
            vec![(EventKind::DoorProp, Phase::Alarm)]
        );
        assert!(e.tick(90_000).alarms.is_empty());
        // The sensor's own reminder does not raise it twice.
        s.apply(&door("open", true), 60_000, 1);
        assert!(e.on_sensor(&s, true, 60_000).alarms.is_empty());
        s.apply(&door("closed", false), 70_000, 1);
        assert_eq!(
            kinds(&e.on_sensor(&s, false, 70_000)),
            vec![
                (EventKind::DoorProp, Phase::Restore),
                (EventKind::Intrusion, Phase::Restore)
            ]
        );
        assert_eq!(e.next_due_ms(), None);

        // Without an own timer, the reminder raises it.
        let mut e = Engine::new(vec![rule("d2")], EngineState::default());
        let mut s = Sensor::new("d2", "Door", "DoorSensor", None);
        s.apply(&door("open", false), 0, 1);
        e.on_sensor(&s, false, 0);
        assert!(e.tick(1_000_000).alarms.is_empty());
        s.apply(&door("open", true), 1_000_000, 1);
        assert_eq!(
            kinds(&e.on_sensor(&s, true, 1_000_000)),
            vec![(EventKind::DoorProp, Phase::Alarm)]
        );
    }

    #[test]
    fn debounce_swallows_short_flips() {
        let mut r = rule("d1");
        r.debounce_ms = 500;
        let mut e = Engine::new(vec![r], EngineState::default());
        let mut s = Sensor::new("d1", "Door", "DoorSensor", None);
        s.apply(&door("open", false), 0, 1);
        assert!(e.on_sensor(&s, false, 0).alarms.is_empty());
        s.apply(&door("closed", false), 200, 1);
        assert!(e.on_sensor(&s, false, 200).alarms.is_empty());
        assert!(e.tick(600).alarms.is_empty());
        s.apply(&door("open", false), 1000, 1);
        e.on_sensor(&s, false, 1000);
        assert_eq!(e.next_due_ms(), Some(1500));
        assert_eq!(
            kinds(&e.tick(1500)),
            vec![(EventKind::Intrusion, Phase::Alarm)]
        );
    }

    #[test]
    fn rate_limit_suppresses_alarm_and_its_restore() {
        let mut r = rule("m1");
        r.rate_limit_per_min = 2;
        let mut e = Engine::new(vec![r], EngineState::default());
        let mut s = Sensor::new("m1", "Hall", "MotionSensor", None);
        let motion = |st: &str| {
            read(
                SensorKind::Motion,
                serde_json::json!({"state": st}).as_object().unwrap(),
            )
        };
        let mut sent = 0;
        let mut suppressed = 0;
        for i in 0..5 {
            s.apply(&motion("alert"), i * 1000, 1);
            let o = e.on_sensor(&s, false, i * 1000);
            sent += o.alarms.len();
            suppressed += o.suppressed.len();
            s.apply(&motion("normal"), i * 1000 + 500, 1);
            let o = e.on_sensor(&s, false, i * 1000 + 500);
            sent += o.alarms.len();
            suppressed += o.suppressed.len();
        }
        assert_eq!((sent, suppressed), (4, 6));
        // A minute later the window has room again.
        s.apply(&motion("alert"), 70_000, 1);
        assert_eq!(e.on_sensor(&s, false, 70_000).alarms.len(), 1);
    }

    #[test]
    fn a_sensor_never_read_only_goes_offline() {
        let mut e = Engine::new(vec![rule("d1")], EngineState::default());
        let mut s = Sensor::new("d1", "Door", "DoorSensor", None);
        s.apply(&door("open", false), 0, 1);
        e.on_sensor(&s, false, 0);
        // The bridge restarted and never read the door; it only knows it is silent.
        let mut fresh = Sensor::new("d1", "Door", "DoorSensor", None);
        fresh.check_online(100, 10, 0);
        assert_eq!(
            kinds(&e.on_sensor(&fresh, false, 100)),
            vec![(EventKind::Offline, Phase::Alarm)]
        );
        assert!(
            e.state().sensors["d1"]
                .active
                .contains(&Condition::Intrusion)
        );
    }

    #[test]
    fn troubles_and_condition_lists() {
        let mut r = rule("l1");
        r.conditions = Some([Condition::Water].into());
        let mut e = Engine::new(vec![r, rule("l2")], EngineState::default());
        let data = serde_json::json!({"state": "alert", "battery": 0});
        let reading = read(SensorKind::Leak, data.as_object().unwrap());
        let mut a = Sensor::new("l1", "Sink", "LeakSensor", None);
        a.apply(&reading, 0, 1);
        assert_eq!(
            kinds(&e.on_sensor(&a, false, 0)),
            vec![(EventKind::Water, Phase::Alarm)]
        );
        let mut b = Sensor::new("l2", "Bath", "LeakSensor", None);
        b.apply(&reading, 0, 1);
        assert_eq!(
            kinds(&e.on_sensor(&b, false, 0)),
            vec![
                (EventKind::Water, Phase::Alarm),
                (EventKind::LowBattery, Phase::Alarm)
            ]
        );
        b.online = false;
        b.conditions.insert(Condition::Offline);
        assert_eq!(
            kinds(&e.on_sensor(&b, false, 1)),
            vec![(EventKind::Offline, Phase::Alarm)]
        );
        assert_eq!(b.state, SensorState::Alert);
    }
}
