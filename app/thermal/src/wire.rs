//! A small framing for raw radiometric frames over a byte stream (TCP), used between the
//! simulator's thermal camera and the capture worker (`source = { type = "thermal_tcp" }`).
//!
//! Each frame is a 28-byte header followed by the raw buffer exactly as a device delivers it:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 4 | magic `WPRF` |
//! | 4 | 1 | version, 1 |
//! | 5 | 1 | format: 1 = `centikelvin16`, 2 = `split_frame` |
//! | 6 | 2 | width, little-endian |
//! | 8 | 2 | height of the delivered buffer, little-endian |
//! | 10 | 2 | reserved, 0 |
//! | 12 | 4 | sequence number, little-endian |
//! | 16 | 8 | capture time, µs since the Unix epoch, little-endian |
//! | 24 | 4 | payload length, little-endian; must be `width * height * 2` |
//!
//! The decoder is sans-IO: feed it bytes as they arrive, take frames out. A header that breaks
//! these rules is an error after which the stream cannot be trusted (the reader drops the
//! connection and reconnects).

use crate::RawFormat;

pub const MAGIC: &[u8; 4] = b"WPRF";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 28;
/// Largest width or height accepted.
pub const MAX_SIDE: u16 = 4096;

/// One radiometric frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireFrame {
    pub format: RawFormat,
    pub width: u16,
    pub height: u16,
    pub sequence: u32,
    pub captured_us: u64,
    pub payload: Vec<u8>,
}

/// A header that cannot start a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("radiometric stream: bad magic {found:02x?}")]
    Magic { found: [u8; 4] },
    #[error("radiometric stream: version {found} is not {VERSION}")]
    Version { found: u8 },
    #[error("radiometric stream: unknown format code {code}")]
    Format { code: u8 },
    #[error("radiometric stream: frame of {width}x{height} is outside 1..={MAX_SIDE}")]
    Dimensions { width: u16, height: u16 },
    #[error(
        "radiometric stream: payload of {len} bytes does not match {width}x{height} at 2 bytes per pixel"
    )]
    Length { width: u16, height: u16, len: u32 },
}

fn format_code(f: RawFormat) -> u8 {
    match f {
        RawFormat::CentiKelvin16 => 1,
        RawFormat::SplitFrame => 2,
    }
}

/// Encodes a frame (header and payload).
pub fn encode(frame: &WireFrame) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + frame.payload.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(format_code(frame.format));
    out.extend_from_slice(&frame.width.to_le_bytes());
    out.extend_from_slice(&frame.height.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&frame.sequence.to_le_bytes());
    out.extend_from_slice(&frame.captured_us.to_le_bytes());
    out.extend_from_slice(&(frame.payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&frame.payload);
    out
}

/// Reassembles frames from stream bytes.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    failed: bool,
}

fn le16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}
fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The next whole frame, `None` when more bytes are needed. After an error the decoder
    /// stays failed and returns nothing more.
    pub fn next_frame(&mut self) -> Result<Option<WireFrame>, WireError> {
        if self.failed || self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let h = &self.buf[..HEADER_LEN];
        let check = || -> Result<(RawFormat, u16, u16, usize), WireError> {
            if &h[0..4] != MAGIC {
                return Err(WireError::Magic {
                    found: [h[0], h[1], h[2], h[3]],
                });
            }
            if h[4] != VERSION {
                return Err(WireError::Version { found: h[4] });
            }
            let format = match h[5] {
                1 => RawFormat::CentiKelvin16,
                2 => RawFormat::SplitFrame,
                code => return Err(WireError::Format { code }),
            };
            let (width, height) = (le16(&h[6..8]), le16(&h[8..10]));
            if !(1..=MAX_SIDE).contains(&width) || !(1..=MAX_SIDE).contains(&height) {
                return Err(WireError::Dimensions { width, height });
            }
            let len = le32(&h[24..28]);
            if u64::from(len) != u64::from(width) * u64::from(height) * 2 {
                return Err(WireError::Length { width, height, len });
            }
            Ok((format, width, height, len as usize))
        };
        let (format, width, height, len) = match check() {
            Ok(v) => v,
            Err(e) => {
                self.failed = true;
                self.buf = Vec::new();
                return Err(e);
            }
        };
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let sequence = le32(&self.buf[12..16]);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&self.buf[16..24]);
        let payload = self.buf[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.buf.drain(..HEADER_LEN + len);
        Ok(Some(WireFrame {
            format,
            width,
            height,
            sequence,
            captured_us: u64::from_le_bytes(ts),
            payload,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn frame(seq: u32) -> WireFrame {
        WireFrame {
            format: RawFormat::SplitFrame,
            width: 3,
            height: 2,
            sequence: seq,
            captured_us: 1_700_000_000_000_000 + u64::from(seq),
            payload: (0..12).map(|i| i as u8 + seq as u8).collect(),
        }
    }

    #[test]
    fn round_trip_in_any_chunking() {
        let mut bytes = encode(&frame(1));
        bytes.extend(encode(&frame(2)));
        for chunk in [1, 5, 28, 40, bytes.len()] {
            let mut d = Decoder::new();
            let mut got = Vec::new();
            for c in bytes.chunks(chunk) {
                d.push(c);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, vec![frame(1), frame(2)], "chunk {chunk}");
        }
    }

    #[test]
    fn bad_headers_fail_once_and_stay_failed() {
        let good = encode(&frame(1));
        let cases: Vec<(usize, u8, WireError)> = vec![
            (0, b'X', WireError::Magic { found: *b"XPRF" }),
            (4, 9, WireError::Version { found: 9 }),
            (5, 7, WireError::Format { code: 7 }),
            (
                24,
                13,
                WireError::Length {
                    width: 3,
                    height: 2,
                    len: 13,
                },
            ),
        ];
        for (at, value, want) in cases {
            let mut b = good.clone();
            b[at] = value;
            let mut d = Decoder::new();
            d.push(&b);
            assert_eq!(d.next_frame(), Err(want));
            d.push(&good);
            assert_eq!(d.next_frame(), Ok(None));
        }
        let mut b = good;
        b[6] = 0;
        b[7] = 0;
        let mut d = Decoder::new();
        d.push(&b);
        assert!(matches!(d.next_frame(), Err(WireError::Dimensions { .. })));
    }
}
