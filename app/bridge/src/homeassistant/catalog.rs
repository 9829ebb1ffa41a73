//! What the appliance knows, and the Home Assistant entities it makes of it.
//!
//! The catalog is filled from the bus's retained states (Neasmart entities, relay modules,
//! cameras and their thermal rules, worker statuses) and from the bridge's own sensor list.
//! [`Catalog::entities`] declares every entity once, per area; the discovery loop publishes
//! what changed and removes what went away. State topics are the bus's own retained topics,
//! read by Home Assistant with value templates, so no state is copied; commands come back on
//! `<prefix>/ha/<node>/set/...` ([`super::commands`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use watchpost_yolink::{Sensor, SensorKind};

/// Preset names for a zone state 1..=6 and the global state (as Home Assistant's Neasmart
/// integration names them).
pub const STATE_NAMES: [&str; 6] = [
    "Normal",
    "Reduced",
    "Standby",
    "Time Program",
    "Party",
    "Absence",
];
/// Option names for the global mode 1..=5.
pub const MODE_NAMES: [&str; 5] = [
    "Auto",
    "Heating",
    "Cooling",
    "Forced Heating",
    "Forced Cooling",
];
/// Home Assistant's HVAC mode for each global mode 1..=5 (the zone climates' `modes`).
pub const HVAC_MODES: [&str; 5] = ["auto", "heat", "cool", "heat", "cool"];

/// How the entities are named and where their topics are.
#[derive(Debug, Clone)]
pub struct Naming {
    /// `[a-zA-Z0-9_-]`: unique ids and the discovery topics' node level.
    pub node: String,
    pub discovery_prefix: String,
    /// The bus prefix as Home Assistant's broker sees it.
    pub topic_prefix: String,
    pub object_id_prefix: String,
    pub device_name: String,
    pub configuration_url: Option<String>,
    pub setpoint_min: f64,
    pub setpoint_max: f64,
    pub setpoint_step: f64,
}

impl Naming {
    /// A topic under the HA-visible bus prefix.
    pub fn topic(&self, levels: &[&str]) -> String {
        let mut t = self.topic_prefix.clone();
        for l in levels {
            t.push('/');
            t.push_str(l);
        }
        t
    }

    /// A command topic Home Assistant publishes to: `<prefix>/ha/<node>/set/<levels...>`.
    pub fn command(&self, levels: &[&str]) -> String {
        let mut all = vec!["ha", self.node.as_str(), "set"];
        all.extend_from_slice(levels);
        self.topic(&all)
    }

    fn appliance_id(&self) -> String {
        format!("watchpost_{}", self.node)
    }

    /// The appliance's device block.
    pub fn appliance(&self) -> Value {
        let mut d = json!({
            "identifiers": [self.appliance_id()],
            "name": self.device_name,
            "manufacturer": "Watchpost",
            "model": "Watchpost edge gateway",
            "serial_number": self.node,
            "sw_version": env!("CARGO_PKG_VERSION"),
        });
        if let Some(u) = &self.configuration_url {
            d["configuration_url"] = json!(u);
        }
        d
    }

    /// A device behind the appliance (`via_device`).
    fn child(&self, key: &str, name: String, manufacturer: &str, model: String) -> Value {
        let mut d = json!({
            "identifiers": [format!("{}_{key}", self.appliance_id())],
            "name": name,
            "manufacturer": manufacturer,
            "model": model,
            "via_device": self.appliance_id(),
        });
        if let Some(u) = &self.configuration_url {
            d["configuration_url"] = json!(u);
        }
        d
    }

    fn status(&self, worker: &str) -> Value {
        json!({"topic": self.topic(&["system", worker, "status"])})
    }
}

/// `[a-zA-Z0-9_-]` only, so an id can be part of a unique id and a discovery topic.
pub fn key_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One Home Assistant entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// The MQTT platform (`climate`, `sensor`, ...).
    pub component: &'static str,
    /// Unique within the appliance, `[a-zA-Z0-9_-]`: `zone_1_3`, `sensor_<id>_battery`.
    pub key: String,
    /// The whole discovery payload.
    pub config: Value,
}

/// What one relay module has.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RelayModule {
    pub unit_id: u8,
    /// Channel name → number.
    pub channels: BTreeMap<String, u16>,
}

