//! Modbus RTU framing: `unit, PDU, CRC16 (low byte first)`, delimited on the line by silence.
//!
//! [`RtuReceiver`] turns a byte stream with arrival times into frames. RTU frames carry no
//! length, so the receiver combines two rules:
//!
//! - **Length and CRC.** For every function code it knows, the length of a frame follows from
//!   its first bytes ([`crate::pdu::request_len`] / [`crate::pdu::response_len`]). A frame is
//!   taken as soon as that many bytes are buffered and the CRC matches, without waiting for the
//!   silence after it, which keeps the turnaround short. If the bytes at the start of the buffer
//!   do not form a valid frame, later offsets are tried, but only for frames addressed to a unit
//!   of interest (ours or broadcast): noise followed by a valid request within the same burst
//!   still yields the request, while the chance of a false match inside noise stays negligible
//!   (unit, function code, length and a 16-bit CRC must all agree).
//! - **Silence.** When the line has been quiet for the inter-frame gap (3.5 character times,
//!   see [`silence_gap`]), whatever is left in the buffer is the end of a frame: if the whole
//!   remainder carries a valid CRC it is a frame (e.g. an unknown function code, which the slave
//!   answers with "illegal function"), otherwise it is dropped and counted. This is the
//!   resynchronisation point after garbage or a truncated frame.
//!
//! The receiver never fails: everything it cannot use comes out as a [`RtuEvent::Dropped`] with
//! a reason, for the counters.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::crc;
use crate::pdu::{self, PduLen, Request, Response};

/// The longest RTU frame (address + 253-byte PDU + CRC).
pub const MAX_FRAME_LEN: usize = 256;
/// The shortest frame that can exist: address, function, CRC.
pub const MIN_FRAME_LEN: usize = 4;
/// Bytes kept at most while looking for a frame; older bytes are dropped as overflow.
const MAX_BUFFER: usize = 2 * MAX_FRAME_LEN;

/// The inter-frame silence for `baud` with 11-bit characters: 3.5 character times, and for
/// rates above 19200 baud the fixed 1.75 ms the Modbus serial line specification recommends
/// (character timing at high rates is below what UARTs and operating systems resolve).
pub fn silence_gap(baud: u32) -> Duration {
    let baud = u64::from(baud.max(1));
    if baud > 19_200 {
        Duration::from_micros(1750)
    } else {
        // 3.5 × 11 bits = 38.5 bits.
        Duration::from_micros((38_500_000u64).div_ceil(baud))
    }
}

/// Which side's frames a receiver decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A slave receiving requests.
    Requests,
    /// A master receiving responses.
    Responses,
}

/// A set of unit ids (0..=255).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnitSet([u64; 4]);

impl UnitSet {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn insert(&mut self, unit: u8) {
        self.0[usize::from(unit / 64)] |= 1 << (unit % 64);
    }
    pub fn contains(&self, unit: u8) -> bool {
        self.0[usize::from(unit / 64)] & (1 << (unit % 64)) != 0
    }
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=255u8).filter(|u| self.contains(*u))
    }
}

impl FromIterator<u8> for UnitSet {
    fn from_iter<T: IntoIterator<Item = u8>>(iter: T) -> Self {
        let mut s = Self::new();
        for u in iter {
            s.insert(u);
        }
        s
    }
}

/// One application data unit: the unit id and the PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adu {
    pub unit: u8,
    pub pdu: Vec<u8>,
}

/// Why bytes were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// A frame ended (silence, or the next frame began) before it was complete.
    Short,
    /// A frame of the right length whose CRC did not match.
    BadCrc,
    /// Bytes that did not start any frame.
    Garbage,
    /// The buffer filled up without a frame in it.
    Overflow,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Short => "short",
            Self::BadCrc => "bad_crc",
            Self::Garbage => "garbage",
            Self::Overflow => "overflow",
        }
    }
}

/// What the receiver found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtuEvent {
    Frame(Adu),
    Dropped { reason: DropReason, bytes: usize },
}

/// Splits a stream of received bytes into RTU frames (see the module documentation).
#[derive(Debug)]
pub struct RtuReceiver {
    direction: Direction,
    units: UnitSet,
    gap: Duration,
    buf: Vec<u8>,
    last_rx: Option<Instant>,
    events: VecDeque<RtuEvent>,
}

