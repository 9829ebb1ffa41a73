//! `/setup` (administrators): the first-boot wizard the claim leads to. Each step is a focused
//! view of the settings editor ([`super::settings`]) for the keys that matter to it, plus its
//! test action; saving a step stages its changed keys and applies them at once (with any
//! other pending change). Every step can be skipped and visited again; the step list marks
//! each "done" or "skipped", kept in the hub's settings store (`wizard/steps`).

use std::collections::BTreeMap;

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;
use watchpost_config::Role;

use super::layout::{self, FlashQuery, PageCtx, csrf_input};
use super::settings::{self, Edits, Staged, back_with};
use super::settings_form::{self, Field, Section};
use super::with_headers;
use crate::auth::access::{Access, Pages};
use crate::state::HubState;

mod checks;
use checks::post_check;

/// The settings store key of the steps' marks: step id → [`Mark`] text.
pub const STEPS_KEY: &str = "wizard/steps";

/// The wizard's pages.
pub fn pages() -> Pages {
    let admin = Access::Role(Role::Admin);
    Pages::new()
        .get("/setup", admin, with_headers(index))
        .get("/setup/{step}", admin, with_headers(get_step))
        .post("/setup/{step}", admin, with_headers(post_step))
        .post("/setup/{step}/skip", admin, with_headers(post_skip))
        .post("/setup/{step}/check", admin, with_headers(post_check))
}

/// One step: its id, title, and the key paths (or their prefixes) it edits.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub id: &'static str,
    pub title: &'static str,
    pub keys: &'static [&'static str],
}

/// The steps, in order.
pub const STEPS: &[Step] = &[
    Step {
        id: "admin",
        title: "Administrator",
        keys: &[],
    },
    Step {
        id: "network",
        title: "Network and time",
        keys: &["system.hostname", "system.timezone", "system.ntp_servers"],
    },
    Step {
        id: "fieldbus",
        title: "RS485 and Neasmart",
        keys: &["fieldbus"],
    },
    Step {
        id: "yolink",
        title: "YoLink",
        keys: &["bridge.enabled", "bridge.yolink"],
    },
    Step {
        id: "alarms",
        title: "Alarm receivers and sensor mappings",
        keys: &["alarms"],
    },
    Step {
        id: "cameras",
        title: "Cameras",
        keys: &["capture.enabled", "capture.cameras"],
    },
    Step {
        id: "mqtt",
        title: "MQTT and Home Assistant",
        keys: &["broker", "bus"],
    },
];

/// A step's mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Done,
    Skipped,
}

impl Mark {
    pub fn as_str(self) -> &'static str {
        match self {
            Mark::Done => "done",
            Mark::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "done" => Some(Mark::Done),
            "skipped" => Some(Mark::Skipped),
            _ => None,
        }
    }
}

fn step(id: &str) -> Option<(usize, &'static Step)> {
    STEPS.iter().enumerate().find(|(_, s)| s.id == id)
}

/// The answer to a step id that names none: back to `/setup`, saying so.
fn unknown_step(id: &str) -> Response {
    back_with("/setup", Err(format!("There is no setup step `{id}`.")))
}