/// Everything the discovery knows of (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Zones the base station has written: (base, zone).
    pub zones: BTreeSet<(u8, u8)>,
    /// The fieldbus worker publishes the global Neasmart entities.
    pub neasmart: bool,
    pub mixed_groups: BTreeSet<u8>,
    pub dehumidifiers: BTreeSet<u8>,
    pub pumps: BTreeSet<u8>,
    /// YoLink sensors by id (from the bridge itself).
    pub sensors: BTreeMap<String, SensorInfo>,
    pub relays: BTreeMap<String, RelayModule>,
    /// Camera id → name.
    pub cameras: BTreeMap<String, String>,
    /// Camera id → its thermal rules' ids.
    pub thermal_rules: BTreeMap<String, BTreeSet<String>>,
    /// Workers that have a status topic.
    pub workers: BTreeSet<String>,
    /// Alarm receiver id → its type (`sia`, `chekt`, `relay`).
    pub receivers: BTreeMap<String, String>,
    /// The monitor worker's system targets: id → the (metric, item) figures they report.
    pub system_figures: BTreeMap<String, BTreeSet<(String, Option<String>)>>,
}

/// What discovery needs of a sensor.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorInfo {
    pub name: String,
    pub kind: SensorKind,
    pub model: String,
    pub device_type: String,
}

impl From<&Sensor> for SensorInfo {
    fn from(s: &Sensor) -> Self {
        Self {
            name: s.name.clone(),
            kind: s.kind,
            model: s.model.clone().unwrap_or_default(),
            device_type: s.device_type.clone(),
        }
    }
}

#[derive(Deserialize)]
struct Active {
    #[serde(default)]
    active: bool,
}

#[derive(Deserialize)]
struct ModuleMsg {
    unit_id: u8,
    #[serde(default)]
    channels: Vec<ChannelMsg>,
}

#[derive(Deserialize)]
struct ChannelMsg {
    channel: u16,
    name: String,
}

#[derive(Deserialize)]
struct CameraMsg {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct TargetMsg {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    figures: Vec<FigureMsg>,
}

#[derive(Deserialize)]
struct FigureMsg {
    metric: String,
    #[serde(default)]
    item: Option<String>,
}

/// A figure's item as a key part: `/` is `root`, `/data` is `data`, `thermal_zone0` stays.
fn item_key(item: &str) -> String {
    match item.trim_matches('/') {
        "" => "root".into(),
        i => key_part(i),
    }
}

/// The appliance's health figures shown in Home Assistant (of the monitor's `system`
/// targets): metric, name, unit, device class.
const HEALTH: [(&str, &str, &str, Option<&str>); 7] = [
    ("cpu_percent", "CPU", "%", None),
    ("memory_used_percent", "Memory used", "%", None),
    ("load1", "Load (1 min)", "", None),
    ("disk_used_percent", "Disk used", "%", None),
    (
        "temperature_celsius",
        "Temperature",
        "°C",
        Some("temperature"),
    ),
    ("uptime_seconds", "Uptime", "s", Some("duration")),
    ("card_life_used_percent", "SD card life used", "%", None),
];

#[derive(Deserialize)]
struct ReceiverMsg {
    #[serde(rename = "type", default)]
    kind: String,
}

#[derive(Deserialize)]
struct ThermalMsg {
    #[serde(default)]
    rules: Vec<RuleMsg>,
}

#[derive(Deserialize)]
struct RuleMsg {
    id: String,
}

fn insert_if<T: Ord>(set: &mut BTreeSet<T>, item: T, present: bool) -> bool {
    if present {
        set.insert(item)
    } else {
        set.remove(&item)
    }
}

impl Catalog {
    /// Applies one retained bus message (`levels` below the bus prefix; an empty payload is a
    /// cleared topic). Returns whether anything discovery shows changed. Payloads that do not
    /// decode change nothing.
    pub fn apply(&mut self, levels: &[&str], payload: &[u8]) -> bool {
        let clear = payload.is_empty();
        let active = || {
            !clear
                && serde_json::from_slice::<Active>(payload)
                    .map(|a| a.active)
                    .unwrap_or(false)
        };
        let num = |s: &str| s.parse::<u8>().ok();
        match levels {
            ["neasmart", "zone", b, z] => match (num(b), num(z)) {
                (Some(b), Some(z)) => insert_if(&mut self.zones, (b, z), active()),
                _ => false,
            },
            ["neasmart", "global"] => {
                let was = self.neasmart;
                self.neasmart = !clear;
                was != self.neasmart
            }
            ["neasmart", "mixedgroup", g] => num(g)
                .map(|g| insert_if(&mut self.mixed_groups, g, active()))
                .unwrap_or(false),
            ["neasmart", "dehumidifier", d] => num(d)
                .map(|d| insert_if(&mut self.dehumidifiers, d, active()))
                .unwrap_or(false),
            ["neasmart", "pump", p] => num(p)
                .map(|p| insert_if(&mut self.pumps, p, active()))
                .unwrap_or(false),
            ["relay", module, "status"] => {
                if clear {
                    return self.relays.remove(*module).is_some();
                }
                let Ok(m) = serde_json::from_slice::<ModuleMsg>(payload) else {
                    return false;
                };
                let r = RelayModule {
                    unit_id: m.unit_id,
                    channels: m
                        .channels
                        .into_iter()
                        .map(|c| (c.name, c.channel))
                        .collect(),
                };
                self.relays.insert(module.to_string(), r.clone()) != Some(r)
            }
            ["capture", "camera", id, "status"] => {
                if clear {
                    return self.cameras.remove(*id).is_some();
                }
                let Ok(m) = serde_json::from_slice::<CameraMsg>(payload) else {
                    return false;
                };
                let name = if m.name.is_empty() {
                    id.to_string()
                } else {
                    m.name
                };
                self.cameras.insert(id.to_string(), name.clone()) != Some(name)
            }
            ["capture", "camera", id, "thermal"] => {
                if clear {
                    return self.thermal_rules.remove(*id).is_some();
                }
                let Ok(m) = serde_json::from_slice::<ThermalMsg>(payload) else {
                    return false;
                };
                let rules: BTreeSet<String> = m.rules.into_iter().map(|r| r.id).collect();
                self.thermal_rules.insert(id.to_string(), rules.clone()) != Some(rules)
            }
            ["alarms", "receiver", id, "status"] => {
                if clear {
                    return self.receivers.remove(*id).is_some();
                }
                let Ok(m) = serde_json::from_slice::<ReceiverMsg>(payload) else {
                    return false;
                };
                self.receivers.insert(id.to_string(), m.kind.clone()) != Some(m.kind)
            }
            ["monitor", "target", id] => {
                if clear {
                    return self.system_figures.remove(*id).is_some();
                }
                let Ok(m) = serde_json::from_slice::<TargetMsg>(payload) else {
                    return false;
                };
                if m.kind != "system" {
                    return false;
                }
                let figures: BTreeSet<(String, Option<String>)> = m
                    .figures
                    .into_iter()
                    .filter(|f| HEALTH.iter().any(|h| h.0 == f.metric))
                    .map(|f| (f.metric, f.item))
                    .collect();
                self.system_figures.insert(id.to_string(), figures.clone()) != Some(figures)
            }
            ["system", worker, "status"] => {
                // A worker that ever ran keeps its entity (offline is a state, not a removal).
                !clear && self.workers.insert(worker.to_string())
            }
            _ => false,
        }
    }

