//! The error type of the crate.

use crate::crypto::KeyFormat;

/// Why a DC-09 value could not be built, encoded or parsed. Parse variants carry a printable
/// excerpt of the input (non-printable bytes escaped, long inputs shortened).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Dc09Error {
    #[error("invalid {field} `{value}`: {reason}")]
    InvalidField {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("cannot encode message: body of {len} bytes exceeds the DC-09 limit of 4095")]
    EncodeBodyTooLong { len: usize },
    #[error("cannot encode encrypted message seq {seq}: an encrypted message needs a timestamp")]
    EncodeMissingTimestamp { seq: u16 },
    #[error("invalid {format:?} key: {reason}")]
    ParseKey {
        format: KeyFormat,
        reason: &'static str,
    },
    #[error("invalid timestamp `{input}`: {reason}")]
    ParseTimestamp { input: String, reason: &'static str },
    #[error("invalid frame `{input}`: {reason}")]
    ParseFrame { input: String, reason: &'static str },
    #[error("frame `{input}` fails its CRC: it states {stated:04X}, the body gives {computed:04X}")]
    ParseCrc {
        input: String,
        stated: u16,
        computed: u16,
    },
    #[error("frame `{input}` states length {stated:#06X} but its body has {actual:#06X} bytes")]
    ParseLength {
        input: String,
        stated: usize,
        actual: usize,
    },
    #[error("invalid message `{input}`: {reason}")]
    ParseMessage { input: String, reason: &'static str },
    #[error("cannot decrypt `{input}`: {reason}")]
    Decrypt { input: String, reason: &'static str },
    #[error("invalid receiver response `{input}`: {reason}")]
    ParseResponse { input: String, reason: &'static str },
}

/// A printable excerpt of `bytes` for error messages: at most 160 characters, control and
/// non-ASCII bytes escaped.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    const MAX: usize = 160;
    let mut out = String::new();
    for &b in bytes.iter().take(MAX) {
        match b {
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > MAX {
        out.push_str("...");
    }
    out
}
