//! The factory reset of the user button: whether it may go ahead, and carrying it out.
//!
//! Role: a confirmed long press (`docs/board.md`, "Factory reset") deletes the data directory
//! (every store, secret and setting made through the API; the recordings too only with
//! `wipe_recordings`) and starts the workers again on the configuration file's settings. The
//! hub's store (`hub.redb`) also holds the alarm queues: alarms the appliance has accepted and
//! not yet handed to their receiver (an alarm receiving centre, a relay output). An installer
//! pressing the button at the appliance cannot see them, and a reset that deleted them would
//! lose alarms without a trace. So the reset goes ahead only when nothing can be lost:
//!
//! - the hub's process is alive: it is asked over the bus, `system/hub/alarms/pending`
//!   (`watchpost_contract::system`), and answers with the deliveries queued and not yet
//!   acknowledged. Zero: the reset goes ahead. More: it is refused, naming the count per
//!   receiver. No answer within [`ASK_TIMEOUT`] (bus or hub down, hub still starting) or an
//!   answer that it cannot count (alarm service not running, queues still loading): it is
//!   refused with "cannot confirm that no alarms wait for delivery" and the reason;
//! - the hub is not enabled or its process is not alive (backoff, failed): no store, no queue,
//!   the reset goes ahead; a store that exists may hold queued alarms nobody can count, so the
//!   reset is refused.
//!
//! A refused reset deletes nothing and stops nothing; it is logged, put in systemd's `STATUS=`
//! and shown in `/health` (`board.last_button`), and the installer presses again once the
//! receivers have their alarms. With `[alarms] enabled = false` the hub delivers nothing, so
//! nothing waits and the reset goes ahead.
//!
//! Design: the decision is [`clearance`], a function of what the supervisor knows of the hub
//! ([`HubPresence`]) and of the hub's answer through [`AskHub`], so it is tested without a
//! broker. The question is asked from a task with a bus client of its own ([`BusHub`], client
//! name `supervisor`), connected for the question and closed after it: the supervision loop
//! goes on meanwhile and carries out the verdict when it arrives, so a broker that is down
//! costs the reset, never supervision. The LED shows `updating` from the confirming press to
//! the end of the reset (or its refusal).
//!
//! Failure: carrying out stops every worker first (the hub finishes its in-flight deliveries
//! or leaves them queued) and deletes nothing unless every worker has stopped, since none may
//! hold its store open; the workers are started again whatever the outcome. An alarm raised in
//! the moment between the hub's answer and its stop is queued and deleted with the store: the
//! reset is two deliberate presses by someone standing at the appliance, and the hub gets
//! SIGTERM right after its answer.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use watchpost_bus::{Bus, ReplyError, RequestError};
use watchpost_config::Config;
use watchpost_contract::system::{
    ALARMS_PENDING, AlarmsPending, PendingAlarms, ReceiverPending, SystemCode,
};

use crate::slot::Slot;
use crate::{Event, Supervisor};

/// How long the hub has to answer whether alarms wait for delivery.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// The hub's store under the data directory (event log, settings, alarm queues).
pub const HUB_STORE: &str = "hub.redb";

/// The bus client name of the supervisor's questions.
pub const BUS_CLIENT: &str = "supervisor";

/// The hub as the supervisor sees it when a reset is confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubPresence {
    /// The hub's process is alive (perhaps still starting): it is asked.
    Running,
    /// The hub is not enabled, or its process is not alive.
    NotRunning {
        /// `<data_dir>/hub.redb`.
        store: PathBuf,
        store_exists: bool,
    },
}

impl HubPresence {
    /// From whether the hub's process is alive and what is under `data_dir`.
    pub fn observe(hub_alive: bool, data_dir: &Path) -> Self {
        if hub_alive {
            return HubPresence::Running;
        }
        let store = data_dir.join(HUB_STORE);
        // A store that cannot be looked at counts as one that exists.
        let store_exists = store.try_exists().unwrap_or(true);
        HubPresence::NotRunning {
            store,
            store_exists,
        }
    }
}

/// Asks the hub how many alarms wait for delivery.
pub trait AskHub {
    fn alarms_pending(
        &self,
    ) -> impl Future<Output = Result<PendingAlarms, RequestError<SystemCode>>> + Send;
}

/// [`AskHub`] over the bus: each question connects the `supervisor` bus client and closes it
/// (a clean disconnect) once answered, so no client lingers, reconnecting and logging, while
/// the reset stops and starts the broker.
#[derive(Debug)]
pub struct BusHub {
    config: Config,
    shutdown: CancellationToken,
    timeout: Duration,
}

