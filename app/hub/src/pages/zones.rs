//! `/zones`: the Neasmart zones (temperature, humidity, setpoint, state, a 24 h chart) and the
//! global mode and state, with controls for operators. The controls POST to page routes that
//! call the REST API's command path (`crate::api::neasmart`, validation and read-your-writes
//! included) and answer `303` back here, or JSON to the page's script.

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};
use watchpost_config::Role;
use watchpost_neasmart::state::{GlobalState, ZoneState};
use watchpost_neasmart::{Mode, State as ZoneMode};

use crate::api::neasmart::{self as api, Flavor};
use crate::pages::history::{self, ZoneHistory};
use crate::pages::layout::{self, FlashQuery, PageCtx, csrf_input};
use crate::pages::{chart, fmt};
use crate::state::HubState;

/// What the page shows.
#[derive(Debug, Clone, Default)]
pub struct ZonesData {
    /// The zones the base has written, in numeric order ([`visible`]).
    pub zones: Vec<ZoneState>,
    pub global: Option<GlobalState>,
    pub history: ZoneHistory,
    pub now_ms: i64,
    /// The installation's setpoint range, °C.
    pub setpoint_min: f64,
    pub setpoint_max: f64,
}

/// The zones to show: those the base station has written a temperature for, sorted by base
/// and zone as numbers (3.2 before 3.11).
pub fn visible(zones: Vec<ZoneState>) -> Vec<ZoneState> {
    let mut v: Vec<ZoneState> = zones
        .into_iter()
        .filter(|z| z.temperature.is_some())
        .collect();
    v.sort_by_key(|z| (z.id.base(), z.id.zone()));
    v
}

/// `"1.2"`.
pub fn zone_label(z: &ZoneState) -> String {
    format!("{}.{}", z.id.base(), z.id.zone())
}

