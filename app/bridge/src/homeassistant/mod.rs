//! Home Assistant MQTT discovery (`[bridge.homeassistant]`, docs/bridge.md).
//!
//! **Role.** Tells Home Assistant about everything the appliance knows: heating zones and the
//! Neasmart system, YoLink sensors, relay channels, cameras and their thermal rules, and the
//! workers' health. One device for the appliance and one `via_device` child per Neasmart
//! base, sensor, camera and relay module. Commands from Home Assistant (setpoints, presets,
//! modes, relays) go through the same bus requests as the REST API ([`commands`]).
//!
//! **Design.** The [`catalog`] is filled from the bus's retained states and from the bridge's
//! own sensor list; it declares each entity once. Discovery payloads
//! (`<discovery_prefix>/<component>/<node>/<key>/config`) are published retained on the
//! appliance's bus whenever one changes; Home Assistant reaches them on its own broker
//! through an upstream, or directly. Their state topics are the bus's retained topics with
//! value templates, so nothing is copied. Availability is the bridge's status (its last will)
//! and the status of the worker that owns the entity.
//!
//! **Lifecycle.** The topics published are kept in `<data_dir>/homeassistant.json` with the
//! node id, so an entity that is gone after a restart (a sensor removed, a camera taken out
//! of the configuration) is removed from Home Assistant with an empty retained config, once
//! its area has settled (its worker online for `settle_s`, the YoLink device list read).
//! `online` on `<discovery_prefix>/status` (Home Assistant restarting) republishes everything.

pub mod catalog;
pub mod commands;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use watchpost_bus::{Bus, Message, Retain};
use watchpost_config::Config;
use watchpost_config::homeassistant::HomeAssistantConfig;
use watchpost_contract::capture::{self as capture_topics, Snapshot};
use watchpost_runtime::metrics::{Counter, Gauge, Registry};

use catalog::{Catalog, Naming, SensorInfo};

/// The sensors the bridge knows, and whether the YoLink device list has been read (until then
/// sensor entities are never removed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SensorSet {
    pub known: bool,
    pub sensors: BTreeMap<String, SensorInfo>,
}

/// What is kept across restarts.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    node_id: String,
    /// Discovery config topics published (and not yet removed).
    #[serde(default)]
    topics: BTreeSet<String>,
}

const STATE_FILE: &str = "homeassistant.json";

fn load(path: &Path) -> Option<Saved> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "Home Assistant state file unreadable; starting afresh");
            None
        }
    }
}

fn save(path: &Path, saved: &Saved) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(saved).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A random node id (12 hex digits) for a box whose configuration sets none.
fn random_node() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
}

struct Metrics {
    entities: Gauge,
    published: Counter,
    removed: Counter,
    commands_ok: Counter,
    commands_refused: Counter,
    republish: Counter,
}

impl Metrics {
    fn new(r: &Registry) -> Self {
        Self {
            entities: r.gauge(
                "watchpost_bridge_ha_entities",
                "Home Assistant entities declared by discovery",
                &[],
            ),
            published: r.counter(
                "watchpost_bridge_ha_discovery_published_total",
                "Home Assistant discovery configs published (new or changed)",
                &[],
            ),
            removed: r.counter(
                "watchpost_bridge_ha_discovery_removed_total",
                "Home Assistant entities removed (empty retained config)",
                &[],
            ),
            commands_ok: r.counter(
                "watchpost_bridge_ha_commands_total",
                "Commands from Home Assistant",
                &[("result", "ok")],
            ),
            commands_refused: r.counter(
                "watchpost_bridge_ha_commands_total",
                "Commands from Home Assistant",
                &[("result", "refused")],
            ),
            republish: r.counter(
                "watchpost_bridge_ha_republish_total",
                "Full republishes after Home Assistant announced itself online",
                &[],
            ),
        }
    }
}

/// Which area an entity key belongs to, for removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    Fieldbus,
    Sensors,
    Capture,
    /// Alarm receivers (the hub's alarm service).
    Alarms,
    /// The appliance's health figures (the monitor worker).
    Monitor,
    /// The appliance's own entities: only removed when discovery is turned off.
    Appliance,
}

