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
//! Reads are answered from the retained state the fieldbus worker publishes, kept in the typed
//! caches of [`FieldbusClient`] (`HubState::neasmart`, fed by a bus subscription,
//! [`start_cache`]); commands are validated here with the area's shared validators (400 at
//! once) and sent as the contract's typed commands with `Bus::request`; the worker's refusals
//! come back as [`NeasmartCode`]s, mapped to HTTP by one exhaustive `match`; no confirmation
//! within `api_command_timeout_ms` is a 503. The same client serves the relay API
//! ([`super::relays`]). Every response carries the staleness headers of the
//! original (`X-Rehau-Registers-Stale`, `-Stale-After-Seconds`, `-Registers-Age-Seconds`,
//! `-Last-Register-Write`).

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use watchpost_bus::{Bus, Message, Request, RequestError};
use watchpost_contract::relay::{self, ChannelReply, ChannelState, ModuleStatus, RelayCode};
use watchpost_neasmart::api::{self as validate, CommandError, SetpointRange};
use watchpost_neasmart::commands::{ModeSet, StateSet, ZoneSet};
use watchpost_neasmart::state::{EntityState, GlobalState, ZoneState};
use watchpost_neasmart::topics::{self, Parsed};
use watchpost_neasmart::views::{
    DehumidifierView, MixedGroupView, ModeView, NotificationsView, OutsideView, PumpView,
    StateView, StatusView, ZoneView,
};
use watchpost_neasmart::{Entity, NeasmartCode, ZoneId};
use watchpost_runtime::logging::LogLimiter;

use crate::api::extract::Query;
use crate::api::list::{Page, PageParams, paginate};
use crate::error::{ApiError, ErrorBody};
use crate::state::HubState;

/// The hub's client of the fieldbus worker: typed caches of the retained state it publishes
/// (each Neasmart entity and the gateway's status, each relay module's status), fed by
/// [`start_cache`], and its commands over `Bus::request`.
#[derive(Debug, Default)]
pub struct FieldbusClient {
    entities: RwLock<BTreeMap<Entity, EntityState>>,
    status: RwLock<Option<StatusView>>,
    relays: RwLock<BTreeMap<String, ModuleStatus>>,
    /// Counts the retained messages taken, so a command can wait for the state it caused.
    taken: tokio::sync::watch::Sender<u64>,
}

/// How long a confirmed command waits for its new state to reach the cache before it is
/// answered anyway (the worker publishes it right after its reply).
const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(1);

/// Why a retained message was not taken into the cache.
#[derive(Debug, thiserror::Error)]
#[error("the retained payload on {topic} does not decode: {source}")]
pub struct CacheError {
    topic: String,
    source: serde_json::Error,
}

