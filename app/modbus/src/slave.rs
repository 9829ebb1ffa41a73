//! The slave (server) side: what to do with a received request.
//!
//! [`Slave::handle`] takes a unit id and a PDU and returns a [`Handled`] outcome. Its rules are
//! those of a device sharing a multi-drop line:
//!
//! - a unit id that is not ours: stay silent (another device on the line answers it);
//! - unit 0 (broadcast): apply writes, never answer; reads on broadcast are meaningless and
//!   ignored;
//! - ours: holding-register reads and writes (FC03, FC06, FC16, FC22, FC23) go to the
//!   [`RegisterBank`]; every other function code gets "illegal function"; a request that is
//!   malformed for its function gets the exception the Modbus specification names.

use crate::pdu::{ExceptionCode, Request, Response};
use crate::rtu::UnitSet;

/// The holding registers a slave serves.
pub trait RegisterBank {
    /// Reads `count` registers from `address` on behalf of the bus (FC03, the read of FC23).
    fn read_holding(&mut self, address: u16, count: u16) -> Result<Vec<u16>, ExceptionCode>;
    /// Reads one register without the side effects of a bus read (used by FC22's
    /// read-modify-write).
    fn peek_holding(&mut self, address: u16) -> Result<u16, ExceptionCode>;
    /// Writes `values` from `address` on behalf of the bus.
    fn write_holding(&mut self, address: u16, values: &[u16]) -> Result<(), ExceptionCode>;
}

/// What became of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Answer with this response (possibly an exception).
    Reply(Response),
    /// Addressed to another unit: no answer.
    NotAddressed { unit: u8 },
    /// A broadcast: no answer. `applied` tells whether it was a write that took effect.
    Broadcast { function: u8, applied: bool },
}

/// A slave answering a set of unit ids from one register bank.
#[derive(Debug, Clone)]
pub struct Slave {
    units: UnitSet,
}

impl Slave {
    pub fn new(units: UnitSet) -> Self {
        Self { units }
    }

    pub fn units(&self) -> &UnitSet {
        &self.units
    }

    /// Handles one request PDU addressed to `unit`.
    pub fn handle<B: RegisterBank>(&self, unit: u8, pdu: &[u8], bank: &mut B) -> Handled {
        let function = pdu.first().copied().unwrap_or(0);
        if unit == 0 {
            let applied = match Request::decode(pdu) {
                Ok(req) if req.is_write() => execute(&req, bank).function() == req.function(),
                _ => false,
            };
            return Handled::Broadcast { function, applied };
        }
        if !self.units.contains(unit) {
            return Handled::NotAddressed { unit };
        }
        let response = match Request::decode(pdu) {
            Ok(req) => execute(&req, bank),
            Err(e) => Response::exception(function, e.exception()),
        };
        Handled::Reply(response)
    }
}

/// Executes a decoded request against `bank`.
pub fn execute<B: RegisterBank>(req: &Request, bank: &mut B) -> Response {
    let function = req.function();
    let result = match req {
        Request::ReadHoldingRegisters { address, count } => bank
            .read_holding(*address, *count)
            .map(Response::ReadHoldingRegisters),
        Request::WriteSingleRegister { address, value } => bank
            .write_holding(*address, &[*value])
            .map(|()| Response::WriteSingleRegister {
                address: *address,
                value: *value,
            }),
        Request::WriteMultipleRegisters { address, values } => bank
            .write_holding(*address, values)
            .map(|()| Response::WriteMultipleRegisters {
                address: *address,
                count: values.len() as u16,
            }),
        Request::MaskWriteRegister {
            address,
            and_mask,
            or_mask,
        } => bank.peek_holding(*address).and_then(|current| {
            let value = (current & and_mask) | (or_mask & !and_mask);
            bank.write_holding(*address, &[value])
                .map(|()| Response::MaskWriteRegister {
                    address: *address,
                    and_mask: *and_mask,
                    or_mask: *or_mask,
                })
        }),
        Request::ReadWriteMultipleRegisters {
            read_address,
            read_count,
            write_address,
            values,
        } => bank
            .write_holding(*write_address, values)
            .and_then(|()| bank.read_holding(*read_address, *read_count))
            .map(Response::ReadWriteMultipleRegisters),
        Request::ReadCoils { .. }
        | Request::ReadDiscreteInputs { .. }
        | Request::ReadInputRegisters { .. }
        | Request::WriteSingleCoil { .. }
        | Request::WriteMultipleCoils { .. }
        | Request::Other { .. } => Err(ExceptionCode::IllegalFunction),
    };
    result.unwrap_or_else(|code| Response::exception(function, code))
}

/// A plain register bank of 65 536 registers (tests, simulators).
#[derive(Debug, Clone)]
pub struct VecBank(pub Vec<u16>);

impl Default for VecBank {
    fn default() -> Self {
        Self(vec![0; 0x1_0000])
    }
}

