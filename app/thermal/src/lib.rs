//! Radiometric thermal frames for the `capture` worker.
//!
//! **Role.** Thermal cameras deliver raw 16-bit counts, not pictures. This crate turns those
//! counts into a matrix of temperatures in °C ([`Thermogram`]), computes statistics over the
//! whole frame or a region (min, max, mean, hottest and coldest spot), colours a thermogram
//! with a palette (ironbow, rainbow, white-hot) with an optional overlay that marks the hottest
//! spot and prints its temperature, and evaluates temperature rules ("region above 60 °C for
//! 10 s") with hysteresis.
//!
//! **Design.** Everything is pure: bytes in, values out, no I/O and no clock of its own. Rules
//! take the current time as an argument (milliseconds of a monotonic clock chosen by the
//! caller, see [`Clock`]), so tests drive them with a [`ManualClock`]. Two raw formats are
//! understood ([`RawFormat`]):
//!
//! - `CentiKelvin16`: one little-endian `u16` per pixel in units of 0.01 K, the radiometric
//!   "Y16" output of Lepton-based boards (PureThermal and similar) with TLinear enabled;
//! - `SplitFrame`: the layout of common USB thermal cameras that present one tall YUYV frame
//!   whose upper half is the grey picture and whose lower half holds one `u16` per pixel in
//!   units of 1/64 K.
//!
//! The inverse encoders ([`encode_centikelvin`], [`encode_split_frame`]) exist for the
//! simulator and tests, which build frames with known temperatures.
//!
//! [`wire`] frames raw buffers over a byte stream (the simulator's thermal camera and the
//! capture worker's `thermal_tcp` source), and [`synthetic`] builds a scene with known
//! temperatures.
//!
//! **Failure.** Malformed input (wrong buffer length, zero dimensions, a region outside the
//! frame) is reported as a [`ThermalError`] naming the offending values; nothing panics on
//! device data.
#![forbid(unsafe_code)]

mod clock;
mod error;
mod overlay;
mod palette;
mod raw;
mod rules;
pub mod synthetic;
mod thermogram;
pub mod wire;

pub use clock::{Clock, ManualClock, MonotonicClock};
pub use error::ThermalError;
pub use overlay::draw_hotspot_overlay;
pub use palette::{ColourRange, Palette, RgbImage, colourise};
pub use raw::{
    CENTIKELVIN_SCALE_K, RawFormat, SPLIT_FRAME_SCALE_K, SplitFrame, decode, decode_split_frame,
    encode_centikelvin, encode_split_frame,
};
pub use rules::{
    Comparison, Rule, RuleEngine, RuleEvent, RuleSpec, RuleState, RuleTransition, Statistic,
};
pub use thermogram::{Region, Spot, Stats, Thermogram};

/// 0 °C in kelvin.
pub const ZERO_CELSIUS_K: f64 = 273.15;
