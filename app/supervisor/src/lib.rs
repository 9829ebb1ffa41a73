//! The Watchpost supervisor: `watchpost run --config FILE`.
//!
//! Role: starts every enabled worker as a child process of the same binary
//! (`watchpost worker NAME --config FILE`), in dependency order (the broker first), keeps each
//! one alive, and tells systemd (and the hardware watchdog) whether the appliance is healthy.
//! The contract with workers is written down in `docs/supervisor.md`.
//!
//! Design: each worker gets one end of a Unix socketpair as its stdin; readiness, heartbeats,
//! status lines, metrics and fatal reasons arrive on it as frames (`watchpost_runtime::proto`),
//! and the hub asks for a [`Snapshot`] over the same channel to answer `/health` and
//! `/metrics`. All decisions about one worker (timeouts, backoff, restart budget) are made by
//! the pure [`slot::Slot`]; this module only does the I/O. Port 0 in a listen address is
//! resolved to a free port once at start and handed to every worker as an environment
//! override, so restarts keep the same addresses; `<data_dir>/run/listeners.json` records them.
//! The board's status LED and user button are opened in [`board`] and driven from the loop by
//! `panel` (the LED's state, the button's gestures); the factory reset a gesture asks for,
//! and the question to the hub that must come first, are in [`reset`].
//!
//! Failure: a crashing, exiting or silent worker is killed (SIGKILL) and restarted with
//! exponential backoff; an exit with the configuration code (78) is reported as failed and not
//! restarted; exhausting the restart budget marks the worker failed and retries it much later.
//! `WATCHDOG=1` (and the hardware watchdog keepalive) are sent only while every essential
//! worker is healthy, so a wedged appliance is restarted by systemd or reset by the board. A
//! peripheral fault never stops them: workers report what they cannot use as faults while
//! they keep running (`/health` degraded), and an essential worker out because of a missing
//! device or port (exit 69) or its configuration (78) does not hold them back either.
//!
//! Shutdown: on SIGTERM/SIGINT the workers get SIGTERM in reverse start order (the broker
//! last), each within the grace period, then SIGKILL; children also carry PR_SET_PDEATHSIG so
//! none outlives a supervisor that is killed outright.

#![forbid(unsafe_code)]

pub mod board;
mod panel;
pub mod reset;
pub mod slot;

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::unistd::Pid;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{Mutex, mpsc, watch};
use tokio_util::sync::CancellationToken;
use watchpost_config::Config;
use watchpost_runtime::proto::{
    self, ApplyReport, ENV_CONFIG_FILE, ENV_HEARTBEAT_MS, ENV_SUPERVISED, ENV_SUPERVISOR_PID,
    Snapshot, SupervisorMsg, WorkerMsg, WorkerState, WorkerStatus,
};
use watchpost_runtime::{BuildInfo, ExitCode};

use crate::slot::{Action, Ending, Policy, Slot};

/// A program the supervisor starts workers through (`WRAPPER EXE worker NAME ...`); unset in
/// production. `make bench-board` sets it to `scripts/cross/run-aarch64` to run the aarch64
/// appliance under qemu-user.
pub const ENV_WORKER_WRAPPER: &str = "WATCHPOST_WORKER_WRAPPER";

/// How often the supervisor re-evaluates every worker.
const TICK: Duration = Duration::from_millis(50);

/// Why the supervisor could not run.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("finding the watchpost executable: {0}")]
    CurrentExe(#[source] std::io::Error),
    #[error("creating the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("resolving port 0 for {key} ({addr}): {source}")]
    ResolvePort {
        key: String,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("opening the hardware watchdog: {0}")]
    HardwareWatchdog(#[source] watchpost_board::watchdog::WatchdogError),
    #[error("no worker is enabled in the configuration")]
    NothingToRun,
}

impl SupervisorError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            SupervisorError::CurrentExe(_) => ExitCode::Failure,
            SupervisorError::DataDir { .. } => ExitCode::Unavailable,
            SupervisorError::ResolvePort { .. } => ExitCode::Unavailable,
            SupervisorError::HardwareWatchdog(_) => ExitCode::Unavailable,
            SupervisorError::NothingToRun => ExitCode::Config,
        }
    }
}

enum Event {
    Msg {
        name: String,
        generation: u64,
        msg: WorkerMsg,
    },
    Ended {
        name: String,
        generation: u64,
        ending: Ending,
    },
}

