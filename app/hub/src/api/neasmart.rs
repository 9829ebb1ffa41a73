//! The Neasmart gateway's REST API, in two flavours:
//!
//! - under `/api/v1/neasmart/...` (authenticated, like all of `/api/v1/`): the original
//!   add-on's endpoints and JSON shapes, errors in the API's error shape, commands answered
//!   `200` with the resulting state once the fieldbus worker confirmed them; plus
//!   `GET /api/v1/neasmart/zones` (the active zones) and `GET /api/v1/neasmart/status`;
//! - optionally on `fieldbus.neasmart.compat_listen`: the original's un-prefixed paths,
//!   `202` for accepted commands and `{"err": "..."}` for refusals, so the existing Home
//!   Assistant integration for the add-on works unchanged.
//!
//! Reads are answered from the retained state the fieldbus worker publishes (kept in a cache
//! fed by a bus subscription, [`start_cache`]); commands are validated here (400 at once) and
//! forwarded over the bus with request/reply; no confirmation within
//! `api_command_timeout_ms` is a 503. Every response carries the staleness headers of the
//! original (`X-Rehau-Registers-Stale`, `-Stale-After-Seconds`, `-Registers-Age-Seconds`,
//! `-Last-Register-Write`).

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use watchpost_neasmart::api::{self as validate, CommandError, SetpointRange};
use watchpost_neasmart::topics;
use watchpost_neasmart::views::{
    DehumidifierView, MixedGroupView, NotificationsView, OutsideView, PumpView, ZoneView,
};
use watchpost_neasmart::{Entity, ZoneId};

use crate::error::ApiError;
use crate::state::HubState;

/// Latest retained payloads under `<prefix>/neasmart/` and `<prefix>/relay/`, by topic.
#[derive(Debug, Default)]
pub struct RetainedCache {
    map: RwLock<HashMap<String, Value>>,
    /// Requests waiting for the fieldbus worker's reply, by reply topic.
    pending: Mutex<HashMap<String, tokio::sync::oneshot::Sender<Value>>>,
    next_request: std::sync::atomic::AtomicU64,
}

impl RetainedCache {
    pub fn get(&self, topic: &str) -> Option<Value> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
            .cloned()
    }

    /// Every cached payload whose topic satisfies `pred`, sorted by topic.
    pub fn matching(&self, pred: impl Fn(&str) -> bool) -> Vec<(String, Value)> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<(String, Value)> = map
            .iter()
            .filter(|(k, _)| pred(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn reply(&self, topic: &str, payload: &[u8]) {
        let waiter = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(topic);
        if let (Some(w), Ok(v)) = (waiter, serde_json::from_slice::<Value>(payload)) {
            let _ = w.send(v);
        }
    }

    fn put(&self, topic: String, payload: &[u8]) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if payload.is_empty() {
            map.remove(&topic);
        } else if let Ok(v) = serde_json::from_slice::<Value>(payload) {
            map.insert(topic, v);
        }
    }
}

/// Subscribes to the fieldbus worker's retained state and keeps the cache current.
pub fn start_cache(state: &HubState) -> tokio::task::JoinHandle<()> {
    let cache = state.neasmart.clone();
    let bus = state.bus.clone();
    let shutdown = state.ctx.shutdown().clone();
    tokio::spawn(async move {
        let mut subs = Vec::new();
        // Built by hand: `Bus::topic` escapes wildcards.
        let p = bus.prefix().to_string();
        for f in [
            format!("{p}/neasmart/#"),
            format!("{p}/relay/#"),
            format!("{}/#", reply_base(&p)),
        ] {
            match bus.subscribe(&f).await {
                Ok(rx) => subs.push(rx),
                Err(e) => {
                    tracing::warn!(filter = %f, error = %e, "cannot subscribe for the fieldbus state")
                }
            }
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        for mut s in subs {
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(m) = s.recv().await {
                    if tx.send(m).await.is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let replies = format!("{}/", reply_base(&p));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                m = rx.recv() => match m {
                    Some(m) if m.topic.starts_with(&replies) => cache.reply(&m.topic, &m.payload),
                    // Commands (`.../set`, `.../test`) are not state.
                    Some(m) if !m.topic.ends_with("/set") && !m.topic.ends_with("/test") => {
                        cache.put(m.topic, &m.payload);
                    }
                    Some(_) => {}
                    None => return,
                }
            }
        }
    })
}

/// Where the fieldbus worker's replies to this hub process go.
fn reply_base(prefix: &str) -> String {
    format!("{prefix}/reply/hub-{}/fieldbus", std::process::id())
}

/// Why a command was not confirmed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("publishing the command to {topic}: {source}")]
    Publish {
        topic: String,
        source: watchpost_bus::BusError,
    },
    #[error("no reply to the command on {topic} within {timeout_ms} ms")]
    Timeout { topic: String, timeout_ms: u64 },
}

