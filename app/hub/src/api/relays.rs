//! `/api/v1/relays`: the Modbus relay modules the fieldbus worker drives.
//!
//! Reads come from the retained status the worker publishes per module (breaker state, last
//! error, cached channel states); commands go over the bus with request/reply and answer once
//! the coil write succeeded (200), or with 503 when the module is unreachable, its circuit
//! breaker is open, or the worker does not confirm in time.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::api::neasmart::request;
use crate::error::ApiError;
use crate::state::HubState;

pub fn router() -> Router<HubState> {
    Router::new()
        .route("/relays", get(list))
        .route("/relays/{module}", get(module))
        .route("/relays/{module}/channels/{channel}", post(set))
        .route("/relays/{module}/channels/{channel}/test", post(test))
}

fn configured(state: &HubState, module: &str) -> Result<(), ApiError> {
    if state
        .config
        .fieldbus
        .relays
        .iter()
        .any(|m| m.name.as_str() == module)
    {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "RELAY_NOT_FOUND",
            format!("no relay module `{module}` is configured"),
        ))
    }
}

fn status_of(state: &HubState, module: &str) -> Option<Value> {
    state
        .neasmart
        .get(&state.bus.topic(&["relay", module, "status"]))
}

async fn list(State(state): State<HubState>) -> Json<Value> {
    let items: Vec<Value> = state
        .config
        .fieldbus
        .relays
        .iter()
        .map(|m| {
            status_of(&state, m.name.as_str()).unwrap_or_else(|| {
                json!({"module": m.name.as_str(), "unit_id": m.unit_id.get(), "breaker": null, "channels": []})
            })
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
    status_of(&state, &module).map(Json).ok_or_else(|| {
        ApiError::unavailable(
            "RELAY_STATE_UNAVAILABLE",
            format!("no state for relay module `{module}` yet (is the fieldbus worker running?)"),
        )
    })
}

async fn command(
    state: &HubState,
    module: &str,
    channel: &str,
    verb: &str,
    body: Value,
) -> Result<Json<Value>, ApiError> {
    configured(state, module)?;
    let topic = state
        .bus
        .topic(&["relay", module, "channel", channel, verb]);
    let timeout = Duration::from_millis(state.config.fieldbus.neasmart.api_command_timeout_ms);
    let reply = request(state, &topic, body, timeout).await.map_err(|e| {
        ApiError::unavailable(
            "FIELDBUS_UNAVAILABLE",
            format!(
                "the fieldbus worker did not confirm within {} ms: {e}",
                timeout.as_millis()
            ),
        )
    })?;
    if reply.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(Json(
            json!({"channel": reply.get("channel").cloned().unwrap_or(Value::Null)}),
        ));
    }
    let message = reply
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("the relay command failed")
        .to_string();
    let code = reply
        .pointer("/error/code")
        .and_then(Value::as_str)
        .unwrap_or("");
    Err(match code {
        "CHANNEL_NOT_FOUND" => ApiError::not_found("CHANNEL_NOT_FOUND", message),
        "RELAY_NOT_FOUND" => ApiError::not_found("RELAY_NOT_FOUND", message),
        "INVALID_BODY" => ApiError::bad_request("INVALID_BODY", message),
        "RELAY_BREAKER_OPEN" => ApiError::unavailable("RELAY_BREAKER_OPEN", message),
        "RELAY_TIMEOUT" => ApiError::unavailable("RELAY_TIMEOUT", message),
        "RELAY_BAD_RESPONSE" => {
            ApiError::new(StatusCode::BAD_GATEWAY, "RELAY_BAD_RESPONSE", message)
        }
        _ => ApiError::unavailable("RELAY_UNREACHABLE", message),
    })
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
    command(&state, &module, &channel, "set", body).await
}

async fn test(
    State(state): State<HubState>,
    Path((module, channel)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    command(&state, &module, &channel, "test", json!({})).await
}
