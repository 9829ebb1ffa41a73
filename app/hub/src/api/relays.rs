//! `/api/v1/relays`: the Modbus relay modules the fieldbus worker drives.
//!
//! Reads come from the retained status the worker publishes per module (breaker state, last
//! error, cached channel states), kept by the hub's fieldbus client (`HubState::neasmart`,
//! [`super::neasmart::FieldbusClient`]). Commands are checked here (module and channel
//! configured, the body one of the relay contract's spellings) and sent as
//! `watchpost_contract::relay::{Set, Test}` with `Bus::request`; they answer once the coil
//! write succeeded (200), or with the worker's [`RelayCode`] mapped to HTTP by one exhaustive
//! `match` (503 when the module is unreachable or its circuit breaker is open), or 503 when
//! the worker does not confirm in time.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use watchpost_bus::RequestError;
use watchpost_config::fieldbus::RelayModuleConfig;
use watchpost_contract::relay::{
    self, Breaker, ChannelReply, ChannelState, ModuleStatus, RelayCode,
};

use crate::api::extract::{Path, Query};
use crate::api::list::{Page, PageParams, paginate};
use crate::error::{ApiError, ErrorBody};
use crate::state::HubState;

pub fn router() -> OpenApiRouter<HubState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(module))
        .routes(routes!(set))
        .routes(routes!(test))
}

fn configured<'a>(state: &'a HubState, module: &str) -> Result<&'a RelayModuleConfig, ApiError> {
    state
        .config
        .fieldbus
        .relays
        .iter()
        .find(|m| m.name.as_str() == module)
        .ok_or_else(|| {
            ApiError::not_found(
                "RELAY_NOT_FOUND",
                format!("no relay module `{module}` is configured"),
            )
        })
}

fn channel_configured(m: &RelayModuleConfig, channel: &str) -> Result<(), ApiError> {
    if m.channels.iter().any(|c| c.name.as_str() == channel) {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "CHANNEL_NOT_FOUND",
            format!("relay module `{}` has no channel `{channel}`", m.name),
        ))
    }
}

/// The HTTP status of a relay refusal, from the hub's checks or the worker.
fn relay_status(code: RelayCode) -> StatusCode {
    match code {
        RelayCode::InvalidBody => StatusCode::BAD_REQUEST,
        RelayCode::RelayNotFound | RelayCode::ChannelNotFound => StatusCode::NOT_FOUND,
        RelayCode::RelayBreakerOpen
        | RelayCode::RelayTimeout
        | RelayCode::RelayUnreachable
        | RelayCode::RelayGpioFailed
        | RelayCode::RelayBusy => StatusCode::SERVICE_UNAVAILABLE,
        RelayCode::RelayBadResponse => StatusCode::BAD_GATEWAY,
    }
}

/// Why a relay command has no confirmation, as the API answers it.
fn command_failed(e: RequestError<RelayCode>, timeout: Duration) -> ApiError {
    match e {
        RequestError::Refused { error, .. } => {
            ApiError::new(relay_status(error.code), error.code.as_str(), error.message)
                .with_details(error.details)
        }
        RequestError::Timeout { .. } | RequestError::Bus(_) => ApiError::unavailable(
            "FIELDBUS_UNAVAILABLE",
            format!(
                "the fieldbus worker did not confirm within {} ms: {e}",
                timeout.as_millis()
            ),
        ),
        RequestError::BadReply { .. } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "FIELDBUS_BAD_REPLY",
            format!("the fieldbus worker's answer is not understood: {e}"),
        ),
    }
}

fn to_json<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A configured relay module in the list: its status once the worker has published it, its
/// name and unit with `breaker: null` and no channels before.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModuleItem {
    pub module: String,
    pub unit_id: u8,
    /// `null` until the worker has published the module's status.
    pub breaker: Option<Breaker>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_ok_unix_ms: Option<Option<u64>>,
    pub channels: Vec<ChannelState>,
}

impl From<ModuleStatus> for ModuleItem {
    fn from(s: ModuleStatus) -> Self {
        Self {
            module: s.module,
            unit_id: s.unit_id,
            breaker: Some(s.breaker),
            consecutive_failures: Some(s.consecutive_failures),
            last_error: Some(s.last_error),
            last_ok_unix_ms: Some(s.last_ok_unix_ms),
            channels: s.channels,
        }
    }
}

/// The configured relay modules, in configuration order, with their state.
#[utoipa::path(
    get,
    path = "/relays",
    tag = "relays",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(PageParams),
    responses(
        (status = 200, description = "One page of relay modules", body = Page<ModuleItem>),
        (status = 400, description = "`INVALID_PAGE`, `INVALID_LIMIT`, `INVALID_QUERY`", body = ErrorBody),
    ),
)]
async fn list(
    State(state): State<HubState>,
    Query(p): Query<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let req = p.check()?;
    Ok(Json(to_json(paginate(modules(&state), req))))
}

