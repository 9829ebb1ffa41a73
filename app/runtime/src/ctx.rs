//! [`WorkerCtx`]: what every worker's `run(config, ctx)` receives.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, BufWriter, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::metrics::Registry;
use crate::proto::{
    self, ApplyReport, ENV_CONFIG_FILE, ENV_HEARTBEAT_MS, ENV_SUPERVISED, ENV_SUPERVISOR_PID,
    FatalKind, Fault, Snapshot, SupervisorMsg, WorkerMsg,
};

/// How often metrics text is pushed to the supervisor at most.
const METRICS_PUSH_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(250);

fn to_faults(m: &BTreeMap<String, String>) -> Vec<Fault> {
    m.iter()
        .map(|(subject, reason)| Fault {
            subject: subject.clone(),
            reason: reason.clone(),
        })
        .collect()
}

/// Errors setting up the link to the supervisor.
#[derive(Debug, thiserror::Error)]
pub enum CtxError {
    #[error("adopting the supervisor socket on stdin: {0}")]
    AdoptSocket(#[source] std::io::Error),
    #[error("setting the parent-death signal: {0}")]
    ParentDeathSignal(#[source] nix::Error),
    #[error("supervisor (pid {expected}) is gone before the worker started")]
    SupervisorGone { expected: i32 },
}

/// Errors asking the supervisor for its snapshot.
#[derive(Debug, thiserror::Error)]
pub enum StatusQueryError {
    #[error("not running under a supervisor")]
    Standalone,
    #[error("the supervisor link is closed")]
    LinkClosed,
    #[error("the supervisor did not answer within {timeout_ms} ms")]
    Timeout { timeout_ms: u64 },
}

enum Outgoing {
    Msg(WorkerMsg),
    Flush(mpsc::Sender<()>),
}

/// Requests waiting for the supervisor's answer, by id.
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<SupervisorMsg>>>>;

struct Link {
    tx: SyncSender<Outgoing>,
    pending: Pending,
    next_id: AtomicU64,
}

/// The context a worker runs in. Cheap to share behind an `Arc`.
pub struct WorkerCtx {
    name: String,
    shutdown: CancellationToken,
    metrics: Registry,
    heartbeat_interval: Duration,
    link: Option<Link>,
    last_metrics_push: Mutex<Option<Instant>>,
    /// The newest log sequence number handed to the supervisor.
    logs_sent: Mutex<u64>,
    /// The listeners of the last [`WorkerCtx::ready`]; `None` before it.
    ready: watch::Sender<Option<BTreeMap<String, SocketAddr>>>,
    /// The configuration file the supervisor runs with (`WATCHPOST_CONFIG_FILE`).
    config_file: Option<std::path::PathBuf>,
    /// The faults reported now, by subject; `true` once the supervisor has the current set.
    faults: Mutex<(BTreeMap<String, String>, bool)>,
    /// The LED indicators: (alarm, updating) as [`WorkerCtx::indicators`] set them, and
    /// whether an over-the-air update runs ([`WorkerCtx::set_updating`]).
    indicator: Mutex<(bool, bool, bool)>,
}

impl std::fmt::Debug for WorkerCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerCtx")
            .field("name", &self.name)
            .field("supervised", &self.link.is_some())
            .finish()
    }
}