pub async fn gather(state: &HubState) -> ZonesData {
    let n = &state.config.fieldbus.neasmart;
    ZonesData {
        zones: visible(state.neasmart.active_zones()),
        global: state.neasmart.global(),
        history: history::load(state).await,
        now_ms: now_ms(),
        setpoint_min: n.setpoint_min_celsius,
        setpoint_max: n.setpoint_max_celsius,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

const STATES: [u16; 6] = [1, 2, 3, 4, 5, 6];
const MODES: [u16; 5] = [1, 2, 3, 4, 5];

fn select(
    id: &str,
    name: &str,
    options: &[u16],
    selected: u16,
    label: fn(u16) -> &'static str,
) -> Markup {
    html! {
        select id=(id) name=(name) {
            @for v in options {
                option value=(v) selected[*v == selected] { (fmt::label(label(*v))) }
            }
        }
    }
}

/// The page body.
pub fn render(ctx: &PageCtx, data: &ZonesData, flash: &FlashQuery) -> Markup {
    let control = ctx.allows(Role::Operator);
    html! {
        (flash.render())
        section class="card" aria-labelledby="global-h" {
            h2 id="global-h" { "Whole installation" }
            @match &data.global {
                None => p class="muted" { "No mode or state from the base station yet." },
                Some(g) => {
                    dl class="kv" {
                        dt { "Mode" } dd { (fmt::label(&g.mode_name)) @if g.pending_mode { " (change pending)" } }
                        dt { "State" } dd { (fmt::label(&g.state_name)) @if g.pending_state { " (change pending)" } }
                    }
                    @if control {
                        form class="inline" method="post" action="/zones/mode" data-enhance {
                            (csrf_input(ctx))
                            label for="g-mode" { "Mode" }
                            (select("g-mode", "mode", &MODES, g.mode, Mode::name))
                            button type="submit" { "Set mode" }
                            span role="status" aria-live="polite" {}
                        }
                        form class="inline" method="post" action="/zones/state" data-enhance {
                            (csrf_input(ctx))
                            label for="g-state" { "State" }
                            (select("g-state", "state", &STATES, g.state, ZoneMode::name))
                            button type="submit" { "Set state" }
                            span role="status" aria-live="polite" {}
                        }
                    }
                }
            }
        }
        h2 { "Zones" }
        @if data.zones.is_empty() {
            p class="muted" { "No zone has reported a temperature yet. Zones appear once the base station writes them." }
        }
        div class="zones" aria-live="polite" {
            @for z in &data.zones {
                @let id = zone_label(z);
                section class="card" data-zone=(id) aria-labelledby=(format!("z-{id}")) {
                    h2 id=(format!("z-{id}")) { "Zone " (id) }
                    p class="reading" { span data-field="temperature" { (fmt::opt(z.temperature, "")) } " °C" }
                    dl class="kv" {
                        dt { "Setpoint" } dd { span data-field="setpoint" { (fmt::opt(z.setpoint, "")) } " °C"
                            @if z.pending_setpoint { " (pending)" } }
                        dt { "Humidity" } dd { span data-field="humidity" { (z.relative_humidity) } " %" }
                        dt { "State" } dd { span data-field="state" { (fmt::label(&z.state_name)) }
                            @if z.pending_state { " (pending)" } }
                    }
                    (chart::temperature_chart(&format!("Zone {id}"), &data.history.series(&id, data.now_ms)))
                    @if control {
                        form class="inline" method="post" action=(format!("/zones/{}/{}", z.id.base(), z.id.zone()))
                            data-enhance data-target=(format!("[data-zone=\"{id}\"]")) {
                            (csrf_input(ctx))
                            div {
                                label for=(format!("sp-{id}")) { "Setpoint °C" }
                                br;
                                input id=(format!("sp-{id}")) name="setpoint" type="number" step="0.5"
                                    min=(data.setpoint_min) max=(data.setpoint_max)
                                    value=(z.setpoint.map(|s| format!("{s:.1}")).unwrap_or_default());
                            }
                            div {
                                label for=(format!("st-{id}")) { "State" }
                                br;
                                (select(&format!("st-{id}"), "state", &STATES, z.state, ZoneMode::name))
                            }
                            button type="submit" { "Apply" }
                            span role="status" aria-live="polite" {}
                        }
                    }
                }
            }
        }
    }
}

/// `GET /zones`.
pub async fn get(
    State(state): State<HubState>,
    ctx: PageCtx,
    Query(flash): Query<FlashQuery>,
) -> Response {
    let data = gather(&state).await;
    layout::live_page("Heating zones", &ctx, render(&ctx, &data, &flash))
}

/// A zone form: setpoint and/or state (empty fields are left alone).
#[derive(Debug, Deserialize)]
pub struct ZoneForm {
    #[serde(default)]
    pub setpoint: String,
    #[serde(default)]
    pub state: String,
}

/// The API command body of a zone form.
pub fn zone_body(f: &ZoneForm) -> Result<Value, String> {
    let mut body = serde_json::Map::new();
    let sp = f.setpoint.trim();
    if !sp.is_empty() {
        let v: f64 = sp
            .replace(',', ".")
            .parse()
            .map_err(|_| format!("the setpoint `{sp}` is not a number"))?;
        body.insert("setpoint".into(), json!(v));
    }
    let st = f.state.trim();
    if !st.is_empty() {
        let v: u16 = st
            .parse()
            .map_err(|_| format!("the state `{st}` is not a state number"))?;
        body.insert("state".into(), json!(v));
    }
    if body.is_empty() {
        return Err("give a setpoint or a state".into());
    }
    Ok(Value::Object(body))
}

/// What an API answer means for a form: its JSON on success, the API's message otherwise.
pub async fn api_outcome(resp: Response) -> Result<Value, (StatusCode, String)> {
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        Ok(body)
    } else {
        let message = body["error"]["message"]
            .as_str()
            .map_or_else(|| status.to_string(), str::to_string);
        Err((status, message))
    }
}

/// `POST /zones/{base}/{zone}`.
pub async fn post_zone(
    State(state): State<HubState>,
    Path((base, zone)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<ZoneForm>,
) -> Response {
    let json = layout::wants_json(&headers);
    let result = match zone_body(&form) {
        Err(m) => Err((StatusCode::BAD_REQUEST, m)),
        Ok(body) => {
            let bytes = axum::body::Bytes::from(body.to_string());
            let resp = api::zone_post(Flavor::Api, state, base.clone(), zone.clone(), bytes).await;
            api_outcome(resp)
                .await
                .map(|_| format!("Zone {base}.{zone}: sent to the base station."))
        }
    };
    layout::form_outcome(json, "/zones", result)
}

#[derive(Debug, Deserialize)]
pub struct ModeForm {
    pub mode: String,
}

#[derive(Debug, Deserialize)]
pub struct StateForm {
    pub state: String,
}

fn number_body(key: &str, text: &str) -> Result<axum::body::Bytes, (StatusCode, String)> {
    let v: u16 = text.trim().parse().map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            format!("`{text}` is not a {key} number"),
        )
    })?;
    Ok(axum::body::Bytes::from(json!({ key: v }).to_string()))
}

