//! Modbus TCP framing: the 7-byte MBAP header (transaction id, protocol id 0, length of what
//! follows, unit id) in front of the PDU.
//!
//! [`TcpReceiver`] splits a connection's byte stream into frames. A header is believed only if
//! it is plausible: protocol id 0, a length of 2..=254, and, for a function code whose PDU
//! length is known, a length that agrees with it. Bytes that do not start a plausible header are
//! skipped (and counted) until one does, so a single bad frame costs that frame, never the
//! connection. A partial frame that stays incomplete for the idle gap is dropped, so a
//! truncated frame cannot swallow the requests after it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::pdu::{self, PduLen, Request, Response};
use crate::rtu::{Direction, DropReason};

/// MBAP header length, unit id included.
pub const HEADER_LEN: usize = 7;
/// Largest value of the MBAP length field (unit id + 253-byte PDU).
pub const MAX_LENGTH_FIELD: usize = 254;
const MAX_BUFFER: usize = 4096;

/// One Modbus TCP frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpAdu {
    pub transaction: u16,
    pub unit: u8,
    pub pdu: Vec<u8>,
}

/// What the receiver found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpEvent {
    Frame(TcpAdu),
    Dropped { reason: DropReason, bytes: usize },
}

/// Splits a TCP byte stream into MBAP frames (see the module documentation).
#[derive(Debug)]
pub struct TcpReceiver {
    direction: Direction,
    idle_gap: Duration,
    buf: Vec<u8>,
    last_rx: Option<Instant>,
    events: VecDeque<TcpEvent>,
}

enum Header {
    /// A believable header announcing a frame of this total length.
    Plausible(usize),
    /// Not a header.
    Implausible,
    /// Too few bytes to judge.
    NeedMore,
}

impl TcpReceiver {
    /// A receiver for `direction` frames; an incomplete frame is dropped after `idle_gap`
    /// without new bytes.
    pub fn new(direction: Direction, idle_gap: Duration) -> Self {
        Self {
            direction,
            idle_gap,
            buf: Vec::with_capacity(512),
            last_rx: None,
            events: VecDeque::new(),
        }
    }

    /// Feeds bytes that arrived at `now`.
    pub fn push(&mut self, data: &[u8], now: Instant) {
        self.handle_timeout(now);
        self.last_rx = Some(now);
        self.buf.extend_from_slice(data);
        self.scan();
    }

    /// The next frame or drop, if any.
    pub fn poll_event(&mut self) -> Option<TcpEvent> {
        self.events.pop_front()
    }

    /// When buffered bytes of an incomplete frame will be given up, if any are buffered.
    pub fn idle_deadline(&self) -> Option<Instant> {
        if self.buf.is_empty() {
            None
        } else {
            self.last_rx.map(|t| t + self.idle_gap)
        }
    }

    /// Drops an incomplete frame whose idle gap has passed at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.idle_deadline().is_some_and(|d| now >= d) {
            let n = self.buf.len();
            let reason = match self.header_at(0) {
                Header::Implausible => DropReason::Garbage,
                Header::Plausible(_) | Header::NeedMore => DropReason::Short,
            };
            self.drop_bytes(reason, n);
        }
    }

    /// Bytes waiting for the rest of their frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn drop_bytes(&mut self, reason: DropReason, n: usize) {
        if n > 0 {
            self.buf.drain(..n);
            self.events
                .push_back(TcpEvent::Dropped { reason, bytes: n });
        }
    }

    fn header_at(&self, at: usize) -> Header {
        let b = &self.buf[at..];
        if b.len() < HEADER_LEN + 1 {
            return Header::NeedMore;
        }
        let protocol = u16::from_be_bytes([b[2], b[3]]);
        let length = usize::from(u16::from_be_bytes([b[4], b[5]]));
        if protocol != 0 || !(2..=MAX_LENGTH_FIELD).contains(&length) {
            return Header::Implausible;
        }
        let pdu = &b[HEADER_LEN..];
        // Function code 0 does not exist, and a request never carries the exception flag.
        let function = pdu[0];
        if function == 0 || (self.direction == Direction::Requests && function & 0x80 != 0) {
            return Header::Implausible;
        }
        let predicted = match self.direction {
            Direction::Requests => pdu::request_len(pdu),
            Direction::Responses => pdu::response_len(pdu),
        };
        match predicted {
            PduLen::Known(n) if n != length - 1 => Header::Implausible,
            _ => Header::Plausible(6 + length),
        }
    }

    fn scan(&mut self) {
        loop {
            if self.buf.len() > MAX_BUFFER {
                let excess = self.buf.len() - MAX_BUFFER;
                self.drop_bytes(DropReason::Overflow, excess);
            }
            // Find the first offset where a plausible header starts.
            let mut s = 0;
            let total = loop {
                match self.header_at(s) {
                    Header::Plausible(total) => break Some(total),
                    Header::NeedMore => break None,
                    Header::Implausible => s += 1,
                }
            };
            if s > 0 {
                self.drop_bytes(DropReason::Garbage, s);
            }
            let Some(total) = total else { return };
            if self.buf.len() < total {
                return;
            }
            let transaction = u16::from_be_bytes([self.buf[0], self.buf[1]]);
            let unit = self.buf[6];
            let pdu = self.buf[HEADER_LEN..total].to_vec();
            self.buf.drain(..total);
            self.events.push_back(TcpEvent::Frame(TcpAdu {
                transaction,
                unit,
                pdu,
            }));
        }
    }
}

