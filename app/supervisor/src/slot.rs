//! One worker's lifecycle as the supervisor tracks it: pure state and decisions, no I/O, so
//! the restart policy is tested with explicit instants.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use watchpost_runtime::ExitCode;
use watchpost_runtime::proto::WorkerState;

/// The restart policy (from `[supervisor]`).
#[derive(Debug, Clone)]
pub struct Policy {
    pub heartbeat_timeout: Duration,
    pub ready_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub stable_after: Duration,
    pub restart_budget: u32,
    pub restart_window: Duration,
    pub failed_retry: Duration,
}

/// How a worker's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal (name).
    Signalled(String),
}

/// What the supervisor must do about a slot now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    None,
    /// Start (or restart) the process.
    Start,
    /// Kill the process (SIGKILL) because of the reason given.
    Kill(String),
}

/// One worker.
#[derive(Debug)]
pub struct Slot {
    pub name: String,
    pub essential: bool,
    pub state: WorkerState,
    pub pid: Option<u32>,
    /// Increases with every spawn; events from older processes are ignored.
    pub generation: u64,
    pub restarts: u32,
    pub last_error: Option<String>,
    pub status_text: Option<String>,
    /// The faults the running process reported (a peripheral it cannot use, retried).
    pub faults: Vec<watchpost_runtime::proto::Fault>,
    /// The last process ended on something a reset cannot fix: a device or port that is not
    /// there (exit 69) or its configuration (78). Cleared when a process gets ready.
    pub ended_on_peripheral: bool,
    pub metrics_text: String,
    pub started_at: Option<Instant>,
    pub ready_at: Option<Instant>,
    pub last_heartbeat: Option<Instant>,
    /// When the next start may happen (backoff or failed retry).
    pub next_start: Option<Instant>,
    /// Set once the worker has been ready at least once (dependants may start).
    pub ever_ready: bool,
    /// A kill was requested and the exit has not been seen yet.
    pub killing: bool,
    /// The reason for a pending kill, reported when the exit arrives.
    pub kill_reason: Option<String>,
    /// The reason the worker gave before exiting (`Fatal`).
    pub fatal_reason: Option<(watchpost_runtime::proto::FatalKind, String)>,
    backoff: Duration,
    recent_restarts: VecDeque<Instant>,
}

impl Slot {
    pub fn new(name: &str, essential: bool, policy: &Policy) -> Self {
        Self {
            name: name.to_string(),
            essential,
            state: WorkerState::Stopped,
            pid: None,
            generation: 0,
            restarts: 0,
            last_error: None,
            status_text: None,
            faults: Vec::new(),
            ended_on_peripheral: false,
            metrics_text: String::new(),
            started_at: None,
            ready_at: None,
            last_heartbeat: None,
            next_start: None,
            ever_ready: false,
            killing: false,
            kill_reason: None,
            fatal_reason: None,
            backoff: policy.backoff_initial,
            recent_restarts: VecDeque::new(),
        }
    }

    /// Healthy: running with a fresh heartbeat.
    pub fn healthy(&self, now: Instant, policy: &Policy) -> bool {
        self.state == WorkerState::Running
            && self
                .last_heartbeat
                .is_some_and(|t| now.duration_since(t) < policy.heartbeat_timeout)
    }

    /// Whether this worker lets the watchdogs be petted (when it is essential): healthy, or
    /// out because of a device, port or configuration that a reset of the board cannot bring
    /// back. A wedged or crash-looping process does not.
    pub fn keeps_watchdog(&self, now: Instant, policy: &Policy) -> bool {
        self.healthy(now, policy) || self.ended_on_peripheral
    }

    /// Marks a new process as spawned.
    pub fn spawned(&mut self, pid: u32, now: Instant) {
        self.generation += 1;
        self.state = WorkerState::Starting;
        self.pid = Some(pid);
        self.started_at = Some(now);
        self.ready_at = None;
        self.last_heartbeat = None;
        self.next_start = None;
        self.killing = false;
        self.kill_reason = None;
        self.fatal_reason = None;
        self.status_text = None;
        self.faults.clear();
    }

    /// The spawn itself failed (binary missing, fork failed…): treated like an exit.
    pub fn spawn_failed(&mut self, reason: String, now: Instant, policy: &Policy) {
        self.last_error = Some(reason);
        self.schedule_restart(now, policy);
    }

    pub fn ready(&mut self, now: Instant) {
        if self.state == WorkerState::Starting {
            self.state = WorkerState::Running;
            self.ready_at = Some(now);
            self.last_heartbeat = Some(now);
            self.ever_ready = true;
            self.ended_on_peripheral = false;
        }
    }

    pub fn heartbeat(&mut self, now: Instant) {
        self.last_heartbeat = Some(now);
    }