impl RtuReceiver {
    /// A receiver for `direction` frames. `units` are the units of interest (a slave's own ids;
    /// broadcast is always of interest to a slave); `gap` is the inter-frame silence.
    pub fn new(direction: Direction, units: UnitSet, gap: Duration) -> Self {
        Self {
            direction,
            units,
            gap,
            buf: Vec::with_capacity(MAX_BUFFER),
            last_rx: None,
            events: VecDeque::new(),
        }
    }

    /// Changes the units of interest (a master sets the unit it is about to ask).
    pub fn set_units(&mut self, units: UnitSet) {
        self.units = units;
    }

    /// Feeds bytes that arrived at `now`.
    pub fn push(&mut self, data: &[u8], now: Instant) {
        if let Some(last) = self.last_rx
            && !self.buf.is_empty()
            && now.saturating_duration_since(last) >= self.gap
        {
            self.flush();
        }
        self.last_rx = Some(now);
        self.buf.extend_from_slice(data);
        self.scan();
    }

    /// The next frame or drop, if any.
    pub fn poll_event(&mut self) -> Option<RtuEvent> {
        self.events.pop_front()
    }

    /// When the silence that ends the buffered bytes is due, if any bytes are buffered.
    pub fn silence_deadline(&self) -> Option<Instant> {
        if self.buf.is_empty() {
            None
        } else {
            self.last_rx.map(|t| t + self.gap)
        }
    }

    /// Tells the receiver the time is `now`: if the line has been silent for the gap, the
    /// buffered remainder is resolved (a frame if its CRC matches, dropped otherwise).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.silence_deadline().is_some_and(|d| now >= d) {
            self.flush();
        }
    }

    /// Forgets everything buffered without reporting it (a master before a new request).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.events.clear();
    }

    /// Bytes waiting for the rest of their frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn frame_len(&self, at: &[u8]) -> PduLen {
        let Some(pdu) = at.get(1..) else {
            return PduLen::NeedMore;
        };
        let len = match self.direction {
            Direction::Requests => pdu::request_len(pdu),
            Direction::Responses => pdu::response_len(pdu),
        };
        match len {
            PduLen::Known(n) => PduLen::Known(n + 3),
            other => other,
        }
    }

    fn relevant(&self, unit: u8) -> bool {
        self.units.contains(unit) || (self.direction == Direction::Requests && unit == 0)
    }

    fn drop_bytes(&mut self, reason: DropReason, n: usize) {
        if n > 0 {
            self.buf.drain(..n);
            self.events
                .push_back(RtuEvent::Dropped { reason, bytes: n });
        }
    }

    fn emit(&mut self, len: usize) {
        let unit = self.buf[0];
        let pdu = self.buf[1..len - 2].to_vec();
        self.buf.drain(..len);
        self.events.push_back(RtuEvent::Frame(Adu { unit, pdu }));
    }

    /// Why the bytes before offset `upto` are not a frame.
    fn classify_prefix(&self, upto: usize) -> DropReason {
        match self.frame_len(&self.buf) {
            PduLen::Known(l) if l > upto => DropReason::Short,
            PduLen::Known(_) => DropReason::BadCrc,
            PduLen::NeedMore => DropReason::Short,
            PduLen::Unknown => DropReason::Garbage,
        }
    }

    fn scan(&mut self) {
        loop {
            if self.buf.len() > MAX_BUFFER {
                let excess = self.buf.len() - MAX_FRAME_LEN;
                self.drop_bytes(DropReason::Overflow, excess);
            }
            let mut found = None;
            let mut s = 0;
            while s + MIN_FRAME_LEN <= self.buf.len() {
                let cand = &self.buf[s..];
                if let PduLen::Known(l) = self.frame_len(cand)
                    && (MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&l)
                    && cand.len() >= l
                    && (s == 0 || self.relevant(cand[0]))
                    && crc::check(&cand[..l])
                {
                    found = Some((s, l));
                    break;
                }
                s += 1;
            }
            let Some((s, l)) = found else { break };
            if s > 0 {
                let reason = self.classify_prefix(s);
                self.drop_bytes(reason, s);
            }
            self.emit(l);
        }
    }

    fn flush(&mut self) {
        let n = self.buf.len();
        if n == 0 {
            return;
        }
        if (MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&n) && crc::check(&self.buf) {
            self.emit(n);
            return;
        }
        let reason = if n < MIN_FRAME_LEN {
            DropReason::Short
        } else {
            match self.frame_len(&self.buf) {
                PduLen::Known(l) if n < l => DropReason::Short,
                PduLen::NeedMore => DropReason::Short,
                PduLen::Known(_) => DropReason::BadCrc,
                PduLen::Unknown => DropReason::Garbage,
            }
        };
        self.drop_bytes(reason, n);
    }
}

