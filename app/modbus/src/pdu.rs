//! The protocol data unit (function code + data), common to RTU and TCP: requests and responses,
//! their encoding and decoding, and the length a PDU must have judging from its first bytes
//! (which RTU framing needs, because an RTU frame carries no length).

use crate::error::PduError;

/// Largest PDU: 253 bytes (an RTU frame is at most 256 bytes with address and CRC).
pub const MAX_PDU_LEN: usize = 253;
/// Most registers one FC03/FC04 read may return.
pub const MAX_READ_REGISTERS: u16 = 125;
/// Most registers one FC16 write may carry.
pub const MAX_WRITE_REGISTERS: u16 = 123;
/// Most registers the write part of an FC23 may carry.
pub const MAX_RW_WRITE_REGISTERS: u16 = 121;
/// Most coils one FC01/FC02 read may return.
pub const MAX_READ_COILS: u16 = 2000;
/// Most coils one FC15 write may carry.
pub const MAX_WRITE_COILS: u16 = 1968;

/// Function codes this crate knows.
pub mod function {
    pub const READ_COILS: u8 = 0x01;
    pub const READ_DISCRETE_INPUTS: u8 = 0x02;
    pub const READ_HOLDING_REGISTERS: u8 = 0x03;
    pub const READ_INPUT_REGISTERS: u8 = 0x04;
    pub const WRITE_SINGLE_COIL: u8 = 0x05;
    pub const WRITE_SINGLE_REGISTER: u8 = 0x06;
    pub const WRITE_MULTIPLE_COILS: u8 = 0x0F;
    pub const WRITE_MULTIPLE_REGISTERS: u8 = 0x10;
    pub const MASK_WRITE_REGISTER: u8 = 0x16;
    pub const READ_WRITE_MULTIPLE_REGISTERS: u8 = 0x17;
    /// Set in the function code of an exception response.
    pub const EXCEPTION_FLAG: u8 = 0x80;
}

use function as fc;

/// A Modbus exception code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExceptionCode {
    IllegalFunction,
    IllegalDataAddress,
    IllegalDataValue,
    ServerDeviceFailure,
    Acknowledge,
    ServerDeviceBusy,
    GatewayPathUnavailable,
    GatewayTargetFailedToRespond,
    /// Any other code a peer sent.
    Other(u8),
}

impl ExceptionCode {
    pub fn code(self) -> u8 {
        match self {
            Self::IllegalFunction => 0x01,
            Self::IllegalDataAddress => 0x02,
            Self::IllegalDataValue => 0x03,
            Self::ServerDeviceFailure => 0x04,
            Self::Acknowledge => 0x05,
            Self::ServerDeviceBusy => 0x06,
            Self::GatewayPathUnavailable => 0x0A,
            Self::GatewayTargetFailedToRespond => 0x0B,
            Self::Other(c) => c,
        }
    }

    pub fn from_code(code: u8) -> Self {
        match code {
            0x01 => Self::IllegalFunction,
            0x02 => Self::IllegalDataAddress,
            0x03 => Self::IllegalDataValue,
            0x04 => Self::ServerDeviceFailure,
            0x05 => Self::Acknowledge,
            0x06 => Self::ServerDeviceBusy,
            0x0A => Self::GatewayPathUnavailable,
            0x0B => Self::GatewayTargetFailedToRespond,
            c => Self::Other(c),
        }
    }
}

impl std::fmt::Display for ExceptionCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Self::IllegalFunction => "illegal function",
            Self::IllegalDataAddress => "illegal data address",
            Self::IllegalDataValue => "illegal data value",
            Self::ServerDeviceFailure => "server device failure",
            Self::Acknowledge => "acknowledge",
            Self::ServerDeviceBusy => "server device busy",
            Self::GatewayPathUnavailable => "gateway path unavailable",
            Self::GatewayTargetFailedToRespond => "gateway target failed to respond",
            Self::Other(_) => "exception",
        };
        write!(f, "{name} ({:#04x})", self.code())
    }
}

