//! `[bridge.homeassistant]`: Home Assistant MQTT discovery of everything the appliance knows
//! (docs/bridge.md, "Home Assistant").
//!
//! ```toml
//! [bridge.homeassistant]
//! enabled = true
//! discovery_prefix = "homeassistant"   # Home Assistant's MQTT discovery prefix
//! device_name = "Watchpost"            # the appliance's device in Home Assistant
//! # node_id = "cellar"                 # default: a random id made once and kept in the data dir
//! # topic_prefix = "site1/watchpost"   # the bus prefix as Home Assistant's broker sees it
//! # configuration_url = "https://watchpost.local/"
//! ```
//!
//! Discovery is published on the appliance's bus; Home Assistant reads it from its own broker
//! through an upstream (`[[bridge.upstream]]` with `homeassistant/#` out, the bus prefix out
//! and the command topics in) or by connecting to the appliance's broker.

use serde::{Deserialize, Serialize};

use crate::{Problem, problem};

/// The `[bridge.homeassistant]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HomeAssistantConfig {
    pub enabled: bool,
    /// Home Assistant's discovery prefix (its MQTT integration's setting).
    pub discovery_prefix: String,
    /// The appliance's name in Home Assistant (its devices' names start with it). Renaming it
    /// renames the devices, never the entity ids.
    pub device_name: String,
    /// A stable id for this appliance in unique ids and topics (`[a-zA-Z0-9_-]`). Unset: a
    /// random id made at the first start and kept in `<data_dir>/bridge/homeassistant-node`.
    pub node_id: Option<String>,
    /// What entity ids start with (`climate.<object_id_prefix>_zone_1_3`).
    pub object_id_prefix: String,
    /// The bus prefix as Home Assistant's broker sees it, when an upstream rewrites it.
    /// Unset: the bus prefix.
    pub topic_prefix: Option<String>,
    /// The setup page's address, shown as the devices' "visit" link. Unset: none.
    pub configuration_url: Option<String>,
    /// How often each online camera's snapshot is refreshed for its camera entity (seconds,
    /// 0: never).
    pub snapshot_interval_s: u64,
    /// After the bridge starts, how long an area's retained states may take to arrive before
    /// entities published earlier and no longer known are removed (seconds).
    pub settle_s: u64,
    /// The step of a zone's target temperature in Home Assistant (°C).
    pub setpoint_step: f64,
}

impl Default for HomeAssistantConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            discovery_prefix: "homeassistant".into(),
            device_name: "Watchpost".into(),
            node_id: None,
            object_id_prefix: "watchpost".into(),
            topic_prefix: None,
            configuration_url: None,
            snapshot_interval_s: 30,
            settle_s: 20,
            setpoint_step: 0.5,
        }
    }
}

/// `[a-zA-Z0-9_-]+`, what Home Assistant accepts in discovery topic levels.
pub fn is_discovery_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn is_topic_prefix(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('/')
        && !s.ends_with('/')
        && !s.contains(['+', '#', '\0'])
        && !s.split('/').any(str::is_empty)
}

impl HomeAssistantConfig {
    pub fn validate(&self, p: &mut Vec<Problem>) {
        const AT: &str = "bridge.homeassistant";
        if !is_topic_prefix(&self.discovery_prefix) {
            p.push(problem(
                &format!("{AT}.discovery_prefix"),
                "must be a topic without wildcards, empty levels or leading/trailing `/`",
            ));
        }
        if let Some(t) = &self.topic_prefix
            && !is_topic_prefix(t)
        {
            p.push(problem(
                &format!("{AT}.topic_prefix"),
                "must be a topic without wildcards, empty levels or leading/trailing `/`",
            ));
        }
        if let Some(n) = &self.node_id
            && !is_discovery_id(n)
        {
            p.push(problem(
                &format!("{AT}.node_id"),
                "only letters, digits, `_` and `-`",
            ));
        }
        if !is_discovery_id(&self.object_id_prefix) {
            p.push(problem(
                &format!("{AT}.object_id_prefix"),
                "only letters, digits, `_` and `-`",
            ));
        }
        if self.device_name.trim().is_empty() {
            p.push(problem(&format!("{AT}.device_name"), "must not be empty"));
        }
        if let Some(u) = &self.configuration_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            p.push(problem(
                &format!("{AT}.configuration_url"),
                "must start with http:// or https://",
            ));
        }
        if !(self.setpoint_step > 0.0 && self.setpoint_step <= 5.0) {
            p.push(problem(
                &format!("{AT}.setpoint_step"),
                "must be greater than 0 and at most 5",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_are_named() {
        let mut p = Vec::new();
        HomeAssistantConfig::default().validate(&mut p);
        assert!(p.is_empty(), "{p:?}");
        let bad = HomeAssistantConfig {
            discovery_prefix: "home/#".into(),
            node_id: Some("a b".into()),
            topic_prefix: Some("/x".into()),
            setpoint_step: 0.0,
            ..Default::default()
        };
        bad.validate(&mut p);
        let keys: Vec<String> = p.iter().map(|x| x.to_string()).collect();
        for k in [
            "discovery_prefix",
            "node_id",
            "topic_prefix",
            "setpoint_step",
        ] {
            assert!(keys.iter().any(|s| s.contains(k)), "{k} in {keys:?}");
        }
    }
}
