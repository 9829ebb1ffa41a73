//! The alarm service inside the hub: intake of sensor events from the bridge, the rules
//! engine, durable per-receiver queues, one delivery task per receiver, and the event history.
//!
//! Intake, for each batch of inputs (sensor events, due timers, test requests, supervision):
//! 1. the engine turns them into alarms, and each alarm into deliveries per route;
//! 2. each receiver's deliveries of the batch are enqueued as one durable queue item (SIA
//!    sequence numbers are fixed here, so every resend of a delivery reuses its number), and
//!    the receiver's delivery task may send them at once;
//! 3. the engine state, the last sensor event processed and the SIA counters are saved
//!    (`alarms.state` in the settings table);
//! 4. only then may delivery tasks remove the batch's items from their queues (after the
//!    receiver's acknowledgement), and the bridge is told which events are done (it keeps and
//!    resends everything not acknowledged).
//!
//! A crash between 2 and 4 leaves the batch's items in their queues (sent or not); after a
//! restart they are delivered (again, with the same sequence numbers), the bridge resends the
//! events, the engine (restored to its state before them) produces the same alarms, and
//! receivers whose queue already holds them are skipped (per-receiver watermark), so nothing is
//! lost and no alarm is queued twice. Removal from a queue is batched (every 100 ms or 64
//! deliveries): an alarm delivered but not yet removed when the hub dies is sent once more with
//! its sequence number, which a receiver recognises as a repeat.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU64;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use watchpost_bus::{Bus, Retain};
use watchpost_config::alarms::{
    AlarmsConfig, OverflowPolicy, ReceiverConfig, RelayMode, RouteConfig,
};
use watchpost_runtime::WorkerCtx;
use watchpost_store::{
    JsonBody, NewEvent, Overflow, Queue, QueueConfig, QueueItem, Severity, Store,
};
use watchpost_yolink::Sensor;

use crate::AlarmError;
use crate::delivery::{Batch, Delivery, RelayAction, Source, Target};
use crate::engine::{Alarm, Engine, EngineState, Rule};
use crate::event::{EventKind, Phase};
use crate::receivers::Receiver;
use crate::sia::{Clock, Outcome, SystemClock, Try};
use crate::status::{IntakeStats, IntakeView, ReceiverStats, ReceiverView};

/// Settings key of the saved state.
pub const STATE_KEY: &str = "alarms.state";
/// Settings key of receivers and mappings managed through the API.
pub const MANAGED_KEY: &str = "alarms.managed";

/// A sensor event as the bridge publishes it on `<prefix>/sensors/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeEvent {
    /// The bridge run (its start time in ms); sequence numbers restart with each run.
    pub epoch: u64,
    pub seq: u64,
    /// The oldest sequence number the bridge still holds (unacknowledged).
    pub head: u64,
    pub at_ms: i64,
    /// The update was the sensor's "still open" reminder.
    #[serde(default)]
    pub reminder: bool,
    /// The update re-publishes known state (bridge start, reconnect), not a change.
    #[serde(default)]
    pub sync: bool,
    pub sensor: Sensor,
}

/// Receivers and mappings added through the API (kept in the settings table, merged with the
/// configuration file's).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Managed {
    pub receivers: Vec<ReceiverConfig>,
    pub mappings: Vec<watchpost_config::alarms::MappingConfig>,
}

impl Managed {
    /// The file's `[alarms]` with these entries added.
    pub fn merged(&self, file: &AlarmsConfig) -> AlarmsConfig {
        let mut c = file.clone();
        c.receivers.extend(self.receivers.iter().cloned());
        c.mappings.extend(self.mappings.iter().cloned());
        c
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ReceiverCheckpoint {
    /// Last SIA sequence counter used.
    sia_counter: u64,
    /// Last sensor event whose deliveries are in this receiver's queue.
    watermark: Option<Source>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Checkpoint {
    engine: EngineState,
    cursor: Option<Source>,
    receivers: BTreeMap<String, ReceiverCheckpoint>,
}

/// Parameters of a test alarm.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    pub zone: Option<u16>,
    pub channel: Option<u16>,
    pub output: Option<String>,
}

/// A queued test alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestQueued {
    pub alarm_id: u64,
    pub receiver: String,
    pub queue_seq: u64,
}

enum Command {
    Test {
        receiver: String,
        request: TestRequest,
        reply: oneshot::Sender<Result<TestQueued, AlarmError>>,
    },
    Reload {
        reply: oneshot::Sender<Result<(), AlarmError>>,
    },
}

struct Shared {
    receivers: RwLock<Vec<Arc<ReceiverStats>>>,
    intake: IntakeStats,
    sensors: RwLock<BTreeMap<String, Value>>,
    enabled: bool,
}

/// The API's way into the running service.
#[derive(Clone)]
pub struct AlarmHandle {
    cmd: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AlarmHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlarmHandle").finish_non_exhaustive()
    }
}

static HANDLE: OnceLock<AlarmHandle> = OnceLock::new();

/// The running service of this process, if it was started.
pub fn handle() -> Option<AlarmHandle> {
    HANDLE.get().cloned()
}

impl AlarmHandle {
    /// Every receiver's queue and delivery status.
    pub fn queues(&self) -> Vec<ReceiverView> {
        let now = now_ms();
        self.shared
            .receivers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|r| r.view(now))
            .collect()
    }

    /// Whether `[alarms] enabled` is on.
    pub fn enabled(&self) -> bool {
        self.shared.enabled
    }

    pub fn intake(&self) -> IntakeView {
        self.shared.intake.view()
    }

    /// The latest published state of every sensor.
    pub fn sensors(&self) -> BTreeMap<String, Value> {
        self.shared
            .sensors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Queues a test alarm for `receiver`.
    pub async fn test_alarm(
        &self,
        receiver: &str,
        request: TestRequest,
    ) -> Result<TestQueued, AlarmError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Test {
                receiver: receiver.to_string(),
                request,
                reply: tx,
            })
            .await
            .map_err(|_| AlarmError::Stopped)?;
        rx.await.map_err(|_| AlarmError::Stopped)?
    }

    /// Re-reads receivers and mappings (after an API change) and restarts delivery with them.
    pub async fn reload(&self) -> Result<(), AlarmError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Reload { reply: tx })
            .await
            .map_err(|_| AlarmError::Stopped)?;
        rx.await.map_err(|_| AlarmError::Stopped)?
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AlarmError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AlarmError::Task {
            reason: e.to_string(),
        })
}