    /// Every entity, in a stable order.
    pub fn entities(&self, n: &Naming) -> Vec<Entity> {
        let mut out = Vec::new();
        self.appliance_entities(n, &mut out);
        self.neasmart_entities(n, &mut out);
        self.sensor_entities(n, &mut out);
        self.relay_entities(n, &mut out);
        self.camera_entities(n, &mut out);
        self.receiver_entities(n, &mut out);
        self.health_entities(n, &mut out);
        out
    }

    fn health_entities(&self, n: &Naming, out: &mut Vec<Entity>) {
        let dev = n.appliance();
        let avail = [n.status("bridge"), n.status("monitor")];
        for (id, figures) in &self.system_figures {
            let t = n.topic(&["monitor", "target", id]);
            for (metric, item) in figures {
                let Some((_, name, unit, class)) = HEALTH.iter().find(|h| h.0 == metric) else {
                    continue;
                };
                let (key, label, select) = match item {
                    Some(i) => (
                        format!("health_{}_{metric}_{}", key_part(id), item_key(i)),
                        format!("{name} {i}"),
                        format!(
                            "selectattr('metric', 'eq', '{metric}') | selectattr('item', 'eq', '{}')",
                            i.replace('\'', "")
                        ),
                    ),
                    None => (
                        format!("health_{}_{metric}", key_part(id)),
                        name.to_string(),
                        format!("selectattr('metric', 'eq', '{metric}')"),
                    ),
                };
                let mut c = json!({
                    "name": label,
                    "state_class": "measurement",
                    "entity_category": "diagnostic",
                    "suggested_display_precision": 1,
                    "state_topic": t,
                    "value_template": format!(
                        "{{{{ (value_json.figures | {select} | map(attribute='value') | list + ['None'])[0] }}}}"
                    ),
                });
                if !unit.is_empty() {
                    c["unit_of_measurement"] = json!(unit);
                }
                if let Some(class) = class {
                    c["device_class"] = json!(class);
                }
                out.push(entity(n, "sensor", key, &dev, &avail, c));
            }
        }
    }