    /// Decides what to do at `now` (timeouts, backoff expiry).
    pub fn tick(&self, now: Instant, policy: &Policy, deps_ready: bool, stopping: bool) -> Action {
        if stopping {
            return Action::None;
        }
        match self.state {
            WorkerState::Starting if !self.killing => {
                if self
                    .started_at
                    .is_some_and(|t| now.duration_since(t) > policy.ready_timeout)
                {
                    return Action::Kill(format!(
                        "not ready within {} ms",
                        policy.ready_timeout.as_millis()
                    ));
                }
                Action::None
            }
            WorkerState::Running if !self.killing => {
                if let Some(t) = self.last_heartbeat {
                    let age = now.duration_since(t);
                    if age > policy.heartbeat_timeout {
                        return Action::Kill(format!(
                            "no heartbeat for {} ms (timeout {} ms)",
                            age.as_millis(),
                            policy.heartbeat_timeout.as_millis()
                        ));
                    }
                }
                Action::None
            }
            WorkerState::Backoff | WorkerState::Failed | WorkerState::Stopped => {
                match self.next_start {
                    Some(t) if now >= t && deps_ready => Action::Start,
                    _ => Action::None,
                }
            }
            _ => Action::None,
        }
    }

    /// Records a kill request.
    pub fn kill_requested(&mut self, reason: String) {
        self.killing = true;
        self.kill_reason = Some(reason);
    }

    /// The process ended. Decides between backoff, failed, or stopped (during shutdown).
    pub fn ended(&mut self, ending: Ending, now: Instant, policy: &Policy, stopping: bool) {
        self.pid = None;
        let was_ready_for = self.ready_at.map(|t| now.duration_since(t));
        let how = match &ending {
            Ending::Exited(c) => format!("exited with code {c}"),
            Ending::Signalled(s) => format!("killed by {s}"),
        };
        let reason = match (self.kill_reason.take(), self.fatal_reason.take()) {
            (Some(k), _) => format!("{k}; {how}"),
            (None, Some((_, r))) => format!("{r} ({how})"),
            (None, None) => how,
        };
        self.killing = false;
        self.faults.clear();
        self.ended_on_peripheral = [ExitCode::Unavailable, ExitCode::Config]
            .iter()
            .any(|c| ending == Ending::Exited(c.code()));
        if stopping {
            self.state = WorkerState::Stopped;
            self.next_start = None;
            return;
        }
        self.last_error = Some(reason.clone());
        if ending == Ending::Exited(watchpost_runtime::ExitCode::Config.code()) {
            self.state = WorkerState::Failed;
            self.next_start = None;
            tracing::error!(worker = %self.name, %reason, "configuration error: not restarting");
            return;
        }
        if was_ready_for.is_some_and(|d| d >= policy.stable_after) {
            self.backoff = policy.backoff_initial;
        }
        self.schedule_restart(now, policy);
        tracing::warn!(worker = %self.name, %reason, state = self.state.as_str(), "worker ended");
    }

