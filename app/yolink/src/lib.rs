//! YoLink as pure data: MQTT report payloads, the HTTP API's request/response envelopes and
//! token responses, and their normalisation into the appliance's sensor model.
//!
//! **Role.** The `bridge` worker feeds every report it receives from the YoLink cloud broker or
//! a YoLink Local Hub through [`parse_report`] and [`Sensor::apply`], and publishes the
//! resulting [`Sensor`] on the internal bus; the alarm engine in the hub only ever sees that
//! model, never YoLink JSON.
//!
//! **Design.** Sans-IO and clock-free: functions take bytes and the current time in
//! milliseconds and return values. Parsing is lenient about what YoLink may add (unknown
//! fields and event names are ignored) and strict about what it relies on (a report without a
//! device id or event name is an error). A report's effect on a sensor is described by a
//! [`Reading`]; [`Sensor::apply`] merges it and derives the sensor's active
//! [`Condition`]s (intrusion, water, smoke, CO, heat, freeze, low battery, fault, offline…),
//! which are what alarm rules act on. Settings echoes (`DoorSensor.setOpenRemind` and
//! similar) update "last seen" only. Battery is YoLink's 0–4 level, not a percentage.
//!
//! **Failure.** [`YolinkError`] names the failing operation and carries an excerpt of the
//! input. Nothing panics on any input (a fuzz target checks this).
//!
//! **Shutdown.** Nothing to do: the crate holds no resources.

#![forbid(unsafe_code)]

pub mod api;
mod error;
mod report;
mod sensor;

pub use error::YolinkError;
pub use report::{EventName, Report, parse_report};
pub use sensor::{Condition, DeviceClass, Reading, Sensor, SensorKind, SensorState, Update, read};