/// Appends an MBAP frame for `transaction`/`unit` around the PDU written by `pdu` to `out`.
pub fn encode_with(transaction: u16, unit: u8, out: &mut Vec<u8>, pdu: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&transaction.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, unit]);
    pdu(out);
    let length = (out.len() - start - 6) as u16;
    out[start + 4..start + 6].copy_from_slice(&length.to_be_bytes());
}

/// The MBAP frame of a request.
pub fn encode_request(transaction: u16, unit: u8, request: &Request) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    encode_with(transaction, unit, &mut out, |o| request.encode(o));
    out
}

/// The MBAP frame of a response.
pub fn encode_response(transaction: u16, unit: u8, response: &Response) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    encode_with(transaction, unit, &mut out, |o| response.encode(o));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rx() -> TcpReceiver {
        TcpReceiver::new(Direction::Requests, Duration::from_millis(500))
    }

    fn events(r: &mut TcpReceiver) -> Vec<TcpEvent> {
        std::iter::from_fn(|| r.poll_event()).collect()
    }

    fn read_zone(transaction: u16) -> Vec<u8> {
        encode_request(
            transaction,
            240,
            &Request::ReadHoldingRegisters {
                address: 100,
                count: 11,
            },
        )
    }

    #[test]
    fn encodes_mbap() {
        assert_eq!(read_zone(1), vec![0, 1, 0, 0, 0, 6, 240, 3, 0, 100, 0, 11]);
    }

    #[test]
    fn splits_pipelined_frames() {
        let mut r = rx();
        let mut bytes = read_zone(1);
        bytes.extend(read_zone(2));
        let t = Instant::now();
        r.push(&bytes[..3], t);
        r.push(&bytes[3..15], t);
        r.push(&bytes[15..], t);
        let ev = events(&mut r);
        assert_eq!(ev.len(), 2);
        assert!(matches!(
            &ev[1],
            TcpEvent::Frame(TcpAdu {
                transaction: 2,
                unit: 240,
                ..
            })
        ));
    }

    #[test]
    fn skips_garbage_and_keeps_going() {
        let mut r = rx();
        let mut bytes = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        bytes.extend(read_zone(7));
        r.push(&bytes, Instant::now());
        let ev = events(&mut r);
        assert_eq!(
            ev[0],
            TcpEvent::Dropped {
                reason: DropReason::Garbage,
                bytes: 18
            }
        );
        assert!(matches!(
            &ev[1],
            TcpEvent::Frame(TcpAdu { transaction: 7, .. })
        ));
    }

    #[test]
    fn inconsistent_length_is_not_believed() {
        let mut r = rx();
        // FC03 needs a PDU of 5 bytes; this header claims 9 (length field 10).
        let mut bytes = vec![0, 1, 0, 0, 0, 10, 240, 3, 0, 100, 0, 11, 0, 0, 0, 0];
        bytes.extend(read_zone(2));
        r.push(&bytes, Instant::now());
        let ev = events(&mut r);
        assert!(matches!(
            ev[0],
            TcpEvent::Dropped {
                reason: DropReason::Garbage,
                ..
            }
        ));
        assert!(matches!(
            &ev[1],
            TcpEvent::Frame(TcpAdu { transaction: 2, .. })
        ));
    }

    #[test]
    fn truncated_frame_expires() {
        let mut r = rx();
        let t = Instant::now();
        // An FC16 header promising 20 bytes of values that never come.
        r.push(&[0, 1, 0, 0, 0, 27, 240, 16, 0, 0, 0, 10, 20, 1, 2], t);
        assert!(events(&mut r).is_empty());
        r.push(&read_zone(3), t + Duration::from_secs(1));
        let ev = events(&mut r);
        assert_eq!(
            ev[0],
            TcpEvent::Dropped {
                reason: DropReason::Short,
                bytes: 15
            }
        );
        assert!(matches!(
            &ev[1],
            TcpEvent::Frame(TcpAdu { transaction: 3, .. })
        ));
    }

    #[test]
    fn unknown_function_frames_pass_with_their_length() {
        let mut r = rx();
        r.push(&[0, 9, 0, 0, 0, 4, 240, 0x2B, 0x0E, 0x01], Instant::now());
        assert_eq!(
            events(&mut r),
            vec![TcpEvent::Frame(TcpAdu {
                transaction: 9,
                unit: 240,
                pdu: vec![0x2B, 0x0E, 0x01]
            })]
        );
    }
}
