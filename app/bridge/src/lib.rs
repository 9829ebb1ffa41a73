//! The `bridge` worker: YoLink sensors in, normalised sensor states and events on the bus.
//!
//! **Role.** Connects to the YoLink cloud (token from UAID + secret, HTTP API, MQTT broker
//! with the token as user name) or to a YoLink Local Hub (same API and report format on the
//! LAN), and turns every report into the appliance's sensor model (`watchpost-yolink`). For
//! each sensor it publishes its state, retained, on `<prefix>/sensors/<id>/state` (the
//! dashboard and the hub's API read it), and every change that matters to alarms (a condition
//! raised or cleared, a state change, the door's "still open" reminder) as a numbered event on
//! `<prefix>/sensors/events`, which the hub's alarm service consumes.
//!
//! **Design.** A session task ([`yolink`]) owns the YoLink connection and sends what it learns
//! to the main loop, which owns the sensors and the [`journal`] of events. Events are
//! numbered per bridge run and kept in memory until the hub acknowledges them
//! (`<prefix>/alarms/intake/ack`); the hub asks for missing ones
//! (`<prefix>/alarms/intake/resend`), and unacknowledged events are offered again when the hub
//! comes back online and every `resend_interval_ms`. So a hub restart loses nothing. After a
//! bridge restart the session asks every sensor for its state (`getState`) and publishes it as
//! a `sync` event; the hub compares with what it had alarmed. A sensor silent for longer than
//! its keep-alive class (or `offline_after_s`) goes offline, which is itself an event.
//!
//! **Failure.** YoLink failures (HTTP, token, MQTT) are retried by the session with back-off
//! and connection spacing; reports that do not parse are counted and logged (rate-limited).
//! The journal is bounded: when the hub has been away so long that it fills, the oldest events
//! are dropped, counted, and the hub records the gap.
//!
//! **Shutdown.** On the shutdown token the session disconnects from YoLink, the main loop
//! stops, and the bus client says `offline`.

#![forbid(unsafe_code)]

pub mod check;
pub mod homeassistant;
pub mod journal;
pub mod upstream;
pub mod yolink;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use watchpost_bus::{Bus, Message, Retain};
use watchpost_config::Config;
use watchpost_contract::alarm::{
    self as contract, INTAKE_ACK, INTAKE_RESEND, IntakeAck, IntakeResend, SensorEvent, SensorView,
};
use watchpost_runtime::logging::LogLimiter;
use watchpost_runtime::{ExitCode, WorkerCtx};
use watchpost_yolink::{DeviceClass, Sensor, SensorKind, Update, parse_report, read};

use journal::Journal;
use yolink::SourceEvent;

/// Why the bridge stopped.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("subscribing to {filter}: {source}")]
    Subscribe {
        filter: String,
        source: watchpost_bus::BusError,
    },
    #[error(transparent)]
    Upstream(#[from] upstream::UpstreamError),
}

impl BridgeError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            BridgeError::Upstream(e) => e.exit_code(),
            BridgeError::Subscribe { .. } => ExitCode::Failure,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A topic level from a device id (`/`, `+`, `#` become `_`).
pub fn topic_level(id: &str) -> String {
    id.replace(['/', '+', '#'], "_")
}

/// The retained state of `sensor` (`sensors/<id>/state`).
fn state_view(sensor: &Sensor) -> SensorView {
    SensorView {
        sensor: sensor.clone(),
        alarm: is_alarm(sensor),
        changed_at: sensor.state_changed_ms,
    }
}

/// Whether any alarm condition (not a trouble) is active: the `alarm` field of the retained
/// state, which turns the dashboard red.
fn is_alarm(s: &Sensor) -> bool {
    use watchpost_yolink::Condition as C;
    s.conditions.iter().any(|c| {
        !matches!(
            c,
            C::LowBattery | C::Fault | C::Offline | C::HighHumidity | C::LowHumidity
        )
    })
}

struct Entry {
    sensor: Sensor,
    /// A reading arrived (so its conditions are known, and events may be published).
    known: bool,
}

struct Worker {
    bus: Bus,
    config: Config,
    sensors: BTreeMap<String, Entry>,
    journal: Journal,
    started_ms: i64,
    metrics: Metrics,
    bad_reports_logged_ms: i64,
    /// Acknowledgements and resend requests that do not decode (logged rate-limited).
    bad_messages: LogLimiter,
    /// Home Assistant discovery's view of the sensors, when it runs.
    ha: Option<tokio::sync::watch::Sender<homeassistant::SensorSet>>,
    /// The YoLink device list has been read (so a sensor missing from it is gone).
    devices_known: bool,
}

