//! The sans-IO core of the Rehau Neasmart 2.0 SysBus gateway.
//!
//! Role: the appliance stands in for REHAU's KNX gateway on the SysBus: the base station is the
//! Modbus master, polls the gateway as slave 240/241 and writes its status into it. This crate
//! is that slave's brain without any I/O: the register map ([`map`]), the KNX DPT 9 temperature
//! encoding ([`dpt9`]), the register store with the pending-command protocol and freshness
//! ([`model`]), and the area's bus contract: its topics ([`topics`]), the retained state
//! ([`state`]) and the original add-on's JSON views the REST API serves ([`views`]), the typed
//! commands and replies ([`commands`]), their validators ([`api`]) and error codes
//! ([`codes`]). The fieldbus
//! worker feeds it decoded Modbus requests through [`model::Model::bus`] (a
//! [`watchpost_modbus::RegisterBank`]) and API commands through [`model::Model::command`].
//!
//! Design: one store of 65 536 registers serves every unit id, as the original gateway does.
//! Command registers (global mode/state, zone state/setpoint) are read by the base and written
//! by both sides on the same address; a command from the API is protected against the base's
//! status writes until the base has read it or a timeout passes, and command registers are
//! never restored after a restart (replaying them pushed stale presets to users' systems).
//! Time is passed in by the caller, so every rule is tested with chosen instants.
//!
//! Failure: invalid identifiers and values are refused with a [`ModelError`] naming the value;
//! nothing a bus peer sends can make the model fail (every register is writable and readable).
//! There is nothing to shut down; persisting measurements is the worker's job.
#![forbid(unsafe_code)]

pub mod api;
pub mod codes;
pub mod commands;
pub mod dpt9;
mod error;
pub mod map;
pub mod model;
pub mod state;
pub mod topics;
pub mod views;

pub use codes::NeasmartCode;
pub use error::ModelError;
pub use map::{DehumidifierId, Entity, MixedGroupId, Mode, PumpId, State, ZoneId};
pub use model::{Command, Freshness, Model, ModelConfig, Pending, PendingStats, Setpoint};
