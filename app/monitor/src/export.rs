//! Every figure on `/metrics` (Prometheus text format, `promtool check metrics` clean).
//!
//! A figure `<name>` of a target becomes the gauge `watchpost_monitor_<name>{target, item}`;
//! figures in milliseconds (`*_ms`) are exported in seconds (`*_seconds`), Prometheus' base
//! unit. The fields an HTTP target picks from its JSON body have names chosen in the
//! configuration, so they share one family, `watchpost_monitor_http_field{target, field}`,
//! and can never collide with a built-in family.

use std::collections::HashMap;

use watchpost_contract::monitor::{
    MonitorEvent, TargetKind, TargetState, TargetStatus, Transition,
};
use watchpost_runtime::metrics::{Counter, Gauge, Registry};

use crate::rules::Rule;

/// The figures every HTTP probe has (not picked from the body).
const HTTP_BUILTIN: &[&str] = &["status_code", "latency_ms"];

/// A figure's family name and the factor its value is multiplied by.
pub fn family(metric: &str) -> (String, f64) {
    let clean: String = metric
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    match clean.strip_suffix("_ms") {
        Some(stem) => (format!("watchpost_monitor_{stem}_seconds"), 0.001),
        None => (format!("watchpost_monitor_{clean}"), 1.0),
    }
}

/// The worker's metrics, with a handle kept per series.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    gauges: HashMap<(String, Vec<(String, String)>), Gauge>,
    probes: HashMap<String, (Counter, Counter)>,
    events: Counter,
}

impl Metrics {
    pub fn new(registry: &Registry) -> Self {
        Self {
            registry: registry.clone(),
            gauges: HashMap::new(),
            probes: HashMap::new(),
            events: registry.counter(
                "watchpost_monitor_events_total",
                "Monitor rule events (raised and cleared) published",
                &[],
            ),
        }
    }

    fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)]) -> Gauge {
        let key = (
            name.to_string(),
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        self.gauges
            .entry(key)
            .or_insert_with(|| self.registry.gauge(name, help, labels))
            .clone()
    }

    /// Records a target's new status, the state of the rules and the events they made.
    pub fn record(&mut self, s: &TargetStatus, rules: &[Rule], events: &[MonitorEvent]) {
        let id = s.id.as_str();
        let up = match s.state {
            TargetState::Up => 1.0,
            TargetState::Down | TargetState::Unknown => 0.0,
        };
        self.gauge(
            "watchpost_monitor_target_up",
            "1 while the target answers its probes as expected, 0 when down or not probed yet",
            &[("target", id), ("kind", s.kind.as_str())],
        )
        .set(up);
        let (probes, failures) = self.probes.entry(id.to_string()).or_insert_with(|| {
            (
                self.registry.counter(
                    "watchpost_monitor_probes_total",
                    "Probes made of each target",
                    &[("target", id)],
                ),
                self.registry.counter(
                    "watchpost_monitor_probe_failures_total",
                    "Probes that found the target down",
                    &[("target", id)],
                ),
            )
        });
        probes.add(s.probes.saturating_sub(probes.get()));
        failures.add(s.failures.saturating_sub(failures.get()));
        for f in &s.figures {
            if s.kind == TargetKind::Http && !HTTP_BUILTIN.contains(&f.metric.as_str()) {
                self.gauge(
                    "watchpost_monitor_http_field",
                    "A number picked from an HTTP target's JSON body (configured fields)",
                    &[("target", id), ("field", &f.metric)],
                )
                .set(f.value);
                continue;
            }
            let (name, factor) = family(&f.metric);
            let help = format!(
                "Monitor figure {} of each target (docs/monitor.md)",
                f.metric
            );
            let g = match &f.item {
                Some(item) => self.gauge(&name, &help, &[("target", id), ("item", item)]),
                None => self.gauge(&name, &help, &[("target", id)]),
            };
            g.set(f.value * factor);
        }
        for r in rules.iter().filter(|r| r.target == id) {
            self.gauge(
                "watchpost_monitor_rule_raised",
                "1 while the threshold rule is raised",
                &[("rule", &r.id), ("target", id)],
            )
            .set(if r.raised() { 1.0 } else { 0.0 });
        }
        for e in events {
            self.events.inc();
            let transition = match e.transition {
                Transition::Raised => "raised",
                Transition::Cleared => "cleared",
            };
            self.registry
                .counter(
                    "watchpost_monitor_rule_events_total",
                    "Raised and cleared events of each rule",
                    &[("rule", &e.rule), ("transition", transition)],
                )
                .inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_use_base_units() {
        assert_eq!(
            family("rtt_avg_ms"),
            ("watchpost_monitor_rtt_avg_seconds".into(), 0.001)
        );
        assert_eq!(
            family("loss_percent"),
            ("watchpost_monitor_loss_percent".into(), 1.0)
        );
        assert_eq!(
            family("Odd-name"),
            ("watchpost_monitor_odd_name".into(), 1.0)
        );
    }
}
