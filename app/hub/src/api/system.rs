//! `/api/v1/system`: who the appliance is and how its workers are doing.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::error::ApiError;
use crate::state::HubState;

pub fn router() -> Router<HubState> {
    Router::new().route("/system", get(system))
}

async fn system(State(state): State<HubState>) -> Result<Json<serde_json::Value>, ApiError> {
    let s = state.snapshot().await?;
    Ok(Json(json!({
        "version": state.version,
        "uptime_s": s.uptime_ms / 1000,
        "workers": s.workers,
        "listeners": s.listeners,
        "bus_connected": state.bus.is_connected(),
    })))
}
