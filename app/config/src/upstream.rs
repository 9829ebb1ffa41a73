//! `[[bridge.upstream]]`: MQTT brokers the bridge forwards to (and from).
//!
//! Each upstream is one MQTT connection (3.1.1 or 5, plain or TLS with an optional client
//! certificate, user name and password) with topic mappings in the style of mosquitto's
//! `topic` bridge lines: a `pattern` (an MQTT filter) below a `local_prefix` on the appliance's
//! bus and a `remote_prefix` on the upstream broker, a direction and a QoS. An optional `feed`
//! publishes the sensors' status in the monitoring feed's JSON schema (`docs/bus.md`).
//!
//! ```toml
//! [[bridge.upstream]]
//! name = "monitoring"
//! broker = "mqtt.example.net:8883"
//! mqtt_version = "5"            # or "3.1.1" (the default)
//! username = "site-17"
//! password = "..."
//! queue_capacity = 100000       # QoS 1 messages kept while the broker is unreachable
//! queue_overflow = "drop_oldest" # or "reject_new"
//!
//! [bridge.upstream.tls]
//! ca_file = "/etc/watchpost/upstream-ca.pem"
//! cert_file = "/etc/watchpost/upstream-client.pem"   # client certificate (optional)
//! key_file = "/etc/watchpost/upstream-client.key"
//!
//! [[bridge.upstream.mapping]]
//! pattern = "sensors/+/state"
//! direction = "out"             # "in", "out" or "both"
//! qos = 1
//! local_prefix = "watchpost/"
//! remote_prefix = "sites/17/"
//! retain = "always"             # or "never", "as_received" (the default)
//!
//! [bridge.upstream.feed]
//! topic = "sites/17/feed"
//! full_interval_s = 300
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::types::{Endpoint, Ident, Secret, string_newtype_serde};
use crate::{Problem, problem};

/// One upstream broker.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Names the upstream in logs, metrics (`upstream` label) and its queue in the store.
    pub name: Ident,
    /// `host:port` of the broker.
    pub broker: Endpoint,
    #[serde(default)]
    pub mqtt_version: MqttVersion,
    /// MQTT client id; default `watchpost-<name>`.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// TLS; absent: plain TCP.
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
    #[serde(default = "default_keepalive_s")]
    pub keepalive_s: u64,
    /// Start each connection with a clean session (MQTT 5: clean start and no session
    /// expiry). `false` keeps the broker-side session, so `in` messages sent while the bridge
    /// was away are delivered when it returns.
    #[serde(default = "default_true")]
    pub clean_session: bool,
    /// TCP + TLS + CONNECT/CONNACK must finish within this.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// First wait after a failed or lost connection; doubled per failure up to
    /// `reconnect_max_ms`, each wait with up to ±25 % random jitter.
    #[serde(default = "default_reconnect_initial_ms")]
    pub reconnect_initial_ms: u64,
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// QoS 1 messages sent and not yet acknowledged (MQTT 5: also at most the broker's
    /// receive maximum).
    #[serde(default = "default_inflight")]
    pub inflight: u16,
    /// QoS 1 messages kept in the bridge's store while the broker is unreachable.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: u64,
    #[serde(default)]
    pub queue_overflow: QueueOverflow,
    /// Topic mappings (`[[bridge.upstream.mapping]]`).
    #[serde(default, rename = "mapping")]
    pub mappings: Vec<TopicMapping>,
    /// The monitoring feed (`[bridge.upstream.feed]`); absent: no feed.
    #[serde(default)]
    pub feed: Option<FeedConfig>,
    /// Home Assistant's broker: adds the mappings Home Assistant discovery needs
    /// ([`UpstreamConfig::effective_mappings`]) after the configured ones.
    #[serde(default)]
    pub homeassistant: bool,
}

