//! `GET /health` and `GET /metrics`: answered from the supervisor's snapshot, unauthenticated.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use watchpost_runtime::proto::{Snapshot, WorkerState};

use crate::state::HubState;

/// Overall status of the appliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overall {
    Healthy,
    Degraded,
    Unhealthy,
}

/// One worker in `/health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkerHealth {
    name: String,
    state: WorkerState,
    essential: bool,
    pid: Option<u32>,
    restarts: u32,
    heartbeat_age_ms: Option<u64>,
    last_error: Option<String>,
    status: Option<String>,
    /// What the running worker cannot use and keeps retrying (a missing serial adapter, a
    /// port taken): the appliance is `degraded` while any is listed.
    faults: Vec<watchpost_runtime::proto::Fault>,
}

/// `GET /health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthBody {
    status: Overall,
    #[schema(value_type = String)]
    version: &'static str,
    uptime_s: u64,
    supervisor_pid: Option<u32>,
    workers: Vec<WorkerHealth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    board: Option<watchpost_runtime::proto::BoardView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Unhealthy if an essential worker is not running with a fresh heartbeat; degraded if any
/// other worker is not, or a worker reports a fault; healthy otherwise.
pub fn overall(snapshot: &Snapshot, heartbeat_timeout_ms: u64) -> Overall {
    let ok = |w: &watchpost_runtime::proto::WorkerStatus| {
        w.state == WorkerState::Running
            && w.heartbeat_age_ms.is_some_and(|a| a < heartbeat_timeout_ms)
    };
    if snapshot.workers.iter().any(|w| w.essential && !ok(w)) {
        Overall::Unhealthy
    } else if snapshot
        .workers
        .iter()
        .any(|w| !ok(w) || !w.faults.is_empty())
    {
        Overall::Degraded
    } else {
        Overall::Healthy
    }
}

/// Whether the appliance is healthy: every worker's state as the supervisor sees it. No
/// authentication; `503` when an essential worker is not running.
#[utoipa::path(
    get,
    path = "/health",
    tag = "system",
    security(()),
    responses(
        (status = 200, description = "Healthy or degraded", body = HealthBody),
        (status = 503, description = "Unhealthy, or the supervisor did not answer", body = HealthBody),
    ),
)]
pub async fn health(State(state): State<HubState>) -> Response {
    match state.snapshot().await {
        Ok(s) => {
            let status = overall(&s, state.config.supervisor.heartbeat_timeout_ms);
            let body = HealthBody {
                status,
                version: state.version,
                uptime_s: s.uptime_ms / 1000,
                supervisor_pid: Some(s.supervisor_pid),
                workers: s
                    .workers
                    .into_iter()
                    .map(|w| WorkerHealth {
                        name: w.name,
                        state: w.state,
                        essential: w.essential,
                        pid: w.pid,
                        restarts: w.restarts,
                        heartbeat_age_ms: w.heartbeat_age_ms,
                        last_error: w.last_error,
                        status: w.status_text,
                        faults: w.faults,
                    })
                    .collect(),
                board: s.board,
                error: None,
            };
            let code = if status == Overall::Unhealthy {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            (code, axum::Json(body)).into_response()
        }
        Err(e) => {
            let body = HealthBody {
                status: Overall::Unhealthy,
                version: state.version,
                uptime_s: 0,
                supervisor_pid: None,
                workers: vec![],
                board: None,
                error: Some(e.message),
            };
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}

/// Prometheus metrics of the supervisor and every worker. No authentication.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "system",
    security(()),
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"),
        (status = 503, description = "The supervisor did not answer", body = crate::error::ErrorBody),
    ),
)]
pub async fn metrics(State(state): State<HubState>) -> Response {
    let snapshot = match state.snapshot().await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let mut text = snapshot.supervisor_metrics;
    for (name, worker_text) in &snapshot.worker_metrics {
        if name == state.ctx.name() {
            continue;
        }
        text.push_str(worker_text);
    }
    // The hub's own metrics, live rather than from its last push.
    text.push_str(&state.ctx.metrics().render());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
