//! `GET /live`: the pages' live values as Server-Sent Events, so no page polls.
//!
//! One task a connection watches the hub's caches and sends only what changed: `sensor` (the
//! alarm service's sensor cache, looked at every 250 ms, so a door opened shows within a
//! fraction of a second after the bridge publishes it), `zone` (the fieldbus cache, every
//! second), `health` (the supervisor's view, every 5 s) and `update` (the update status, as it
//! changes). On connect it sends every sensor and zone and the update status once, so nothing
//! that changed between the page's render and the connection is missed. The task ends when the browser goes away (the channel closes) or on shutdown, which
//! closes the stream; browsers reconnect by themselves.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::pages::alarms::{self, SensorRow};
use crate::pages::{fmt, zones};
use crate::state::HubState;

const SENSOR_EVERY: Duration = Duration::from_millis(250);
const ZONE_EVERY: Duration = Duration::from_secs(1);
const HEALTH_EVERY: Duration = Duration::from_secs(5);

/// A zone's values as the pages print them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZoneLive {
    pub id: String,
    pub temperature: String,
    pub setpoint: String,
    pub humidity: u16,
    pub state: String,
}

#[derive(Debug, Serialize)]
struct WorkerLive<'a> {
    name: &'a str,
    state: &'a str,
    restarts: u32,
    status: &'a str,
}

#[derive(Debug, Serialize)]
struct HealthLive<'a> {
    workers: Vec<WorkerLive<'a>>,
    led: Option<&'a str>,
    uptime: String,
}

/// The entries of `now` that are new or differ from `before`.
pub fn changed<'a, T: PartialEq>(
    before: &BTreeMap<String, T>,
    now: &'a BTreeMap<String, T>,
) -> Vec<&'a T> {
    now.iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(_, v)| v)
        .collect()
}

fn zone_map(state: &HubState) -> BTreeMap<String, ZoneLive> {
    zones::visible(state.neasmart.active_zones())
        .iter()
        .map(|z| {
            let id = zones::zone_label(z);
            (
                id.clone(),
                ZoneLive {
                    id,
                    temperature: fmt::opt(z.temperature, ""),
                    setpoint: fmt::opt(z.setpoint, ""),
                    humidity: z.relative_humidity,
                    state: fmt::label(&z.state_name),
                },
            )
        })
        .collect()
}

fn sensor_map(state: &HubState) -> BTreeMap<String, SensorRow> {
    alarms::by_id(alarms::sensor_rows(state).unwrap_or_default())
}

fn event<T: Serialize>(name: &str, data: &T) -> Option<Event> {
    Event::default().event(name).json_data(data).ok()
}

async fn health(state: &HubState) -> Option<Event> {
    let s = state.snapshot().await.ok()?;
    let body = HealthLive {
        workers: s
            .workers
            .iter()
            .map(|w| WorkerLive {
                name: &w.name,
                state: w.state.as_str(),
                restarts: w.restarts,
                status: w
                    .status_text
                    .as_deref()
                    .or(w.last_error.as_deref())
                    .unwrap_or("–"),
            })
            .collect(),
        led: s.board.as_ref().and_then(|b| b.led.as_deref()),
        uptime: fmt::duration_s(s.uptime_ms / 1000),
    };
    event("health", &body)
}

/// Watches the caches for one connection until it closes or the hub shuts down.
async fn watch(state: HubState, tx: mpsc::Sender<Event>) {
    let shutdown = state.ctx.shutdown().clone();
    let mut sensors = BTreeMap::new();
    let mut zones = BTreeMap::new();
    let mut sensor_tick = tokio::time::interval(SENSOR_EVERY);
    let mut zone_tick = tokio::time::interval(ZONE_EVERY);
    let mut health_tick = tokio::time::interval(HEALTH_EVERY);
    let mut update = state.update.subscribe();
    update.mark_changed();
    for t in [&mut sensor_tick, &mut zone_tick, &mut health_tick] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        let events: Vec<Event> = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tx.closed() => return,
            _ = sensor_tick.tick() => {
                let now = sensor_map(&state);
                let out = changed(&sensors, &now).into_iter().filter_map(|s| event("sensor", s)).collect();
                sensors = now;
                out
            }
            _ = zone_tick.tick() => {
                let now = zone_map(&state);
                let out = changed(&zones, &now).into_iter().filter_map(|z| event("zone", z)).collect();
                zones = now;
                out
            }
            _ = health_tick.tick() => health(&state).await.into_iter().collect(),
            r = update.changed() => {
                if r.is_err() {
                    return;
                }
                let now = crate::pages::update::UpdateLive::of(&update.borrow_and_update());
                event("update", &now).into_iter().collect()
            }
        };
        for e in events {
            if tx.send(e).await.is_err() {
                return;
            }
        }
    }
}

/// `GET /live`.
pub async fn get(State(state): State<HubState>) -> Response {
    let (tx, rx) = mpsc::channel::<Event>(64);
    tokio::spawn(watch(state, tx));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_new_and_changed_entries_are_sent() {
        let row = |state: &str| alarms::tests::row("d1", state);
        let before: BTreeMap<String, SensorRow> = BTreeMap::new();
        let now = alarms::by_id(vec![row("closed")]);
        assert_eq!(changed(&before, &now).len(), 1);
        assert!(changed(&now, &now.clone()).is_empty());
        let opened = alarms::by_id(vec![row("open")]);
        let c = changed(&now, &opened);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].state, "open");
    }
}