/// A request PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    ReadCoils {
        address: u16,
        count: u16,
    },
    ReadDiscreteInputs {
        address: u16,
        count: u16,
    },
    ReadHoldingRegisters {
        address: u16,
        count: u16,
    },
    ReadInputRegisters {
        address: u16,
        count: u16,
    },
    WriteSingleCoil {
        address: u16,
        on: bool,
    },
    WriteSingleRegister {
        address: u16,
        value: u16,
    },
    WriteMultipleCoils {
        address: u16,
        values: Vec<bool>,
    },
    WriteMultipleRegisters {
        address: u16,
        values: Vec<u16>,
    },
    MaskWriteRegister {
        address: u16,
        and_mask: u16,
        or_mask: u16,
    },
    ReadWriteMultipleRegisters {
        read_address: u16,
        read_count: u16,
        write_address: u16,
        values: Vec<u16>,
    },
    /// A function code this crate does not decode; `data` is everything after it.
    Other {
        function: u8,
        data: Vec<u8>,
    },
}

/// A response PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Coil states; as many as the byte count covers (the caller knows how many it asked for).
    ReadCoils(Vec<bool>),
    ReadDiscreteInputs(Vec<bool>),
    ReadHoldingRegisters(Vec<u16>),
    ReadInputRegisters(Vec<u16>),
    WriteSingleCoil {
        address: u16,
        on: bool,
    },
    WriteSingleRegister {
        address: u16,
        value: u16,
    },
    WriteMultipleCoils {
        address: u16,
        count: u16,
    },
    WriteMultipleRegisters {
        address: u16,
        count: u16,
    },
    MaskWriteRegister {
        address: u16,
        and_mask: u16,
        or_mask: u16,
    },
    ReadWriteMultipleRegisters(Vec<u16>),
    Exception {
        function: u8,
        code: ExceptionCode,
    },
}

/// What the first bytes of a PDU say about its total length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PduLen {
    /// The PDU is exactly this many bytes long.
    Known(usize),
    /// More bytes are needed before the length can be told (e.g. the byte count).
    NeedMore,
    /// The function code has no length rule this crate knows.
    Unknown,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The length of a request PDU that starts with `pdu`.
pub fn request_len(pdu: &[u8]) -> PduLen {
    let Some(&function) = pdu.first() else {
        return PduLen::NeedMore;
    };
    match function {
        fc::READ_COILS
        | fc::READ_DISCRETE_INPUTS
        | fc::READ_HOLDING_REGISTERS
        | fc::READ_INPUT_REGISTERS
        | fc::WRITE_SINGLE_COIL
        | fc::WRITE_SINGLE_REGISTER => PduLen::Known(5),
        fc::WRITE_MULTIPLE_COILS | fc::WRITE_MULTIPLE_REGISTERS => match pdu.get(5) {
            Some(&n) => PduLen::Known(6 + usize::from(n)),
            None => PduLen::NeedMore,
        },
        fc::MASK_WRITE_REGISTER => PduLen::Known(7),
        fc::READ_WRITE_MULTIPLE_REGISTERS => match pdu.get(9) {
            Some(&n) => PduLen::Known(10 + usize::from(n)),
            None => PduLen::NeedMore,
        },
        _ => PduLen::Unknown,
    }
}

/// The length of a response PDU that starts with `pdu`.
pub fn response_len(pdu: &[u8]) -> PduLen {
    let Some(&function) = pdu.first() else {
        return PduLen::NeedMore;
    };
    if function & fc::EXCEPTION_FLAG != 0 {
        return PduLen::Known(2);
    }
    match function {
        fc::READ_COILS
        | fc::READ_DISCRETE_INPUTS
        | fc::READ_HOLDING_REGISTERS
        | fc::READ_INPUT_REGISTERS
        | fc::READ_WRITE_MULTIPLE_REGISTERS => match pdu.get(1) {
            Some(&n) => PduLen::Known(2 + usize::from(n)),
            None => PduLen::NeedMore,
        },
        fc::WRITE_SINGLE_COIL
        | fc::WRITE_SINGLE_REGISTER
        | fc::WRITE_MULTIPLE_COILS
        | fc::WRITE_MULTIPLE_REGISTERS => PduLen::Known(5),
        fc::MASK_WRITE_REGISTER => PduLen::Known(7),
        _ => PduLen::Unknown,
    }
}