fn default_true() -> bool {
    true
}
fn default_keepalive_s() -> u64 {
    30
}
fn default_connect_timeout_ms() -> u64 {
    10_000
}
fn default_reconnect_initial_ms() -> u64 {
    1_000
}
fn default_reconnect_max_ms() -> u64 {
    60_000
}
fn default_inflight() -> u16 {
    64
}
fn default_queue_capacity() -> u64 {
    100_000
}
fn default_full_interval_s() -> u64 {
    300
}

/// The bus areas whose retained states Home Assistant's entities read.
const HA_STATE_AREAS: [&str; 7] = [
    "neasmart/#",
    "sensors/+/state",
    "relay/#",
    "capture/camera/#",
    "system/+/status",
    "alarms/receiver/+/status",
    "monitor/target/+",
];

fn mapping(
    pattern: &str,
    direction: Direction,
    qos: Qos,
    prefix: &str,
    retain: RetainPolicy,
) -> Option<TopicMapping> {
    Some(TopicMapping {
        pattern: pattern.parse().ok()?,
        direction,
        qos,
        local_prefix: prefix.parse().ok()?,
        remote_prefix: prefix.parse().ok()?,
        retain,
    })
}

impl UpstreamConfig {
    /// The configured mappings, then, with `homeassistant = true`, those of Home Assistant
    /// discovery: its configs out (QoS 1, retained) and its birth message in; the states its
    /// entities read out, unchanged in name, QoS 0 and always retained (the broker keeps the
    /// latest for Home Assistant's late subscriptions); the command topics
    /// (`<bus_prefix>/ha/+/set/#`) and the last command error.
    pub fn effective_mappings(
        &self,
        bus_prefix: &str,
        discovery_prefix: &str,
    ) -> Vec<TopicMapping> {
        let mut all = self.mappings.clone();
        if !self.homeassistant {
            return all;
        }
        let bus = format!("{bus_prefix}/");
        let disc = format!("{discovery_prefix}/");
        let preset = [
            mapping(
                "+/+/+/config",
                Direction::Out,
                Qos::AtLeastOnce,
                &disc,
                RetainPolicy::Always,
            ),
            mapping(
                "status",
                Direction::In,
                Qos::AtLeastOnce,
                &disc,
                RetainPolicy::AsReceived,
            ),
            mapping(
                "ha/+/set/#",
                Direction::In,
                Qos::AtLeastOnce,
                &bus,
                RetainPolicy::Never,
            ),
            mapping(
                "ha/+/error",
                Direction::Out,
                Qos::AtMostOnce,
                &bus,
                RetainPolicy::Always,
            ),
        ];
        all.extend(preset.into_iter().flatten());
        all.extend(HA_STATE_AREAS.iter().filter_map(|area| {
            mapping(
                area,
                Direction::Out,
                Qos::AtMostOnce,
                &bus,
                RetainPolicy::Always,
            )
        }));
        all
    }

    /// The MQTT client id.
    pub fn client_id(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("watchpost-{}", self.name))
    }
}

/// MQTT protocol version of an upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum MqttVersion {
    #[default]
    #[serde(rename = "3.1.1")]
    V311,
    #[serde(rename = "5")]
    V5,
}

/// What a full offline queue does with the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueOverflow {
    /// Delete the oldest queued message to make room (the newest state wins).
    #[default]
    DropOldest,
    /// Keep what is queued; the new message is dropped.
    RejectNew,
}

/// `[bridge.upstream.tls]`. PEM files; read when the bridge starts.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// CA certificate(s) the broker's certificate must chain to. Absent: the system's trust
    /// store (`/etc/ssl/certs`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (chain) for brokers that require one; needs `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Private key of `cert_file` (PKCS#8, PKCS#1 or SEC1 PEM).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// Which way a mapping forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Upstream → the appliance's bus.
    In,
    /// The appliance's bus → upstream.
    Out,
    Both,
}

impl Direction {
    pub fn is_out(self) -> bool {
        matches!(self, Direction::Out | Direction::Both)
    }
    pub fn is_in(self) -> bool {
        matches!(self, Direction::In | Direction::Both)
    }
}

