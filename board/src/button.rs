//! The user button: a pure state machine plus a small sampling loop.
//!
//! Gestures:
//! - **short press** (released before `long_press_ms`): [`ButtonAction::PublishAddress`]
//!   (the appliance announces its address: LED, log, bus, so the installer finds it);
//! - **long press** (held `long_press_ms`): [`ButtonAction::FactoryResetArmed`] as soon as
//!   the threshold passes (the LED switches to the confirm pattern). Nothing is erased
//!   yet. After release, a **second press within `confirm_window_ms`** gives
//!   [`ButtonAction::FactoryReset`]; no press in the window gives
//!   [`ButtonAction::FactoryResetCancelled`]. Whether recordings are erased too is a
//!   setting ([`ButtonConfig::wipe_recordings`], off by default): a button cannot
//!   explain what it is about to delete, so the destructive variant must be chosen in
//!   advance.
//!
//! The machine takes raw level samples ([`ButtonMachine::sample`]) and debounces them
//! itself: a new level counts once it has been stable for `debounce_ms`, and the edge is
//! dated when the level first changed. It never reads a clock: every call carries
//! `now`, and [`ButtonMachine::next_deadline`] says when it next needs a call even if
//! the level stays put.

use std::time::Duration;

use embedded_hal::digital::InputPin;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Timing and policy of the button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ButtonConfig {
    /// A level change counts once stable this long.
    pub debounce_ms: u32,
    /// Holding at least this long is a long press.
    pub long_press_ms: u32,
    /// Time after the long press ends in which a press confirms the factory reset.
    pub confirm_window_ms: u32,
    /// Whether a confirmed factory reset also erases recordings.
    pub wipe_recordings: bool,
}

impl Default for ButtonConfig {
    fn default() -> Self {
        ButtonConfig {
            debounce_ms: 30,
            long_press_ms: 5_000,
            confirm_window_ms: 10_000,
            wipe_recordings: false,
        }
    }
}

/// What a gesture asks the appliance to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonAction {
    /// Short press: announce the box's address.
    PublishAddress,
    /// Long press reached: show the confirm pattern and wait.
    FactoryResetArmed,
    /// The confirm window passed without a press.
    FactoryResetCancelled,
    /// Confirmed: reset the settings to factory defaults.
    FactoryReset {
        /// Erase recordings as well.
        wipe_recordings: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    /// Held, long-press threshold not reached.
    Down {
        since: Instant,
    },
    /// Held past the threshold; armed.
    LongHeld,
    /// Released after a long press; waiting for the confirming press.
    AwaitConfirm {
        deadline: Instant,
    },
    /// The confirming press is held; confirmed on release.
    ConfirmDown,
}

/// The debounced button state machine.
#[derive(Debug, Clone)]
pub struct ButtonMachine {
    cfg: ButtonConfig,
    raw: bool,
    raw_since: Instant,
    stable: bool,
    phase: Phase,
}