fn area(key: &str) -> Area {
    const FIELDBUS: [&str; 6] = [
        "zone_",
        "neasmart_",
        "mixed_group_",
        "dehumidifier_",
        "pump_",
        "relay_",
    ];
    if FIELDBUS.iter().any(|p| key.starts_with(p)) {
        Area::Fieldbus
    } else if key.starts_with("sensor_") {
        Area::Sensors
    } else if key.starts_with("camera_") {
        Area::Capture
    } else if key.starts_with("receiver_") {
        Area::Alarms
    } else if key.starts_with("health_") {
        Area::Monitor
    } else {
        Area::Appliance
    }
}

struct Discovery {
    bus: Bus,
    naming: Naming,
    catalog: Catalog,
    sensors: SensorSet,
    /// Topic → payload published in this run.
    published: BTreeMap<String, String>,
    /// Topics published by an earlier run and not declared (yet) in this one.
    stale: BTreeSet<String>,
    state_path: PathBuf,
    saved_topics: BTreeSet<String>,
    started: Instant,
    settle: Duration,
    /// When each worker was last seen coming online.
    online_since: BTreeMap<String, Instant>,
    fieldbus_enabled: bool,
    capture_enabled: bool,
    monitor_enabled: bool,
    metrics: Metrics,
    dirty: bool,
}

impl Discovery {
    fn config_topic(&self, e: &catalog::Entity) -> String {
        format!(
            "{}/{}/{}/{}/config",
            self.naming.discovery_prefix, e.component, self.naming.node, e.key
        )
    }

    fn settled(&self, area: Area, now: Instant) -> bool {
        let waited = |worker: &str, enabled: bool| {
            if !enabled {
                return now.duration_since(self.started) >= self.settle;
            }
            self.online_since
                .get(worker)
                .is_some_and(|t| now.duration_since(*t.max(&self.started)) >= self.settle)
        };
        match area {
            Area::Fieldbus => waited("fieldbus", self.fieldbus_enabled),
            Area::Capture => waited("capture", self.capture_enabled),
            Area::Alarms => waited("hub", true),
            Area::Monitor => waited("monitor", self.monitor_enabled),
            Area::Sensors => self.sensors.known,
            Area::Appliance => false,
        }
    }

    /// Publishes what is new or changed, removes what went away (once its area settled), and
    /// saves the topic list when it changed.
    async fn reconcile(&mut self) {
        self.dirty = false;
        let mut catalog = self.catalog.clone();
        catalog.sensors = self.sensors.sensors.clone();
        let entities = catalog.entities(&self.naming);
        self.metrics.entities.set(entities.len() as f64);
        let mut desired: BTreeMap<String, String> = BTreeMap::new();
        for e in &entities {
            desired.insert(self.config_topic(e), e.config.to_string());
        }
        for (topic, payload) in &desired {
            if self.published.get(topic) == Some(payload) {
                continue;
            }
            match self
                .bus
                .publish_bytes(topic, payload.clone().into_bytes(), Retain::Yes)
                .await
            {
                Ok(()) => {
                    self.published.insert(topic.clone(), payload.clone());
                    self.stale.remove(topic);
                    self.metrics.published.inc();
                }
                Err(e) => {
                    tracing::warn!(error = %e, topic, "cannot publish a discovery config; retried");
                    self.dirty = true;
                }
            }
        }
        let now = Instant::now();
        let gone: Vec<String> = self
            .published
            .keys()
            .chain(self.stale.iter())
            .filter(|t| !desired.contains_key(*t))
            .filter(|t| {
                let key = t.rsplit('/').nth(1).unwrap_or("");
                self.settled(area(key), now)
            })
            .cloned()
            .collect();
        for topic in gone {
            match self
                .bus
                .publish_bytes(&topic, Vec::new(), Retain::Yes)
                .await
            {
                Ok(()) => {
                    tracing::info!(topic, "Home Assistant entity removed");
                    self.published.remove(&topic);
                    self.stale.remove(&topic);
                    self.metrics.removed.inc();
                }
                Err(e) => {
                    tracing::warn!(error = %e, topic, "cannot remove a discovery config; retried");
                    self.dirty = true;
                }
            }
        }
        let topics: BTreeSet<String> = self
            .published
            .keys()
            .chain(self.stale.iter())
            .cloned()
            .collect();
        if topics != self.saved_topics {
            let saved = Saved {
                node_id: self.naming.node.clone(),
                topics,
            };
            match save(&self.state_path, &saved) {
                Ok(()) => self.saved_topics = saved.topics,
                Err(e) => {
                    tracing::warn!(error = %e, path = %self.state_path.display(), "cannot save the Home Assistant topic list")
                }
            }
        }
        // Removals wait for areas to settle: look again later while any are held back.
        if !self.stale.is_empty() || self.published.keys().any(|t| !desired.contains_key(t)) {
            self.dirty = true;
        }
    }

