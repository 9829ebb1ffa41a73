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

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use watchpost_bus::RequestError;
use watchpost_config::fieldbus::RelayModuleConfig;
use watchpost_contract::relay::{self, ChannelState, RelayCode};

use crate::error::ApiError;
use crate::state::HubState;

pub fn router() -> Router<HubState> {
    Router::new()
        .route("/relays", get(list))
        .route("/relays/{module}", get(module))
        .route("/relays/{module}/channels/{channel}", post(set))
        .route("/relays/{module}/channels/{channel}/test", post(test))
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

async fn list(State(state): State<HubState>) -> Json<Value> {
    let items: Vec<Value> = state
        .config
        .fieldbus
        .relays
        .iter()
        .map(|m| match state.neasmart.relay(m.name.as_str()) {
            Some(status) => to_json(status),
            None => {
                json!({"module": m.name.as_str(), "unit_id": m.unit_id.get(), "breaker": null, "channels": []})
            }
        })
        .collect();
    let total = items.len();
    Json(json!({
        "items": items,
        "pagination": {"page": 1, "limit": total.max(1), "total": total, "total_pages": 1},
    }))
}

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
    Json(json!({"channel": to_json(channel)}))
}

async fn set(
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

async fn test(
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
