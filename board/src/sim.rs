//! The simulated board: in-memory pins that record every change with a timestamp.
//!
//! A [`SimPin`] implements the `embedded-hal` digital traits, so every driver of this
//! crate runs on it unchanged. All pins made from one [`PinLog`] append to the same
//! ordered record of `(pin, level, instant)`; instants come from the tokio clock, so a
//! test with a paused clock sees exact, reproducible times. Input pins (the button)
//! are driven from the test with [`SimPin::drive`].

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};

use embedded_hal::digital::{ErrorType, InputPin, OutputPin, StatefulOutputPin};
use tokio::time::Instant;

use crate::watchdog::{SimWatchdog, SimWatchdogHandle, WatchdogError};

/// One recorded level change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinChange {
    /// The pin's name as given to [`PinLog::pin`].
    pub pin: String,
    /// The logical level after the change (`true` = active/high).
    pub level: bool,
    /// When it happened (tokio clock).
    pub at: Instant,
}

/// The shared record of every pin change on a simulated board.
#[derive(Debug, Clone, Default)]
pub struct PinLog {
    changes: Arc<Mutex<Vec<PinChange>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Only a failing test assertion can poison these; the records stay valid.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PinLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new pin named `name`, initially low, recording into this log. The initial
    /// level is not a change and is not recorded.
    pub fn pin(&self, name: &str) -> SimPin {
        SimPin {
            name: Arc::from(name),
            level: Arc::new(Mutex::new(false)),
            log: self.clone(),
        }
    }

    /// Every change so far, in order.
    pub fn changes(&self) -> Vec<PinChange> {
        lock(&self.changes).clone()
    }

    /// The changes of one pin, as `(level, instant)`.
    pub fn changes_of(&self, pin: &str) -> Vec<(bool, Instant)> {
        lock(&self.changes)
            .iter()
            .filter(|c| c.pin == pin)
            .map(|c| (c.level, c.at))
            .collect()
    }

    /// Forgets everything recorded so far.
    pub fn clear(&self) {
        lock(&self.changes).clear();
    }

    fn record(&self, pin: &str, level: bool) {
        lock(&self.changes).push(PinChange {
            pin: pin.to_owned(),
            level,
            at: Instant::now(),
        });
    }
}

/// An in-memory GPIO line. Clones share the line (one end for the driver, one for the
/// test). Writing the level it already has is not recorded as a change.
#[derive(Debug, Clone)]
pub struct SimPin {
    name: Arc<str>,
    level: Arc<Mutex<bool>>,
    log: PinLog,
}

impl SimPin {
    /// The pin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current logical level.
    pub fn level(&self) -> bool {
        *lock(&self.level)
    }

    /// Sets the level from outside (a person pressing the button); recorded like any
    /// other change.
    pub fn drive(&self, level: bool) {
        self.write(level);
    }

    fn write(&self, level: bool) {
        let mut current = lock(&self.level);
        if *current != level {
            *current = level;
            self.log.record(&self.name, level);
        }
    }
}

impl ErrorType for SimPin {
    type Error = Infallible;
}

impl OutputPin for SimPin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.write(false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.write(true);
        Ok(())
    }
}

impl StatefulOutputPin for SimPin {
    fn is_set_high(&mut self) -> Result<bool, Self::Error> {
        Ok(self.level())
    }

    fn is_set_low(&mut self) -> Result<bool, Self::Error> {
        Ok(!self.level())
    }
}

impl InputPin for SimPin {
    fn is_high(&mut self) -> Result<bool, Self::Error> {
        Ok(self.level())
    }

    fn is_low(&mut self) -> Result<bool, Self::Error> {
        Ok(!self.level())
    }
}

/// A whole simulated board: status LED, relays, button, RS485 direction pin and a
/// watchdog, all recording into one [`PinLog`].
#[derive(Debug)]
pub struct SimBoard {
    /// The shared change record.
    pub log: PinLog,
    /// Status LED (`"led"`).
    pub status_led: SimPin,
    /// Relay outputs (`"relay0"`, `"relay1"`, ...).
    pub relays: Vec<SimPin>,
    /// User button (`"button"`, high = pressed).
    pub button: SimPin,
    /// RS485 driver-enable pin (`"rs485_de"`).
    pub rs485_de: SimPin,
    /// The watchdog's inspection handle.
    pub watchdog: SimWatchdogHandle,
    watchdog_device: Option<SimWatchdog>,
}

impl SimBoard {
    /// A board with `relays` relay outputs and a watchdog armed with `watchdog_timeout_s`.
    pub fn new(relays: usize, watchdog_timeout_s: u32) -> Result<Self, WatchdogError> {
        let log = PinLog::new();
        let wd = SimWatchdog::open(watchdog_timeout_s)?;
        Ok(SimBoard {
            status_led: log.pin("led"),
            relays: (0..relays).map(|i| log.pin(&format!("relay{i}"))).collect(),
            button: log.pin("button"),
            rs485_de: log.pin("rs485_de"),
            watchdog: wd.handle(),
            watchdog_device: Some(wd),
            log,
        })
    }

    /// Takes the watchdog device (once) to hand it to a driver.
    pub fn take_watchdog(&mut self) -> Option<SimWatchdog> {
        self.watchdog_device.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn records_only_real_changes_with_time() {
        let log = PinLog::new();
        let mut a = log.pin("a");
        let t0 = Instant::now();
        a.set_low().unwrap(); // already low: not a change
        a.set_high().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        a.set_high().unwrap();
        a.set_low().unwrap();
        let c = log.changes_of("a");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0], (true, t0));
        assert!(!c[1].0);
        assert_eq!(c[1].1 - t0, std::time::Duration::from_millis(250));
        assert!(a.is_set_low().unwrap());
    }

    #[test]
    fn clones_share_the_line() {
        let log = PinLog::new();
        let pin = log.pin("button");
        let mut reader = pin.clone();
        pin.drive(true);
        assert!(reader.is_high().unwrap());
        assert_eq!(log.changes().len(), 1);
        log.clear();
        assert!(log.changes().is_empty());
    }
}