/// `POST /zones/mode`.
pub async fn post_mode(
    State(state): State<HubState>,
    headers: HeaderMap,
    Form(form): Form<ModeForm>,
) -> Response {
    let result = match number_body("mode", &form.mode) {
        Err(e) => Err(e),
        Ok(bytes) => api_outcome(api::mode_post(Flavor::Api, state, bytes).await)
            .await
            .map(|_| "Mode sent to the base station.".to_string()),
    };
    layout::form_outcome(layout::wants_json(&headers), "/zones", result)
}

/// `POST /zones/state`.
pub async fn post_state(
    State(state): State<HubState>,
    headers: HeaderMap,
    Form(form): Form<StateForm>,
) -> Response {
    let result = match number_body("state", &form.state) {
        Err(e) => Err(e),
        Ok(bytes) => api_outcome(api::state_post(Flavor::Api, state, bytes).await)
            .await
            .map(|_| "State sent to the base station.".to_string()),
    };
    layout::form_outcome(layout::wants_json(&headers), "/zones", result)
}

#[cfg(test)]
pub(crate) mod tests {
    use watchpost_neasmart::ZoneId;

    use super::*;
    use crate::pages::layout::tests_support::ctx;

    pub(crate) fn zone(base: u8, zone: u8, t: Option<f64>) -> ZoneState {
        ZoneState {
            id: ZoneId::new(base, zone).unwrap(),
            active: true,
            state: 1,
            state_name: "normal".into(),
            setpoint: Some(21.5),
            temperature: t,
            relative_humidity: 40,
            pending_state: false,
            pending_setpoint: false,
        }
    }

    #[test]
    fn zones_sort_numerically_and_unwritten_ones_are_hidden() {
        let v = visible(vec![
            zone(3, 11, Some(20.0)),
            zone(3, 2, Some(20.0)),
            zone(1, 1, None),
            zone(2, 12, Some(19.0)),
        ]);
        let labels: Vec<String> = v.iter().map(zone_label).collect();
        assert_eq!(labels, ["2.12", "3.2", "3.11"]);
    }

    #[test]
    fn renders_empty_and_full_and_hides_controls_from_viewers() {
        let empty = render(
            &ctx(Role::Viewer),
            &ZonesData::default(),
            &FlashQuery::default(),
        )
        .into_string();
        assert!(empty.contains("No zone has reported"));
        let data = ZonesData {
            zones: vec![zone(1, 2, Some(20.5))],
            setpoint_min: 5.0,
            setpoint_max: 30.0,
            ..Default::default()
        };
        let viewer = render(&ctx(Role::Viewer), &data, &FlashQuery::default()).into_string();
        assert!(viewer.contains("data-zone=\"1.2\"") && viewer.contains("20.5"));
        assert!(!viewer.contains("<form"));
        let op = render(&ctx(Role::Operator), &data, &FlashQuery::default()).into_string();
        assert!(op.contains("action=\"/zones/1/2\""));
        assert!(op.contains("name=\"csrf\""));
        assert!(op.contains("<label for=\"sp-1.2\">"));
    }

    #[test]
    fn a_zone_form_becomes_the_api_body() {
        let f = |sp: &str, st: &str| {
            zone_body(&ZoneForm {
                setpoint: sp.into(),
                state: st.into(),
            })
        };
        assert_eq!(f("21,5", "").unwrap(), json!({"setpoint": 21.5}));
        assert_eq!(f("", "3").unwrap(), json!({"state": 3}));
        assert_eq!(f("20", "1").unwrap(), json!({"setpoint": 20.0, "state": 1}));
        assert!(f("", "").is_err());
        assert!(f("warm", "").is_err());
    }
}
