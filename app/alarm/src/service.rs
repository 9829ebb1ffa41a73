//! The alarm service inside the hub: the async loop that joins intake, rules, ledger, delivery
//! tasks and supervision.
//!
//! Intake, for each batch of inputs (sensor events, due timers, test requests, supervision):
//! 1. the engine turns them into alarms, and each alarm into deliveries per route
//!    ([`crate::routing`]; sensor events pass [`crate::intake`] first);
//! 2. each receiver's deliveries of the batch are enqueued as one durable queue item
//!    ([`crate::ledger`]; SIA sequence numbers are fixed here, so every resend of a delivery
//!    reuses its number), and the receiver's delivery task ([`crate::sender`]) may send them
//!    at once;
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
//!
//! Stopping (the hub's shutdown, or a reload after an API change): the intake takes no more
//! events, the last state is saved, delivery tasks finish the delivery in flight within
//! [`DRAIN_GRACE`] (or abandon it, queued), remove what is delivered and saved, and end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use watchpost_bus::{Bus, Message, Retain};
use watchpost_config::alarms::AlarmsConfig;
use watchpost_contract::alarm::{
    EVENTS, INTAKE_ACK, INTAKE_RESEND, IntakeResend, SENSOR_STATES, SensorEvent, SensorView,
    sensor_state_id,
};
use watchpost_runtime::WorkerCtx;
use watchpost_runtime::logging::LogLimiter;
use watchpost_store::{NewEvent, Severity, Store};

use crate::counters;
use crate::delivery::{Delivery, Source};
use crate::engine::{Alarm, Engine, Rule, Suppressed};
use crate::event::{EventKind, Phase};
use crate::handle::{AlarmHandle, Command, Shared, TestQueued, TestRequest};
use crate::history::{self, event};
use crate::intake::{self, Intake, Verdict};
use crate::ledger::{self, Checkpoint, Ledger, Snapshot};
use crate::managed::load_managed;
use crate::receiver_bus;
use crate::receivers::Receiver;
use crate::routing::Routes;
use crate::sia::{Clock, SystemClock};
use crate::supervision::{self, Indicator};
use crate::{AlarmError, blocking, now_ms};

/// How long delivery tasks may take to finish the delivery in flight when the service stops;
/// after that it is abandoned and stays queued.
pub const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Most sensor events handled as one intake batch.
const BATCH: usize = 256;

/// A reload request's answer.
type ReloadReply = oneshot::Sender<Result<(), AlarmError>>;

/// Runs the alarm service of `handle` until `ctx`'s shutdown (with alarms disabled, only the
/// sensor state cache the API reads). Errors are logged and end the service; the hub keeps
/// serving the rest. After shutdown it returns once the last state is saved, the deliveries in
/// flight are finished or abandoned (within [`DRAIN_GRACE`]) and the last acknowledgement is
/// handed to the bus (within another [`DRAIN_GRACE`]), and logs that it finished.
pub async fn serve(
    handle: AlarmHandle,
    config: Arc<watchpost_config::Config>,
    bus: Bus,
    store: Store,
    ctx: Arc<WorkerCtx>,
) {
    match run(handle, config, bus, store, ctx, Arc::new(SystemClock)).await {
        Ok(()) => tracing::info!("alarm service finished"),
        Err(e) => tracing::error!(error = %e, "alarm service stopped"),
    }
}

