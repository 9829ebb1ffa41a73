//! The fieldbus worker: RS485/Modbus for the appliance.
//!
//! Role: it is the Rehau Neasmart 2.0 SysBus gateway (the base station polls us as Modbus slave
//! 240/241 over an RTU serial line, or through an RS485-to-Ethernet converter that connects to
//! our Modbus TCP server), and it drives Modbus relay modules as a master. The register model
//! is published on the bus (`<prefix>/neasmart/...`, retained) and commands arrive there, from
//! the REST API in the hub (with a reply) or from any other client; relay channels likewise
//! under `<prefix>/relay/...`.
//!
//! Design: protocol logic is sans-IO (`watchpost-modbus`, `watchpost-neasmart`); this crate
//! only moves bytes. One [`gateway::Gateway`] (register model behind a short-held mutex) is
//! shared by the RTU line task and every TCP connection task; the main loop heartbeats,
//! publishes what changed through a coalescing [`outbox::Outbox`] (so a slow broker never
//! stalls the bus side), expires pending commands, and persists measurement registers to
//! `<data_dir>/fieldbus.redb` at most once per `persist_interval_ms` and only when they changed.
//! Command registers are never persisted. Relay modules are served by one arbiter task per port
//! ([`relays`]).
//!
//! Failure: a peripheral never stops the worker. A serial line that cannot be opened (adapter
//! missing, RS485 mode refused) or fails later, and a TCP address that cannot be bound, are
//! reported as faults of the worker (`WorkerCtx::set_fault`: `/health` degraded with the
//! reason) and retried with backoff inside it, while the rest keeps serving. An unopenable
//! store at start is `Unavailable` (exit 69, restarted with backoff); an invalid configuration
//! is `Config` (78). A broken TCP connection ends only that connection, and half-open ones
//! (a converter that rebooted) are ended by keepalive, the idle timeout, or a new connection
//! at the limit ([`tcp_server`]); an unreachable relay module opens its circuit breaker
//! and the others carry on. Shutdown: on the token the listeners stop, connections finish the
//! request in hand, the last measurements are written (bounded by two seconds), and `run`
//! returns `Ok`.
#![forbid(unsafe_code)]

pub mod error;
pub mod gateway;
pub mod metrics;
pub mod neasmart_bus;
pub mod outbox;
pub mod persist;
pub mod relays;
pub mod rtu_slave;
pub mod tcp_server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use watchpost_bus::{Bus, Message, Retain};
use watchpost_config::Config;
use watchpost_config::fieldbus::NeasmartConfig;
use watchpost_modbus::UnitSet;
use watchpost_neasmart::api::SetpointRange;
use watchpost_neasmart::{Command, Entity, Mode, Model, ModelConfig, State};
use watchpost_runtime::WorkerCtx;

pub use error::FieldbusError;

use crate::gateway::{Gateway, unix_ms_now};
use crate::metrics::GatewayMetrics;
use crate::neasmart_bus::BusSettings;
use crate::outbox::Outbox;
use crate::persist::{RegisterStore, Snapshot};
use crate::relays::Relays;

/// Changes from the bus are published at most this often (bursts coalesce).
const PUBLISH_EVERY: Duration = Duration::from_millis(50);

/// The Neasmart gateway once its devices are open.
struct Neasmart {
    gateway: Arc<Gateway>,
    store: RegisterStore,
    settings: BusSettings,
    persist_interval: Duration,
}