/// Sends `body` (a JSON object) to `topic` with `request_id` and `reply_to` added and waits
/// for the fieldbus worker's reply. The reply subscription is the cache's, made at start.
pub async fn request(
    state: &HubState,
    topic: &str,
    body: Value,
    timeout: Duration,
) -> Result<Value, RequestError> {
    let cache = state.neasmart.clone();
    let id = cache
        .next_request
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .to_string();
    let reply_to = format!("{}/{id}", reply_base(state.bus.prefix()));
    let mut obj = match body {
        Value::Object(o) => o,
        other => {
            let mut o = serde_json::Map::new();
            o.insert("value".into(), other);
            o
        }
    };
    obj.insert("request_id".into(), id.into());
    obj.insert("reply_to".into(), reply_to.clone().into());
    let (tx, rx) = tokio::sync::oneshot::channel();
    cache
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(reply_to.clone(), tx);
    let published = state
        .bus
        .publish_json(topic, &Value::Object(obj), watchpost_bus::Retain::No)
        .await;
    let result = match published {
        Ok(()) => tokio::time::timeout(timeout, rx)
            .await
            .ok()
            .and_then(Result::ok),
        Err(source) => {
            cache
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&reply_to);
            return Err(RequestError::Publish {
                topic: topic.to_string(),
                source,
            });
        }
    };
    cache
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&reply_to);
    result.ok_or_else(|| RequestError::Timeout {
        topic: topic.to_string(),
        timeout_ms: timeout.as_millis() as u64,
    })
}

/// Which API a handler answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// `/api/v1/neasmart/...`.
    Api,
    /// The original add-on's paths on the compatibility listener.
    Compat,
}

fn topic_of(state: &HubState, levels: &[String]) -> String {
    let refs: Vec<&str> = levels.iter().map(String::as_str).collect();
    state.bus.topic(&refs)
}

/// Freshness derived from the cached status.
struct Freshness {
    stale: bool,
    stale_after_s: u64,
    age_s: Option<f64>,
    last_write: Option<String>,
}

fn freshness(state: &HubState, cache: &RetainedCache) -> Freshness {
    let status = cache.get(&topic_of(state, &topics::status()));
    let stale_after_s = status
        .as_ref()
        .and_then(|s| s.get("stale_after_seconds"))
        .and_then(Value::as_u64)
        .unwrap_or(state.config.fieldbus.neasmart.stale_after_s);
    let last_ms = status
        .as_ref()
        .and_then(|s| s.get("last_register_write_unix_ms"))
        .and_then(Value::as_u64);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let age_s = last_ms.map(|t| now_ms.saturating_sub(t) as f64 / 1000.0);
    Freshness {
        stale: age_s.is_none_or(|a| a > stale_after_s as f64),
        stale_after_s,
        age_s,
        last_write: status
            .as_ref()
            .and_then(|s| s.get("last_register_write"))
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

fn with_headers(mut resp: Response, f: &Freshness) -> Response {
    let h: &mut HeaderMap = resp.headers_mut();
    let mut set = |name: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(name, v);
        }
    };
    set("x-rehau-registers-stale", f.stale.to_string());
    set("x-rehau-stale-after-seconds", f.stale_after_s.to_string());
    if let Some(a) = f.age_s {
        set("x-rehau-registers-age-seconds", format!("{a:.3}"));
    }
    if let Some(t) = &f.last_write {
        set("x-rehau-last-register-write", t.clone());
    }
    resp
}

/// An error in the flavour's shape.
fn error(flavor: Flavor, status: StatusCode, code: &'static str, message: String) -> Response {
    match flavor {
        Flavor::Api => ApiError::new(status, code, message).into_response(),
        Flavor::Compat => (status, axum::Json(json!({"err": message}))).into_response(),
    }
}

fn refused(flavor: Flavor, e: CommandError) -> Response {
    error(flavor, StatusCode::BAD_REQUEST, e.code, e.message)
}

