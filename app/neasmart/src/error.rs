//! Errors of the Neasmart core: each names the value that was refused.

use crate::codes::NeasmartCode;

/// A value that does not fit the register map or cannot be written as a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("base {base} is outside 1..=5")]
    BaseOutOfRange { base: u8 },
    #[error("zone {zone} is outside 1..=12")]
    ZoneOutOfRange { zone: u8 },
    #[error("mixed group {id} is outside 1..=3")]
    MixedGroupOutOfRange { id: u8 },
    #[error("dehumidifier {id} is outside 1..=9")]
    DehumidifierOutOfRange { id: u8 },
    #[error("pump {id} is outside 1..=5")]
    PumpOutOfRange { id: u8 },
    #[error("mode {mode} is outside 1..=5")]
    ModeOutOfRange { mode: i64 },
    #[error("state {state} is outside 1..=6")]
    StateOutOfRange { state: i64 },
    #[error("setpoint {celsius} °C cannot be sent to the base")]
    SetpointNotEncodable { celsius: f64 },
}

impl ModelError {
    /// The area's error code for API and bus replies.
    pub fn code(&self) -> NeasmartCode {
        match self {
            Self::BaseOutOfRange { .. } => NeasmartCode::InvalidBase,
            Self::ZoneOutOfRange { .. } => NeasmartCode::InvalidZone,
            Self::MixedGroupOutOfRange { .. } => NeasmartCode::InvalidMixedGroup,
            Self::DehumidifierOutOfRange { .. } => NeasmartCode::InvalidDehumidifier,
            Self::PumpOutOfRange { .. } => NeasmartCode::InvalidPump,
            Self::ModeOutOfRange { .. } => NeasmartCode::InvalidMode,
            Self::StateOutOfRange { .. } => NeasmartCode::InvalidState,
            Self::SetpointNotEncodable { .. } => NeasmartCode::InvalidSetpoint,
        }
    }
}