/// Opens the store, restores the measurements, applies the start-up commands, binds the TCP
/// server and opens the serial line. Everything that can fail at start fails here, before
/// readiness.
async fn start_neasmart(
    config: &Config,
    n: &NeasmartConfig,
    ctx: &Arc<WorkerCtx>,
    tasks: &mut JoinSet<()>,
    listeners: &mut Vec<(String, SocketAddr)>,
) -> Result<Neasmart, FieldbusError> {
    let path = config.system.data_dir.join("fieldbus.redb");
    let store = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            RegisterStore::open(path.clone()).map_err(|source| FieldbusError::OpenStore {
                path,
                source: Box::new(source),
            })
        })
        .await
        .map_err(|_| FieldbusError::TaskEnded { task: "store open" })??
    };
    let snapshot = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.load())
            .await
            .map_err(|_| FieldbusError::TaskEnded { task: "store load" })?
            .map_err(|source| FieldbusError::LoadRegisters {
                path: path.clone(),
                source: Box::new(source),
            })?
    };
    let settings = BusSettings {
        range: SetpointRange {
            min_celsius: n.setpoint_min_celsius,
            max_celsius: n.setpoint_max_celsius,
        },
        stale_after: Duration::from_secs(n.stale_after_s),
        command_timeout: Duration::from_secs(n.command_timeout_s),
        startup_global_mode: n.startup_global_mode,
        startup_global_state: n.startup_global_state,
    };
    let mut model = Model::new(ModelConfig {
        command_timeout: settings.command_timeout,
        stale_after: settings.stale_after,
    });
    if let Some(s) = snapshot {
        let restored = model.restore(s.registers);
        tracing::info!(
            restored,
            saved_unix_ms = s.saved_unix_ms,
            "measurement registers restored (command registers start at 0)"
        );
    }
    let now = Instant::now();
    if n.startup_global_mode != 0
        && let Ok(m) = Mode::new(i64::from(n.startup_global_mode))
    {
        model.command(Command::GlobalMode(m), now);
    }
    if n.startup_global_state != 0
        && let Ok(s) = State::new(i64::from(n.startup_global_state))
    {
        model.command(Command::GlobalState(s), now);
    }
    let units: UnitSet = n.unit_ids.iter().map(|u| u.get()).collect();
    let gateway = Arc::new(Gateway::new(
        model,
        units,
        GatewayMetrics::new(ctx.metrics()),
    ));
    if let Some(addr) = n.tcp_listen {
        let addr = addr.addr();
        let settings = tcp_server::TcpSettings {
            max_connections: n.tcp_max_connections,
            frame_timeout: Duration::from_millis(n.tcp_frame_timeout_ms),
            idle_timeout: (n.tcp_idle_timeout_s > 0)
                .then(|| Duration::from_secs(n.tcp_idle_timeout_s)),
            keepalive: (n.tcp_keepalive_s > 0).then(|| Duration::from_secs(n.tcp_keepalive_s)),
            replace_after: Duration::from_secs(n.tcp_replace_after_s),
        };
        let bound = match tcp_server::bind(addr).await {
            Ok(listener) => listener
                .local_addr()
                .map(|a| (listener, a))
                .map_err(|source| FieldbusError::BindTcp { addr, source }),
            Err(e) => Err(e),
        };
        match bound {
            Ok((listener, bound)) => {
                tracing::info!(%bound, units = ?n.unit_ids, "Neasmart Modbus TCP server listening");
                listeners.push(("modbus_tcp".into(), bound));
                tasks.spawn(tcp_server::serve_dedicated(
                    listener,
                    gateway.clone(),
                    settings,
                    ctx.shutdown().clone(),
                ));
            }
            // The port is taken (another process, a previous instance not gone yet): the
            // worker serves the rest and binds again later.
            Err(e) => {
                tasks.spawn(tcp_server::bind_later(
                    addr,
                    e,
                    gateway.clone(),
                    settings,
                    ctx.clone(),
                ));
            }
        }
    }
    if let Some(serial) = &n.serial {
        let board = if serial.rs485 {
            rtu_slave::board_description(&config.system.board)
        } else {
            None
        };
        // A line that cannot be opened (adapter missing) is a fault of the worker, not a
        // reason to stop: Modbus TCP and the API keep serving while it is retried.
        let first = rtu_slave::open_line(serial, board.as_ref());
        match &first {
            Ok(_) => {
                tracing::info!(port = %serial.port.display(), baud = serial.baud.get(), rs485 = serial.rs485, "Neasmart RTU slave on the serial line")
            }
            Err(e) => ctx.set_fault(rtu_slave::fault_subject(serial), e.to_string()),
        }
        tasks.spawn(rtu_slave::serve(
            first,
            serial.clone(),
            board,
            units,
            gateway.clone(),
            ctx.clone(),
        ));
    }
    Ok(Neasmart {
        gateway,
        store,
        settings,
        persist_interval: Duration::from_millis(n.persist_interval_ms),
    })
}