struct Supervisor {
    exe: PathBuf,
    config_path: PathBuf,
    config: Config,
    policy: Policy,
    build: BuildInfo,
    order: Vec<&'static str>,
    slots: HashMap<String, Slot>,
    writers: HashMap<String, Arc<Mutex<OwnedWriteHalf>>>,
    listener_env: Vec<(String, String)>,
    listeners: BTreeMap<String, String>,
    run_dir: PathBuf,
    started: Instant,
    events_tx: mpsc::UnboundedSender<Event>,
    notified_ready: bool,
    last_status_line: String,
    watchdog_pets: u64,
    panel: board::Panel,
    /// The latest `Indicators` of each worker: (alarm, updating).
    indicators: HashMap<String, (bool, bool)>,
    /// The latest warnings and errors of every worker and the supervisor, oldest first.
    recent_logs: std::collections::VecDeque<watchpost_runtime::proto::LogLine>,
    /// The supervisor's own log lines already taken into `recent_logs`.
    own_logs_seen: u64,
    shutdown: CancellationToken,
    /// Verdicts on confirmed factory resets, from the task that asks the hub.
    reset_verdicts: mpsc::UnboundedSender<reset::Verdict>,
    /// A confirmed factory reset waits for its verdict.
    reset_checking: bool,
    /// Ports resolved from port 0, held for as long as the supervisor runs.
    held_ports: Vec<watchpost_runtime::net::HeldPort>,
    /// Workers being stopped on purpose to apply new settings.
    stopping: HashMap<String, Stopping>,
    /// A worker asked for the appliance to restart (ONVIF SystemReboot); carried out by the
    /// loop: every worker stopped, then started again.
    restart_requested: Option<String>,
}

/// A worker being stopped to apply new settings, and what follows its exit.
#[derive(Debug)]
struct Stopping {
    /// The process being stopped (an event of another generation is not its exit).
    generation: u64,
    /// SIGTERM at this time: the worker that asked for the apply hears the answer first.
    term_at: Instant,
    termed: bool,
    /// SIGKILL after this (the grace period after SIGTERM).
    kill_at: Instant,
    /// Start it again with the new configuration; `false`: it is disabled, drop its slot.
    then_start: bool,
}

/// How long the worker that asked for an apply has to pass the answer on before its own
/// SIGTERM (when it is among the restarted).
const REQUESTER_TERM_DELAY: Duration = Duration::from_millis(300);

fn policy_from(config: &Config) -> Policy {
    let s = &config.supervisor;
    Policy {
        heartbeat_timeout: Duration::from_millis(s.heartbeat_timeout_ms),
        ready_timeout: Duration::from_millis(s.ready_timeout_ms),
        backoff_initial: Duration::from_millis(s.backoff_initial_ms),
        backoff_max: Duration::from_millis(s.backoff_max_ms),
        stable_after: Duration::from_millis(s.stable_after_ms),
        restart_budget: s.restart_budget,
        restart_window: Duration::from_secs(s.restart_window_s),
        failed_retry: Duration::from_secs(s.failed_retry_s),
    }
}

/// Environment overrides handing resolved addresses to workers, the address map, and the
/// ports held for them.
type ResolvedListeners = (
    Vec<(String, String)>,
    BTreeMap<String, String>,
    Vec<watchpost_runtime::net::HeldPort>,
);

/// Resolves every port-0 listen address to a concrete free port, held (bound with
/// `SO_REUSEADDR`, never listening) for as long as the supervisor runs: the worker binds and
/// listens on it beside the held socket, and when the worker restarts the port is still ours,
/// where a port found by binding and closing could be taken by anything in between. Returns
/// the environment overrides that hand the resolved addresses to the workers, the address
/// map, and the held ports.
fn resolve_listeners(config: &mut Config) -> Result<ResolvedListeners, SupervisorError> {
    let mut env = Vec::new();
    let mut map = BTreeMap::new();
    let mut held = Vec::new();
    for (key, addr) in config.listeners_mut() {
        if addr.port() == 0 {
            let port = watchpost_runtime::net::HeldPort::on(addr.addr()).map_err(|source| {
                SupervisorError::ResolvePort {
                    key: key.to_string(),
                    addr: addr.addr(),
                    source,
                }
            })?;
            let real = port.addr();
            held.push(port);
            *addr = watchpost_config::ListenAddr::new(real);
            let var = format!(
                "{}{}",
                watchpost_config::ENV_PREFIX,
                key.to_ascii_uppercase().replace('.', "__")
            );
            env.push((var, format!("\"{real}\"")));
        }
        map.insert(key.to_string(), addr.to_string());
    }
    Ok((env, map, held))
}