    fn receiver_entities(&self, n: &Naming, out: &mut Vec<Entity>) {
        let avail = [n.status("bridge"), n.status("hub")];
        for (id, kind) in &self.receivers {
            let k = key_part(id);
            let model = match kind.as_str() {
                "sia" => "SIA DC-09 receiver",
                "chekt" => "CHEKT bridge",
                "relay" => "Relay outputs",
                _ => "Alarm receiver",
            };
            let dev = n.child(
                &format!("receiver_{k}"),
                format!("{} alarm receiver {id}", n.device_name),
                "Watchpost",
                model.into(),
            );
            let t = n.topic(&["alarms", "receiver", id, "status"]);
            out.push(entity(
                n,
                "button",
                format!("receiver_{k}_test"),
                &dev,
                &avail,
                json!({
                    "name": "Test alarm",
                    "icon": "mdi:alarm-light-outline",
                    "command_topic": n.command(&["receiver", id, "test"]),
                    "payload_press": "PRESS",
                }),
            ));
            out.push(entity(
                n,
                "binary_sensor",
                format!("receiver_{k}_link"),
                &dev,
                &avail,
                json!({
                    "name": "Link",
                    "device_class": "connectivity",
                    "state_topic": t,
                    "value_template": "{{ 'ON' if value_json.link_up else 'OFF' }}",
                    "json_attributes_topic": t,
                    "json_attributes_template": "{{ {'state': value_json.state, 'last_error': value_json.last_error} | tojson }}",
                }),
            ));
            out.push(entity(
                n,
                "sensor",
                format!("receiver_{k}_queued"),
                &dev,
                &avail,
                json!({
                    "name": "Alarms queued",
                    "icon": "mdi:tray-full",
                    "state_class": "measurement",
                    "unit_of_measurement": "alarms",
                    "state_topic": t,
                    "value_template": "{{ value_json.queued }}",
                }),
            ));
        }
    }

    fn appliance_entities(&self, n: &Naming, out: &mut Vec<Entity>) {
        let dev = n.appliance();
        let avail = [n.status("bridge")];
        for w in &self.workers {
            let k = key_part(w);
            out.push(entity(
                n,
                "binary_sensor",
                format!("worker_{k}"),
                &dev,
                &avail,
                json!({
                    "name": format!("Worker {w}"),
                    "device_class": "running",
                    "entity_category": "diagnostic",
                    "state_topic": n.topic(&["system", w, "status"]),
                    "payload_on": "online",
                    "payload_off": "offline",
                }),
            ));
        }
        out.push(entity(
            n,
            "sensor",
            "command_error".into(),
            &dev,
            &avail,
            json!({
                "name": "Last command error",
                "entity_category": "diagnostic",
                "icon": "mdi:alert-circle-outline",
                "state_topic": n.topic(&["ha", &n.node, "error"]),
                "value_template": "{{ value_json.message[:250] }}",
                "json_attributes_topic": n.topic(&["ha", &n.node, "error"]),
            }),
        ));
    }

