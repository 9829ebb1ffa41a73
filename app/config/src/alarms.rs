//! `[alarms]`: alarm rules (per-sensor mappings to receivers), receivers (SIA DC-09, CHEKT,
//! relays) and delivery queues, run by the hub. The REST API manages the same types.
//!
//! ```toml
//! [alarms]
//! enabled = true
//!
//! [[alarms.receivers]]
//! type = "sia"
//! id = "central"
//! host = "cms.example.net:12300"
//! account = "1234"
//!
//! [[alarms.mappings]]
//! sensor = "d88b4c0100000001"        # YoLink deviceId
//! routes = [{ receiver = "central", zone = 15 }]
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::bridge::HttpUrl;
use crate::types::{Endpoint, Ident, Secret, string_newtype_serde};
use crate::{Problem, problem};

/// A sensor condition alarm rules act on (the names the `watchpost-yolink` sensor model uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmCondition {
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
    Tamper,
    Offline,
}

impl AlarmCondition {
    pub const ALL: [AlarmCondition; 13] = [
        AlarmCondition::Intrusion,
        AlarmCondition::Water,
        AlarmCondition::Smoke,
        AlarmCondition::CarbonMonoxide,
        AlarmCondition::Heat,
        AlarmCondition::HighTemperature,
        AlarmCondition::Freeze,
        AlarmCondition::HighHumidity,
        AlarmCondition::LowHumidity,
        AlarmCondition::LowBattery,
        AlarmCondition::Fault,
        AlarmCondition::Tamper,
        AlarmCondition::Offline,
    ];

    /// The name written in the configuration.
    pub fn as_str(self) -> &'static str {
        AlarmEvent::from(self).as_str()
    }
}

/// An alarm event that can carry its own codes (`codes.<event>` of a SIA receiver): the
/// conditions plus the door-prop alarm and the test report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmEvent {
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
    Tamper,
    Offline,
    DoorProp,
    Test,
}

impl AlarmEvent {
    pub const ALL: [AlarmEvent; 15] = [
        AlarmEvent::Intrusion,
        AlarmEvent::Water,
        AlarmEvent::Smoke,
        AlarmEvent::CarbonMonoxide,
        AlarmEvent::Heat,
        AlarmEvent::HighTemperature,
        AlarmEvent::Freeze,
        AlarmEvent::HighHumidity,
        AlarmEvent::LowHumidity,
        AlarmEvent::LowBattery,
        AlarmEvent::Fault,
        AlarmEvent::Tamper,
        AlarmEvent::Offline,
        AlarmEvent::DoorProp,
        AlarmEvent::Test,
    ];

    /// The name written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmEvent::Intrusion => "intrusion",
            AlarmEvent::Water => "water",
            AlarmEvent::Smoke => "smoke",
            AlarmEvent::CarbonMonoxide => "carbon_monoxide",
            AlarmEvent::Heat => "heat",
            AlarmEvent::HighTemperature => "high_temperature",
            AlarmEvent::Freeze => "freeze",
            AlarmEvent::HighHumidity => "high_humidity",
            AlarmEvent::LowHumidity => "low_humidity",
            AlarmEvent::LowBattery => "low_battery",
            AlarmEvent::Fault => "fault",
            AlarmEvent::Tamper => "tamper",
            AlarmEvent::Offline => "offline",
            AlarmEvent::DoorProp => "door_prop",
            AlarmEvent::Test => "test",
        }
    }
}

impl From<AlarmCondition> for AlarmEvent {
    fn from(c: AlarmCondition) -> Self {
        match c {
            AlarmCondition::Intrusion => AlarmEvent::Intrusion,
            AlarmCondition::Water => AlarmEvent::Water,
            AlarmCondition::Smoke => AlarmEvent::Smoke,
            AlarmCondition::CarbonMonoxide => AlarmEvent::CarbonMonoxide,
            AlarmCondition::Heat => AlarmEvent::Heat,
            AlarmCondition::HighTemperature => AlarmEvent::HighTemperature,
            AlarmCondition::Freeze => AlarmEvent::Freeze,
            AlarmCondition::HighHumidity => AlarmEvent::HighHumidity,
            AlarmCondition::LowHumidity => AlarmEvent::LowHumidity,
            AlarmCondition::LowBattery => AlarmEvent::LowBattery,
            AlarmCondition::Fault => AlarmEvent::Fault,
            AlarmCondition::Tamper => AlarmEvent::Tamper,
            AlarmCondition::Offline => AlarmEvent::Offline,
        }
    }
}