fn unavailable(flavor: Flavor) -> Response {
    error(
        flavor,
        StatusCode::SERVICE_UNAVAILABLE,
        "NEASMART_UNAVAILABLE",
        "no state from the fieldbus worker yet (is [fieldbus.neasmart] enabled and running?)"
            .into(),
    )
}

fn parse_id(s: &str) -> i64 {
    // Not a number: an id no range accepts, so the validator names the parameter.
    s.parse().unwrap_or(-1)
}

/// Answers a GET with the cached payload of `entity`, reduced to the original's shape `T`.
fn answer<T: serde::de::DeserializeOwned + serde::Serialize>(
    state: &HubState,
    flavor: Flavor,
    entity: Entity,
    shape: impl FnOnce(T) -> Value,
) -> Response {
    let cache = state.neasmart.clone();
    let f = freshness(state, &cache);
    let resp = match cache
        .get(&topic_of(state, &topics::entity(entity)))
        .and_then(|v| serde_json::from_value::<T>(v).ok())
    {
        Some(v) => (StatusCode::OK, axum::Json(shape(v))).into_response(),
        None => unavailable(flavor),
    };
    with_headers(resp, &f)
}

fn to_json<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

async fn zone_get(flavor: Flavor, state: HubState, base: String, zone: String) -> Response {
    match validate::zone_id(parse_id(&base), parse_id(&zone)) {
        Ok(z) => answer::<ZoneView>(&state, flavor, Entity::Zone(z), to_json),
        Err(e) => refused(flavor, e),
    }
}

async fn mixed_group_get(flavor: Flavor, state: HubState, id: String) -> Response {
    match validate::mixed_group_id(parse_id(&id)) {
        Ok(g) => answer::<MixedGroupView>(&state, flavor, Entity::MixedGroup(g), to_json),
        Err(e) => refused(flavor, e),
    }
}

async fn dehumidifier_get(flavor: Flavor, state: HubState, id: String) -> Response {
    match validate::dehumidifier_id(parse_id(&id)) {
        Ok(d) => answer::<DehumidifierView>(&state, flavor, Entity::Dehumidifier(d), to_json),
        Err(e) => refused(flavor, e),
    }
}

async fn pump_get(flavor: Flavor, state: HubState, id: String) -> Response {
    match validate::pump_id(parse_id(&id)) {
        Ok(p) => answer::<PumpView>(&state, flavor, Entity::Pump(p), to_json),
        Err(e) => refused(flavor, e),
    }
}

async fn outside_get(flavor: Flavor, state: HubState) -> Response {
    answer::<OutsideView>(&state, flavor, Entity::Outside, to_json)
}

async fn notifications_get(flavor: Flavor, state: HubState) -> Response {
    answer::<NotificationsView>(&state, flavor, Entity::Notifications, to_json)
}

async fn mode_get(flavor: Flavor, state: HubState) -> Response {
    answer::<Value>(
        &state,
        flavor,
        Entity::Global,
        |v| json!({"mode": v.get("mode").cloned().unwrap_or(Value::Null)}),
    )
}

async fn state_get(flavor: Flavor, state: HubState) -> Response {
    answer::<Value>(
        &state,
        flavor,
        Entity::Global,
        |v| json!({"state": v.get("state").cloned().unwrap_or(Value::Null)}),
    )
}

/// Forwards a validated command and maps the worker's reply.
async fn forward(
    flavor: Flavor,
    state: &HubState,
    levels: Vec<String>,
    body: Value,
    shape: impl FnOnce(&Value) -> Value,
) -> Response {
    let cache = state.neasmart.clone();
    let timeout = Duration::from_millis(state.config.fieldbus.neasmart.api_command_timeout_ms);
    let topic = topic_of(state, &levels);
    let resp = match request(state, &topic, body, timeout).await {
        Ok(reply) if reply.get("ok").and_then(Value::as_bool) == Some(true) => match flavor {
            Flavor::Compat => StatusCode::ACCEPTED.into_response(),
            Flavor::Api => {
                let s = reply.get("state").cloned().unwrap_or(Value::Null);
                (StatusCode::OK, axum::Json(shape(&s))).into_response()
            }
        },
        Ok(reply) => {
            let code = reply
                .pointer("/error/code")
                .and_then(Value::as_str)
                .unwrap_or("COMMAND_REFUSED");
            let message = reply
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("the fieldbus worker refused the command")
                .to_string();
            // Codes are static strings on our side; map the known ones back.
            let code: &'static str = match code {
                "INVALID_BASE" => "INVALID_BASE",
                "INVALID_ZONE" => "INVALID_ZONE",
                "INVALID_STATE" => "INVALID_STATE",
                "INVALID_MODE" => "INVALID_MODE",
                "INVALID_SETPOINT" => "INVALID_SETPOINT",
                "SETPOINT_OUT_OF_RANGE" => "SETPOINT_OUT_OF_RANGE",
                "EMPTY_COMMAND" => "EMPTY_COMMAND",
                "INVALID_BODY" => "INVALID_BODY",
                _ => "COMMAND_REFUSED",
            };
            error(flavor, StatusCode::BAD_REQUEST, code, message)
        }
        Err(e) => {
            tracing::warn!(%topic, error = %e, "Neasmart command not confirmed");
            error(
                flavor,
                StatusCode::SERVICE_UNAVAILABLE,
                "FIELDBUS_UNAVAILABLE",
                format!(
                    "the fieldbus worker did not confirm the command within {} ms",
                    timeout.as_millis()
                ),
            )
        }
    };
    with_headers(resp, &freshness(state, &cache))
}

