//! `[monitor]`: the `monitor` worker's probes and threshold rules.
//!
//! Targets are typed per probe, one array each (`[[monitor.ping]]`, `[[monitor.tcp]]`,
//! `[[monitor.dns]]`, `[[monitor.http]]`), so every key of a probe is checked while the file is
//! read; the appliance itself is the `system` target when `system = true`. Rules
//! (`[[monitor.rules]]`) compare one figure of one target with a threshold (`above` or
//! `below`), for a time (`for_s`), and clear with hysteresis (`clear_at`). Cross-key checks
//! (unique ids, a rule's target exists, a threshold given once, intervals in range) are in
//! [`MonitorConfig::validate`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::Ident;
use crate::{Problem, problem};

/// The id of the appliance's own target (CPU, memory, disks, temperatures, interfaces).
pub const SYSTEM_TARGET: &str = "system";

/// The `[monitor]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    pub enabled: bool,
    /// Probe the appliance itself (target `system`).
    pub system: bool,
    /// How often the system figures are read.
    pub system_interval_ms: u64,
    pub ping: Vec<PingTarget>,
    pub tcp: Vec<TcpTarget>,
    pub dns: Vec<DnsTarget>,
    pub http: Vec<HttpTarget>,
    pub rules: Vec<RuleConfig>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            system: true,
            system_interval_ms: 5_000,
            ping: Vec::new(),
            tcp: Vec::new(),
            dns: Vec::new(),
            http: Vec::new(),
            rules: Vec::new(),
        }
    }
}

/// `[[monitor.ping]]`: ICMP echo to a host, with rolling figures over the last `window` echoes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PingTarget {
    pub id: Ident,
    #[serde(default)]
    pub name: Option<String>,
    /// An IPv4 or IPv6 address, or a host name resolved at start.
    pub host: String,
    /// One echo every this often (echoes do not wait for each other's reply).
    #[serde(default = "default_ping_interval_ms")]
    pub interval_ms: u64,
    /// An echo unanswered for this long is lost.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How many echoes the figures (average, minimum, maximum, jitter, loss) are taken over.
    #[serde(default = "default_window")]
    pub window: u32,
}

/// `[[monitor.tcp]]`: a TCP connection to a port.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TcpTarget {
    pub id: Ident,
    #[serde(default)]
    pub name: Option<String>,
    pub host: String,
    pub port: u16,
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// `[[monitor.dns]]`: a name resolved through the system resolver.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DnsTarget {
    pub id: Ident,
    #[serde(default)]
    pub name: Option<String>,
    /// The host name to resolve.
    pub query: String,
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// `[[monitor.http]]`: an HTTP(S) GET, its status and latency, and fields of its JSON body.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTarget {
    pub id: Ident,
    #[serde(default)]
    pub name: Option<String>,
    /// `http://` or `https://` URL.
    pub url: String,
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The status the target must answer to be up; any 2xx when not given.
    #[serde(default)]
    pub expect_status: Option<u16>,
    /// Figures picked from the JSON body: name → JSON Pointer (RFC 6901), such as
    /// `uptime = "/uptime_s"`. Numbers and booleans (as 0/1) become figures; strings are
    /// reported as fields.
    #[serde(default)]
    pub fields: BTreeMap<Ident, String>,
    /// Accept certificates that do not verify (self-signed devices).
    #[serde(default)]
    pub insecure_tls: bool,
}

/// Which side of the threshold raises a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleSeverity {
    Info,
    Warning,
    Critical,
}

/// `[[monitor.rules]]`: raise an event when a figure is beyond a threshold for a time; clear it
/// when the figure is back past `clear_at`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub id: Ident,
    /// The target's id (`system` for the appliance).
    pub target: Ident,
    /// The figure's name, such as `loss_percent` or `disk_used_percent`.
    pub metric: String,
    /// The figure's item where it has several (a mount point, a thermal zone, an interface).
    #[serde(default)]
    pub item: Option<String>,
    /// Raise when the figure is above this.
    #[serde(default)]
    pub above: Option<f64>,
    /// Raise when the figure is below this.
    #[serde(default)]
    pub below: Option<f64>,
    /// Clear when the figure is back below (for `above`) or above (for `below`) this;
    /// the threshold itself when not given.
    #[serde(default)]
    pub clear_at: Option<f64>,
    /// How long the figure must stay beyond the threshold before the rule raises.
    #[serde(default)]
    pub for_s: u64,
    #[serde(default = "default_severity")]
    pub severity: RuleSeverity,
}

fn default_ping_interval_ms() -> u64 {
    1_000
}
fn default_interval_ms() -> u64 {
    10_000
}
fn default_timeout_ms() -> u64 {
    2_000
}
fn default_window() -> u32 {
    60
}
fn default_severity() -> RuleSeverity {
    RuleSeverity::Warning
}

