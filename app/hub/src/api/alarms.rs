//! `/api/v1/alarms`: alarm receivers and mappings (the same model as `[alarms]` in the
//! configuration file), delivery queue status and test alarms.
//!
//! - `GET /alarms/queues` — every receiver's queue and delivery status, and the intake.
//! - `POST /alarms/receivers/{id}/test` — queue a test alarm (body optional:
//!   `{"zone", "channel", "output"}`); 202 with `{"alarm_id", "receiver", "queue_seq"}`.
//! - `GET|POST /alarms/receivers`, `GET|PUT|DELETE /alarms/receivers/{id}` — receivers.
//!   Secrets (`key`, `token`) are never returned: they read `"***"`, and a `"***"` sent back
//!   keeps the stored secret.
//! - `GET|POST /alarms/mappings`, `GET|PUT|DELETE /alarms/mappings/{sensor}` — mappings.
//!
//! Entries from the configuration file are listed with `"source": "file"` and are read-only
//! (409 `READ_ONLY`); entries created here (`"source": "api"`) are stored in the hub's
//! settings and merged with the file's. Every change is validated together with everything
//! else (422 `INVALID_ALARM_CONFIG` with the problems in `details`) and then applied: the
//! alarm service restarts its delivery with the new model, queues intact.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use watchpost_alarm::{
    AlarmError, AlarmHandle, IntakeView, Managed, ReceiverView, TestQueued, TestRequest,
};
use watchpost_config::alarms::{AlarmsConfig, MappingConfig, ReceiverConfig};
use watchpost_config::secrets::is_secret_key;

use crate::api::extract::{Path, Query};
use crate::api::list::{Page, PageParams, Pagination, paginate};
use crate::error::{ApiError, ErrorBody};
use crate::state::HubState;

pub fn router() -> OpenApiRouter<HubState> {
    OpenApiRouter::new()
        .routes(routes!(queues))
        .routes(routes!(list_receivers, create_receiver))
        .routes(routes!(get_receiver, put_receiver, delete_receiver))
        .routes(routes!(test))
        .routes(routes!(list_mappings, create_mapping))
        .routes(routes!(get_mapping, put_mapping, delete_mapping))
}

/// Where a receiver or mapping comes from: the configuration file (read-only here) or this API.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    File,
    Api,
}

/// The kind of a receiver.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverType {
    Sia,
    Chekt,
    Relay,
}

/// A receiver: the `[[alarms.receivers]]` table of the configuration (docs/alarms.md lists
/// every key of each `type`), with its secrets (`key`, `token`) read as `"***"` and where it
/// comes from. A `"***"` sent back keeps the stored secret.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReceiverDoc {
    /// The receiver's name, used by mappings' routes.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ReceiverType,
    /// Answers only; ignored in requests.
    pub source: Option<Source>,
}

/// A mapping: the `[[alarms.mappings]]` table of the configuration (docs/alarms.md), which
/// sensor raises alarms to which receivers, and where it comes from.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingDoc {
    /// The YoLink deviceId.
    pub sensor: String,
    pub name: Option<String>,
    /// Conditions that raise an alarm (`intrusion`, `water`, `smoke`, ...); absent: every
    /// condition the sensor kind can have.
    pub conditions: Option<Vec<String>>,
    /// Send restores when a condition clears (default true).
    pub restore: Option<bool>,
    pub door_prop_s: Option<u64>,
    pub debounce_ms: Option<u64>,
    pub rate_limit_per_min: Option<u32>,
    /// The receivers and their zone, channel or output.
    pub routes: Vec<Object>,
    /// Answers only; ignored in requests.
    pub source: Option<Source>,
}

/// Any JSON object (documentation).
type Object = serde_json::Map<String, Value>;

/// `GET /alarms/queues`: the delivery queues as a list, and the intake.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueuesBody {
    pub items: Vec<ReceiverView>,
    pub pagination: Pagination,
    pub intake: IntakeView,
    /// Whether `[alarms]` is enabled.
    pub enabled: bool,
}

