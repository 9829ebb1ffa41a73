//! The JSON shapes of the gateway's state, as the original add-on's REST API returns them (the
//! Home Assistant integration for it reads exactly these keys). The fieldbus worker publishes
//! them as retained bus messages (zone and global state with more fields, [`crate::state`])
//! and the hub serves them.

use serde::{Deserialize, Serialize};

/// `GET /zones/{base}/{zone}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ZoneView {
    /// Operating state 1..=6, 0 = unknown.
    pub state: u16,
    /// °C, `null` when not applicable (standby) or not yet known.
    pub setpoint: Option<f64>,
    /// °C, `null` when not yet known.
    pub temperature: Option<f64>,
    /// %, 0 when the zone has no humidity sensor.
    pub relative_humidity: u16,
}

/// `GET /mixedgroups/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MixedGroupView {
    pub pump_state: u16,
    pub mixing_valve_opening_percentage: u16,
    pub flow_temperature: Option<f64>,
    pub return_temperature: Option<f64>,
}

/// `GET /outsidetemperature`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutsideView {
    pub outside_temperature: Option<f64>,
    pub filtered_outside_temperature: Option<f64>,
}

/// `GET /notifications`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NotificationsView {
    pub hints_present: bool,
    pub warnings_present: bool,
    pub error_present: bool,
}

/// Global mode and state (`GET /mode` returns `{"mode"}`, `GET /state` returns `{"state"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalView {
    pub mode: u16,
    pub state: u16,
}

/// `GET /mode` and the answer to `POST /mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModeView {
    pub mode: u16,
}

/// `GET /state` and the answer to `POST /state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StateView {
    pub state: u16,
}

/// `GET /dehumidifiers/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DehumidifierView {
    pub dehumidifier_state: u16,
}

/// `GET /pumps/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PumpView {
    pub pump_state: u16,
}

/// Freshness of the data and the gateway's counters, published on the status topic and used
/// for the staleness headers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusView {
    /// Whether any bus write arrived within `stale_after_seconds`.
    pub registers_receiving_updates: bool,
    pub registers_stale: bool,
    /// Seconds since the last bus write when the status was published, `null` if none yet.
    pub registers_age_seconds: Option<f64>,
    /// Wall-clock time of the last bus write (RFC 3339, UTC, `Z`), `null` if none yet.
    pub last_register_write: Option<String>,
    /// Milliseconds since the Unix epoch of the last bus write, for recomputing the age.
    pub last_register_write_unix_ms: Option<u64>,
    pub stale_after_seconds: u64,
    pub command_sync_timeout_seconds: u64,
    pub pending_command_registers: usize,
    pub persist_command_registers: bool,
    pub startup_global_mode: u8,
    pub startup_global_state: u8,
}