/// The service with an explicit clock for SIA timestamps (tests use a skewed one).
pub async fn run(
    handle: AlarmHandle,
    config: Arc<watchpost_config::Config>,
    bus: Bus,
    store: Store,
    ctx: Arc<WorkerCtx>,
    clock: Arc<dyn Clock>,
) -> Result<(), AlarmError> {
    let (mut cmds, _running) = handle.start().ok_or(AlarmError::AlreadyServed)?;
    let shared = handle.shared.clone();
    let shutdown = ctx.shutdown().clone();
    let sensors_task = tokio::spawn(cache_sensor_states(
        bus.clone(),
        shared.clone(),
        shutdown.clone(),
    ));
    // The receivers on the bus: retained statuses and test commands.
    let bus_tasks = [
        tokio::spawn(receiver_bus::publish_statuses(
            bus.clone(),
            shared.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(receiver_bus::serve_tests(
            bus.clone(),
            handle.clone(),
            shutdown.clone(),
        )),
    ];
    if !config.alarms.enabled {
        // No receiver runs: the configured set is empty.
        shared.receivers_loaded.store(true, Ordering::Release);
        answer_disabled(&mut cmds, &shutdown).await;
        let _ = sensors_task.await;
        for t in bus_tasks {
            let _ = t.await;
        }
        return Ok(());
    }
    let filter = bus.topic(&EVENTS);
    let mut events = match bus.subscribe(&filter).await {
        Ok(rx) => rx,
        Err(e) => {
            sensors_task.abort();
            for t in &bus_tasks {
                t.abort();
            }
            return Err(AlarmError::Subscribe {
                filter,
                source: Box::new(e),
            });
        }
    };
    let (history_tx, history_rx) = mpsc::channel::<NewEvent>(history::CAPACITY);
    let history_task = tokio::spawn(history::write(store.clone(), history_rx));
    let result = loop {
        let managed = match blocking({
            let store = store.clone();
            let data_dir = config.system.data_dir.clone();
            move || load_managed(&store, &data_dir)
        })
        .await
        {
            Ok(Ok(m)) => m,
            Ok(Err(e)) | Err(e) => break Err(e),
        };
        let alarms = managed.merged(&config.alarms);
        let mut problems = Vec::new();
        alarms.validate(&mut problems);
        if !problems.is_empty() {
            tracing::error!(?problems, "alarm configuration (file and API) is invalid");
        }
        let started = Run::start(
            &alarms,
            &bus,
            &store,
            &ctx,
            clock.clone(),
            shared.clone(),
            history_tx.clone(),
        )
        .await;
        let mut run = match started {
            Ok(run) => run,
            Err(e) => break Err(e),
        };
        let outcome = run.intake(&mut events, &mut cmds, &shutdown).await;
        run.stop().await;
        match outcome {
            Ok(Some(reply)) => {
                let _ = reply.send(Ok(()));
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    drop(history_tx);
    let _ = history_task.await;
    if result.is_ok() {
        let _ = sensors_task.await;
        for t in bus_tasks {
            let _ = t.await;
        }
    } else {
        sensors_task.abort();
        for t in &bus_tasks {
            t.abort();
        }
    }
    result
}

/// With alarms disabled: answers commands with "disabled" until shutdown.
async fn answer_disabled(cmds: &mut mpsc::Receiver<Command>, shutdown: &CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            c = cmds.recv() => match c {
                Some(Command::Test { reply, .. }) => { let _ = reply.send(Err(AlarmError::Disabled)); }
                Some(Command::Reload { reply }) => { let _ = reply.send(Err(AlarmError::Disabled)); }
                None => return,
            },
        }
    }
}

/// Keeps the latest retained state of every sensor for the API.
async fn cache_sensor_states(bus: Bus, shared: Arc<Shared>, shutdown: CancellationToken) {
    let filter = bus.filter(&SENSOR_STATES);
    let mut rx = match bus.subscribe(&filter).await {
        Ok(rx) => rx,
        Err(e) => {
            tracing::warn!(filter, error = %e, "cannot subscribe to sensor states");
            return;
        }
    };
    let bad = LogLimiter::new(3, Duration::from_secs(60));
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => return,
            m = rx.recv() => match m { Some(m) => m, None => return },
        };
        let Some(id) = state_topic_id(bus.prefix(), &msg.topic) else {
            continue;
        };
        if msg.payload.is_empty() {
            shared
                .sensors
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            continue;
        }
        match msg.json::<SensorView>() {
            Ok(view) => {
                shared
                    .sensors
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, view);
            }
            Err(e) => {
                if let Some(suppressed) = bad.check("sensor state") {
                    tracing::warn!(error = %e, suppressed, "sensor state ignored");
                }
            }
        }
    }
}

/// The `<id>` of `<prefix>/sensors/<id>/state`.
fn state_topic_id(prefix: &str, topic: &str) -> Option<String> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let levels: Vec<&str> = rest.split('/').collect();
    sensor_state_id(&levels).map(str::to_string)
}

/// Publishes the acknowledgement of every saved cursor; ends after the last one once the saver
/// has ended.
async fn publish_acks(bus: Bus, mut saved: watch::Receiver<Option<Source>>) {
    let topic = bus.topic(&INTAKE_ACK);
    while saved.changed().await.is_ok() {
        let Some(cursor) = *saved.borrow_and_update() else {
            continue;
        };
        if let Err(e) = bus
            .publish_json(&topic, &intake::ack(cursor), Retain::No)
            .await
        {
            tracing::warn!(error = %e, "cannot acknowledge sensor events");
        }
    }
}