    fn neasmart_entities(&self, n: &Naming, out: &mut Vec<Entity>) {
        let avail = [n.status("bridge"), n.status("fieldbus")];
        let system = n.child(
            "neasmart",
            format!("{} heating", n.device_name),
            "Rehau",
            "Neasmart 2.0 system".into(),
        );
        let global = n.topic(&["neasmart", "global"]);
        let mode_map = mapping(1, &MODE_NAMES);
        let state_map = mapping(1, &STATE_NAMES);
        let hvac_map = mapping(1, &HVAC_MODES);
        let bases: BTreeSet<u8> = self.zones.iter().map(|(b, _)| *b).collect();
        let base_devices: BTreeMap<u8, Value> = bases
            .iter()
            .map(|b| {
                (
                    *b,
                    n.child(
                        &format!("neasmart_base_{b}"),
                        format!("{} Neasmart base {b}", n.device_name),
                        "Rehau",
                        "Neasmart 2.0 base station".into(),
                    ),
                )
            })
            .collect();
        for (b, z) in &self.zones {
            let zt = n.topic(&["neasmart", "zone", &b.to_string(), &z.to_string()]);
            let (bs, zs) = (b.to_string(), z.to_string());
            out.push(entity(
                n,
                "climate",
                format!("zone_{b}_{z}"),
                &base_devices[b],
                &avail,
                json!({
                    "name": format!("Zone {b}.{z}"),
                    "temperature_unit": "C",
                    "precision": 0.1,
                    "min_temp": n.setpoint_min,
                    "max_temp": n.setpoint_max,
                    "temp_step": n.setpoint_step,
                    "current_temperature_topic": zt,
                    "current_temperature_template": "{{ value_json.temperature }}",
                    "current_humidity_topic": zt,
                    "current_humidity_template":
                        "{{ value_json.relative_humidity if value_json.relative_humidity else 'None' }}",
                    "temperature_state_topic": zt,
                    "temperature_state_template": "{{ value_json.setpoint }}",
                    "temperature_command_topic": n.command(&["zone", &bs, &zs, "setpoint"]),
                    "modes": ["auto", "heat", "cool"],
                    "mode_state_topic": global,
                    "mode_state_template": format!("{{{{ {hvac_map}.get(value_json.mode, 'auto') }}}}"),
                    "mode_command_topic": n.command(&["neasmart", "hvac_mode"]),
                    "preset_modes": STATE_NAMES,
                    "preset_mode_state_topic": zt,
                    "preset_mode_value_template": format!("{{{{ {state_map}.get(value_json.state, 'None') }}}}"),
                    "preset_mode_command_topic": n.command(&["zone", &bs, &zs, "preset"]),
                }),
            ));
        }
        if !self.neasmart {
            return;
        }
        out.push(entity(
            n,
            "select",
            "neasmart_mode".into(),
            &system,
            &avail,
            json!({
                "name": "Operating mode",
                "icon": "mdi:sun-snowflake-variant",
                "options": MODE_NAMES,
                "state_topic": global,
                "value_template": format!("{{{{ {mode_map}.get(value_json.mode, 'None') }}}}"),
                "command_topic": n.command(&["neasmart", "mode"]),
            }),
        ));
        out.push(entity(
            n,
            "select",
            "neasmart_state".into(),
            &system,
            &avail,
            json!({
                "name": "Operating state",
                "icon": "mdi:home-thermometer",
                "options": STATE_NAMES,
                "state_topic": global,
                "value_template": format!("{{{{ {state_map}.get(value_json.state, 'None') }}}}"),
                "command_topic": n.command(&["neasmart", "state"]),
            }),
        ));
        let outside = n.topic(&["neasmart", "outside"]);
        for (key, name, field) in [
            (
                "outside_temperature",
                "Outside temperature",
                "outside_temperature",
            ),
            (
                "filtered_outside_temperature",
                "Filtered outside temperature",
                "filtered_outside_temperature",
            ),
        ] {
            out.push(entity(
                n,
                "sensor",
                format!("neasmart_{key}"),
                &system,
                &avail,
                temperature(name, &outside, field),
            ));
        }
        let notes = n.topic(&["neasmart", "notifications"]);
        for (key, name, field) in [
            ("hints", "Hints", "hints_present"),
            ("warnings", "Warnings", "warnings_present"),
            ("errors", "Errors", "error_present"),
        ] {
            out.push(entity(
                n,
                "binary_sensor",
                format!("neasmart_{key}"),
                &system,
                &avail,
                json!({
                    "name": name,
                    "device_class": "problem",
                    "state_topic": notes,
                    "value_template": format!("{{{{ 'ON' if value_json.{field} else 'OFF' }}}}"),
                }),
            ));
        }
        for g in &self.mixed_groups {
            let t = n.topic(&["neasmart", "mixedgroup", &g.to_string()]);
            for (key, name, field) in [
                ("flow", "flow temperature", "flow_temperature"),
                ("return", "return temperature", "return_temperature"),
            ] {
                out.push(entity(
                    n,
                    "sensor",
                    format!("mixed_group_{g}_{key}"),
                    &system,
                    &avail,
                    temperature(&format!("Mixed group {g} {name}"), &t, field),
                ));
            }
            out.push(entity(
                n,
                "sensor",
                format!("mixed_group_{g}_valve"),
                &system,
                &avail,
                json!({
                    "name": format!("Mixed group {g} valve opening"),
                    "unit_of_measurement": "%",
                    "state_class": "measurement",
                    "icon": "mdi:valve",
                    "state_topic": t,
                    "value_template": "{{ value_json.mixing_valve_opening_percentage }}",
                }),
            ));
            out.push(running(
                n,
                format!("mixed_group_{g}_pump"),
                &system,
                &avail,
                &format!("Mixed group {g} pump"),
                &t,
                "pump_state",
            ));
        }
        for d in &self.dehumidifiers {
            let t = n.topic(&["neasmart", "dehumidifier", &d.to_string()]);
            out.push(running(
                n,
                format!("dehumidifier_{d}"),
                &system,
                &avail,
                &format!("Dehumidifier {d}"),
                &t,
                "dehumidifier_state",
            ));
        }
        for p in &self.pumps {
            let t = n.topic(&["neasmart", "pump", &p.to_string()]);
            out.push(running(
                n,
                format!("pump_{p}"),
                &system,
                &avail,
                &format!("Pump {p}"),
                &t,
                "pump_state",
            ));
        }
    }

