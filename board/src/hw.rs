//! Opening a board's I/O: Linux GPIO character devices and the watchdog, or the
//! simulated twin, behind one concrete pin type so the supervisor holds a single
//! [`Board`] whatever it runs on.

use std::convert::Infallible;
use std::fmt;
use std::path::PathBuf;

use embedded_hal::digital::{ErrorKind, ErrorType, InputPin, OutputPin};
use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
use linux_embedded_hal::{CdevPin, CdevPinError};

use crate::description::{BoardDescription, GpioLine};
use crate::led::{ApplianceState, StatusLed};
use crate::relay::{Relay, RelayError};
use crate::sim::{PinLog, SimPin};
use crate::watchdog::{LinuxWatchdog, SimWatchdog, Watchdog, WatchdogError};

/// The label the kernel shows for lines Watchpost holds (`gpioinfo`).
pub const GPIO_CONSUMER: &str = "watchpost";

/// Failure to open a board's I/O.
#[derive(Debug, thiserror::Error)]
pub enum BoardOpenError {
    /// Requesting a GPIO line failed (chip missing, line busy, permissions).
    #[error("requesting GPIO {chip}:{line} for {purpose}: {source}")]
    RequestGpio {
        chip: PathBuf,
        line: u32,
        purpose: String,
        source: linux_embedded_hal::gpio_cdev::errors::Error,
    },
    /// Arming the watchdog failed.
    #[error(transparent)]
    Watchdog(#[from] WatchdogError),
    /// Putting a relay in its released state failed.
    #[error(transparent)]
    Relay(#[from] RelayError),
}

/// Error of a [`BoardPin`].
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// A GPIO character-device line failed.
    #[error(transparent)]
    Cdev(#[from] CdevPinError),
}

impl From<Infallible> for PinError {
    fn from(never: Infallible) -> Self {
        match never {}
    }
}

impl embedded_hal::digital::Error for PinError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

/// A digital line of a real or simulated board.
pub enum BoardPin {
    /// A Linux GPIO character-device line.
    Cdev(CdevPin),
    /// An in-memory line.
    Sim(SimPin),
}

impl fmt::Debug for BoardPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoardPin::Cdev(_) => f.write_str("BoardPin::Cdev"),
            BoardPin::Sim(p) => write!(f, "BoardPin::Sim({})", p.name()),
        }
    }
}

impl ErrorType for BoardPin {
    type Error = PinError;
}

impl OutputPin for BoardPin {
    fn set_low(&mut self) -> Result<(), PinError> {
        match self {
            BoardPin::Cdev(p) => p.set_low().map_err(PinError::from),
            BoardPin::Sim(p) => p.set_low().map_err(PinError::from),
        }
    }

    fn set_high(&mut self) -> Result<(), PinError> {
        match self {
            BoardPin::Cdev(p) => p.set_high().map_err(PinError::from),
            BoardPin::Sim(p) => p.set_high().map_err(PinError::from),
        }
    }
}

impl InputPin for BoardPin {
    fn is_high(&mut self) -> Result<bool, PinError> {
        match self {
            BoardPin::Cdev(p) => p.is_high().map_err(PinError::from),
            BoardPin::Sim(p) => p.is_high().map_err(PinError::from),
        }
    }

    fn is_low(&mut self) -> Result<bool, PinError> {
        self.is_high().map(|h| !h)
    }
}

fn request_line(spec: &GpioLine, output: bool, purpose: &str) -> Result<BoardPin, BoardOpenError> {
    let chip_path = spec.chip_path();
    let err = |source| BoardOpenError::RequestGpio {
        chip: chip_path.clone(),
        line: spec.line,
        purpose: purpose.to_owned(),
        source,
    };
    let mut chip = Chip::new(&chip_path).map_err(err)?;
    let line = chip.get_line(spec.line).map_err(err)?;
    let mut flags = if output {
        LineRequestFlags::OUTPUT
    } else {
        LineRequestFlags::INPUT
    };
    if spec.active_low {
        flags |= LineRequestFlags::ACTIVE_LOW;
    }
    // Outputs start inactive: with ACTIVE_LOW the kernel inverts, so 0 is "off" either way.
    let handle = line.request(flags, 0, GPIO_CONSUMER).map_err(err)?;
    let pin = CdevPin::new(handle).map_err(err)?;
    Ok(BoardPin::Cdev(pin))
}