const MASK: &str = "***";

/// The running alarm service.
fn service(state: &HubState) -> Result<&AlarmHandle, ApiError> {
    if state.alarm.running() {
        Ok(&state.alarm)
    } else {
        Err(ApiError::unavailable(
            "ALARMS_UNAVAILABLE",
            "the alarm service is not running",
        ))
    }
}

fn alarm_error(e: AlarmError) -> ApiError {
    match e {
        AlarmError::UnknownReceiver { .. } => {
            ApiError::not_found("RECEIVER_NOT_FOUND", e.to_string())
        }
        AlarmError::QueueFull { .. } => ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "QUEUE_FULL",
            e.to_string(),
        ),
        AlarmError::Disabled => {
            ApiError::new(StatusCode::CONFLICT, "ALARMS_DISABLED", e.to_string())
        }
        AlarmError::Stopped | AlarmError::AlreadyServed => {
            ApiError::unavailable("ALARMS_UNAVAILABLE", e.to_string())
        }
        AlarmError::Receiver { .. } => ApiError::bad_request("INVALID_TEST", e.to_string()),
        AlarmError::OpenQueue { .. }
        | AlarmError::Queue { .. }
        | AlarmError::LoadState { .. }
        | AlarmError::SaveState { .. }
        | AlarmError::HttpClient { .. }
        | AlarmError::Subscribe { .. }
        | AlarmError::Task { .. } => ApiError::internal("ALARM_SERVICE_ERROR", e.to_string()),
        AlarmError::ManagedSecret { .. }
        | AlarmError::ManagedUnreadable { .. }
        | AlarmError::DeviceKey { .. } => ApiError::internal("ALARM_SECRETS", e.to_string()),
    }
}

const UNAVAILABLE: &str = "`ALARMS_UNAVAILABLE`: the alarm service is not running";

/// Every receiver's delivery queue and status, and the intake of sensor events.
#[utoipa::path(
    get,
    path = "/alarms/queues",
    tag = "alarms",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(PageParams),
    responses(
        (status = 200, description = "One page of queues, the intake, whether alarms are enabled", body = QueuesBody),
        (status = 400, description = "`INVALID_PAGE`, `INVALID_LIMIT`, `INVALID_QUERY`", body = ErrorBody),
        (status = 503, description = UNAVAILABLE, body = ErrorBody),
    ),
)]
async fn queues(
    State(state): State<HubState>,
    Query(p): Query<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let req = p.check()?;
    let h = service(&state)?;
    let Page { items, pagination } = paginate(h.queues(), req);
    Ok(Json(to_json(QueuesBody {
        items,
        pagination,
        intake: h.intake(),
        enabled: h.enabled(),
    })))
}

fn to_json<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A test alarm to one receiver, queued like a real one (the body is optional).
#[utoipa::path(
    post,
    path = "/alarms/receivers/{id}/test",
    tag = "alarms",
    extensions(("x-watchpost-role" = json!("operator"))),
    params(("id" = String, Path, description = "The receiver's id")),
    request_body(content = Option<TestRequest>, description = "Zone (SIA), channel (CHEKT) or output (relay) to use instead of the first mapping's"),
    responses(
        (status = 202, description = "Queued", body = TestQueued),
        (status = 400, description = "`INVALID_TEST`, `INVALID_BODY`", body = ErrorBody),
        (status = 404, description = "`RECEIVER_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`ALARMS_DISABLED`", body = ErrorBody),
        (status = 500, description = "`ALARM_SERVICE_ERROR`: the queue could not be written", body = ErrorBody),
        (status = 503, description = UNAVAILABLE, body = ErrorBody),
        (status = 507, description = "`QUEUE_FULL`", body = ErrorBody),
    ),
)]
pub(crate) async fn test(
    State(state): State<HubState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // No body, or `null`, is the default test.
    let req: Option<TestRequest> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("INVALID_BODY", format!("the body: {e}")))?
    };
    let req = req.unwrap_or_default();
    let h = service(&state)?;
    let queued = h.test_alarm(&id, req).await.map_err(alarm_error)?;
    Ok((StatusCode::ACCEPTED, Json(json!(queued))))
}