struct Metrics {
    reports: watchpost_runtime::metrics::Counter,
    bad_reports: watchpost_runtime::metrics::Counter,
    events: watchpost_runtime::metrics::Counter,
    dropped: watchpost_runtime::metrics::Counter,
    unacked: watchpost_runtime::metrics::Gauge,
    sensors: watchpost_runtime::metrics::Gauge,
    connected: watchpost_runtime::metrics::Gauge,
}

impl Metrics {
    fn new(r: &watchpost_runtime::Registry) -> Self {
        Self {
            reports: r.counter(
                "watchpost_bridge_reports_total",
                "YoLink reports received",
                &[],
            ),
            bad_reports: r.counter(
                "watchpost_bridge_report_errors_total",
                "YoLink reports that could not be parsed",
                &[],
            ),
            events: r.counter(
                "watchpost_bridge_sensor_events_total",
                "Sensor events published for the alarm service",
                &[],
            ),
            dropped: r.counter(
                "watchpost_bridge_sensor_events_dropped_total",
                "Sensor events dropped from a full journal before the hub acknowledged them",
                &[],
            ),
            unacked: r.gauge(
                "watchpost_bridge_sensor_events_unacked",
                "Sensor events waiting for the hub's acknowledgement",
                &[],
            ),
            sensors: r.gauge(
                "watchpost_bridge_sensors",
                "Sensors known to the bridge",
                &[],
            ),
            connected: r.gauge(
                "watchpost_bridge_yolink_connected",
                "1 while the YoLink report subscription is up",
                &[],
            ),
        }
    }
}

/// Runs the worker until shutdown.
pub async fn run(config: Config, ctx: Arc<WorkerCtx>) -> Result<(), BridgeError> {
    let shutdown = ctx.shutdown().clone();
    let bus = Bus::connect(&config, "bridge", shutdown.clone());
    let subscribe = |filter: String| {
        let bus = bus.clone();
        async move {
            bus.subscribe(&filter)
                .await
                .map_err(|source| BridgeError::Subscribe { filter, source })
        }
    };
    let mut acks = subscribe(bus.topic(&INTAKE_ACK)).await?;
    let mut resends = subscribe(bus.topic(&INTAKE_RESEND)).await?;
    let mut hub_status = subscribe(bus.topic(&["system", "hub", "status"])).await?;
    let upstreams = upstream::Upstreams::start(&config, &bus, &ctx).await?;
    let (tx, mut source) = mpsc::channel::<SourceEvent>(4096);
    let session = config.bridge.yolink.clone().map(|y| {
        tokio::spawn(yolink::run(
            y,
            config.bridge.clone(),
            tx.clone(),
            shutdown.clone(),
        ))
    });
    drop(tx);
    let started_ms = now_ms();
    let config_for_ha = config.clone();
    let mut w = Worker {
        bus: bus.clone(),
        journal: Journal::new(
            u64::try_from(started_ms).unwrap_or(0),
            config.bridge.event_buffer.max(1) as usize,
        ),
        metrics: Metrics::new(ctx.metrics()),
        config,
        sensors: BTreeMap::new(),
        started_ms,
        bad_reports_logged_ms: 0,
        bad_messages: LogLimiter::new(3, Duration::from_secs(60)),
        ha: homeassistant::start(&bus, &config_for_ha, ctx.metrics(), shutdown.clone()),
        devices_known: false,
    };
    ctx.ready(Vec::<(&str, std::net::SocketAddr)>::new());
    ctx.status(match &w.config.bridge.yolink {
        Some(_) => "connecting to YoLink",
        None => "no YoLink source configured",
    });
    let mut heartbeat = tokio::time::interval(ctx.heartbeat_interval());
    let mut resend_tick = tokio::time::interval(Duration::from_millis(
        w.config.bridge.resend_interval_ms.max(100),
    ));
    let mut offline_tick = tokio::time::interval(Duration::from_secs(1));
    let mut source_open = session.is_some();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = heartbeat.tick() => ctx.heartbeat(),
            ev = source.recv(), if source_open => match ev {
                Some(ev) => {
                    w.on_source(ev, &ctx).await;
                    w.sync_ha();
                }
                None => source_open = false,
            },
            Some(m) = acks.recv() => {
                if let Some(ack) = w.decode::<IntakeAck>(&m) {
                    w.journal.ack(ack.epoch, ack.through);
                    w.metrics.unacked.set(w.journal.len() as f64);
                }
            }
            Some(m) = resends.recv() => {
                if let Some(r) = w.decode::<IntakeResend>(&m) {
                    let events = w.journal.resend_from(r.epoch, r.from, now_ms());
                    w.publish_events(events).await;
                }
            }
            Some(m) = hub_status.recv() => {
                if m.payload.as_ref() == b"online" {
                    let events = w.journal.resend_from(0, 0, now_ms());
                    w.publish_events(events).await;
                }
            }
            _ = resend_tick.tick() => {
                let interval = i64::try_from(w.config.bridge.resend_interval_ms).unwrap_or(i64::MAX);
                let events = w.journal.due(now_ms(), interval);
                w.publish_events(events).await;
            }
            _ = offline_tick.tick() => {
                w.check_offline().await;
                w.sync_ha();
            }
        }
    }
    if let Some(s) = session {
        let _ = tokio::time::timeout(Duration::from_secs(2), s).await;
    }
    upstreams.stop(Duration::from_secs(2)).await;
    Ok(())
}

