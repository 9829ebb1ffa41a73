//! The local setup page: server-rendered HTML pages of the hub (issue 13).
//!
//! Role: what an installer sees at `http://<box>/` — the dashboard, Neasmart zones, cameras,
//! alarms, relays, the event log and the system — read from the same hub state and through the
//! same internal functions as the REST API (`crate::api`), so a page and the API never
//! disagree. Controls POST forms to page routes, which call the API's command paths and answer
//! `303 See Other` back to the page (or JSON to the page's script).
//!
//! Design: templates are [`maud`] (compile-time checked, no template files, one binary;
//! docs/decisions/0007-setup-page-templates.md). Each page module splits gathering data from
//! `HubState` (async) from rendering it (a pure function of plain data, unit-tested without a
//! hub). Assets (CSS, one small script, a favicon) are embedded and gzipped at build time
//! ([`assets`]); pages are gzipped per response. Every page answers with a strict
//! Content-Security-Policy (no inline script or style), so the script only enhances: forms work
//! without it. Live values come over Server-Sent Events ([`live`]).
//!
//! Access: every route is registered with its least role through
//! [`crate::auth::access::Pages`]; the auth guard enforces it (redirect to the login page, 403),
//! and the pages only hide controls a role may not use.
//!
//! Failure: a page whose data source is down (supervisor, alarm service, fieldbus) still
//! renders and says what is missing; it is never a 5xx for that.

pub mod alarms;
pub mod assets;
pub mod cameras;
pub mod chart;
pub mod dashboard;
pub mod events;
pub mod fmt;
pub mod history;
pub mod layout;
pub mod live;
pub mod monitor;
pub mod relays;
pub mod settings;
pub mod settings_form;
pub mod setup;
pub mod system;
pub mod update;
pub mod zones;

use axum::handler::Handler;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::map_response;
use axum::response::Response;
use tower_http::compression::CompressionLayer;
use watchpost_config::Role;

use crate::auth::access::{Access, Pages};
use crate::state::HubState;

pub use layout::{PageCtx, page};

/// The Content-Security-Policy of every page: nothing inline, nothing from elsewhere.
pub const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                       script-src 'self'; frame-ancestors 'none'";

/// Every page route with its least role: pages for viewers, controls for operators.
pub fn pages() -> Pages {
    let viewer = Access::Role(Role::Viewer);
    let operator = Access::Role(Role::Operator);
    Pages::new()
        .get("/", viewer, with_headers(dashboard::get))
        .get("/live", viewer, live::get.layer(map_response(add_headers)))
        .get("/zones", viewer, with_headers(zones::get))
        .post("/zones/mode", operator, with_headers(zones::post_mode))
        .post("/zones/state", operator, with_headers(zones::post_state))
        .post(
            "/zones/{base}/{zone}",
            operator,
            with_headers(zones::post_zone),
        )
        .get("/cameras", viewer, with_headers(cameras::get))
        .get("/events", viewer, with_headers(events::get))
        .get("/alarms", viewer, with_headers(alarms::get))
        .post(
            "/alarms/{receiver}/test",
            operator,
            with_headers(alarms::post_test),
        )
        .get("/relays", viewer, with_headers(relays::get))
        .post(
            "/relays/{module}/{channel}",
            operator,
            with_headers(relays::post_set),
        )
        .post(
            "/relays/{module}/{channel}/test",
            operator,
            with_headers(relays::post_test),
        )
        .get("/system", viewer, with_headers(system::get))
        .get("/monitor", viewer, with_headers(monitor::get))
        .get("/update", viewer, with_headers(update::get))
        .post(
            "/update/mark",
            Access::Role(Role::Admin),
            with_headers(update::post_mark),
        )
        .merge(settings::pages().merge(setup::pages()))
        // Public: the login page uses the stylesheet; the assets hold nothing private.
        .get(
            "/assets/{file}",
            Access::Public,
            assets::get.layer(map_response(add_headers)),
        )
}

/// A page handler with the security headers and gzip of its response.
pub fn with_headers<H, T>(handler: H) -> impl Handler<T, HubState>
where
    H: Handler<T, HubState>,
    T: 'static,
{
    handler
        .layer(CompressionLayer::new().gzip(true))
        .layer(map_response(add_headers))
}

async fn add_headers(resp: Response) -> Response {
    security_headers(resp)
}

/// Sets the headers every page answer carries (pages, redirects, errors, assets).
pub fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(HeaderName::from_static("cache-control"))
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}
