//! `/alarms`: the alarm receivers with their delivery queues, the sensors with their latest
//! state and the mappings from sensors to receivers, and a test alarm per receiver for
//! operators (the REST API's `POST /api/v1/alarms/receivers/{id}/test` path). The sensor and
//! queue tables are shared with the dashboard.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Serialize;
use watchpost_alarm::ReceiverView;
use watchpost_config::Role;
use watchpost_config::alarms::MappingConfig;
use watchpost_contract::alarm::SensorView;

use crate::pages::fmt;
use crate::pages::layout::{self, FlashQuery, PageCtx, csrf_input};
use crate::state::HubState;

/// A sensor as the pages show it and `/live` sends it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensorRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub state: String,
    pub alarm: bool,
    pub online: bool,
    /// YoLink battery level 0–4.
    pub battery: Option<u8>,
    /// The last state change, as text.
    pub changed: Option<String>,
}

/// The lowercase name serde gives a unit enum variant (`open`, `co_smoke`).
fn serde_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

impl SensorRow {
    pub fn of(v: &SensorView) -> Self {
        let s = &v.sensor;
        SensorRow {
            id: s.id.clone(),
            name: if s.name.is_empty() {
                s.id.clone()
            } else {
                s.name.clone()
            },
            kind: serde_name(&s.kind),
            state: serde_name(&s.state),
            alarm: v.alarm,
            online: s.online,
            battery: s.battery,
            changed: v.changed_at.or(s.state_changed_ms).map(fmt::time_ms),
        }
    }
}

/// Every sensor (by id); `None` when the alarm service is not running.
pub fn sensor_rows(state: &HubState) -> Option<Vec<SensorRow>> {
    state
        .alarm
        .running()
        .then(|| state.alarm.sensors().values().map(SensorRow::of).collect())
}