impl WorkerCtx {
    /// Builds the context from the environment the supervisor set up. Without
    /// `WATCHPOST_SUPERVISED=1` the context is standalone.
    pub fn from_env(name: &str, shutdown: CancellationToken) -> Result<Self, CtxError> {
        let heartbeat_interval = std::env::var(ENV_HEARTBEAT_MS)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_HEARTBEAT);
        if std::env::var(ENV_SUPERVISED).as_deref() != Ok("1") {
            let mut ctx = Self::standalone(name, shutdown);
            ctx.heartbeat_interval = heartbeat_interval;
            ctx.config_file = config_file_from_env();
            return Ok(ctx);
        }
        // Die with the supervisor, and close the race where it died before the prctl.
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
            .map_err(CtxError::ParentDeathSignal)?;
        if let Some(expected) = std::env::var(ENV_SUPERVISOR_PID)
            .ok()
            .and_then(|p| p.parse::<i32>().ok())
            && nix::unistd::getppid().as_raw() != expected
        {
            return Err(CtxError::SupervisorGone { expected });
        }
        let fd = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(CtxError::AdoptSocket)?;
        let stream = UnixStream::from(fd);
        let link = Link::start(name, stream).map_err(CtxError::AdoptSocket)?;
        Ok(Self {
            name: name.to_string(),
            shutdown,
            metrics: Registry::new(),
            heartbeat_interval,
            link: Some(link),
            last_metrics_push: Mutex::new(None),
            logs_sent: Mutex::new(0),
            ready: watch::channel(None).0,
            config_file: config_file_from_env(),
            faults: Mutex::new((BTreeMap::new(), true)),
            indicator: Mutex::new((false, false, false)),
        })
    }

    /// A context with no supervisor (tests, tools, running a worker by hand).
    pub fn standalone(name: &str, shutdown: CancellationToken) -> Self {
        Self {
            name: name.to_string(),
            shutdown,
            metrics: Registry::new(),
            heartbeat_interval: DEFAULT_HEARTBEAT,
            link: None,
            last_metrics_push: Mutex::new(None),
            logs_sent: Mutex::new(0),
            ready: watch::channel(None).0,
            config_file: None,
            faults: Mutex::new((BTreeMap::new(), true)),
            indicator: Mutex::new((false, false, false)),
        }
    }

    /// The same context, naming the configuration file it runs with (tests, tools).
    #[must_use]
    pub fn with_config_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }

    /// The configuration file the supervisor runs with, when known.
    pub fn config_file(&self) -> Option<&std::path::Path> {
        self.config_file.as_deref()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Cancelled when the worker must stop.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// The worker's metrics registry.
    pub fn metrics(&self) -> &Registry {
        &self.metrics
    }

    /// How often the main loop should call [`WorkerCtx::heartbeat`].
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    /// Whether a supervisor is listening.
    pub fn is_supervised(&self) -> bool {
        self.link.is_some()
    }

    /// Hands the warnings and errors logged since the last report to the supervisor.
    fn push_logs(&self) {
        if self.link.is_none() {
            return;
        }
        let mut sent = self.logs_sent.lock().unwrap_or_else(|p| p.into_inner());
        let (lines, newest) = crate::logging::recent_since(*sent);
        if !lines.is_empty() {
            self.send(WorkerMsg::Logs { lines });
        }
        *sent = newest;
    }

    fn send(&self, msg: WorkerMsg) {
        self.try_send(msg);
    }

    /// Queues `msg` for the supervisor; `false` when the queue was full and it was dropped.
    fn try_send(&self, msg: WorkerMsg) -> bool {
        if let Some(link) = &self.link {
            match link.tx.try_send(Outgoing::Msg(msg)) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => {
                    tracing::debug!("supervisor queue full; message dropped");
                    return false;
                }
            }
        }
        true
    }

    /// Reports a fault the worker works around while it keeps running (a device it cannot
    /// open, a port it cannot bind): `/health` says `degraded` with `reason` until
    /// [`WorkerCtx::clear_fault`] for the same `subject`. Setting the same fault again is free.
    pub fn set_fault(&self, subject: impl Into<String>, reason: impl Into<String>) {
        let (subject, reason) = (subject.into(), reason.into());
        let mut f = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        if f.0.get(&subject) == Some(&reason) {
            return;
        }
        f.0.insert(subject, reason);
        f.1 = false;
        self.push_faults(&mut f);
    }

    /// Ends the fault reported for `subject`, if any.
    pub fn clear_fault(&self, subject: &str) {
        let mut f = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        if f.0.remove(subject).is_some() {
            f.1 = false;
            self.push_faults(&mut f);
        }
    }

    /// The faults reported now, by subject.
    pub fn faults(&self) -> Vec<Fault> {
        let f = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        to_faults(&f.0)
    }

    /// Sends the fault set unless the supervisor has it already; a full queue leaves it for
    /// the next heartbeat.
    fn push_faults(&self, f: &mut (BTreeMap<String, String>, bool)) {
        if !f.1 {
            f.1 = self.try_send(WorkerMsg::Faults {
                faults: to_faults(&f.0),
            });
        }
    }

    /// Reports readiness: devices open, sockets bound. `listeners` names each bound address.
    pub fn ready<I, S>(&self, listeners: I)
    where
        I: IntoIterator<Item = (S, SocketAddr)>,
        S: Into<String>,
    {
        let bound: BTreeMap<String, SocketAddr> =
            listeners.into_iter().map(|(k, a)| (k.into(), a)).collect();
        let listeners: BTreeMap<String, String> = bound
            .iter()
            .map(|(k, a)| (k.clone(), a.to_string()))
            .collect();
        tracing::info!(worker = %self.name, ?listeners, "ready");
        self.send(WorkerMsg::Ready { listeners });
        self.ready.send_replace(Some(bound));
        self.push_metrics();
    }

    /// Waits for [`WorkerCtx::ready`] and returns the addresses it named. A worker run with a
    /// standalone context on port 0 (a crate test, a benchmark) learns its bound addresses
    /// here, as the supervisor learns them from the readiness report. Pending forever if the
    /// worker never gets ready: select on the worker's end too.
    pub async fn ready_listeners(&self) -> BTreeMap<String, SocketAddr> {
        let mut rx = self.ready.subscribe();
        let Ok(seen) = rx.wait_for(Option::is_some).await else {
            // The sender lives in `self`, so the channel cannot close while we wait.
            return std::future::pending().await;
        };
        seen.clone().unwrap_or_default()
    }

    /// Tells the supervisor the main loop is alive. Call it from the main loop, at
    /// [`WorkerCtx::heartbeat_interval`]; it also pushes metrics about once a second.
    pub fn heartbeat(&self) {
        self.send(WorkerMsg::Heartbeat);
        self.push_logs();
        {
            let mut f = self.faults.lock().unwrap_or_else(|p| p.into_inner());
            self.push_faults(&mut f);
        }
        let due = {
            let mut last = self
                .last_metrics_push
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= METRICS_PUSH_INTERVAL);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due {
            self.push_metrics();
        }
    }

    /// Pushes the current metrics text now.
    pub fn push_metrics(&self) {
        if self.link.is_some() {
            self.send(WorkerMsg::Metrics {
                text: self.metrics.render(),
            });
        }
    }

    /// A short status line for `/health` and systemd's STATUS=.
    pub fn status(&self, text: impl Into<String>) {
        self.send(WorkerMsg::Status { text: text.into() });
    }

    /// What the status LED should show for this worker (see [`WorkerMsg::Indicators`]). An
    /// update set with [`WorkerCtx::set_updating`] is kept: the supervisor gets `updating`
    /// while either says so.
    pub fn indicators(&self, alarm: bool, updating: bool) {
        let sent = {
            let mut i = self.indicator.lock().unwrap_or_else(|p| p.into_inner());
            i.0 = alarm;
            i.1 = updating;
            (i.0, i.1 || i.2)
        };
        self.send(WorkerMsg::Indicators {
            alarm: sent.0,
            updating: sent.1,
        });
    }

    /// Whether an over-the-air update runs in this worker (the hub): the LED shows `updating`
    /// while it does, whatever the worker's other indicators say. Sent when it changes.
    pub fn set_updating(&self, on: bool) {
        let sent = {
            let mut i = self.indicator.lock().unwrap_or_else(|p| p.into_inner());
            if i.2 == on {
                return;
            }
            i.2 = on;
            (i.0, i.1 || i.2)
        };
        self.send(WorkerMsg::Indicators {
            alarm: sent.0,
            updating: sent.1,
        });
    }

    /// What the LED indicators sent to the supervisor say now: (alarm, updating).
    pub fn indicator_state(&self) -> (bool, bool) {
        let i = self.indicator.lock().unwrap_or_else(|p| p.into_inner());
        (i.0, i.1 || i.2)
    }

    /// Reports why the worker is about to exit and waits (up to one second) until the message
    /// has been written, so the reason reaches the supervisor before the exit status does.
    pub fn fatal(&self, kind: FatalKind, reason: impl Into<String>) {
        let reason = reason.into();
        tracing::error!(worker = %self.name, ?kind, %reason, "worker giving up");
        let Some(link) = &self.link else { return };
        let _ = link
            .tx
            .send(Outgoing::Msg(WorkerMsg::Fatal { kind, reason }));
        let (done_tx, done_rx) = mpsc::channel();
        if link.tx.send(Outgoing::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(Duration::from_secs(1));
        }
    }

    /// Asks the supervisor for its current view of the appliance.
    pub async fn query_snapshot(&self, timeout: Duration) -> Result<Snapshot, StatusQueryError> {
        match self.request(timeout, |id| WorkerMsg::Query { id }).await? {
            SupervisorMsg::Snapshot { snapshot, .. } => Ok(snapshot),
            SupervisorMsg::Applied { .. } => Err(StatusQueryError::LinkClosed),
        }
    }

    /// Asks the supervisor to restart the whole appliance (this worker included) cleanly;
    /// `false` when no supervisor listens or the request could not be queued.
    pub fn request_appliance_restart(&self, reason: impl Into<String>) -> bool {
        self.link.is_some()
            && self.try_send(WorkerMsg::RestartAppliance {
                reason: reason.into(),
            })
    }

    /// Asks the supervisor to load the configuration again (file, settings overlay,
    /// environment) and restart the workers whose sections changed. The answer comes before
    /// any restart, so the asking worker hears it even when it is among the restarted.
    pub async fn apply_config(&self, timeout: Duration) -> Result<ApplyReport, StatusQueryError> {
        match self
            .request(timeout, |id| WorkerMsg::ApplyConfig { id })
            .await?
        {
            SupervisorMsg::Applied { report, .. } => Ok(report),
            SupervisorMsg::Snapshot { .. } => Err(StatusQueryError::LinkClosed),
        }
    }

    /// Sends the request `make(id)` and waits for the answer with that id.
    async fn request(
        &self,
        timeout: Duration,
        make: impl FnOnce(u64) -> WorkerMsg,
    ) -> Result<SupervisorMsg, StatusQueryError> {
        let link = self.link.as_ref().ok_or(StatusQueryError::Standalone)?;
        let id = link.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        link.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        if link.tx.try_send(Outgoing::Msg(make(id))).is_err() {
            link.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            return Err(StatusQueryError::LinkClosed);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(StatusQueryError::LinkClosed),
            Err(_) => {
                link.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                Err(StatusQueryError::Timeout {
                    timeout_ms: timeout.as_millis() as u64,
                })
            }
        }
    }
}