/// Writes the measurement snapshot if any measurement changed.
async fn persist(neasmart: &Neasmart) {
    let snapshot = {
        let mut model = neasmart.gateway.model();
        if !model.take_measurements_dirty() {
            return;
        }
        Snapshot {
            registers: model.measurements(),
            saved_unix_ms: unix_ms_now(),
        }
    };
    let store = neasmart.store.clone();
    let count = snapshot.registers.len();
    match tokio::task::spawn_blocking(move || store.save(&snapshot)).await {
        Ok(Ok(())) => {
            neasmart.gateway.metrics.persist_writes.inc();
            tracing::debug!(registers = count, "measurement registers persisted");
        }
        Ok(Err(e)) => {
            neasmart.gateway.metrics.persist_errors.inc();
            // Try again at the next interval.
            neasmart.gateway.model().mark_measurements_dirty();
            tracing::warn!(error = %e, "persisting measurement registers failed");
        }
        Err(_) => {
            neasmart.gateway.metrics.persist_errors.inc();
            neasmart.gateway.model().mark_measurements_dirty();
        }
    }
}

fn publish_all(bus: &Bus, outbox: &Outbox, n: &Neasmart) {
    neasmart_bus::publish_entities(bus, outbox, &n.gateway, Entity::all());
    neasmart_bus::publish_status(bus, outbox, &n.gateway, &n.settings);
}

async fn subscribe(
    bus: &Bus,
    filter: &str,
) -> Result<tokio::sync::mpsc::Receiver<Message>, FieldbusError> {
    bus.subscribe(filter)
        .await
        .map_err(|source| FieldbusError::Subscribe {
            filter: filter.to_string(),
            source,
        })
}

/// Merges several subscriptions into one channel (the main loop selects on one receiver).
fn merge(
    receivers: Vec<tokio::sync::mpsc::Receiver<Message>>,
    tasks: &mut JoinSet<()>,
) -> tokio::sync::mpsc::Receiver<Message> {
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    for mut r in receivers {
        let tx = tx.clone();
        tasks.spawn(async move {
            while let Some(m) = r.recv().await {
                if tx.send(m).await.is_err() {
                    return;
                }
            }
        });
    }
    rx
}

async fn recv_or_pending(rx: &mut Option<tokio::sync::mpsc::Receiver<Message>>) -> Option<Message> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

type BoardRelays = Vec<watchpost_board::Relay<watchpost_board::BoardPin>>;

/// Opens the board's GPIO relays when a relay module has `board = true`: the description
/// selected by `[system] board` must have a relay for every configured channel. A failure is
/// not fatal: the module then fails every command with the reason (its breaker opens and the
/// API shows the error), and Neasmart and the Modbus modules keep running.
fn open_board_relays(config: &Config) -> Option<Result<BoardRelays, String>> {
    let module = config.fieldbus.relays.iter().find(|m| m.board)?;
    let opened = open_board_relays_of(config, module);
    if let Err(reason) = &opened {
        tracing::error!(module = %module.name, %reason, "the board's relay outputs are unavailable");
    }
    Some(opened)
}

fn open_board_relays_of(
    config: &Config,
    module: &watchpost_config::fieldbus::RelayModuleConfig,
) -> Result<BoardRelays, String> {
    let desc = watchpost_board::detect(Some(&config.system.board)).map_err(|e| e.to_string())?;
    if let Some(c) = module
        .channels
        .iter()
        .find(|c| usize::from(c.channel) > desc.relays.len())
    {
        let names: Vec<&str> = desc.relays.iter().map(|r| r.name.as_str()).collect();
        return Err(format!(
            "channel {} (`{}`) does not exist: board {} has {} relay output(s) [{}]",
            c.channel,
            c.name,
            desc.name,
            desc.relays.len(),
            names.join(", ")
        ));
    }
    let relays_only = watchpost_board::BoardDescription {
        status_led: None,
        button: None,
        watchdog: None,
        ..desc
    };
    let board = match config.system.board_io {
        watchpost_config::BoardIo::Hardware => {
            watchpost_board::Board::open_linux(relays_only, false)
        }
        watchpost_config::BoardIo::Simulated => {
            watchpost_board::Board::simulated(relays_only, &watchpost_board::PinLog::new(), false)
        }
    }
    .map_err(|e| e.to_string())?;
    tracing::info!(board = %board.description.name, relays = board.relays.len(), io = ?config.system.board_io, "board relay outputs opened");
    Ok(board.relays)
}