/// The service with one set of receivers and rules.
struct Run {
    engine: Engine,
    ledger: Ledger,
    routes: Routes,
    intake: Intake,
    bus: Bus,
    shared: Arc<Shared>,
    history: mpsc::Sender<NewEvent>,
    senders: Vec<JoinHandle<()>>,
    /// Delivery tasks take no new item.
    drain: CancellationToken,
    /// Delivery tasks return at once.
    stop: CancellationToken,
    /// The newest state to save; the saver task writes it and then releases what it covers.
    snapshot: watch::Sender<Option<Arc<Snapshot>>>,
    saver: JoinHandle<()>,
    acks: JoinHandle<()>,
    /// Tells the supervisor whether an alarm is active (the status LED).
    ctx: Arc<WorkerCtx>,
    store: Store,
    /// The delivery totals as last saved ([`counters`]).
    saved_totals: counters::Saved,
    indicator: Indicator,
    bad_events: LogLimiter,
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
        let checkpoint = Checkpoint::load(store).await?;
        let (ledger, feeds) = Ledger::open(
            &cfg.receivers,
            store,
            &checkpoint,
            u64::from(cfg.queue_capacity),
            cfg.overflow,
            ctx.metrics(),
        )
        .await?;
        let saved_totals = counters::load(store).await?;
        counters::restore(&ledger.all_stats(), &saved_totals);
        let receivers = (0..ledger.len())
            .map(|slot| Receiver::new(ledger.receiver(slot), &cfg.receivers, bus, clock.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let drain = CancellationToken::new();
        let stop = CancellationToken::new();
        let senders = receivers
            .into_iter()
            .zip(feeds)
            .map(|(receiver, feed)| {
                tokio::spawn(crate::sender::run(
                    receiver,
                    feed,
                    history.clone(),
                    drain.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        *shared.receivers.write().unwrap_or_else(|p| p.into_inner()) = ledger.all_stats();
        shared.receivers_loaded.store(true, Ordering::Release);
        let rules = cfg
            .mappings
            .iter()
            .map(|m| Rule::from_mapping(m, cfg))
            .collect();
        let routes = Routes::new(&cfg.mappings, &ledger);
        if let Some(c) = checkpoint.cursor {
            shared.intake.epoch.store(c.epoch, Ordering::Relaxed);
            shared.intake.last_seq.store(c.seq, Ordering::Relaxed);
        }
        let (snapshot, snapshot_rx) = watch::channel(None);
        let (saved, saved_rx) = watch::channel(None);
        let saver = tokio::spawn(ledger::save_loop(
            store.clone(),
            ledger.committed(),
            snapshot_rx,
            saved,
        ));
        let acks = tokio::spawn(publish_acks(bus.clone(), saved_rx));
        let mut run = Self {
            engine: Engine::new(rules, checkpoint.engine),
            ledger,
            routes,
            intake: Intake::new(checkpoint.cursor),
            bus: bus.clone(),
            shared,
            history,
            senders,
            drain,
            stop,
            snapshot,
            saver,
            acks,
            ctx: ctx.clone(),
            store: store.clone(),
            saved_totals,
            indicator: Indicator::default(),
            bad_events: LogLimiter::new(3, Duration::from_secs(60)),
        };
        run.show_alarm();
        tracing::info!(
            receivers = run.ledger.len(),
            mappings = cfg.mappings.len(),
            cursor = ?run.intake.cursor(),
            "alarm service started"
        );
        run.request_resend(run.intake.resend_request()).await;
        Ok(run)
    }

    /// Saves the last state, lets delivery tasks finish what is in flight within
    /// [`DRAIN_GRACE`], and waits for every task of this run.
    async fn stop(self) {
        let Run {
            ledger,
            store,
            mut saved_totals,
            senders,
            drain,
            stop,
            snapshot,
            saver,
            mut acks,
            ..
        } = self;
        // The saver writes the last snapshot, then ends when its channel closes.
        drop(snapshot);
        let _ = saver.await;
        drain.cancel();
        let deadline = tokio::time::Instant::now() + DRAIN_GRACE;
        let mut senders = senders.into_iter();
        let mut running = Vec::new();
        for mut s in senders.by_ref() {
            if tokio::time::timeout_at(deadline, &mut s).await.is_err() {
                running.push(s);
                break;
            }
        }
        running.extend(senders);
        let abandoned = !running.is_empty();
        stop.cancel();
        for s in running {
            let _ = s.await;
        }
        // The last acknowledgement; a bus client that no longer takes it (the hub is stopping)
        // costs no more than the grace period (the bridge resends, the intake skips repeats).
        if tokio::time::timeout(DRAIN_GRACE, &mut acks).await.is_err() {
            acks.abort();
        }
        // Every delivery task has ended: the totals are final for this run.
        counters::save(
            &store,
            counters::current(&ledger.all_stats()),
            &mut saved_totals,
        )
        .await;
        let queued: u64 = ledger
            .all_stats()
            .iter()
            .map(|s| s.queued.load(Ordering::Relaxed))
            .sum();
        tracing::info!(
            queued,
            abandoned_in_flight = abandoned,
            "alarm delivery stopped; undelivered alarms stay queued"
        );
    }

    fn record(&self, e: NewEvent) {
        if self.history.try_send(e).is_err() {
            self.shared
                .intake
                .history_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Asks the bridge to send sensor events again.
    async fn request_resend(&self, request: IntakeResend) {
        let topic = self.bus.topic(&INTAKE_RESEND);
        if let Err(e) = self.bus.publish_json(&topic, &request, Retain::No).await {
            tracing::warn!(error = %e, "cannot ask the bridge to resend sensor events");
        }
    }

    /// The main loop: returns `Some(reply)` to reload, `None` on shutdown.
    async fn intake(
        &mut self,
        events: &mut mpsc::Receiver<Message>,
        cmds: &mut mpsc::Receiver<Command>,
        shutdown: &CancellationToken,
    ) -> Result<Option<ReloadReply>, AlarmError> {
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let due = self.engine.next_due_ms();
            let until = |d: i64| Duration::from_millis(u64::try_from(d - now_ms()).unwrap_or(0));
            let sleep_for = due.map_or(Duration::from_secs(3600), until);
            // The next NULL message, on its own timer (the tick would add up to a second).
            let null_due = supervision::next_due_ms(&self.ledger);
            let null_in = null_due.map_or(Duration::from_secs(3600), until);
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                m = events.recv() => {
                    let Some(m) = m else { return Ok(None) };
                    let mut msgs = vec![m];
                    while msgs.len() < BATCH {
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
                    let alarms = out.alarms.into_iter().map(|a| (a, None)).collect();
                    self.commit(alarms, out.suppressed, None, Vec::new()).await?;
                }
                _ = tokio::time::sleep(null_in), if null_due.is_some() => self.supervise().await?,
                _ = housekeeping.tick() => self.housekeeping().await?,
            }
        }
    }

    async fn on_messages(&mut self, msgs: Vec<Message>) -> Result<(), AlarmError> {
        let mut alarms = Vec::new();
        let mut suppressed = Vec::new();
        let mut history = Vec::new();
        let mut last_source = None;
        let mut gap = false;
        for m in msgs {
            let ev: SensorEvent = match m.json() {
                Ok(ev) => ev,
                Err(e) => {
                    if let Some(n) = self.bad_events.check("sensor event") {
                        tracing::warn!(error = %e, suppressed = n, "bad sensor event ignored");
                    }
                    continue;
                }
            };
            let stats = &self.shared.intake;
            let source = match self.intake.admit(&ev) {
                Verdict::Duplicate => {
                    stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Verdict::Gap => {
                    gap = true;
                    continue;
                }
                Verdict::Take { source, lost } => {
                    if let Some(lost) = lost {
                        // The bridge no longer has the events in between: record the loss.
                        stats.gaps.fetch_add(1, Ordering::Relaxed);
                        history.push(event(
                            "sensor.events_lost",
                            "bridge",
                            Severity::Critical,
                            json!({"epoch": lost.epoch, "from": lost.from, "to": lost.to}),
                        ));
                    }
                    source
                }
            };
            stats.events.fetch_add(1, Ordering::Relaxed);
            stats.epoch.store(ev.epoch, Ordering::Relaxed);
            stats.last_seq.store(ev.seq, Ordering::Relaxed);
            last_source = Some(source);
            history.push(event(
                "sensor.update",
                &ev.sensor.id,
                Severity::Info,
                json!({"sensor": ev.sensor, "reminder": ev.reminder, "sync": ev.sync, "seq": ev.seq}),
            ));
            let out = self.engine.on_sensor(&ev.sensor, ev.reminder, now_ms());
            alarms.extend(out.alarms.into_iter().map(|a| (a, Some(source))));
            suppressed.extend(out.suppressed);
        }
        if gap && let Some(request) = self.intake.gap_request(tokio::time::Instant::now()) {
            self.request_resend(request).await;
        }
        let r = self.commit(alarms, suppressed, last_source, history).await;
        self.show_alarm();
        r
    }

    /// Steps 1–4 of the module description for one batch; `source` is its last sensor event.
    async fn commit(
        &mut self,
        alarms: Vec<(Alarm, Option<Source>)>,
        suppressed: Vec<Suppressed>,
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
            let planned = self.routes.deliveries(alarm, &mut self.ledger);
            let mut receivers = Vec::new();
            for (slot, d) in planned {
                // After a crash the same sensor event can come again: a receiver whose queue
                // already holds its deliveries is skipped.
                if self.ledger.holds(slot, *src) {
                    continue;
                }
                receivers.push(self.ledger.receiver(slot).id().to_string());
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
        for (slot, (deliveries, src)) in per_slot {
            self.ledger
                .enqueue(slot, deliveries, src, &mut history)
                .await?;
        }
        self.save();
        for e in history {
            self.record(e);
        }
        Ok(())
    }

    /// Hands the current state to the saver task (which coalesces: only the newest matters).
    fn save(&self) {
        let snap = self
            .ledger
            .snapshot(self.engine.state().clone(), self.intake.cursor());
        let _ = self.snapshot.send(Some(Arc::new(snap)));
    }

    async fn test(&mut self, receiver: &str, req: &TestRequest) -> Result<TestQueued, AlarmError> {
        let Some(slot) = self.ledger.slot_of(receiver) else {
            return Err(AlarmError::UnknownReceiver {
                receiver: receiver.to_string(),
            });
        };
        let alarm = self.engine.test_alarm(now_ms());
        let d = self
            .routes
            .test_delivery(slot, req, &alarm, &mut self.ledger)?;
        let mut history = Vec::new();
        let queue_seq = self
            .ledger
            .enqueue_one(slot, d, "alarm.test", &mut history)
            .await?;
        self.save();
        for e in history {
            self.record(e);
        }
        Ok(TestQueued {
            alarm_id: alarm.id,
            receiver: receiver.to_string(),
            queue_seq,
        })
    }

    /// Sends the alarm indicator to the supervisor when it changed.
    fn show_alarm(&mut self) {
        let active = self.engine.alarm_active();
        if self.indicator.update(active) {
            self.ctx.indicators(active, false);
        }
    }

    /// Every second: the indicator, the delivery totals (saved when they changed), NULL
    /// supervision messages for idle SIA receivers, queue age gauges.
    async fn housekeeping(&mut self) -> Result<(), AlarmError> {
        self.show_alarm();
        let totals = counters::current(&self.ledger.all_stats());
        counters::save(&self.store, totals, &mut self.saved_totals).await;
        self.supervise().await
    }

    /// NULL supervision messages for idle SIA receivers (and the queue age gauges).
    async fn supervise(&mut self) -> Result<(), AlarmError> {
        let mut history = Vec::new();
        let r = supervision::supervise(&mut self.ledger, now_ms(), &mut history).await;
        if !history.is_empty() {
            self.save();
        }
        for e in history {
            self.record(e);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU64;

    use watchpost_runtime::testing::HeldPort;
    use watchpost_store::{Overflow, QueueConfig};

    use super::*;

    /// The hub's parts the service needs, with a bus client whose broker refuses every
    /// connection (relay commands are sent into the void and never answered).
    struct Hub {
        _dir: tempfile::TempDir,
        _port: HeldPort,
        config: Arc<watchpost_config::Config>,
        bus: Bus,
        store: Store,
        shutdown: CancellationToken,
        ctx: Arc<WorkerCtx>,
    }

    impl Hub {
        fn new(alarms: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let port = HeldPort::new().unwrap();
            let config = watchpost_config::from_str_with_env(
                &format!(
                    "[system]\ndata_dir = \"/tmp\"\n[bus]\nexternal = \"127.0.0.1:{}\"\n{alarms}",
                    port.port()
                ),
                std::path::Path::new("t.toml"),
                &[],
            )
            .unwrap();
            let shutdown = CancellationToken::new();
            let bus = Bus::connect(&config, "hub", shutdown.clone());
            let store = Store::open(dir.path().join("hub.redb")).unwrap();
            Self {
                _dir: dir,
                _port: port,
                config: Arc::new(config),
                bus,
                store,
                ctx: Arc::new(WorkerCtx::standalone("hub", shutdown.clone())),
                shutdown,
            }
        }

        fn serve(&self, handle: &AlarmHandle) -> JoinHandle<()> {
            tokio::spawn(serve(
                handle.clone(),
                self.config.clone(),
                self.bus.clone(),
                self.store.clone(),
                self.ctx.clone(),
            ))
        }

        /// Cancels the hub's shutdown token and waits for `service` to return (a deadline in
        /// the test's paused time: the hub's own grace period is longer).
        async fn stop(&self, service: JoinHandle<()>) {
            self.shutdown.cancel();
            tokio::time::timeout(Duration::from_secs(5), service)
                .await
                .expect("the alarm service returns within 5 s of the shutdown")
                .unwrap();
        }
    }

    impl Drop for Hub {
        fn drop(&mut self) {
            self.shutdown.cancel();
        }
    }

    /// Waits (in the test's paused time) until `cond` holds.
    async fn wait_until(what: &str, cond: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        while !cond() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    const RELAY: &str = "[alarms]\nenabled = true\n[[alarms.receivers]]\ntype = \"relay\"\n\
                         id = \"outputs\"\nmodule = \"m1\"\ntimeout_ms = 60000\n";

    #[tokio::test(start_paused = true)]
    async fn shutdown_returns_promptly_and_leaves_the_delivery_in_flight_queued() {
        let hub = Hub::new(RELAY);
        let handle = AlarmHandle::new(&hub.config.alarms);
        assert!(!handle.running());
        let service = hub.serve(&handle);
        let request = TestRequest {
            output: Some("siren".into()),
            ..TestRequest::default()
        };
        let queued = handle.test_alarm("outputs", request).await.unwrap();
        assert!(handle.running());
        // The relay command is sent and never answered (it would time out after 60 s).
        wait_until("the delivery", || {
            handle
                .queues()
                .first()
                .is_some_and(|q| q.state == "delivering")
        })
        .await;
        hub.stop(service).await;
        assert!(!handle.running());
        assert!(matches!(
            handle.test_alarm("outputs", TestRequest::default()).await,
            Err(AlarmError::Stopped)
        ));
        // The alarm waits in its queue for the next start, with the state that covers it.
        let queue = hub
            .store
            .queue(
                &ledger::queue_name("outputs"),
                QueueConfig {
                    capacity: NonZeroU64::MIN.saturating_add(99),
                    overflow: Overflow::RejectNew,
                },
            )
            .unwrap();
        let items = queue.peek(usize::MAX).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].seq, queued.queue_seq);
        let saved = Checkpoint::load(&hub.store).await.unwrap();
        assert!(saved.receivers.contains_key("outputs"));
        assert_eq!(saved.cursor, None);
    }

    #[tokio::test(start_paused = true)]
    async fn one_handle_runs_one_service() {
        let hub = Hub::new(RELAY);
        let handle = AlarmHandle::new(&hub.config.alarms);
        let service = hub.serve(&handle);
        wait_until("the service", || handle.running()).await;
        let second = run(
            handle.clone(),
            hub.config.clone(),
            hub.bus.clone(),
            hub.store.clone(),
            hub.ctx.clone(),
            Arc::new(SystemClock),
        )
        .await;
        assert!(matches!(second, Err(AlarmError::AlreadyServed)));
        assert!(handle.running());
        hub.stop(service).await;
    }

    #[tokio::test(start_paused = true)]
    async fn with_alarms_disabled_commands_are_refused_until_shutdown() {
        let hub = Hub::new("[alarms]\nenabled = false\n");
        let handle = AlarmHandle::new(&hub.config.alarms);
        assert!(!handle.enabled());
        let service = hub.serve(&handle);
        assert!(matches!(
            handle.test_alarm("cms", TestRequest::default()).await,
            Err(AlarmError::Disabled)
        ));
        assert!(matches!(handle.reload().await, Err(AlarmError::Disabled)));
        assert!(handle.running());
        assert!(handle.queues().is_empty());
        hub.stop(service).await;
        assert!(!handle.running());
    }
}