impl BusHub {
    pub fn new(config: Config, shutdown: CancellationToken, timeout: Duration) -> Self {
        BusHub {
            config,
            shutdown,
            timeout,
        }
    }
}

impl AskHub for BusHub {
    async fn alarms_pending(&self) -> Result<PendingAlarms, RequestError<SystemCode>> {
        let close = self.shutdown.child_token();
        let _close = close.clone().drop_guard();
        // Returns at once: the connection is made in the background, and the question is sent
        // as soon as it is up (within the same timeout).
        let bus = Bus::connect(&self.config, BUS_CLIENT, close);
        let topic = bus.topic(ALARMS_PENDING);
        bus.request::<AlarmsPending>(&topic, &AlarmsPending {}, self.timeout)
            .await
    }
}

/// Why a reset may go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clearance {
    /// The hub counted no alarm waiting for delivery.
    NothingPending { alarms_enabled: bool },
    /// No hub runs and none has a store: there is no alarm queue to lose.
    NoHubStore,
}

/// Why a reset is refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{total} {} not yet delivered ({})", if *.total == 1 { "alarm" } else { "alarms" }, per_receiver(.receivers))]
    Undelivered {
        total: u64,
        receivers: Vec<ReceiverPending>,
    },
    #[error("cannot confirm that no alarms wait for delivery: {0}")]
    Unconfirmed(#[from] Unconfirmed),
}

