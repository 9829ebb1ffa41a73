//! `[bridge]`: MQTT bridging — YoLink sensors in (cloud or Local Hub); Home Assistant and
//! upstream brokers out.
//!
//! ```toml
//! [bridge]
//! enabled = true
//! low_battery_level = 1      # YoLink battery 0–4; at or below this is "low battery"
//! offline_after_s = 0        # 0: YoLink's keep-alive class (9 h battery, 70 min mains)
//!
//! [bridge.yolink]
//! source = "cloud"           # or "local" (Local Hub, no cloud)
//! uaid = "..."
//! secret = "..."
//! ```

use serde::{Deserialize, Serialize};

use crate::types::{Endpoint, Secret};
use crate::upstream::UpstreamConfig;
use crate::{Problem, problem};

/// The `[bridge]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeConfig {
    pub enabled: bool,
    /// Where YoLink sensors come from; none when absent.
    pub yolink: Option<YolinkConfig>,
    /// Battery level (0–4) at or below which a sensor reports low battery.
    pub low_battery_level: u8,
    /// Silence after which a sensor is offline; 0 uses YoLink's keep-alive classes.
    pub offline_after_s: u64,
    /// How often unacknowledged sensor events are offered to the hub again.
    pub resend_interval_ms: u64,
    /// Sensor events kept in memory until the hub has acknowledged them.
    pub event_buffer: u32,
    /// Renew the YoLink access token this long before it expires.
    pub token_refresh_margin_s: u64,
    /// Smallest time between two YoLink MQTT connection attempts (YoLink allows 10 per
    /// 5 minutes per credential).
    pub min_connect_interval_ms: u64,
    /// Longest back-off between failed YoLink attempts (HTTP and MQTT).
    pub backoff_max_ms: u64,
    /// YoLink HTTP request timeout.
    pub http_timeout_ms: u64,
    /// Ask every sensor for its state after (re)connecting, to catch changes missed meanwhile.
    pub poll_state_on_connect: bool,
    /// Upstream MQTT brokers (`[[bridge.upstream]]`, see [`crate::upstream`]).
    pub upstream: Vec<UpstreamConfig>,
    /// Home Assistant discovery (`[bridge.homeassistant]`, see [`crate::homeassistant`]).
    pub homeassistant: crate::homeassistant::HomeAssistantConfig,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            yolink: None,
            low_battery_level: 1,
            offline_after_s: 0,
            resend_interval_ms: 2000,
            event_buffer: 100_000,
            token_refresh_margin_s: 300,
            min_connect_interval_ms: 30_000,
            backoff_max_ms: 300_000,
            http_timeout_ms: 10_000,
            poll_state_on_connect: true,
            upstream: Vec::new(),
            homeassistant: Default::default(),
        }
    }
}

/// A base URL `http://host[:port][/path]` or `https://…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl(String);

impl HttpUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This URL with `path` appended (one `/` between them).
    pub fn join(&self, path: &str) -> String {
        format!(
            "{}/{}",
            self.0.trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }
}

impl std::str::FromStr for HttpUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"))
            .ok_or_else(|| format!("`{s}` must start with http:// or https://"))?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        if host.is_empty() || host.starts_with(':') {
            return Err(format!("`{s}` has no host"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("`{s}` contains whitespace"));
        }
        Ok(Self(s.to_string()))
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for HttpUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The YoLink source.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum YolinkConfig {
    Cloud(CloudConfig),
    Local(LocalHubConfig),
}

/// YoLink cloud (Open API v2 with a User Access Credential).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    pub uaid: String,
    pub secret: Secret,
    /// Base of the token and API endpoints (`/open/yolink/token`, `/open/yolink/v2/api`).
    #[serde(default = "default_cloud_api")]
    pub api_url: HttpUrl,
    /// The YoLink MQTT broker.
    #[serde(default = "default_cloud_mqtt")]
    pub mqtt: Endpoint,
}

/// A YoLink Local Hub on the LAN.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LocalHubConfig {
    /// `http://<hub-ip>:1080`.
    pub hub_url: HttpUrl,
    pub client_id: String,
    pub client_secret: Secret,
    /// Sub-net id shown in the YoLink app (Local Hub → Local Network → General).
    pub subnet_id: String,
    /// The hub's MQTT broker, `<hub-ip>:18080`.
    pub mqtt: Endpoint,
}