/// Runs the fieldbus worker until `ctx.shutdown()` is cancelled.
pub async fn run(config: Config, ctx: Arc<WorkerCtx>) -> Result<(), FieldbusError> {
    let fb = config.fieldbus.clone();
    let shutdown = ctx.shutdown().clone();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut listeners: Vec<(String, SocketAddr)> = Vec::new();

    let neasmart = if fb.neasmart.enabled {
        Some(start_neasmart(&config, &fb.neasmart, &ctx, &mut tasks, &mut listeners).await?)
    } else {
        None
    };

    let bus = Bus::connect(&config, "fieldbus", shutdown.clone());
    let outbox = Arc::new(Outbox::new());
    let mut helpers: JoinSet<()> = JoinSet::new();
    {
        let outbox = outbox.clone();
        let bus = bus.clone();
        let shutdown = shutdown.clone();
        helpers.spawn(async move { outbox.run(bus, shutdown).await });
    }
    // Relay lines configured as RS485 switch their transceiver as the board describes.
    let relay_board = fb
        .relays
        .iter()
        .any(|m| m.serial.as_ref().is_some_and(|s| s.rs485))
        .then(|| rtu_slave::board_description(&config.system.board))
        .flatten();
    let board_relays = open_board_relays(&config);
    let relays = Relays::start(
        &fb.relays,
        relay_board.as_ref(),
        board_relays,
        bus.prefix(),
        outbox.clone(),
        ctx.metrics(),
        &shutdown,
        &mut tasks,
    );

    // Subscriptions: Neasmart commands, relay commands, followed topics.
    let mut neasmart_cmds = None;
    if neasmart.is_some() {
        let mut rs = Vec::new();
        for f in &neasmart_bus::command_filters(&bus) {
            rs.push(subscribe(&bus, f).await?);
        }
        neasmart_cmds = Some(merge(rs, &mut helpers));
    }
    let mut relay_cmds = None;
    let relay_filters = relays.command_filters();
    if !relay_filters.is_empty() {
        let mut rs = Vec::new();
        for f in &relay_filters {
            rs.push(subscribe(&bus, f).await?);
        }
        relay_cmds = Some(merge(rs, &mut helpers));
    }
    let mut follow = None;
    let follow_topics = relays.follow_topics();
    if !follow_topics.is_empty() {
        let mut rs = Vec::new();
        for t in &follow_topics {
            rs.push(subscribe(&bus, t).await?);
        }
        follow = Some(merge(rs, &mut helpers));
    }

    if let Some(n) = &neasmart {
        publish_all(&bus, &outbox, n);
    }
    ctx.ready(listeners.iter().map(|(k, a)| (k.clone(), *a)));
    let describe = |stale: bool| {
        let mut parts = Vec::new();
        if let Some(a) = fb.neasmart.tcp_listen.filter(|_| fb.neasmart.enabled) {
            parts.push(format!("modbus tcp {a}"));
        }
        if let Some(s) = fb.neasmart.serial.as_ref().filter(|_| fb.neasmart.enabled) {
            parts.push(format!("rtu {}", s.port.display()));
        }
        if !fb.relays.is_empty() {
            parts.push(format!("{} relay module(s)", fb.relays.len()));
        }
        if fb.neasmart.enabled {
            parts.push(if stale {
                "neasmart data stale".into()
            } else {
                "neasmart data fresh".into()
            });
        }
        parts.join(", ")
    };

    let mut heartbeat = tokio::time::interval(ctx.heartbeat_interval());
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let persist_every = neasmart
        .as_ref()
        .map_or(Duration::from_secs(3600), |n| n.persist_interval);
    let mut persist_tick = tokio::time::interval(persist_every);
    persist_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_stale: Option<bool> = None;
    let mut last_stats = watchpost_neasmart::PendingStats::default();
    let mut publish_due: Option<Instant> = None;
    let mut last_publish = Instant::now();
    let mut was_connected = false;
    let mut last_status = Instant::now();

    let result = loop {
        let expiry = neasmart
            .as_ref()
            .and_then(|n| n.gateway.model().next_expiry());
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            _ = heartbeat.tick() => {
                ctx.heartbeat();
                let connected = bus.is_connected();
                if let Some(n) = &neasmart {
                    let now = Instant::now();
                    let (f, pending, stats) = {
                        let m = n.gateway.model();
                        (m.freshness(now), m.pending_count(), m.stats())
                    };
                    let metrics = &n.gateway.metrics;
                    metrics.pending_writes_ignored.add(stats.writes_ignored.saturating_sub(last_stats.writes_ignored));
                    metrics.pending_expired.add(stats.expired.saturating_sub(last_stats.expired));
                    last_stats = stats;
                    n.gateway.metrics.stale.set(if f.stale { 1.0 } else { 0.0 });
                    n.gateway.metrics.age_seconds.set(f.age.map_or(-1.0, |a| a.as_secs_f64()));
                    n.gateway.metrics.pending_commands.set(pending as f64);
                    if last_stale != Some(f.stale) {
                        if f.stale && last_stale.is_some() {
                            tracing::warn!(stale_after_s = n.settings.stale_after.as_secs(), "no SysBus writes: Neasmart data is stale");
                        }
                        last_stale = Some(f.stale);
                        ctx.status(describe(f.stale));
                        neasmart_bus::publish_status(&bus, &outbox, &n.gateway, &n.settings);
                    } else if now.duration_since(last_status) >= Duration::from_secs(10) {
                        last_status = now;
                        neasmart_bus::publish_status(&bus, &outbox, &n.gateway, &n.settings);
                    }
                    if connected && !was_connected {
                        // The broker may have lost retained state (restart): send it all again.
                        publish_all(&bus, &outbox, n);
                    }
                } else if last_stale.is_none() {
                    last_stale = Some(false);
                    ctx.status(describe(false));
                }
                was_connected = connected;
            }
            _ = async {
                match &neasmart {
                    Some(n) => n.gateway.changed.notified().await,
                    None => std::future::pending().await,
                }
            }, if publish_due.is_none() => {
                // Changes are published at most every PUBLISH_EVERY: a burst of bus writes
                // becomes one publish of each entity it touched.
                publish_due = Some(Instant::now().max(last_publish + PUBLISH_EVERY));
            }
            _ = async {
                match publish_due {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            }, if publish_due.is_some() => {
                publish_due = None;
                last_publish = Instant::now();
                if let Some(n) = &neasmart {
                    let changed = n.gateway.model().take_changed();
                    neasmart_bus::publish_entities(&bus, &outbox, &n.gateway, changed);
                    neasmart_bus::publish_status(&bus, &outbox, &n.gateway, &n.settings);
                    last_status = last_publish;
                }
            }
            _ = persist_tick.tick(), if neasmart.is_some() => {
                if let Some(n) = &neasmart {
                    persist(n).await;
                }
            }
            _ = async {
                match expiry {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            }, if expiry.is_some() => {
                if let Some(n) = &neasmart {
                    let expired = n.gateway.model().expire(Instant::now());
                    for (address, value) in &expired {
                        tracing::warn!(address, value, timeout_s = n.settings.command_timeout.as_secs(), "the base did not read a command in time; bus writes win again");
                    }
                    let entities: Vec<Entity> = expired.iter().filter_map(|(a, _)| Entity::of(*a)).collect();
                    neasmart_bus::publish_entities(&bus, &outbox, &n.gateway, entities);
                    neasmart_bus::publish_status(&bus, &outbox, &n.gateway, &n.settings);
                }
            }
            Some(msg) = recv_or_pending(&mut neasmart_cmds) => {
                if let Some(n) = &neasmart {
                    let handled = neasmart_bus::apply_command(&msg.topic, &msg.payload, bus.prefix(), &n.gateway, &n.settings);
                    if let Some((topic, payload)) = handled.reply {
                        outbox.put_bytes(topic, payload, Retain::No);
                    }
                    if let Some(e) = handled.changed {
                        n.gateway.model().take_changed();
                        neasmart_bus::publish_entities(&bus, &outbox, &n.gateway, [e]);
                        neasmart_bus::publish_status(&bus, &outbox, &n.gateway, &n.settings);
                    }
                }
            }
            Some(msg) = recv_or_pending(&mut relay_cmds) => {
                relays.on_command(&msg.topic, &msg.payload, &outbox);
            }
            Some(msg) = recv_or_pending(&mut follow) => {
                relays.on_follow(&msg.topic, &msg.payload);
            }
            Some(r) = tasks.join_next() => {
                if shutdown.is_cancelled() {
                    continue;
                }
                let task = match r {
                    Ok(()) => "listener or relay port",
                    Err(_) => "listener or relay port (panicked)",
                };
                break Err(FieldbusError::TaskEnded { task });
            }
        }
    };

    // Shutdown: stop everything, write the last measurements.
    shutdown.cancel();
    if let Some(n) = &neasmart {
        let _ = tokio::time::timeout(Duration::from_secs(2), persist(n)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while helpers.join_next().await.is_some() {}
    })
    .await;
    helpers.abort_all();
    result
}
