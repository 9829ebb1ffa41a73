//! `/api/v1/monitor`: the targets of the `monitor` worker with their state and last figures,
//! and the hub's recording of the monitor's rule events.
//!
//! - `GET /monitor?page&limit` — every configured target (`system` first), in the order of
//!   `[monitor]`, as the worker last published it (`watchpost_contract::monitor::TargetStatus`);
//! - `GET /monitor/{id}` — one target, or 404 `MONITOR_TARGET_NOT_FOUND`.
//!
//! The list comes from the configuration; each target's status from the worker's retained
//! `<prefix>/monitor/target/<id>`, which a hub service ([`start`]) keeps in [`MonitorClient`]
//! (`HubState::monitor`). A target not heard from yet, or whose worker is gone, is `unknown`
//! with the reason; its last figures stay. The same service records each rule event of
//! `<prefix>/monitor/event` in the event store (`monitor.raised` with the rule's severity,
//! `monitor.cleared` as info; the source is the target id, the body the event). An event
//! published while the hub is down is not recorded; the target's retained status still lists
//! the rules raised.

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use watchpost_config::monitor::MonitorConfig;
use watchpost_contract::monitor::{
    self as contract, MonitorEvent, Severity as RuleSeverity, TargetKind, TargetState,
    TargetStatus, Transition,
};
use watchpost_store::{JsonBody, NewEvent, Severity};

use crate::api::extract::{Path, Query};
use crate::api::list::{Page, PageParams, paginate};
use crate::error::{ApiError, ErrorBody};
use crate::state::HubState;

pub fn router() -> OpenApiRouter<HubState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one))
}

/// What the hub has heard from the monitor worker.
#[derive(Debug, Default)]
pub struct MonitorClient {
    targets: Mutex<BTreeMap<String, TargetStatus>>,
    worker_online: Mutex<Option<bool>>,
}

impl MonitorClient {
    /// Takes in a message of the monitor's topics (`topic` with the bus prefix).
    pub fn apply(&self, prefix: &str, topic: &str, payload: &[u8]) {
        let Some(rest) = topic.strip_prefix(prefix).and_then(|t| t.strip_prefix('/')) else {
            return;
        };
        if rest == contract::worker_status().join("/") {
            let online = match payload {
                b"online" => Some(true),
                b"offline" => Some(false),
                _ => None,
            };
            *self.worker_online.lock().unwrap_or_else(|p| p.into_inner()) = online;
            return;
        }
        let Some(id) = rest.strip_prefix("monitor/target/") else {
            return;
        };
        match serde_json::from_slice::<TargetStatus>(payload) {
            Ok(s) if s.id == id => {
                self.targets
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.to_string(), s);
            }
            Ok(_) | Err(_) => {
                tracing::debug!(topic, "monitor target status not understood; ignored")
            }
        }
    }

    /// Every configured target with what is known of it.
    pub fn views(&self, config: &MonitorConfig) -> Vec<TargetStatus> {
        let heard = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        let online = *self.worker_online.lock().unwrap_or_else(|p| p.into_inner());
        config
            .targets()
            .into_iter()
            .map(|t| {
                let mut s = heard.get(t.id).cloned().unwrap_or_else(|| TargetStatus {
                    id: t.id.to_string(),
                    name: t.name.unwrap_or(t.id).to_string(),
                    kind: match t.kind {
                        "system" => TargetKind::System,
                        "ping" => TargetKind::Ping,
                        "tcp" => TargetKind::Tcp,
                        "dns" => TargetKind::Dns,
                        _ => TargetKind::Http,
                    },
                    state: TargetState::Unknown,
                    reason: Some("no status from the monitor worker yet".into()),
                    updated_ms: 0,
                    probes: 0,
                    failures: 0,
                    figures: Vec::new(),
                    fields: BTreeMap::new(),
                    alerts: Vec::new(),
                });
                if !config.enabled {
                    s.state = TargetState::Unknown;
                    s.reason = Some("the monitor worker is disabled in the configuration".into());
                } else if online == Some(false) {
                    s.state = TargetState::Unknown;
                    s.reason = Some("the monitor worker is not running".into());
                }
                s
            })
            .collect()
    }
}

/// The event-store entry of a rule event.
pub fn store_event(e: &MonitorEvent) -> NewEvent {
    let (kind, severity) = match e.transition {
        Transition::Raised => (
            "monitor.raised",
            match e.severity {
                RuleSeverity::Info => Severity::Info,
                RuleSeverity::Warning => Severity::Warning,
                RuleSeverity::Critical => Severity::Critical,
            },
        ),
        Transition::Cleared => ("monitor.cleared", Severity::Info),
    };
    let ev = NewEvent::new(watchpost_store::now_us(), kind, &e.target, severity);
    match JsonBody::from_value(e) {
        Ok(b) => ev.with_body(b),
        Err(_) => ev,
    }
}