/// What happens when a receiver's delivery queue is full. Both are visible: counted in
/// metrics and the queue status, and recorded as events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OverflowPolicy {
    /// Keep what is queued and refuse the new alarm.
    #[default]
    RejectNew,
    /// Drop the oldest queued alarm to make room.
    DropOldest,
}

/// The `[alarms]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlarmsConfig {
    pub enabled: bool,
    /// Alarms each receiver's queue holds while the receiver is unreachable.
    pub queue_capacity: u32,
    pub overflow: OverflowPolicy,
    /// Door-prop alarm after a door stays open this long (0: only on the sensor's own
    /// "still open" reminder). A mapping can override it.
    pub door_prop_s: u64,
    /// A state must hold this long before it counts (0: act at once).
    pub debounce_ms: u64,
    /// Most alarms per sensor per minute (0: no limit); the excess is recorded, not sent.
    pub rate_limit_per_min: u32,
    pub receivers: Vec<ReceiverConfig>,
    pub mappings: Vec<MappingConfig>,
}

impl Default for AlarmsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            queue_capacity: 10_000,
            overflow: OverflowPolicy::RejectNew,
            door_prop_s: 0,
            debounce_ms: 0,
            rate_limit_per_min: 30,
            receivers: Vec::new(),
            mappings: Vec::new(),
        }
    }
}

/// One alarm receiver: a table whose `type` names the kind (see the [`Deserialize`] impl).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReceiverConfig {
    Sia(SiaReceiver),
    Chekt(ChektReceiver),
    Relay(RelayReceiver),
}

impl ReceiverConfig {
    pub fn id(&self) -> &Ident {
        match self {
            ReceiverConfig::Sia(r) => &r.id,
            ReceiverConfig::Chekt(r) => &r.id,
            ReceiverConfig::Relay(r) => &r.id,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ReceiverConfig::Sia(_) => "sia",
            ReceiverConfig::Chekt(_) => "chekt",
            ReceiverConfig::Relay(_) => "relay",
        }
    }
}

/// The `type` of a receiver table.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ReceiverType {
    Sia,
    Chekt,
    Relay,
}

impl ReceiverType {
    fn read<'de, D: Deserializer<'de>>(self, d: D) -> Result<ReceiverConfig, D::Error> {
        Ok(match self {
            ReceiverType::Sia => ReceiverConfig::Sia(SiaReceiver::deserialize(d)?),
            ReceiverType::Chekt => ReceiverConfig::Chekt(ChektReceiver::deserialize(d)?),
            ReceiverType::Relay => ReceiverConfig::Relay(RelayReceiver::deserialize(d)?),
        })
    }
}

/// Reads a receiver as serde's internally tagged enums would, except that when `type` is the
/// table's first key (as the examples write it) the rest of the table is read straight into
/// the receiver's type. Serde's own tagged enums first copy the table, which loses where each
/// value stands: a bad `codes.<event>` or `host` would be reported at the table's header
/// line, without its key. Tables whose `type` comes later (JSON objects from the REST API)
/// are still copied first.
impl<'de> Deserialize<'de> for ReceiverConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ReceiverVisitor)
    }
}

struct ReceiverVisitor;

impl<'de> Visitor<'de> for ReceiverVisitor {
    type Value = ReceiverConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a receiver table with type = \"sia\", \"chekt\" or \"relay\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ReceiverConfig, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Err(de::Error::missing_field("type"));
        };
        if first == "type" {
            let kind: ReceiverType = map.next_value()?;
            return kind.read(MapAccessDeserializer::new(map));
        }
        let mut table = serde_json::Map::new();
        table.insert(first, map.next_value()?);
        while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
            table.insert(k, v);
        }
        let kind = table
            .remove("type")
            .ok_or_else(|| de::Error::missing_field("type"))?;
        let kind = ReceiverType::deserialize(kind).map_err(de::Error::custom)?;
        kind.read(serde_json::Value::Object(table))
            .map_err(de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SiaTransport {
    #[default]
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SiaFormat {
    /// SIA DC-03 events (`SIA-DCS`).
    #[default]
    SiaDcs,
    /// Ademco Contact ID (`ADM-CID`).
    AdmCid,
}

/// How the AES key is written (receivers differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KeyFormat {
    /// 32, 48 or 64 hex digits decoded to bytes (most panels and receivers).
    #[default]
    Hex,
    /// 16, 24 or 32 characters used as they are (pysiaalarm, Home Assistant).
    Ascii,
}

/// Where the zone goes in a SIA-DCS event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ZonePlacement {
    /// In the `ri` modifier, in place of the partition (what Home Assistant keys on).
    Ri,
    /// SIA convention: the partition in `ri`, the zone after the event code (`Nri1/BA15`).
    #[default]
    Zone,
    /// The zone in both places (the partition is not sent).
    Both,
}

