//! `/monitor`: every monitor target with its state, last figures and raised rules, from the
//! same view as `GET /api/v1/monitor` ([`crate::api::monitor`]). The page shows what the hub
//! holds when it is loaded; reload it for newer figures.

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use watchpost_contract::monitor::{Figure, TargetState, TargetStatus};

use crate::pages::fmt;
use crate::pages::layout::{self, PageCtx};
use crate::state::HubState;

/// What the page shows.
#[derive(Debug, Clone, Default)]
pub struct MonitorData {
    pub enabled: bool,
    pub targets: Vec<TargetStatus>,
}

pub fn gather(state: &HubState) -> MonitorData {
    MonitorData {
        enabled: state.config.monitor.enabled,
        targets: state.monitor.views(&state.config.monitor),
    }
}

/// A figure's value in its unit (the unit is the name's last part).
pub fn value(f: &Figure) -> String {
    let v = f.value;
    let m = f.metric.as_str();
    if m.ends_with("_ms") {
        format!("{v:.2} ms")
    } else if m.ends_with("_percent") {
        format!("{v:.1} %")
    } else if m.ends_with("_bytes_per_second") {
        format!("{}/s", fmt::bytes(v.max(0.0) as u64))
    } else if m.ends_with("_bytes") {
        fmt::bytes(v.max(0.0) as u64)
    } else if m.ends_with("_celsius") {
        format!("{v:.1} °C")
    } else if m.ends_with("_seconds") {
        fmt::duration_s(v.max(0.0) as u64)
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A figure's name with its item.
pub fn name(f: &Figure) -> String {
    match &f.item {
        Some(item) => format!("{} ({item})", f.metric),
        None => f.metric.clone(),
    }
}

fn state_class(s: TargetState) -> &'static str {
    match s {
        TargetState::Up => "ok",
        TargetState::Down => "bad",
        TargetState::Unknown => "muted",
    }
}

pub fn render(data: &MonitorData) -> Markup {
    html! {
        @if !data.enabled {
            p class="muted" { "The monitor is off ([monitor] enabled = false)." }
        }
        (layout::scroll_table(
            "Monitor targets",
            html! {
                th scope="col" { "Target" }
                th scope="col" { "Kind" }
                th scope="col" { "State" }
                th scope="col" { "Raised rules" }
                th scope="col" { "Last probe" }
            },
            html! {
                @for t in &data.targets {
                    tr {
                        th scope="row" { a href=(format!("#target-{}", t.id)) { (t.name) } }
                        td { (t.kind.as_str()) }
                        td {
                            span class=(state_class(t.state)) { (t.state.as_str()) }
                            @if let Some(r) = &t.reason { br; span class="muted" { (r) } }
                        }
                        td {
                            @if t.alerts.is_empty() { "–" }
                            @for a in &t.alerts {
                                span class="bad" { (a.rule) } " "
                            }
                        }
                        td { (if t.updated_ms == 0 { "–".to_string() } else { fmt::time_ms(t.updated_ms as i64) }) }
                    }
                }
            },
        ))
        @for t in &data.targets {
            section class="card" id=(format!("target-{}", t.id)) aria-label=(format!("Monitor target {}", t.name)) {
                h2 { (t.name) " " span class=(state_class(t.state)) { (t.state.as_str()) } }
                @if t.figures.is_empty() && t.fields.is_empty() {
                    p class="muted" { "No figures yet." }
                } @else {
                    dl class="kv" {
                        @for f in &t.figures {
                            dt { (name(f)) } dd { (value(f)) }
                        }
                        @for (k, v) in &t.fields {
                            dt { (k) } dd { (v.as_str().map_or_else(|| v.to_string(), str::to_string)) }
                        }
                    }
                }
                @for a in &t.alerts {
                    p class="bad" {
                        "Rule " (a.rule) ": " (a.metric)
                        @if let Some(i) = &a.item { " (" (i) ")" }
                        " " (format!("{:.2}", a.value)) " beyond " (format!("{:.2}", a.threshold))
                        " since " (fmt::time_ms(a.since_ms as i64))
                    }
                }
            }
        }
    }
}

/// `GET /monitor`.
pub async fn get(State(state): State<HubState>, ctx: PageCtx) -> Response {
    let data = gather(&state);
    layout::page("Monitor", &ctx, render(&data))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use watchpost_contract::monitor::{Alert, Severity, TargetKind};

    use super::*;

    #[test]
    fn renders_targets_figures_and_alerts() {
        let f = |m: &str, item: Option<&str>, v: f64| Figure {
            metric: m.into(),
            item: item.map(str::to_string),
            value: v,
        };
        let t = TargetStatus {
            id: "gw".into(),
            name: "Gateway".into(),
            kind: TargetKind::Ping,
            state: TargetState::Down,
            reason: Some("no reply to the last 3 echoes".into()),
            updated_ms: 1_700_000_000_000,
            probes: 3,
            failures: 3,
            figures: vec![
                f("loss_percent", None, 100.0),
                f("disk_free_bytes", Some("/"), 2e9),
            ],
            fields: BTreeMap::from([("status".to_string(), serde_json::json!("healthy"))]),
            alerts: vec![Alert {
                rule: "gw-loss".into(),
                metric: "loss_percent".into(),
                item: None,
                value: 100.0,
                threshold: 20.0,
                severity: Severity::Warning,
                since_ms: 1_700_000_000_000,
            }],
        };
        let h = render(&MonitorData {
            enabled: true,
            targets: vec![t],
        })
        .into_string();
        assert!(h.contains("Gateway"));
        assert!(h.contains("no reply to the last 3 echoes"));
        assert!(h.contains("100.0 %"));
        assert!(h.contains("2.0 GB"));
        assert!(h.contains("healthy"));
        assert!(h.contains("gw-loss"));
        assert_eq!(value(&f("rtt_avg_ms", None, 0.25)), "0.25 ms");
        assert_eq!(value(&f("temperature_celsius", None, 48.5)), "48.5 °C");
    }
}
