//! Background services that run inside the hub process. Each area starts its own here with
//! one line in [`start`]; a service gets the shared state and stops on the shutdown token.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use watchpost_runtime::proto::WorkerState;
use watchpost_store::{JsonBody, NewEvent, RetentionPolicy, Severity};

use crate::state::HubState;

/// A running service: its name (for the shutdown log) and its task.
pub type Service = (&'static str, tokio::task::JoinHandle<()>);

/// Starts every service. Each stops on the shutdown token by itself; `run` waits for them
/// within the grace period ([`drain`]).
pub fn start(state: &HubState) -> Vec<Service> {
    vec![
        (
            "worker-events",
            tokio::spawn(record_worker_events(state.clone())),
        ),
        (
            "event-retention",
            tokio::spawn(enforce_retention(state.clone())),
        ),
        (
            "alarm",
            tokio::spawn(watchpost_alarm::serve(
                state.alarm.clone(),
                state.config.clone(),
                state.bus.clone(),
                state.store.clone(),
                state.ctx.clone(),
            )),
        ),
        ("neasmart-cache", crate::api::neasmart::start_cache(state)),
        (
            "neasmart-compat",
            crate::api::neasmart::start_compat_listener(state),
        ),
        (
            "camera-status",
            crate::api::cameras::start_status_cache(state),
        ),
        ("system-bus", crate::system_bus::start(state)),
        ("monitor", crate::api::monitor::start(state)),
        ("zone-history", crate::pages::history::start(state)),
        ("update", crate::update::start(state)),
    ]
}

/// Waits for every service to finish until `deadline` (the shutdown token is cancelled
/// already). A service still running then is aborted, and says so in the log: the alarm
/// service finishes its in-flight deliveries or leaves them queued well before that.
pub async fn drain(services: Vec<Service>, deadline: tokio::time::Instant) {
    for (name, mut task) in services {
        match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(Ok(())) => tracing::info!(service = name, "hub service finished"),
            Ok(Err(e)) => {
                tracing::error!(service = name, error = %e, "hub service ended abnormally")
            }
            Err(_) => {
                task.abort();
                tracing::warn!(
                    service = name,
                    "hub service did not finish within the shutdown grace period; aborted"
                );
            }
        }
    }
}

/// Turns changes in the supervisor's view (restarts, failures) into events in the store, so
/// installers can see in the event log when and why a worker was restarted.
async fn record_worker_events(state: HubState) {
    let mut last: HashMap<String, (WorkerState, u32)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let shutdown = state.ctx.shutdown().clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(snapshot) = state.snapshot().await else {
            continue;
        };
        let mut events = Vec::new();
        for w in &snapshot.workers {
            let prev = last.insert(w.name.clone(), (w.state, w.restarts));
            let Some((prev_state, prev_restarts)) = prev else {
                continue;
            };
            let body = JsonBody::from_value(&json!({
                "state": w.state, "restarts": w.restarts, "pid": w.pid, "last_error": w.last_error,
            }));
            let Ok(body) = body else { continue };
            let now = watchpost_store::now_us();
            if w.restarts > prev_restarts {
                events.push(
                    NewEvent::new(now, "worker.restarted", &w.name, Severity::Warning)
                        .with_body(body),
                );
            } else if w.state != prev_state && w.state == WorkerState::Failed {
                events.push(
                    NewEvent::new(now, "worker.failed", &w.name, Severity::Critical)
                        .with_body(body),
                );
            }
        }
        if !events.is_empty() {
            let log = state.store.events();
            let r = tokio::task::spawn_blocking(move || log.append_batch(events)).await;
            if let Ok(Err(e)) = r {
                tracing::warn!(error = %e, "cannot record worker events");
            }
        }
    }
}

/// Applies the event retention policy every ten minutes (and once at start).
async fn enforce_retention(state: HubState) {
    let hub = &state.config.hub;
    let policy = RetentionPolicy {
        max_age: Some(Duration::from_secs(
            u64::from(hub.events_max_age_days) * 86_400,
        )),
        max_bytes: Some(hub.events_max_bytes),
        ..Default::default()
    };
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    let shutdown = state.ctx.shutdown().clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let log = state.store.events();
        let p = policy.clone();
        match tokio::task::spawn_blocking(move || {
            log.enforce_retention(&p, watchpost_store::now_us())
        })
        .await
        {
            Ok(Ok(report)) if report.deleted > 0 => {
                tracing::info!(
                    deleted = report.deleted,
                    bytes = report.deleted_bytes,
                    "event retention applied"
                );
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "event retention failed"),
            _ => {}
        }
    }
}