fn config_file_from_env() -> Option<std::path::PathBuf> {
    std::env::var_os(ENV_CONFIG_FILE)
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
}

impl Link {
    fn start(name: &str, stream: UnixStream) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Outgoing>(256);
        let write_half = stream.try_clone()?;
        std::thread::Builder::new()
            .name(format!("{name}-sup-tx"))
            .spawn(move || {
                let mut w = BufWriter::new(write_half);
                while let Ok(item) = rx.recv() {
                    match item {
                        Outgoing::Msg(msg) => {
                            if proto::write_frame(&mut w, &msg).is_err() {
                                break;
                            }
                            // Coalesce whatever else is queued before flushing.
                            let mut ok = true;
                            while let Ok(more) = rx.try_recv() {
                                match more {
                                    Outgoing::Msg(m) => {
                                        if proto::write_frame(&mut w, &m).is_err() {
                                            ok = false;
                                            break;
                                        }
                                    }
                                    Outgoing::Flush(done) => {
                                        let _ = w.flush();
                                        let _ = done.send(());
                                    }
                                }
                            }
                            if !ok || w.flush().is_err() {
                                break;
                            }
                        }
                        Outgoing::Flush(done) => {
                            let _ = w.flush();
                            let _ = done.send(());
                        }
                    }
                }
            })?;
        let pending: Pending = Arc::default();
        let pending_rx = pending.clone();
        std::thread::Builder::new()
            .name(format!("{name}-sup-rx"))
            .spawn(move || {
                let mut r = BufReader::new(stream);
                while let Ok(Some(msg)) = proto::read_frame::<SupervisorMsg>(&mut r) {
                    let id = match &msg {
                        SupervisorMsg::Snapshot { id, .. } | SupervisorMsg::Applied { id, .. } => {
                            *id
                        }
                    };
                    let waiter = pending_rx
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&id);
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(msg);
                    }
                }
                // The supervisor closed the link: there is no one left to report to, and
                // PDEATHSIG will end this process if the supervisor died.
                pending_rx.lock().unwrap_or_else(|p| p.into_inner()).clear();
            })?;
        Ok(Self {
            tx,
            pending,
            next_id: AtomicU64::new(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn standalone_context_is_inert() {
        let ctx = WorkerCtx::standalone("t", CancellationToken::new());
        let http: SocketAddr = "127.0.0.1:1".parse().unwrap();
        ctx.ready([("http", http)]);
        ctx.heartbeat();
        ctx.status("fine");
        assert!(!ctx.is_supervised());
        assert_eq!(
            ctx.ready_listeners().await,
            BTreeMap::from([("http".to_string(), http)])
        );
        assert!(matches!(
            ctx.query_snapshot(Duration::from_millis(10)).await,
            Err(StatusQueryError::Standalone)
        ));
    }

    #[tokio::test]
    async fn ready_listeners_waits_for_readiness() {
        let ctx = Arc::new(WorkerCtx::standalone("t", CancellationToken::new()));
        let waiter = {
            let ctx = ctx.clone();
            tokio::spawn(async move { ctx.ready_listeners().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let modbus: SocketAddr = "127.0.0.1:5020".parse().unwrap();
        ctx.ready([("modbus_tcp", modbus)]);
        assert_eq!(
            waiter.await.unwrap(),
            BTreeMap::from([("modbus_tcp".to_string(), modbus)])
        );
    }

    #[tokio::test]
    async fn link_carries_messages_and_answers_queries() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let link = Link::start("t", ours).unwrap();
        let ctx = WorkerCtx {
            name: "t".into(),
            shutdown: CancellationToken::new(),
            metrics: Registry::new(),
            heartbeat_interval: DEFAULT_HEARTBEAT,
            link: Some(link),
            last_metrics_push: Mutex::new(None),
            logs_sent: Mutex::new(0),
            ready: watch::channel(None).0,
            config_file: None,
            faults: Mutex::new((BTreeMap::new(), true)),
            indicator: Mutex::new((false, false, false)),
        };
        ctx.metrics().counter("watchpost_t_x_total", "x", &[]).inc();
        ctx.heartbeat();
        // Play the supervisor on the other end in a thread.
        let sup = std::thread::spawn(move || {
            let mut r = BufReader::new(theirs.try_clone().unwrap());
            let mut w = theirs;
            let mut seen = Vec::new();
            loop {
                let msg: WorkerMsg = proto::read_frame(&mut r).unwrap().unwrap();
                if let WorkerMsg::Query { id } = msg {
                    let snapshot = Snapshot {
                        supervisor_pid: 1,
                        uptime_ms: 5,
                        workers: vec![],
                        supervisor_metrics: String::new(),
                        worker_metrics: BTreeMap::new(),
                        listeners: BTreeMap::new(),
                        board: None,
                        recent_logs: vec![],
                    };
                    proto::write_frame(&mut w, &SupervisorMsg::Snapshot { id, snapshot }).unwrap();
                    return seen;
                }
                seen.push(msg);
            }
        });
        let snap = ctx.query_snapshot(Duration::from_secs(5)).await.unwrap();
        assert_eq!(snap.uptime_ms, 5);
        let seen = sup.join().unwrap();
        assert_eq!(seen[0], WorkerMsg::Heartbeat);
        assert!(
            matches!(&seen[1], WorkerMsg::Metrics { text } if text.contains("watchpost_t_x_total 1"))
        );
    }

    #[test]
    fn an_update_keeps_the_led_updating_whatever_the_alarm_says() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let ctx = WorkerCtx {
            link: Some(Link::start("t", ours).unwrap()),
            ..WorkerCtx::standalone("t", CancellationToken::new())
        };
        ctx.set_updating(true);
        assert_eq!(ctx.indicator_state(), (false, true));
        // The alarm service reports its own state with `updating = false`.
        ctx.indicators(true, false);
        assert_eq!(ctx.indicator_state(), (true, true));
        ctx.set_updating(false);
        assert_eq!(ctx.indicator_state(), (true, false));
        ctx.indicators(false, false);
        theirs
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut r = BufReader::new(theirs);
        let mut seen = Vec::new();
        while seen.len() < 4 {
            if let WorkerMsg::Indicators { alarm, updating } =
                proto::read_frame::<WorkerMsg>(&mut r).unwrap().unwrap()
            {
                seen.push((alarm, updating));
            }
        }
        assert_eq!(
            seen,
            vec![(false, true), (true, true), (true, false), (false, false)]
        );
    }

    #[test]
    fn faults_reach_the_supervisor_once_per_change() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let ctx = WorkerCtx {
            link: Some(Link::start("t", ours).unwrap()),
            ..WorkerCtx::standalone("t", CancellationToken::new())
        };
        ctx.set_fault("serial /dev/ttyUSB0", "no such device");
        ctx.set_fault("serial /dev/ttyUSB0", "no such device");
        ctx.set_fault("compat 0.0.0.0:5000", "address in use");
        assert_eq!(ctx.faults().len(), 2);
        ctx.clear_fault("serial /dev/ttyUSB0");
        ctx.clear_fault("serial /dev/ttyUSB0");
        ctx.clear_fault("compat 0.0.0.0:5000");
        // Nothing changed since: the heartbeat sends no fault set.
        ctx.heartbeat();
        ctx.set_fault("last", "marker");
        theirs
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut r = BufReader::new(theirs);
        let mut sets: Vec<Vec<String>> = Vec::new();
        while sets.last() != Some(&vec!["last".to_string()]) {
            let msg = proto::read_frame::<WorkerMsg>(&mut r).unwrap().unwrap();
            if let WorkerMsg::Faults { faults } = msg {
                sets.push(faults.into_iter().map(|f| f.subject).collect::<Vec<_>>());
            }
        }
        assert_eq!(
            sets,
            [
                vec!["serial /dev/ttyUSB0"],
                vec!["compat 0.0.0.0:5000", "serial /dev/ttyUSB0"],
                vec!["compat 0.0.0.0:5000"],
                vec![],
                vec!["last"],
            ]
        );
    }

    #[tokio::test]
    async fn apply_config_gets_its_report() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let link = Link::start("t", ours).unwrap();
        let ctx = WorkerCtx::standalone("t", CancellationToken::new()).with_config_file("/x.toml");
        let ctx = WorkerCtx {
            link: Some(link),
            ..ctx
        };
        assert_eq!(ctx.config_file(), Some(std::path::Path::new("/x.toml")));
        let sup = std::thread::spawn(move || {
            let mut r = BufReader::new(theirs.try_clone().unwrap());
            let mut w = theirs;
            let WorkerMsg::ApplyConfig { id } = proto::read_frame(&mut r).unwrap().unwrap() else {
                panic!("expected ApplyConfig");
            };
            let report = ApplyReport {
                restarted: vec!["bridge".into()],
                ..Default::default()
            };
            proto::write_frame(&mut w, &SupervisorMsg::Applied { id, report }).unwrap();
        });
        let report = ctx.apply_config(Duration::from_secs(5)).await.unwrap();
        assert_eq!(report.restarted, vec!["bridge".to_string()]);
        sup.join().unwrap();
    }
}