// ---- receivers and mappings ------------------------------------------------------------

/// `v` with every secret field (`watchpost_config::secrets::is_secret_key`: `key`, `token`…)
/// reading `"***"`.
fn mask(mut v: Value) -> Value {
    if let Some(obj) = v.as_object_mut() {
        for (k, x) in obj.iter_mut() {
            if is_secret_key(k) && !x.is_null() {
                *x = Value::String(MASK.into());
            }
        }
    }
    v
}

fn receiver_view(r: &ReceiverConfig, source: &str) -> Value {
    let mut v = mask(serde_json::to_value(r).unwrap_or(Value::Null));
    if let Some(obj) = v.as_object_mut() {
        obj.insert("source".into(), Value::String(source.into()));
    }
    v
}

fn mapping_view(m: &MappingConfig, source: &str) -> Value {
    let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("source".into(), Value::String(source.into()));
    }
    v
}

fn list(items: Vec<Value>, p: PageParams) -> Result<Json<Value>, ApiError> {
    let req = p.check()?;
    Ok(Json(to_json(paginate(items, req))))
}

/// The receivers and mappings added through the API, their secrets opened.
pub(crate) async fn managed(state: &HubState) -> Result<Managed, ApiError> {
    let store = state.store.clone();
    let data_dir = state.config.system.data_dir.clone();
    tokio::task::spawn_blocking(move || watchpost_alarm::load_managed(&store, &data_dir))
        .await
        .map_err(|e| ApiError::internal("TASK_FAILED", e.to_string()))?
        .map_err(managed_error)
}

/// Stores the receivers and mappings added through the API, their secrets sealed.
async fn save_managed(state: &HubState, m: Managed) -> Result<(), ApiError> {
    let store = state.store.clone();
    let data_dir = state.config.system.data_dir.clone();
    tokio::task::spawn_blocking(move || watchpost_alarm::save_managed(&store, &data_dir, &m))
        .await
        .map_err(|e| ApiError::internal("TASK_FAILED", e.to_string()))?
        .map_err(managed_error)
}

/// A store error reading or writing the managed entries is the store's (`STORE_ERROR`).
fn managed_error(e: AlarmError) -> ApiError {
    match e {
        AlarmError::LoadState { source } | AlarmError::SaveState { source } => {
            ApiError::from(*source)
        }
        other => alarm_error(other),
    }
}

/// Validates `m` merged with the file's model, saves it and reloads the service.
async fn apply(state: &HubState, m: Managed) -> Result<(), ApiError> {
    let merged: AlarmsConfig = m.merged(&state.config.alarms);
    let mut problems = Vec::new();
    merged.validate(&mut problems);
    if !problems.is_empty() {
        let details: Vec<Value> = problems
            .iter()
            .map(|p| json!({"key": p.key, "message": p.message}))
            .collect();
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_ALARM_CONFIG",
            format!("{} problem(s) in the alarm configuration", problems.len()),
        )
        .with_details(json!({"problems": details})));
    }
    save_managed(state, m).await?;
    if let Ok(h) = service(state) {
        match h.reload().await {
            Ok(()) | Err(AlarmError::Disabled) => {}
            Err(e) => return Err(alarm_error(e)),
        }
    }
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(v: Value, code: &'static str) -> Result<T, ApiError> {
    serde_json::from_value(v)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string()))
}

fn file_receiver<'a>(state: &'a HubState, id: &str) -> Option<&'a ReceiverConfig> {
    state
        .config
        .alarms
        .receivers
        .iter()
        .find(|r| r.id().as_str() == id)
}

fn file_mapping<'a>(state: &'a HubState, sensor: &str) -> Option<&'a MappingConfig> {
    state
        .config
        .alarms
        .mappings
        .iter()
        .find(|m| m.sensor == sensor)
}