/// Warnings and errors the supervisor keeps for the setup page.
const RECENT_LOGS: usize = 200;

/// Runs the supervisor until `shutdown` is cancelled. `config_path` is handed to the workers.
pub async fn run(
    mut config: Config,
    config_path: &Path,
    build: BuildInfo,
    shutdown: CancellationToken,
) -> Result<(), SupervisorError> {
    let exe = std::env::current_exe().map_err(SupervisorError::CurrentExe)?;
    let order = config.enabled_workers();
    if order.is_empty() {
        return Err(SupervisorError::NothingToRun);
    }
    let run_dir = config.system.data_dir.join("run");
    std::fs::create_dir_all(&run_dir).map_err(|source| SupervisorError::DataDir {
        path: run_dir.clone(),
        source,
    })?;
    // The held ports live in the supervisor, that is as long as it runs.
    let (listener_env, listeners, held_ports) = resolve_listeners(&mut config)?;
    let policy = policy_from(&config);
    let essential = config.supervisor.essential.clone();
    let slots = order
        .iter()
        .map(|n| {
            let mut s = Slot::new(n, essential.iter().any(|e| e == n), &policy);
            s.next_start = Some(Instant::now());
            (n.to_string(), s)
        })
        .collect();
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let (reset_verdicts, mut reset_verdicts_rx) = mpsc::unbounded_channel();

    // The board: status LED, user button, and its watchdog unless one is given by hand.
    let (mut panel, board_watchdog) = board::Panel::open(&config);
    let mut button_actions = panel.take_actions();
    let mut sim_button_signal = if panel.has_simulated_button() {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()).ok()
    } else {
        None
    };

    // The hardware watchdog, petted by its own loop while `healthy` is true.
    let (healthy_tx, healthy_rx) = watch::channel(true);
    let wd_shutdown = CancellationToken::new();
    let wd_task = match &config.supervisor.hardware_watchdog {
        None => board_watchdog.map(|(wd, timeout_s)| {
            let stop = wd_shutdown.clone();
            tokio::spawn(watchpost_board::watchdog::keepalive_loop(
                wd,
                watchpost_board::watchdog::keepalive_period(timeout_s),
                healthy_rx,
                async move { stop.cancelled().await },
            ))
        }),
        Some(hw) => {
            let wd = watchpost_board::watchdog::LinuxWatchdog::open(&hw.device, hw.timeout_s)
                .map_err(SupervisorError::HardwareWatchdog)?;
            let period = watchpost_board::watchdog::keepalive_period(hw.timeout_s);
            let stop = wd_shutdown.clone();
            tracing::info!(device = %hw.device.display(), timeout_s = hw.timeout_s, "hardware watchdog armed");
            Some(tokio::spawn(watchpost_board::watchdog::keepalive_loop(
                Box::new(wd),
                period,
                healthy_rx,
                async move { stop.cancelled().await },
            )))
        }
    };

    let mut sup = Supervisor {
        exe,
        config_path: config_path.to_path_buf(),
        config,
        policy,
        build,
        order,
        slots,
        writers: HashMap::new(),
        listener_env,
        listeners,
        run_dir,
        started: Instant::now(),
        events_tx,
        notified_ready: false,
        last_status_line: String::new(),
        watchdog_pets: 0,
        panel,
        indicators: HashMap::new(),
        recent_logs: std::collections::VecDeque::new(),
        own_logs_seen: 0,
        shutdown: shutdown.clone(),
        reset_verdicts,
        reset_checking: false,
        held_ports,
        stopping: HashMap::new(),
        restart_requested: None,
    };
    sup.write_listeners();
    let watchdog_interval = systemd_watchdog_interval();
    let mut last_pet = Instant::now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(workers = ?sup.order, "supervisor started");

    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(ev) = events_rx.recv() => {
                sup.handle(ev);
                if let Some(why) = sup.restart_requested.take() {
                    sup.restart_appliance(&why, &mut events_rx).await;
                }
            }
            Some(action) = recv_or_pending(&mut button_actions) => sup.on_button(action),
            Some(verdict) = reset_verdicts_rx.recv() => {
                sup.on_reset_verdict(verdict, &mut events_rx).await;
            }
            Some(()) = signal_or_pending(&mut sim_button_signal) => {
                sup.panel.toggle_simulated_button();
            }
            _ = tick.tick() => {
                sup.evaluate().await;
                let state = sup.appliance_state();
                sup.panel.show(state);
                let healthy = sup.essential_healthy();
                let _ = healthy_tx.send(healthy);
                if let Some(iv) = watchdog_interval
                    && healthy && last_pet.elapsed() >= iv
                {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                    sup.watchdog_pets += 1;
                    last_pet = Instant::now();
                }
                sup.notify_status();
            }
        }
    }

    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    sup.stop_all(&mut events_rx).await;
    wd_shutdown.cancel();
    if let Some(t) = wd_task
        && let Ok(Err(e)) = t.await
    {
        tracing::warn!(error = %e, "hardware watchdog did not close cleanly");
    }
    tracing::info!("supervisor stopped");
    Ok(())
}

