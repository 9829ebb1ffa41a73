//! SIA DC-09 (ANSI/SIA DC-09-2013) as pure data: no sockets, no clock, no random source.
//!
//! **Role.** The alarm sender in `watchpost-alarm` builds every frame it sends to a central
//! station receiver with this crate and judges every reply with it. Tests and the fuzz targets
//! use the parsing half to play the receiver.
//!
//! **Design.** Sans-IO: [`Message::encode`] / [`Message::encode_encrypted`] turn a typed
//! message into frame bytes; [`Message::decode`] and [`Reply::parse`] turn bytes back into
//! types; [`judge`] says what a reply means for the message sent (delivered, not understood,
//! clock rejected with the receiver's time, discarded, unrelated). The caller supplies the
//! current time (via [`ClockOffset::timestamp`]) and 16 random bytes per encrypted message
//! for the pad, so every function here is deterministic and fuzzable. Frames are:
//! `LF crc(4 hex) len(4 hex) "token"seq[Rr]Ll#acct[data][x…]_HH:MM:SS,MM-DD-YYYY CR` with
//! CRC-16/ARC and length over the body as transmitted. Encryption is AES-128/192/256-CBC
//! with a zero IV over `pad|data]x…timestamp`, sent as upper-case hex; keys are configured as
//! hex or as ASCII ([`KeyFormat`]) because receivers disagree.
//!
//! **Failure.** Every constructor validates (sequence 1–9999, prefixes 1–6 hex digits,
//! accounts 3–16 hex digits, Contact ID ranges, body ≤ 4095 bytes) and returns a
//! [`Dc09Error`] naming the field and value; parsers return a [`Dc09Error`] with an escaped
//! excerpt of the input. Nothing panics on any input (the fuzz targets check this).
//!
//! **Shutdown.** Nothing to do: the crate holds no resources.

#![forbid(unsafe_code)]

mod crc;
mod crypto;
mod error;
mod exchange;
mod fields;
pub mod frame;
mod message;
mod response;
mod timestamp;

pub use crc::{crc16, crc16_bitwise};
pub use crypto::{Key, KeyFormat, pad_for};
pub use error::Dc09Error;
pub use exchange::{CLOCK_AGREEMENT_S, ClockOffset, Verdict, judge};
pub use fields::{Account, Prefix, Seq};
pub use message::{
    ContactId, Decoded, ExtendedData, Message, Payload, Qualifier, SiaCode, SiaEvent, Token,
};
pub use response::{Reply, ReplyReader, Response, ResponseAccount, ResponseKind};
pub use timestamp::Timestamp;

#[cfg(test)]
mod tests;
