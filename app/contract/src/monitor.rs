//! The monitor (the `monitor` worker): each target's retained status with its last figures,
//! and the threshold rules' events.
//!
//! Topics, under the bus prefix, `<target>` being the configured target id (`system` for the
//! appliance itself):
//! - `monitor/target/<target>`, retained [`TargetStatus`], republished after every probe;
//! - `monitor/event`, [`MonitorEvent`]: a rule raised or cleared (the hub records it in the
//!   event store as `monitor.raised` / `monitor.cleared`);
//! - `system/monitor/status`, the worker's own `online`/`offline` (plain text, retained).
//!
//! Figures are named in one unit each, the unit last (`rtt_avg_ms`, `loss_percent`,
//! `disk_used_percent`, `temperature_celsius`); a figure with several instances (mounts,
//! thermal zones, interfaces) names the instance in `item`. docs/monitor.md lists them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// First level of every monitor topic.
pub const AREA: &str = "monitor";
/// The worker's name (its `system/<worker>/status` topic).
pub const WORKER: &str = "monitor";

/// `monitor/target/<target>`.
pub fn target(id: &str) -> [&str; 3] {
    [AREA, "target", id]
}

/// Filter: every target's status.
pub const TARGET_FILTER: [&str; 3] = [AREA, "target", "+"];

/// `monitor/event`.
pub const EVENTS: [&str; 2] = [AREA, "event"];

/// `system/monitor/status`: the worker's `online`/`offline`.
pub fn worker_status() -> [&'static str; 3] {
    ["system", WORKER, "status"]
}

/// What a target is probed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The appliance itself: CPU, memory, load, disks, temperatures, uptime, card wear,
    /// interface counters.
    System,
    /// ICMP echo.
    Ping,
    /// A TCP connection.
    Tcp,
    /// A name resolved by the system resolver.
    Dns,
    /// An HTTP(S) GET with fields of its JSON body.
    Http,
}

impl TargetKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            TargetKind::System => "system",
            TargetKind::Ping => "ping",
            TargetKind::Tcp => "tcp",
            TargetKind::Dns => "dns",
            TargetKind::Http => "http",
        }
    }
}

/// Whether the target answered its last probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetState {
    /// Answered as expected.
    Up,
    /// Did not answer, or not as expected (`reason` says how).
    Down,
    /// Not probed yet (or, in the hub's API, no status heard from the worker).
    Unknown,
}

impl TargetState {
    pub const fn as_str(self) -> &'static str {
        match self {
            TargetState::Up => "up",
            TargetState::Down => "down",
            TargetState::Unknown => "unknown",
        }
    }
}

/// One figure of a target's last probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Figure {
    /// The figure's name with its unit last, such as `rtt_avg_ms`.
    pub metric: String,
    /// The instance for figures that have several (a mount point, a thermal zone, an
    /// interface); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// Always a finite number.
    pub value: f64,
}

/// How serious a rule's event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// A rule that is raised now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    pub rule: String,
    pub metric: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// The figure when the rule raised.
    pub value: f64,
    pub threshold: f64,
    pub severity: Severity,
    /// When it raised (ms since the Unix epoch).
    pub since_ms: u64,
}

/// `monitor/target/<target>`: the target's state and its last figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TargetStatus {
    pub id: String,
    /// The configured name, or the id.
    pub name: String,
    pub kind: TargetKind,
    pub state: TargetState,
    /// Why the target is down, when it is.
    #[serde(default)]
    pub reason: Option<String>,
    /// When the last probe ended (ms since the Unix epoch).
    pub updated_ms: u64,
    /// Probes made since the worker started, and how many of them failed.
    pub probes: u64,
    pub failures: u64,
    pub figures: Vec<Figure>,
    /// Non-numeric fields picked from an HTTP target's JSON body, by configured name.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub fields: BTreeMap<String, serde_json::Value>,
    /// The target's rules that are raised now.
    #[serde(default)]
    pub alerts: Vec<Alert>,
}

impl TargetStatus {
    /// The value of figure `metric` (of `item`, when given).
    pub fn figure(&self, metric: &str, item: Option<&str>) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| f.metric == metric && f.item.as_deref() == item)
            .map(|f| f.value)
    }
}

/// Whether a rule raised or cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    Raised,
    Cleared,
}

/// `monitor/event`: a rule raised or cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MonitorEvent {
    pub rule: String,
    pub target: String,
    pub metric: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    pub transition: Transition,
    /// The figure that made the transition.
    pub value: f64,
    /// The rule's threshold (`above` or `below`).
    pub threshold: f64,
    /// The level the figure has to be back past to clear.
    pub clear_at: f64,
    pub severity: Severity,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_and_event_have_the_documented_shapes() {
        let s = TargetStatus {
            id: "gw".into(),
            name: "Gateway".into(),
            kind: TargetKind::Ping,
            state: TargetState::Up,
            reason: None,
            updated_ms: 5,
            probes: 2,
            failures: 0,
            figures: vec![Figure {
                metric: "loss_percent".into(),
                item: None,
                value: 0.0,
            }],
            fields: BTreeMap::new(),
            alerts: vec![],
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["kind"], json!("ping"));
        assert_eq!(
            v["figures"][0],
            json!({"metric": "loss_percent", "value": 0.0})
        );
        assert_eq!(serde_json::from_value::<TargetStatus>(v).unwrap(), s);
        assert_eq!(s.figure("loss_percent", None), Some(0.0));
        assert_eq!(target("gw").join("/"), "monitor/target/gw");
        let e = MonitorEvent {
            rule: "r".into(),
            target: "gw".into(),
            metric: "loss_percent".into(),
            item: None,
            transition: Transition::Raised,
            value: 30.0,
            threshold: 20.0,
            clear_at: 5.0,
            severity: Severity::Warning,
            at_ms: 1,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["transition"], json!("raised"));
        assert_eq!(v["severity"], json!("warning"));
    }
}