/// The configured relay modules, in configuration order, with their state (also the relays
/// page's list).
pub(crate) fn modules(state: &HubState) -> Vec<ModuleItem> {
    state
        .config
        .fieldbus
        .relays
        .iter()
        .map(|m| match state.neasmart.relay(m.name.as_str()) {
            Some(status) => ModuleItem::from(status),
            None => ModuleItem {
                module: m.name.as_str().to_string(),
                unit_id: m.unit_id.get(),
                breaker: None,
                consecutive_failures: None,
                last_error: None,
                last_ok_unix_ms: None,
                channels: Vec::new(),
            },
        })
        .collect()
}

/// One relay module: its link's circuit breaker, last error and channels.
#[utoipa::path(
    get,
    path = "/relays/{module}",
    tag = "relays",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(("module" = String, Path, description = "The module's configured name")),
    responses(
        (status = 200, description = "The module", body = ModuleStatus),
        (status = 404, description = "`RELAY_NOT_FOUND`", body = ErrorBody),
        (status = 503, description = "`RELAY_STATE_UNAVAILABLE`: no state from the fieldbus worker yet", body = ErrorBody),
    ),
)]
async fn module(
    State(state): State<HubState>,
    Path(module): Path<String>,
) -> Result<Json<Value>, ApiError> {
    configured(&state, &module)?;
    state
        .neasmart
        .relay(&module)
        .map(|s| Json(to_json(s)))
        .ok_or_else(|| {
            ApiError::unavailable(
                "RELAY_STATE_UNAVAILABLE",
                format!(
                    "no state for relay module `{module}` yet (is the fieldbus worker running?)"
                ),
            )
        })
}

fn command_timeout(state: &HubState) -> Duration {
    Duration::from_millis(state.config.fieldbus.neasmart.api_command_timeout_ms)
}

/// The body of a confirmed command: `{"channel": <channel state>}`.
fn channel_body(channel: ChannelState) -> Json<Value> {
    Json(to_json(ChannelReply { channel }))
}

/// Switches or pulses a channel; answered once the coil write succeeded.
#[utoipa::path(
    post,
    path = "/relays/{module}/channels/{channel}",
    tag = "relays",
    extensions(("x-watchpost-role" = json!("operator"))),
    params(
        ("module" = String, Path, description = "The module's configured name"),
        ("channel" = String, Path, description = "The channel's configured name"),
    ),
    request_body(content = relay::Set, description = "`{\"on\": true|false}` (a pulse channel pulses on every on) or `{\"pulse_ms\": n}`"),
    responses(
        (status = 200, description = "The coil was written; the channel as it is now", body = ChannelReply),
        (status = 400, description = "`INVALID_BODY`", body = ErrorBody),
        (status = 404, description = "`RELAY_NOT_FOUND`, `CHANNEL_NOT_FOUND`", body = ErrorBody),
        (status = 502, description = "`RELAY_BAD_RESPONSE`, `FIELDBUS_BAD_REPLY`", body = ErrorBody),
        (status = 503, description = "`RELAY_BREAKER_OPEN`, `RELAY_TIMEOUT`, `RELAY_UNREACHABLE`, `RELAY_GPIO_FAILED`, `RELAY_BUSY`, `FIELDBUS_UNAVAILABLE`", body = ErrorBody),
    ),
)]
pub(crate) async fn set(
    State(state): State<HubState>,
    Path((module, channel)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("INVALID_BODY", format!("the body is not JSON: {e}")))?;
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "INVALID_BODY",
            "give {\"on\": true|false} or {\"pulse_ms\": n}",
        ));
    }
    channel_configured(configured(&state, &module)?, &channel)?;
    let command = relay::Set::from_body(&body).map_err(|e| {
        ApiError::new(relay_status(e.code), e.code.as_str(), e.message).with_details(e.details)
    })?;
    let timeout = command_timeout(&state);
    state
        .neasmart
        .set_relay(&state.bus, &module, &channel, &command, timeout)
        .await
        .map(channel_body)
        .map_err(|e| command_failed(e, timeout))
}

/// Pulses a channel for its configured length, whatever its mode (a wiring test).
#[utoipa::path(
    post,
    path = "/relays/{module}/channels/{channel}/test",
    tag = "relays",
    extensions(("x-watchpost-role" = json!("operator"))),
    params(
        ("module" = String, Path, description = "The module's configured name"),
        ("channel" = String, Path, description = "The channel's configured name"),
    ),
    responses(
        (status = 200, description = "The pulse started; the channel as it is now", body = ChannelReply),
        (status = 404, description = "`RELAY_NOT_FOUND`, `CHANNEL_NOT_FOUND`", body = ErrorBody),
        (status = 502, description = "`RELAY_BAD_RESPONSE`, `FIELDBUS_BAD_REPLY`", body = ErrorBody),
        (status = 503, description = "`RELAY_BREAKER_OPEN`, `RELAY_TIMEOUT`, `RELAY_UNREACHABLE`, `RELAY_GPIO_FAILED`, `RELAY_BUSY`, `FIELDBUS_UNAVAILABLE`", body = ErrorBody),
    ),
)]
pub(crate) async fn test(
    State(state): State<HubState>,
    Path((module, channel)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    channel_configured(configured(&state, &module)?, &channel)?;
    let timeout = command_timeout(&state);
    state
        .neasmart
        .test_relay(&state.bus, &module, &channel, timeout)
        .await
        .map(channel_body)
        .map_err(|e| command_failed(e, timeout))
}