impl FieldbusClient {
    /// The cached state of `entity`.
    pub fn entity(&self, entity: Entity) -> Option<EntityState> {
        self.entities
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&entity)
            .cloned()
    }

    /// The cached state of `zone`.
    pub fn zone(&self, zone: ZoneId) -> Option<ZoneState> {
        match self.entity(Entity::Zone(zone))? {
            EntityState::Zone(z) => Some(z),
            _ => None,
        }
    }

    /// The cached global mode and state.
    pub fn global(&self) -> Option<GlobalState> {
        match self.entity(Entity::Global)? {
            EntityState::Global(g) => Some(g),
            _ => None,
        }
    }

    /// The zones the base has reported, in address order.
    pub fn active_zones(&self) -> Vec<ZoneState> {
        self.entities
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(|s| match s {
                EntityState::Zone(z) if z.active => Some(z.clone()),
                _ => None,
            })
            .collect()
    }

    /// The gateway's cached status.
    pub fn status(&self) -> Option<StatusView> {
        self.status
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The cached status of relay module `module`.
    pub fn relay(&self, module: &str) -> Option<ModuleStatus> {
        self.relays
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(module)
            .cloned()
    }

    /// Takes one retained message; `levels` is its topic under the prefix. An empty payload
    /// removes the cached state. Topics that are not retained state are ignored.
    pub fn take(&self, topic: &str, levels: &[&str], payload: &[u8]) -> Result<(), CacheError> {
        let decode_error = |source| CacheError {
            topic: topic.to_string(),
            source,
        };
        match (levels, topics::parse(levels)) {
            (_, Some(Parsed::State(entity))) => {
                let mut map = self.entities.write().unwrap_or_else(|p| p.into_inner());
                if payload.is_empty() {
                    map.remove(&entity);
                } else {
                    let state = EntityState::from_slice(entity, payload).map_err(decode_error)?;
                    map.insert(entity, state);
                }
            }
            (_, Some(Parsed::Status)) => {
                let status = if payload.is_empty() {
                    None
                } else {
                    Some(serde_json::from_slice(payload).map_err(decode_error)?)
                };
                *self.status.write().unwrap_or_else(|p| p.into_inner()) = status;
            }
            ([relay::AREA, module, "status"], _) => {
                let mut map = self.relays.write().unwrap_or_else(|p| p.into_inner());
                if payload.is_empty() {
                    map.remove(*module);
                } else {
                    let status: ModuleStatus =
                        serde_json::from_slice(payload).map_err(decode_error)?;
                    map.insert((*module).to_string(), status);
                }
            }
            _ => {}
        }
        self.taken.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// Waits until `done` holds for the cache, at most [`READ_YOUR_WRITES_WAIT`]. The fieldbus
    /// worker publishes an entity's new state right after it answers a command, on the same
    /// connection, so once the cache shows it every older message has been taken too: a read
    /// after the command's answer sees the commanded value (Home Assistant reads right after
    /// each service call). Answers whether it held.
    async fn settle(&self, done: impl Fn(&Self) -> bool) -> bool {
        let mut taken = self.taken.subscribe();
        let deadline = tokio::time::Instant::now() + READ_YOUR_WRITES_WAIT;
        loop {
            if done(self) {
                return true;
            }
            match tokio::time::timeout_at(deadline, taken.changed()).await {
                Ok(Ok(())) => {}
                _ => return done(self),
            }
        }
    }

    /// Sets a zone's state and/or setpoint; answers the zone's state with the command
    /// pending.
    pub async fn set_zone(
        &self,
        bus: &Bus,
        zone: ZoneId,
        command: &ZoneSet,
        timeout: Duration,
    ) -> Result<ZoneState, RequestError<NeasmartCode>> {
        let reply = request(bus, &ZoneSet::topic(zone), command, timeout).await?;
        let want = &reply.state;
        let seen = self
            .settle(|c| {
                c.zone(zone).is_some_and(|z| {
                    (command.state.is_none() || z.state == want.state)
                        && (command.setpoint.is_none() || z.setpoint == want.setpoint)
                })
            })
            .await;
        if !seen {
            tracing::debug!(
                ?zone,
                "the zone's new state did not reach the cache in time"
            );
        }
        Ok(reply.state)
    }

    /// Sets the global mode; answers the global state.
    pub async fn set_mode(
        &self,
        bus: &Bus,
        command: &ModeSet,
        timeout: Duration,
    ) -> Result<GlobalState, RequestError<NeasmartCode>> {
        let reply = request(bus, &ModeSet::topic(), command, timeout).await?;
        let mode = reply.state.mode;
        self.settle(|c| c.global().is_some_and(|g| g.mode == mode))
            .await;
        Ok(reply.state)
    }

    /// Sets the global state; answers the global state.
    pub async fn set_state(
        &self,
        bus: &Bus,
        command: &StateSet,
        timeout: Duration,
    ) -> Result<GlobalState, RequestError<NeasmartCode>> {
        let reply = request(bus, &StateSet::topic(), command, timeout).await?;
        let state = reply.state.state;
        self.settle(|c| c.global().is_some_and(|g| g.state == state))
            .await;
        Ok(reply.state)
    }

    /// Switches or pulses a relay channel; answers once the coil write succeeded.
    pub async fn set_relay(
        &self,
        bus: &Bus,
        module: &str,
        channel: &str,
        command: &relay::Set,
        timeout: Duration,
    ) -> Result<ChannelState, RequestError<RelayCode>> {
        let reply: ChannelReply =
            request(bus, &relay::channel_set(module, channel), command, timeout).await?;
        Ok(reply.channel)
    }

    /// Pulses a relay channel for its configured length, whatever its mode.
    pub async fn test_relay(
        &self,
        bus: &Bus,
        module: &str,
        channel: &str,
        timeout: Duration,
    ) -> Result<ChannelState, RequestError<RelayCode>> {
        let reply: ChannelReply = request(
            bus,
            &relay::channel_test(module, channel),
            &relay::Test {},
            timeout,
        )
        .await?;
        Ok(reply.channel)
    }
}

/// `Bus::request` on a topic given as levels under the prefix.
async fn request<C: Request>(
    bus: &Bus,
    levels: &[String],
    command: &C,
    timeout: Duration,
) -> Result<C::Reply, RequestError<C::Code>> {
    let refs: Vec<&str> = levels.iter().map(String::as_str).collect();
    bus.request(&bus.topic(&refs), command, timeout).await
}

/// Subscribes to the fieldbus worker's retained state (Neasmart entities and status, relay
/// module status) and keeps the client's caches current until shutdown.
pub fn start_cache(state: &HubState) -> tokio::task::JoinHandle<()> {
    let client = state.neasmart.clone();
    let bus = state.bus.clone();
    let shutdown = state.ctx.shutdown().clone();
    tokio::spawn(async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(1024);
        for filter in [
            bus.filter(&[topics::AREA, "#"]),
            bus.filter(&[relay::AREA, "+", "status"]),
        ] {
            match bus.subscribe(&filter).await {
                Ok(mut sub) => {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        while let Some(m) = sub.recv().await {
                            if tx.send(m).await.is_err() {
                                return;
                            }
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(%filter, error = %e, "cannot subscribe for the fieldbus state")
                }
            }
        }
        drop(tx);
        let prefix = format!("{}/", bus.prefix());
        let limiter = LogLimiter::new(3, Duration::from_secs(60));
        loop {
            let m = tokio::select! {
                _ = shutdown.cancelled() => return,
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => return,
                },
            };
            let Some(rest) = m.topic.strip_prefix(&prefix) else {
                continue;
            };
            let levels: Vec<&str> = rest.split('/').collect();
            if let Err(e) = client.take(&m.topic, &levels, &m.payload)
                && let Some(suppressed) = limiter.check(&m.topic)
            {
                tracing::warn!(error = %e, suppressed, "fieldbus state ignored");
            }
        }
    })
}