/// A board's opened I/O.
#[derive(Debug)]
pub struct Board {
    /// The description it was opened from.
    pub description: BoardDescription,
    /// Status LED driver, if the board has one.
    pub status_led: Option<StatusLed<BoardPin>>,
    /// Relay outputs, released.
    pub relays: Vec<Relay<BoardPin>>,
    /// User button line (high = pressed), for [`crate::button::run_button`].
    pub button: Option<BoardPin>,
    /// Armed hardware watchdog, if requested and present.
    pub watchdog: Option<Box<dyn Watchdog>>,
}

impl Board {
    /// Opens the GPIO lines of `description` and, when `arm_watchdog` is true and the
    /// board has one, arms its hardware watchdog. Either everything opens or nothing
    /// stays held (lines are released on error; an armed watchdog is magic-closed).
    pub fn open_linux(
        description: BoardDescription,
        arm_watchdog: bool,
    ) -> Result<Board, BoardOpenError> {
        let status_led = description
            .status_led
            .as_ref()
            .map(|spec| request_line(spec, true, "status LED"))
            .transpose()?
            .map(|pin| StatusLed::new(pin, ApplianceState::Booting));
        let mut relays = Vec::with_capacity(description.relays.len());
        for spec in &description.relays {
            let pin = request_line(&spec.gpio(), true, &format!("relay {}", spec.name))?;
            relays.push(Relay::new(spec.name.clone(), pin)?);
        }
        let button = description
            .button
            .as_ref()
            .map(|spec| request_line(spec, false, "button"))
            .transpose()?;
        let watchdog = match (&description.watchdog, arm_watchdog) {
            (Some(spec), true) => {
                Some(Box::new(LinuxWatchdog::open(&spec.device, spec.timeout_s)?)
                    as Box<dyn Watchdog>)
            }
            _ => None,
        };
        Ok(Board {
            description,
            status_led,
            relays,
            button,
            watchdog,
        })
    }

    /// The same board on simulated pins recording into `log` (pin names: `led`,
    /// `relay:<name>`, `button`), with a simulated watchdog when `arm_watchdog` is true
    /// and the description has one.
    pub fn simulated(
        description: BoardDescription,
        log: &PinLog,
        arm_watchdog: bool,
    ) -> Result<Board, BoardOpenError> {
        let status_led = description
            .status_led
            .as_ref()
            .map(|_| StatusLed::new(BoardPin::Sim(log.pin("led")), ApplianceState::Booting));
        let mut relays = Vec::with_capacity(description.relays.len());
        for spec in &description.relays {
            let pin = BoardPin::Sim(log.pin(&format!("relay:{}", spec.name)));
            relays.push(Relay::new(spec.name.clone(), pin)?);
        }
        let button = description
            .button
            .as_ref()
            .map(|_| BoardPin::Sim(log.pin("button")));
        let watchdog = match (&description.watchdog, arm_watchdog) {
            (Some(spec), true) => {
                Some(Box::new(SimWatchdog::open(spec.timeout_s)?) as Box<dyn Watchdog>)
            }
            _ => None,
        };
        Ok(Board {
            description,
            status_led,
            relays,
            button,
            watchdog,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::description::by_name;

    #[tokio::test(start_paused = true)]
    async fn simulated_board_follows_its_description() {
        let log = PinLog::new();
        let mut board = Board::simulated(by_name("rpi4").unwrap(), &log, true).unwrap();
        assert_eq!(board.relays.len(), 2);
        assert!(board.button.is_some());
        let mut wd = board.watchdog.take().unwrap();
        assert_eq!(wd.timeout().unwrap(), 15);
        wd.keepalive().unwrap();
        wd.close().unwrap();
        board.relays[1].set(true).unwrap();
        let led = board.status_led.as_mut().unwrap();
        led.update(tokio::time::Instant::now()).unwrap();
        let pins: Vec<String> = log.changes().into_iter().map(|c| c.pin).collect();
        assert_eq!(pins, vec!["relay:relay1".to_owned(), "led".to_owned()]);
        let generic = Board::simulated(by_name("generic").unwrap(), &log, true).unwrap();
        assert!(generic.status_led.is_none() && generic.watchdog.is_none());
    }

    #[test]
    fn missing_gpio_chip_is_a_named_error() {
        let mut desc = by_name("rpi4").unwrap();
        desc.status_led = Some(GpioLine {
            chip: "/nonexistent/gpiochip9".into(),
            line: 3,
            active_low: false,
        });
        let err = Board::open_linux(desc, false).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/nonexistent/gpiochip9:3") && msg.contains("status LED"),
            "{msg}"
        );
    }
}
