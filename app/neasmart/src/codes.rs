//! Why the gateway refuses a command: the error codes of the Neasmart area, shared by the
//! validators ([`crate::api`]), the model's errors ([`crate::ModelError::code`]), the fieldbus
//! worker's replies and the hub, which maps each to an HTTP status.

watchpost_contract::error_codes! {
    /// A refused Neasmart command or identifier.
    pub enum NeasmartCode {
        #[invalid_body]
        /// The body is not a JSON object, or a field has the wrong type.
        InvalidBody = "INVALID_BODY",
        /// The base is outside 1..=5.
        InvalidBase = "INVALID_BASE",
        /// The zone is outside 1..=12.
        InvalidZone = "INVALID_ZONE",
        /// The mixed group is outside 1..=3.
        InvalidMixedGroup = "INVALID_MIXED_GROUP",
        /// The dehumidifier is outside 1..=9.
        InvalidDehumidifier = "INVALID_DEHUMIDIFIER",
        /// The pump is outside 1..=5.
        InvalidPump = "INVALID_PUMP",
        /// The mode is outside 1..=5.
        InvalidMode = "INVALID_MODE",
        /// The state is outside 1..=6.
        InvalidState = "INVALID_STATE",
        /// The setpoint cannot be encoded for the base (DPT 9 range or a sentinel).
        InvalidSetpoint = "INVALID_SETPOINT",
        /// The setpoint is outside the installation's configured range.
        SetpointOutOfRange = "SETPOINT_OUT_OF_RANGE",
        /// The command names nothing to change.
        EmptyCommand = "EMPTY_COMMAND",
        /// No command is served on the topic.
        UnknownCommand = "UNKNOWN_COMMAND",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_their_wire_spelling() {
        for code in NeasmartCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::from(code.as_str()));
            assert_eq!(serde_json::from_value::<NeasmartCode>(json).unwrap(), *code);
        }
        assert_eq!(NeasmartCode::ALL.len(), 12);
        assert_eq!(
            NeasmartCode::SetpointOutOfRange.to_string(),
            "SETPOINT_OUT_OF_RANGE"
        );
    }
}