fn read_only(what: &str, id: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "READ_ONLY",
        format!("{what} `{id}` comes from the configuration file; change it there"),
    )
}

/// Puts back stored secrets where the client sent the mask.
fn unmask(mut body: Value, old: Option<&ReceiverConfig>) -> Value {
    let old = old.map(|o| serde_json::to_value(o).unwrap_or(Value::Null));
    if let Some(obj) = body.as_object_mut() {
        let masked: Vec<String> = obj
            .iter()
            .filter(|(k, v)| is_secret_key(k) && v.as_str() == Some(MASK))
            .map(|(k, _)| k.clone())
            .collect();
        for k in masked {
            match old
                .as_ref()
                .and_then(|o| o.get(&k))
                .filter(|v| !v.is_null())
            {
                Some(v) => {
                    obj.insert(k, v.clone());
                }
                None => {
                    obj.remove(&k);
                }
            }
        }
        obj.remove("source");
    }
    body
}

/// Every receiver: the configuration file's first, then those added here.
#[utoipa::path(
    get,
    path = "/alarms/receivers",
    tag = "alarms",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(PageParams),
    responses(
        (status = 200, description = "One page of receivers", body = Page<ReceiverDoc>),
        (status = 400, description = "`INVALID_PAGE`, `INVALID_LIMIT`, `INVALID_QUERY`", body = ErrorBody),
        (status = 500, description = "`STORE_ERROR`", body = ErrorBody),
    ),
)]
async fn list_receivers(
    State(state): State<HubState>,
    Query(p): Query<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let m = managed(&state).await?;
    let mut items: Vec<Value> = state
        .config
        .alarms
        .receivers
        .iter()
        .map(|r| receiver_view(r, "file"))
        .collect();
    items.extend(m.receivers.iter().map(|r| receiver_view(r, "api")));
    list(items, p)
}

/// One receiver.
#[utoipa::path(
    get,
    path = "/alarms/receivers/{id}",
    tag = "alarms",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(("id" = String, Path, description = "The receiver's id")),
    responses(
        (status = 200, description = "The receiver", body = ReceiverDoc),
        (status = 404, description = "`RECEIVER_NOT_FOUND`", body = ErrorBody),
        (status = 500, description = "`STORE_ERROR`", body = ErrorBody),
    ),
)]
async fn get_receiver(
    State(state): State<HubState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if let Some(r) = file_receiver(&state, &id) {
        return Ok(Json(receiver_view(r, "file")));
    }
    let m = managed(&state).await?;
    m.receivers
        .iter()
        .find(|r| r.id().as_str() == id)
        .map(|r| Json(receiver_view(r, "api")))
        .ok_or_else(|| ApiError::not_found("RECEIVER_NOT_FOUND", format!("no receiver `{id}`")))
}

/// Adds a receiver, stored in the hub's settings; the alarm service applies it at once.
#[utoipa::path(
    post,
    path = "/alarms/receivers",
    tag = "alarms",
    extensions(("x-watchpost-role" = json!("admin"))),
    request_body = ReceiverDoc,
    responses(
        (status = 201, description = "Added", body = ReceiverDoc),
        (status = 400, description = "`INVALID_BODY`", body = ErrorBody),
        (status = 409, description = "`READ_ONLY` (from the configuration file), `RECEIVER_EXISTS`, `MAPPING_EXISTS`, `RECEIVER_IN_USE`, `ALARMS_DISABLED`", body = ErrorBody),
        (status = 422, description = "`INVALID_RECEIVER`, `INVALID_MAPPING`, `INVALID_ALARM_CONFIG` (the problems in `details`)", body = ErrorBody),
        (status = 500, description = "`STORE_ERROR`, `ALARM_SERVICE_ERROR`", body = ErrorBody),
        (status = 503, description = UNAVAILABLE, body = ErrorBody),
    ),
)]
async fn create_receiver(
    State(state): State<HubState>,
    crate::api::extract::Json(body): crate::api::extract::Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let _guard = state.alarm.lock_edits().await;
    let r: ReceiverConfig = parse(unmask(body, None), "INVALID_RECEIVER")?;
    let mut m = managed(&state).await?;
    if file_receiver(&state, r.id().as_str()).is_some()
        || m.receivers.iter().any(|x| x.id() == r.id())
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "RECEIVER_EXISTS",
            format!("receiver `{}` exists", r.id()),
        ));
    }
    let view = receiver_view(&r, "api");
    m.receivers.push(r);
    apply(&state, m).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Replaces a receiver added through this API.