/// Appends an RTU frame for `unit` around the PDU written by `pdu` to `out`.
pub fn encode_with(unit: u8, out: &mut Vec<u8>, pdu: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.push(unit);
    pdu(out);
    let crc = crc::crc16(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// The RTU frame of a request.
pub fn encode_request(unit: u8, request: &Request) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    encode_with(unit, &mut out, |o| request.encode(o));
    out
}

/// The RTU frame of a response.
pub fn encode_response(unit: u8, response: &Response) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    encode_with(unit, &mut out, |o| response.encode(o));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units() -> UnitSet {
        [240u8, 241].into_iter().collect()
    }

    fn rx() -> RtuReceiver {
        RtuReceiver::new(Direction::Requests, units(), silence_gap(38_400))
    }

    fn events(r: &mut RtuReceiver) -> Vec<RtuEvent> {
        std::iter::from_fn(|| r.poll_event()).collect()
    }

    fn frame(unit: u8, pdu: &[u8]) -> RtuEvent {
        RtuEvent::Frame(Adu {
            unit,
            pdu: pdu.to_vec(),
        })
    }

    const WRITE_1301: [u8; 8] = [0xF0, 0x06, 0x05, 0x15, 0x0C, 0x65, 0x48, 0xC8];
    const READ_2: [u8; 8] = [0xF1, 0x03, 0x00, 0x02, 0x00, 0x01, 0x31, 0x3A];

    #[test]
    fn gap_follows_the_baud_rate() {
        assert_eq!(silence_gap(9600), Duration::from_micros(4011));
        assert_eq!(silence_gap(19_200), Duration::from_micros(2006));
        assert_eq!(silence_gap(38_400), Duration::from_micros(1750));
    }

    #[test]
    fn takes_a_frame_as_soon_as_it_is_complete() {
        let mut r = rx();
        let t = Instant::now();
        r.push(&WRITE_1301[..5], t);
        assert!(events(&mut r).is_empty());
        r.push(&WRITE_1301[5..], t);
        assert_eq!(
            events(&mut r),
            vec![frame(0xF0, &[0x06, 0x05, 0x15, 0x0C, 0x65])]
        );
        assert_eq!(r.buffered(), 0);
        assert_eq!(r.silence_deadline(), None);
    }

    #[test]
    fn back_to_back_frames_split() {
        let mut r = rx();
        let mut both = WRITE_1301.to_vec();
        both.extend_from_slice(&READ_2);
        r.push(&both, Instant::now());
        assert_eq!(events(&mut r).len(), 2);
    }

    #[test]
    fn other_units_come_out_as_frames_for_the_caller_to_ignore() {
        let mut r = rx();
        let f = encode_request(
            16,
            &Request::ReadHoldingRegisters {
                address: 0,
                count: 1,
            },
        );
        r.push(&f, Instant::now());
        assert!(matches!(
            &events(&mut r)[..],
            [RtuEvent::Frame(Adu { unit: 16, .. })]
        ));
    }

    #[test]
    fn garbage_before_a_frame_is_skipped() {
        let mut r = rx();
        let mut bytes = vec![0x13, 0x37, 0x00, 0xFF, 0x42];
        bytes.extend_from_slice(&READ_2);
        r.push(&bytes, Instant::now());
        assert_eq!(
            events(&mut r),
            vec![
                RtuEvent::Dropped {
                    reason: DropReason::Garbage,
                    bytes: 5
                },
                frame(0xF1, &[0x03, 0x00, 0x02, 0x00, 0x01]),
            ]
        );
    }

    #[test]
    fn bad_crc_then_good_frame() {
        let mut r = rx();
        let mut bad = WRITE_1301;
        bad[7] ^= 0x01;
        let mut bytes = bad.to_vec();
        bytes.extend_from_slice(&READ_2);
        r.push(&bytes, Instant::now());
        let ev = events(&mut r);
        assert_eq!(
            ev[0],
            RtuEvent::Dropped {
                reason: DropReason::BadCrc,
                bytes: 8
            }
        );
        assert!(matches!(ev[1], RtuEvent::Frame(Adu { unit: 0xF1, .. })));
    }

    #[test]
    fn truncated_frame_resolved_by_silence() {
        let mut r = rx();
        let t = Instant::now();
        r.push(&WRITE_1301[..6], t);
        let deadline = r.silence_deadline().unwrap();
        r.handle_timeout(deadline - Duration::from_micros(1));
        assert!(events(&mut r).is_empty());
        r.handle_timeout(deadline);
        assert_eq!(
            events(&mut r),
            vec![RtuEvent::Dropped {
                reason: DropReason::Short,
                bytes: 6
            }]
        );
        // The next frame, after the silence, is clean.
        r.push(&READ_2, deadline + Duration::from_millis(5));
        assert!(matches!(&events(&mut r)[..], [RtuEvent::Frame(_)]));
    }

    #[test]
    fn silence_inside_push_resynchronises() {
        let mut r = rx();
        let t = Instant::now();
        r.push(&[0xF0, 0x06, 0x05], t);
        // No timer fired, but the next bytes arrive after a gap: the fragment goes first.
        r.push(&READ_2, t + Duration::from_millis(10));
        assert_eq!(
            events(&mut r),
            vec![
                RtuEvent::Dropped {
                    reason: DropReason::Short,
                    bytes: 3
                },
                frame(0xF1, &[0x03, 0x00, 0x02, 0x00, 0x01]),
            ]
        );
    }

    #[test]
    fn unknown_function_frame_is_recognised_at_silence() {
        let mut r = rx();
        let mut f = vec![0xF0, 0x2B, 0x0E, 0x01, 0x00];
        crc::append(&mut f);
        let t = Instant::now();
        r.push(&f, t);
        assert!(events(&mut r).is_empty());
        r.handle_timeout(t + Duration::from_millis(2));
        assert_eq!(events(&mut r), vec![frame(0xF0, &[0x2B, 0x0E, 0x01, 0x00])]);
    }

    #[test]
    fn short_noise_is_short() {
        let mut r = rx();
        let t = Instant::now();
        r.push(&[0x00, 0x01], t);
        r.handle_timeout(t + Duration::from_secs(1));
        assert_eq!(
            events(&mut r),
            vec![RtuEvent::Dropped {
                reason: DropReason::Short,
                bytes: 2
            }]
        );
    }

    #[test]
    fn endless_noise_is_bounded() {
        let mut r = rx();
        let t = Instant::now();
        let noise: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8 | 0x80).collect();
        r.push(&noise, t);
        assert!(r.buffered() <= MAX_BUFFER);
        let dropped: usize = events(&mut r)
            .iter()
            .map(|e| match e {
                RtuEvent::Dropped { bytes, .. } => *bytes,
                RtuEvent::Frame(_) => 0,
            })
            .sum();
        assert_eq!(dropped + r.buffered(), 5000);
    }

    #[test]
    fn responses_direction() {
        let mut r = RtuReceiver::new(
            Direction::Responses,
            [0xF0u8].into_iter().collect(),
            silence_gap(38_400),
        );
        r.push(&[0xF0, 0x03, 0x02, 0x0C, 0x65, 0x00, 0xBA], Instant::now());
        assert_eq!(events(&mut r), vec![frame(0xF0, &[0x03, 0x02, 0x0C, 0x65])]);
    }

    #[test]
    fn unit_set() {
        let s = units();
        assert!(s.contains(240) && s.contains(241) && !s.contains(16) && !s.contains(0));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![240, 241]);
    }
}
