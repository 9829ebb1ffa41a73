//! The outer frame: `LF`, 4 hex digits of CRC, 4 hex digits of length (`0LLL`), the body
//! from the opening quote to the last byte before `CR`, then `CR`. The CRC and the length both
//! cover exactly the body.

use crate::crc::crc16;
use crate::error::{Dc09Error, excerpt};

pub const LF: u8 = b'\n';
pub const CR: u8 = b'\r';
/// Largest body the 3-hex-digit length can describe.
pub const MAX_BODY: usize = 0xFFF;

/// Frames `body`.
pub fn wrap(body: &[u8]) -> Result<Vec<u8>, Dc09Error> {
    if body.len() > MAX_BODY {
        return Err(Dc09Error::EncodeBodyTooLong { len: body.len() });
    }
    let mut out = Vec::with_capacity(body.len() + 10);
    out.push(LF);
    out.extend_from_slice(format!("{:04X}{:04X}", crc16(body), body.len()).as_bytes());
    out.extend_from_slice(body);
    out.push(CR);
    Ok(out)
}

/// Checks the framing, length and CRC of `frame` and returns its body. The hex digits of the
/// CRC and length may be in either case.
pub fn unwrap(frame: &[u8]) -> Result<&[u8], Dc09Error> {
    let err = |reason| Dc09Error::ParseFrame {
        input: excerpt(frame),
        reason,
    };
    let inner = frame
        .strip_prefix(&[LF])
        .ok_or_else(|| err("does not start with LF"))?
        .strip_suffix(&[CR])
        .ok_or_else(|| err("does not end with CR"))?;
    if inner.len() < 8 {
        return Err(err("shorter than its CRC and length fields"));
    }
    let (head, body) = inner.split_at(8);
    let stated_crc = parse_hex_u16(&head[..4]).ok_or_else(|| err("CRC is not 4 hex digits"))?;
    let stated_len = parse_hex_u16(&head[4..]).ok_or_else(|| err("length is not 4 hex digits"))?;
    if usize::from(stated_len) != body.len() {
        return Err(Dc09Error::ParseLength {
            input: excerpt(frame),
            stated: usize::from(stated_len),
            actual: body.len(),
        });
    }
    let computed = crc16(body);
    if computed != stated_crc {
        return Err(Dc09Error::ParseCrc {
            input: excerpt(frame),
            stated: stated_crc,
            computed,
        });
    }
    Ok(body)
}

/// Splits a byte stream into frames (for TCP, where one read can hold part of a frame or
/// several). Bytes before an `LF` are skipped; a frame longer than any valid frame is dropped.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
}

/// Longest valid frame: LF + 8 + body + CR.
const MAX_FRAME: usize = MAX_BODY + 10;

impl Deframer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete `LF … CR` span (including both), if one has arrived.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        loop {
            let start = self.buf.iter().position(|&b| b == LF);
            match start {
                None => {
                    self.buf.clear();
                    return None;
                }
                Some(s) if s > 0 => {
                    self.buf.drain(..s);
                }
                Some(_) => {}
            }
            match self.buf.iter().position(|&b| b == CR) {
                Some(end) => {
                    let frame: Vec<u8> = self.buf.drain(..=end).collect();
                    return Some(frame);
                }
                None if self.buf.len() > MAX_FRAME => {
                    // No CR within any possible frame: resynchronise on the next LF.
                    self.buf.drain(..1);
                }
                None => return None,
            }
        }
    }

    /// Bytes buffered and not yet returned.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }
}

pub(crate) fn parse_hex_u16(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 4 {
        return None;
    }
    digits.iter().try_fold(0u16, |acc, &c| {
        let d = char::from(c).to_digit(16)?;
        Some(acc << 4 | d as u16)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_the_reference_ack() {
        // The clear ACK pysiaalarm sent in the reference run.
        let framed = wrap(br#""ACK"0001R0L0#AAA[]"#).unwrap();
        assert_eq!(framed, b"\n802E0013\"ACK\"0001R0L0#AAA[]\r");
        assert_eq!(unwrap(&framed).unwrap(), br#""ACK"0001R0L0#AAA[]"#);
    }

    #[test]
    fn rejects_damage() {
        let good = wrap(br#""NULL"0001L0#123[]"#).unwrap();
        let mut bad_crc = good.clone();
        bad_crc[1] = if bad_crc[1] == b'0' { b'1' } else { b'0' };
        assert!(matches!(unwrap(&bad_crc), Err(Dc09Error::ParseCrc { .. })));
        let mut bad_len = good.clone();
        bad_len.insert(12, b'X');
        assert!(matches!(
            unwrap(&bad_len),
            Err(Dc09Error::ParseLength { .. })
        ));
        assert!(unwrap(&good[1..]).is_err());
        assert!(unwrap(&good[..good.len() - 1]).is_err());
        assert!(unwrap(b"\n\r").is_err());
        assert!(wrap(&vec![b'A'; MAX_BODY + 1]).is_err());
    }

    #[test]
    fn lower_case_digits_accepted() {
        let framed = wrap(br#""ACK"0001R0L0#AAA[]"#).unwrap();
        let lower: Vec<u8> = framed.to_ascii_lowercase();
        // Only the hex fields are case-insensitive; restore the body.
        let mut mixed = lower[..9].to_vec();
        mixed.extend_from_slice(&framed[9..]);
        assert!(unwrap(&mixed).is_ok());
    }

    #[test]
    fn deframer_splits_and_resyncs() {
        let a = wrap(b"\"ACK\"0001L0#AAA[]").unwrap();
        let b = wrap(b"\"ACK\"0002L0#AAA[]").unwrap();
        let mut d = Deframer::new();
        d.push(b"junk");
        d.push(&a[..5]);
        assert_eq!(d.next_frame(), None);
        d.push(&a[5..]);
        d.push(&b);
        assert_eq!(d.next_frame().unwrap(), a);
        assert_eq!(d.next_frame().unwrap(), b);
        assert_eq!(d.next_frame(), None);
        d.push(&[b'\n'; 5000]);
        assert_eq!(d.next_frame(), None);
        assert!(d.pending().len() <= MAX_FRAME + 1);
    }
}
