//! The frame of every page (head, header with the signed-in user, navigation, main, footer)
//! and the form helpers the pages share. The auth pages (login, claim, account, users) use the
//! same frame: [`page`] with a [`PageCtx`] taken from the request.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use watchpost_config::Role;

use crate::auth::{Csrf, Principal};
use crate::pages::assets;
use crate::state::HubState;

/// What the frame needs to know about the request.
#[derive(Debug, Clone, Default)]
pub struct PageCtx {
    /// The signed-in user, if any (the login page has none).
    pub principal: Option<Principal>,
    /// The session's CSRF token (forms and the script's requests carry it).
    pub csrf: Option<String>,
    /// The navigation entry this page belongs to ([`NAV`] ids; `""` for none).
    pub current: &'static str,
    /// The firmware version (footer).
    pub version: &'static str,
    /// The host the browser addressed (`Host` without the port), for links to other
    /// services of the box (RTSP).
    pub host: String,
}

impl PageCtx {
    /// Whether the signed-in user has at least `role`.
    pub fn allows(&self, role: Role) -> bool {
        self.principal.as_ref().is_some_and(|p| p.role.allows(role))
    }
}

/// The navigation: (id, path, label, least role).
pub const NAV: &[(&str, &str, &str, Role)] = &[
    ("dashboard", "/", "Dashboard", Role::Viewer),
    ("zones", "/zones", "Heating zones", Role::Viewer),
    ("cameras", "/cameras", "Cameras", Role::Viewer),
    ("alarms", "/alarms", "Alarms", Role::Viewer),
    ("relays", "/relays", "Relays", Role::Viewer),
    ("events", "/events", "Events", Role::Viewer),
    ("monitor", "/monitor", "Monitor", Role::Viewer),
    ("system", "/system", "System", Role::Viewer),
    ("update", "/update", "Update", Role::Viewer),
    ("users", "/users", "Users", Role::Admin),
    ("settings", "/settings", "Settings", Role::Admin),
    ("account", "/account", "Account", Role::Viewer),
];

/// The navigation id of a request path (`/zones/1/2` → `zones`).
pub fn nav_id(path: &str) -> &'static str {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    if first.is_empty() {
        return "dashboard";
    }
    NAV.iter()
        .find(|(id, ..)| *id == first)
        .map_or("", |(id, ..)| *id)
}

impl FromRequestParts<HubState> for PageCtx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &HubState,
    ) -> Result<Self, Self::Rejection> {
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(host_without_port)
            .unwrap_or_default();
        Ok(PageCtx {
            principal: parts.extensions.get::<Principal>().cloned(),
            csrf: parts.extensions.get::<Csrf>().map(|c| c.0.clone()),
            current: nav_id(parts.uri.path()),
            version: state.version,
            host,
        })
    }
}

/// `box.local:8080` → `box.local`, `[fe80::1]:80` → `[fe80::1]`.
pub fn host_without_port(host: &str) -> String {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(i) => host[..=i].to_string(),
            None => host.to_string(),
        };
    }
    host.split(':').next().unwrap_or(host).to_string()
}

/// A whole page: `200 text/html` with the security headers.
pub fn page(title: &str, ctx: &PageCtx, body: Markup) -> Response {
    page_with_status(StatusCode::OK, title, ctx, body)
}

