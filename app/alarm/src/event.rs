//! The alarm vocabulary shared by the rules engine, the queues and the senders.

use serde::{Deserialize, Serialize};
use watchpost_config::alarms::{AlarmCondition, AlarmEvent};
use watchpost_yolink::Condition;

/// What an alarm is about. The names are the keys of the per-receiver code tables
/// ([`AlarmEvent`] in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Intrusion,
    Water,
    Smoke,
    CarbonMonoxide,
    Heat,
    HighTemperature,
    Freeze,
    HighHumidity,
    LowHumidity,
    LowBattery,
    Fault,
    /// The sensor's case opened or the sensor removed: an alarm at any time, not a trouble.
    Tamper,
    Offline,
    /// A door left open past its prop time (own timer or the sensor's reminder).
    DoorProp,
    /// A test alarm asked for through the API.
    Test,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Intrusion => "intrusion",
            EventKind::Water => "water",
            EventKind::Smoke => "smoke",
            EventKind::CarbonMonoxide => "carbon_monoxide",
            EventKind::Heat => "heat",
            EventKind::HighTemperature => "high_temperature",
            EventKind::Freeze => "freeze",
            EventKind::HighHumidity => "high_humidity",
            EventKind::LowHumidity => "low_humidity",
            EventKind::LowBattery => "low_battery",
            EventKind::Fault => "fault",
            EventKind::Tamper => "tamper",
            EventKind::Offline => "offline",
            EventKind::DoorProp => "door_prop",
            EventKind::Test => "test",
        }
    }

    pub const ALL: [EventKind; 15] = [
        EventKind::Intrusion,
        EventKind::Water,
        EventKind::Smoke,
        EventKind::CarbonMonoxide,
        EventKind::Heat,
        EventKind::HighTemperature,
        EventKind::Freeze,
        EventKind::HighHumidity,
        EventKind::LowHumidity,
        EventKind::LowBattery,
        EventKind::Fault,
        EventKind::Tamper,
        EventKind::Offline,
        EventKind::DoorProp,
        EventKind::Test,
    ];

    /// Troubles (battery, fault, supervision) as opposed to alarms.
    pub fn is_trouble(self) -> bool {
        matches!(
            self,
            EventKind::LowBattery | EventKind::Fault | EventKind::Offline
        )
    }

    /// Human text for receivers that take free text (CHEKT).
    pub fn describe(self, phase: Phase) -> &'static str {
        use EventKind as K;
        use Phase::{Alarm, Restore};
        match (self, phase) {
            (K::Intrusion, Alarm) => "Intrusion",
            (K::Intrusion, Restore) => "Intrusion restored",
            (K::Water, Alarm) => "Water leak",
            (K::Water, Restore) => "Water leak restored",
            (K::Smoke, Alarm) => "Smoke alarm",
            (K::Smoke, Restore) => "Smoke alarm restored",
            (K::CarbonMonoxide, Alarm) => "Carbon monoxide alarm",
            (K::CarbonMonoxide, Restore) => "Carbon monoxide restored",
            (K::Heat, Alarm) => "Heat alarm",
            (K::Heat, Restore) => "Heat alarm restored",
            (K::HighTemperature, Alarm) => "High temperature",
            (K::HighTemperature, Restore) => "High temperature restored",
            (K::Freeze, Alarm) => "Low temperature",
            (K::Freeze, Restore) => "Low temperature restored",
            (K::HighHumidity, Alarm) => "High humidity",
            (K::HighHumidity, Restore) => "High humidity restored",
            (K::LowHumidity, Alarm) => "Low humidity",
            (K::LowHumidity, Restore) => "Low humidity restored",
            (K::LowBattery, Alarm) => "Low battery",
            (K::LowBattery, Restore) => "Battery restored",
            (K::Fault, Alarm) => "Sensor fault",
            (K::Fault, Restore) => "Sensor fault restored",
            (K::Tamper, Alarm) => "Sensor tamper",
            (K::Tamper, Restore) => "Sensor tamper restored",
            (K::Offline, Alarm) => "Sensor offline",
            (K::Offline, Restore) => "Sensor back online",
            (K::DoorProp, Alarm) => "Door held open",
            (K::DoorProp, Restore) => "Door closed",
            (K::Test, _) => "Test alarm",
        }
    }
}

