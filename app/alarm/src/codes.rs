//! Per-receiver event code tables: which Contact ID and SIA codes an alarm is sent with.
//!
//! Defaults follow the standard code lists: intrusion 130 BA/BH, water 154 WA/WH, smoke 111
//! FA/FH, CO 162 GA/GH, heat 114 KA/KH, high temperature 158 KA/KH, freeze 159 ZA/ZH,
//! humidity and faults 380 UT/UJ, sensor tamper 383 TA/TR, low battery 384 XT/XR, offline
//! 381 US/UR, door held open 130 BA/BH, test 601 RX (a manual test: a person asked for it;
//! 602 RP is the automatic test, which is what receivers such as pysiaalarm make of the NULL
//! link test the supervision sends on its own). Receivers that do not know a code
//! (pysiaalarm maps 154, 383 and 384 to "invalid report"; it knows tamper as 137 or 144) get a
//! per-receiver override table.

use std::collections::BTreeMap;

use watchpost_config::alarms::{AlarmEvent, EventCodes, SiaReceiver, ZonePlacement};
use watchpost_dc09::{ContactId, Payload, Qualifier, SiaCode, SiaEvent};

use crate::event::{EventKind, Phase};

/// The codes of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codes {
    pub cid: u16,
    pub sia: SiaCode,
    pub sia_restore: SiaCode,
}

const fn codes(cid: u16, sia: &[u8; 2], sia_restore: &[u8; 2]) -> Codes {
    Codes {
        cid,
        sia: SiaCode::of(*sia),
        sia_restore: SiaCode::of(*sia_restore),
    }
}

const INTRUSION: Codes = codes(130, b"BA", b"BH");
const WATER: Codes = codes(154, b"WA", b"WH");
const SMOKE: Codes = codes(111, b"FA", b"FH");
const CO: Codes = codes(162, b"GA", b"GH");
const HEAT: Codes = codes(114, b"KA", b"KH");
const HIGH_TEMP: Codes = codes(158, b"KA", b"KH");
const FREEZE: Codes = codes(159, b"ZA", b"ZH");
const TROUBLE: Codes = codes(380, b"UT", b"UJ");
const TAMPER: Codes = codes(383, b"TA", b"TR");
const LOW_BATTERY: Codes = codes(384, b"XT", b"XR");
const OFFLINE: Codes = codes(381, b"US", b"UR");
/// A test asked for by a person (the API's test action): manual test, not 602 RP (automatic).
const TEST: Codes = codes(601, b"RX", b"RX");

/// The default codes of `kind`.
pub fn default_codes(kind: EventKind) -> Codes {
    match kind {
        EventKind::Intrusion | EventKind::DoorProp => INTRUSION,
        EventKind::Water => WATER,
        EventKind::Smoke => SMOKE,
        EventKind::CarbonMonoxide => CO,
        EventKind::Heat => HEAT,
        EventKind::HighTemperature => HIGH_TEMP,
        EventKind::Freeze => FREEZE,
        EventKind::HighHumidity | EventKind::LowHumidity | EventKind::Fault => TROUBLE,
        EventKind::Tamper => TAMPER,
        EventKind::LowBattery => LOW_BATTERY,
        EventKind::Offline => OFFLINE,
        EventKind::Test => TEST,
    }
}

/// A receiver's code table: defaults with its overrides applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeTable(BTreeMap<EventKind, Codes>);

impl CodeTable {
    /// Builds the table: the defaults with the receiver's overrides applied.
    pub fn new(overrides: &BTreeMap<AlarmEvent, EventCodes>) -> Self {
        let mut map: BTreeMap<EventKind, Codes> = EventKind::ALL
            .into_iter()
            .map(|k| (k, default_codes(k)))
            .collect();
        for (&event, o) in overrides {
            let kind = EventKind::from(event);
            let entry = map.entry(kind).or_insert_with(|| default_codes(kind));
            if let Some(cid) = o.cid {
                entry.cid = cid.get();
            }
            if let Some(c) = o.sia {
                entry.sia = SiaCode::of(c.bytes());
            }
            if let Some(c) = o.sia_restore {
                entry.sia_restore = SiaCode::of(c.bytes());
            }
        }
        Self(map)
    }

    pub fn get(&self, kind: EventKind) -> Codes {
        self.0
            .get(&kind)
            .copied()
            .unwrap_or_else(|| default_codes(kind))
    }
}

/// How a SIA receiver wants events laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiaLayout {
    pub contact_id: bool,
    pub zone_placement: ZonePlacement,
    pub partition: u8,
    pub codes: CodeTable,
}