/// Codes for one event, overriding the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EventCodes {
    /// Contact ID event code (3 digits), sent with qualifier 1 (new) or 3 (restore).
    pub cid: Option<ContactIdCode>,
    /// SIA event code for the alarm.
    pub sia: Option<SiaEventCode>,
    /// SIA event code for the restore.
    pub sia_restore: Option<SiaEventCode>,
}

/// A Contact ID event code, `0..=999`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ContactIdCode(u16);

impl ContactIdCode {
    /// `None` above 999.
    pub fn new(code: u16) -> Option<Self> {
        (code <= 999).then_some(Self(code))
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl<'de> Deserialize<'de> for ContactIdCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = u64::deserialize(d)?;
        u16::try_from(code).ok().and_then(Self::new).ok_or_else(|| {
            serde::de::Error::custom(format!("{code} is not a Contact ID event code (0..=999)"))
        })
    }
}

/// A SIA event code: two upper-case letters (`BA`, `WH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SiaEventCode([u8; 2]);

impl SiaEventCode {
    /// The two letters.
    pub fn bytes(self) -> [u8; 2] {
        self.0
    }
}

impl FromStr for SiaEventCode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.as_bytes() {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Ok(Self([*a, *b])),
            _ => Err(format!(
                "`{s}` is not a SIA event code (two upper-case letters)"
            )),
        }
    }
}

impl fmt::Display for SiaEventCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", char::from(self.0[0]), char::from(self.0[1]))
    }
}
string_newtype_serde!(SiaEventCode);

/// A SIA DC-09 receiver (central station or pysiaalarm / Home Assistant).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SiaReceiver {
    pub id: Ident,
    pub host: Endpoint,
    /// Used when the primary fails.
    #[serde(default)]
    pub backup: Option<Endpoint>,
    #[serde(default)]
    pub transport: SiaTransport,
    #[serde(default)]
    pub format: SiaFormat,
    /// 3 to 16 hex digits.
    pub account: String,
    /// Receiver number (`R…`, 1–6 hex digits); `0` unless given.
    #[serde(default = "default_receiver_number")]
    pub receiver_number: Option<String>,
    /// Account prefix / line (`L…`, 1–6 hex digits).
    #[serde(default = "default_line")]
    pub line: String,
    #[serde(default)]
    pub key: Option<Secret>,
    #[serde(default)]
    pub key_format: KeyFormat,
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout_ms: u64,
    /// Attempts on one endpoint before trying the other.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial_ms: u64,
    #[serde(default = "default_backoff_max")]
    pub backoff_max_ms: u64,
    /// NULL supervision message interval (0: off).
    #[serde(default)]
    pub supervision_s: u64,
    #[serde(default)]
    pub zone_placement: ZonePlacement,
    /// Partition (Contact ID group; SIA `ri` when the zone is not placed there).
    #[serde(default = "default_partition")]
    pub partition: u8,
    /// Per-event code overrides, keyed by event name.
    #[serde(default)]
    pub codes: BTreeMap<AlarmEvent, EventCodes>,
}

/// How a CHEKT bridge is authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ChektAuth {
    /// HTTP Basic with user `apikey` and the token as password.
    #[default]
    ApiKey,
    Bearer,
    None,
}

/// A CHEKT bridge's local HTTP event API.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChektReceiver {
    pub id: Ident,
    /// Full URL of the event endpoint, e.g. `http://192.168.1.20:30003/api/v1/events`.
    pub url: HttpUrl,
    #[serde(default)]
    pub auth: ChektAuth,
    #[serde(default)]
    pub token: Option<Secret>,
    /// JSON body fields; values are templates with `{channel}`, `{description}`, `{sensor}`,
    /// `{sensor_name}`, `{event}`, `{kind}` (alarm/restore/test) and `{time}`. Numbers stay
    /// strings.
    #[serde(default = "default_chekt_body")]
    pub body: BTreeMap<String, BodyTemplate>,
    #[serde(default = "default_http_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial_ms: u64,
    #[serde(default = "default_backoff_max")]
    pub backoff_max_ms: u64,
    /// Also send restores (the bridge's local API has no restore notion; off by default).
    #[serde(default)]
    pub send_restores: bool,
    /// A relay receiver wired to the bridge's inputs, used when HTTP fails this many times in a
    /// row (the vendor-documented way to trip a CHEKT zone).
    #[serde(default)]
    pub fallback_relay: Option<Ident>,
    #[serde(default = "default_fallback_after")]
    pub fallback_after_failures: u32,
}