    fn sensor_entities(&self, n: &Naming, out: &mut Vec<Entity>) {
        for (id, s) in &self.sensors {
            let k = key_part(id);
            let level = crate::topic_level(id);
            let t = n.topic(&["sensors", &level, "state"]);
            let model = if s.model.is_empty() {
                s.device_type.clone()
            } else {
                format!("{} ({})", s.model, s.device_type)
            };
            let dev = n.child(&format!("yolink_{k}"), s.name.clone(), "YoLink", model);
            // Available while the bridge runs and the sensor is online.
            let avail = [
                n.status("bridge"),
                json!({"topic": t, "value_template": "{{ 'online' if value_json.online else 'offline' }}"}),
            ];
            let class = match s.kind {
                SensorKind::Door => Some("door"),
                SensorKind::Motion => Some("motion"),
                SensorKind::Leak => Some("moisture"),
                SensorKind::Vibration => Some("vibration"),
                SensorKind::CoSmoke => Some("smoke"),
                SensorKind::Th | SensorKind::Other => None,
            };
            if let Some(class) = class {
                out.push(entity(
                    n,
                    "binary_sensor",
                    format!("sensor_{k}"),
                    &dev,
                    &avail,
                    json!({
                        "name": null,
                        "device_class": class,
                        "state_topic": t,
                        "value_template": "{{ 'ON' if value_json.state in ['open', 'alert'] else 'OFF' }}",
                    }),
                ));
            }
            if s.kind == SensorKind::Th {
                out.push(entity(
                    n,
                    "sensor",
                    format!("sensor_{k}_temperature"),
                    &dev,
                    &avail,
                    temperature("Temperature", &t, "temperature_c"),
                ));
                out.push(entity(
                    n,
                    "sensor",
                    format!("sensor_{k}_humidity"),
                    &dev,
                    &avail,
                    json!({
                        "name": "Humidity",
                        "device_class": "humidity",
                        "unit_of_measurement": "%",
                        "state_class": "measurement",
                        "state_topic": t,
                        "value_template": "{{ value_json.humidity_pct }}",
                    }),
                ));
            }
            out.push(entity(
                n,
                "binary_sensor",
                format!("sensor_{k}_tamper"),
                &dev,
                &avail,
                json!({
                    "name": "Tamper",
                    "device_class": "tamper",
                    "entity_category": "diagnostic",
                    "state_topic": t,
                    "value_template": "{{ 'ON' if 'tamper' in value_json.conditions else 'OFF' }}",
                }),
            ));
            out.push(entity(
                n,
                "sensor",
                format!("sensor_{k}_battery"),
                &dev,
                &avail,
                json!({
                    "name": "Battery",
                    "device_class": "battery",
                    "unit_of_measurement": "%",
                    "state_class": "measurement",
                    "entity_category": "diagnostic",
                    "state_topic": t,
                    "value_template": "{{ value_json.battery * 25 if value_json.battery is not none else 'None' }}",
                }),
            ));
            out.push(entity(
                n,
                "sensor",
                format!("sensor_{k}_signal"),
                &dev,
                &avail,
                json!({
                    "name": "Signal",
                    "device_class": "signal_strength",
                    "unit_of_measurement": "dBm",
                    "state_class": "measurement",
                    "entity_category": "diagnostic",
                    "enabled_by_default": false,
                    "state_topic": t,
                    "value_template": "{{ value_json.signal_dbm }}",
                }),
            ));
        }
    }

    fn relay_entities(&self, n: &Naming, out: &mut Vec<Entity>) {
        let avail = [n.status("bridge"), n.status("fieldbus")];
        for (module, m) in &self.relays {
            let mk = key_part(module);
            let dev = n.child(
                &format!("relay_{mk}"),
                format!("{} relays {module}", n.device_name),
                "Modbus",
                format!("Relay module (unit {})", m.unit_id),
            );
            for (name, number) in &m.channels {
                let ck = key_part(name);
                out.push(entity(
                    n,
                    "switch",
                    format!("relay_{mk}_{ck}"),
                    &dev,
                    &avail,
                    json!({
                        "name": format!("{name} (channel {number})"),
                        "icon": "mdi:electric-switch",
                        "state_topic": n.topic(&["relay", module, "channel", name]),
                        "value_template": "{{ 'ON' if value_json.on else 'OFF' }}",
                        "command_topic": n.command(&["relay", module, name]),
                        "payload_on": "ON",
                        "payload_off": "OFF",
                    }),
                ));
            }
        }
    }