/// Which API a handler answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `/api/v1/neasmart/...`.
    Api,
    /// The original add-on's paths on the compatibility listener.
    Compat,
}

/// Freshness derived from the cached status.
struct Freshness {
    stale: bool,
    stale_after_s: u64,
    age_s: Option<f64>,
    last_write: Option<String>,
}

fn freshness(state: &HubState, status: Option<&StatusView>) -> Freshness {
    let stale_after_s = status.map_or(state.config.fieldbus.neasmart.stale_after_s, |s| {
        s.stale_after_seconds
    });
    let last_ms = status.and_then(|s| s.last_register_write_unix_ms);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let age_s = last_ms.map(|t| now_ms.saturating_sub(t) as f64 / 1000.0);
    Freshness {
        stale: age_s.is_none_or(|a| a > stale_after_s as f64),
        stale_after_s,
        age_s,
        last_write: status.and_then(|s| s.last_register_write.clone()),
    }
}

fn current_freshness(state: &HubState) -> Freshness {
    freshness(state, state.neasmart.status().as_ref())
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
fn error(flavor: Flavor, api: ApiError) -> Response {
    match flavor {
        Flavor::Api => api.into_response(),
        Flavor::Compat => (api.status, axum::Json(json!({"err": api.message}))).into_response(),
    }
}

/// The HTTP status of a Neasmart refusal, from the hub's validators or the worker.
fn neasmart_status(code: NeasmartCode) -> StatusCode {
    match code {
        NeasmartCode::InvalidBody
        | NeasmartCode::InvalidBase
        | NeasmartCode::InvalidZone
        | NeasmartCode::InvalidMixedGroup
        | NeasmartCode::InvalidDehumidifier
        | NeasmartCode::InvalidPump
        | NeasmartCode::InvalidMode
        | NeasmartCode::InvalidState
        | NeasmartCode::InvalidSetpoint
        | NeasmartCode::SetpointOutOfRange
        | NeasmartCode::EmptyCommand => StatusCode::BAD_REQUEST,
        // The hub only sends commands the worker serves: this is a worker of another version.
        NeasmartCode::UnknownCommand => StatusCode::BAD_GATEWAY,
    }
}

fn refused(flavor: Flavor, e: CommandError) -> Response {
    error(
        flavor,
        ApiError::new(neasmart_status(e.code), e.code.as_str(), e.message),
    )
}

/// Why a command has no confirmation, as the API answers it.
fn command_failed(topic: &str, e: RequestError<NeasmartCode>, timeout: Duration) -> ApiError {
    match e {
        RequestError::Refused { error, .. } => ApiError::new(
            neasmart_status(error.code),
            error.code.as_str(),
            error.message,
        )
        .with_details(error.details),
        RequestError::Timeout { .. } => {
            tracing::warn!(%topic, error = %e, "Neasmart command not confirmed");
            ApiError::unavailable(
                "FIELDBUS_UNAVAILABLE",
                format!(
                    "the fieldbus worker did not confirm the command within {} ms",
                    timeout.as_millis()
                ),
            )
        }
        RequestError::Bus(_) => {
            tracing::warn!(%topic, error = %e, "Neasmart command not sent");
            ApiError::unavailable(
                "FIELDBUS_UNAVAILABLE",
                format!("the command could not be sent to the fieldbus worker: {e}"),
            )
        }
        RequestError::BadReply { .. } => {
            tracing::warn!(%topic, error = %e, "Neasmart command answered out of contract");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "FIELDBUS_BAD_REPLY",
                format!("the fieldbus worker's answer is not understood: {e}"),
            )
        }
    }
}

fn unavailable() -> ApiError {
    ApiError::unavailable(
        "NEASMART_UNAVAILABLE",
        "no state from the fieldbus worker yet (is [fieldbus.neasmart] enabled and running?)",
    )
}

fn parse_id(s: &str) -> i64 {
    // Not a number: an id no range accepts, so the validator names the parameter.
    s.parse().unwrap_or(-1)
}