/// Reads the API-managed entries.
pub fn load_managed(store: &Store) -> Result<Managed, AlarmError> {
    store
        .settings()
        .get::<Managed>(MANAGED_KEY)
        .map(Option::unwrap_or_default)
        .map_err(|e| AlarmError::LoadState {
            source: Box::new(e),
        })
}

/// Runs the alarm service until `ctx`'s shutdown (with alarms disabled, only the sensor state
/// cache the API reads). Errors are logged and end the service; the hub keeps serving the rest.
pub async fn serve(
    config: Arc<watchpost_config::Config>,
    bus: Bus,
    store: Store,
    ctx: Arc<WorkerCtx>,
) {
    if let Err(e) = run(config, bus, store, ctx, Arc::new(SystemClock)).await {
        tracing::error!(error = %e, "alarm service stopped");
    }
}

/// The service with an explicit clock for SIA timestamps (tests use a skewed one).
pub async fn run(
    config: Arc<watchpost_config::Config>,
    bus: Bus,
    store: Store,
    ctx: Arc<WorkerCtx>,
    clock: Arc<dyn Clock>,
) -> Result<(), AlarmError> {
    let (cmd_tx, mut cmd_rx) = mpsc::channel(64);
    let shared = Arc::new(Shared {
        receivers: RwLock::new(Vec::new()),
        intake: IntakeStats::default(),
        sensors: RwLock::new(BTreeMap::new()),
        enabled: config.alarms.enabled,
    });
    let _ = HANDLE.set(AlarmHandle {
        cmd: cmd_tx,
        shared: shared.clone(),
    });
    let shutdown = ctx.shutdown().clone();
    let sensors_task = tokio::spawn(cache_sensor_states(
        bus.clone(),
        shared.clone(),
        shutdown.clone(),
    ));
    if !config.alarms.enabled {
        // Answer commands with "disabled" until shutdown.
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                c = cmd_rx.recv() => match c {
                    Some(Command::Test { reply, .. }) => { let _ = reply.send(Err(AlarmError::Disabled)); }
                    Some(Command::Reload { reply }) => { let _ = reply.send(Err(AlarmError::Disabled)); }
                    None => break,
                },
            }
        }
        sensors_task.abort();
        return Ok(());
    }
    let filter = bus.topic(&["sensors", "events"]);
    let mut events = bus
        .subscribe(&filter)
        .await
        .map_err(|e| AlarmError::Subscribe {
            filter: filter.clone(),
            source: Box::new(e),
        })?;
    let (history_tx, history_rx) = mpsc::channel::<NewEvent>(20_000);
    let history_task = tokio::spawn(write_history(store.clone(), history_rx));
    let result = loop {
        let managed = blocking({
            let store = store.clone();
            move || load_managed(&store)
        })
        .await??;
        let alarms = managed.merged(&config.alarms);
        let mut problems = Vec::new();
        alarms.validate(&mut problems);
        if !problems.is_empty() {
            tracing::error!(?problems, "alarm configuration (file and API) is invalid");
        }
        let mut run = Run::start(
            &alarms,
            &bus,
            &store,
            &ctx,
            clock.clone(),
            shared.clone(),
            history_tx.clone(),
        )
        .await?;
        let reload = run.intake(&mut events, &mut cmd_rx, &shutdown).await;
        run.stop().await;
        match reload {
            Ok(Some(reply)) => {
                let _ = reply.send(Ok(()));
                continue;
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    drop(history_tx);
    let _ = history_task.await;
    sensors_task.abort();
    result
}

/// Keeps the latest retained state of every sensor for the API.
async fn cache_sensor_states(bus: Bus, shared: Arc<Shared>, shutdown: CancellationToken) {
    // Built by hand: `Bus::topic` sanitises levels, wildcards included.
    let filter = format!("{}/sensors/+/state", bus.prefix());
    let Ok(mut rx) = bus.subscribe(&filter).await else {
        tracing::warn!(filter, "cannot subscribe to sensor states");
        return;
    };
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => return,
            m = rx.recv() => match m { Some(m) => m, None => return },
        };
        let id = msg.topic.rsplit('/').nth(1).unwrap_or_default().to_string();
        let mut map = shared.sensors.write().unwrap_or_else(|p| p.into_inner());
        if msg.payload.is_empty() {
            map.remove(&id);
        } else if let Ok(v) = serde_json::from_slice::<Value>(&msg.payload) {
            map.insert(id, v);
        }
    }
}

/// Appends history events in batches: one commit per 500 events or per 200 ms, whichever
/// comes first (the alarm path's own writes come first; history never blocks it).
async fn write_history(store: Store, mut rx: mpsc::Receiver<NewEvent>) {
    const MAX: usize = 500;
    const WINDOW: Duration = Duration::from_millis(200);
    let log = store.events();
    let mut buf = Vec::new();
    while rx.recv_many(&mut buf, MAX).await > 0 {
        let deadline = tokio::time::Instant::now() + WINDOW;
        while buf.len() < MAX {
            let room = MAX - buf.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut buf, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let batch = std::mem::take(&mut buf);
        let log = log.clone();
        let n = batch.len();
        match tokio::task::spawn_blocking(move || log.append_batch(batch)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, events = n, "cannot record alarm history"),
            Err(e) => tracing::warn!(error = %e, "history writer task failed"),
        }
    }
}

fn event(kind: &str, source: &str, severity: Severity, body: Value) -> NewEvent {
    let e = NewEvent::new(watchpost_store::now_us(), kind, source, severity);
    match JsonBody::from_value(&body) {
        Ok(b) => e.with_body(b),
        Err(_) => e,
    }
}