#[utoipa::path(
    put,
    path = "/alarms/receivers/{id}",
    tag = "alarms",
    extensions(("x-watchpost-role" = json!("admin"))),
    params(("id" = String, Path, description = "The receiver's id")),
    request_body = ReceiverDoc,
    responses(
        (status = 200, description = "Replaced", body = ReceiverDoc),
        (status = 400, description = "`INVALID_BODY`, `ID_MISMATCH`", body = ErrorBody),
        (status = 404, description = "`RECEIVER_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`READ_ONLY` (from the configuration file), `RECEIVER_EXISTS`, `MAPPING_EXISTS`, `RECEIVER_IN_USE`, `ALARMS_DISABLED`", body = ErrorBody),
        (status = 422, description = "`INVALID_RECEIVER`, `INVALID_MAPPING`, `INVALID_ALARM_CONFIG` (the problems in `details`)", body = ErrorBody),
        (status = 500, description = "`STORE_ERROR`, `ALARM_SERVICE_ERROR`", body = ErrorBody),
        (status = 503, description = UNAVAILABLE, body = ErrorBody),
    ),
)]
async fn put_receiver(
    State(state): State<HubState>,
    Path(id): Path<String>,
    crate::api::extract::Json(body): crate::api::extract::Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let _guard = state.alarm.lock_edits().await;
    if file_receiver(&state, &id).is_some() {
        return Err(read_only("receiver", &id));
    }
    let mut m = managed(&state).await?;
    let Some(pos) = m.receivers.iter().position(|r| r.id().as_str() == id) else {
        return Err(ApiError::not_found(
            "RECEIVER_NOT_FOUND",
            format!("no receiver `{id}`"),
        ));
    };
    let r: ReceiverConfig = parse(unmask(body, Some(&m.receivers[pos])), "INVALID_RECEIVER")?;
    if r.id().as_str() != id {
        return Err(ApiError::bad_request(
            "ID_MISMATCH",
            "the body's id differs from the path's",
        ));
    }
    let view = receiver_view(&r, "api");
    m.receivers[pos] = r;
    apply(&state, m).await?;
    Ok(Json(view))
}