/// QoS of a mapping or of the feed: 0 (at most once) or 1 (at least once, queued while the
/// broker is unreachable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Qos {
    AtMostOnce,
    #[default]
    AtLeastOnce,
}

impl Qos {
    pub fn level(self) -> u8 {
        match self {
            Qos::AtMostOnce => 0,
            Qos::AtLeastOnce => 1,
        }
    }
}

impl<'de> Deserialize<'de> for Qos {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u8::deserialize(d)? {
            0 => Ok(Qos::AtMostOnce),
            1 => Ok(Qos::AtLeastOnce),
            n => Err(serde::de::Error::custom(format!(
                "QoS {n} is not supported here (0 or 1)"
            ))),
        }
    }
}

impl Serialize for Qos {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.level())
    }
}

/// An MQTT topic filter (`+` and `#` as whole levels, `#` last), 1–1024 bytes, no NUL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicFilter(String);

impl TopicFilter {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for TopicFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 1024 || s.contains('\0') {
            return Err(format!("`{s}` must be 1 to 1024 bytes long, without NUL"));
        }
        let levels: Vec<&str> = s.split('/').collect();
        for (i, level) in levels.iter().enumerate() {
            let wild = level.contains(['+', '#']);
            if wild && *level != "+" && *level != "#" {
                return Err(format!("`{s}`: `+` and `#` must be whole topic levels"));
            }
            if *level == "#" && i + 1 != levels.len() {
                return Err(format!("`{s}`: `#` must be the last level"));
            }
        }
        Ok(Self(s.to_string()))
    }
}

impl std::fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

string_newtype_serde!(TopicFilter);

/// A topic prefix: empty, or topic levels without wildcards (normally ending in `/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TopicPrefix(String);

impl TopicPrefix {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for TopicPrefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > 512 || s.contains(['+', '#', '\0']) {
            return Err(format!(
                "`{s}` must be at most 512 bytes without `+`, `#` or NUL"
            ));
        }
        Ok(Self(s.to_string()))
    }
}

impl std::fmt::Display for TopicPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

string_newtype_serde!(TopicPrefix);

/// `[[bridge.upstream.mapping]]`: a local topic `<local_prefix><t>` (on the appliance's bus)
/// is the remote topic `<remote_prefix><t>` (on the upstream broker), for every `t` matching
/// `pattern`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopicMapping {
    pub pattern: TopicFilter,
    pub direction: Direction,
    /// QoS of the forwarded messages: on the upstream broker for `out`, of the upstream
    /// subscription for `in` (the appliance's bus is always QoS 1).
    #[serde(default)]
    pub qos: Qos,
    #[serde(default)]
    pub local_prefix: TopicPrefix,
    #[serde(default)]
    pub remote_prefix: TopicPrefix,
    /// The retain flag of forwarded messages.
    #[serde(default)]
    pub retain: RetainPolicy,
}

/// The retain flag a mapping gives the messages it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetainPolicy {
    /// As the message arrived. MQTT 3.1.1 brokers (the appliance's bus among them) set it only
    /// on the retained messages a new subscription receives, not on live ones.
    #[default]
    AsReceived,
    /// Always retained: the broker keeps the last message of each topic (states).
    Always,
    Never,
}

impl RetainPolicy {
    pub fn apply(self, received: bool) -> bool {
        match self {
            RetainPolicy::AsReceived => received,
            RetainPolicy::Always => true,
            RetainPolicy::Never => false,
        }
    }
}

/// `[bridge.upstream.feed]`: the monitoring feed (sensor status in the feed's JSON schema).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// Remote topic prefix: changes go to `<topic>/devices/<id>`, the full state to
    /// `<topic>/full`.
    pub topic: TopicPrefix,
    #[serde(default)]
    pub qos: Qos,
    /// How often the full state is published (also once after each connect); 0: only after
    /// each connect.
    #[serde(default = "default_full_interval_s")]
    pub full_interval_s: u64,
}