/// A whole page with another status (a form answered with its errors: 400).
pub fn page_with_status(status: StatusCode, title: &str, ctx: &PageCtx, body: Markup) -> Response {
    let mut resp = (status, render(title, ctx, body, false)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    crate::pages::security_headers(resp)
}

/// A page whose values the script updates from `/live` (`data-live` on `<body>`).
pub fn live_page(title: &str, ctx: &PageCtx, body: Markup) -> Response {
    let mut resp = (StatusCode::OK, render(title, ctx, body, true)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    crate::pages::security_headers(resp)
}

/// The document of a page (the pure part of [`page`]).
pub fn render(title: &str, ctx: &PageCtx, body: Markup, live: bool) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(token) = &ctx.csrf {
                    meta name="csrf-token" content=(token);
                }
                title { (title) " · Watchpost" }
                link rel="icon" type="image/svg+xml" href=(assets::url("favicon.svg"));
                link rel="stylesheet" href=(assets::url("app.css"));
                script src=(assets::url("app.js")) defer {}
            }
            body data-live[live] {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    a class="brand" href="/" {
                        img src=(assets::url("favicon.svg")) alt="";
                        "Watchpost"
                    }
                    @if let Some(p) = &ctx.principal {
                        div class="who" {
                            span { (p.user) " (" (p.role.as_str()) ")" }
                            form method="post" action="/logout" {
                                (csrf_input(ctx))
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                @if ctx.principal.is_some() {
                    nav class="main" aria-label="Main" {
                        ul {
                            @for (id, path, label, least) in NAV {
                                @if ctx.allows(*least) {
                                    li {
                                        a href=(path)
                                            aria-current=[(ctx.current == *id).then_some("page")]
                                            { (label) }
                                    }
                                }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    div id="flash" role="status" aria-live="polite" class="visually-hidden" {}
                    (body)
                }
                footer {
                    "Watchpost " (ctx.version)
                    @if live {
                        " · " span id="live-status" role="status" aria-live="polite" { "Live updates need JavaScript." }
                    }
                }
            }
        }
    }
}

/// The hidden CSRF field of a form that changes state (empty without a session token).
pub fn csrf_input(ctx: &PageCtx) -> Markup {
    html! {
        @if let Some(token) = &ctx.csrf {
            input type="hidden" name="csrf" value=(token);
        }
    }
}

/// A labelled input with its error, tied together with `aria-describedby`.
pub fn field(label: &str, name: &str, kind: &str, value: &str, error: Option<&str>) -> Markup {
    let id = format!("f-{name}");
    let err_id = format!("{id}-error");
    html! {
        div class="field" {
            label for=(id) { (label) }
            input id=(id) name=(name) type=(kind) value=(value)
                aria-invalid=[error.map(|_| "true")]
                aria-describedby=[error.map(|_| err_id.as_str())];
            @if let Some(e) = error {
                span id=(err_id) class="error" { (e) }
            }
        }
    }
}

/// What kind of message a box carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flash {
    /// Something worked (`role="status"`).
    Info,
    /// Something failed (`role="alert"`).
    Error,
}

/// A message box at the top of a page.
pub fn notice(kind: Flash, text: &str) -> Markup {
    let (class, role) = match kind {
        Flash::Info => ("notice info", "status"),
        Flash::Error => ("notice error", "alert"),
    };
    html! { p class=(class) role=(role) { (text) } }
}

/// A data table in a scrolling box that keyboard users can focus, its caption for screen
/// readers only: `head` is the header row's cells, `body` the rows.
pub fn scroll_table(caption: &str, head: Markup, body: Markup) -> Markup {
    table_in_scroll(caption, head, body, false)
}

/// A [`scroll_table`] whose cells `/live` updates: its body is a polite live region.
pub fn live_scroll_table(caption: &str, head: Markup, body: Markup) -> Markup {
    table_in_scroll(caption, head, body, true)
}

fn table_in_scroll(caption: &str, head: Markup, body: Markup, live: bool) -> Markup {
    html! {
        div class="scroll" tabindex="0" {
            table {
                caption class="visually-hidden" { (caption) }
                thead { tr { (head) } }
                @if live {
                    tbody aria-live="polite" { (body) }
                } @else {
                    tbody { (body) }
                }
            }
        }
    }
}

/// The result of a form POST: `303` back to `back` without the script; for the script
/// (`Accept: application/json`), `{"ok", "message"}` with the status of the outcome.
pub fn form_outcome(
    wants_json: bool,
    back: &str,
    result: Result<String, (StatusCode, String)>,
) -> Response {
    match (wants_json, result) {
        (true, Ok(message)) => {
            axum::Json(serde_json::json!({"ok": true, "message": message})).into_response()
        }
        (true, Err((status, message))) => (
            status,
            axum::Json(serde_json::json!({"ok": false, "message": message})),
        )
            .into_response(),
        (false, Ok(message)) => see_other(back, "ok", &message),
        (false, Err((_, message))) => see_other(back, "error", &message),
    }
}

/// `303 See Other` to `back?key=message`.
fn see_other(back: &str, key: &str, message: &str) -> Response {
    let sep = if back.contains('?') { '&' } else { '?' };
    let location = format!("{back}{sep}{key}={}", url_encode(message));
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Whether a form POST came from the page's script.
pub fn wants_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// Percent-encodes a query value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `?ok=` / `?error=` message a form's redirect carries, as a box.
#[derive(Debug, Default, serde::Deserialize)]
pub struct FlashQuery {
    pub ok: Option<String>,
    pub error: Option<String>,
}

impl FlashQuery {
    pub fn render(&self) -> Markup {
        html! {
            @if let Some(m) = &self.ok { (notice(Flash::Info, m)) }
            @if let Some(m) = &self.error { (notice(Flash::Error, m)) }
        }
    }
}

/// A `–` for values that are not known.
pub const DASH: PreEscaped<&str> = PreEscaped("–");

/// Page contexts for the pages' unit tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub(crate) fn ctx(role: Role) -> PageCtx {
        PageCtx {
            principal: Some(Principal {
                user: "eve".into(),
                role,
                via: crate::auth::Via::Session,
            }),
            csrf: Some("tok123".into()),
            current: "zones",
            version: "0.1.0",
            host: "box.local".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer_ctx() -> PageCtx {
        tests_support::ctx(Role::Viewer)
    }

    #[test]
    fn the_frame_has_landmarks_csrf_and_only_allowed_nav() {
        let html = render("Zones", &viewer_ctx(), html! { p { "x" } }, false).into_string();
        for needle in [
            "<html lang=\"en\">",
            "class=\"skip\" href=\"#main\"",
            "<header",
            "<nav class=\"main\" aria-label=\"Main\">",
            "<main id=\"main\"",
            "<footer>",
            "<meta name=\"csrf-token\" content=\"tok123\">",
            "<input type=\"hidden\" name=\"csrf\" value=\"tok123\">",
            "href=\"/zones\" aria-current=\"page\"",
        ] {
            assert!(html.contains(needle), "missing {needle}");
        }
        assert!(
            !html.contains("href=\"/users\""),
            "viewers do not see Users"
        );
        assert!(!html.contains("<script>"), "no inline script");
        assert!(!html.contains("style="), "no inline style");
        let mut admin = viewer_ctx();
        admin.principal.as_mut().unwrap().role = Role::Admin;
        assert!(
            render("x", &admin, html! {}, false)
                .into_string()
                .contains("href=\"/users\"")
        );
    }

    #[test]
    fn field_ties_label_input_and_error() {
        let h = field("Setpoint", "setpoint", "number", "21", Some("too hot")).into_string();
        assert!(h.contains("<label for=\"f-setpoint\">Setpoint</label>"));
        assert!(h.contains("aria-describedby=\"f-setpoint-error\""));
        assert!(h.contains("id=\"f-setpoint-error\""));
        let h = field("Name", "name", "text", "", None).into_string();
        assert!(!h.contains("aria-describedby"));
    }

    #[test]
    fn nav_ids_and_hosts() {
        assert_eq!(nav_id("/"), "dashboard");
        assert_eq!(nav_id("/zones/1/2"), "zones");
        assert_eq!(nav_id("/nowhere"), "");
        assert_eq!(host_without_port("box.local:8080"), "box.local");
        assert_eq!(host_without_port("[fe80::1]:80"), "[fe80::1]");
        assert_eq!(url_encode("a b/é"), "a%20b%2F%C3%A9");
    }
}