/// Removes a receiver added through this API (refused while a mapping routes to it).
#[utoipa::path(
    delete,
    path = "/alarms/receivers/{id}",
    tag = "alarms",
    extensions(("x-watchpost-role" = json!("admin"))),
    params(("id" = String, Path, description = "The receiver's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "`RECEIVER_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`READ_ONLY` (from the configuration file), `RECEIVER_EXISTS`, `MAPPING_EXISTS`, `RECEIVER_IN_USE`, `ALARMS_DISABLED`", body = ErrorBody),
        (status = 422, description = "`INVALID_RECEIVER`, `INVALID_MAPPING`, `INVALID_ALARM_CONFIG` (the problems in `details`)", body = ErrorBody),
        (status = 500, description = "`STORE_ERROR`, `ALARM_SERVICE_ERROR`", body = ErrorBody),
        (status = 503, description = UNAVAILABLE, body = ErrorBody),
    ),
)]
async fn delete_receiver(
    State(state): State<HubState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let _guard = state.alarm.lock_edits().await;
    if file_receiver(&state, &id).is_some() {
        return Err(read_only("receiver", &id));
    }
    let mut m = managed(&state).await?;
    let before = m.receivers.len();
    m.receivers.retain(|r| r.id().as_str() != id);
    if m.receivers.len() == before {
        return Err(ApiError::not_found(
            "RECEIVER_NOT_FOUND",
            format!("no receiver `{id}`"),
        ));
    }
    let users: Vec<String> = state
        .config
        .alarms
        .mappings
        .iter()
        .chain(m.mappings.iter())
        .filter(|mp| mp.routes.iter().any(|r| r.receiver.as_str() == id))
        .map(|mp| mp.sensor.clone())
        .collect();
    if !users.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "RECEIVER_IN_USE",
            format!("receiver `{id}` is used by {} mapping(s)", users.len()),
        )
        .with_details(json!({"sensors": users})));
    }
    apply(&state, m).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every mapping: the configuration file's first, then those added here.
#[utoipa::path(
    get,
    path = "/alarms/mappings",
    tag = "alarms",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(PageParams),
    responses(
        (status = 200, description = "One page of mappings", body = Page<MappingDoc>),
        (status = 400, description = "`INVALID_PAGE`, `INVALID_LIMIT`, `INVALID_QUERY`", body = ErrorBody),
        (status = 500, description = "`STORE_ERROR`", body = ErrorBody),
    ),
)]
async fn list_mappings(
    State(state): State<HubState>,
    Query(p): Query<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let m = managed(&state).await?;
    let mut items: Vec<Value> = state
        .config
        .alarms
        .mappings
        .iter()
        .map(|x| mapping_view(x, "file"))
        .collect();
    items.extend(m.mappings.iter().map(|x| mapping_view(x, "api")));
    list(items, p)
}

/// One sensor's mapping.
#[utoipa::path(
    get,
    path = "/alarms/mappings/{sensor}",
    tag = "alarms",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(("sensor" = String, Path, description = "The sensor's YoLink deviceId")),
    responses(
        (status = 200, description = "The mapping", body = MappingDoc),
        (status = 404, description = "`MAPPING_NOT_FOUND`", body = ErrorBody),
        (status = 500, description = "`STORE_ERROR`", body = ErrorBody),
    ),
)]
async fn get_mapping(
    State(state): State<HubState>,
    Path(sensor): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if let Some(x) = file_mapping(&state, &sensor) {
        return Ok(Json(mapping_view(x, "file")));
    }
    let m = managed(&state).await?;
    m.mappings
        .iter()
        .find(|x| x.sensor == sensor)
        .map(|x| Json(mapping_view(x, "api")))
        .ok_or_else(|| {
            ApiError::not_found(
                "MAPPING_NOT_FOUND",
                format!("no mapping for sensor `{sensor}`"),
            )
        })
}

fn strip_source(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("source");
    }
    v
}

/// Maps a sensor to receivers, stored in the hub's settings; applied at once.
#[utoipa::path(
    post,
    path = "/alarms/mappings",
    tag = "alarms",
    extensions(("x-watchpost-role" = json!("admin"))),
    request_body = MappingDoc,
    responses(
        (status = 201, description = "Added", body = MappingDoc),
        (status = 400, description = "`INVALID_BODY`", body = ErrorBody),
        (status = 409, description = "`READ_ONLY` (from the configuration file), `RECEIVER_EXISTS`, `MAPPING_EXISTS`, `RECEIVER_IN_USE`, `ALARMS_DISABLED`", body = ErrorBody),
        (status = 422, description = "`INVALID_RECEIVER`, `INVALID_MAPPING`, `INVALID_ALARM_CONFIG` (the problems in `details`)", body = ErrorBody),
        (status = 500, description = "`STORE_ERROR`, `ALARM_SERVICE_ERROR`", body = ErrorBody),
        (status = 503, description = UNAVAILABLE, body = ErrorBody),
    ),
)]
async fn create_mapping(
    State(state): State<HubState>,
    crate::api::extract::Json(body): crate::api::extract::Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let _guard = state.alarm.lock_edits().await;
    let x: MappingConfig = parse(strip_source(body), "INVALID_MAPPING")?;
    let mut m = managed(&state).await?;
    if file_mapping(&state, &x.sensor).is_some() || m.mappings.iter().any(|y| y.sensor == x.sensor)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "MAPPING_EXISTS",
            format!("sensor `{}` is mapped already", x.sensor),
        ));
    }
    let view = mapping_view(&x, "api");
    m.mappings.push(x);
    apply(&state, m).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Replaces a mapping added through this API.
#[utoipa::path(
    put,
    path = "/alarms/mappings/{sensor}",
    tag = "alarms",
    extensions(("x-watchpost-role" = json!("admin"))),
    params(("sensor" = String, Path, description = "The sensor's YoLink deviceId")),
    request_body = MappingDoc,
    responses(
        (status = 200, description = "Replaced", body = MappingDoc),
        (status = 400, description = "`INVALID_BODY`, `ID_MISMATCH`", body = ErrorBody),
        (status = 404, description = "`MAPPING_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`READ_ONLY` (from the configuration file), `RECEIVER_EXISTS`, `MAPPING_EXISTS`, `RECEIVER_IN_USE`, `ALARMS_DISABLED`", body = ErrorBody),
        (status = 422, description = "`INVALID_RECEIVER`, `INVALID_MAPPING`, `INVALID_ALARM_CONFIG` (the problems in `details`)", body = ErrorBody),
        (status = 500, description = "`STORE_ERROR`, `ALARM_SERVICE_ERROR`", body = ErrorBody),
        (status = 503, description = UNAVAILABLE, body = ErrorBody),
    ),
)]
async fn put_mapping(
    State(state): State<HubState>,
    Path(sensor): Path<String>,
    crate::api::extract::Json(body): crate::api::extract::Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let _guard = state.alarm.lock_edits().await;
    if file_mapping(&state, &sensor).is_some() {
        return Err(read_only("mapping", &sensor));
    }
    let x: MappingConfig = parse(strip_source(body), "INVALID_MAPPING")?;
    if x.sensor != sensor {
        return Err(ApiError::bad_request(
            "ID_MISMATCH",
            "the body's sensor differs from the path's",
        ));
    }
    let mut m = managed(&state).await?;
    let Some(pos) = m.mappings.iter().position(|y| y.sensor == sensor) else {
        return Err(ApiError::not_found(
            "MAPPING_NOT_FOUND",
            format!("no mapping for sensor `{sensor}`"),
        ));
    };
    let view = mapping_view(&x, "api");
    m.mappings[pos] = x;
    apply(&state, m).await?;
    Ok(Json(view))
}

