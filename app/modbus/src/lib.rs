//! Sans-IO Modbus for Watchpost: bytes in, frames and responses out, no sockets or serial ports.
//!
//! Role: the fieldbus worker is a Modbus RTU/TCP *slave* for the Rehau Neasmart base station
//! and a Modbus *master* for relay modules. Both sides share this crate: the PDU codec
//! ([`pdu`]), RTU framing with CRC-16 and inter-frame-silence resynchronisation ([`rtu`]), MBAP
//! framing for Modbus TCP ([`tcp`]) and the slave's request handling with its unit-id rules
//! ([`slave`]). The worker's async loops only move bytes and timestamps in and out.
//!
//! Design: receivers are push-based state machines. The caller feeds received bytes with their
//! arrival time, polls events (a frame, or bytes dropped with a reason) and asks for the next
//! deadline (when silence or an idle gap will resolve buffered bytes). Nothing in the crate
//! reads a clock, so every timing rule is tested with chosen instants.
//!
//! Failure: decoding never panics and never gives up on a stream. A request that cannot be
//! decoded is reported as [`PduError`] (which names the Modbus exception to answer); bytes
//! that form no frame are dropped and reported, and the receiver carries on with the next frame.
//! There is nothing to shut down.
#![forbid(unsafe_code)]

pub mod crc;
mod error;
pub mod pdu;
pub mod rtu;
pub mod slave;
pub mod tcp;

pub use error::{PduError, ResponseError};
pub use pdu::{ExceptionCode, Request, Response};
pub use rtu::{Adu, Direction, DropReason, RtuEvent, RtuReceiver, UnitSet};
pub use slave::{Handled, RegisterBank, Slave, VecBank};
pub use tcp::{TcpAdu, TcpEvent, TcpReceiver};