fn range(state: &HubState) -> SetpointRange {
    let n = &state.config.fieldbus.neasmart;
    SetpointRange {
        min_celsius: n.setpoint_min_celsius,
        max_celsius: n.setpoint_max_celsius,
    }
}

fn body_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

async fn zone_post(
    flavor: Flavor,
    state: HubState,
    base: String,
    zone: String,
    bytes: axum::body::Bytes,
) -> Response {
    let z: ZoneId = match validate::zone_id(parse_id(&base), parse_id(&zone)) {
        Ok(z) => z,
        Err(e) => return refused(flavor, e),
    };
    let body = body_of(&bytes);
    let cmd = match validate::zone_command(z, &body, range(&state)) {
        Ok(c) => c,
        Err(e) => return refused(flavor, e),
    };
    let mut forwarded = serde_json::Map::new();
    if let Some(s) = cmd.state {
        forwarded.insert("state".into(), s.get().into());
    }
    if let Some(sp) = cmd.setpoint {
        forwarded.insert("setpoint".into(), json!(sp.celsius()));
    }
    forward(
        flavor,
        &state,
        topics::zone_set(z),
        Value::Object(forwarded),
        |s| {
            serde_json::from_value::<ZoneView>(s.clone())
                .map(to_json)
                .unwrap_or(Value::Null)
        },
    )
    .await
}

async fn mode_post(flavor: Flavor, state: HubState, bytes: axum::body::Bytes) -> Response {
    match validate::mode_command(&body_of(&bytes)) {
        Ok(m) => {
            forward(
                flavor,
                &state,
                topics::mode_set(),
                json!({"mode": m.get()}),
                |s| json!({"mode": s.get("mode").cloned().unwrap_or(Value::Null)}),
            )
            .await
        }
        Err(e) => refused(flavor, e),
    }
}

async fn state_post(flavor: Flavor, state: HubState, bytes: axum::body::Bytes) -> Response {
    match validate::state_command(&body_of(&bytes)) {
        Ok(s) => {
            forward(
                flavor,
                &state,
                topics::state_set(),
                json!({"state": s.get()}),
                |v| json!({"state": v.get("state").cloned().unwrap_or(Value::Null)}),
            )
            .await
        }
        Err(e) => refused(flavor, e),
    }
}

/// `GET /api/v1/neasmart/zones`: the zones the base has reported, with their state.
async fn zones_list(State(state): State<HubState>) -> Response {
    let cache = state.neasmart.clone();
    let f = freshness(&state, &cache);
    let mut items: Vec<Value> = Vec::new();
    for z in ZoneId::all() {
        if let Some(v) = cache.get(&topic_of(&state, &topics::zone(z)))
            && v.get("active").and_then(Value::as_bool) == Some(true)
        {
            items.push(v);
        }
    }
    let total = items.len();
    let body = json!({
        "items": items,
        "pagination": {"page": 1, "limit": 60, "total": total, "total_pages": 1},
    });
    with_headers((StatusCode::OK, axum::Json(body)).into_response(), &f)
}