/// A value a CHEKT body template can insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyField {
    /// The route's CHEKT channel.
    Channel,
    /// `<sensor name>: <event text>`.
    Description,
    /// The YoLink deviceId.
    Sensor,
    SensorName,
    /// The event name (`intrusion`, `door_prop`, …).
    Event,
    /// `alarm`, `restore` or `test`.
    Kind,
    /// Milliseconds since the Unix epoch.
    Time,
}

impl BodyField {
    pub const ALL: [BodyField; 7] = [
        BodyField::Channel,
        BodyField::Description,
        BodyField::Sensor,
        BodyField::SensorName,
        BodyField::Event,
        BodyField::Kind,
        BodyField::Time,
    ];

    /// The name written between braces.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyField::Channel => "channel",
            BodyField::Description => "description",
            BodyField::Sensor => "sensor",
            BodyField::SensorName => "sensor_name",
            BodyField::Event => "event",
            BodyField::Kind => "kind",
            BodyField::Time => "time",
        }
    }
}

/// One piece of a [`BodyTemplate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Text(String),
    Field(BodyField),
}

/// The value of one CHEKT body field: text with `{name}` placeholders ([`BodyField`]). A
/// `{name}` (lower-case letters and `_`) that names no placeholder is rejected, so a typo such
/// as `{chanel}` is not sent as it is; other braces are text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyTemplate(Vec<TemplatePart>);

impl BodyTemplate {
    /// A template that is just `field`.
    pub fn field(field: BodyField) -> Self {
        Self(vec![TemplatePart::Field(field)])
    }

    pub fn parts(&self) -> &[TemplatePart] {
        &self.0
    }
}

impl FromStr for BodyTemplate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let name = after.find('}').map(|close| &after[..close]).filter(|n| {
                !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            });
            let Some(name) = name else {
                text.push_str(&rest[..=open]);
                rest = after;
                continue;
            };
            let field = BodyField::ALL
                .into_iter()
                .find(|f| f.as_str() == name)
                .ok_or_else(|| {
                    let known: Vec<String> = BodyField::ALL
                        .iter()
                        .map(|f| format!("{{{}}}", f.as_str()))
                        .collect();
                    format!(
                        "`{{{name}}}` is not a placeholder (known: {})",
                        known.join(", ")
                    )
                })?;
            text.push_str(&rest[..open]);
            if !text.is_empty() {
                parts.push(TemplatePart::Text(std::mem::take(&mut text)));
            }
            parts.push(TemplatePart::Field(field));
            rest = &after[name.len() + 1..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(TemplatePart::Text(text));
        }
        Ok(Self(parts))
    }
}

impl fmt::Display for BodyTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            match p {
                TemplatePart::Text(t) => f.write_str(t)?,
                TemplatePart::Field(x) => write!(f, "{{{}}}", x.as_str())?,
            }
        }
        Ok(())
    }
}
string_newtype_serde!(BodyTemplate);

/// Relay outputs of the fieldbus worker (commands on
/// `<prefix>/relay/<module>/channel/<output>/set`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelayReceiver {
    pub id: Ident,
    /// The fieldbus relay module (`[[fieldbus.relays]] name`).
    pub module: Ident,
    /// Default pulse length.
    #[serde(default = "default_pulse")]
    pub pulse_ms: u64,
    /// How long to wait for the fieldbus worker's confirmation.
    #[serde(default = "default_relay_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial_ms: u64,
    #[serde(default = "default_backoff_max")]
    pub backoff_max_ms: u64,
}

/// Relay behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RelayMode {
    /// On for the pulse length on each alarm.
    #[default]
    Pulse,
    /// On while the condition lasts, off on restore.
    Follow,
}

/// Rules for one sensor.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// YoLink deviceId.
    pub sensor: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Conditions that raise an alarm; absent: every condition the sensor kind can have,
    /// including low battery, fault and offline.
    #[serde(default)]
    pub conditions: Option<Vec<AlarmCondition>>,
    /// Send restores when a condition clears.
    #[serde(default = "default_true")]
    pub restore: bool,
    #[serde(default)]
    pub door_prop_s: Option<u64>,
    #[serde(default)]
    pub debounce_ms: Option<u64>,
    #[serde(default)]
    pub rate_limit_per_min: Option<u32>,
    pub routes: Vec<RouteConfig>,
}