impl RegisterBank for VecBank {
    fn read_holding(&mut self, address: u16, count: u16) -> Result<Vec<u16>, ExceptionCode> {
        let a = usize::from(address);
        self.0
            .get(a..a + usize::from(count))
            .map(<[u16]>::to_vec)
            .ok_or(ExceptionCode::IllegalDataAddress)
    }
    fn peek_holding(&mut self, address: u16) -> Result<u16, ExceptionCode> {
        self.0
            .get(usize::from(address))
            .copied()
            .ok_or(ExceptionCode::IllegalDataAddress)
    }
    fn write_holding(&mut self, address: u16, values: &[u16]) -> Result<(), ExceptionCode> {
        let a = usize::from(address);
        let slot = self
            .0
            .get_mut(a..a + values.len())
            .ok_or(ExceptionCode::IllegalDataAddress)?;
        slot.copy_from_slice(values);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slave() -> Slave {
        Slave::new([240u8, 241].into_iter().collect())
    }

    fn pdu(r: &Request) -> Vec<u8> {
        let mut v = Vec::new();
        r.encode(&mut v);
        v
    }

    #[test]
    fn reads_and_writes() {
        let s = slave();
        let mut bank = VecBank::default();
        let w = pdu(&Request::WriteMultipleRegisters {
            address: 100,
            values: vec![1, 0x0C65, 0x07D0],
        });
        assert_eq!(
            s.handle(240, &w, &mut bank),
            Handled::Reply(Response::WriteMultipleRegisters {
                address: 100,
                count: 3
            })
        );
        let r = pdu(&Request::ReadHoldingRegisters {
            address: 100,
            count: 3,
        });
        assert_eq!(
            s.handle(241, &r, &mut bank),
            Handled::Reply(Response::ReadHoldingRegisters(vec![1, 0x0C65, 0x07D0]))
        );
    }

    #[test]
    fn other_units_are_not_answered() {
        let s = slave();
        let mut bank = VecBank::default();
        let w = pdu(&Request::WriteSingleRegister {
            address: 7,
            value: 9,
        });
        assert_eq!(
            s.handle(16, &w, &mut bank),
            Handled::NotAddressed { unit: 16 }
        );
        assert_eq!(bank.0[7], 0);
    }

    #[test]
    fn broadcast_writes_apply_silently() {
        let s = slave();
        let mut bank = VecBank::default();
        let w = pdu(&Request::WriteSingleRegister {
            address: 7,
            value: 0x0C65,
        });
        assert_eq!(
            s.handle(0, &w, &mut bank),
            Handled::Broadcast {
                function: 6,
                applied: true
            }
        );
        assert_eq!(bank.0[7], 0x0C65);
        let r = pdu(&Request::ReadHoldingRegisters {
            address: 7,
            count: 1,
        });
        assert_eq!(
            s.handle(0, &r, &mut bank),
            Handled::Broadcast {
                function: 3,
                applied: false
            }
        );
    }

    #[test]
    fn unsupported_functions_get_illegal_function() {
        let s = slave();
        let mut bank = VecBank::default();
        for req in [
            Request::ReadCoils {
                address: 0,
                count: 1,
            },
            Request::ReadInputRegisters {
                address: 0,
                count: 1,
            },
            Request::Other {
                function: 0x2B,
                data: vec![0x0E],
            },
        ] {
            let f = req.function();
            assert_eq!(
                s.handle(240, &pdu(&req), &mut bank),
                Handled::Reply(Response::exception(f, ExceptionCode::IllegalFunction))
            );
        }
    }

    #[test]
    fn malformed_requests_get_illegal_data_value() {
        let s = slave();
        let mut bank = VecBank::default();
        assert_eq!(
            s.handle(240, &[3, 0, 0, 0, 200], &mut bank),
            Handled::Reply(Response::exception(3, ExceptionCode::IllegalDataValue))
        );
        assert_eq!(
            s.handle(240, &[3, 0xFF, 0xFF, 0, 2], &mut bank),
            Handled::Reply(Response::exception(3, ExceptionCode::IllegalDataAddress))
        );
    }

    #[test]
    fn mask_write_and_read_write() {
        let s = slave();
        let mut bank = VecBank::default();
        bank.0[4] = 0x12;
        // The example of the Modbus application protocol: 0x12 AND 0xF2 OR (0x25 AND !0xF2).
        let m = pdu(&Request::MaskWriteRegister {
            address: 4,
            and_mask: 0xF2,
            or_mask: 0x25,
        });
        assert!(matches!(
            s.handle(240, &m, &mut bank),
            Handled::Reply(Response::MaskWriteRegister { .. })
        ));
        assert_eq!(bank.0[4], 0x17);
        let rw = pdu(&Request::ReadWriteMultipleRegisters {
            read_address: 10,
            read_count: 2,
            write_address: 10,
            values: vec![5, 6],
        });
        assert_eq!(
            s.handle(240, &rw, &mut bank),
            Handled::Reply(Response::ReadWriteMultipleRegisters(vec![5, 6]))
        );
    }
}