/// What the page shows.
#[derive(Debug, Clone, Default)]
pub struct AlarmsData {
    /// `None`: the alarm service is not running.
    pub sensors: Option<Vec<SensorRow>>,
    pub receivers: Vec<ReceiverView>,
    pub enabled: bool,
    /// (mapping, `file` or `api`).
    pub mappings: Vec<(MappingConfig, &'static str)>,
}

pub async fn gather(state: &HubState) -> AlarmsData {
    let mut mappings: Vec<(MappingConfig, &'static str)> = state
        .config
        .alarms
        .mappings
        .iter()
        .map(|m| (m.clone(), "file"))
        .collect();
    if let Ok(m) = crate::api::alarms::managed(state).await {
        mappings.extend(m.mappings.into_iter().map(|m| (m, "api")));
    }
    AlarmsData {
        sensors: sensor_rows(state),
        receivers: if state.alarm.running() {
            state.alarm.queues()
        } else {
            Vec::new()
        },
        enabled: state.alarm.enabled(),
        mappings,
    }
}

/// The sensors table (dashboard and this page); cells update from `/live`.
pub fn sensors_table(sensors: Option<&[SensorRow]>) -> Markup {
    html! {
        @match sensors {
            None => p class="muted" { "The alarm service is not running, so sensor states are unknown." },
            Some([]) => p class="muted" { "No sensors yet. They appear once the bridge reports them." },
            Some(rows) => (layout::live_scroll_table(
                "Sensors and their latest state",
                html! {
                    th scope="col" { "Sensor" }
                    th scope="col" class="opt" { "Kind" }
                    th scope="col" { "State" }
                    th scope="col" { "Link" }
                    th scope="col" class="num opt" { "Battery" }
                    th scope="col" class="opt" { "Changed" }
                },
                html! {
                    @for s in rows {
                        tr data-sensor=(s.id) {
                            th scope="row" { (s.name) }
                            td class="opt" { (s.kind) }
                            td { span class=(if s.alarm { "state bad" } else { "state ok" }) data-field="state" { (s.state) } }
                            td data-field="online" { (if s.online { "online" } else { "offline" }) }
                            td class="num opt" data-field="battery" { (s.battery.map(|b| b.to_string()).unwrap_or("–".into())) }
                            td class="opt" data-field="changed" { (s.changed.as_deref().unwrap_or("–")) }
                        }
                    }
                },
            )),
        }
    }
}

/// The receivers' delivery queues (dashboard and this page); with a test button for
/// operators when `ctx` is given.
pub fn queues_table(receivers: &[ReceiverView], ctx: Option<&PageCtx>) -> Markup {
    let control = ctx.is_some_and(|c| c.allows(Role::Operator));
    html! {
        @if receivers.is_empty() {
            p class="muted" { "No alarm receivers are configured." }
        } @else {
            (layout::scroll_table(
                "Alarm receivers and their delivery queues",
                html! {
                    th scope="col" { "Receiver" }
                    th scope="col" { "Type" }
                    th scope="col" { "Delivery" }
                    th scope="col" class="num" { "Queued" }
                    th scope="col" class="num" { "Delivered" }
                    th scope="col" { "Last error" }
                    @if control { th scope="col" { "Test" } }
                },
                html! {
                    @for r in receivers {
                        tr {
                            th scope="row" { (r.receiver) }
                            td { (r.kind) }
                            td class=(if r.state == "retrying" { "warn" } else { "" }) { (r.state) }
                            td class="num" { (r.queued) " / " (r.capacity) }
                            td class="num" { (r.delivered_total) }
                            td { (r.last_error.as_deref().unwrap_or("–")) }
                            @if let (true, Some(ctx)) = (control, ctx) {
                                td {
                                    form method="post" action=(format!("/alarms/{}/test", layout::url_encode(&r.receiver))) data-enhance {
                                        (csrf_input(ctx))
                                        button type="submit" aria-label=(format!("Send a test alarm to {}", r.receiver)) { "Test alarm" }
                                        span role="status" aria-live="polite" {}
                                    }
                                }
                            }
                        }
                    }
                },
            ))
        }
    }
}

pub fn render(ctx: &PageCtx, data: &AlarmsData, flash: &FlashQuery) -> Markup {
    html! {
        (flash.render())
        @if !data.enabled {
            p class="notice info" role="status" { "Alarms are disabled in the configuration ([alarms] enabled = false): sensors are shown, nothing is delivered." }
        }
        section class="card" aria-labelledby="rcv-h" {
            h2 id="rcv-h" { "Receivers" }
            (queues_table(&data.receivers, Some(ctx)))
        }
        section class="card" aria-labelledby="sen-h" {
            h2 id="sen-h" { "Sensors" }
            (sensors_table(data.sensors.as_deref()))
        }
        section class="card" aria-labelledby="map-h" {
            h2 id="map-h" { "Mappings" }
            @if data.mappings.is_empty() {
                p class="muted" { "No sensor is mapped to a receiver." }
            } @else {
                (layout::scroll_table(
                    "Which sensor alarms go to which receivers",
                    html! {
                        th scope="col" { "Sensor" }
                        th scope="col" { "Receivers" }
                        th scope="col" { "Restores" }
                        th scope="col" { "Defined in" }
                    },
                    html! {
                        @for (m, source) in &data.mappings {
                            tr {
                                th scope="row" { (m.name.as_deref().unwrap_or(&m.sensor)) }
                                td { (m.routes.iter().map(|r| r.receiver.as_str()).collect::<Vec<_>>().join(", ")) }
                                td { (if m.restore { "yes" } else { "no" }) }
                                td { (if *source == "file" { "configuration file" } else { "REST API" }) }
                            }
                        }
                    },
                ))
            }
        }
    }
}

/// `GET /alarms`.
pub async fn get(
    State(state): State<HubState>,
    ctx: PageCtx,
    Query(flash): Query<FlashQuery>,
) -> Response {
    let data = gather(&state).await;
    layout::live_page("Alarms", &ctx, render(&ctx, &data, &flash))
}

/// `POST /alarms/{receiver}/test`: the API's test alarm with its default body.
pub async fn post_test(
    State(state): State<HubState>,
    Path(receiver): Path<String>,
    headers: HeaderMap,
) -> Response {
    let resp = crate::api::alarms::test(
        State(state),
        crate::api::extract::Path(receiver.clone()),
        axum::body::Bytes::new(),
    )
    .await
    .into_response();
    let result = crate::pages::zones::api_outcome(resp)
        .await
        .map(|_| format!("Test alarm queued for {receiver}."));
    layout::form_outcome(layout::wants_json(&headers), "/alarms", result)
}

/// Sensors by id, for `/live`'s change detection.
pub fn by_id(rows: Vec<SensorRow>) -> BTreeMap<String, SensorRow> {
    rows.into_iter().map(|r| (r.id.clone(), r)).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pages::layout::tests_support::ctx;

    pub(crate) fn row(id: &str, state: &str) -> SensorRow {
        SensorRow {
            id: id.into(),
            name: format!("Door {id}"),
            kind: "door".into(),
            state: state.into(),
            alarm: state == "open",
            online: true,
            battery: Some(4),
            changed: None,
        }
    }

    #[test]
    fn renders_empty_and_with_sensors() {
        let empty = render(
            &ctx(Role::Operator),
            &AlarmsData::default(),
            &FlashQuery::default(),
        )
        .into_string();
        assert!(empty.contains("not running"));
        assert!(empty.contains("No alarm receivers"));
        let data = AlarmsData {
            sensors: Some(vec![row("d1", "open")]),
            enabled: true,
            ..Default::default()
        };
        let h = render(&ctx(Role::Viewer), &data, &FlashQuery::default()).into_string();
        assert!(h.contains("data-sensor=\"d1\""));
        assert!(h.contains("<th scope=\"row\">Door d1</th>"));
        assert!(h.contains("state bad"));
    }
}