/// One receiver of a sensor's alarms, with the receiver-specific identity.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub receiver: Ident,
    /// SIA/Contact ID zone (0–999).
    #[serde(default)]
    pub zone: Option<u16>,
    /// CHEKT channel (1-based).
    #[serde(default)]
    pub channel: Option<u16>,
    /// Relay output: the channel name of the relay module (`[[fieldbus.relays.channels]]
    /// name`).
    #[serde(default)]
    pub output: Option<Ident>,
    /// Relay mode.
    #[serde(default)]
    pub mode: Option<RelayMode>,
    /// Relay pulse length (default: the receiver's).
    #[serde(default)]
    pub pulse_ms: Option<u64>,
    /// CHEKT: output of the fallback relay receiver wired to this channel's bridge input.
    #[serde(default)]
    pub fallback_output: Option<Ident>,
}

fn default_receiver_number() -> Option<String> {
    Some("0".into())
}
fn default_line() -> String {
    "0".into()
}
fn default_ack_timeout() -> u64 {
    10_000
}
fn default_attempts() -> u32 {
    3
}
fn default_backoff_initial() -> u64 {
    1000
}
fn default_backoff_max() -> u64 {
    60_000
}
fn default_partition() -> u8 {
    1
}
fn default_http_timeout() -> u64 {
    5000
}
fn default_fallback_after() -> u32 {
    3
}
fn default_pulse() -> u64 {
    1000
}
fn default_relay_timeout() -> u64 {
    3000
}
fn default_true() -> bool {
    true
}
fn default_chekt_body() -> BTreeMap<String, BodyTemplate> {
    BTreeMap::from([
        (
            "target_channel".to_string(),
            BodyTemplate::field(BodyField::Channel),
        ),
        (
            "event_description".to_string(),
            BodyTemplate::field(BodyField::Description),
        ),
    ])
}