async fn recv_or_pending<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn signal_or_pending(sig: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match sig {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// Half of systemd's WatchdogSec, when the unit sets one.
fn systemd_watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    Some(Duration::from_micros(usec / 2))
}

impl Supervisor {
    /// Whether the appliance counts as alive for readiness and the watchdogs: every essential
    /// worker is healthy or out for a reason a reset cannot fix ([`Slot::keeps_watchdog`]).
    /// Faults that running workers report (a missing adapter) never count against it.
    fn essential_healthy(&self) -> bool {
        let now = Instant::now();
        self.slots
            .values()
            .filter(|s| s.essential)
            .all(|s| s.keeps_watchdog(now, &self.policy))
    }

    fn handle(&mut self, ev: Event) {
        let now = Instant::now();
        match ev {
            Event::Msg {
                name,
                generation,
                msg,
            } => {
                let Some(slot) = self.slots.get_mut(&name) else {
                    return;
                };
                if slot.generation != generation {
                    return;
                }
                match msg {
                    WorkerMsg::Ready { listeners } => {
                        slot.ready(now);
                        tracing::info!(worker = %name, pid = ?slot.pid, "worker ready");
                        for (k, v) in listeners {
                            self.listeners.insert(format!("{name}.{k}"), v);
                        }
                        self.write_listeners();
                    }
                    WorkerMsg::Heartbeat => slot.heartbeat(now),
                    WorkerMsg::Status { text } => slot.status_text = Some(text),
                    WorkerMsg::Faults { faults } => {
                        if faults.is_empty() && !slot.faults.is_empty() {
                            tracing::info!(worker = %name, "worker reports no fault any more");
                        }
                        for f in faults.iter().filter(|f| !slot.faults.contains(f)) {
                            tracing::warn!(worker = %name, subject = %f.subject, reason = %f.reason, "worker reports a fault (degraded)");
                        }
                        slot.faults = faults;
                    }
                    WorkerMsg::Metrics { text } => slot.metrics_text = text,
                    WorkerMsg::Fatal { kind, reason } => slot.fatal_reason = Some((kind, reason)),
                    WorkerMsg::Logs { lines } => {
                        self.recent_logs.extend(lines);
                        self.trim_logs();
                    }
                    WorkerMsg::Indicators { alarm, updating } => {
                        self.indicators.insert(name.clone(), (alarm, updating));
                    }
                    WorkerMsg::Query { id } => {
                        let snapshot = self.snapshot();
                        self.reply(&name, SupervisorMsg::Snapshot { id, snapshot });
                    }
                    WorkerMsg::ApplyConfig { id } => {
                        let report = self.apply_config(&name);
                        self.reply(&name, SupervisorMsg::Applied { id, report });
                    }
                    WorkerMsg::RestartAppliance { reason } => {
                        self.restart_requested = Some(format!("{name}: {reason}"));
                    }
                }
            }
            Event::Ended {
                name,
                generation,
                ending,
            } if self
                .stopping
                .get(&name)
                .is_some_and(|st| st.generation == generation) =>
            {
                let then_start = self.stopping.remove(&name).is_some_and(|st| st.then_start);
                self.writers.remove(&name);
                self.indicators.remove(&name);
                if then_start {
                    if let Some(slot) = self.slots.get_mut(&name) {
                        slot.ended(ending, now, &self.policy, true);
                        slot.next_start = Some(now);
                    }
                    tracing::info!(worker = %name, "worker stopped to apply new settings; starting it again");
                } else {
                    self.slots.remove(&name);
                    self.order.retain(|n| *n != name);
                    tracing::info!(worker = %name, "worker disabled by new settings; stopped");
                }
            }
            Event::Ended {
                name,
                generation,
                ending,
            } => {
                let Some(slot) = self.slots.get_mut(&name) else {
                    return;
                };
                if slot.generation != generation {
                    return;
                }
                slot.ended(ending, now, &self.policy, false);
                self.writers.remove(&name);
                self.indicators.remove(&name);
            }
        }
    }

    /// Writes `msg` to worker `name` (without holding up the loop).
    fn reply(&self, name: &str, msg: SupervisorMsg) {
        if let Some(w) = self.writers.get(name).cloned() {
            tokio::spawn(async move {
                let mut w = w.lock().await;
                let _ = proto::write_frame_async(&mut *w, &msg).await;
            });
        }
    }

    /// Loads the configuration again (file, settings overlay, environment with the resolved
    /// listeners) and restarts, starts and stops the workers whose sections or `enabled`
    /// changed ([`watchpost_config::apply`]). Nothing happens when it does not load. The
    /// sections the supervisor reads itself keep their running values until the appliance
    /// restarts; the report says which changed.
    fn apply_config(&mut self, requester: &str) -> ApplyReport {
        let mut env: Vec<(String, String)> = std::env::vars().collect();
        env.extend(self.listener_env.iter().cloned());
        let mut new = match watchpost_config::load_with_env(&self.config_path, &env) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "new settings not applied: the configuration does not load");
                return ApplyReport {
                    error: Some(e.to_string()),
                    ..Default::default()
                };
            }
        };
        // A newly enabled listener on port 0 gets a held port, as at start.
        let (more_env, more_listeners, more_held) = match resolve_listeners(&mut new) {
            Ok(r) => r,
            Err(e) => {
                return ApplyReport {
                    error: Some(e.to_string()),
                    ..Default::default()
                };
            }
        };
        new.system = self.config.system.clone();
        new.supervisor = self.config.supervisor.clone();
        let plan = watchpost_config::apply::plan(&self.config, &new);
        self.listener_env.extend(more_env);
        self.held_ports.extend(more_held);
        for (k, v) in more_listeners {
            self.listeners.entry(k).or_insert(v);
        }
        self.config = new;
        let now = Instant::now();
        let grace = Duration::from_millis(self.config.supervisor.stop_grace_ms);
        for (names, then_start) in [(&plan.restart, true), (&plan.stop, false)] {
            for name in names {
                let term_at = if *name == requester {
                    now + REQUESTER_TERM_DELAY
                } else {
                    now
                };
                self.begin_stop(name, then_start, term_at, grace);
            }
        }
        let essential = self.config.supervisor.essential.clone();
        for name in &plan.start {
            let mut slot = Slot::new(name, essential.iter().any(|e| e == name), &self.policy);
            slot.next_start = Some(now);
            self.slots.insert(name.to_string(), slot);
        }
        self.order = watchpost_config::WORKERS
            .iter()
            .copied()
            .filter(|w| self.slots.contains_key(*w))
            .collect();
        tracing::info!(
            changed = ?plan.changed_sections,
            restart = ?plan.restart,
            start = ?plan.start,
            stop = ?plan.stop,
            needs_appliance_restart = ?plan.needs_appliance_restart,
            "applying new settings"
        );
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        ApplyReport {
            changed_sections: plan.changed_sections,
            restarted: names(&plan.restart),
            started: names(&plan.start),
            stopped: names(&plan.stop),
            needs_appliance_restart: plan.needs_appliance_restart,
            error: None,
        }
    }

    /// Stops `name` to apply new settings: SIGTERM at `term_at`, SIGKILL after the grace; then
    /// starts it again or drops it. A worker without a process (backoff, failed) goes straight
    /// to that.
    fn begin_stop(&mut self, name: &str, then_start: bool, term_at: Instant, grace: Duration) {
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        if slot.pid.is_some() {
            slot.kill_requested("stopped to apply new settings".into());
            self.stopping.insert(
                name.to_string(),
                Stopping {
                    generation: slot.generation,
                    term_at,
                    termed: false,
                    kill_at: term_at + grace,
                    then_start,
                },
            );
        } else if then_start {
            slot.next_start = Some(Instant::now());
        } else {
            self.slots.remove(name);
        }
    }

    /// Sends the SIGTERMs and SIGKILLs of the workers being stopped to apply new settings.
    fn drive_stopping(&mut self, now: Instant) {
        for (name, st) in &mut self.stopping {
            let Some(pid) = self.slots.get(name).and_then(|s| s.pid) else {
                continue;
            };
            if !st.termed && now >= st.term_at {
                st.termed = true;
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            } else if st.termed && now >= st.kill_at {
                tracing::warn!(worker = %name, pid, "did not stop within the grace period; SIGKILL");
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                st.kill_at = now + Duration::from_secs(3600);
            }
        }
    }

    fn deps_ready(&self, name: &str) -> bool {
        self.config
            .dependencies(name)
            .iter()
            .all(|d| self.slots.get(*d).is_none_or(|s| s.ever_ready))
    }

    async fn evaluate(&mut self) {
        let now = Instant::now();
        self.drive_stopping(now);
        let names: Vec<&'static str> = self.order.clone();
        for name in names {
            let deps = self.deps_ready(name);
            let Some(slot) = self.slots.get(name) else {
                continue;
            };
            match slot.tick(now, &self.policy, deps, false) {
                Action::None => {}
                Action::Start => self.start(name),
                Action::Kill(reason) => {
                    let slot = self.slots.get_mut(name).expect("slot exists");
                    tracing::warn!(worker = name, pid = ?slot.pid, %reason, "killing worker");
                    if let Some(pid) = slot.pid {
                        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                    }
                    slot.kill_requested(reason);
                }
            }
        }
    }

    fn start(&mut self, name: &str) {
        let now = Instant::now();
        match self.spawn(name) {
            Ok((pid, generation_ready)) => {
                let slot = self.slots.get_mut(name).expect("slot exists");
                slot.count_restart();
                slot.spawned(pid, now);
                debug_assert_eq!(slot.generation, generation_ready);
                tracing::info!(
                    worker = name,
                    pid,
                    restarts = slot.restarts,
                    "worker started"
                );
            }
            Err(e) => {
                let slot = self.slots.get_mut(name).expect("slot exists");
                tracing::error!(worker = name, error = %e, "cannot start worker");
                slot.spawn_failed(format!("spawn failed: {e}"), now, &self.policy);
            }
        }
    }

    /// Spawns the worker process and the tasks that read its channel and wait for its exit.
    fn spawn(&mut self, name: &str) -> std::io::Result<(u32, u64)> {
        let generation = self.slots.get(name).map(|s| s.generation + 1).unwrap_or(1);
        let (ours, theirs): (OwnedFd, OwnedFd) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(std::io::Error::from)?;
        // An emulator in front of the workers (`qemu-aarch64 -L sysroot`), for running a
        // cross-built appliance under qemu-user on a build machine without binfmt_misc.
        let mut cmd = match std::env::var_os(ENV_WORKER_WRAPPER).filter(|w| !w.is_empty()) {
            Some(wrapper) => {
                let mut c = tokio::process::Command::new(wrapper);
                c.arg(&self.exe);
                c
            }
            None => tokio::process::Command::new(&self.exe),
        };
        cmd.arg("worker")
            .arg(name)
            .arg("--config")
            .arg(&self.config_path)
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .env(ENV_SUPERVISED, "1")
            .env(ENV_CONFIG_FILE, &self.config_path)
            .env(ENV_SUPERVISOR_PID, std::process::id().to_string())
            .env(
                ENV_HEARTBEAT_MS,
                self.config.supervisor.heartbeat_interval_ms.to_string(),
            )
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .kill_on_drop(false);
        for (k, v) in &self.listener_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let pid = child.id().unwrap_or(0);

        let std_stream = std::os::unix::net::UnixStream::from(ours);
        std_stream.set_nonblocking(true)?;
        let stream = tokio::net::UnixStream::from_std(std_stream)?;
        let (mut read_half, write_half) = stream.into_split();
        self.writers
            .insert(name.to_string(), Arc::new(Mutex::new(write_half)));

        let tx = self.events_tx.clone();
        let n = name.to_string();
        // The channel reader tells the exit waiter when it has passed on the last frame, so
        // a worker's last words (its `Fatal` reason) are handled before its exit.
        let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _drained = drained_tx;
            loop {
                match proto::read_frame_async::<WorkerMsg>(&mut read_half).await {
                    Ok(Some(msg)) => {
                        if tx
                            .send(Event::Msg {
                                name: n.clone(),
                                generation,
                                msg,
                            })
                            .is_err()
                        {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(worker = %n, error = %e, "bad frame from worker; closing its channel");
                        break;
                    }
                }
            }
        });
        let tx = self.events_tx.clone();
        let n = name.to_string();
        tokio::spawn(async move {
            let ending = match child.wait().await {
                Ok(status) => {
                    use std::os::unix::process::ExitStatusExt;
                    match (status.code(), status.signal()) {
                        (Some(c), _) => Ending::Exited(c),
                        (None, Some(sig)) => Ending::Signalled(
                            Signal::try_from(sig)
                                .map(|s| s.as_str().to_string())
                                .unwrap_or_else(|_| format!("signal {sig}")),
                        ),
                        (None, None) => Ending::Exited(-1),
                    }
                }
                Err(e) => Ending::Signalled(format!("wait failed: {e}")),
            };
            // The socket closes with the process (unless a child of the worker inherited it,
            // hence the bound).
            let _ = tokio::time::timeout(Duration::from_secs(1), drained_rx).await;
            let _ = tx.send(Event::Ended {
                name: n,
                generation,
                ending,
            });
        });
        Ok((pid, generation))
    }

    /// Keeps the newest [`RECENT_LOGS`] lines.
    fn trim_logs(&mut self) {
        while self.recent_logs.len() > RECENT_LOGS {
            self.recent_logs.pop_front();
        }
    }

    fn snapshot(&mut self) -> Snapshot {
        let (own, newest) = watchpost_runtime::logging::recent_since(self.own_logs_seen);
        self.own_logs_seen = newest;
        self.recent_logs.extend(own);
        self.trim_logs();
        let mut recent_logs: Vec<_> = self.recent_logs.iter().cloned().collect();
        recent_logs.sort_by_key(|l| l.ts_ms);
        let now = Instant::now();
        let workers = self
            .order
            .iter()
            .filter_map(|n| self.slots.get(*n))
            .map(|s| WorkerStatus {
                name: s.name.clone(),
                state: s.state,
                essential: s.essential,
                pid: s.pid,
                restarts: s.restarts,
                heartbeat_age_ms: s
                    .last_heartbeat
                    .map(|t| now.duration_since(t).as_millis() as u64),
                last_error: s.last_error.clone(),
                status_text: s.status_text.clone(),
                faults: s.faults.clone(),
            })
            .collect::<Vec<_>>();
        let worker_metrics = self
            .slots
            .values()
            .filter(|s| !s.metrics_text.is_empty())
            .map(|s| (s.name.clone(), s.metrics_text.clone()))
            .collect();
        Snapshot {
            supervisor_pid: std::process::id(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            supervisor_metrics: self.metrics_text(&workers),
            workers,
            worker_metrics,
            listeners: self.listeners.clone(),
            board: Some(self.panel.view()),
            recent_logs,
        }
    }

    fn metrics_text(&self, workers: &[WorkerStatus]) -> String {
        let r = watchpost_runtime::Registry::new();
        r.gauge(
            "watchpost_build_info",
            "Build of the running firmware (always 1).",
            &[
                ("version", self.build.version),
                ("git_sha", self.build.git_sha),
                ("target", self.build.target),
            ],
        )
        .set(1.0);
        r.gauge(
            "watchpost_uptime_seconds",
            "Seconds since the supervisor started.",
            &[],
        )
        .set(self.started.elapsed().as_secs_f64());
        r.counter(
            "watchpost_watchdog_pets_total",
            "WATCHDOG=1 notifications sent to systemd.",
            &[],
        )
        .add(self.watchdog_pets);
        for w in workers {
            let l = [("worker", w.name.as_str())];
            r.gauge(
                "watchpost_worker_up",
                "1 while the worker is running and sending heartbeats.",
                &l,
            )
            .set(if w.state == WorkerState::Running {
                1.0
            } else {
                0.0
            });
            r.counter(
                "watchpost_worker_restarts_total",
                "Restarts of the worker since the supervisor started.",
                &l,
            )
            .add(u64::from(w.restarts));
            if let Some(age) = w.heartbeat_age_ms {
                r.gauge(
                    "watchpost_worker_heartbeat_age_seconds",
                    "Seconds since the worker's last heartbeat.",
                    &l,
                )
                .set(age as f64 / 1000.0);
            }
            for st in [
                WorkerState::Starting,
                WorkerState::Running,
                WorkerState::Backoff,
                WorkerState::Failed,
                WorkerState::Stopped,
            ] {
                r.gauge(
                    "watchpost_worker_state",
                    "1 for the worker's current lifecycle state.",
                    &[("worker", w.name.as_str()), ("state", st.as_str())],
                )
                .set(if w.state == st { 1.0 } else { 0.0 });
            }
        }
        r.render()
    }

    fn write_listeners(&self) {
        let path = self.run_dir.join("listeners.json");
        let tmp = self.run_dir.join("listeners.json.tmp");
        let body = serde_json::to_vec_pretty(&self.listeners).unwrap_or_default();
        if let Err(e) = std::fs::write(&tmp, body).and_then(|_| std::fs::rename(&tmp, &path)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write listeners file");
        }
    }

    fn notify_status(&mut self) {
        let now = Instant::now();
        let running = self
            .slots
            .values()
            .filter(|s| s.healthy(now, &self.policy))
            .count();
        let failed: Vec<&str> = self
            .order
            .iter()
            .filter(|n| {
                self.slots
                    .get(**n)
                    .is_some_and(|s| s.state == WorkerState::Failed)
            })
            .copied()
            .collect();
        let mut line = format!("{running}/{} workers healthy", self.slots.len());
        if !failed.is_empty() {
            line.push_str(&format!("; failed: {}", failed.join(", ")));
        }
        let degraded: Vec<&str> = self
            .order
            .iter()
            .filter(|n| self.slots.get(**n).is_some_and(|s| !s.faults.is_empty()))
            .copied()
            .collect();
        if !degraded.is_empty() {
            line.push_str(&format!("; degraded: {}", degraded.join(", ")));
        }
        if line != self.last_status_line {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&line)]);
            self.last_status_line = line;
        }
        if !self.notified_ready && self.essential_healthy() {
            self.notified_ready = true;
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            tracing::info!(
                elapsed_ms = self.started.elapsed().as_millis() as u64,
                "appliance ready"
            );
        }
    }

    /// Restarts the appliance on a worker's request: every worker stopped as at shutdown
    /// (reverse start order, each within its grace), then all started again in order. The
    /// supervisor itself, its held ports and the board stay as they are.
    async fn restart_appliance(
        &mut self,
        why: &str,
        events_rx: &mut mpsc::UnboundedReceiver<Event>,
    ) {
        tracing::warn!(%why, "restarting the appliance: stopping every worker");
        // systemd's watchdog is fed around the stop, which can take a few grace periods.
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
        self.stop_all(events_rx).await;
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
        self.restart_all();
        tracing::info!("appliance restart: starting the workers again");
    }

    /// SIGTERM to every worker in reverse start order, the broker last; SIGKILL after the grace.
    async fn stop_all(&mut self, events_rx: &mut mpsc::UnboundedReceiver<Event>) {
        let grace = Duration::from_millis(self.config.supervisor.stop_grace_ms);
        let order: Vec<&'static str> = self.order.iter().rev().copied().collect();
        let (first, last): (Vec<&str>, Vec<&str>) = order.iter().partition(|n| **n != "broker");
        for wave in [first, last] {
            let deadline = Instant::now() + grace;
            for name in &wave {
                if let Some(pid) = self.slots.get(*name).and_then(|s| s.pid) {
                    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
                }
            }
            while wave
                .iter()
                .any(|n| self.slots.get(*n).is_some_and(|s| s.pid.is_some()))
            {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    for name in &wave {
                        if let Some(pid) = self.slots.get(*name).and_then(|s| s.pid) {
                            tracing::warn!(
                                worker = name,
                                pid,
                                "did not stop within the grace period; SIGKILL"
                            );
                            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                        }
                    }
                    // Collect the exits of the killed processes (bounded wait).
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while wave
                            .iter()
                            .any(|n| self.slots.get(*n).is_some_and(|s| s.pid.is_some()))
                        {
                            match events_rx.recv().await {
                                Some(ev) => self.handle_stopping(ev),
                                None => break,
                            }
                        }
                    })
                    .await;
                    break;
                }
                match tokio::time::timeout(left, events_rx.recv()).await {
                    Ok(Some(ev)) => self.handle_stopping(ev),
                    Ok(None) => break,
                    Err(_) => {}
                }
            }
        }
    }

    fn handle_stopping(&mut self, ev: Event) {
        if let Event::Ended {
            name,
            generation,
            ending,
        } = ev
            && let Some(slot) = self.slots.get_mut(&name)
            && slot.generation == generation
        {
            slot.ended(ending, Instant::now(), &self.policy, true);
            tracing::info!(worker = %name, "worker stopped");
        }
    }
}