/// One receiver as the intake sees it.
struct Slot {
    cfg: ReceiverConfig,
    queue: Queue,
    stats: Arc<ReceiverStats>,
    /// Items just enqueued, handed to the delivery task in memory (it reads the queue itself
    /// only at start).
    enqueued: mpsc::UnboundedSender<QueueItem>,
    /// One past the highest queue sequence covered by a saved checkpoint (those may be removed
    /// once delivered); advanced by the saver task.
    committed: Arc<watch::Sender<u64>>,
    /// One past the highest queue sequence enqueued so far.
    enqueued_next: u64,
    sia_counter: u64,
    watermark: Option<Source>,
    /// Enqueue time of the last item (for NULL supervision).
    last_enqueue_ms: i64,
}

/// The service with one set of receivers and rules.
struct Run {
    engine: Engine,
    slots: Vec<Slot>,
    routes: HashMap<String, Vec<(usize, RouteConfig)>>,
    cursor: Option<Source>,
    bus: Bus,
    shared: Arc<Shared>,
    history: mpsc::Sender<NewEvent>,
    overflow: OverflowPolicy,
    senders: Vec<tokio::task::JoinHandle<()>>,
    stop: CancellationToken,
    last_resend_request_ms: i64,
    /// The newest state to save; the saver task writes it and then releases what it covers.
    snapshot: watch::Sender<Option<Arc<Snapshot>>>,
    saver: tokio::task::JoinHandle<()>,
    /// Tells the supervisor whether an alarm is active (the status LED).
    ctx: Arc<WorkerCtx>,
    alarm_shown: Option<bool>,
}

/// A checkpoint and what becomes removable / acknowledgeable once it is on disk.
struct Snapshot {
    checkpoint: Checkpoint,
    /// Per slot: one past the last queue sequence this checkpoint covers.
    committed: Vec<u64>,
    cursor: Option<Source>,
}

fn queue_name(id: &str) -> String {
    format!("alarm-{}", id.to_ascii_lowercase())
}

impl Run {
    async fn start(
        cfg: &AlarmsConfig,
        bus: &Bus,
        store: &Store,
        ctx: &Arc<WorkerCtx>,
        clock: Arc<dyn Clock>,
        shared: Arc<Shared>,
        history: mpsc::Sender<NewEvent>,
    ) -> Result<Self, AlarmError> {
        let checkpoint: Checkpoint = blocking({
            let store = store.clone();
            move || store.settings().get::<Checkpoint>(STATE_KEY)
        })
        .await?
        .map_err(|e| AlarmError::LoadState {
            source: Box::new(e),
        })?
        .unwrap_or_default();
        let stop = ctx.shutdown().child_token();
        let capacity = u64::from(cfg.queue_capacity.max(1));
        let replies = crate::receivers::Replies::start(bus, stop.clone()).await?;
        let mut slots = Vec::new();
        let mut senders = Vec::new();
        let mut names = HashMap::new();
        let mut stats_list = Vec::new();
        for rc in &cfg.receivers {
            let id = rc.id().to_string();
            let name = queue_name(&id);
            if let Some(other) = names.insert(name.clone(), id.clone()) {
                return Err(AlarmError::Receiver {
                    receiver: id,
                    field: "id",
                    reason: format!("differs from `{other}` only in case"),
                });
            }
            let queue = blocking({
                let store = store.clone();
                let name = name.clone();
                move || {
                    store.queue(
                        &name,
                        QueueConfig {
                            // Items are batches; the delivery bound is enforced by the intake.
                            capacity: NonZeroU64::new(capacity.saturating_mul(2))
                                .unwrap_or(NonZeroU64::MIN),
                            overflow: Overflow::RejectNew,
                        },
                    )
                }
            })
            .await?
            .map_err(|e| AlarmError::OpenQueue {
                receiver: id.clone(),
                source: Box::new(e),
            })?;
            let items = blocking({
                let q = queue.clone();
                move || q.peek(usize::MAX)
            })
            .await?
            .map_err(|e| AlarmError::Queue {
                receiver: id.clone(),
                source: Box::new(e),
            })?;
            let saved = checkpoint.receivers.get(&id).cloned().unwrap_or_default();
            let mut sia_counter = saved.sia_counter;
            let mut watermark = saved.watermark;
            let mut queued = 0u64;
            for item in &items {
                if let Ok(b) = Batch::decode(&item.payload) {
                    queued += b.deliveries.len() as u64;
                    for s in b.sia_seqs() {
                        // The counter wraps at 9999; its last use is the largest number mod
                        // 9999 only within one wrap, which is all a queue can hold.
                        let c = u64::from(s);
                        if c > sia_counter % 9999 || sia_counter == 0 {
                            sia_counter = sia_counter - sia_counter % 9999 + c;
                        }
                    }
                    if b.source > watermark {
                        watermark = b.source;
                    }
                }
            }
            let stats = Arc::new(ReceiverStats::new(&id, rc.kind(), capacity, ctx.metrics()));
            let oldest = items.first().map_or(0, |i| (i.enqueued_us / 1000) as i64);
            stats.set_queue(queued, oldest, now_ms());
            // Everything queued at start is covered by the saved state.
            let head = items.last().map_or(0, |i| i.seq + 1);
            let (committed, committed_rx) = watch::channel(head);
            let (enqueued, enqueued_rx) = mpsc::unbounded_channel();
            let receiver = Receiver::new(rc, &cfg.receivers, bus, &replies, clock.clone())?;
            senders.push(tokio::spawn(deliver_loop(
                receiver,
                queue.clone(),
                enqueued_rx,
                committed_rx,
                stats.clone(),
                history.clone(),
                stop.clone(),
            )));
            stats_list.push(stats.clone());
            slots.push(Slot {
                cfg: rc.clone(),
                queue,
                stats,
                enqueued,
                committed: Arc::new(committed),
                enqueued_next: head,
                sia_counter,
                watermark,
                last_enqueue_ms: now_ms(),
            });
        }
        *shared.receivers.write().unwrap_or_else(|p| p.into_inner()) = stats_list;
        let mut routes: HashMap<String, Vec<(usize, RouteConfig)>> = HashMap::new();
        let mut rules = Vec::new();
        for m in &cfg.mappings {
            rules.push(Rule::from_mapping(m, cfg));
            let list = routes.entry(m.sensor.clone()).or_default();
            for r in &m.routes {
                if let Some(i) = slots.iter().position(|s| s.cfg.id() == &r.receiver) {
                    list.push((i, r.clone()));
                }
            }
        }
        if let Some(c) = checkpoint.cursor {
            shared.intake.epoch.store(c.epoch, Ordering::Relaxed);
            shared.intake.last_seq.store(c.seq, Ordering::Relaxed);
        }
        let (snapshot, snapshot_rx) = watch::channel(None);
        let saver = tokio::spawn(save_loop(
            store.clone(),
            bus.clone(),
            slots.iter().map(|s| s.committed.clone()).collect(),
            snapshot_rx,
        ));
        let mut run = Self {
            engine: Engine::new(rules, checkpoint.engine),
            slots,
            routes,
            cursor: checkpoint.cursor,
            bus: bus.clone(),
            shared,
            history,
            overflow: cfg.overflow,
            senders,
            stop,
            last_resend_request_ms: 0,
            snapshot,
            saver,
            ctx: ctx.clone(),
            alarm_shown: None,
        };
        run.show_alarm();
        tracing::info!(
            receivers = run.slots.len(),
            mappings = cfg.mappings.len(),
            cursor = ?run.cursor,
            "alarm service started"
        );
        run.request_resend().await;
        Ok(run)
    }