fn is_hex(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks one receiver; `key` is its dotted key.
pub fn validate_receiver(r: &ReceiverConfig, key: &str, p: &mut Vec<Problem>) {
    match r {
        ReceiverConfig::Sia(s) => {
            if !is_hex(&s.account, 3, 16) {
                p.push(problem(
                    &format!("{key}.account"),
                    "must be 3 to 16 hex digits",
                ));
            }
            if let Some(n) = &s.receiver_number
                && !is_hex(n, 1, 6)
            {
                p.push(problem(
                    &format!("{key}.receiver_number"),
                    "must be 1 to 6 hex digits",
                ));
            }
            if !is_hex(&s.line, 1, 6) {
                p.push(problem(&format!("{key}.line"), "must be 1 to 6 hex digits"));
            }
            if let Some(k) = &s.key {
                let k = k.expose();
                let ok = match s.key_format {
                    KeyFormat::Hex => matches!(k.len(), 32 | 48 | 64) && is_hex(k, 32, 64),
                    KeyFormat::Ascii => {
                        matches!(k.len(), 16 | 24 | 32)
                            && k.bytes().all(|b| (0x21..=0x7e).contains(&b))
                    }
                };
                if !ok {
                    p.push(problem(
                        &format!("{key}.key"),
                        match s.key_format {
                            KeyFormat::Hex => {
                                "a hex key has 32, 48 or 64 hex digits (AES-128/192/256)"
                            }
                            KeyFormat::Ascii => {
                                "an ASCII key has 16, 24 or 32 printable characters"
                            }
                        },
                    ));
                }
            }
            if s.ack_timeout_ms == 0 {
                p.push(problem(
                    &format!("{key}.ack_timeout_ms"),
                    "must be greater than 0",
                ));
            }
            if s.attempts == 0 {
                p.push(problem(&format!("{key}.attempts"), "must be at least 1"));
            }
            if s.backoff_initial_ms == 0 || s.backoff_max_ms < s.backoff_initial_ms {
                p.push(problem(
                    &format!("{key}.backoff_max_ms"),
                    "backoff_initial_ms must be > 0 and backoff_max_ms at least backoff_initial_ms",
                ));
            }
            if s.partition > 99 {
                p.push(problem(&format!("{key}.partition"), "must be 0..=99"));
            }
        }
        ReceiverConfig::Chekt(c) => {
            if c.auth != ChektAuth::None && c.token.is_none() {
                p.push(problem(
                    &format!("{key}.token"),
                    "needed unless auth = \"none\"",
                ));
            }
            if c.timeout_ms == 0 {
                p.push(problem(
                    &format!("{key}.timeout_ms"),
                    "must be greater than 0",
                ));
            }
            if c.backoff_initial_ms == 0 || c.backoff_max_ms < c.backoff_initial_ms {
                p.push(problem(
                    &format!("{key}.backoff_max_ms"),
                    "backoff_initial_ms must be > 0 and backoff_max_ms at least backoff_initial_ms",
                ));
            }
            if c.body.is_empty() {
                p.push(problem(
                    &format!("{key}.body"),
                    "must have at least one field",
                ));
            }
        }
        ReceiverConfig::Relay(r) => {
            if r.pulse_ms == 0 || r.pulse_ms > 600_000 {
                p.push(problem(&format!("{key}.pulse_ms"), "must be 1..=600000"));
            }
            if r.timeout_ms == 0 {
                p.push(problem(
                    &format!("{key}.timeout_ms"),
                    "must be greater than 0",
                ));
            }
            if r.backoff_initial_ms == 0 || r.backoff_max_ms < r.backoff_initial_ms {
                p.push(problem(
                    &format!("{key}.backoff_max_ms"),
                    "backoff_initial_ms must be > 0 and backoff_max_ms at least backoff_initial_ms",
                ));
            }
        }
    }
}

/// Checks one mapping against the receivers it routes to; `key` is its dotted key.
pub fn validate_mapping(
    m: &MappingConfig,
    receivers: &[ReceiverConfig],
    key: &str,
    p: &mut Vec<Problem>,
) {
    if m.sensor.is_empty() || m.sensor.len() > 128 || m.sensor.contains(['/', '+', '#']) {
        p.push(problem(
            &format!("{key}.sensor"),
            "must be a YoLink deviceId (1–128 characters, no / + #)",
        ));
    }
    if m.routes.is_empty() {
        p.push(problem(
            &format!("{key}.routes"),
            "needs at least one route",
        ));
    }
    let mut seen = HashSet::new();
    for (i, r) in m.routes.iter().enumerate() {
        let rk = format!("{key}.routes[{i}]");
        if !seen.insert(r.receiver.as_str()) {
            p.push(problem(&format!("{rk}.receiver"), "receiver listed twice"));
        }
        let Some(rec) = receivers.iter().find(|x| x.id() == &r.receiver) else {
            p.push(problem(
                &format!("{rk}.receiver"),
                format!("no receiver `{}`", r.receiver),
            ));
            continue;
        };
        match rec {
            ReceiverConfig::Sia(_) => match r.zone {
                None => p.push(problem(&format!("{rk}.zone"), "a SIA route needs a zone")),
                Some(z) if z > 999 => p.push(problem(&format!("{rk}.zone"), "must be 0..=999")),
                _ => {}
            },
            ReceiverConfig::Chekt(c) => {
                if r.channel.is_none_or(|ch| ch == 0) {
                    p.push(problem(
                        &format!("{rk}.channel"),
                        "a CHEKT route needs a channel ≥ 1",
                    ));
                }
                if r.fallback_output.is_some() && c.fallback_relay.is_none() {
                    p.push(problem(
                        &format!("{rk}.fallback_output"),
                        format!("receiver `{}` has no fallback_relay", c.id),
                    ));
                }
            }
            ReceiverConfig::Relay(_) => {
                if r.output.is_none() {
                    p.push(problem(
                        &format!("{rk}.output"),
                        "a relay route needs an output (the relay channel name)",
                    ));
                }
                if r.pulse_ms.is_some_and(|ms| ms == 0 || ms > 600_000) {
                    p.push(problem(&format!("{rk}.pulse_ms"), "must be 1..=600000"));
                }
            }
        }
    }
}

impl AlarmsConfig {
    /// Cross-key checks.
    pub fn validate(&self, p: &mut Vec<Problem>) {
        if self.queue_capacity == 0 {
            p.push(problem("alarms.queue_capacity", "must be at least 1"));
        }
        let mut ids = HashSet::new();
        for (i, r) in self.receivers.iter().enumerate() {
            let key = format!("alarms.receivers[{i}]");
            if !ids.insert(r.id().as_str()) {
                p.push(problem(
                    &format!("{key}.id"),
                    format!("duplicate receiver `{}`", r.id()),
                ));
            }
            validate_receiver(r, &key, p);
            if let ReceiverConfig::Chekt(c) = r
                && let Some(f) = &c.fallback_relay
                && !self
                    .receivers
                    .iter()
                    .any(|x| matches!(x, ReceiverConfig::Relay(rr) if &rr.id == f))
            {
                p.push(problem(
                    &format!("{key}.fallback_relay"),
                    format!("no relay receiver `{f}`"),
                ));
            }
        }
        let mut sensors = HashSet::new();
        for (i, m) in self.mappings.iter().enumerate() {
            let key = format!("alarms.mappings[{i}]");
            if !sensors.insert(m.sensor.as_str()) {
                p.push(problem(
                    &format!("{key}.sensor"),
                    format!("sensor `{}` is mapped twice", m.sensor),
                ));
            }
            validate_mapping(m, &self.receivers, &key, p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        enabled = true
        [[receivers]]
        type = "sia"
        id = "central"
        host = "127.0.0.1:12300"
        account = "AAA"
        key = "0123456789ABCDEF"
        key_format = "ascii"
        codes = { water = { cid = 113 }, door_prop = { sia = "BA", sia_restore = "BH" } }
        [[receivers]]
        type = "chekt"
        id = "chekt"
        url = "http://127.0.0.1:30003/api/v1/events"
        token = "t"
        fallback_relay = "relays"
        [[receivers]]
        type = "relay"
        id = "relays"
        module = "board"
        [[mappings]]
        sensor = "d1"
        conditions = ["intrusion", "low_battery"]
        routes = [{ receiver = "central", zone = 15 }, { receiver = "chekt", channel = 3 },
                  { receiver = "relays", output = "siren", mode = "pulse" }]
    "#;

    #[test]
    fn parses_and_validates() {
        let a: AlarmsConfig = toml::from_str(GOOD).unwrap();
        let mut p = vec![];
        a.validate(&mut p);
        assert!(p.is_empty(), "{p:?}");
        let ReceiverConfig::Chekt(c) = &a.receivers[1] else {
            panic!()
        };
        assert_eq!(c.body["target_channel"].to_string(), "{channel}");
        assert_eq!(a.receivers[2].kind(), "relay");
        let ReceiverConfig::Sia(sia) = &a.receivers[0] else {
            panic!()
        };
        assert_eq!(
            sia.codes[&AlarmEvent::Water].cid.map(ContactIdCode::get),
            Some(113)
        );
        let prop = &sia.codes[&AlarmEvent::DoorProp];
        assert_eq!(prop.sia.map(SiaEventCode::bytes), Some(*b"BA"));
        assert_eq!(
            prop.sia_restore.map(|c| c.to_string()).as_deref(),
            Some("BH")
        );
        assert_eq!(
            a.mappings[0].conditions,
            Some(vec![AlarmCondition::Intrusion, AlarmCondition::LowBattery])
        );
        // The same model through the REST API's JSON: names unchanged both ways.
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["receivers"][0]["codes"]["door_prop"]["sia"], "BA");
        assert_eq!(json["receivers"][0]["codes"]["water"]["cid"], 113);
        assert_eq!(json["mappings"][0]["conditions"][1], "low_battery");
        assert_eq!(serde_json::from_value::<AlarmsConfig>(json).unwrap(), a);
        // And back through TOML (print-default-config and the settings store).
        let text = toml::to_string(&a).unwrap();
        assert_eq!(toml::from_str::<AlarmsConfig>(&text).unwrap(), a);
    }

    fn parse_err(text: &str) -> String {
        toml::from_str::<AlarmsConfig>(text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn chekt_body_templates() {
        let t: BodyTemplate = "zone {channel}: {sensor_name} at {time} {X} {} {"
            .parse()
            .unwrap();
        assert_eq!(
            t.parts(),
            &[
                TemplatePart::Text("zone ".into()),
                TemplatePart::Field(BodyField::Channel),
                TemplatePart::Text(": ".into()),
                TemplatePart::Field(BodyField::SensorName),
                TemplatePart::Text(" at ".into()),
                TemplatePart::Field(BodyField::Time),
                TemplatePart::Text(" {X} {} {".into()),
            ]
        );
        assert!(matches!(
            "{x}".parse::<BodyTemplate>().unwrap_err().as_str(),
            e if e.contains("`{x}` is not a placeholder")
        ));
        assert_eq!(
            t.to_string(),
            "zone {channel}: {sensor_name} at {time} {X} {} {"
        );
        assert_eq!(
            "{\"a\": 1} {1}"
                .parse::<BodyTemplate>()
                .unwrap()
                .to_string(),
            "{\"a\": 1} {1}"
        );
        for f in BodyField::ALL {
            let t: BodyTemplate = format!("{{{}}}", f.as_str()).parse().unwrap();
            assert_eq!(t, BodyTemplate::field(f));
        }
        assert_eq!("".parse::<BodyTemplate>().unwrap().parts(), &[]);
    }

    #[test]
    fn receivers_read_in_any_key_order() {
        let sia =
            "id = \"x\"\nhost = \"h:1\"\naccount = \"123\"\ncodes = { water = { cid = 113 } }\n";
        let first: AlarmsConfig =
            toml::from_str(&format!("[[receivers]]\ntype = \"sia\"\n{sia}")).unwrap();
        let later: AlarmsConfig =
            toml::from_str(&format!("[[receivers]]\n{sia}type = \"sia\"\n")).unwrap();
        assert_eq!(first, later);
        assert_eq!(first.receivers[0].kind(), "sia");
        // JSON objects (the REST API) are read whatever their key order.
        let json = serde_json::to_value(&first.receivers[0]).unwrap();
        assert_eq!(json["type"], "sia");
        let back: ReceiverConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, first.receivers[0]);

        let e = parse_err("[[receivers]]\ntype = \"pager\"\nid = \"x\"\n");
        assert!(e.contains("line 2") && e.contains("`pager`"), "{e}");
        let e = parse_err("[[receivers]]\nid = \"x\"\n");
        assert!(e.contains("missing field `type`"), "{e}");
        let e = parse_err(&format!("[[receivers]]\ntype = \"relay\"\n{sia}"));
        assert!(
            e.contains("line 4") && e.contains("unknown field `host`"),
            "{e}"
        );
        let e = parse_err(&format!("[[receivers]]\n{sia}type = \"relay\"\n"));
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn conditions_events_and_codes_are_closed_sets() {
        let e = parse_err(&GOOD.replace("\"low_battery\"]", "\"lowbattery\"]"));
        assert!(e.contains("line 23") && e.contains("`lowbattery`"), "{e}");
        let e = parse_err(&GOOD.replace("water = { cid", "flood = { cid"));
        assert!(e.contains("line 10") && e.contains("`flood`"), "{e}");
        let e = parse_err(&GOOD.replace("cid = 113", "cid = 1130"));
        assert!(
            e.contains("line 10") && e.contains("1130 is not a Contact ID event code"),
            "{e}"
        );
        let e = parse_err(&GOOD.replace("sia = \"BA\"", "sia = \"ba\""));
        assert!(
            e.contains("line 10") && e.contains("`ba` is not a SIA event code"),
            "{e}"
        );
        for c in AlarmCondition::ALL {
            let json = serde_json::to_value(c).unwrap();
            assert_eq!(json, c.as_str());
            assert_eq!(serde_json::from_value::<AlarmCondition>(json).unwrap(), c);
        }
        for k in AlarmEvent::ALL {
            let json = serde_json::to_value(k).unwrap();
            assert_eq!(json, k.as_str());
            assert_eq!(serde_json::from_value::<AlarmEvent>(json).unwrap(), k);
        }
        assert!("BAA".parse::<SiaEventCode>().is_err());
        let e = parse_err(&GOOD.replace(
            "token = \"t\"",
            "token = \"t\"\nbody = { ch = \"{chanel}\" }",
        ));
        assert!(
            e.contains("line 16") && e.contains("`{chanel}` is not a placeholder"),
            "{e}"
        );
        assert_eq!(ContactIdCode::new(1000), None);
    }

    #[test]
    fn reports_each_problem_with_its_key() {
        let bad = GOOD
            .replace("account = \"AAA\"", "account = \"XY\"")
            .replace("zone = 15", "zone = 1500")
            .replace("channel = 3", "channel = 0")
            .replace("fallback_relay = \"relays\"", "fallback_relay = \"nope\"");
        let a: AlarmsConfig = toml::from_str(&bad).unwrap();
        let mut p = vec![];
        a.validate(&mut p);
        let keys: Vec<&str> = p.iter().map(|x| x.key.as_str()).collect();
        for k in [
            "alarms.receivers[0].account",
            "alarms.receivers[1].fallback_relay",
            "alarms.mappings[0].routes[0].zone",
            "alarms.mappings[0].routes[1].channel",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        assert!(toml::from_str::<AlarmsConfig>("[[receivers]]\ntype = \"sia\"\nid = \"x\"\nhost = \"h:1\"\naccount = \"123\"\nbogus = 1").is_err());
        let short_key = GOOD.replace("0123456789ABCDEF", "0123");
        let a: AlarmsConfig = toml::from_str(&short_key).unwrap();
        let mut p = vec![];
        a.validate(&mut p);
        assert_eq!(p[0].key, "alarms.receivers[0].key");
    }
}