/// Why the supervisor cannot know whether alarms wait for delivery.
#[derive(Debug, thiserror::Error)]
pub enum Unconfirmed {
    #[error("the hub is not running and its store {} exists", .store.display())]
    HubNotRunning { store: PathBuf },
    #[error("the hub did not answer: {0}")]
    NoAnswer(#[source] RequestError<SystemCode>),
    #[error("the hub cannot count them: {0}")]
    HubCannotCount(#[source] ReplyError<SystemCode>),
}

fn per_receiver(receivers: &[ReceiverPending]) -> String {
    let waiting: Vec<String> = receivers
        .iter()
        .filter(|r| r.queued > 0)
        .map(|r| format!("{}: {}", r.receiver, r.queued))
        .collect();
    waiting.join(", ")
}

/// Whether a confirmed reset may go ahead: asks the hub when it runs (see the module docs).
pub async fn clearance(hub: &HubPresence, ask: &impl AskHub) -> Result<Clearance, Refusal> {
    match hub {
        HubPresence::NotRunning {
            store_exists: false,
            ..
        } => Ok(Clearance::NoHubStore),
        HubPresence::NotRunning {
            store,
            store_exists: true,
        } => Err(Unconfirmed::HubNotRunning {
            store: store.clone(),
        }
        .into()),
        HubPresence::Running => decide(ask.alarms_pending().await),
    }
}

/// The verdict on the hub's answer.
pub fn decide(
    answer: Result<PendingAlarms, RequestError<SystemCode>>,
) -> Result<Clearance, Refusal> {
    match answer {
        Ok(p) if p.total == 0 => Ok(Clearance::NothingPending {
            alarms_enabled: p.alarms_enabled,
        }),
        Ok(p) => Err(Refusal::Undelivered {
            total: p.total,
            receivers: p.receivers,
        }),
        Err(RequestError::Refused { error, .. }) => Err(Unconfirmed::HubCannotCount(error).into()),
        Err(
            e @ (RequestError::Timeout { .. }
            | RequestError::Bus(_)
            | RequestError::BadReply { .. }),
        ) => Err(Unconfirmed::NoAnswer(e).into()),
    }
}

/// The verdict on a confirmed reset, handed from the asking task to the supervision loop.
#[derive(Debug)]
pub(crate) struct Verdict {
    pub wipe_recordings: bool,
    pub clearance: Result<Clearance, Refusal>,
}

/// Why a reset that went ahead did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error("workers still running: {}", .0.join(", "))]
    WorkersStillRunning(Vec<&'static str>),
    #[error(transparent)]
    Data(#[from] watchpost_store::reset::ResetError),
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Resets the data directory of `config` to factory state (every worker must be stopped).
pub async fn reset_data(
    config: &Config,
    wipe_recordings: bool,
) -> Result<watchpost_store::reset::ResetReport, ResetError> {
    let data_dir = config.system.data_dir.clone();
    let recordings = config.capture.recordings_dir(&data_dir);
    let snapshots = config.capture.snapshots_dir(&data_dir);
    let keep = (!wipe_recordings).then(|| watchpost_store::reset::KeepRecordings {
        recordings_dir: recordings.clone(),
        index_store: data_dir.join("capture.redb"),
    });
    let report = tokio::task::spawn_blocking(move || {
        watchpost_store::reset::factory_reset(&data_dir, keep.as_ref(), &[recordings, snapshots])
    })
    .await??;
    Ok(report)
}

impl Supervisor {
    /// What the supervisor knows of the hub now.
    fn hub_presence(&self) -> HubPresence {
        let alive = self.slots.get("hub").is_some_and(|s| s.pid.is_some());
        HubPresence::observe(alive, &self.config.system.data_dir)
    }

    /// Starts the question whether a confirmed reset may go ahead; the verdict arrives on the
    /// loop's verdict channel. Returns at once.
    pub(crate) fn ask_reset_clearance(&mut self, wipe_recordings: bool) {
        let hub = self.hub_presence();
        let ask = BusHub::new(self.config.clone(), self.shutdown.clone(), ASK_TIMEOUT);
        let verdicts = self.reset_verdicts.clone();
        self.reset_checking = true;
        tokio::spawn(async move {
            let clearance = clearance(&hub, &ask).await;
            let _ = verdicts.send(Verdict {
                wipe_recordings,
                clearance,
            });
        });
    }

    /// Stops every worker, resets the data directory to factory state and starts them again.
    /// Nothing is deleted unless every worker has stopped (none may hold its store open).
    pub(crate) async fn factory_reset(
        &mut self,
        wipe_recordings: bool,
        events_rx: &mut mpsc::UnboundedReceiver<Event>,
    ) -> Result<(), ResetError> {
        tracing::warn!(wipe_recordings, "factory reset: stopping every worker");
        // systemd's watchdog is fed around the stop, which can take a few grace periods.
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
        self.stop_all(events_rx).await;
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
        let alive: Vec<&'static str> = self
            .order
            .iter()
            .filter(|n| self.slots.get(**n).is_some_and(|s| s.pid.is_some()))
            .copied()
            .collect();
        let outcome = if alive.is_empty() {
            let outcome = reset_data(&self.config, wipe_recordings).await;
            match &outcome {
                Ok(report) => tracing::warn!(
                    removed = report.removed.len(),
                    settings_removed = report.settings_removed,
                    "factory reset done; starting the workers on factory settings"
                ),
                Err(e @ ResetError::Task(_)) => {
                    tracing::error!(error = %e, "factory reset task failed")
                }
                Err(e) => tracing::error!(error = %e, "factory reset incomplete"),
            }
            if let Err(e) = std::fs::create_dir_all(&self.run_dir) {
                tracing::error!(error = %e, "cannot recreate the run directory");
            }
            self.write_listeners();
            outcome.map(|_| ())
        } else {
            let e = ResetError::WorkersStillRunning(alive);
            tracing::error!(why = %e, "factory reset not done");
            Err(e)
        };
        self.restart_all();
        outcome
    }

    /// Fresh slots for every worker, started at the next tick.
    pub(crate) fn restart_all(&mut self) {
        self.indicators.clear();
        let now = Instant::now();
        let essential = self.config.supervisor.essential.clone();
        for name in self.order.clone() {
            // A worker that did not stop keeps its slot (and its process is still watched).
            if self.slots.get(name).is_some_and(|s| s.pid.is_some()) {
                continue;
            }
            let generation = self.slots.get(name).map_or(0, |s| s.generation);
            let mut slot = Slot::new(name, essential.iter().any(|e| e == name), &self.policy);
            slot.generation = generation;
            slot.next_start = Some(now);
            self.slots.insert(name.to_string(), slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// The hub's side, answered from the test; counts the questions.
    struct FakeHub {
        answer: fn() -> Result<PendingAlarms, RequestError<SystemCode>>,
        asked: AtomicUsize,
    }

    impl FakeHub {
        fn new(answer: fn() -> Result<PendingAlarms, RequestError<SystemCode>>) -> Self {
            FakeHub {
                answer,
                asked: AtomicUsize::new(0),
            }
        }
    }

    impl AskHub for FakeHub {
        async fn alarms_pending(&self) -> Result<PendingAlarms, RequestError<SystemCode>> {
            self.asked.fetch_add(1, Ordering::Relaxed);
            (self.answer)()
        }
    }

    fn pending(cms: u64, outputs: u64) -> PendingAlarms {
        PendingAlarms {
            alarms_enabled: true,
            total: cms + outputs,
            receivers: vec![
                ReceiverPending {
                    receiver: "cms".into(),
                    queued: cms,
                },
                ReceiverPending {
                    receiver: "outputs".into(),
                    queued: outputs,
                },
            ],
        }
    }

    #[tokio::test]
    async fn nothing_pending_lets_the_reset_go_ahead() {
        let hub = FakeHub::new(|| Ok(pending(0, 0)));
        let c = clearance(&HubPresence::Running, &hub).await.unwrap();
        assert_eq!(
            c,
            Clearance::NothingPending {
                alarms_enabled: true
            }
        );
        assert_eq!(hub.asked.load(Ordering::Relaxed), 1);

        // Alarms switched off: nothing is delivered, so nothing waits.
        let hub = FakeHub::new(|| Ok(PendingAlarms::default()));
        let c = clearance(&HubPresence::Running, &hub).await.unwrap();
        assert_eq!(
            c,
            Clearance::NothingPending {
                alarms_enabled: false
            }
        );
    }

    #[tokio::test]
    async fn alarms_waiting_for_delivery_refuse_the_reset() {
        let hub = FakeHub::new(|| Ok(pending(2, 0)));
        let refusal = clearance(&HubPresence::Running, &hub).await.unwrap_err();
        assert!(matches!(refusal, Refusal::Undelivered { total: 2, .. }));
        assert_eq!(refusal.to_string(), "2 alarms not yet delivered (cms: 2)");
        let hub = FakeHub::new(|| Ok(pending(0, 1)));
        let refusal = clearance(&HubPresence::Running, &hub).await.unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "1 alarm not yet delivered (outputs: 1)"
        );
    }

    #[tokio::test]
    async fn no_answer_refuses_the_reset() {
        let hub = FakeHub::new(|| {
            Err(RequestError::Timeout {
                topic: "watchpost/system/hub/alarms/pending".into(),
                timeout_ms: 5000,
            })
        });
        let refusal = clearance(&HubPresence::Running, &hub).await.unwrap_err();
        assert!(matches!(
            refusal,
            Refusal::Unconfirmed(Unconfirmed::NoAnswer(RequestError::Timeout { .. }))
        ));
        assert_eq!(
            refusal.to_string(),
            "cannot confirm that no alarms wait for delivery: the hub did not answer: \
             no reply on watchpost/system/hub/alarms/pending within 5000 ms"
        );

        // The bus client is gone, or the answer is not the envelope: the same.
        let hub = FakeHub::new(|| {
            Err(RequestError::Bus(watchpost_bus::BusError::PublishClosed {
                topic: "t".into(),
            }))
        });
        assert!(matches!(
            clearance(&HubPresence::Running, &hub).await,
            Err(Refusal::Unconfirmed(Unconfirmed::NoAnswer(_)))
        ));
    }

    #[tokio::test]
    async fn a_hub_that_cannot_count_refuses_the_reset() {
        let hub = FakeHub::new(|| {
            Err(RequestError::Refused {
                topic: "watchpost/system/hub/alarms/pending".into(),
                error: ReplyError::new(
                    SystemCode::AlarmServiceNotRunning,
                    "the alarm service is not running",
                ),
            })
        });
        let refusal = clearance(&HubPresence::Running, &hub).await.unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "cannot confirm that no alarms wait for delivery: the hub cannot count them: \
             ALARM_SERVICE_NOT_RUNNING: the alarm service is not running"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_broker_that_does_not_speak_refuses_the_reset_after_the_timeout() {
        // Accepts TCP connections (the kernel's backlog) and never answers: a hung broker.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        let toml = format!("[system]\ndata_dir = \"/tmp\"\n[bus]\nexternal = \"{addr}\"\n");
        let config = watchpost_config::from_str_with_env(&toml, Path::new("t.toml"), &[]).unwrap();
        let shutdown = CancellationToken::new();
        let ask = BusHub::new(config, shutdown.clone(), ASK_TIMEOUT);
        let refusal = clearance(&HubPresence::Running, &ask).await.unwrap_err();
        assert!(
            matches!(
                refusal,
                Refusal::Unconfirmed(Unconfirmed::NoAnswer(RequestError::Timeout { .. }))
            ),
            "{refusal}"
        );
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_hub_that_is_not_running_is_not_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let hub = FakeHub::new(|| Ok(pending(0, 0)));

        // No hub and no store: there is no queue to lose.
        let presence = HubPresence::observe(false, dir);
        assert_eq!(
            clearance(&presence, &hub).await.unwrap(),
            Clearance::NoHubStore
        );

        // A store the stopped hub left behind may hold queued alarms.
        std::fs::write(dir.join(HUB_STORE), b"").unwrap();
        let presence = HubPresence::observe(false, dir);
        let refusal = clearance(&presence, &hub).await.unwrap_err();
        assert!(matches!(
            refusal,
            Refusal::Unconfirmed(Unconfirmed::HubNotRunning { .. })
        ));
        assert!(refusal.to_string().contains("hub.redb exists"), "{refusal}");
        assert_eq!(hub.asked.load(Ordering::Relaxed), 0);

        // A live hub is asked, store or not.
        assert_eq!(HubPresence::observe(true, dir), HubPresence::Running);
    }
}