/// Removes a mapping added through this API.
#[utoipa::path(
    delete,
    path = "/alarms/mappings/{sensor}",
    tag = "alarms",
    extensions(("x-watchpost-role" = json!("admin"))),
    params(("sensor" = String, Path, description = "The sensor's YoLink deviceId")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "`MAPPING_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`READ_ONLY` (from the configuration file), `RECEIVER_EXISTS`, `MAPPING_EXISTS`, `RECEIVER_IN_USE`, `ALARMS_DISABLED`", body = ErrorBody),
        (status = 422, description = "`INVALID_RECEIVER`, `INVALID_MAPPING`, `INVALID_ALARM_CONFIG` (the problems in `details`)", body = ErrorBody),
        (status = 500, description = "`STORE_ERROR`, `ALARM_SERVICE_ERROR`", body = ErrorBody),
        (status = 503, description = UNAVAILABLE, body = ErrorBody),
    ),
)]
async fn delete_mapping(
    State(state): State<HubState>,
    Path(sensor): Path<String>,
) -> Result<StatusCode, ApiError> {
    let _guard = state.alarm.lock_edits().await;
    if file_mapping(&state, &sensor).is_some() {
        return Err(read_only("mapping", &sensor));
    }
    let mut m = managed(&state).await?;
    let before = m.mappings.len();
    m.mappings.retain(|y| y.sensor != sensor);
    if m.mappings.len() == before {
        return Err(ApiError::not_found(
            "MAPPING_NOT_FOUND",
            format!("no mapping for sensor `{sensor}`"),
        ));
    }
    apply(&state, m).await?;
    Ok(StatusCode::NO_CONTENT)
}