/// A JSON body through `serde_json::Value`, so its keys come out in the same (sorted) order
/// as every other body of this API.
fn to_json<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Answers a GET with the cached view (in the original's shape), or 503 before the worker
/// has published it; with the freshness headers either way.
fn answer<T: serde::Serialize>(state: &HubState, flavor: Flavor, view: Option<T>) -> Response {
    let resp = match view {
        Some(v) => (StatusCode::OK, axum::Json(to_json(v))).into_response(),
        None => error(flavor, unavailable()),
    };
    with_headers(resp, &current_freshness(state))
}

/// Answers a GET of an entity whose retained state is its view.
fn answer_entity<T: serde::Serialize>(
    state: &HubState,
    flavor: Flavor,
    entity: Entity,
    view: impl FnOnce(EntityState) -> Option<T>,
) -> Response {
    answer(state, flavor, state.neasmart.entity(entity).and_then(view))
}

async fn zone_get(flavor: Flavor, state: HubState, base: String, zone: String) -> Response {
    match validate::zone_id(parse_id(&base), parse_id(&zone)) {
        Ok(z) => {
            let view = state.neasmart.zone(z).map(|s| ZoneView::from(&s));
            answer(&state, flavor, view)
        }
        Err(e) => refused(flavor, e),
    }
}

async fn mixed_group_get(flavor: Flavor, state: HubState, id: String) -> Response {
    match validate::mixed_group_id(parse_id(&id)) {
        Ok(g) => answer_entity(&state, flavor, Entity::MixedGroup(g), |s| match s {
            EntityState::MixedGroup(v) => Some(v.view),
            _ => None,
        }),
        Err(e) => refused(flavor, e),
    }
}

async fn dehumidifier_get(flavor: Flavor, state: HubState, id: String) -> Response {
    match validate::dehumidifier_id(parse_id(&id)) {
        Ok(d) => answer_entity(&state, flavor, Entity::Dehumidifier(d), |s| match s {
            EntityState::Dehumidifier(v) => Some(v.view),
            _ => None,
        }),
        Err(e) => refused(flavor, e),
    }
}

async fn pump_get(flavor: Flavor, state: HubState, id: String) -> Response {
    match validate::pump_id(parse_id(&id)) {
        Ok(p) => answer_entity(&state, flavor, Entity::Pump(p), |s| match s {
            EntityState::Pump(v) => Some(v.view),
            _ => None,
        }),
        Err(e) => refused(flavor, e),
    }
}

async fn outside_get(flavor: Flavor, state: HubState) -> Response {
    answer_entity(&state, flavor, Entity::Outside, |s| match s {
        EntityState::Outside(v) => Some(v),
        _ => None,
    })
}

async fn notifications_get(flavor: Flavor, state: HubState) -> Response {
    answer_entity(&state, flavor, Entity::Notifications, |s| match s {
        EntityState::Notifications(v) => Some(v),
        _ => None,
    })
}

async fn mode_get(flavor: Flavor, state: HubState) -> Response {
    let view = state.neasmart.global().map(|g| ModeView::from(&g));
    answer(&state, flavor, view)
}

async fn state_get(flavor: Flavor, state: HubState) -> Response {
    let view = state.neasmart.global().map(|g| StateView::from(&g));
    answer(&state, flavor, view)
}

/// Answers a command: `200` with the new state's view (`/api/v1`) or `202` (compatibility
/// listener) once the worker confirmed it, the mapped error otherwise; with the freshness
/// headers either way.
fn confirmed<T: serde::Serialize>(
    state: &HubState,
    flavor: Flavor,
    topic: &[String],
    timeout: Duration,
    result: Result<T, RequestError<NeasmartCode>>,
) -> Response {
    let resp = match (result, flavor) {
        (Ok(_), Flavor::Compat) => StatusCode::ACCEPTED.into_response(),
        (Ok(view), Flavor::Api) => (StatusCode::OK, axum::Json(to_json(view))).into_response(),
        (Err(e), _) => error(flavor, command_failed(&topic.join("/"), e, timeout)),
    };
    with_headers(resp, &current_freshness(state))
}

fn command_timeout(state: &HubState) -> Duration {
    Duration::from_millis(state.config.fieldbus.neasmart.api_command_timeout_ms)
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

pub(crate) async fn zone_post(
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
    let command = match validate::zone_command(z, &body_of(&bytes), range(&state)) {
        Ok(c) => ZoneSet::from(&c),
        Err(e) => return refused(flavor, e),
    };
    let timeout = command_timeout(&state);
    let result = state
        .neasmart
        .set_zone(&state.bus, z, &command, timeout)
        .await
        .map(|s| ZoneView::from(&s));
    confirmed(&state, flavor, &ZoneSet::topic(z), timeout, result)
}

pub(crate) async fn mode_post(
    flavor: Flavor,
    state: HubState,
    bytes: axum::body::Bytes,
) -> Response {
    let command = match validate::mode_command(&body_of(&bytes)) {
        Ok(mode) => ModeSet { mode },
        Err(e) => return refused(flavor, e),
    };
    let timeout = command_timeout(&state);
    let result = state
        .neasmart
        .set_mode(&state.bus, &command, timeout)
        .await
        .map(|g| ModeView::from(&g));
    confirmed(&state, flavor, &ModeSet::topic(), timeout, result)
}

pub(crate) async fn state_post(
    flavor: Flavor,
    state: HubState,
    bytes: axum::body::Bytes,
) -> Response {
    let command = match validate::state_command(&body_of(&bytes)) {
        Ok(s) => StateSet { state: s },
        Err(e) => return refused(flavor, e),
    };
    let timeout = command_timeout(&state);
    let result = state
        .neasmart
        .set_state(&state.bus, &command, timeout)
        .await
        .map(|g| StateView::from(&g));
    confirmed(&state, flavor, &StateSet::topic(), timeout, result)
}

/// The zones the base station has reported, with their state (in base, zone order).
#[utoipa::path(
    get,
    path = "/neasmart/zones",
    tag = "neasmart",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(PageParams),
    responses(
        (status = 200, description = "One page of the active zones", body = Page<ZoneState>, headers(
            ("x-rehau-registers-stale" = bool, description = "No register write from the base within `stale_after_seconds`"),
            ("x-rehau-stale-after-seconds" = u64, description = "The staleness limit"),
        )),
        (status = 400, description = "`INVALID_PAGE`, `INVALID_LIMIT`, `INVALID_QUERY`", body = ErrorBody),
    ),
)]
async fn zones_list(
    State(state): State<HubState>,
    Query(p): Query<PageParams>,
) -> Result<Response, ApiError> {
    let req = p.check()?;
    let page = paginate(state.neasmart.active_zones(), req);
    Ok(with_headers(
        (StatusCode::OK, axum::Json(to_json(page))).into_response(),
        &current_freshness(&state),
    ))
}