    async fn stop(self) {
        // The saver writes the last snapshot, then ends when its channel closes.
        drop(self.snapshot);
        let _ = self.saver.await;
        self.stop.cancel();
        for s in self.senders {
            let _ = s.await;
        }
    }

    fn record(&self, e: NewEvent) {
        if self.history.try_send(e).is_err() {
            self.shared
                .intake
                .history_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Asks the bridge to resend what follows our cursor.
    async fn request_resend(&self) {
        let body = match self.cursor {
            Some(c) => json!({"epoch": c.epoch, "from": c.seq + 1}),
            None => json!({"epoch": 0, "from": 1}),
        };
        let topic = self.bus.topic(&["alarms", "intake", "resend"]);
        if let Err(e) = self.bus.publish_json(&topic, &body, Retain::No).await {
            tracing::warn!(error = %e, "cannot ask the bridge to resend sensor events");
        }
    }

    /// The main loop: returns `Some(reply)` to reload, `None` on shutdown.
    async fn intake(
        &mut self,
        events: &mut mpsc::Receiver<watchpost_bus::Message>,
        cmds: &mut mpsc::Receiver<Command>,
        shutdown: &CancellationToken,
    ) -> Result<Option<oneshot::Sender<Result<(), AlarmError>>>, AlarmError> {
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let due = self.engine.next_due_ms();
            let sleep_for = due.map_or(Duration::from_secs(3600), |d| {
                Duration::from_millis(u64::try_from(d - now_ms()).unwrap_or(0))
            });
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                m = events.recv() => {
                    let Some(m) = m else { return Ok(None) };
                    let mut msgs = vec![m];
                    while msgs.len() < 256 {
                        match events.try_recv() {
                            Ok(m) => msgs.push(m),
                            Err(_) => break,
                        }
                    }
                    let started = std::time::Instant::now();
                    let n = msgs.len();
                    self.on_messages(msgs).await?;
                    tracing::trace!(events = n, elapsed_us = started.elapsed().as_micros() as u64, "intake batch");
                }
                c = cmds.recv() => match c {
                    Some(Command::Reload { reply }) => return Ok(Some(reply)),
                    Some(Command::Test { receiver, request, reply }) => {
                        let r = self.test(&receiver, &request).await;
                        let _ = reply.send(r);
                    }
                    None => return Ok(None),
                },
                _ = tokio::time::sleep(sleep_for), if due.is_some() => {
                    let out = self.engine.tick(now_ms());
                    self.commit(out.alarms, out.suppressed, None, Vec::new()).await?;
                }
                _ = housekeeping.tick() => self.housekeeping().await?,
            }
        }
    }

