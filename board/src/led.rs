//! Status LED patterns per appliance state.
//!
//! The pattern is a pure function of the state and the time since the state was
//! entered ([`LedPattern::level_at`]), so it is tested without any pin or clock. The
//! driver [`StatusLed`] applies it to any `embedded-hal` `OutputPin`, writes the pin
//! only when the level changes, and tells its caller when the next change is due, so
//! the async loop [`run_status_led`] sleeps exactly until then instead of polling.
//!
//! | state | pattern | reads as |
//! | --- | --- | --- |
//! | booting | 250 ms on, 250 ms off | even blink, 2 Hz |
//! | healthy | steady on | all good |
//! | degraded | 1 s on, 1 s off | slow blink: a worker is failing, the rest runs |
//! | alarm | 100 ms on, 100 ms off | fast flicker: an alarm is active |
//! | updating | 100 on, 100 off, 100 on, 700 off (ms) | double blink: OTA in progress, do not unplug |
//! | confirm reset | 50 on, 50 off, 50 on, 50 off, 50 on, 750 off (ms) | triple blink: press again to confirm the factory reset |

use std::time::Duration;

use embedded_hal::digital::OutputPin;
use tokio::sync::watch;
use tokio::time::Instant;

/// What the appliance is doing, as shown on the status LED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApplianceState {
    /// Starting up: workers not all ready yet.
    Booting,
    /// Every essential worker is healthy.
    Healthy,
    /// Running, but at least one worker failed or is restarting.
    Degraded,
    /// An alarm is active.
    Alarm,
    /// An update is being installed.
    Updating,
    /// The button asked for a factory reset and waits for the confirming press.
    ConfirmReset,
}

impl ApplianceState {
    /// Every state, for exhaustive tests and documentation.
    pub const ALL: [ApplianceState; 6] = [
        ApplianceState::Booting,
        ApplianceState::Healthy,
        ApplianceState::Degraded,
        ApplianceState::Alarm,
        ApplianceState::Updating,
        ApplianceState::ConfirmReset,
    ];
}

/// One step of a pattern: the LED level held for `ms` milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// LED on (`true`) or off.
    pub on: bool,
    /// How long the level is held, in milliseconds (never 0).
    pub ms: u32,
}

const fn on(ms: u32) -> Step {
    Step { on: true, ms }
}
const fn off(ms: u32) -> Step {
    Step { on: false, ms }
}

/// A repeating sequence of steps, or a steady level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedPattern {
    /// The LED holds one level.
    Steady(bool),
    /// The steps repeat forever, starting with the first.
    Cycle(&'static [Step]),
}

const BOOTING: &[Step] = &[on(250), off(250)];
const DEGRADED: &[Step] = &[on(1000), off(1000)];
const ALARM: &[Step] = &[on(100), off(100)];
const UPDATING: &[Step] = &[on(100), off(100), on(100), off(700)];
const CONFIRM_RESET: &[Step] = &[on(50), off(50), on(50), off(50), on(50), off(750)];

impl LedPattern {
    /// The pattern shown for `state`.
    pub fn for_state(state: ApplianceState) -> LedPattern {
        match state {
            ApplianceState::Booting => LedPattern::Cycle(BOOTING),
            ApplianceState::Healthy => LedPattern::Steady(true),
            ApplianceState::Degraded => LedPattern::Cycle(DEGRADED),
            ApplianceState::Alarm => LedPattern::Cycle(ALARM),
            ApplianceState::Updating => LedPattern::Cycle(UPDATING),
            ApplianceState::ConfirmReset => LedPattern::Cycle(CONFIRM_RESET),
        }
    }

    /// Length of one cycle, or `None` for a steady level.
    pub fn period(&self) -> Option<Duration> {
        match self {
            LedPattern::Steady(_) => None,
            LedPattern::Cycle(steps) => Some(Duration::from_millis(
                steps.iter().map(|s| u64::from(s.ms)).sum(),
            )),
        }
    }

    /// The LED level `elapsed` after the pattern started, and how long that level
    /// still lasts (`None`: forever).
    pub fn level_at(&self, elapsed: Duration) -> (bool, Option<Duration>) {
        match self {
            LedPattern::Steady(level) => (*level, None),
            LedPattern::Cycle(steps) => {
                let period_ms: u128 = steps.iter().map(|s| u128::from(s.ms)).sum();
                if period_ms == 0 {
                    return (false, None);
                }
                let mut pos_ms = elapsed.as_millis() % period_ms;
                let sub_ms = elapsed.subsec_nanos() % 1_000_000;
                for step in *steps {
                    let len = u128::from(step.ms);
                    if pos_ms < len {
                        let left_ms = u64::try_from(len - pos_ms).unwrap_or(u64::MAX);
                        let left = Duration::from_millis(left_ms)
                            .saturating_sub(Duration::from_nanos(u64::from(sub_ms)));
                        return (step.on, Some(left));
                    }
                    pos_ms -= len;
                }
                (false, None)
            }
        }
    }
}

/// Writing the LED pin failed.
#[derive(Debug, thiserror::Error)]
#[error("setting status LED to {level}: {kind:?}")]
pub struct LedError {
    /// The level that could not be set.
    pub level: bool,
    /// The HAL's classification of the failure.
    pub kind: embedded_hal::digital::ErrorKind,
}

/// Drives one status LED from the appliance state.
#[derive(Debug)]
pub struct StatusLed<P> {
    pin: P,
    state: ApplianceState,
    since: Instant,
    written: Option<bool>,
}

impl<P: OutputPin> StatusLed<P> {
    /// A driver showing `state` from now on. Nothing is written until [`Self::update`].
    pub fn new(pin: P, state: ApplianceState) -> Self {
        StatusLed {
            pin,
            state,
            since: Instant::now(),
            written: None,
        }
    }