/// Hub service: keeps [`MonitorClient`] filled and records rule events until shutdown.
pub fn start(state: &HubState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        if !state.config.monitor.enabled {
            return;
        }
        let bus = &state.bus;
        let targets = bus.subscribe(&bus.filter(&contract::TARGET_FILTER)).await;
        let worker = bus.subscribe(&bus.topic(&contract::worker_status())).await;
        let events = bus.subscribe(&bus.topic(&contract::EVENTS)).await;
        let (Ok(mut targets), Ok(mut worker), Ok(mut events)) = (targets, worker, events) else {
            tracing::warn!("monitor: cannot subscribe to the bus");
            return;
        };
        let prefix = bus.prefix().to_string();
        let shutdown = state.ctx.shutdown().clone();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                m = targets.recv() => match m {
                    Some(m) => state.monitor.apply(&prefix, &m.topic, &m.payload),
                    None => return,
                },
                m = worker.recv() => match m {
                    Some(m) => state.monitor.apply(&prefix, &m.topic, &m.payload),
                    None => return,
                },
                m = events.recv() => {
                    let Some(m) = m else { return };
                    let e = match m.json::<MonitorEvent>() {
                        Ok(e) => e,
                        Err(err) => {
                            tracing::debug!(error = %err, "monitor event not understood; ignored");
                            continue;
                        }
                    };
                    let log = state.store.events();
                    let entry = store_event(&e);
                    match tokio::task::spawn_blocking(move || log.append(entry)).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => tracing::warn!(error = %err, "cannot record a monitor event"),
                        Err(err) => tracing::warn!(error = %err, "monitor event writer failed"),
                    }
                }
            }
        }
    })
}

/// Every monitor target with its state and last figures, in the configuration's order.
#[utoipa::path(
    get,
    path = "/monitor",
    tag = "monitor",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(PageParams),
    responses(
        (status = 200, description = "One page of targets", body = Page<TargetStatus>),
        (status = 400, description = "`INVALID_PAGE`, `INVALID_LIMIT`, `INVALID_QUERY`", body = ErrorBody),
    ),
)]
async fn list(
    State(state): State<HubState>,
    Query(p): Query<PageParams>,
) -> Result<Json<Page<TargetStatus>>, ApiError> {
    let req = p.check()?;
    Ok(Json(paginate(
        state.monitor.views(&state.config.monitor),
        req,
    )))
}

/// One monitor target.
#[utoipa::path(
    get,
    path = "/monitor/{id}",
    tag = "monitor",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(("id" = String, Path, description = "The target's id (`system` for the appliance)")),
    responses(
        (status = 200, description = "The target", body = TargetStatus),
        (status = 404, description = "`MONITOR_TARGET_NOT_FOUND`", body = ErrorBody),
    ),
)]
async fn one(
    State(state): State<HubState>,
    Path(id): Path<String>,
) -> Result<Json<TargetStatus>, ApiError> {
    state
        .monitor
        .views(&state.config.monitor)
        .into_iter()
        .find(|t| t.id == id)
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(
                "MONITOR_TARGET_NOT_FOUND",
                format!("no monitor target `{id}`"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MonitorConfig {
        watchpost_config::toml::from_str(
            "enabled = true\n[[ping]]\nid = \"gw\"\nhost = \"10.0.0.1\"\n",
        )
        .unwrap()
    }

    #[test]
    fn configured_targets_merge_what_was_heard() {
        let c = MonitorClient::default();
        let v = c.views(&config());
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].state, TargetState::Unknown);
        let mut s = v[1].clone();
        s.state = TargetState::Up;
        s.reason = None;
        c.apply(
            "wp",
            "wp/monitor/target/gw",
            &serde_json::to_vec(&s).unwrap(),
        );
        // Another target's topic with this id is refused.
        c.apply(
            "wp",
            "wp/monitor/target/x",
            &serde_json::to_vec(&s).unwrap(),
        );
        assert_eq!(c.views(&config())[1].state, TargetState::Up);
        c.apply("wp", "wp/system/monitor/status", b"offline");
        let v = c.views(&config());
        assert_eq!(v[1].state, TargetState::Unknown);
        assert_eq!(
            v[1].reason.as_deref(),
            Some("the monitor worker is not running")
        );
    }

    #[test]
    fn events_map_to_store_kinds() {
        let e = MonitorEvent {
            rule: "r".into(),
            target: "gw".into(),
            metric: "loss_percent".into(),
            item: None,
            transition: Transition::Raised,
            value: 30.0,
            threshold: 20.0,
            clear_at: 5.0,
            severity: RuleSeverity::Critical,
            at_ms: 1,
        };
        let n = store_event(&e);
        assert_eq!(n.kind, "monitor.raised");
        assert_eq!(n.severity, Severity::Critical);
        assert_eq!(n.source, "gw");
    }
}