    fn schedule_restart(&mut self, now: Instant, policy: &Policy) {
        while self
            .recent_restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.restart_window)
        {
            self.recent_restarts.pop_front();
        }
        self.recent_restarts.push_back(now);
        if self.recent_restarts.len() as u32 > policy.restart_budget {
            self.state = WorkerState::Failed;
            let last = self.last_error.clone().unwrap_or_default();
            self.last_error = Some(format!(
                "restart budget exhausted ({} restarts within {} s); last: {last}",
                self.recent_restarts.len(),
                policy.restart_window.as_secs()
            ));
            self.next_start = Some(now + policy.failed_retry);
            self.recent_restarts.clear();
            self.backoff = policy.backoff_initial;
            return;
        }
        self.state = WorkerState::Backoff;
        self.next_start = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(policy.backoff_max);
    }

    /// Counts a restart (called when a start follows an earlier run).
    pub fn count_restart(&mut self) {
        if self.generation > 0 {
            self.restarts += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            heartbeat_timeout: Duration::from_millis(1000),
            ready_timeout: Duration::from_millis(5000),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(800),
            stable_after: Duration::from_secs(60),
            restart_budget: 5,
            restart_window: Duration::from_secs(300),
            failed_retry: Duration::from_secs(600),
        }
    }

    fn running(now: Instant, p: &Policy) -> Slot {
        let mut s = Slot::new("hub", true, p);
        s.next_start = Some(now);
        s.spawned(10, now);
        s.ready(now);
        s
    }

    #[test]
    fn backoff_doubles_up_to_cap_and_resets_after_stable_run() {
        let p = Policy {
            restart_budget: 100,
            ..policy()
        };
        let t0 = Instant::now();
        let mut s = running(t0, &p);
        let mut delays = vec![];
        let mut now = t0;
        for _ in 0..5 {
            s.ended(Ending::Signalled("SIGKILL".into()), now, &p, false);
            let next = s.next_start.unwrap();
            delays.push(next.duration_since(now).as_millis());
            now = next;
            s.spawned(11, now);
            s.ready(now);
        }
        assert_eq!(delays, vec![100, 200, 400, 800, 800]);
        // A long stable run resets the backoff.
        let later = now + Duration::from_secs(61);
        s.ended(Ending::Exited(1), later, &p, false);
        assert_eq!(s.next_start.unwrap().duration_since(later).as_millis(), 100);
    }

    #[test]
    fn only_a_wedged_or_crashing_process_holds_back_the_watchdog() {
        let p = policy();
        let t0 = Instant::now();
        let mut s = running(t0, &p);
        s.faults.push(watchpost_runtime::proto::Fault {
            subject: "serial /dev/ttyUSB0".into(),
            reason: "No such file or directory".into(),
        });
        // Running with a fault: degraded, never a reset.
        assert!(s.keeps_watchdog(t0, &p));
        // Silent (wedged): no pets.
        let late = t0 + Duration::from_millis(1500);
        assert!(!s.keeps_watchdog(late, &p));
        // Crashed: no pets while it is out.
        s.ended(Ending::Signalled("SIGSEGV".into()), late, &p, false);
        assert!(s.faults.is_empty());
        assert!(!s.keeps_watchdog(late, &p));
        // Out because a device or port is missing (69) or on its configuration (78): a
        // reset cannot help, so the watchdogs go on while it is restarted (or failed).
        s.spawned(12, late);
        assert!(!s.keeps_watchdog(late, &p));
        for code in [69, 78] {
            s.ended(Ending::Exited(code), late, &p, false);
            assert!(s.keeps_watchdog(late, &p), "exit {code}");
            assert!(!s.healthy(late, &p));
            // Still while the next process starts.
            s.spawned(12, late);
            assert!(s.keeps_watchdog(late, &p));
        }
        // Ready again: the exemption ends with it.
        s.spawned(13, late);
        s.ready(late);
        assert!(!s.keeps_watchdog(late + Duration::from_millis(1500), &p));
    }

    #[test]
    fn config_exit_is_failed_without_restart() {
        let p = policy();
        let t0 = Instant::now();
        let mut s = running(t0, &p);
        s.fatal_reason = Some((
            watchpost_runtime::proto::FatalKind::Config,
            "bad unit id".into(),
        ));
        s.ended(Ending::Exited(78), t0, &p, false);
        assert_eq!(s.state, WorkerState::Failed);
        assert!(s.last_error.as_deref().unwrap().contains("bad unit id"));
        assert_eq!(
            s.tick(t0 + Duration::from_secs(3600), &p, true, false),
            Action::None
        );
    }

    #[test]
    fn budget_exhaustion_fails_then_retries_later() {
        let p = policy();
        let t0 = Instant::now();
        let mut s = running(t0, &p);
        // Five restarts are within the budget of five...
        for i in 0..5 {
            s.ended(Ending::Exited(1), t0 + Duration::from_millis(i), &p, false);
            assert_eq!(s.state, WorkerState::Backoff);
            s.spawned(12, t0);
        }
        // ...the sixth within the window exhausts it.
        s.ended(Ending::Exited(1), t0, &p, false);
        assert_eq!(s.state, WorkerState::Failed);
        assert!(
            s.last_error
                .as_deref()
                .unwrap()
                .contains("restart budget exhausted")
        );
        assert_eq!(
            s.tick(t0 + Duration::from_secs(599), &p, true, false),
            Action::None
        );
        assert_eq!(
            s.tick(t0 + Duration::from_secs(601), &p, true, false),
            Action::Start
        );
    }

    #[test]
    fn missed_heartbeat_and_ready_timeout_kill() {
        let p = policy();
        let t0 = Instant::now();
        let s = running(t0, &p);
        assert_eq!(
            s.tick(t0 + Duration::from_millis(900), &p, true, false),
            Action::None
        );
        assert!(
            matches!(s.tick(t0 + Duration::from_millis(1100), &p, true, false), Action::Kill(r) if r.contains("no heartbeat"))
        );
        let mut s2 = Slot::new("fieldbus", true, &p);
        s2.spawned(5, t0);
        assert!(
            matches!(s2.tick(t0 + Duration::from_secs(6), &p, true, false), Action::Kill(r) if r.contains("not ready"))
        );
    }

    #[test]
    fn waits_for_dependencies_and_stops_cleanly() {
        let p = policy();
        let t0 = Instant::now();
        let mut s = Slot::new("hub", false, &p);
        s.next_start = Some(t0);
        assert_eq!(s.tick(t0, &p, false, false), Action::None);
        assert_eq!(s.tick(t0, &p, true, false), Action::Start);
        s.spawned(3, t0);
        s.ready(t0);
        s.ended(Ending::Signalled("SIGTERM".into()), t0, &p, true);
        assert_eq!(s.state, WorkerState::Stopped);
        assert_eq!(
            s.tick(t0 + Duration::from_secs(10), &p, true, true),
            Action::None
        );
    }
}
