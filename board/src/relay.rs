//! Relay outputs on GPIO lines.
//!
//! A relay is a named `OutputPin` whose logical high means "energised" (active-low
//! wiring is handled when the line is requested, see [`crate::linux`]). It can be set,
//! or pulsed for a duration, which is how an alarm output drives a siren, a strobe or
//! a door strike, the same way a Modbus relay module is driven by the fieldbus worker.
//!
//! A pulse always ends with the relay released, also when the pulse future is
//! dropped half-way (cancelled on shutdown): [`Relay::pulse`] holds a guard that
//! releases the relay on drop.

use std::time::Duration;

use embedded_hal::digital::OutputPin;

/// Switching a relay failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Writing the GPIO line failed.
    #[error("switching relay {relay} to {}: {kind:?}", if *on { "on" } else { "off" })]
    Switch {
        /// The relay's name.
        relay: String,
        /// The requested state.
        on: bool,
        /// The HAL's classification of the failure.
        kind: embedded_hal::digital::ErrorKind,
    },
    /// A pulse of zero length or longer than [`MAX_PULSE`] was requested.
    #[error("pulse of {duration_ms} ms on relay {relay} is out of range 1..={} ms", MAX_PULSE.as_millis())]
    PulseOutOfRange {
        /// The relay's name.
        relay: String,
        /// The requested length.
        duration_ms: u128,
    },
}

/// Longest pulse accepted: one hour. Longer activations are a plain `set(true)`.
pub const MAX_PULSE: Duration = Duration::from_secs(3600);

/// One relay output.
#[derive(Debug)]
pub struct Relay<P> {
    name: String,
    pin: P,
    on: bool,
}

impl<P: OutputPin> Relay<P> {
    /// Takes over `pin` and releases the relay (a known state after start-up).
    pub fn new(name: impl Into<String>, pin: P) -> Result<Self, RelayError> {
        let mut relay = Relay {
            name: name.into(),
            pin,
            on: true,
        };
        relay.set(false)?;
        Ok(relay)
    }

    /// The relay's name from the board description.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the relay is energised.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Energises (`true`) or releases the relay.
    pub fn set(&mut self, on: bool) -> Result<(), RelayError> {
        let res = if on {
            self.pin.set_high()
        } else {
            self.pin.set_low()
        };
        res.map_err(|e| RelayError::Switch {
            relay: self.name.clone(),
            on,
            kind: embedded_hal::digital::Error::kind(&e),
        })?;
        self.on = on;
        Ok(())
    }

    /// Energises the relay for `duration`, then releases it. If the future is dropped
    /// before the end, the relay is released at the drop.
    pub async fn pulse(&mut self, duration: Duration) -> Result<(), RelayError> {
        if duration.is_zero() || duration > MAX_PULSE {
            return Err(RelayError::PulseOutOfRange {
                relay: self.name.clone(),
                duration_ms: duration.as_millis(),
            });
        }
        self.set(true)?;
        let mut guard = ReleaseOnDrop {
            relay: Some(&mut *self),
        };
        tokio::time::sleep(duration).await;
        match guard.relay.take() {
            Some(relay) => relay.set(false),
            None => Ok(()),
        }
    }
}

struct ReleaseOnDrop<'a, P: OutputPin> {
    relay: Option<&'a mut Relay<P>>,
}

impl<P: OutputPin> Drop for ReleaseOnDrop<'_, P> {
    fn drop(&mut self) {
        if let Some(relay) = self.relay.take()
            && let Err(err) = relay.set(false)
        {
            tracing::error!(error = %err, "releasing relay after a cancelled pulse failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::PinLog;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn pulse_holds_for_exactly_the_duration() {
        let log = PinLog::new();
        let mut relay = Relay::new("siren", log.pin("relay0")).unwrap();
        let t0 = Instant::now();
        relay.pulse(Duration::from_millis(1500)).await.unwrap();
        let c = log.changes_of("relay0");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0], (true, t0));
        assert_eq!(c[1], (false, t0 + Duration::from_millis(1500)));
        assert!(!relay.is_on());
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_pulse_releases_the_relay() {
        let log = PinLog::new();
        let mut relay = Relay::new("strike", log.pin("relay1")).unwrap();
        let t0 = Instant::now();
        let res = tokio::time::timeout(
            Duration::from_millis(200),
            relay.pulse(Duration::from_secs(5)),
        )
        .await;
        assert!(res.is_err(), "the pulse must still be running at 200 ms");
        let c = log.changes_of("relay1");
        assert_eq!(
            c,
            vec![(true, t0), (false, t0 + Duration::from_millis(200))]
        );
        assert!(!relay.is_on());
    }

    #[tokio::test(start_paused = true)]
    async fn out_of_range_pulses_are_refused_without_switching() {
        let log = PinLog::new();
        let mut relay = Relay::new("r", log.pin("r")).unwrap();
        for d in [Duration::ZERO, MAX_PULSE + Duration::from_millis(1)] {
            assert!(matches!(
                relay.pulse(d).await,
                Err(RelayError::PulseOutOfRange { .. })
            ));
        }
        assert!(log.changes_of("r").is_empty());
        relay.set(true).unwrap();
        assert!(relay.is_on());
        assert_eq!(relay.name(), "r");
    }
}