/// Every target's id, kind and name, in the order of the configuration (system first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRef<'a> {
    pub id: &'a str,
    pub kind: &'static str,
    pub name: Option<&'a str>,
}

impl MonitorConfig {
    /// Every configured target (the `system` target first when enabled).
    pub fn targets(&self) -> Vec<TargetRef<'_>> {
        let mut v = Vec::new();
        if self.system {
            v.push(TargetRef {
                id: SYSTEM_TARGET,
                kind: "system",
                name: Some("This appliance"),
            });
        }
        v.extend(self.ping.iter().map(|t| TargetRef {
            id: t.id.as_str(),
            kind: "ping",
            name: t.name.as_deref(),
        }));
        v.extend(self.tcp.iter().map(|t| TargetRef {
            id: t.id.as_str(),
            kind: "tcp",
            name: t.name.as_deref(),
        }));
        v.extend(self.dns.iter().map(|t| TargetRef {
            id: t.id.as_str(),
            kind: "dns",
            name: t.name.as_deref(),
        }));
        v.extend(self.http.iter().map(|t| TargetRef {
            id: t.id.as_str(),
            kind: "http",
            name: t.name.as_deref(),
        }));
        v
    }

    pub fn validate(&self, p: &mut Vec<Problem>) {
        if !(500..=3_600_000).contains(&self.system_interval_ms) {
            p.push(problem(
                "monitor.system_interval_ms",
                "must be 500..=3600000 milliseconds",
            ));
        }
        let mut ids = std::collections::HashSet::new();
        if self.system {
            ids.insert(SYSTEM_TARGET.to_string());
        }
        let mut check_id = |key: String, id: &Ident, p: &mut Vec<Problem>| {
            if !ids.insert(id.as_str().to_string()) {
                p.push(problem(
                    &format!("{key}.id"),
                    format!("duplicate monitor target `{id}` (`system` is the appliance's own)"),
                ));
            }
        };
        let interval = |key: String, ms: u64, min: u64, p: &mut Vec<Problem>| {
            if !(min..=3_600_000).contains(&ms) {
                p.push(problem(
                    &format!("{key}.interval_ms"),
                    format!("must be {min}..=3600000 milliseconds"),
                ));
            }
        };
        let timeout = |key: String, ms: u64, p: &mut Vec<Problem>| {
            if !(10..=60_000).contains(&ms) {
                p.push(problem(
                    &format!("{key}.timeout_ms"),
                    "must be 10..=60000 milliseconds",
                ));
            }
        };
        for (i, t) in self.ping.iter().enumerate() {
            let key = format!("monitor.ping[{i}]");
            check_id(key.clone(), &t.id, p);
            interval(key.clone(), t.interval_ms, 10, p);
            timeout(key.clone(), t.timeout_ms, p);
            if !(1..=10_000).contains(&t.window) {
                p.push(problem(
                    &format!("{key}.window"),
                    "must be 1..=10000 echoes",
                ));
            }
            if t.host.trim().is_empty() {
                p.push(problem(&format!("{key}.host"), "must not be empty"));
            }
        }
        for (i, t) in self.tcp.iter().enumerate() {
            let key = format!("monitor.tcp[{i}]");
            check_id(key.clone(), &t.id, p);
            interval(key.clone(), t.interval_ms, 100, p);
            timeout(key.clone(), t.timeout_ms, p);
            if t.host.trim().is_empty() {
                p.push(problem(&format!("{key}.host"), "must not be empty"));
            }
            if t.port == 0 {
                p.push(problem(&format!("{key}.port"), "must be 1..=65535"));
            }
        }
        for (i, t) in self.dns.iter().enumerate() {
            let key = format!("monitor.dns[{i}]");
            check_id(key.clone(), &t.id, p);
            interval(key.clone(), t.interval_ms, 100, p);
            timeout(key.clone(), t.timeout_ms, p);
            if t.query.trim().is_empty() {
                p.push(problem(&format!("{key}.query"), "must not be empty"));
            }
        }
        for (i, t) in self.http.iter().enumerate() {
            let key = format!("monitor.http[{i}]");
            check_id(key.clone(), &t.id, p);
            interval(key.clone(), t.interval_ms, 100, p);
            timeout(key.clone(), t.timeout_ms, p);
            let scheme_ok = t.url.starts_with("http://") || t.url.starts_with("https://");
            if !scheme_ok || t.url.len() <= "https://".len() {
                p.push(problem(
                    &format!("{key}.url"),
                    "must be an http:// or https:// URL",
                ));
            }
            if let Some(s) = t.expect_status
                && !(100..=599).contains(&s)
            {
                p.push(problem(
                    &format!("{key}.expect_status"),
                    "must be an HTTP status, 100..=599",
                ));
            }
            for (name, pointer) in &t.fields {
                if !(pointer.is_empty() || pointer.starts_with('/')) {
                    p.push(problem(
                        &format!("{key}.fields.{name}"),
                        "must be a JSON Pointer: empty or starting with `/`",
                    ));
                }
            }
        }
        let mut rule_ids = std::collections::HashSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            let key = format!("monitor.rules[{i}]");
            if !rule_ids.insert(r.id.as_str()) {
                p.push(problem(
                    &format!("{key}.id"),
                    format!("duplicate rule `{}`", r.id),
                ));
            }
            if !ids.contains(r.target.as_str()) {
                p.push(problem(
                    &format!("{key}.target"),
                    format!("no monitor target `{}`", r.target),
                ));
            }
            if r.metric.trim().is_empty() {
                p.push(problem(&format!("{key}.metric"), "must not be empty"));
            }
            match (r.above, r.below) {
                (Some(_), Some(_)) | (None, None) => {
                    p.push(problem(&key, "give exactly one of `above` and `below`"))
                }
                (Some(t), None) => {
                    if r.clear_at.is_some_and(|c| c > t || !c.is_finite()) {
                        p.push(problem(
                            &format!("{key}.clear_at"),
                            "must be at most the `above` threshold",
                        ));
                    }
                }
                (None, Some(t)) => {
                    if r.clear_at.is_some_and(|c| c < t || !c.is_finite()) {
                        p.push(problem(
                            &format!("{key}.clear_at"),
                            "must be at least the `below` threshold",
                        ));
                    }
                }
            }
            if r.above.is_some_and(|v| !v.is_finite()) || r.below.is_some_and(|v| !v.is_finite()) {
                p.push(problem(&key, "a threshold must be a finite number"));
            }
            if r.for_s > 86_400 {
                p.push(problem(&format!("{key}.for_s"), "must be at most 86400"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> MonitorConfig {
        toml::from_str(text).expect("parses")
    }

    fn problems(c: &MonitorConfig) -> Vec<String> {
        let mut p = Vec::new();
        c.validate(&mut p);
        p.into_iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn typed_targets_and_rules_parse_with_defaults() {
        let c = parse(
            r#"
            enabled = true
            [[ping]]
            id = "gw"
            host = "127.0.0.1"
            [[http]]
            id = "hub"
            url = "http://127.0.0.1:8080/health"
            fields = { status = "/status", uptime = "/uptime_s" }
            [[rules]]
            id = "gw-loss"
            target = "gw"
            metric = "loss_percent"
            above = 20.0
            clear_at = 5.0
            for_s = 3
            "#,
        );
        assert_eq!(c.ping[0].interval_ms, 1_000);
        assert_eq!(c.ping[0].window, 60);
        assert_eq!(c.http[0].fields.len(), 2);
        assert_eq!(c.rules[0].severity, RuleSeverity::Warning);
        assert!(problems(&c).is_empty(), "{:?}", problems(&c));
        let ids: Vec<&str> = c.targets().iter().map(|t| t.id).collect();
        assert_eq!(ids, ["system", "gw", "hub"]);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(
            toml::from_str::<MonitorConfig>("[[ping]]\nid = \"a\"\nhost = \"x\"\nport = 1\n")
                .is_err()
        );
        assert!(toml::from_str::<MonitorConfig>("[[ping]]\nid = \"a b\"\nhost = \"x\"\n").is_err());
    }

    #[test]
    fn cross_key_problems_name_their_keys() {
        let c = parse(
            r#"
            [[ping]]
            id = "system"
            host = "10.0.0.1"
            interval_ms = 1
            [[tcp]]
            id = "t"
            host = "h"
            port = 0
            [[http]]
            id = "h"
            url = "ftp://x"
            fields = { a = "no-slash" }
            [[rules]]
            id = "r"
            target = "nowhere"
            metric = "x"
            above = 1.0
            below = 0.0
            [[rules]]
            id = "r"
            target = "t"
            metric = "x"
            above = 1.0
            clear_at = 2.0
            "#,
        );
        let p = problems(&c).join("\n");
        for key in [
            "monitor.ping[0].id",
            "monitor.ping[0].interval_ms",
            "monitor.tcp[0].port",
            "monitor.http[0].url",
            "monitor.http[0].fields.a",
            "monitor.rules[0].target",
            "monitor.rules[0]: give exactly one",
            "monitor.rules[1].id",
            "monitor.rules[1].clear_at",
        ] {
            assert!(p.contains(key), "{key} missing in:\n{p}");
        }
    }
}