    fn camera_entities(&self, n: &Naming, out: &mut Vec<Entity>) {
        let avail = [n.status("bridge"), n.status("capture")];
        for (id, name) in &self.cameras {
            let k = key_part(id);
            let dev = n.child(
                &format!("camera_{k}"),
                name.clone(),
                "Watchpost",
                "Camera (capture)".into(),
            );
            out.push(entity(
                n,
                "camera",
                format!("camera_{k}"),
                &dev,
                &avail,
                json!({
                    "name": null,
                    "topic": n.topic(&["capture", "camera", id, "snapshot"]),
                }),
            ));
            let status = n.topic(&["capture", "camera", id, "status"]);
            out.push(entity(
                n,
                "binary_sensor",
                format!("camera_{k}_online"),
                &dev,
                &[n.status("bridge")],
                json!({
                    "name": "Online",
                    "device_class": "connectivity",
                    "entity_category": "diagnostic",
                    "state_topic": status,
                    "value_template": "{{ 'ON' if value_json.state == 'online' else 'OFF' }}",
                }),
            ));
            for rule in self.thermal_rules.get(id).into_iter().flatten() {
                let rk = key_part(rule);
                out.push(entity(
                    n,
                    "binary_sensor",
                    format!("camera_{k}_thermal_{rk}"),
                    &dev,
                    &avail,
                    json!({
                        "name": format!("Thermal rule {rule}"),
                        "device_class": "heat",
                        "state_topic": n.topic(&["capture", "camera", id, "thermal"]),
                        "value_template": format!(
                            "{{{{ 'ON' if (value_json.rules | selectattr('id', 'eq', '{}') | map(attribute='state') | first) == 'active' else 'OFF' }}}}",
                            rule.replace('\'', "")
                        ),
                    }),
                ));
            }
        }
    }
}

/// A Jinja dict literal `{1: 'A', 2: 'B', ...}` numbering `names` from `first`.
fn mapping(first: u16, names: &[&str]) -> String {
    let items: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, name)| format!("{}: '{name}'", first + i as u16))
        .collect();
    format!("{{{}}}", items.join(", "))
}

fn temperature(name: &str, topic: &str, field: &str) -> Value {
    json!({
        "name": name,
        "device_class": "temperature",
        "unit_of_measurement": "°C",
        "state_class": "measurement",
        "suggested_display_precision": 1,
        "state_topic": topic,
        "value_template": format!("{{{{ value_json.{field} }}}}"),
    })
}

fn running(
    n: &Naming,
    key: String,
    dev: &Value,
    avail: &[Value],
    name: &str,
    topic: &str,
    field: &str,
) -> Entity {
    entity(
        n,
        "binary_sensor",
        key,
        dev,
        avail,
        json!({
            "name": name,
            "device_class": "running",
            "state_topic": topic,
            "value_template": format!("{{{{ 'ON' if value_json.{field} == 1 else 'OFF' }}}}"),
        }),
    )
}