impl Worker {
    /// A message of the hub's alarm service, or `None` (logged, rate-limited) if it does not
    /// decode.
    fn decode<T: serde::de::DeserializeOwned>(&self, m: &Message) -> Option<T> {
        match m.json::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                if let Some(suppressed) = self.bad_messages.check(&m.topic) {
                    tracing::warn!(error = %e, suppressed, "alarm intake message ignored");
                }
                None
            }
        }
    }

    /// Gives Home Assistant discovery the current sensor list (sent only when it changed).
    fn sync_ha(&self) {
        let Some(tx) = &self.ha else {
            return;
        };
        let set = homeassistant::SensorSet {
            known: self.devices_known || self.config.bridge.yolink.is_none(),
            sensors: self
                .sensors
                .iter()
                .map(|(id, e)| {
                    (
                        id.clone(),
                        homeassistant::catalog::SensorInfo::from(&e.sensor),
                    )
                })
                .collect(),
        };
        tx.send_if_modified(|cur| {
            if *cur == set {
                false
            } else {
                *cur = set;
                true
            }
        });
    }

    fn entry(&mut self, id: &str, device_type: &str) -> &mut Entry {
        self.sensors.entry(id.to_string()).or_insert_with(|| Entry {
            sensor: Sensor::new(id, id, device_type, None),
            known: false,
        })
    }

    async fn on_source(&mut self, ev: SourceEvent, ctx: &WorkerCtx) {
        match ev {
            SourceEvent::Connected(up) => {
                self.metrics.connected.set(if up { 1.0 } else { 0.0 });
                ctx.status(if up {
                    "YoLink reports subscribed"
                } else {
                    "YoLink disconnected; reconnecting"
                });
            }
            SourceEvent::Devices(devices) => {
                self.devices_known = true;
                for d in devices {
                    let e = self.entry(&d.device_id, &d.device_type);
                    let changed = e.sensor.name != d.name || e.sensor.model != d.model;
                    if !d.name.is_empty() {
                        e.sensor.name = d.name.clone();
                    }
                    e.sensor.model = d.model.clone();
                    e.sensor.device_type = d.device_type.clone();
                    e.sensor.kind = SensorKind::from_type(&d.device_type);
                    if changed {
                        let id = d.device_id.clone();
                        self.publish_state(&id).await;
                    }
                }
                self.metrics.sensors.set(self.sensors.len() as f64);
            }
            SourceEvent::State {
                device_id,
                device_type,
                data,
            } => {
                let kind = SensorKind::from_type(&device_type);
                let reading = read(kind, &data);
                let level = self.config.bridge.low_battery_level;
                let now = now_ms();
                let e = self.entry(&device_id, &device_type);
                let update = e.sensor.apply(&reading, now, level);
                e.known = true;
                // A state poll re-publishes what is known: always an event (marked sync).
                self.publish_change(&device_id, &update, true, true).await;
            }
            SourceEvent::Report { topic, payload } => {
                self.metrics.reports.inc();
                let report = match parse_report(&topic, &payload) {
                    Ok(r) => r,
                    Err(e) => {
                        self.metrics.bad_reports.inc();
                        let now = now_ms();
                        if now - self.bad_reports_logged_ms > 10_000 {
                            self.bad_reports_logged_ms = now;
                            tracing::warn!(error = %e, "YoLink report ignored (further ones for 10 s only counted)");
                        }
                        return;
                    }
                };
                let now = now_ms();
                let level = self.config.bridge.low_battery_level;
                let e = self.entry(&report.device_id, &report.device_type);
                let update = if report.event.carries_state() {
                    let reading = read(e.sensor.kind, &report.data);
                    e.known = true;
                    e.sensor.apply(&reading, now, level)
                } else {
                    e.sensor.seen(now)
                };
                self.publish_change(&report.device_id, &update, false, false)
                    .await;
            }
        }
    }

    /// Publishes the state when anything changed, and an event when alarms care.
    async fn publish_change(&mut self, id: &str, update: &Update, sync: bool, force_event: bool) {
        let Some(e) = self.sensors.get(id) else {
            return;
        };
        // The event first: it is what alarms wait for (and the bus connection does not set
        // TCP_NODELAY, so a second small packet can wait for the first one's ACK).
        if e.known && (update.is_significant() || force_event) {
            let ev = self
                .journal
                .push(&e.sensor, update.reminder, sync, now_ms());
            self.metrics.events.inc();
            self.metrics.dropped.add(
                self.journal
                    .dropped
                    .saturating_sub(self.metrics.dropped.get()),
            );
            self.metrics.unacked.set(self.journal.len() as f64);
            self.publish_events(vec![ev]).await;
        }
        if update.changed || force_event {
            self.publish_state(id).await;
        }
    }

    async fn publish_state(&self, id: &str) {
        let Some(e) = self.sensors.get(id) else {
            return;
        };
        let view = state_view(&e.sensor);
        let levels = contract::sensor_state(&topic_level(id));
        let levels: Vec<&str> = levels.iter().map(String::as_str).collect();
        let topic = self.bus.topic(&levels);
        if let Err(err) = self.bus.publish_json(&topic, &view, Retain::Yes).await {
            tracing::warn!(error = %err, topic, "cannot publish sensor state");
        }
    }

    async fn publish_events(&self, events: Vec<SensorEvent>) {
        let topic = self.bus.topic(&contract::EVENTS);
        for ev in events {
            if let Err(err) = self.bus.publish_json(&topic, &ev, Retain::No).await {
                tracing::warn!(error = %err, "cannot publish a sensor event; it stays in the journal");
                return;
            }
        }
    }

    async fn check_offline(&mut self) {
        let now = now_ms();
        let fixed = self.config.bridge.offline_after_s;
        let ids: Vec<String> = self.sensors.keys().cloned().collect();
        for id in ids {
            let Some(e) = self.sensors.get_mut(&id) else {
                continue;
            };
            let silence = if fixed > 0 {
                i64::try_from(fixed.saturating_mul(1000)).unwrap_or(i64::MAX)
            } else {
                DeviceClass::from_type(&e.sensor.device_type).silence_ms()
            };
            let update = e.sensor.check_online(now, silence, self.started_ms);
            if update.changed {
                // Going offline is known even for a sensor never heard from.
                e.known = true;
                self.publish_change(&id, &update, false, false).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use watchpost_dashboard::state::DashboardState;
    use watchpost_yolink::{Condition, SensorState};

    use super::*;

    #[test]
    fn the_dashboard_reads_the_retained_state() {
        let mut door = Sensor::new("door1", "Front door", "DoorSensor", None);
        door.state = SensorState::Open;
        door.conditions.insert(Condition::Intrusion);
        door.battery = Some(3);
        door.state_changed_ms = Some(1_700_000_000_000);
        let mut th = Sensor::new("th1", "Cellar", "THSensor", None);
        th.state = SensorState::Normal;
        th.conditions.insert(Condition::LowBattery);
        th.online = false;
        let mut dash = DashboardState::default();
        for s in [&door, &th] {
            let payload = serde_json::to_vec(&state_view(s)).unwrap();
            let levels = contract::sensor_state(&s.id);
            let levels: Vec<&str> = levels.iter().map(String::as_str).collect();
            assert!(dash.apply(&levels, &payload).unwrap());
        }
        let tile = &dash.sensors["door1"];
        assert_eq!(tile.name, "Front door");
        assert_eq!(tile.state, "open");
        assert!(tile.alarm);
        assert_eq!(tile.battery_pct, Some(75));
        assert_eq!(tile.changed_at_unix, Some(1_700_000_000));
        assert!(tile.online);
        // A trouble does not turn the dashboard red.
        let tile = &dash.sensors["th1"];
        assert_eq!(tile.state, "normal");
        assert!(!tile.alarm);
        assert!(!tile.online);
    }
}
