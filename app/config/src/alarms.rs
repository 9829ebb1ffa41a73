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

use serde::{Deserialize, Serialize};

use crate::bridge::HttpUrl;
use crate::types::{Endpoint, Ident, Secret};
use crate::{Problem, problem};

/// Sensor conditions alarm rules act on (the names the `watchpost-yolink` sensor model uses).
pub const CONDITIONS: &[&str] = &[
    "intrusion",
    "water",
    "smoke",
    "carbon_monoxide",
    "heat",
    "high_temperature",
    "freeze",
    "high_humidity",
    "low_humidity",
    "low_battery",
    "fault",
    "tamper",
    "offline",
];

/// Alarm event names that can carry their own codes: the conditions plus the door-prop alarm
/// and the test report.
pub const EVENTS: &[&str] = &[
    "intrusion",
    "water",
    "smoke",
    "carbon_monoxide",
    "heat",
    "high_temperature",
    "freeze",
    "high_humidity",
    "low_humidity",
    "low_battery",
    "fault",
    "tamper",
    "offline",
    "door_prop",
    "test",
];

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

/// One alarm receiver.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
    /// In the `ri` modifier (what Home Assistant keys on).
    Ri,
    /// After the event code.
    Zone,
    /// Both.
    #[default]
    Both,
}

/// Codes for one event, overriding the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EventCodes {
    /// Contact ID event code (3 digits), sent with qualifier 1 (new) or 3 (restore).
    pub cid: Option<u16>,
    /// SIA event code for the alarm.
    pub sia: Option<String>,
    /// SIA event code for the restore.
    pub sia_restore: Option<String>,
}

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
    /// Per-event code overrides, keyed by event name ([`EVENTS`]).
    #[serde(default)]
    pub codes: BTreeMap<String, EventCodes>,
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
    pub body: BTreeMap<String, String>,
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
    /// Conditions that raise an alarm ([`CONDITIONS`]); absent: every condition the sensor
    /// kind can have, including low battery, fault and offline.
    #[serde(default)]
    pub conditions: Option<Vec<String>>,
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
fn default_chekt_body() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("target_channel".to_string(), "{channel}".to_string()),
        ("event_description".to_string(), "{description}".to_string()),
    ])
}

fn is_hex(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_sia_code(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
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
            for (event, codes) in &s.codes {
                let ck = format!("{key}.codes.{event}");
                if !EVENTS.contains(&event.as_str()) {
                    p.push(problem(
                        &ck,
                        format!("unknown event (known: {})", EVENTS.join(", ")),
                    ));
                }
                if codes.cid.is_some_and(|c| c > 999) {
                    p.push(problem(&format!("{ck}.cid"), "must be 0..=999"));
                }
                for (name, code) in [("sia", &codes.sia), ("sia_restore", &codes.sia_restore)] {
                    if code.as_deref().is_some_and(|c| !is_sia_code(c)) {
                        p.push(problem(
                            &format!("{ck}.{name}"),
                            "must be two upper-case letters",
                        ));
                    }
                }
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
    for c in m.conditions.iter().flatten() {
        if !CONDITIONS.contains(&c.as_str()) {
            p.push(problem(
                &format!("{key}.conditions"),
                format!("unknown condition `{c}` (known: {})", CONDITIONS.join(", ")),
            ));
        }
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
        codes = { water = { cid = 113 } }
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
        assert_eq!(c.body["target_channel"], "{channel}");
        assert_eq!(a.receivers[2].kind(), "relay");
    }

    #[test]
    fn reports_each_problem_with_its_key() {
        let bad = GOOD
            .replace("account = \"AAA\"", "account = \"XY\"")
            .replace("cid = 113", "cid = 1130")
            .replace("zone = 15", "zone = 1500")
            .replace("channel = 3", "channel = 0")
            .replace("fallback_relay = \"relays\"", "fallback_relay = \"nope\"");
        let a: AlarmsConfig = toml::from_str(&bad).unwrap();
        let mut p = vec![];
        a.validate(&mut p);
        let keys: Vec<&str> = p.iter().map(|x| x.key.as_str()).collect();
        for k in [
            "alarms.receivers[0].account",
            "alarms.receivers[0].codes.water.cid",
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