/// Adds what every entity carries: unique and object ids, device, origin, availability.
fn entity(
    n: &Naming,
    component: &'static str,
    key: String,
    device: &Value,
    availability: &[Value],
    specific: Value,
) -> Entity {
    let mut c: Map<String, Value> = match specific {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    c.insert(
        "unique_id".into(),
        json!(format!("watchpost_{}_{key}", n.node)),
    );
    c.insert(
        "object_id".into(),
        json!(format!("{}_{key}", n.object_id_prefix)),
    );
    c.insert("device".into(), device.clone());
    c.insert(
        "origin".into(),
        json!({"name": "Watchpost", "sw_version": env!("CARGO_PKG_VERSION")}),
    );
    c.insert("availability".into(), Value::Array(availability.to_vec()));
    c.insert("availability_mode".into(), json!("all"));
    c.insert("qos".into(), json!(1));
    Entity {
        component,
        key,
        config: Value::Object(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naming() -> Naming {
        Naming {
            node: "n1".into(),
            discovery_prefix: "homeassistant".into(),
            topic_prefix: "watchpost".into(),
            object_id_prefix: "watchpost".into(),
            device_name: "Cellar".into(),
            configuration_url: Some("https://box.local/".into()),
            setpoint_min: 5.0,
            setpoint_max: 30.0,
            setpoint_step: 0.5,
        }
    }

    #[test]
    fn only_written_zones_become_climates_with_their_limits() {
        let mut c = Catalog::default();
        assert!(c.apply(&["neasmart", "zone", "1", "3"], br#"{"active":true}"#));
        assert!(!c.apply(&["neasmart", "zone", "1", "4"], br#"{"active":false}"#));
        assert!(!c.apply(&["neasmart", "zone", "1", "3"], br#"{"active":true}"#));
        let e = c.entities(&naming());
        let climates: Vec<&Entity> = e.iter().filter(|e| e.component == "climate").collect();
        assert_eq!(climates.len(), 1);
        let z = &climates[0].config;
        assert_eq!(z["unique_id"], "watchpost_n1_zone_1_3");
        assert_eq!(z["object_id"], "watchpost_zone_1_3");
        assert_eq!(z["min_temp"], 5.0);
        assert_eq!(z["temp_step"], 0.5);
        assert_eq!(z["preset_modes"].as_array().map(Vec::len), Some(6));
        assert_eq!(
            z["temperature_command_topic"],
            "watchpost/ha/n1/set/zone/1/3/setpoint"
        );
        assert_eq!(z["device"]["via_device"], "watchpost_n1");
        assert_eq!(z["device"]["configuration_url"], "https://box.local/");
        assert_eq!(
            z["preset_mode_value_template"],
            "{{ {1: 'Normal', 2: 'Reduced', 3: 'Standby', 4: 'Time Program', 5: 'Party', 6: 'Absence'}.get(value_json.state, 'None') }}"
        );
        // The zone goes when it is no longer active.
        assert!(c.apply(&["neasmart", "zone", "1", "3"], br#"{"active":false}"#));
        assert!(
            c.entities(&naming())
                .iter()
                .all(|e| e.component != "climate")
        );
    }

    #[test]
    fn relays_cameras_and_workers_are_declared_from_their_status() {
        let mut c = Catalog::default();
        c.apply(
            &["relay", "siren", "status"],
            br#"{"module":"siren","unit_id":3,"channels":[{"channel":1,"name":"horn"}]}"#,
        );
        c.apply(
            &["capture", "camera", "yard", "status"],
            br#"{"id":"yard","name":"Yard","state":"online"}"#,
        );
        c.apply(&["system", "capture", "status"], b"online");
        let e = c.entities(&naming());
        let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
        for k in [
            "relay_siren_horn",
            "camera_yard",
            "camera_yard_online",
            "worker_capture",
            "command_error",
        ] {
            assert!(keys.contains(&k), "{k} in {keys:?}");
        }
        let sw = e.iter().find(|e| e.key == "relay_siren_horn").unwrap();
        assert_eq!(
            sw.config["command_topic"],
            "watchpost/ha/n1/set/relay/siren/horn"
        );
        // A cleared status removes the module.
        assert!(c.apply(&["relay", "siren", "status"], b""));
        assert!(
            c.entities(&naming())
                .iter()
                .all(|e| e.component != "switch")
        );
    }

    #[test]
    fn the_monitors_system_figures_are_health_sensors_of_the_appliance() {
        let mut c = Catalog::default();
        assert!(c.apply(
            &["monitor", "target", "system"],
            br#"{"kind":"system","figures":[{"metric":"cpu_percent","value":5.0},
                {"metric":"disk_used_percent","item":"/","value":40.0},
                {"metric":"net_rx_errors","item":"eth0","value":0.0}]}"#
        ));
        // A ping target adds nothing.
        assert!(!c.apply(
            &["monitor", "target", "gw"],
            br#"{"kind":"ping","figures":[{"metric":"rtt_avg_ms","value":1.0}]}"#
        ));
        let e = c.entities(&naming());
        let cpu = e
            .iter()
            .find(|e| e.key == "health_system_cpu_percent")
            .unwrap();
        assert_eq!(cpu.config["unit_of_measurement"], "%");
        assert_eq!(cpu.config["device"]["identifiers"][0], "watchpost_n1");
        assert!(
            e.iter()
                .any(|e| e.key == "health_system_disk_used_percent_root")
        );
        assert!(!e.iter().any(|e| e.key.contains("net_rx")));
    }

    #[test]
    fn receivers_get_a_test_button_their_link_and_queue() {
        let mut c = Catalog::default();
        assert!(c.apply(
            &["alarms", "receiver", "cms", "status"],
            br#"{"id":"cms","type":"sia","link_up":true,"queued":0}"#
        ));
        let e = c.entities(&naming());
        let button = e.iter().find(|e| e.key == "receiver_cms_test").unwrap();
        assert_eq!(button.component, "button");
        assert_eq!(
            button.config["command_topic"],
            "watchpost/ha/n1/set/receiver/cms/test"
        );
        assert_eq!(button.config["device"]["model"], "SIA DC-09 receiver");
        assert!(e.iter().any(|e| e.key == "receiver_cms_link"));
        assert!(e.iter().any(|e| e.key == "receiver_cms_queued"));
        assert!(c.apply(&["alarms", "receiver", "cms", "status"], b""));
        assert!(
            c.entities(&naming())
                .iter()
                .all(|e| !e.key.starts_with("receiver_"))
        );
    }

    #[test]
    fn sensors_get_device_classes_battery_and_availability() {
        let mut c = Catalog::default();
        let door = Sensor::new("d/1", "Front door", "DoorSensor", None);
        c.sensors.insert("d/1".into(), SensorInfo::from(&door));
        let e = c.entities(&naming());
        let b = e.iter().find(|e| e.key == "sensor_d_1").unwrap();
        assert_eq!(b.config["device_class"], "door");
        assert_eq!(b.config["state_topic"], "watchpost/sensors/d_1/state");
        assert_eq!(b.config["availability"].as_array().map(Vec::len), Some(2));
        assert!(e.iter().any(|e| e.key == "sensor_d_1_battery"));
    }
}
