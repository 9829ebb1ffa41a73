//! The hub's way into the alarm service: queue and intake status, the sensor state cache, test
//! alarms and reloads.
//!
//! The hub creates one [`AlarmHandle`] when it builds its state, keeps it there for its REST
//! handlers and hands a clone to [`crate::serve`], which takes the handle's command inbox (once)
//! and answers on it until shutdown. Until the service runs, and after it stopped, the status
//! reads empty and commands fail with [`AlarmError::Stopped`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{mpsc, oneshot};
use watchpost_config::alarms::AlarmsConfig;
use watchpost_contract::alarm::SensorView;
/// Parameters of a test alarm and its answer: the alarm contract's types, the same for the
/// REST API and the bus command.
pub use watchpost_contract::alarm::{TestQueued, TestRequest};

use crate::AlarmError;
use crate::status::{IntakeStats, IntakeView, ReceiverStats, ReceiverView};

/// What the API asks of the running service.
pub(crate) enum Command {
    Test {
        receiver: String,
        request: TestRequest,
        reply: oneshot::Sender<Result<TestQueued, AlarmError>>,
    },
    Reload {
        reply: oneshot::Sender<Result<(), AlarmError>>,
    },
}

/// Commands waiting for the service.
const INBOX: usize = 64;

/// What the service and the API share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub receivers: RwLock<Vec<Arc<ReceiverStats>>>,
    /// `receivers` holds the configured set (a run has started, or alarms are disabled and
    /// the set is empty): until then nobody may conclude a receiver is gone.
    pub receivers_loaded: AtomicBool,
    pub intake: IntakeStats,
    pub sensors: RwLock<BTreeMap<String, SensorView>>,
    enabled: bool,
    /// A service runs with this handle (from its start until it returns).
    running: AtomicBool,
    /// The commands' receiving end, until a service takes it.
    inbox: Mutex<Option<mpsc::Receiver<Command>>>,
    /// One change at a time to the API-managed receivers and mappings.
    edits: tokio::sync::Mutex<()>,
}

/// Marks the service of a handle as running while it lives.
#[derive(Debug)]
pub(crate) struct Running(Arc<Shared>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Relaxed);
    }
}

/// The API's way into the alarm service (cheap to clone).
#[derive(Clone)]
pub struct AlarmHandle {
    cmd: mpsc::Sender<Command>,
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for AlarmHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlarmHandle")
            .field("enabled", &self.shared.enabled)
            .finish_non_exhaustive()
    }
}

impl AlarmHandle {
    /// A handle for the service that [`crate::serve`] will run with `config`.
    pub fn new(config: &AlarmsConfig) -> Self {
        let (cmd, inbox) = mpsc::channel(INBOX);
        Self {
            cmd,
            shared: Arc::new(Shared {
                receivers: RwLock::new(Vec::new()),
                receivers_loaded: AtomicBool::new(false),
                intake: IntakeStats::default(),
                sensors: RwLock::new(BTreeMap::new()),
                enabled: config.enabled,
                running: AtomicBool::new(false),
                inbox: Mutex::new(Some(inbox)),
                edits: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The command inbox, for the one service that runs with this handle; it counts as
    /// running until the guard is dropped.
    pub(crate) fn start(&self) -> Option<(mpsc::Receiver<Command>, Running)> {
        let inbox = self
            .shared
            .inbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        self.shared.running.store(true, Ordering::Relaxed);
        Some((inbox, Running(self.shared.clone())))
    }

    /// Whether the service runs (it started and has not returned). With `[alarms] enabled =
    /// false` it runs too, answering only for the sensor states.
    pub fn running(&self) -> bool {
        self.shared.running.load(Ordering::Relaxed)
    }

    /// Every receiver's queue and delivery status.
    pub fn queues(&self) -> Vec<ReceiverView> {
        let now = crate::now_ms();
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

    /// The latest published state of every sensor, by the id level of its topic.
    pub fn sensors(&self) -> BTreeMap<String, SensorView> {
        self.shared
            .sensors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Serialises changes to the API-managed receivers and mappings: hold the guard from
    /// reading the stored model until the service has reloaded it.
    pub async fn lock_edits(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.shared.edits.lock().await
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