/// The gateway's status in the shape of the original add-on's `/health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GatewayHealth {
    /// `ok` once the fieldbus worker has published its status, `unavailable` before.
    status: GatewayStatus,
    registers_receiving_updates: bool,
    registers_stale: bool,
    /// Seconds since the base's last register write, `null` before the first.
    registers_age_seconds: Option<f64>,
    /// RFC 3339 time of the base's last register write, `null` before the first.
    last_register_write: Option<String>,
    stale_after_seconds: u64,
    persist_command_registers: Option<bool>,
    command_sync_timeout_seconds: Option<u64>,
    pending_command_registers: Option<usize>,
    startup_global_mode: Option<u8>,
    startup_global_state: Option<u8>,
}

/// Whether the fieldbus worker has published the gateway's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GatewayStatus {
    Ok,
    Unavailable,
}

/// The status in the shape of the original's `/health`, with live age and staleness.
fn health_body(state: &HubState) -> (GatewayHealth, Freshness) {
    let status = state.neasmart.status();
    let f = freshness(state, status.as_ref());
    let s = status.as_ref();
    let body = GatewayHealth {
        status: if s.is_none() {
            GatewayStatus::Unavailable
        } else {
            GatewayStatus::Ok
        },
        registers_receiving_updates: !f.stale,
        registers_stale: f.stale,
        registers_age_seconds: f.age_s,
        last_register_write: f.last_write.clone(),
        stale_after_seconds: f.stale_after_s,
        persist_command_registers: s.map(|s| s.persist_command_registers),
        command_sync_timeout_seconds: s.map(|s| s.command_sync_timeout_seconds),
        pending_command_registers: s.map(|s| s.pending_command_registers),
        startup_global_mode: s.map(|s| s.startup_global_mode),
        startup_global_state: s.map(|s| s.startup_global_state),
    };
    (body, f)
}

/// Freshness of the gateway's data and its counters.
#[utoipa::path(
    get,
    path = "/neasmart/status",
    tag = "neasmart",
    extensions(("x-watchpost-role" = json!("viewer"))),
    responses(
        (status = 200, description = "The fieldbus worker has published its status", body = GatewayHealth),
        (status = 503, description = "No status from the fieldbus worker yet", body = GatewayHealth),
    ),
)]
async fn status_get(State(state): State<HubState>) -> Response {
    let (body, f) = health_body(&state);
    let code = match body.status {
        GatewayStatus::Ok => StatusCode::OK,
        GatewayStatus::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    with_headers((code, axum::Json(to_json(body))).into_response(), &f)
}

/// A zone command's body: a state, a setpoint, or both.
#[derive(Debug, utoipa::ToSchema)]
pub struct ZoneCommandBody {
    /// Operating state 1..=6.
    #[schema(minimum = 1, maximum = 6)]
    pub state: Option<u16>,
    /// °C, within the installation's `setpoint_min_celsius..=setpoint_max_celsius`.
    pub setpoint: Option<f64>,
}

/// `{"mode": 1..5}`.
#[derive(Debug, utoipa::ToSchema)]
pub struct ModeCommandBody {
    #[schema(minimum = 1, maximum = 5)]
    pub mode: u16,
}

/// `{"state": 1..6}`.
#[derive(Debug, utoipa::ToSchema)]
pub struct StateCommandBody {
    #[schema(minimum = 1, maximum = 6)]
    pub state: u16,
}

// The `/api/v1` flavour's handlers. The compatibility listener serves the same functions with
// the original add-on's answers (`compat_routes`).

/// A zone's state.
#[utoipa::path(
    get,
    path = "/neasmart/zones/{base}/{zone}",
    tag = "neasmart",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(
        ("base" = u8, Path, minimum = 1, maximum = 5, description = "Base station 1..=5"),
        ("zone" = u8, Path, minimum = 1, maximum = 12, description = "Zone 1..=12"),
    ),
    responses(
        (status = 200, description = "The zone", body = ZoneView),
        (status = 400, description = "`INVALID_BASE`, `INVALID_ZONE`", body = ErrorBody),
        (status = 503, description = "`NEASMART_UNAVAILABLE`: no state from the fieldbus worker yet", body = ErrorBody),
    ),
)]
async fn api_zone_get(
    State(s): State<HubState>,
    Path((base, zone)): Path<(String, String)>,
) -> Response {
    zone_get(Flavor::Api, s, base, zone).await
}