    async fn on_messages(&mut self, msgs: Vec<watchpost_bus::Message>) -> Result<(), AlarmError> {
        let mut alarms = Vec::new();
        let mut suppressed = Vec::new();
        let mut history = Vec::new();
        let mut last_source = None;
        let mut gap = false;
        for m in msgs {
            let ev: BridgeEvent = match serde_json::from_slice(&m.payload) {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!(error = %e, topic = m.topic, "bad sensor event ignored");
                    continue;
                }
            };
            let stats = &self.shared.intake;
            let next = match self.cursor {
                Some(c) if c.epoch == ev.epoch => c.seq + 1,
                Some(c) if c.epoch > ev.epoch => {
                    stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                // A new bridge run starts at its head.
                _ => ev.head.max(1),
            };
            if ev.seq < next {
                stats.duplicates.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if ev.seq > next {
                if ev.head > next && ev.seq == ev.head {
                    // The bridge no longer has the events in between: record the loss.
                    stats.gaps.fetch_add(1, Ordering::Relaxed);
                    history.push(event(
                        "sensor.events_lost",
                        "bridge",
                        Severity::Critical,
                        json!({"epoch": ev.epoch, "from": next, "to": ev.head - 1}),
                    ));
                } else {
                    gap = true;
                    continue;
                }
            }
            stats.events.fetch_add(1, Ordering::Relaxed);
            stats.epoch.store(ev.epoch, Ordering::Relaxed);
            stats.last_seq.store(ev.seq, Ordering::Relaxed);
            let source = Source {
                epoch: ev.epoch,
                seq: ev.seq,
            };
            self.cursor = Some(source);
            last_source = Some(source);
            history.push(event(
                "sensor.update",
                &ev.sensor.id,
                Severity::Info,
                json!({"sensor": ev.sensor, "reminder": ev.reminder, "sync": ev.sync, "seq": ev.seq}),
            ));
            let out = self.engine.on_sensor(&ev.sensor, ev.reminder, now_ms());
            for a in out.alarms {
                alarms.push((a, Some(source)));
            }
            suppressed.extend(out.suppressed);
        }
        if gap {
            let now = now_ms();
            if now - self.last_resend_request_ms > 500 {
                self.last_resend_request_ms = now;
                self.request_resend().await;
            }
        }
        let r = self
            .commit_sourced(alarms, suppressed, last_source, history)
            .await;
        self.show_alarm();
        r
    }

    /// Commits alarms not tied to a sensor event.
    async fn commit(
        &mut self,
        alarms: Vec<Alarm>,
        suppressed: Vec<crate::engine::Suppressed>,
        source: Option<Source>,
        history: Vec<NewEvent>,
    ) -> Result<(), AlarmError> {
        let alarms = alarms.into_iter().map(|a| (a, source)).collect();
        self.commit_sourced(alarms, suppressed, source, history)
            .await
    }

    fn deliveries_for(&mut self, alarm: &Alarm) -> Vec<(usize, Delivery)> {
        let mut out = Vec::new();
        let Some(routes) = self.routes.get(&alarm.sensor) else {
            return out;
        };
        for (slot, route) in routes.clone() {
            let cfg = &self.slots[slot].cfg;
            let target = match cfg {
                ReceiverConfig::Sia(_) => {
                    if alarm.phase == Phase::Restore && !alarm.report_restore {
                        continue;
                    }
                    let s = &mut self.slots[slot];
                    s.sia_counter += 1;
                    Target::Sia {
                        seq: watchpost_dc09::Seq::from_counter(s.sia_counter).get(),
                        zone: route.zone.unwrap_or(0),
                    }
                }
                ReceiverConfig::Chekt(c) => {
                    if alarm.phase == Phase::Restore && !(c.send_restores && alarm.report_restore) {
                        continue;
                    }
                    Target::Chekt {
                        channel: route.channel.unwrap_or(1),
                        fallback_output: route.fallback_output.as_ref().map(ToString::to_string),
                    }
                }
                ReceiverConfig::Relay(r) => {
                    let Some(output) = &route.output else {
                        continue;
                    };
                    let action = match (route.mode.unwrap_or_default(), alarm.phase) {
                        (RelayMode::Pulse, Phase::Alarm) => RelayAction::Pulse {
                            ms: route.pulse_ms.unwrap_or(r.pulse_ms),
                        },
                        (RelayMode::Pulse, Phase::Restore) => continue,
                        (RelayMode::Follow, Phase::Alarm) => RelayAction::On,
                        (RelayMode::Follow, Phase::Restore) => RelayAction::Off,
                    };
                    Target::Relay {
                        output: output.to_string(),
                        action,
                    }
                }
            };
            out.push((
                slot,
                Delivery {
                    alarm_id: alarm.id,
                    sensor: alarm.sensor.clone(),
                    sensor_name: alarm.sensor_name.clone(),
                    kind: alarm.kind,
                    phase: alarm.phase,
                    at_ms: alarm.at_ms,
                    target,
                },
            ));
        }
        out
    }

    /// Steps 1–4 of the module description for one batch.
    async fn commit_sourced(
        &mut self,
        alarms: Vec<(Alarm, Option<Source>)>,
        suppressed: Vec<crate::engine::Suppressed>,
        source: Option<Source>,
        mut history: Vec<NewEvent>,
    ) -> Result<(), AlarmError> {
        if alarms.is_empty() && suppressed.is_empty() && source.is_none() && history.is_empty() {
            return Ok(());
        }
        let intake = &self.shared.intake;
        intake
            .alarms
            .fetch_add(alarms.len() as u64, Ordering::Relaxed);
        intake
            .suppressed
            .fetch_add(suppressed.len() as u64, Ordering::Relaxed);
        for s in &suppressed {
            history.push(event(
                "alarm.suppressed",
                &s.sensor,
                Severity::Warning,
                json!({"event": s.kind, "phase": s.phase, "reason": s.reason}),
            ));
        }
        let mut per_slot: BTreeMap<usize, (Vec<Delivery>, Option<Source>)> = BTreeMap::new();
        for (alarm, src) in &alarms {
            let planned = self.deliveries_for(alarm);
            let mut receivers = Vec::new();
            for (slot, d) in planned {
                // After a crash the same sensor event can come again: a receiver whose queue
                // already holds its deliveries is skipped.
                if src.is_some() && self.slots[slot].watermark >= *src {
                    continue;
                }
                receivers.push(self.slots[slot].cfg.id().to_string());
                let e = per_slot.entry(slot).or_default();
                e.0.push(d);
                if src.is_some() {
                    e.1 = *src;
                }
            }
            let (kind, severity) = match (alarm.kind, alarm.phase) {
                (EventKind::Test, _) => ("alarm.test", Severity::Info),
                (k, Phase::Alarm) if k.is_trouble() => ("alarm.trouble", Severity::Warning),
                (_, Phase::Alarm) => ("alarm.raised", Severity::Critical),
                (_, Phase::Restore) => ("alarm.restored", Severity::Info),
            };
            history.push(event(
                kind,
                &alarm.sensor,
                severity,
                json!({"alarm_id": alarm.id, "sensor_name": alarm.sensor_name, "event": alarm.kind,
                       "phase": alarm.phase, "receivers": receivers}),
            ));
        }
        let now = now_ms();
        let mut committed = Vec::new();
        for (slot, (mut deliveries, src)) in per_slot {
            let s = &self.slots[slot];
            let queued = s.stats.queued.load(Ordering::Relaxed);
            let room = s.stats.capacity.saturating_sub(queued);
            let need = deliveries.len() as u64;
            if need > room {
                match self.overflow {
                    OverflowPolicy::RejectNew => {
                        let refused: Vec<Delivery> = deliveries.split_off(room as usize);
                        s.stats.rejected(refused.len() as u64);
                        history.push(event(
                            "alarm.queue_overflow",
                            s.cfg.id().as_str(),
                            Severity::Critical,
                            json!({"policy": "reject_new", "refused": refused, "capacity": s.stats.capacity}),
                        ));
                    }
                    OverflowPolicy::DropOldest => {
                        let (dropped, next) = drop_oldest(&s.queue, need - room).await?;
                        s.stats.dropped_before.fetch_max(next, Ordering::Relaxed);
                        let n: u64 = dropped.iter().map(|b| b.deliveries.len() as u64).sum();
                        s.stats.dropped(n);
                        s.stats.queued.fetch_sub(n.min(queued), Ordering::Relaxed);
                        history.push(event(
                            "alarm.queue_overflow",
                            s.cfg.id().as_str(),
                            Severity::Critical,
                            json!({"policy": "drop_oldest", "dropped": dropped, "capacity": s.stats.capacity}),
                        ));
                    }
                }
            }
            if deliveries.is_empty() {
                continue;
            }
            let batch = Batch {
                source: src,
                deliveries,
            };
            let n = batch.deliveries.len() as u64;
            let bytes = batch.encode();
            let bytes_sent = bytes.clone();
            let q = s.queue.clone();
            let enq =
                blocking(move || q.enqueue(&bytes))
                    .await?
                    .map_err(|e| AlarmError::Queue {
                        receiver: s.cfg.id().to_string(),
                        source: Box::new(e),
                    })?;
            match enq.seq() {
                Some(seq) => {
                    let was = s.stats.queued.fetch_add(n, Ordering::Relaxed);
                    if was == 0 {
                        s.stats.oldest_ms.store(now, Ordering::Relaxed);
                    }
                    s.stats
                        .set_queue(was + n, s.stats.oldest_ms.load(Ordering::Relaxed), now);
                    // Sending may start now; removal waits for the checkpoint below.
                    let _ = s.enqueued.send(QueueItem {
                        seq,
                        enqueued_us: u64::try_from(now).unwrap_or(0) * 1000,
                        payload: bytes_sent,
                    });
                    committed.push((slot, seq + 1));
                    self.slots[slot].enqueued_next = seq + 1;
                }
                None => {
                    s.stats.rejected(n);
                    history.push(event(
                        "alarm.queue_overflow",
                        s.cfg.id().as_str(),
                        Severity::Critical,
                        json!({"policy": "store_full", "refused": batch.deliveries}),
                    ));
                }
            }
            let s = &mut self.slots[slot];
            s.last_enqueue_ms = now;
            if src.is_some() {
                s.watermark = src;
            }
        }
        let _ = committed;
        self.save(source);
        for e in history {
            self.record(e);
        }
        Ok(())
    }

    /// Hands the current state to the saver task (which coalesces: only the newest matters).
    fn save(&self, acknowledge: Option<Source>) {
        let checkpoint = Checkpoint {
            engine: self.engine.state().clone(),
            cursor: self.cursor,
            receivers: self
                .slots
                .iter()
                .map(|s| {
                    (
                        s.cfg.id().to_string(),
                        ReceiverCheckpoint {
                            sia_counter: s.sia_counter,
                            watermark: s.watermark,
                        },
                    )
                })
                .collect(),
        };
        let snap = Snapshot {
            checkpoint,
            committed: self.slots.iter().map(|s| s.enqueued_next).collect(),
            cursor: acknowledge.or(self.cursor),
        };
        let _ = self.snapshot.send(Some(Arc::new(snap)));
    }

    async fn test(&mut self, receiver: &str, req: &TestRequest) -> Result<TestQueued, AlarmError> {
        let Some(slot) = self
            .slots
            .iter()
            .position(|s| s.cfg.id().as_str() == receiver)
        else {
            return Err(AlarmError::UnknownReceiver {
                receiver: receiver.to_string(),
            });
        };
        // Route defaults: the first mapping that uses this receiver.
        let first = self
            .routes
            .values()
            .flatten()
            .find(|(i, _)| *i == slot)
            .map(|(_, r)| r.clone());
        let alarm = self.engine.test_alarm(now_ms());
        let s = &mut self.slots[slot];
        let target = match &s.cfg {
            ReceiverConfig::Sia(_) => {
                s.sia_counter += 1;
                Target::Sia {
                    seq: watchpost_dc09::Seq::from_counter(s.sia_counter).get(),
                    zone: req
                        .zone
                        .or(first.as_ref().and_then(|r| r.zone))
                        .unwrap_or(0),
                }
            }
            ReceiverConfig::Chekt(_) => Target::Chekt {
                channel: req
                    .channel
                    .or(first.as_ref().and_then(|r| r.channel))
                    .unwrap_or(1),
                fallback_output: None,
            },
            ReceiverConfig::Relay(r) => Target::Relay {
                output: req
                    .output
                    .clone()
                    .or(first
                        .as_ref()
                        .and_then(|r| r.output.as_ref().map(ToString::to_string)))
                    .ok_or_else(|| AlarmError::Receiver {
                        receiver: receiver.to_string(),
                        field: "output",
                        reason: "a relay test needs an output".into(),
                    })?,
                action: RelayAction::Pulse { ms: r.pulse_ms },
            },
        };
        let d = Delivery {
            alarm_id: alarm.id,
            sensor: String::new(),
            sensor_name: "test".into(),
            kind: EventKind::Test,
            phase: Phase::Alarm,
            at_ms: alarm.at_ms,
            target,
        };
        let queue_seq = self.enqueue_single(slot, d, "alarm.test").await?;
        Ok(TestQueued {
            alarm_id: alarm.id,
            receiver: receiver.to_string(),
            queue_seq,
        })
    }

    /// Enqueues one delivery outside the rules (test, supervision), saves, releases it.
    async fn enqueue_single(
        &mut self,
        slot: usize,
        d: Delivery,
        kind: &str,
    ) -> Result<u64, AlarmError> {
        let s = &self.slots[slot];
        let queued = s.stats.queued.load(Ordering::Relaxed);
        if queued >= s.stats.capacity {
            s.stats.rejected(1);
            return Err(AlarmError::QueueFull {
                receiver: s.cfg.id().to_string(),
                len: queued,
                capacity: s.stats.capacity,
            });
        }
        let body = json!({"alarm_id": d.alarm_id, "event": d.kind, "target": d.target});
        let bytes = Batch {
            source: None,
            deliveries: vec![d],
        }
        .encode();
        let bytes_sent = bytes.clone();
        let q = s.queue.clone();
        let enq = blocking(move || q.enqueue(&bytes))
            .await?
            .map_err(|e| AlarmError::Queue {
                receiver: s.cfg.id().to_string(),
                source: Box::new(e),
            })?;
        let Some(seq) = enq.seq() else {
            s.stats.rejected(1);
            return Err(AlarmError::QueueFull {
                receiver: s.cfg.id().to_string(),
                len: queued,
                capacity: s.stats.capacity,
            });
        };
        let now = now_ms();
        let was = s.stats.queued.fetch_add(1, Ordering::Relaxed);
        if was == 0 {
            s.stats.oldest_ms.store(now, Ordering::Relaxed);
        }
        s.stats
            .set_queue(was + 1, s.stats.oldest_ms.load(Ordering::Relaxed), now);
        self.record(event(kind, s.cfg.id().as_str(), Severity::Info, body));
        let _ = s.enqueued.send(QueueItem {
            seq,
            enqueued_us: u64::try_from(now).unwrap_or(0) * 1000,
            payload: bytes_sent,
        });
        self.slots[slot].last_enqueue_ms = now;
        self.slots[slot].enqueued_next = seq + 1;
        self.save(None);
        Ok(seq)
    }

    /// Every second: NULL supervision messages for idle SIA receivers; queue age gauges.
    /// Sends the alarm indicator to the supervisor when it changed.
    fn show_alarm(&mut self) {
        let active = self.engine.alarm_active();
        if self.alarm_shown != Some(active) {
            self.alarm_shown = Some(active);
            self.ctx.indicators(active, false);
        }
    }

    async fn housekeeping(&mut self) -> Result<(), AlarmError> {
        self.show_alarm();
        let now = now_ms();
        for i in 0..self.slots.len() {
            let s = &mut self.slots[i];
            s.stats.refresh_age(now);
            let ReceiverConfig::Sia(cfg) = &s.cfg else {
                continue;
            };
            if cfg.supervision_s == 0 || s.stats.queued.load(Ordering::Relaxed) > 0 {
                continue;
            }
            let idle_since = s
                .last_enqueue_ms
                .max(s.stats.last_delivered_ms.load(Ordering::Relaxed));
            let interval =
                i64::try_from(cfg.supervision_s.saturating_mul(1000)).unwrap_or(i64::MAX);
            if now - idle_since < interval {
                continue;
            }
            s.sia_counter += 1;
            let d = Delivery {
                alarm_id: 0,
                sensor: String::new(),
                sensor_name: "supervision".into(),
                kind: EventKind::Test,
                phase: Phase::Alarm,
                at_ms: now,
                target: Target::SiaNull {
                    seq: watchpost_dc09::Seq::from_counter(s.sia_counter).get(),
                },
            };
            self.enqueue_single(i, d, "alarm.supervision").await?;
        }
        Ok(())
    }
}

/// Writes snapshots in order (skipping any superseded while a write was running), then lets
/// delivery tasks remove what a written snapshot covers and acknowledges the sensor events to
/// the bridge. A failed write is retried with the next snapshot; nothing is released until a
/// write succeeds.
async fn save_loop(
    store: Store,
    bus: Bus,
    committed: Vec<Arc<watch::Sender<u64>>>,
    mut rx: watch::Receiver<Option<Arc<Snapshot>>>,
) {
    let ack_topic = bus.topic(&["alarms", "intake", "ack"]);
    let mut acked: Option<Source> = None;
    loop {
        // An unseen snapshot is delivered even after the intake has closed the channel.
        if rx.changed().await.is_err() {
            return;
        }
        let snap = rx.borrow_and_update().clone();
        if let Some(snap) = snap {
            let s = store.clone();
            let cp = snap.clone();
            let saved =
                tokio::task::spawn_blocking(move || s.settings().put(STATE_KEY, &cp.checkpoint))
                    .await;
            match saved {
                Ok(Ok(())) => {
                    for (tx, next) in committed.iter().zip(&snap.committed) {
                        tx.send_if_modified(|v| {
                            let grow = *next > *v;
                            if grow {
                                *v = *next;
                            }
                            grow
                        });
                    }
                    if let Some(c) = snap.cursor
                        && acked != Some(c)
                    {
                        acked = Some(c);
                        let body = json!({"epoch": c.epoch, "through": c.seq});
                        if let Err(e) = bus.publish_json(&ack_topic, &body, Retain::No).await {
                            tracing::warn!(error = %e, "cannot acknowledge sensor events");
                        }
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot save the alarm state; retrying with the next change")
                }
                Err(e) => tracing::error!(error = %e, "alarm state saver failed"),
            }
        }
    }
}

/// Removes whole items from the front of `queue` until at least `n` deliveries are gone;
/// returns them and one past the last sequence removed.
async fn drop_oldest(queue: &Queue, n: u64) -> Result<(Vec<Batch>, u64), AlarmError> {
    let q = queue.clone();
    blocking(move || {
        let mut dropped = Vec::new();
        let mut count = 0u64;
        let mut next = 0u64;
        while count < n {
            let items = q.peek(1)?;
            let Some(item) = items.into_iter().next() else {
                break;
            };
            q.ack(item.seq)?;
            next = item.seq + 1;
            if let Ok(b) = Batch::decode(&item.payload) {
                count += b.deliveries.len() as u64;
                dropped.push(b);
            } else {
                count += 1;
            }
        }
        Ok::<_, watchpost_store::StoreError>((dropped, next))
    })
    .await?
    .map_err(|e| AlarmError::Queue {
        receiver: queue.name().to_string(),
        source: Box::new(e),
    })
}

fn try_event(receiver: &str, d: &Delivery, t: &Try) -> NewEvent {
    let severity = match t.result {
        crate::sia::TryResult::Acked => Severity::Info,
        _ => Severity::Warning,
    };
    event(
        "alarm.attempt",
        receiver,
        severity,
        json!({
            "alarm_id": d.alarm_id, "sensor": d.sensor, "event": d.kind, "phase": d.phase,
            "endpoint": t.endpoint, "seq": t.seq, "result": t.result.label(),
            "detail": format!("{:?}", t.result), "elapsed_ms": t.elapsed_ms,
            "timestamp": t.timestamp.map(|ts| ts.to_wire()),
        }),
    )
}

/// Removes delivered items from the queue in batches: when this many are waiting...
const ACK_BATCH: u64 = 64;
/// ...or when the oldest has waited this long, or the queue has nothing else to send.
const ACK_DELAY: Duration = Duration::from_millis(100);

/// One receiver's delivery task: sends the head of its queue until acknowledged (or refused
/// as not understood), in order, and removes delivered items once a checkpoint covers them.
/// Never skips an item except one that cannot be decoded (recorded as critical).
async fn deliver_loop(
    mut receiver: Receiver,
    queue: Queue,
    mut enqueued: mpsc::UnboundedReceiver<QueueItem>,
    mut committed: watch::Receiver<u64>,
    stats: Arc<ReceiverStats>,
    history: mpsc::Sender<NewEvent>,
    stop: CancellationToken,
) {
    let id = stats.id.clone();
    let record = |e: NewEvent| {
        if history.try_send(e).is_err() {
            tracing::warn!(receiver = %id, "alarm history is full; an entry was not recorded");
        }
    };
    // What the queue holds at start; later items arrive from the intake in memory.
    let mut pending: std::collections::VecDeque<QueueItem> = {
        let q = queue.clone();
        match tokio::task::spawn_blocking(move || q.peek(usize::MAX)).await {
            Ok(Ok(items)) => items.into(),
            Ok(Err(e)) => {
                stats.set_error(Some(format!("reading the queue: {e}")));
                std::collections::VecDeque::new()
            }
            Err(_) => return,
        }
    };
    // Items below `done` are delivered; below `removed` they are gone from the queue.
    let mut done: u64 = 0;
    let mut removed: u64 = 0;
    let mut done_since: Option<tokio::time::Instant> = None;
    'items: loop {
        // Remove what is delivered and checkpointed, in batches.
        let removable = done.min(*committed.borrow());
        if removable > removed {
            let due = removable - removed >= ACK_BATCH
                || done_since.is_some_and(|t| t.elapsed() >= ACK_DELAY);
            if due {
                let q = queue.clone();
                match tokio::task::spawn_blocking(move || q.ack_through(removable - 1)).await {
                    Ok(Ok(_)) => {
                        removed = removable;
                        done_since = (done > removed).then(tokio::time::Instant::now);
                    }
                    Ok(Err(e)) => stats.set_error(Some(format!("removing delivered items: {e}"))),
                    Err(_) => return,
                }
            }
        }
        while let Ok(item) = enqueued.try_recv() {
            pending.push_back(item);
        }
        let dropped_before = stats.dropped_before.load(Ordering::Relaxed);
        while pending
            .front()
            .is_some_and(|i| i.seq < done || i.seq < dropped_before)
        {
            pending.pop_front();
        }
        let Some(item) = pending.pop_front() else {
            stats.set_state("idle");
            let pending_removal = done > removed;
            tokio::select! {
                _ = stop.cancelled() => return,
                i = enqueued.recv() => match i {
                    Some(i) => pending.push_back(i),
                    None => return,
                },
                r = committed.changed(), if pending_removal => if r.is_err() { return },
                _ = tokio::time::sleep(ACK_DELAY), if pending_removal => {
                    done_since = Some(tokio::time::Instant::now() - ACK_DELAY);
                }
            }
            continue;
        };
        let batch = match Batch::decode(&item.payload) {
            Ok(b) => b,
            Err(e) => {
                record(event(
                    "alarm.queue_corrupt",
                    &stats.id,
                    Severity::Critical,
                    json!({"queue_seq": item.seq, "error": e.to_string(),
                           "payload": String::from_utf8_lossy(&item.payload)}),
                ));
                done = item.seq + 1;
                done_since.get_or_insert_with(tokio::time::Instant::now);
                continue;
            }
        };
        stats.set_state("delivering");
        stats
            .oldest_ms
            .store((item.enqueued_us / 1000) as i64, Ordering::Relaxed);
        for d in &batch.deliveries {
            let mut round = 0u32;
            loop {
                round += 1;
                let mut tries = Vec::new();
                let outcome = tokio::select! {
                    _ = stop.cancelled() => return,
                    o = receiver.deliver(d, &mut tries) => o,
                };
                let now = now_ms();
                stats.last_attempt_ms.store(now, Ordering::Relaxed);
                if let Some(off) = receiver.clock_offset_s() {
                    stats.clock_offset_s.store(off, Ordering::Relaxed);
                }
                for t in &tries {
                    stats.attempt(t.result.label());
                    record(try_event(&stats.id, d, t));
                }
                match outcome {
                    Outcome::Delivered { endpoint } => {
                        stats.delivered(1);
                        stats.last_delivered_ms.store(now, Ordering::Relaxed);
                        stats.set_endpoint(&endpoint);
                        stats.set_error(None);
                        break;
                    }
                    Outcome::NotUnderstood { endpoint } => {
                        stats.not_understood();
                        stats.set_endpoint(&endpoint);
                        stats.set_error(Some(format!(
                            "{endpoint} did not understand alarm {} ({} {})",
                            d.alarm_id,
                            d.kind.as_str(),
                            d.phase.as_str()
                        )));
                        record(event(
                            "alarm.not_understood",
                            &stats.id,
                            Severity::Critical,
                            json!({"alarm_id": d.alarm_id, "sensor": d.sensor, "event": d.kind,
                                   "phase": d.phase, "endpoint": endpoint, "target": d.target}),
                        ));
                        break;
                    }
                    Outcome::Failed => {
                        stats.failed_rounds.fetch_add(1, Ordering::Relaxed);
                        stats.set_state("retrying");
                        let last = tries
                            .last()
                            .map(|t| format!("{}: {:?}", t.endpoint, t.result));
                        stats.set_error(last);
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(receiver.backoff(round)) => {}
                        }
                        // `overflow = "drop_oldest"` may have dropped this very item while
                        // it was being retried (already counted and recorded as dropped):
                        // give it up rather than deliver an alarm reported as dropped.
                        if item.seq < stats.dropped_before.load(Ordering::Relaxed) {
                            continue 'items;
                        }
                    }
                }
            }
        }
        done = item.seq + 1;
        done_since.get_or_insert_with(tokio::time::Instant::now);
        let n = batch.deliveries.len() as u64;
        let left = stats.queued.load(Ordering::Relaxed).saturating_sub(n);
        let oldest = if left == 0 {
            0
        } else {
            stats.oldest_ms.load(Ordering::Relaxed)
        };
        stats.set_queue(left, oldest, now_ms());
    }
}
