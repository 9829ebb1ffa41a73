//! Which receivers an alarm goes to, and how each is addressed: the mappings' routes turned
//! into [`Delivery`]s. SIA sequence numbers are taken from the ledger here, before enqueueing.

use std::collections::HashMap;

use watchpost_config::alarms::{MappingConfig, ReceiverConfig, RelayMode, RouteConfig};

use crate::AlarmError;
use crate::delivery::{Delivery, RelayAction, Target};
use crate::engine::Alarm;
use crate::event::{EventKind, Phase};
use crate::handle::TestRequest;
use crate::ledger::Ledger;

/// The routes of every mapped sensor, by receiver position in the ledger.
#[derive(Debug, Default)]
pub struct Routes {
    by_sensor: HashMap<String, Vec<(usize, RouteConfig)>>,
    /// Every route in mapping order (a test alarm's defaults come from the first that uses
    /// its receiver).
    all: Vec<(usize, RouteConfig)>,
}

impl Routes {
    /// The routes of `mappings` to receivers the ledger has (others are left out).
    pub fn new(mappings: &[MappingConfig], ledger: &Ledger) -> Self {
        let mut routes = Self::default();
        for m in mappings {
            let list = routes.by_sensor.entry(m.sensor.clone()).or_default();
            for r in &m.routes {
                if let Some(i) = ledger.slot_of(r.receiver.as_str()) {
                    list.push((i, r.clone()));
                    routes.all.push((i, r.clone()));
                }
            }
        }
        routes
    }

    /// The deliveries of `alarm`, per receiver position.
    pub fn deliveries(&self, alarm: &Alarm, ledger: &mut Ledger) -> Vec<(usize, Delivery)> {
        let mut out = Vec::new();
        let Some(routes) = self.by_sensor.get(&alarm.sensor) else {
            return out;
        };
        for (slot, route) in routes {
            let slot = *slot;
            let target = match ledger.receiver(slot) {
                ReceiverConfig::Sia(_) => {
                    if alarm.phase == Phase::Restore && !alarm.report_restore {
                        continue;
                    }
                    Target::Sia {
                        seq: watchpost_dc09::Seq::from_counter(ledger.next_sia_counter(slot)).get(),
                        zone: route.zone.unwrap_or(0),
                    }
                }
                ReceiverConfig::Chekt(c) => {
                    if alarm.phase == Phase::Restore && !(c.send_restores && alarm.report_restore) {
                        continue;
                    }
                    Target::Chekt {
                        channel: route.channel.unwrap_or(1),
                        fallback_output: route.fallback_output.as_ref().map(ToString::to_string),
                    }
                }
                ReceiverConfig::Relay(r) => {
                    let Some(output) = &route.output else {
                        continue;
                    };
                    let action = match (route.mode.unwrap_or_default(), alarm.phase) {
                        (RelayMode::Pulse, Phase::Alarm) => RelayAction::Pulse {
                            ms: route.pulse_ms.unwrap_or(r.pulse_ms),
                        },
                        (RelayMode::Pulse, Phase::Restore) => continue,
                        (RelayMode::Follow, Phase::Alarm) => RelayAction::On,
                        (RelayMode::Follow, Phase::Restore) => RelayAction::Off,
                    };
                    Target::Relay {
                        output: output.to_string(),
                        action,
                    }
                }
            };
            out.push((
                slot,
                Delivery {
                    alarm_id: alarm.id,
                    sensor: alarm.sensor.clone(),
                    sensor_name: alarm.sensor_name.clone(),
                    kind: alarm.kind,
                    phase: alarm.phase,
                    at_ms: alarm.at_ms,
                    target,
                },
            ));
        }
        out
    }

    /// The delivery of test alarm `alarm` to receiver `slot`: `req` overrides the defaults,
    /// which come from the first route to the receiver.
    pub fn test_delivery(
        &self,
        slot: usize,
        req: &TestRequest,
        alarm: &Alarm,
        ledger: &mut Ledger,
    ) -> Result<Delivery, AlarmError> {
        let first = self.all.iter().find(|(i, _)| *i == slot).map(|(_, r)| r);
        let target = match ledger.receiver(slot) {
            ReceiverConfig::Sia(_) => Target::Sia {
                seq: watchpost_dc09::Seq::from_counter(ledger.next_sia_counter(slot)).get(),
                zone: req.zone.or(first.and_then(|r| r.zone)).unwrap_or(0),
            },
            ReceiverConfig::Chekt(_) => Target::Chekt {
                channel: req.channel.or(first.and_then(|r| r.channel)).unwrap_or(1),
                fallback_output: None,
            },
            ReceiverConfig::Relay(r) => Target::Relay {
                output: req
                    .output
                    .clone()
                    .or(first.and_then(|r| r.output.as_ref().map(ToString::to_string)))
                    .ok_or_else(|| AlarmError::Receiver {
                        receiver: r.id.to_string(),
                        field: "output",
                        reason: "a relay test needs an output".into(),
                    })?,
                action: RelayAction::Pulse { ms: r.pulse_ms },
            },
        };
        Ok(Delivery {
            alarm_id: alarm.id,
            sensor: String::new(),
            sensor_name: "test".into(),
            kind: EventKind::Test,
            phase: Phase::Alarm,
            at_ms: alarm.at_ms,
            target,
        })
    }
}