/// Whether `key` belongs to a step with these keys.
fn in_step(keys: &[&str], key: &str) -> bool {
    keys.iter().any(|k| {
        key == *k
            || key
                .strip_prefix(k)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// The sections of the editor restricted to a step's keys. A key of the step the
/// configuration does not have yet is not shown.
pub fn step_sections(effective: &Value, keys: &[&str]) -> Vec<Section> {
    settings_form::sections(effective)
        .into_iter()
        .map(|mut s| {
            s.fields.retain(|f| in_step(keys, &f.key));
            s
        })
        .filter(|s| !s.fields.is_empty())
        .collect()
}

async fn marks(state: &HubState) -> BTreeMap<String, Mark> {
    let raw: Option<BTreeMap<String, String>> = state
        .blocking(|store| store.settings().get(STEPS_KEY))
        .await
        .ok()
        .flatten();
    raw.unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| Mark::parse(&v).map(|m| (k, m)))
        .collect()
}

async fn set_mark(state: &HubState, id: &'static str, mark: Mark) -> Result<(), String> {
    state
        .blocking(move |store| {
            store.settings().write(|txn| {
                let mut m: BTreeMap<String, String> = txn.get(STEPS_KEY)?.unwrap_or_default();
                m.insert(id.to_string(), mark.as_str().to_string());
                txn.put(STEPS_KEY, &m)
            })
        })
        .await
        .map_err(|e| e.message)
}

/// The step list with links and marks.
pub fn step_list(marks: &BTreeMap<String, Mark>, current: Option<&str>) -> Markup {
    html! {
        nav aria-label="Setup steps" {
            ol class="steps" {
                @for s in STEPS {
                    li {
                        a href=(format!("/setup/{}", s.id))
                            aria-current=[(current == Some(s.id)).then_some("step")] { (s.title) }
                        @match marks.get(s.id) {
                            Some(m) => { " " span class=(format!("mark {}", m.as_str())) { "(" (m.as_str()) ")" } }
                            None => {}
                        }
                    }
                }
                li { a href="/" { "Go to the dashboard" } }
            }
        }
    }
}

/// `GET /setup`.
pub async fn index(
    State(state): State<HubState>,
    ctx: PageCtx,
    Query(flash): Query<FlashQuery>,
) -> Response {
    let marks = marks(&state).await;
    let body = html! {
        (flash.render())
        p { "Set up the appliance step by step. Every step can be skipped and visited again; all settings are also on the " a href="/settings" { "settings page" } "." }
        (step_list(&marks, None))
        p { a href=(format!("/setup/{}", STEPS[0].id)) { "Start with the first step" } }
    };
    layout::page("First-boot setup", &ctx, body)
}

/// What a step shows besides its editor: its explanation and test action (with the result of
/// the last one, `check`).
fn step_extra(
    ctx: &PageCtx,
    s: &Step,
    effective: &Value,
    ports: &[(String, String)],
    check: Option<&Markup>,
) -> Markup {
    let ids = |path: &str| -> Vec<String> {
        settings_form::at_path(effective, path)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.get("id").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    html! {
        @match s.id {
            "admin" => {
                p { "The administrator was created when the appliance was claimed. Add more people (operators, viewers) on the " a href="/users" { "users page" } "." }
            }
            "network" => {
                p { "Host name, time zone and NTP servers are applied by the image at boot (they take effect after a restart of the appliance); on a development machine they are only stored." }
            }
            "fieldbus" => {
                p { "The Neasmart base station polls the appliance over RS485 (" code { "[fieldbus.neasmart]" } "); relay modules are " code { "[[fieldbus.relays]]" } "." }
                @if ports.is_empty() {
                    p class="muted" { "The board description lists no serial ports." }
                } @else {
                    p { "Serial ports of this board (use the device path):" }
                    ul { @for (name, dev) in ports { li { code { (dev) } " (" (name) ")" } } }
                }
            }
            "yolink" => {
                p { "YoLink sensors come from the YoLink cloud (a User Access Credential: " code { "source = \"cloud\"" } ", " code { "uaid" } ", " code { "secret" } ") or a YoLink Local Hub on the LAN (" code { "source = \"local\"" } ", " code { "hub_url" } ", " code { "client_id" } ", " code { "client_secret" } ", " code { "subnet_id" } ", " code { "mqtt" } ")." }
                p { "Test the applied source (token, API, MQTT broker; at most 5 s a step). After applying, the bridge worker's state on the " a href="/system" { "system page" } " says whether it stays connected." }
                form method="post" action="/setup/yolink/check" class="inline" {
                    (csrf_input(ctx))
                    button type="submit" class="secondary" { "Test connection" }
                }
                @if let Some(c) = check { (c) }
            }
            "alarms" => {
                p { "Receivers (SIA DC-09, CHEKT, relays) and the sensor mappings are " code { "[[alarms.receivers]]" } " and the mappings below; their state is on the " a href="/alarms" { "alarms page" } "." }
                @let receivers = ids("alarms.receivers");
                @if receivers.is_empty() {
                    p class="muted" { "No receivers are configured yet: apply one, then send a test alarm." }
                }
                @for r in &receivers {
                    form method="post" action=(format!("/alarms/{}/test", layout::url_encode(r))) class="inline" data-enhance {
                        (csrf_input(ctx))
                        button type="submit" class="secondary" { "Send test alarm to " (r) }
                        span role="status" aria-live="polite" {}
                    }
                }
            }
            "cameras" => {
                p { "Add cameras by RTSP URL in " code { "[[cameras]]" } " (" code { "id" } ", " code { "name" } ", " code { "[cameras.source]" } " with " code { "type = \"rtsp\"" } " and " code { "url" } "), or find ONVIF cameras on the LAN (WS-Discovery) and add one to the form." }
                form method="post" action="/setup/cameras/check" class="settings" {
                    (csrf_input(ctx))
                    label for="d-user" { "ONVIF user (optional)" }
                    input id="d-user" name="user" type="text" autocomplete="off";
                    label for="d-password" { "ONVIF password" }
                    input id="d-password" name="password" type="password" autocomplete="off";
                    label for="d-hosts" { "Also ask these addresses (optional, comma-separated, for cameras on another subnet)" }
                    input id="d-hosts" name="hosts" type="text";
                    button type="submit" class="secondary" { "Find cameras" }
                }
                @if let Some(c) = check { (c) }
                @let cams = ids("capture.cameras");
                @if !cams.is_empty() {
                    p { "Test snapshots (after applying):" }
                    div class="cards" {
                        @for c in &cams {
                            figure class="card" {
                                img src=(format!("/api/v1/cameras/{}/snapshot", layout::url_encode(c))) alt=(format!("Snapshot of {c}")) loading="lazy";
                                figcaption { (c) }
                            }
                        }
                    }
                }
            }
            "mqtt" => {
                p { "The internal bus is the embedded MQTT broker (" code { "[broker]" } ") unless " code { "[bus]" } " points at an external one. Home Assistant discovery is configured in a later release; this step shows the MQTT keys that exist." }
            }
            _ => {}
        }
    }
}

/// A step's page body; `check`: the result of the step's check button, shown with it.
#[allow(clippy::too_many_arguments)] // each is one independent part of the page
pub fn render_step(
    ctx: &PageCtx,
    index: usize,
    marks: &BTreeMap<String, Mark>,
    effective: &Value,
    edits: &Edits,
    ports: &[(String, String)],
    flash: &FlashQuery,
    check: Option<&Markup>,
) -> Markup {
    let s = &STEPS[index];
    let sections = step_sections(effective, s.keys);
    let fields: Vec<Field> = sections.iter().flat_map(|x| x.fields.clone()).collect();
    let next = STEPS
        .get(index + 1)
        .map_or_else(|| "/".to_string(), |n| format!("/setup/{}", n.id));
    html! {
        (flash.render())
        (step_list(marks, Some(s.id)))
        section aria-labelledby="step-h" {
            h2 id="step-h" { "Step " (index + 1) " of " (STEPS.len()) ": " (s.title) }
            (settings::error_summary(&fields, edits))
            (step_extra(ctx, s, effective, ports, check))
            @if !sections.is_empty() {
                (settings::editor(ctx, &sections, edits, &format!("/setup/{}", s.id), "Save and apply", true))
            }
            form method="post" action=(format!("/setup/{}/skip", s.id)) class="inline" {
                (csrf_input(ctx))
                button type="submit" class="secondary" { "Skip this step" }
            }
            p {
                a href=(next) { @if index + 1 < STEPS.len() { "Next step" } @else { "Go to the dashboard" } }
            }
        }
    }
}

/// The board description's serial ports: (name, device).
fn serial_ports(state: &HubState) -> Vec<(String, String)> {
    match watchpost_board::detect(Some(&state.config.system.board)) {
        Ok(b) => b
            .serial
            .iter()
            .map(|p| (p.name.clone(), p.device.display().to_string()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

async fn step_page(
    state: &HubState,
    ctx: &PageCtx,
    index: usize,
    edits: &Edits,
    status: StatusCode,
    flash: &FlashQuery,
    check: Option<&Markup>,
) -> Response {
    let s = &STEPS[index];
    let title = format!("Setup: {}", s.title);
    let view = match crate::api::settings::load_view(state).await {
        Ok(v) => v,
        Err(e) => {
            let body = html! {
                (layout::notice(layout::Flash::Error, &format!("The settings cannot be read: {}", e.message)))
                (step_list(&marks(state).await, Some(s.id)))
            };
            return layout::page(&title, ctx, body);
        }
    };
    let marks = marks(state).await;
    let body = render_step(
        ctx,
        index,
        &marks,
        &view.effective,
        edits,
        &serial_ports(state),
        flash,
        check,
    );
    layout::page_with_status(status, &title, ctx, body)
}

/// `GET /setup/{step}`.
pub async fn get_step(
    State(state): State<HubState>,
    ctx: PageCtx,
    Path(id): Path<String>,
    Query(flash): Query<FlashQuery>,
) -> Response {
    let Some((index, _)) = step(&id) else {
        return unknown_step(&id);
    };
    step_page(
        &state,
        &ctx,
        index,
        &Edits::default(),
        StatusCode::OK,
        &flash,
        None,
    )
    .await
}

/// `POST /setup/{step}`: stage the step's changed keys, apply them, mark the step done.
pub async fn post_step(
    State(state): State<HubState>,
    ctx: PageCtx,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let Some((index, s)) = step(&id) else {
        return unknown_step(&id);
    };
    let back = format!("/setup/{}", s.id);
    let view = match crate::api::settings::load_view(&state).await {
        Ok(v) => v,
        Err(e) => return back_with(&back, Err(e.message)),
    };
    let fields: Vec<Field> = step_sections(&view.effective, s.keys)
        .into_iter()
        .flat_map(|x| x.fields)
        .collect();
    let message = match settings::stage_form(&state, &fields, &form).await {
        Staged::Refused(edits) => {
            return step_page(
                &state,
                &ctx,
                index,
                &edits,
                StatusCode::UNPROCESSABLE_ENTITY,
                &FlashQuery::default(),
                None,
            )
            .await;
        }
        Staged::Failed(e) => return back_with(&back, Err(e.message)),
        Staged::Ok(changed) if changed.is_empty() => "Nothing changed.".to_string(),
        Staged::Ok(_) => match crate::api::settings::commit_pending(&state).await {
            Ok(a) => settings::applied_message(&a),
            Err(e) => return back_with(&back, Err(e.message)),
        },
    };
    if let Err(e) = set_mark(&state, s.id, Mark::Done).await {
        return back_with(&back, Err(e));
    }
    back_with(&back, Ok(message))
}

/// `POST /setup/{step}/skip`: mark it skipped, go on to the next step.
pub async fn post_skip(State(state): State<HubState>, Path(id): Path<String>) -> Response {
    let Some((index, s)) = step(&id) else {
        return unknown_step(&id);
    };
    if let Err(e) = set_mark(&state, s.id, Mark::Skipped).await {
        return back_with(&format!("/setup/{}", s.id), Err(e));
    }
    let next = STEPS
        .get(index + 1)
        .map_or_else(|| "/setup".to_string(), |n| format!("/setup/{}", n.id));
    back_with(&next, Ok(format!("Skipped: {}.", s.title)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::pages::layout::tests_support::ctx;

    fn effective() -> Value {
        json!({
            "system": {"data_dir": "/x", "hostname": null, "timezone": "UTC", "ntp_servers": []},
            "alarms": {"receivers": [{"id": "cms", "key": "***"}]},
            "capture": {"enabled": true, "cameras": [{"id": "door", "url": "rtsp://x"}], "storage": {"a": 1}},
        })
    }

    /// The step `id` as an admin sees it, with no edits, flash or check result.
    fn admin_step(id: &str, marks: &BTreeMap<String, Mark>, ports: &[(String, String)]) -> String {
        let (i, _) = step(id).unwrap();
        render_step(
            &ctx(Role::Admin),
            i,
            marks,
            &effective(),
            &Edits::default(),
            ports,
            &FlashQuery::default(),
            None,
        )
        .into_string()
    }

    #[test]
    fn a_step_shows_only_its_keys_and_its_test() {
        let mut marks = BTreeMap::new();
        marks.insert("admin".to_string(), Mark::Done);
        marks.insert("fieldbus".to_string(), Mark::Skipped);
        let html = admin_step("network", &marks, &[]);
        assert!(html.contains("name=\"system.hostname\""));
        assert!(html.contains("name=\"system.timezone\""));
        assert!(html.contains("name=\"system.ntp_servers\""));
        assert!(!html.contains("name=\"system.data_dir\""));
        assert!(html.contains("(skipped)") && html.contains("(done)"));
        assert!(html.contains("href=\"/setup/network\" aria-current=\"step\""));
        assert!(html.contains("action=\"/setup/network/skip\""));

        let html = admin_step("alarms", &marks, &[]);
        assert!(html.contains("action=\"/alarms/cms/test\""));
        let html = admin_step(
            "cameras",
            &marks,
            &[("rs485-0".into(), "/dev/ttyAMA0".into())],
        );
        assert!(html.contains("src=\"/api/v1/cameras/door/snapshot\""));
        assert!(!html.contains("capture.storage"));
        assert!(html.contains("WS-Discovery"));
    }

    #[test]
    fn step_keys_match_on_boundaries() {
        assert!(in_step(&["bridge.enabled"], "bridge.enabled"));
        assert!(in_step(&["alarms"], "alarms.receivers"));
        assert!(!in_step(&["bus"], "business.x"));
    }
}