/// Cross-key checks of the `[[bridge.upstream]]` list.
pub fn validate(upstreams: &[UpstreamConfig], p: &mut Vec<Problem>) {
    let mut names = std::collections::BTreeSet::new();
    for (i, u) in upstreams.iter().enumerate() {
        let key = |k: &str| format!("bridge.upstream[{i}].{k}");
        if !names.insert(u.name.as_str().to_ascii_lowercase()) {
            p.push(problem(
                &key("name"),
                format!("`{}` is used by another upstream", u.name),
            ));
        }
        if u.client_id().is_empty() || u.client_id().len() > 256 {
            p.push(problem(&key("client_id"), "must be 1 to 256 characters"));
        }
        if u.password.is_some() && u.username.is_none() {
            p.push(problem(&key("password"), "needs `username`"));
        }
        if u.keepalive_s < 5 || u.keepalive_s > 65_535 {
            p.push(problem(&key("keepalive_s"), "must be 5 to 65535"));
        }
        if u.connect_timeout_ms < 100 {
            p.push(problem(&key("connect_timeout_ms"), "must be at least 100"));
        }
        if u.reconnect_initial_ms < 10 {
            p.push(problem(&key("reconnect_initial_ms"), "must be at least 10"));
        }
        if u.reconnect_max_ms < u.reconnect_initial_ms {
            p.push(problem(
                &key("reconnect_max_ms"),
                "must be at least reconnect_initial_ms",
            ));
        }
        if u.inflight == 0 || u.inflight > 1000 {
            p.push(problem(&key("inflight"), "must be 1 to 1000"));
        }
        if u.queue_capacity == 0 {
            p.push(problem(&key("queue_capacity"), "must be at least 1"));
        }
        if let Some(tls) = &u.tls
            && tls.cert_file.is_some() != tls.key_file.is_some()
        {
            p.push(problem(
                &key("tls"),
                "cert_file and key_file go together (a client certificate needs its key)",
            ));
        }
        if u.mappings.is_empty() && u.feed.is_none() && !u.homeassistant {
            p.push(problem(
                &key("mapping"),
                "an upstream needs at least one mapping, a feed or `homeassistant = true`",
            ));
        }
        if let Some(f) = &u.feed
            && f.topic.as_str().trim_matches('/').is_empty()
        {
            p.push(problem(&key("feed.topic"), "must not be empty"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_home_assistant_preset_adds_its_mappings_after_the_configured_ones() {
        let u: UpstreamConfig = toml::from_str(
            r#"name = "ha"
               broker = "127.0.0.1:1883"
               homeassistant = true
               [[mapping]]
               pattern = "x/#"
               direction = "out"
               "#,
        )
        .unwrap();
        let mut p = Vec::new();
        validate(std::slice::from_ref(&u), &mut p);
        assert!(p.is_empty(), "{p:?}");
        let m = u.effective_mappings("wp", "homeassistant");
        assert_eq!(m[0].pattern.as_str(), "x/#");
        let find = |pattern: &str, dir: Direction| {
            m.iter()
                .find(|x| x.pattern.as_str() == pattern && x.direction == dir)
                .unwrap_or_else(|| panic!("{pattern} {dir:?} in {m:?}"))
        };
        let configs = find("+/+/+/config", Direction::Out);
        assert_eq!(configs.local_prefix.to_string(), "homeassistant/");
        assert_eq!(configs.qos, Qos::AtLeastOnce);
        find("status", Direction::In);
        let set = find("ha/+/set/#", Direction::In);
        assert_eq!(set.local_prefix.to_string(), "wp/");
        let zones = find("neasmart/#", Direction::Out);
        assert_eq!(
            (zones.qos, zones.retain),
            (Qos::AtMostOnce, RetainPolicy::Always)
        );
        // Without the preset, only the configured mappings.
        let plain = UpstreamConfig {
            homeassistant: false,
            ..u
        };
        assert_eq!(plain.effective_mappings("wp", "homeassistant").len(), 1);
    }

    #[derive(Debug, Deserialize)]
    struct Wrap {
        upstream: Vec<UpstreamConfig>,
    }

    fn parse(s: &str) -> Result<Vec<UpstreamConfig>, toml::de::Error> {
        toml::from_str::<Wrap>(s).map(|w| w.upstream)
    }

    #[test]
    fn a_full_upstream_parses() {
        let u = parse(
            r#"[[upstream]]
               name = "monitoring"
               broker = "mqtt.example.net:8883"
               mqtt_version = "5"
               username = "u"
               password = "p"
               queue_overflow = "reject_new"
               [upstream.tls]
               ca_file = "/ca.pem"
               cert_file = "/c.pem"
               key_file = "/c.key"
               [[upstream.mapping]]
               pattern = "sensors/+/state"
               direction = "out"
               qos = 0
               local_prefix = "watchpost/"
               remote_prefix = "sites/17/"
               retain = "always"
               [[upstream.mapping]]
               pattern = "cmd/#"
               direction = "both"
               [upstream.feed]
               topic = "sites/17/feed"
            "#,
        )
        .unwrap();
        let u = &u[0];
        assert_eq!(u.mqtt_version, MqttVersion::V5);
        assert_eq!(u.client_id(), "watchpost-monitoring");
        assert_eq!(u.queue_overflow, QueueOverflow::RejectNew);
        assert_eq!(u.mappings[0].qos, Qos::AtMostOnce);
        assert_eq!(u.mappings[1].qos, Qos::AtLeastOnce);
        assert_eq!(u.mappings[1].local_prefix.as_str(), "");
        assert!(u.mappings[0].retain.apply(false));
        assert!(u.mappings[1].retain.apply(true));
        assert_eq!(u.feed.as_ref().unwrap().full_interval_s, 300);
        assert_eq!(u.queue_capacity, 100_000);
        let mut p = vec![];
        validate(std::slice::from_ref(u), &mut p);
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn bad_values_are_refused_with_their_key() {
        for bad in [
            "qos = 2",
            "pattern = \"a/#/b\"",
            "pattern = \"a/b+\"",
            "direction = \"sideways\"",
            "local_prefix = \"a/+/\"",
            "bogus = 1",
        ] {
            let mut m = std::collections::BTreeMap::from([
                ("pattern", "pattern = \"a/#\""),
                ("direction", "direction = \"out\""),
            ]);
            let k = bad.split(' ').next().unwrap();
            m.insert(k, bad);
            let body: Vec<&str> = m.values().copied().collect();
            let doc = format!(
                "[[upstream]]\nname = \"x\"\nbroker = \"h:1\"\n[[upstream.mapping]]\n{}",
                body.join("\n")
            );
            assert!(parse(&doc).is_err(), "{doc}");
        }
        assert!(
            parse("[[upstream]]\nname = \"x\"\nbroker = \"h:1\"\nmqtt_version = \"4\"").is_err()
        );
        assert!(parse("[[upstream]]\nname = \"a b\"\nbroker = \"h:1\"").is_err());

        let u = parse(
            "[[upstream]]\nname = \"A\"\nbroker = \"h:1\"\npassword = \"p\"\ninflight = 0\n\
             [upstream.tls]\ncert_file = \"/c\"\n\
             [[upstream]]\nname = \"a\"\nbroker = \"h:1\"\n[upstream.feed]\ntopic = \"/\"",
        )
        .unwrap();
        let mut p = vec![];
        validate(&u, &mut p);
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "bridge.upstream[0].password",
                "bridge.upstream[0].inflight",
                "bridge.upstream[0].tls",
                "bridge.upstream[0].mapping",
                "bridge.upstream[1].name",
                "bridge.upstream[1].feed.topic",
            ]
        );
    }
}