/// Sets a zone's state and/or setpoint; answered once the fieldbus worker applied it.
#[utoipa::path(
    post,
    path = "/neasmart/zones/{base}/{zone}",
    tag = "neasmart",
    extensions(("x-watchpost-role" = json!("operator"))),
    params(
        ("base" = u8, Path, minimum = 1, maximum = 5, description = "Base station 1..=5"),
        ("zone" = u8, Path, minimum = 1, maximum = 12, description = "Zone 1..=12"),
    ),
    request_body = ZoneCommandBody,
    responses(
        (status = 200, description = "Applied; the zone as it is now (the base reads the command on its next poll)", body = ZoneView),
        (status = 400, description = "`INVALID_BASE`, `INVALID_ZONE`, `INVALID_STATE`, `INVALID_SETPOINT`, `SETPOINT_OUT_OF_RANGE`, `EMPTY_COMMAND`, `INVALID_BODY`", body = ErrorBody),
        (status = 502, description = "`FIELDBUS_BAD_REPLY`, `UNKNOWN_COMMAND`: the fieldbus worker's answer is not understood", body = ErrorBody),
        (status = 503, description = "`FIELDBUS_UNAVAILABLE`: the fieldbus worker did not confirm in time", body = ErrorBody),
    ),
)]
async fn api_zone_post(
    State(s): State<HubState>,
    Path((base, zone)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    zone_post(Flavor::Api, s, base, zone, body).await
}

/// A mixed group (pump, mixing valve, flow and return temperatures).
#[utoipa::path(
    get,
    path = "/neasmart/mixedgroups/{id}",
    tag = "neasmart",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(("id" = u8, Path, minimum = 1, maximum = 3, description = "Mixed group 1..=3")),
    responses(
        (status = 200, description = "The mixed group", body = MixedGroupView),
        (status = 400, description = "`INVALID_MIXED_GROUP`", body = ErrorBody),
        (status = 503, description = "`NEASMART_UNAVAILABLE`", body = ErrorBody),
    ),
)]
async fn api_mixed_group_get(State(s): State<HubState>, Path(id): Path<String>) -> Response {
    mixed_group_get(Flavor::Api, s, id).await
}

/// A dehumidifier.
#[utoipa::path(
    get,
    path = "/neasmart/dehumidifiers/{id}",
    tag = "neasmart",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(("id" = u8, Path, minimum = 1, maximum = 9, description = "Dehumidifier 1..=9")),
    responses(
        (status = 200, description = "The dehumidifier", body = DehumidifierView),
        (status = 400, description = "`INVALID_DEHUMIDIFIER`", body = ErrorBody),
        (status = 503, description = "`NEASMART_UNAVAILABLE`", body = ErrorBody),
    ),
)]
async fn api_dehumidifier_get(State(s): State<HubState>, Path(id): Path<String>) -> Response {
    dehumidifier_get(Flavor::Api, s, id).await
}

/// An extra pump.
#[utoipa::path(
    get,
    path = "/neasmart/pumps/{id}",
    tag = "neasmart",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(("id" = u8, Path, minimum = 1, maximum = 5, description = "Pump 1..=5")),
    responses(
        (status = 200, description = "The pump", body = PumpView),
        (status = 400, description = "`INVALID_PUMP`", body = ErrorBody),
        (status = 503, description = "`NEASMART_UNAVAILABLE`", body = ErrorBody),
    ),
)]
async fn api_pump_get(State(s): State<HubState>, Path(id): Path<String>) -> Response {
    pump_get(Flavor::Api, s, id).await
}

/// The outside temperature, as measured and as filtered by the base.
#[utoipa::path(
    get,
    path = "/neasmart/outsidetemperature",
    tag = "neasmart",
    extensions(("x-watchpost-role" = json!("viewer"))),
    responses(
        (status = 200, description = "Outside temperatures", body = OutsideView),
        (status = 503, description = "`NEASMART_UNAVAILABLE`", body = ErrorBody),
    ),
)]
async fn api_outside_get(State(s): State<HubState>) -> Response {
    outside_get(Flavor::Api, s).await
}

/// Whether the base reports hints, warnings or an error.
#[utoipa::path(
    get,
    path = "/neasmart/notifications",
    tag = "neasmart",
    extensions(("x-watchpost-role" = json!("viewer"))),
    responses(
        (status = 200, description = "The notification flags", body = NotificationsView),
        (status = 503, description = "`NEASMART_UNAVAILABLE`", body = ErrorBody),
    ),
)]
async fn api_notifications_get(State(s): State<HubState>) -> Response {
    notifications_get(Flavor::Api, s).await
}