fn ms(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

impl ButtonMachine {
    /// A machine that starts released at `now`.
    pub fn new(cfg: ButtonConfig, now: Instant) -> Self {
        ButtonMachine {
            cfg,
            raw: false,
            raw_since: now,
            stable: false,
            phase: Phase::Idle,
        }
    }

    /// Feeds one sample (`pressed`) taken at `now`; returns the action it completes,
    /// if any. Also serves as the timer tick: call it at [`Self::next_deadline`].
    pub fn sample(&mut self, pressed: bool, now: Instant) -> Option<ButtonAction> {
        if pressed != self.raw {
            self.raw = pressed;
            self.raw_since = now;
        }
        let mut action = None;
        if self.raw != self.stable
            && now.saturating_duration_since(self.raw_since) >= ms(self.cfg.debounce_ms)
        {
            self.stable = self.raw;
            action = self.edge(self.stable, self.raw_since);
        }
        action.or_else(|| self.timers(now))
    }

    /// The next instant at which [`Self::sample`] must be called even without a level
    /// change, or `None` if nothing is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        let debounce = (self.raw != self.stable).then(|| self.raw_since + ms(self.cfg.debounce_ms));
        let phase = match self.phase {
            Phase::Down { since } => Some(since + ms(self.cfg.long_press_ms)),
            Phase::AwaitConfirm { deadline } => Some(deadline),
            Phase::Idle | Phase::LongHeld | Phase::ConfirmDown => None,
        };
        match (debounce, phase) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether a factory reset is armed and waiting for confirmation.
    pub fn awaiting_confirmation(&self) -> bool {
        matches!(
            self.phase,
            Phase::LongHeld | Phase::AwaitConfirm { .. } | Phase::ConfirmDown
        )
    }

    fn edge(&mut self, pressed: bool, at: Instant) -> Option<ButtonAction> {
        match (self.phase, pressed) {
            (Phase::Idle, true) => {
                self.phase = Phase::Down { since: at };
                None
            }
            (Phase::Down { since }, false) => {
                self.phase = Phase::Idle;
                if at.saturating_duration_since(since) >= ms(self.cfg.long_press_ms) {
                    // Released exactly at the threshold before a tick saw it.
                    self.phase = Phase::AwaitConfirm {
                        deadline: at + ms(self.cfg.confirm_window_ms),
                    };
                    Some(ButtonAction::FactoryResetArmed)
                } else {
                    Some(ButtonAction::PublishAddress)
                }
            }
            (Phase::LongHeld, false) => {
                self.phase = Phase::AwaitConfirm {
                    deadline: at + ms(self.cfg.confirm_window_ms),
                };
                None
            }
            (Phase::AwaitConfirm { deadline }, true) => {
                if at <= deadline {
                    self.phase = Phase::ConfirmDown;
                    None
                } else {
                    self.phase = Phase::Down { since: at };
                    Some(ButtonAction::FactoryResetCancelled)
                }
            }
            (Phase::ConfirmDown, false) => {
                self.phase = Phase::Idle;
                Some(ButtonAction::FactoryReset {
                    wipe_recordings: self.cfg.wipe_recordings,
                })
            }
            // Debouncing only reports real changes, so the remaining pairs (a press
            // while down, a release while idle) cannot follow each other; ignore them.
            _ => None,
        }
    }

    fn timers(&mut self, now: Instant) -> Option<ButtonAction> {
        match self.phase {
            Phase::Down { since }
                if now.saturating_duration_since(since) >= ms(self.cfg.long_press_ms) =>
            {
                self.phase = Phase::LongHeld;
                Some(ButtonAction::FactoryResetArmed)
            }
            Phase::AwaitConfirm { deadline } if now > deadline => {
                self.phase = Phase::Idle;
                Some(ButtonAction::FactoryResetCancelled)
            }
            _ => None,
        }
    }
}

/// Interval at which [`run_button`] samples the pin.
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(10);

/// Reading the button line failed.
#[derive(Debug, thiserror::Error)]
#[error("reading the button: {kind:?}")]
pub struct ButtonError {
    /// The HAL's classification of the failure.
    pub kind: embedded_hal::digital::ErrorKind,
}

/// Samples `pin` (high = pressed) every [`SAMPLE_PERIOD`] and sends each action to
/// `actions`. Returns when the receiver is dropped (shutdown) or the pin fails.
pub async fn run_button<P: InputPin>(
    mut pin: P,
    cfg: ButtonConfig,
    actions: mpsc::Sender<ButtonAction>,
) -> Result<(), ButtonError> {
    let mut machine = ButtonMachine::new(cfg, Instant::now());
    let mut ticker = tokio::time::interval(SAMPLE_PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = actions.closed() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let pressed = pin.is_high().map_err(|e| ButtonError {
            kind: embedded_hal::digital::Error::kind(&e),
        })?;
        if let Some(action) = machine.sample(pressed, Instant::now()) {
            tracing::info!(?action, "button gesture");
            if actions.send(action).await.is_err() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(base: Instant, ms_: u64) -> Instant {
        base + Duration::from_millis(ms_)
    }

    /// Feeds a level timeline sampled every 10 ms; returns actions with their times.
    fn run(cfg: ButtonConfig, levels: &[(u64, bool)], until_ms: u64) -> Vec<(u64, ButtonAction)> {
        let base = Instant::now();
        let mut m = ButtonMachine::new(cfg, base);
        let mut out = vec![];
        let mut level = false;
        let mut idx = 0;
        let mut now = 0;
        while now <= until_ms {
            while idx < levels.len() && levels[idx].0 <= now {
                level = levels[idx].1;
                idx += 1;
            }
            if let Some(a) = m.sample(level, t(base, now)) {
                out.push((now, a));
            }
            now += 10;
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn short_press_publishes_address_on_release() {
        let out = run(ButtonConfig::default(), &[(100, true), (400, false)], 2_000);
        assert_eq!(out, vec![(430, ButtonAction::PublishAddress)]);
    }

    #[tokio::test(start_paused = true)]
    async fn bounces_shorter_than_debounce_are_ignored() {
        let out = run(
            ButtonConfig::default(),
            &[(100, true), (110, false), (120, true), (130, false)],
            1_000,
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn long_press_then_confirm_resets_keeping_recordings() {
        let cfg = ButtonConfig::default();
        let out = run(
            cfg,
            &[(0, true), (6_000, false), (8_000, true), (8_200, false)],
            30_000,
        );
        assert_eq!(
            out,
            vec![
                (5_000, ButtonAction::FactoryResetArmed),
                (
                    8_230,
                    ButtonAction::FactoryReset {
                        wipe_recordings: false
                    }
                ),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn wipe_recordings_follows_the_setting() {
        let cfg = ButtonConfig {
            wipe_recordings: true,
            ..ButtonConfig::default()
        };
        let out = run(
            cfg,
            &[(0, true), (5_500, false), (6_000, true), (6_100, false)],
            20_000,
        );
        assert_eq!(
            out.last(),
            Some(&(
                6_130,
                ButtonAction::FactoryReset {
                    wipe_recordings: true
                }
            ))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_confirmation_cancels_after_the_window() {
        let out = run(
            ButtonConfig::default(),
            &[(0, true), (5_200, false)],
            30_000,
        );
        assert_eq!(
            out,
            vec![
                (5_000, ButtonAction::FactoryResetArmed),
                (15_210, ButtonAction::FactoryResetCancelled),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_cover_debounce_long_press_and_window() {
        let base = Instant::now();
        let mut m = ButtonMachine::new(ButtonConfig::default(), base);
        assert_eq!(m.next_deadline(), None);
        m.sample(true, base);
        assert_eq!(m.next_deadline(), Some(t(base, 30)));
        m.sample(true, t(base, 30));
        assert_eq!(m.next_deadline(), Some(t(base, 5_000)));
        assert_eq!(
            m.sample(true, t(base, 5_000)),
            Some(ButtonAction::FactoryResetArmed)
        );
        assert!(m.awaiting_confirmation());
        assert_eq!(m.next_deadline(), None);
        m.sample(false, t(base, 5_100));
        m.sample(false, t(base, 5_130));
        assert_eq!(m.next_deadline(), Some(t(base, 15_100)));
    }

    #[tokio::test(start_paused = true)]
    async fn loop_reports_gestures_from_a_simulated_pin() {
        let log = crate::sim::PinLog::new();
        let pin = log.pin("button");
        let (tx, mut rx) = mpsc::channel(4);
        let task = tokio::spawn(run_button(pin.clone(), ButtonConfig::default(), tx));
        tokio::time::sleep(Duration::from_millis(100)).await;
        pin.drive(true);
        tokio::time::sleep(Duration::from_millis(200)).await;
        pin.drive(false);
        assert_eq!(rx.recv().await, Some(ButtonAction::PublishAddress));
        pin.drive(true);
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(rx.recv().await, Some(ButtonAction::FactoryResetArmed));
        pin.drive(false);
        tokio::time::sleep(Duration::from_secs(1)).await;
        pin.drive(true);
        tokio::time::sleep(Duration::from_millis(100)).await;
        pin.drive(false);
        assert_eq!(
            rx.recv().await,
            Some(ButtonAction::FactoryReset {
                wipe_recordings: false
            })
        );
        drop(rx);
        task.await.unwrap().unwrap();
    }
}