fn default_cloud_api() -> HttpUrl {
    HttpUrl("https://api.yosmart.com".into())
}
fn default_cloud_mqtt() -> Endpoint {
    "mqtt.api.yosmart.com:8003".parse().unwrap_or_else(|_| {
        Endpoint::from(crate::types::ListenAddr::new(([127, 0, 0, 1], 8003).into()))
    })
}
impl BridgeConfig {
    /// Cross-key checks.
    pub fn validate(&self, p: &mut Vec<Problem>) {
        if self.low_battery_level > 4 {
            p.push(problem(
                "bridge.low_battery_level",
                "YoLink battery levels are 0..=4",
            ));
        }
        if self.resend_interval_ms < 100 {
            p.push(problem("bridge.resend_interval_ms", "must be at least 100"));
        }
        if self.event_buffer == 0 {
            p.push(problem("bridge.event_buffer", "must be at least 1"));
        }
        if self.http_timeout_ms == 0 {
            p.push(problem("bridge.http_timeout_ms", "must be greater than 0"));
        }
        if self.backoff_max_ms < 1000 {
            p.push(problem("bridge.backoff_max_ms", "must be at least 1000"));
        }
        crate::upstream::validate(&self.upstream, p);
        self.homeassistant.validate(p);
        if let Some(y) = &self.yolink {
            match y {
                YolinkConfig::Cloud(cl) if cl.uaid.trim().is_empty() => {
                    p.push(problem("bridge.yolink.uaid", "must not be empty"));
                }
                YolinkConfig::Local(l) if l.client_id.trim().is_empty() => {
                    p.push(problem("bridge.yolink.client_id", "must not be empty"));
                }
                YolinkConfig::Local(l)
                    if l.subnet_id.is_empty() || l.subnet_id.contains(['/', '+', '#']) =>
                {
                    p.push(problem(
                        "bridge.yolink.subnet_id",
                        "must be a non-empty topic level",
                    ));
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_and_local_parse() {
        let b: BridgeConfig = toml::from_str(
            r#"enabled = true
               min_connect_interval_ms = 0
               [yolink]
               source = "cloud"
               uaid = "ua"
               secret = "s"
               api_url = "http://127.0.0.1:9000"
               mqtt = "127.0.0.1:1883"
               "#,
        )
        .unwrap();
        let Some(YolinkConfig::Cloud(c)) = &b.yolink else {
            panic!("{b:?}")
        };
        assert_eq!(
            c.api_url.join("/open/yolink/token"),
            "http://127.0.0.1:9000/open/yolink/token"
        );
        assert_eq!(b.min_connect_interval_ms, 0);
        assert_eq!(b.token_refresh_margin_s, 300);
        let mut p = vec![];
        b.validate(&mut p);
        assert!(p.is_empty(), "{p:?}");

        let l: BridgeConfig = toml::from_str(
            r#"[yolink]
               source = "local"
               hub_url = "http://192.168.1.5:1080"
               client_id = "c"
               client_secret = "s"
               subnet_id = "sub"
               mqtt = "192.168.1.5:18080""#,
        )
        .unwrap();
        assert!(matches!(l.yolink, Some(YolinkConfig::Local(_))));
    }

    #[test]
    fn rejects_bad_values() {
        assert!(
            toml::from_str::<BridgeConfig>(
                "[yolink]\nsource = \"cloud\"\nuaid = \"u\"\nsecret = \"s\"\nbogus = 1"
            )
            .is_err()
        );
        assert!(
            toml::from_str::<BridgeConfig>(
                "[yolink]\nsource = \"cloud\"\nuaid = \"u\"\nsecret = \"s\"\napi_url = \"ftp://x\""
            )
            .is_err()
        );
        assert!(toml::from_str::<BridgeConfig>("[yolink]\nsource = \"mars\"").is_err());
        let b: BridgeConfig = toml::from_str("low_battery_level = 7").unwrap();
        let mut p = vec![];
        b.validate(&mut p);
        assert_eq!(p[0].key, "bridge.low_battery_level");
    }
}
