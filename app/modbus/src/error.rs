//! Errors of the codecs.

use crate::pdu::ExceptionCode;

/// A PDU that cannot be decoded. Each variant names the function code and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    #[error("empty PDU")]
    Empty,
    #[error("PDU of {len} bytes is longer than the 253 Modbus allows")]
    TooLong { len: usize },
    #[error("function {function:#04x}: PDU is {got} bytes, expected {expected}")]
    Length {
        function: u8,
        expected: usize,
        got: usize,
    },
    #[error("function {function:#04x}: quantity {count} outside 1..={max}")]
    Quantity { function: u8, count: u16, max: u16 },
    #[error("function {function:#04x}: byte count {got}, expected {expected}")]
    ByteCount {
        function: u8,
        expected: usize,
        got: usize,
    },
    #[error("function {function:#04x}: {count} items from address {address} run past 0xFFFF")]
    AddressRange {
        function: u8,
        address: u16,
        count: u16,
    },
    #[error("coil value {value:#06x} is neither 0xFF00 nor 0x0000")]
    CoilValue { value: u16 },
    #[error("function {function:#04x} is not a response this crate decodes")]
    UnknownResponse { function: u8 },
}

impl PduError {
    /// The exception a server answers a request that failed to decode with this error.
    pub fn exception(&self) -> ExceptionCode {
        match self {
            // A frame that passed its CRC but has the wrong shape for its function: the
            // request's values are wrong, which is what "illegal data value" says.
            Self::Empty
            | Self::TooLong { .. }
            | Self::Length { .. }
            | Self::Quantity { .. }
            | Self::ByteCount { .. }
            | Self::CoilValue { .. } => ExceptionCode::IllegalDataValue,
            Self::AddressRange { .. } => ExceptionCode::IllegalDataAddress,
            Self::UnknownResponse { .. } => ExceptionCode::IllegalFunction,
        }
    }
}

/// A response that does not answer the request it was read for (master side).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("decoding the response: {0}")]
    Decode(#[from] PduError),
    #[error("response from unit {got} to a request for unit {expected}")]
    WrongUnit { expected: u8, got: u8 },
    #[error("response with transaction id {got} to request {expected}")]
    WrongTransaction { expected: u16, got: u16 },
    #[error("response function {got:#04x} to a request with function {expected:#04x}")]
    WrongFunction { expected: u8, got: u8 },
    #[error("the device answered with exception {code} to function {function:#04x}")]
    Exception { function: u8, code: ExceptionCode },
}