/// The installation's operating mode.
#[utoipa::path(
    get,
    path = "/neasmart/mode",
    tag = "neasmart",
    extensions(("x-watchpost-role" = json!("viewer"))),
    responses(
        (status = 200, description = "The mode (1..=5, 0 unknown)", body = ModeView),
        (status = 503, description = "`NEASMART_UNAVAILABLE`", body = ErrorBody),
    ),
)]
async fn api_mode_get(State(s): State<HubState>) -> Response {
    mode_get(Flavor::Api, s).await
}

/// Sets the installation's operating mode; answered once the fieldbus worker applied it.
#[utoipa::path(
    post,
    path = "/neasmart/mode",
    tag = "neasmart",
    extensions(("x-watchpost-role" = json!("operator"))),
    request_body = ModeCommandBody,
    responses(
        (status = 200, description = "Applied; the mode as it is now", body = ModeView),
        (status = 400, description = "`INVALID_MODE`, `EMPTY_COMMAND`, `INVALID_BODY`", body = ErrorBody),
        (status = 502, description = "`FIELDBUS_BAD_REPLY`, `UNKNOWN_COMMAND`", body = ErrorBody),
        (status = 503, description = "`FIELDBUS_UNAVAILABLE`", body = ErrorBody),
    ),
)]
async fn api_mode_post(State(s): State<HubState>, body: axum::body::Bytes) -> Response {
    mode_post(Flavor::Api, s, body).await
}

/// The installation's operating state.
#[utoipa::path(
    get,
    path = "/neasmart/state",
    tag = "neasmart",
    extensions(("x-watchpost-role" = json!("viewer"))),
    responses(
        (status = 200, description = "The state (1..=6, 0 unknown)", body = StateView),
        (status = 503, description = "`NEASMART_UNAVAILABLE`", body = ErrorBody),
    ),
)]
async fn api_state_get(State(s): State<HubState>) -> Response {
    state_get(Flavor::Api, s).await
}

/// Sets the installation's operating state; answered once the fieldbus worker applied it.
#[utoipa::path(
    post,
    path = "/neasmart/state",
    tag = "neasmart",
    extensions(("x-watchpost-role" = json!("operator"))),
    request_body = StateCommandBody,
    responses(
        (status = 200, description = "Applied; the state as it is now", body = StateView),
        (status = 400, description = "`INVALID_STATE`, `EMPTY_COMMAND`, `INVALID_BODY`", body = ErrorBody),
        (status = 502, description = "`FIELDBUS_BAD_REPLY`, `UNKNOWN_COMMAND`", body = ErrorBody),
        (status = 503, description = "`FIELDBUS_UNAVAILABLE`", body = ErrorBody),
    ),
)]
async fn api_state_post(State(s): State<HubState>, body: axum::body::Bytes) -> Response {
    state_post(Flavor::Api, s, body).await
}

/// `/api/v1/neasmart/...` (paths relative to `/api/v1`).
pub fn router() -> OpenApiRouter<HubState> {
    OpenApiRouter::new()
        .routes(routes!(zones_list))
        .routes(routes!(status_get))
        .routes(routes!(api_zone_get, api_zone_post))
        .routes(routes!(api_mixed_group_get))
        .routes(routes!(api_dehumidifier_get))
        .routes(routes!(api_pump_get))
        .routes(routes!(api_outside_get))
        .routes(routes!(api_notifications_get))
        .routes(routes!(api_mode_get, api_mode_post))
        .routes(routes!(api_state_get, api_state_post))
}

/// The original add-on's un-prefixed routes, answered in its shapes.
fn compat_routes() -> Router<HubState> {
    let flavor = Flavor::Compat;
    Router::new()
        .route(
            "/zones/{base}/{zone}",
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
            "/mixedgroups/{id}",
            get(move |State(s): State<HubState>, Path(id): Path<String>| {
                mixed_group_get(flavor, s, id)
            }),
        )
        .route(
            "/outsidetemperature",
            get(move |State(s): State<HubState>| outside_get(flavor, s)),
        )
        .route(
            "/notifications",
            get(move |State(s): State<HubState>| notifications_get(flavor, s)),
        )
        .route(
            "/mode",
            get(move |State(s): State<HubState>| mode_get(flavor, s)).post(
                move |State(s): State<HubState>, body: axum::body::Bytes| {
                    mode_post(flavor, s, body)
                },
            ),
        )
        .route(
            "/state",
            get(move |State(s): State<HubState>| state_get(flavor, s)).post(
                move |State(s): State<HubState>, body: axum::body::Bytes| {
                    state_post(flavor, s, body)
                },
            ),
        )
        .route(
            "/dehumidifiers/{id}",
            get(move |State(s): State<HubState>, Path(id): Path<String>| {
                dehumidifier_get(flavor, s, id)
            }),
        )
        .route(
            "/pumps/{id}",
            get(move |State(s): State<HubState>, Path(id): Path<String>| pump_get(flavor, s, id)),
        )
}

async fn compat_health(State(state): State<HubState>) -> Response {
    let (body, f) = health_body(&state);
    with_headers(
        (StatusCode::OK, axum::Json(to_json(body))).into_response(),
        &f,
    )
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
    compat_routes()
        .route("/health", get(compat_health))
        .fallback(compat_not_found)
        .with_state(state)
}