    /// The state shown.
    pub fn state(&self) -> ApplianceState {
        self.state
    }

    /// Switches to `state` (restarting its pattern at `now`) unless it is already
    /// shown, so repeated reports of the same state do not restart the pattern.
    pub fn set_state(&mut self, state: ApplianceState, now: Instant) {
        if state != self.state {
            self.state = state;
            self.since = now;
        }
    }

    /// Brings the pin to the level due at `now` and returns how long until the next
    /// change (`None`: steady, nothing to do until the state changes).
    pub fn update(&mut self, now: Instant) -> Result<Option<Duration>, LedError> {
        let pattern = LedPattern::for_state(self.state);
        let (level, left) = pattern.level_at(now.saturating_duration_since(self.since));
        if self.written != Some(level) {
            let res = if level {
                self.pin.set_high()
            } else {
                self.pin.set_low()
            };
            res.map_err(|e| LedError {
                level,
                kind: embedded_hal::digital::Error::kind(&e),
            })?;
            self.written = Some(level);
        }
        Ok(left)
    }

    /// Gives the pin back.
    pub fn into_pin(self) -> P {
        self.pin
    }
}

/// Shows the state from `states` on `led` until `states` is closed (the sender was
/// dropped: shutdown), then switches the LED off. Returns the first pin error.
pub async fn run_status_led<P: OutputPin>(
    mut led: StatusLed<P>,
    mut states: watch::Receiver<ApplianceState>,
) -> Result<(), LedError> {
    let first = *states.borrow_and_update();
    led.set_state(first, Instant::now());
    loop {
        let next = led.update(Instant::now())?;
        let changed = match next {
            Some(wait) => {
                tokio::select! {
                    res = states.changed() => Some(res),
                    () = tokio::time::sleep(wait) => None,
                }
            }
            None => Some(states.changed().await),
        };
        match changed {
            Some(Ok(())) => {
                let state = *states.borrow_and_update();
                led.set_state(state, Instant::now());
            }
            Some(Err(_closed)) => break,
            None => {}
        }
    }
    led.pin.set_low().map_err(|e| LedError {
        level: false,
        kind: embedded_hal::digital::Error::kind(&e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::PinLog;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn healthy_is_steady_on() {
        let p = LedPattern::for_state(ApplianceState::Healthy);
        assert_eq!(p.level_at(ms(0)), (true, None));
        assert_eq!(p.level_at(ms(123_456)), (true, None));
        assert_eq!(p.period(), None);
    }

    #[test]
    fn patterns_are_distinct_and_start_on() {
        let all: Vec<_> = ApplianceState::ALL
            .iter()
            .map(|s| LedPattern::for_state(*s))
            .collect();
        for (i, a) in all.iter().enumerate() {
            assert!(
                a.level_at(ms(0)).0,
                "{:?} starts off",
                ApplianceState::ALL[i]
            );
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn updating_double_blink_timeline() {
        let p = LedPattern::for_state(ApplianceState::Updating);
        assert_eq!(p.period(), Some(ms(1000)));
        let expect = [
            (0, true, 100),
            (99, true, 1),
            (100, false, 100),
            (200, true, 100),
            (300, false, 700),
            (999, false, 1),
            (1000, true, 100),
            (5_250, true, 50),
        ];
        for (t, level, left) in expect {
            assert_eq!(p.level_at(ms(t)), (level, Some(ms(left))), "t={t}");
        }
        // Sub-millisecond offsets shorten the remaining time accordingly.
        assert_eq!(
            p.level_at(ms(50) + Duration::from_micros(250)),
            (true, Some(ms(50) - Duration::from_micros(250)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn driver_writes_each_edge_on_time() {
        let log = PinLog::new();
        let (tx, rx) = watch::channel(ApplianceState::Booting);
        let led = StatusLed::new(log.pin("led"), ApplianceState::Booting);
        let t0 = Instant::now();
        let task = tokio::spawn(run_status_led(led, rx));
        tokio::time::sleep(ms(1_100)).await;
        // Booting: edges every 250 ms from t0.
        let edges: Vec<_> = log
            .changes_of("led")
            .iter()
            .map(|(l, at)| (*l, (*at - t0).as_millis()))
            .collect();
        assert_eq!(
            edges,
            vec![
                (true, 0),
                (false, 250),
                (true, 500),
                (false, 750),
                (true, 1000)
            ]
        );
        log.clear();
        tx.send(ApplianceState::Healthy).unwrap();
        tokio::time::sleep(ms(5_000)).await;
        // Already on at the switch: steady on writes nothing more.
        assert!(log.changes_of("led").is_empty());
        tx.send(ApplianceState::Alarm).unwrap();
        let t1 = Instant::now();
        tokio::time::sleep(ms(450)).await;
        let edges: Vec<_> = log
            .changes_of("led")
            .iter()
            .map(|(l, at)| (*l, (*at - t1).as_millis()))
            .collect();
        assert_eq!(
            edges,
            vec![(false, 100), (true, 200), (false, 300), (true, 400)]
        );
        drop(tx);
        task.await.unwrap().unwrap();
        assert_eq!(log.changes_of("led").last().map(|c| c.0), Some(false));
    }

    #[tokio::test(start_paused = true)]
    async fn same_state_again_does_not_restart_the_pattern() {
        let log = PinLog::new();
        let mut led = StatusLed::new(log.pin("led"), ApplianceState::Degraded);
        let t0 = Instant::now();
        led.update(t0).unwrap();
        led.set_state(ApplianceState::Degraded, t0 + ms(1_500));
        assert_eq!(led.update(t0 + ms(1_500)).unwrap(), Some(ms(500)));
        assert_eq!(log.changes_of("led").len(), 2);
    }
}
