//! `/relays`: the Modbus relay modules with each channel's state, and for operators on, off,
//! pulse and test per channel (the REST API's `POST /api/v1/relays/...` command paths).

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;
use watchpost_config::Role;

use crate::api::relays::ModuleItem;
use crate::pages::layout::{self, FlashQuery, PageCtx, csrf_input};
use crate::pages::zones::api_outcome;
use crate::state::HubState;

pub fn render(ctx: &PageCtx, modules: &[ModuleItem], flash: &FlashQuery) -> Markup {
    let control = ctx.allows(Role::Operator);
    html! {
        (flash.render())
        @if modules.is_empty() {
            p class="muted" { "No relay modules are configured ([[fieldbus.relays]])." }
        }
        @for m in modules {
            section class="card" aria-labelledby=(format!("m-{}", m.module)) {
                h2 id=(format!("m-{}", m.module)) { "Module " (m.module) " (unit " (m.unit_id) ")" }
                dl class="kv" {
                    dt { "Link" }
                    dd { @match m.breaker {
                        None => span class="muted" { "no state from the fieldbus worker yet" },
                        Some(b) => (b.as_str()),
                    } }
                    @if let Some(Some(e)) = &m.last_error { dt { "Last error" } dd class="bad" { (e) } }
                }
                @if m.channels.is_empty() {
                    p class="muted" { "No channel state yet." }
                } @else {
                    (layout::scroll_table(
                        &format!("Channels of module {}", m.module),
                        html! {
                            th scope="col" { "Channel" }
                            th scope="col" { "Mode" }
                            th scope="col" { "State" }
                            @if control { th scope="col" { "Control" } }
                        },
                        html! {
                            @for c in &m.channels {
                                tr {
                                    th scope="row" { (c.channel) " · " (c.name) }
                                    td { (serde_json::to_value(c.mode).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()) }
                                    td class="state" {
                                        @match c.on { Some(true) => "on", Some(false) => "off", None => "unknown" }
                                        @if c.pulse_active { " (pulsing)" }
                                    }
                                    @if control {
                                        td {
                                            form class="inline" method="post" action=(format!("/relays/{}/{}", layout::url_encode(&m.module), layout::url_encode(&c.name))) data-enhance {
                                                (csrf_input(ctx))
                                                button type="submit" name="action" value="on" aria-label=(format!("Switch {} on", c.name)) { "On" }
                                                button type="submit" name="action" value="off" class="secondary" aria-label=(format!("Switch {} off", c.name)) { "Off" }
                                                label for=(format!("p-{}-{}", m.module, c.name)) { "Pulse ms" }
                                                input id=(format!("p-{}-{}", m.module, c.name)) name="pulse_ms" type="number" min="1" max="600000" value="1000" size="6";
                                                button type="submit" name="action" value="pulse" aria-label=(format!("Pulse {}", c.name)) { "Pulse" }
                                                span role="status" aria-live="polite" {}
                                            }
                                            form class="inline" method="post" action=(format!("/relays/{}/{}/test", layout::url_encode(&m.module), layout::url_encode(&c.name))) data-enhance {
                                                (csrf_input(ctx))
                                                button type="submit" class="secondary" aria-label=(format!("Test {}", c.name)) { "Test" }
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
    }
}

/// `GET /relays`.
pub async fn get(
    State(state): State<HubState>,
    ctx: PageCtx,
    Query(flash): Query<FlashQuery>,
) -> Response {
    let modules = crate::api::relays::modules(&state);
    layout::page("Relays", &ctx, render(&ctx, &modules, &flash))
}

/// A channel form: `action` is `on`, `off` or `pulse` (with `pulse_ms`).
#[derive(Debug, Deserialize)]
pub struct SetForm {
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub pulse_ms: String,
}

/// The API body of a channel form.
pub fn set_body(f: &SetForm) -> Result<serde_json::Value, String> {
    match f.action.as_str() {
        "on" => Ok(json!({"on": true})),
        "off" => Ok(json!({"on": false})),
        "pulse" => f
            .pulse_ms
            .trim()
            .parse::<u64>()
            .map(|ms| json!({ "pulse_ms": ms }))
            .map_err(|_| format!("the pulse length `{}` is not a number of ms", f.pulse_ms)),
        other => Err(format!("unknown action `{other}`")),
    }
}

/// `POST /relays/{module}/{channel}`.
pub async fn post_set(
    State(state): State<HubState>,
    Path((module, channel)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<SetForm>,
) -> Response {
    let result = match set_body(&form) {
        Err(m) => Err((StatusCode::BAD_REQUEST, m)),
        Ok(body) => {
            let resp = crate::api::relays::set(
                State(state),
                crate::api::extract::Path((module.clone(), channel.clone())),
                axum::body::Bytes::from(body.to_string()),
            )
            .await
            .into_response();
            api_outcome(resp)
                .await
                .map(|_| format!("{module}/{channel}: {} done.", form.action))
        }
    };
    layout::form_outcome(layout::wants_json(&headers), "/relays", result)
}

/// `POST /relays/{module}/{channel}/test`.
pub async fn post_test(
    State(state): State<HubState>,
    Path((module, channel)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let resp = crate::api::relays::test(
        State(state),
        crate::api::extract::Path((module.clone(), channel.clone())),
    )
    .await
    .into_response();
    let result = api_outcome(resp)
        .await
        .map(|_| format!("{module}/{channel}: test pulse started."));
    layout::form_outcome(layout::wants_json(&headers), "/relays", result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::layout::tests_support::ctx;

    #[test]
    fn renders_empty_and_unknown_modules() {
        let h = render(&ctx(Role::Operator), &[], &FlashQuery::default()).into_string();
        assert!(h.contains("No relay modules"));
        let m = ModuleItem {
            module: "out".into(),
            unit_id: 2,
            breaker: None,
            consecutive_failures: None,
            last_error: None,
            last_ok_unix_ms: None,
            channels: vec![],
        };
        let h = render(&ctx(Role::Operator), &[m], &FlashQuery::default()).into_string();
        assert!(h.contains("Module out (unit 2)") && h.contains("no state"));
    }

    #[test]
    fn forms_become_api_bodies() {
        let f = |a: &str, p: &str| {
            set_body(&SetForm {
                action: a.into(),
                pulse_ms: p.into(),
            })
        };
        assert_eq!(f("on", "").unwrap(), json!({"on": true}));
        assert_eq!(f("off", "").unwrap(), json!({"on": false}));
        assert_eq!(f("pulse", "500").unwrap(), json!({"pulse_ms": 500}));
        assert!(f("pulse", "x").is_err());
        assert!(f("explode", "").is_err());
    }
}