fn expect_len(function: u8, pdu: &[u8], expected: usize) -> Result<(), PduError> {
    if pdu.len() == expected {
        Ok(())
    } else {
        Err(PduError::Length {
            function,
            expected,
            got: pdu.len(),
        })
    }
}

fn quantity(function: u8, count: u16, max: u16) -> Result<u16, PduError> {
    if (1..=max).contains(&count) {
        Ok(count)
    } else {
        Err(PduError::Quantity {
            function,
            count,
            max,
        })
    }
}

fn range(function: u8, address: u16, count: u16) -> Result<(), PduError> {
    if u32::from(address) + u32::from(count) > 0x1_0000 {
        Err(PduError::AddressRange {
            function,
            address,
            count,
        })
    } else {
        Ok(())
    }
}

fn registers(data: &[u8]) -> Vec<u16> {
    data.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

fn bits(data: &[u8], count: usize) -> Vec<bool> {
    (0..count)
        .map(|i| data[i / 8] & (1 << (i % 8)) != 0)
        .collect()
}

fn pack_bits(values: &[bool], out: &mut Vec<u8>) {
    for chunk in values.chunks(8) {
        let mut byte = 0u8;
        for (i, &on) in chunk.iter().enumerate() {
            if on {
                byte |= 1 << i;
            }
        }
        out.push(byte);
    }
}

impl Request {
    /// The function code.
    pub fn function(&self) -> u8 {
        match self {
            Self::ReadCoils { .. } => fc::READ_COILS,
            Self::ReadDiscreteInputs { .. } => fc::READ_DISCRETE_INPUTS,
            Self::ReadHoldingRegisters { .. } => fc::READ_HOLDING_REGISTERS,
            Self::ReadInputRegisters { .. } => fc::READ_INPUT_REGISTERS,
            Self::WriteSingleCoil { .. } => fc::WRITE_SINGLE_COIL,
            Self::WriteSingleRegister { .. } => fc::WRITE_SINGLE_REGISTER,
            Self::WriteMultipleCoils { .. } => fc::WRITE_MULTIPLE_COILS,
            Self::WriteMultipleRegisters { .. } => fc::WRITE_MULTIPLE_REGISTERS,
            Self::MaskWriteRegister { .. } => fc::MASK_WRITE_REGISTER,
            Self::ReadWriteMultipleRegisters { .. } => fc::READ_WRITE_MULTIPLE_REGISTERS,
            Self::Other { function, .. } => *function,
        }
    }

    /// Decodes a request PDU. Quantities and address ranges are checked as the Modbus
    /// application protocol requires, so a decoded request is always one a server can act on.
    pub fn decode(pdu: &[u8]) -> Result<Self, PduError> {
        let (&function, data) = pdu.split_first().ok_or(PduError::Empty)?;
        if pdu.len() > MAX_PDU_LEN {
            return Err(PduError::TooLong { len: pdu.len() });
        }
        match function {
            fc::READ_COILS
            | fc::READ_DISCRETE_INPUTS
            | fc::READ_HOLDING_REGISTERS
            | fc::READ_INPUT_REGISTERS => {
                expect_len(function, pdu, 5)?;
                let address = be16(data, 0);
                let max = if function <= fc::READ_DISCRETE_INPUTS {
                    MAX_READ_COILS
                } else {
                    MAX_READ_REGISTERS
                };
                let count = quantity(function, be16(data, 2), max)?;
                range(function, address, count)?;
                Ok(match function {
                    fc::READ_COILS => Self::ReadCoils { address, count },
                    fc::READ_DISCRETE_INPUTS => Self::ReadDiscreteInputs { address, count },
                    fc::READ_HOLDING_REGISTERS => Self::ReadHoldingRegisters { address, count },
                    _ => Self::ReadInputRegisters { address, count },
                })
            }
            fc::WRITE_SINGLE_COIL => {
                expect_len(function, pdu, 5)?;
                let on = match be16(data, 2) {
                    0xFF00 => true,
                    0x0000 => false,
                    value => return Err(PduError::CoilValue { value }),
                };
                Ok(Self::WriteSingleCoil {
                    address: be16(data, 0),
                    on,
                })
            }
            fc::WRITE_SINGLE_REGISTER => {
                expect_len(function, pdu, 5)?;
                Ok(Self::WriteSingleRegister {
                    address: be16(data, 0),
                    value: be16(data, 2),
                })
            }
            fc::WRITE_MULTIPLE_COILS | fc::WRITE_MULTIPLE_REGISTERS => {
                if pdu.len() < 6 {
                    return Err(PduError::Length {
                        function,
                        expected: 6,
                        got: pdu.len(),
                    });
                }
                let byte_count = usize::from(data[4]);
                expect_len(function, pdu, 6 + byte_count)?;
                let address = be16(data, 0);
                let count = be16(data, 2);
                let body = &data[5..];
                if function == fc::WRITE_MULTIPLE_COILS {
                    let count = quantity(function, count, MAX_WRITE_COILS)?;
                    let want = usize::from(count).div_ceil(8);
                    if byte_count != want {
                        return Err(PduError::ByteCount {
                            function,
                            expected: want,
                            got: byte_count,
                        });
                    }
                    range(function, address, count)?;
                    Ok(Self::WriteMultipleCoils {
                        address,
                        values: bits(body, usize::from(count)),
                    })
                } else {
                    let count = quantity(function, count, MAX_WRITE_REGISTERS)?;
                    if byte_count != 2 * usize::from(count) {
                        return Err(PduError::ByteCount {
                            function,
                            expected: 2 * usize::from(count),
                            got: byte_count,
                        });
                    }
                    range(function, address, count)?;
                    Ok(Self::WriteMultipleRegisters {
                        address,
                        values: registers(body),
                    })
                }
            }
            fc::MASK_WRITE_REGISTER => {
                expect_len(function, pdu, 7)?;
                Ok(Self::MaskWriteRegister {
                    address: be16(data, 0),
                    and_mask: be16(data, 2),
                    or_mask: be16(data, 4),
                })
            }
            fc::READ_WRITE_MULTIPLE_REGISTERS => {
                if pdu.len() < 10 {
                    return Err(PduError::Length {
                        function,
                        expected: 10,
                        got: pdu.len(),
                    });
                }
                let byte_count = usize::from(data[8]);
                expect_len(function, pdu, 10 + byte_count)?;
                let read_address = be16(data, 0);
                let read_count = quantity(function, be16(data, 2), MAX_READ_REGISTERS)?;
                let write_address = be16(data, 4);
                let write_count = quantity(function, be16(data, 6), MAX_RW_WRITE_REGISTERS)?;
                if byte_count != 2 * usize::from(write_count) {
                    return Err(PduError::ByteCount {
                        function,
                        expected: 2 * usize::from(write_count),
                        got: byte_count,
                    });
                }
                range(function, read_address, read_count)?;
                range(function, write_address, write_count)?;
                Ok(Self::ReadWriteMultipleRegisters {
                    read_address,
                    read_count,
                    write_address,
                    values: registers(&data[9..]),
                })
            }
            _ => Ok(Self::Other {
                function,
                data: data.to_vec(),
            }),
        }
    }

    /// Appends the encoded PDU to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.function());
        match self {
            Self::ReadCoils { address, count }
            | Self::ReadDiscreteInputs { address, count }
            | Self::ReadHoldingRegisters { address, count }
            | Self::ReadInputRegisters { address, count } => {
                out.extend_from_slice(&address.to_be_bytes());
                out.extend_from_slice(&count.to_be_bytes());
            }
            Self::WriteSingleCoil { address, on } => {
                out.extend_from_slice(&address.to_be_bytes());
                out.extend_from_slice(&(if *on { 0xFF00u16 } else { 0 }).to_be_bytes());
            }
            Self::WriteSingleRegister { address, value } => {
                out.extend_from_slice(&address.to_be_bytes());
                out.extend_from_slice(&value.to_be_bytes());
            }
            Self::WriteMultipleCoils { address, values } => {
                out.extend_from_slice(&address.to_be_bytes());
                out.extend_from_slice(&(values.len() as u16).to_be_bytes());
                out.push(values.len().div_ceil(8) as u8);
                pack_bits(values, out);
            }
            Self::WriteMultipleRegisters { address, values } => {
                out.extend_from_slice(&address.to_be_bytes());
                out.extend_from_slice(&(values.len() as u16).to_be_bytes());
                out.push((2 * values.len()) as u8);
                for v in values {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            Self::MaskWriteRegister {
                address,
                and_mask,
                or_mask,
            } => {
                out.extend_from_slice(&address.to_be_bytes());
                out.extend_from_slice(&and_mask.to_be_bytes());
                out.extend_from_slice(&or_mask.to_be_bytes());
            }
            Self::ReadWriteMultipleRegisters {
                read_address,
                read_count,
                write_address,
                values,
            } => {
                out.extend_from_slice(&read_address.to_be_bytes());
                out.extend_from_slice(&read_count.to_be_bytes());
                out.extend_from_slice(&write_address.to_be_bytes());
                out.extend_from_slice(&(values.len() as u16).to_be_bytes());
                out.push((2 * values.len()) as u8);
                for v in values {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            Self::Other { data, .. } => out.extend_from_slice(data),
        }
    }

    /// Whether the request changes data on the server.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Self::WriteSingleCoil { .. }
                | Self::WriteSingleRegister { .. }
                | Self::WriteMultipleCoils { .. }
                | Self::WriteMultipleRegisters { .. }
                | Self::MaskWriteRegister { .. }
                | Self::ReadWriteMultipleRegisters { .. }
        )
    }
}

impl Response {
    /// The function code (with the exception flag for exceptions).
    pub fn function(&self) -> u8 {
        match self {
            Self::ReadCoils(_) => fc::READ_COILS,
            Self::ReadDiscreteInputs(_) => fc::READ_DISCRETE_INPUTS,
            Self::ReadHoldingRegisters(_) => fc::READ_HOLDING_REGISTERS,
            Self::ReadInputRegisters(_) => fc::READ_INPUT_REGISTERS,
            Self::WriteSingleCoil { .. } => fc::WRITE_SINGLE_COIL,
            Self::WriteSingleRegister { .. } => fc::WRITE_SINGLE_REGISTER,
            Self::WriteMultipleCoils { .. } => fc::WRITE_MULTIPLE_COILS,
            Self::WriteMultipleRegisters { .. } => fc::WRITE_MULTIPLE_REGISTERS,
            Self::MaskWriteRegister { .. } => fc::MASK_WRITE_REGISTER,
            Self::ReadWriteMultipleRegisters(_) => fc::READ_WRITE_MULTIPLE_REGISTERS,
            Self::Exception { function, .. } => function | fc::EXCEPTION_FLAG,
        }
    }

    /// The exception response to a request with function code `function`.
    pub fn exception(function: u8, code: ExceptionCode) -> Self {
        Self::Exception {
            function: function & !fc::EXCEPTION_FLAG,
            code,
        }
    }

    /// Appends the encoded PDU to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.function());
        match self {
            Self::ReadCoils(values) | Self::ReadDiscreteInputs(values) => {
                out.push(values.len().div_ceil(8) as u8);
                pack_bits(values, out);
            }
            Self::ReadHoldingRegisters(values)
            | Self::ReadInputRegisters(values)
            | Self::ReadWriteMultipleRegisters(values) => {
                out.push((2 * values.len()) as u8);
                for v in values {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            Self::WriteSingleCoil { address, on } => {
                out.extend_from_slice(&address.to_be_bytes());
                out.extend_from_slice(&(if *on { 0xFF00u16 } else { 0 }).to_be_bytes());
            }
            Self::WriteSingleRegister { address, value } => {
                out.extend_from_slice(&address.to_be_bytes());
                out.extend_from_slice(&value.to_be_bytes());
            }
            Self::WriteMultipleCoils { address, count }
            | Self::WriteMultipleRegisters { address, count } => {
                out.extend_from_slice(&address.to_be_bytes());
                out.extend_from_slice(&count.to_be_bytes());
            }
            Self::MaskWriteRegister {
                address,
                and_mask,
                or_mask,
            } => {
                out.extend_from_slice(&address.to_be_bytes());
                out.extend_from_slice(&and_mask.to_be_bytes());
                out.extend_from_slice(&or_mask.to_be_bytes());
            }
            Self::Exception { code, .. } => out.push(code.code()),
        }
    }

    /// Decodes a response PDU.
    pub fn decode(pdu: &[u8]) -> Result<Self, PduError> {
        let (&function, data) = pdu.split_first().ok_or(PduError::Empty)?;
        if pdu.len() > MAX_PDU_LEN {
            return Err(PduError::TooLong { len: pdu.len() });
        }
        if function & fc::EXCEPTION_FLAG != 0 {
            expect_len(function, pdu, 2)?;
            return Ok(Self::Exception {
                function: function & !fc::EXCEPTION_FLAG,
                code: ExceptionCode::from_code(data[0]),
            });
        }
        match function {
            fc::READ_COILS
            | fc::READ_DISCRETE_INPUTS
            | fc::READ_HOLDING_REGISTERS
            | fc::READ_INPUT_REGISTERS
            | fc::READ_WRITE_MULTIPLE_REGISTERS => {
                let n = usize::from(*data.first().ok_or(PduError::Length {
                    function,
                    expected: 2,
                    got: pdu.len(),
                })?);
                expect_len(function, pdu, 2 + n)?;
                let body = &data[1..];
                if function <= fc::READ_DISCRETE_INPUTS {
                    let v = bits(body, 8 * n);
                    return Ok(if function == fc::READ_COILS {
                        Self::ReadCoils(v)
                    } else {
                        Self::ReadDiscreteInputs(v)
                    });
                }
                if n % 2 != 0 {
                    return Err(PduError::ByteCount {
                        function,
                        expected: n + 1,
                        got: n,
                    });
                }
                let v = registers(body);
                Ok(match function {
                    fc::READ_HOLDING_REGISTERS => Self::ReadHoldingRegisters(v),
                    fc::READ_INPUT_REGISTERS => Self::ReadInputRegisters(v),
                    _ => Self::ReadWriteMultipleRegisters(v),
                })
            }
            fc::WRITE_SINGLE_COIL => {
                expect_len(function, pdu, 5)?;
                let on = match be16(data, 2) {
                    0xFF00 => true,
                    0x0000 => false,
                    value => return Err(PduError::CoilValue { value }),
                };
                Ok(Self::WriteSingleCoil {
                    address: be16(data, 0),
                    on,
                })
            }
            fc::WRITE_SINGLE_REGISTER => {
                expect_len(function, pdu, 5)?;
                Ok(Self::WriteSingleRegister {
                    address: be16(data, 0),
                    value: be16(data, 2),
                })
            }
            fc::WRITE_MULTIPLE_COILS | fc::WRITE_MULTIPLE_REGISTERS => {
                expect_len(function, pdu, 5)?;
                let address = be16(data, 0);
                let count = be16(data, 2);
                Ok(if function == fc::WRITE_MULTIPLE_COILS {
                    Self::WriteMultipleCoils { address, count }
                } else {
                    Self::WriteMultipleRegisters { address, count }
                })
            }
            fc::MASK_WRITE_REGISTER => {
                expect_len(function, pdu, 7)?;
                Ok(Self::MaskWriteRegister {
                    address: be16(data, 0),
                    and_mask: be16(data, 2),
                    or_mask: be16(data, 4),
                })
            }
            function => Err(PduError::UnknownResponse { function }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip_request(r: Request) {
        let mut out = Vec::new();
        r.encode(&mut out);
        assert_eq!(request_len(&out), PduLen::Known(out.len()), "{r:?}");
        assert_eq!(Request::decode(&out).unwrap(), r);
    }

    fn round_trip_response(r: Response) {
        let mut out = Vec::new();
        r.encode(&mut out);
        assert_eq!(response_len(&out), PduLen::Known(out.len()), "{r:?}");
        assert_eq!(Response::decode(&out).unwrap(), r);
    }

    #[test]
    fn requests_round_trip() {
        round_trip_request(Request::ReadCoils {
            address: 0,
            count: 8,
        });
        round_trip_request(Request::ReadHoldingRegisters {
            address: 100,
            count: 11,
        });
        round_trip_request(Request::WriteSingleCoil {
            address: 3,
            on: true,
        });
        round_trip_request(Request::WriteSingleRegister {
            address: 1301,
            value: 0x0C65,
        });
        round_trip_request(Request::WriteMultipleCoils {
            address: 0,
            values: vec![true, false, true, true, false, false, false, false, true],
        });
        round_trip_request(Request::WriteMultipleRegisters {
            address: 100,
            values: vec![1, 2, 3],
        });
        round_trip_request(Request::MaskWriteRegister {
            address: 4,
            and_mask: 0xF2,
            or_mask: 0x25,
        });
        round_trip_request(Request::ReadWriteMultipleRegisters {
            read_address: 3,
            read_count: 6,
            write_address: 14,
            values: vec![0xFF, 0xFF, 0xFF],
        });
    }

    #[test]
    fn coil_padding_bits_are_ignored_and_encoded_as_zero() {
        // FC15, 3 coils from 0, one value byte with the five padding bits set.
        let pdu = [0x0F, 0, 0, 0, 3, 1, 0xFF];
        let req = Request::decode(&pdu).unwrap();
        assert_eq!(
            req,
            Request::WriteMultipleCoils {
                address: 0,
                values: vec![true, true, true]
            }
        );
        let mut out = Vec::new();
        req.encode(&mut out);
        assert_eq!(out, [0x0F, 0, 0, 0, 3, 1, 0x07]);
    }

    #[test]
    fn responses_round_trip() {
        round_trip_response(Response::ReadHoldingRegisters(vec![0x0C65]));
        round_trip_response(Response::ReadCoils(vec![
            true, false, false, true, false, false, false, false,
        ]));
        round_trip_response(Response::WriteMultipleRegisters {
            address: 7,
            count: 2,
        });
        round_trip_response(Response::exception(3, ExceptionCode::IllegalDataAddress));
        round_trip_response(Response::MaskWriteRegister {
            address: 4,
            and_mask: 1,
            or_mask: 2,
        });
    }

    #[test]
    fn rejects_bad_quantities() {
        // FC03 of 0 and of 126 registers.
        assert!(matches!(
            Request::decode(&[3, 0, 0, 0, 0]),
            Err(PduError::Quantity { count: 0, .. })
        ));
        assert!(matches!(
            Request::decode(&[3, 0, 0, 0, 126]),
            Err(PduError::Quantity { count: 126, .. })
        ));
        // A read running past 0xFFFF.
        assert!(matches!(
            Request::decode(&[3, 0xFF, 0xFF, 0, 2]),
            Err(PduError::AddressRange { .. })
        ));
        // FC16 whose byte count disagrees with its quantity.
        assert!(matches!(
            Request::decode(&[16, 0, 0, 0, 2, 2, 0, 1]),
            Err(PduError::ByteCount { .. })
        ));
        assert!(matches!(Request::decode(&[]), Err(PduError::Empty)));
        assert!(matches!(
            Request::decode(&[6, 0, 1]),
            Err(PduError::Length { .. })
        ));
        assert!(matches!(
            Request::decode(&[5, 0, 1, 0x12, 0x34]),
            Err(PduError::CoilValue { value: 0x1234 })
        ));
    }

    #[test]
    fn lengths_from_headers() {
        assert_eq!(request_len(&[16, 0, 0, 0]), PduLen::NeedMore);
        assert_eq!(request_len(&[16, 0, 0, 0, 2, 4]), PduLen::Known(10));
        assert_eq!(request_len(&[0x2B]), PduLen::Unknown);
        assert_eq!(request_len(&[]), PduLen::NeedMore);
        assert_eq!(response_len(&[0x83]), PduLen::Known(2));
        assert_eq!(response_len(&[3]), PduLen::NeedMore);
        assert_eq!(response_len(&[3, 4]), PduLen::Known(6));
    }

    #[test]
    fn unknown_function_is_kept() {
        assert_eq!(
            Request::decode(&[0x2B, 0x0E, 1, 0]).unwrap(),
            Request::Other {
                function: 0x2B,
                data: vec![0x0E, 1, 0]
            }
        );
    }
}
