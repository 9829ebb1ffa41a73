//! Board support for the Watchpost appliance.
//!
//! Role: everything that touches the gateway board itself: the hardware watchdog,
//! status LED patterns, relay outputs, the user button, RS485 direction control, and
//! the description of each supported board.
//!
//! Design: drivers are generic over the `embedded-hal` 1.0 traits (`OutputPin`,
//! `InputPin`), with Linux implementations from `linux-embedded-hal` (GPIO character
//! device) and `nix` ioctls (watchdog, kernel RS485 mode). Every hardware boundary has
//! an in-memory twin (simulated pins that record each change with a timestamp, a
//! simulated watchdog) so the drivers are tested without hardware. The only `unsafe`
//! code is the ioctl wrappers, each with its `SAFETY:` note.
//!
//! Failure and shutdown: every operation returns a typed error naming the device; no
//! driver panics on I/O errors. On an orderly shutdown the watchdog is disarmed with
//! the magic close; a crash leaves it armed on purpose so the board resets.
#![deny(unsafe_code)]

pub mod button;
pub mod description;
pub mod hw;
pub mod led;
pub mod relay;
pub mod rs485;
pub mod sim;
pub mod watchdog;

pub use button::{ButtonAction, ButtonConfig, ButtonMachine};
pub use description::{BoardDescription, BoardError, detect};
pub use hw::{Board, BoardOpenError, BoardPin};
pub use led::{ApplianceState, LedPattern, StatusLed};
pub use relay::{Relay, RelayError};
pub use rs485::{GpioRs485, KernelRs485, Rs485Config, Rs485Direction, Rs485Error};
pub use sim::{PinLog, SimBoard, SimPin};
pub use watchdog::{LinuxWatchdog, SimWatchdog, SimWatchdogHandle, Watchdog, WatchdogError};
