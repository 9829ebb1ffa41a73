//! `/api/v1/system`: who the appliance is and how its workers are doing.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use watchpost_runtime::proto::WorkerStatus;

use crate::error::{ApiError, ErrorBody};
use crate::state::HubState;

pub fn router() -> OpenApiRouter<HubState> {
    OpenApiRouter::new().routes(routes!(system))
}

/// The appliance and its workers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SystemView {
    /// The firmware version.
    pub version: String,
    pub uptime_s: u64,
    pub workers: Vec<WorkerStatus>,
    /// Listener addresses reported by the workers, `worker.listener` → address.
    pub listeners: BTreeMap<String, String>,
    /// Whether the hub is connected to the internal bus right now.
    pub bus_connected: bool,
}

/// The appliance's version, uptime, workers and listeners.
#[utoipa::path(
    get,
    path = "/system",
    tag = "system",
    extensions(("x-watchpost-role" = json!("viewer"))),
    responses(
        (status = 200, description = "The appliance", body = SystemView),
        (status = 503, description = "The supervisor did not answer (`SUPERVISOR_UNAVAILABLE`)", body = ErrorBody),
    ),
)]
async fn system(State(state): State<HubState>) -> Result<Json<SystemView>, ApiError> {
    let s = state.snapshot().await?;
    Ok(Json(SystemView {
        version: state.version.to_string(),
        uptime_s: s.uptime_ms / 1000,
        workers: s.workers,
        listeners: s.listeners,
        bus_connected: state.bus.is_connected(),
    }))
}