/// The status in the shape of the original's `/health`, with live age and staleness.
fn health_body(state: &HubState) -> (Value, Freshness) {
    let cache = state.neasmart.clone();
    let f = freshness(state, &cache);
    let status = cache
        .get(&topic_of(state, &topics::status()))
        .unwrap_or(Value::Null);
    let get = |k: &str| status.get(k).cloned().unwrap_or(Value::Null);
    let body = json!({
        "status": if status.is_null() { "unavailable" } else { "ok" },
        "registers_receiving_updates": !f.stale,
        "registers_stale": f.stale,
        "registers_age_seconds": f.age_s,
        "last_register_write": f.last_write,
        "stale_after_seconds": f.stale_after_s,
        "persist_command_registers": get("persist_command_registers"),
        "command_sync_timeout_seconds": get("command_sync_timeout_seconds"),
        "pending_command_registers": get("pending_command_registers"),
        "startup_global_mode": get("startup_global_mode"),
        "startup_global_state": get("startup_global_state"),
    });
    (body, f)
}

async fn status_get(State(state): State<HubState>) -> Response {
    let (body, f) = health_body(&state);
    let code = if body["status"] == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    with_headers((code, axum::Json(body)).into_response(), &f)
}

/// The routes of one flavour, with paths relative to `base` (`/neasmart` or ``).
fn routes(flavor: Flavor, base: &str) -> Router<HubState> {
    let p = |s: &str| format!("{base}{s}");
    Router::new()
        .route(
            &p("/zones/{base}/{zone}"),
            get(
                move |State(s): State<HubState>, Path((b, z)): Path<(String, String)>| {
                    zone_get(flavor, s, b, z)
                },
            )
            .post(
                move |State(s): State<HubState>,
                      Path((b, z)): Path<(String, String)>,
                      body: axum::body::Bytes| zone_post(flavor, s, b, z, body),
            ),
        )
        .route(
            &p("/mixedgroups/{id}"),
            get(move |State(s): State<HubState>, Path(id): Path<String>| {
                mixed_group_get(flavor, s, id)
            }),
        )
        .route(
            &p("/outsidetemperature"),
            get(move |State(s): State<HubState>| outside_get(flavor, s)),
        )
        .route(
            &p("/notifications"),
            get(move |State(s): State<HubState>| notifications_get(flavor, s)),
        )
        .route(
            &p("/mode"),
            get(move |State(s): State<HubState>| mode_get(flavor, s)).post(
                move |State(s): State<HubState>, body: axum::body::Bytes| {
                    mode_post(flavor, s, body)
                },
            ),
        )
        .route(
            &p("/state"),
            get(move |State(s): State<HubState>| state_get(flavor, s)).post(
                move |State(s): State<HubState>, body: axum::body::Bytes| {
                    state_post(flavor, s, body)
                },
            ),
        )
        .route(
            &p("/dehumidifiers/{id}"),
            get(move |State(s): State<HubState>, Path(id): Path<String>| {
                dehumidifier_get(flavor, s, id)
            }),
        )
        .route(
            &p("/pumps/{id}"),
            get(move |State(s): State<HubState>, Path(id): Path<String>| pump_get(flavor, s, id)),
        )
}

/// `/api/v1/neasmart/...` (paths relative to `/api/v1`).
pub fn router() -> Router<HubState> {
    routes(Flavor::Api, "/neasmart")
        .route("/neasmart/zones", get(zones_list))
        .route("/neasmart/status", get(status_get))
}

async fn compat_health(State(state): State<HubState>) -> Response {
    let (body, f) = health_body(&state);
    with_headers((StatusCode::OK, axum::Json(body)).into_response(), &f)
}

async fn compat_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"err": "not found"})),
    )
        .into_response()
}

/// The compatibility router: the original's paths, no authentication (as the original).
pub fn compat_router(state: HubState) -> Router {
    routes(Flavor::Compat, "")
        .route("/health", get(compat_health))
        .fallback(compat_not_found)
        .with_state(state)
}

/// Serves the compatibility listener when `fieldbus.neasmart.compat_listen` is set.
pub fn start_compat_listener(state: &HubState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let Some(addr) = state.config.fieldbus.neasmart.compat_listen else {
            return;
        };
        let listener = match tokio::net::TcpListener::bind(addr.addr()).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot bind the Neasmart compatibility listener");
                return;
            }
        };
        tracing::info!(%addr, "Neasmart compatibility API listening (original add-on paths, no authentication)");
        let shutdown = state.ctx.shutdown().clone();
        let app = compat_router(state);
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
        {
            tracing::error!(error = %e, "Neasmart compatibility listener failed");
        }
    })
}
