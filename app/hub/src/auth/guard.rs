//! The one middleware every request of the hub passes: first-boot redirect, credentials,
//! the route table's role, CSRF for browser sessions, and the API rate limits.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::access::{Access, RouteTable};
use super::{Csrf, LoginError, Principal, SESSION_COOKIE, Via};
use crate::error::ApiError;
use crate::state::HubState;

/// Form bodies larger than this are refused before their CSRF field is looked for.
const MAX_FORM: usize = 64 * 1024;

/// What the guard needs.
#[derive(Clone, Debug)]
pub struct Guard {
    pub hub: HubState,
    pub table: Arc<RouteTable>,
}

/// Paths that work before the appliance is claimed.
fn open_before_claim(path: &str) -> bool {
    matches!(
        path,
        "/health" | "/metrics" | "/claim" | "/api/v1/auth/claim" | "/favicon.ico"
    ) || path.starts_with("/assets/")
}

fn is_api(path: &str) -> bool {
    path == "/api/v1" || path.starts_with("/api/v1/")
}

/// The caller's address (the peer of the TCP connection).
pub fn peer(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// The value of the session cookie, if the request has one.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

fn too_many(wait: Duration, api: bool) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut resp = if api {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            format!("too many requests; try again in {secs} s"),
        )
        .into_response()
    } else {
        (
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many requests; try again in {secs} s."),
        )
            .into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

fn unauthorized(hub: &HubState, message: &str) -> Response {
    hub.ctx
        .metrics()
        .counter(
            "watchpost_hub_auth_failures_total",
            "Rejected API credentials.",
            &[],
        )
        .inc();
    let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"watchpost\""),
    );
    resp
}

fn forbidden(api: bool, needed: &str) -> Response {
    if api {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            format!("this needs the {needed} role"),
        )
        .into_response()
    } else {
        (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            format!(
                "<!doctype html><html lang=\"en\"><title>Forbidden</title><main><h1>Forbidden</h1><p>This needs the {needed} role. <a href=\"/\">Back to the dashboard</a></p></main></html>"
            ),
        )
            .into_response()
    }
}

/// Whether the first `csrf` field of a form body equals `expected` (constant time in the
/// token's length). Pure, so it is fuzzed (`app/hub/fuzz`).
pub fn form_csrf_matches(body: &[u8], expected: &str) -> bool {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "csrf")
        .is_some_and(|(_, v)| super::constant_eq(v.as_bytes(), expected.as_bytes()))
}

/// Looks for the CSRF token in `X-CSRF-Token`, or in the `csrf` field of a form body (which
/// is read and put back).
async fn csrf_ok(req: Request, expected: &str) -> Result<Request, Response> {
    let header_ok = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| super::constant_eq(v.as_bytes(), expected.as_bytes()));
    if header_ok {
        return Ok(req);
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let refuse = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "CSRF",
            "the request lacks this session's CSRF token (X-CSRF-Token header or csrf form field)",
        )
        .into_response()
    };
    if !is_form {
        return Err(refuse());
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "FORM_TOO_LARGE",
            format!("form bodies are limited to {MAX_FORM} bytes"),
        )
        .into_response()
    })?;
    if !form_csrf_matches(&bytes, expected) {
        return Err(refuse());
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// How long ago the board's button was last pressed briefly, from the supervisor's view.
pub async fn button_pressed_ago(hub: &HubState) -> Option<Duration> {
    let snap = hub.snapshot().await.ok()?;
    let last = snap.board?.last_button?;
    let ms: u64 = last
        .strip_prefix("publish_address")?
        .rsplit_once(" at ")?
        .1
        .strip_suffix(" ms")?
        .parse()
        .ok()?;
    Some(Duration::from_millis(snap.uptime_ms.saturating_sub(ms)))
}

pub async fn guard(State(g): State<Guard>, mut req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let raw_path = req.uri().path().to_string();
    let api = is_api(&raw_path);
    let method = req.method().clone();
    // An unmatched path under /api/v1 still needs credentials (its 404 tells nothing to
    // strangers); other unmatched paths answer 404 to anyone.
    let access = match &path {
        Some(p) => match g.table.get(&method, p) {
            Some(a) => a,
            // A method the route does not have: the router answers 405 without a handler.
            None if g.table.knows_path(p) => Access::Public,
            None => {
                tracing::error!(%method, path = %p, "route missing from the route table; refused");
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "ROUTE_NOT_IN_TABLE",
                    "this route has no entry in the route table",
                )
                .into_response();
            }
        },
        None if api => Access::Role(watchpost_config::Role::Viewer),
        None => Access::Public,
    };

    let auth = g.hub.auth.clone();
    if auth.needs_claim() && !open_before_claim(&raw_path) {
        return Redirect::to("/claim").into_response();
    }

    let addr = peer(&req);
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut principal: Option<Principal> = None;
    let mut csrf: Option<String> = None;
    if let Some(h) = header {
        let a = auth.clone();
        let checked = tokio::task::spawn_blocking(move || a.check_header(&h, addr))
            .await
            .unwrap_or(Err(LoginError::Invalid));
        match checked {
            Ok(p) => principal = Some(p),
            Err(LoginError::Locked(wait)) => return too_many(wait, api),
            Err(LoginError::TotpRequired) => {
                return unauthorized(
                    &g.hub,
                    "this user has a second factor: sign in on the setup page or use an API token",
                );
            }
            Err(_) if access == Access::Public => {}
            Err(_) => return unauthorized(&g.hub, "wrong credentials"),
        }
    } else if let Some(cookie) = session_cookie(req.headers())
        && let Some((p, c)) = auth.session(&cookie)
    {
        principal = Some(p);
        csrf = Some(c.0);
    }

    if let Access::Role(needed) = access {
        let Some(p) = &principal else {
            if api {
                return unauthorized(
                    &g.hub,
                    "valid credentials are required (HTTP Basic, a bearer token or a session)",
                );
            }
            let next = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            let target = format!(
                "/login?next={}",
                form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            );
            return Redirect::to(&target).into_response();
        };
        if !p.role.allows(needed) {
            return forbidden(api, needed.as_str());
        }
    }

    if api {
        let cfg = auth.config();
        if let Err(wait) = auth
            .rates
            .take(&format!("addr:{addr}"), cfg.api_per_address_per_min)
        {
            return too_many(wait, true);
        }
        if let Some(p) = &principal
            && let Err(wait) = auth
                .rates
                .take(&format!("user:{}", p.user), cfg.api_per_user_per_min)
        {
            return too_many(wait, true);
        }
    }

    let unsafe_method = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if let (Some(p), Some(token)) = (&principal, &csrf)
        && p.via == Via::Session
        && unsafe_method
    {
        req = match csrf_ok(req, token).await {
            Ok(r) => r,
            Err(resp) => return resp,
        };
    }

    if let Some(p) = principal {
        req.extensions_mut().insert(p);
    }
    if let Some(c) = csrf {
        req.extensions_mut().insert(Csrf(c));
    }
    next.run(req).await
}