impl SiaLayout {
    pub fn from_config(r: &SiaReceiver) -> Self {
        Self {
            contact_id: r.format == watchpost_config::alarms::SiaFormat::AdmCid,
            zone_placement: r.zone_placement,
            partition: r.partition.min(99),
            codes: CodeTable::new(&r.codes),
        }
    }

    /// The DC-09 payload for `kind`/`phase` on `zone`.
    pub fn payload(&self, kind: EventKind, phase: Phase, zone: u16) -> Payload {
        let codes = self.codes.get(kind);
        let zone = zone.min(999);
        if self.contact_id {
            let q = match phase {
                Phase::Alarm => Qualifier::New,
                Phase::Restore => Qualifier::Restore,
            };
            // All parts are clamped into range above, so this cannot fail; fall back to a
            // test report rather than panic.
            let cid = ContactId::new(q, codes.cid, self.partition, zone)
                .or_else(|_| ContactId::new(q, 602, 0, 0));
            match cid {
                Ok(c) => Payload::ContactId(c),
                Err(_) => Payload::Null,
            }
        } else {
            let code = match phase {
                Phase::Alarm => codes.sia,
                Phase::Restore => codes.sia_restore,
            };
            let (area, zone) = match self.zone_placement {
                ZonePlacement::Ri => (Some(u32::from(zone)), None),
                ZonePlacement::Zone => (Some(u32::from(self.partition)), Some(u32::from(zone))),
                ZonePlacement::Both => (Some(u32::from(zone)), Some(u32::from(zone))),
            };
            Payload::Sia(SiaEvent {
                user: None,
                area,
                code,
                zone,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use watchpost_config::alarms::ContactIdCode;

    #[test]
    fn defaults_and_overrides() {
        let t = CodeTable::new(&BTreeMap::from([(
            AlarmEvent::Water,
            EventCodes {
                cid: ContactIdCode::new(113),
                sia: None,
                sia_restore: Some("WR".parse().unwrap()),
            },
        )]));
        assert_eq!(t.get(EventKind::Water).cid, 113);
        assert_eq!(t.get(EventKind::Water).sia.as_str(), "WA");
        assert_eq!(t.get(EventKind::Water).sia_restore.as_str(), "WR");
        assert_eq!(t.get(EventKind::Smoke).cid, 111);
        let tamper = t.get(EventKind::Tamper);
        assert_eq!(
            (tamper.cid, tamper.sia.as_str(), tamper.sia_restore.as_str()),
            (383, "TA", "TR")
        );
    }

    #[test]
    fn by_default_the_partition_is_the_area_and_the_zone_follows_the_code() {
        let r: SiaReceiver = toml::from_str(
            "id = \"cms\"\nhost = \"127.0.0.1:9\"\naccount = \"AAA\"\npartition = 2",
        )
        .unwrap();
        let l = SiaLayout::from_config(&r);
        let Payload::Sia(e) = l.payload(EventKind::Intrusion, Phase::Alarm, 15) else {
            panic!()
        };
        assert_eq!(e.to_string(), "Nri2/BA15");
        // A manual test is RX / Contact ID 601.
        let Payload::Sia(e) = l.payload(EventKind::Test, Phase::Alarm, 0) else {
            panic!()
        };
        assert_eq!(e.code.as_str(), "RX");
        let cid = SiaLayout {
            contact_id: true,
            ..l
        };
        assert_eq!(
            cid.payload(EventKind::Test, Phase::Alarm, 0),
            Payload::ContactId(ContactId::new(Qualifier::New, 601, 2, 0).unwrap())
        );
    }

    #[test]
    fn payload_layouts() {
        let mut l = SiaLayout {
            contact_id: true,
            zone_placement: ZonePlacement::Both,
            partition: 1,
            codes: CodeTable::new(&BTreeMap::new()),
        };
        assert_eq!(
            l.payload(EventKind::Intrusion, Phase::Restore, 15),
            Payload::ContactId(ContactId::new(Qualifier::Restore, 130, 1, 15).unwrap())
        );
        l.contact_id = false;
        let Payload::Sia(e) = l.payload(EventKind::Intrusion, Phase::Alarm, 15) else {
            panic!()
        };
        assert_eq!(
            (e.area, e.code.as_str(), e.zone),
            (Some(15), "BA", Some(15))
        );
        l.zone_placement = ZonePlacement::Zone;
        let Payload::Sia(e) = l.payload(EventKind::Water, Phase::Restore, 7) else {
            panic!()
        };
        assert_eq!((e.area, e.code.as_str(), e.zone), (Some(1), "WH", Some(7)));
    }
}