/// Serves the compatibility listener when `fieldbus.neasmart.compat_listen` is set. While the
/// address cannot be bound (another process holds the port), the hub reports it as a fault
/// (`/health` degraded with the reason) and binds again with backoff, 1 s doubling to 30 s.
pub fn start_compat_listener(state: &HubState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let Some(addr) = state.config.fieldbus.neasmart.compat_listen else {
            return;
        };
        let subject = format!("neasmart compat listener {addr}");
        let shutdown = state.ctx.shutdown().clone();
        let mut backoff = Duration::from_secs(1);
        let mut logged = 0u32;
        let listener = loop {
            match tokio::net::TcpListener::bind(addr.addr()).await {
                Ok(l) => break l,
                Err(e) => {
                    let reason = format!("binding {addr}: {e}");
                    // The first few failures, then the retries are silent (the fault stays).
                    if logged < 3 {
                        logged += 1;
                        tracing::error!(%addr, error = %e, retry_ms = backoff.as_millis() as u64, "cannot bind the Neasmart compatibility listener; retrying");
                    }
                    state.ctx.set_fault(&subject, reason);
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        };
        state.ctx.clear_fault(&subject);
        tracing::info!(%addr, "Neasmart compatibility API listening (original add-on paths, no authentication)");
        let app = compat_router(state.clone());
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
        {
            tracing::error!(error = %e, "Neasmart compatibility listener failed");
            state
                .ctx
                .set_fault(&subject, format!("serving {addr}: {e}"));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(client: &FieldbusClient, topic: &str, payload: &str) -> Result<(), CacheError> {
        let levels: Vec<&str> = topic.split('/').collect();
        client.take(topic, &levels, payload.as_bytes())
    }

    #[test]
    fn the_cache_keeps_typed_state_per_entity_and_module() {
        let c = FieldbusClient::default();
        let zone = r#"{"base": 2, "zone": 1, "active": true, "state": 1, "state_name": "normal",
            "setpoint": 22.5, "temperature": 19.9, "relative_humidity": 48,
            "pending_state": false, "pending_setpoint": false}"#;
        take(&c, "neasmart/zone/2/1", zone).unwrap();
        let idle = zone.replace(r#""active": true"#, r#""active": false"#);
        take(
            &c,
            "neasmart/zone/1/1",
            &idle.replace(r#""base": 2"#, r#""base": 1"#),
        )
        .unwrap();
        let z = ZoneId::new(2, 1).unwrap();
        assert_eq!(c.zone(z).unwrap().setpoint, Some(22.5));
        assert_eq!(
            c.active_zones().iter().map(|z| z.id).collect::<Vec<_>>(),
            [z]
        );
        take(
            &c,
            "neasmart/global",
            r#"{"mode": 2, "mode_name": "heating", "state": 4, "state_name": "time_program",
                "pending_mode": false, "pending_state": false}"#,
        )
        .unwrap();
        assert_eq!(c.global().unwrap().state, 4);
        take(&c, "neasmart/pump/5", r#"{"pump_state": 1}"#).unwrap();
        let pump = Entity::Pump(watchpost_neasmart::PumpId::new(5).unwrap());
        assert!(matches!(c.entity(pump), Some(EntityState::Pump(p)) if p.view.pump_state == 1));
        take(
            &c,
            "neasmart/status",
            r#"{"registers_receiving_updates": true, "registers_stale": false,
                "registers_age_seconds": 0.5, "last_register_write": "2026-12-07T10:00:00.000Z",
                "last_register_write_unix_ms": 1796637600000, "stale_after_seconds": 180,
                "command_sync_timeout_seconds": 30, "pending_command_registers": 0,
                "persist_command_registers": false, "startup_global_mode": 0,
                "startup_global_state": 0}"#,
        )
        .unwrap();
        assert_eq!(c.status().unwrap().stale_after_seconds, 180);
        take(
            &c,
            "relay/out/status",
            r#"{"module": "out", "unit_id": 1, "breaker": "closed", "consecutive_failures": 0,
                "last_error": null, "last_ok_unix_ms": 5, "channels": []}"#,
        )
        .unwrap();
        assert_eq!(c.relay("out").unwrap().unit_id, 1);

        // Commands and channel topics are not state; a payload of the wrong shape is refused
        // and leaves the cache as it was; an empty payload removes the state.
        take(&c, "neasmart/zone/2/1/set", r#"{"state": 2}"#).unwrap();
        take(&c, "relay/out/channel/door", r#"{"on": true}"#).unwrap();
        assert!(take(&c, "neasmart/zone/2/1", r#"{"pump_state": 1}"#).is_err());
        assert_eq!(c.zone(z).unwrap().state, 1);
        take(&c, "neasmart/zone/2/1", "").unwrap();
        assert!(c.zone(z).is_none());
        take(&c, "relay/out/status", "").unwrap();
        assert!(c.relay("out").is_none());
    }

    #[test]
    fn every_refusal_has_a_status() {
        for code in NeasmartCode::ALL {
            let status = neasmart_status(*code);
            assert!(status.is_client_error() || status == StatusCode::BAD_GATEWAY);
        }
    }
}