    async fn command(&self, m: &Message, set_prefix: &str) {
        let Some(rest) = m.topic.strip_prefix(set_prefix) else {
            return;
        };
        let levels: Vec<&str> = rest.split('/').collect();
        let parsed = commands::parse(&levels, &m.payload);
        let result = match parsed {
            Ok(c) => {
                tracing::info!(topic = %m.topic, command = ?c, "command from Home Assistant");
                commands::execute(&self.bus, c).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => self.metrics.commands_ok.inc(),
            Err(e) => {
                self.metrics.commands_refused.inc();
                let payload = String::from_utf8_lossy(&m.payload);
                let shown: String = payload.chars().take(64).collect();
                tracing::warn!(topic = %m.topic, payload = %shown, error = %e, "command from Home Assistant refused");
                let report = serde_json::json!({
                    "topic": m.topic,
                    "payload": shown,
                    "code": e.code(),
                    "message": e.to_string(),
                    "at_ms": crate::now_ms(),
                });
                let topic = self.bus.topic(&["ha", &self.naming.node, "error"]);
                if let Err(err) = self.bus.publish_json(&topic, &report, Retain::Yes).await {
                    tracing::warn!(error = %err, "cannot publish a command error");
                }
            }
        }
    }
}

/// Starts discovery when `[bridge.homeassistant] enabled`; returns the sender the bridge's
/// main loop keeps its sensor list current through.
pub fn start(
    bus: &Bus,
    config: &Config,
    registry: &Registry,
    shutdown: CancellationToken,
) -> Option<watch::Sender<SensorSet>> {
    let ha = &config.bridge.homeassistant;
    if !ha.enabled {
        return None;
    }
    let state_path = config.system.data_dir.join(STATE_FILE);
    let saved = load(&state_path).unwrap_or_default();
    let node = ha
        .node_id
        .clone()
        .or_else(|| Some(saved.node_id.clone()).filter(|n| !n.is_empty()))
        .unwrap_or_else(random_node);
    let naming = naming(ha, config, bus, node);
    let (tx, rx) = watch::channel(SensorSet {
        known: config.bridge.yolink.is_none(),
        sensors: BTreeMap::new(),
    });
    let d = Discovery {
        bus: bus.clone(),
        catalog: Catalog::default(),
        sensors: rx.borrow().clone(),
        published: BTreeMap::new(),
        stale: saved.topics.clone(),
        saved_topics: saved.topics,
        state_path,
        started: Instant::now(),
        settle: Duration::from_secs(ha.settle_s),
        online_since: BTreeMap::new(),
        fieldbus_enabled: config.fieldbus.enabled,
        capture_enabled: config.capture.enabled,
        monitor_enabled: config.monitor.enabled,
        metrics: Metrics::new(registry),
        dirty: true,
        naming,
    };
    tokio::spawn(run(
        d,
        rx,
        Duration::from_secs(ha.snapshot_interval_s),
        shutdown,
    ));
    Some(tx)
}

fn naming(ha: &HomeAssistantConfig, config: &Config, bus: &Bus, node: String) -> Naming {
    Naming {
        node,
        discovery_prefix: ha.discovery_prefix.clone(),
        topic_prefix: ha
            .topic_prefix
            .clone()
            .unwrap_or_else(|| bus.prefix().to_string()),
        object_id_prefix: ha.object_id_prefix.clone(),
        device_name: ha.device_name.clone(),
        configuration_url: ha.configuration_url.clone(),
        setpoint_min: config.fieldbus.neasmart.setpoint_min_celsius,
        setpoint_max: config.fieldbus.neasmart.setpoint_max_celsius,
        setpoint_step: ha.setpoint_step,
    }
}

async fn run(
    mut d: Discovery,
    mut sensors: watch::Receiver<SensorSet>,
    snapshot_every: Duration,
    shutdown: CancellationToken,
) {
    let bus = d.bus.clone();
    let (tx, mut rx) = mpsc::channel::<Message>(1024);
    let prefix_len = bus.prefix().len() + 1;
    let set_prefix = format!("{}/", bus.topic(&["ha", &d.naming.node, "set"]));
    let birth = format!("{}/status", d.naming.discovery_prefix);
    let mut filters: Vec<String> = [
        &["neasmart", "+"][..],
        &["neasmart", "+", "+"],
        &["neasmart", "zone", "+", "+"],
        &["relay", "+", "status"],
        &capture_topics::STATUS_FILTER,
        &capture_topics::THERMAL_FILTER,
        &["system", "+", "status"],
        &watchpost_contract::alarm::RECEIVER_STATUSES,
        &["monitor", "target", "+"],
        &["ha", &d.naming.node, "set", "#"],
    ]
    .iter()
    .map(|l| bus.filter(l))
    .collect();
    filters.push(birth.clone());
    for f in filters {
        match bus.subscribe(&f).await {
            Ok(mut sub) => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    while let Some(m) = sub.recv().await {
                        if tx.send(m).await.is_err() {
                            break;
                        }
                    }
                });
            }
            Err(e) => {
                tracing::error!(error = %e, filter = f, "Home Assistant discovery cannot subscribe; discovery stopped");
                return;
            }
        }
    }
    drop(tx);
    tracing::info!(node = %d.naming.node, prefix = %d.naming.discovery_prefix, "Home Assistant discovery started");
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut snapshots = tokio::time::interval(snapshot_every.max(Duration::from_secs(1)));
    snapshots.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let snapshot_busy = Arc::new(AtomicBool::new(false));
    let mut republish_at: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(m) = rx.recv() => {
                if m.topic == birth {
                    if m.payload.as_ref() == b"online" {
                        // Spread the republish of many boxes over up to 2 s.
                        let jitter = u64::from(std::process::id() % 2000);
                        republish_at = Some(Instant::now() + Duration::from_millis(jitter));
                    }
                } else if m.topic.starts_with(&set_prefix) {
                    d.command(&m, &set_prefix).await;
                } else if let Some(rest) = m.topic.get(prefix_len..) {
                    let levels: Vec<&str> = rest.split('/').collect();
                    if let ["system", worker, "status"] = levels.as_slice() {
                        if m.payload.as_ref() == b"online" {
                            d.online_since.insert(worker.to_string(), Instant::now());
                        } else {
                            d.online_since.remove(*worker);
                        }
                    }
                    if d.catalog.apply(&levels, &m.payload) {
                        d.dirty = true;
                    }
                }
            }
            Ok(()) = sensors.changed() => {
                let s = sensors.borrow_and_update().clone();
                if s != d.sensors {
                    d.sensors = s;
                    d.dirty = true;
                }
            }
            _ = tick.tick() => {
                if republish_at.is_some_and(|t| Instant::now() >= t) {
                    republish_at = None;
                    d.metrics.republish.inc();
                    tracing::info!("Home Assistant is online: republishing discovery");
                    d.published.clear();
                    d.dirty = true;
                }
                if d.dirty {
                    d.reconcile().await;
                }
            }
            _ = snapshots.tick(), if !snapshot_every.is_zero() => {
                if !snapshot_busy.swap(true, Ordering::SeqCst) {
                    let cams: Vec<String> = d.catalog.cameras.keys().cloned().collect();
                    let (bus, busy) = (bus.clone(), snapshot_busy.clone());
                    tokio::spawn(async move {
                        for cam in cams {
                            let levels = capture_topics::command(&cam, capture_topics::Command::Snapshot);
                            let topic = bus.topic(&levels);
                            // Offline cameras answer NO_FRAME; the camera entity keeps its last picture.
                            let _ = bus.request(&topic, &Snapshot {}, Duration::from_secs(10)).await;
                        }
                        busy.store(false, Ordering::SeqCst);
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_follow_entity_keys() {
        assert_eq!(area("zone_1_3"), Area::Fieldbus);
        assert_eq!(area("relay_siren_horn"), Area::Fieldbus);
        assert_eq!(area("sensor_abc_battery"), Area::Sensors);
        assert_eq!(area("camera_yard_online"), Area::Capture);
        assert_eq!(area("worker_hub"), Area::Appliance);
    }

    #[test]
    fn the_state_file_round_trips_and_node_ids_are_valid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        let saved = Saved {
            node_id: random_node(),
            topics: ["homeassistant/climate/x/zone_1_1/config".to_string()].into(),
        };
        save(&path, &saved).unwrap();
        let back = load(&path).unwrap();
        assert_eq!(back.node_id, saved.node_id);
        assert_eq!(back.topics, saved.topics);
        assert!(watchpost_config::homeassistant::is_discovery_id(
            &back.node_id
        ));
        assert_eq!(back.node_id.len(), 12);
    }
}