impl From<Condition> for EventKind {
    fn from(c: Condition) -> Self {
        match c {
            Condition::Intrusion => EventKind::Intrusion,
            Condition::Water => EventKind::Water,
            Condition::Smoke => EventKind::Smoke,
            Condition::CarbonMonoxide => EventKind::CarbonMonoxide,
            Condition::Heat => EventKind::Heat,
            Condition::HighTemperature => EventKind::HighTemperature,
            Condition::Freeze => EventKind::Freeze,
            Condition::HighHumidity => EventKind::HighHumidity,
            Condition::LowHumidity => EventKind::LowHumidity,
            Condition::LowBattery => EventKind::LowBattery,
            Condition::Fault => EventKind::Fault,
            Condition::Tamper => EventKind::Tamper,
            Condition::Offline => EventKind::Offline,
        }
    }
}

impl From<AlarmEvent> for EventKind {
    fn from(e: AlarmEvent) -> Self {
        match e {
            AlarmEvent::Intrusion => EventKind::Intrusion,
            AlarmEvent::Water => EventKind::Water,
            AlarmEvent::Smoke => EventKind::Smoke,
            AlarmEvent::CarbonMonoxide => EventKind::CarbonMonoxide,
            AlarmEvent::Heat => EventKind::Heat,
            AlarmEvent::HighTemperature => EventKind::HighTemperature,
            AlarmEvent::Freeze => EventKind::Freeze,
            AlarmEvent::HighHumidity => EventKind::HighHumidity,
            AlarmEvent::LowHumidity => EventKind::LowHumidity,
            AlarmEvent::LowBattery => EventKind::LowBattery,
            AlarmEvent::Fault => EventKind::Fault,
            AlarmEvent::Tamper => EventKind::Tamper,
            AlarmEvent::Offline => EventKind::Offline,
            AlarmEvent::DoorProp => EventKind::DoorProp,
            AlarmEvent::Test => EventKind::Test,
        }
    }
}

/// The sensor model's condition of a configured one (`conditions = [...]` of a mapping).
pub fn sensor_condition(c: AlarmCondition) -> Condition {
    match c {
        AlarmCondition::Intrusion => Condition::Intrusion,
        AlarmCondition::Water => Condition::Water,
        AlarmCondition::Smoke => Condition::Smoke,
        AlarmCondition::CarbonMonoxide => Condition::CarbonMonoxide,
        AlarmCondition::Heat => Condition::Heat,
        AlarmCondition::HighTemperature => Condition::HighTemperature,
        AlarmCondition::Freeze => Condition::Freeze,
        AlarmCondition::HighHumidity => Condition::HighHumidity,
        AlarmCondition::LowHumidity => Condition::LowHumidity,
        AlarmCondition::LowBattery => Condition::LowBattery,
        AlarmCondition::Fault => Condition::Fault,
        AlarmCondition::Tamper => Condition::Tamper,
        AlarmCondition::Offline => Condition::Offline,
    }
}

/// New condition or its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Alarm,
    Restore,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Alarm => "alarm",
            Phase::Restore => "restore",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_config_and_the_sensor_model() {
        let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        let configured: Vec<&str> = AlarmEvent::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(names, configured);
        for e in AlarmEvent::ALL {
            assert_eq!(EventKind::from(e).as_str(), e.as_str());
        }
        assert_eq!(Condition::ALL.len(), AlarmCondition::ALL.len());
        for c in AlarmCondition::ALL {
            let sensor = sensor_condition(c);
            assert_eq!(sensor.as_str(), c.as_str());
            assert_eq!(
                EventKind::from(sensor),
                EventKind::from(AlarmEvent::from(c))
            );
        }
    }
}
