//! Receiver responses: `ACK`, `NAK`, `DUH` and `RSP`, clear or encrypted, and the bare forms
//! some receivers send (`"NAK"` with no framing for an unknown account, `LF CR` for a frame
//! they discarded).
//!
//! Parsing is lenient where receivers are known to differ: an encrypted ACK may decrypt to
//! text without the pad separator, the account may be `#acct` or an anonymous `A0`, and the
//! clear ACK may lack a timestamp.

use std::fmt;

use crate::crypto::{Key, pad_for};
use crate::error::{Dc09Error, excerpt};
use crate::fields::{Account, Prefix};
use crate::frame::{self, CR, LF};
use crate::timestamp::Timestamp;

/// The response token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseKind {
    /// Message accepted.
    Ack,
    /// Rejected; with a timestamp this is the receiver's clock for resynchronisation.
    Nak,
    /// Well-formed but not understood (unknown code); do not retry forever.
    Duh,
    /// Accepted, with data for the sender (e.g. a key).
    Rsp,
}

impl ResponseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseKind::Ack => "ACK",
            ResponseKind::Nak => "NAK",
            ResponseKind::Duh => "DUH",
            ResponseKind::Rsp => "RSP",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "ACK" => Some(ResponseKind::Ack),
            "NAK" => Some(ResponseKind::Nak),
            "DUH" => Some(ResponseKind::Duh),
            "RSP" => Some(ResponseKind::Rsp),
            _ => None,
        }
    }
}

impl fmt::Display for ResponseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The account part of a response header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResponseAccount {
    /// `#<acct>`, echoing the message.
    Account(Account),
    /// `A<hex>`, as in NAKs that name no account.
    Anonymous(Prefix),
    /// Nothing between the line and `[`.
    Absent,
}

/// A framed (or bare) response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub kind: ResponseKind,
    pub encrypted: bool,
    /// Echoed sequence number; 0 in NAKs and bare responses.
    pub seq: u16,
    pub receiver: Option<Prefix>,
    pub line: Option<Prefix>,
    pub account: ResponseAccount,
    /// The receiver's time, when the response carried one that could be read.
    pub timestamp: Option<Timestamp>,
    /// False for the bare `"NAK"` form without framing.
    pub framed: bool,
}

/// Anything a receiver can answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Response(Response),
    /// `LF CR` alone: the receiver discarded the frame (pysiaalarm's answer to a bad CRC).
    Discarded,
}

impl Reply {
    /// Parses one reply. `key` decrypts an encrypted response (to read its timestamp); without
    /// a key an encrypted response is still recognised, with no timestamp.
    pub fn parse(bytes: &[u8], key: Option<&Key>) -> Result<Reply, Dc09Error> {
        if bytes == [LF, CR] {
            return Ok(Reply::Discarded);
        }
        let err = |reason| Dc09Error::ParseResponse {
            input: excerpt(bytes),
            reason,
        };
        if bytes.first() == Some(&b'"') {
            let text = std::str::from_utf8(bytes).map_err(|_| err("not ASCII"))?;
            let inner = text
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .ok_or_else(|| err("bare response is not a quoted token"))?;
            let (encrypted, name) = match inner.strip_prefix('*') {
                Some(n) => (true, n),
                None => (false, inner),
            };
            let kind = ResponseKind::parse(name).ok_or_else(|| err("unknown response token"))?;
            return Ok(Reply::Response(Response {
                kind,
                encrypted,
                seq: 0,
                receiver: None,
                line: None,
                account: ResponseAccount::Absent,
                timestamp: None,
                framed: false,
            }));
        }
        let body = frame::unwrap(bytes)?;
        let text = std::str::from_utf8(body).map_err(|_| err("not ASCII"))?;
        parse_body(text, key).map_err(err).map(Reply::Response)
    }
}

fn parse_body(text: &str, key: Option<&Key>) -> Result<Response, &'static str> {
    let t = text
        .strip_prefix('"')
        .ok_or("does not start with a quoted token")?;
    let (encrypted, t) = match t.strip_prefix('*') {
        Some(r) => (true, r),
        None => (false, t),
    };
    let (name, t) = t.split_once('"').ok_or("unterminated token")?;
    let kind = ResponseKind::parse(name).ok_or("unknown response token")?;
    if t.len() < 4 || !t.is_char_boundary(4) {
        return Err("sequence number missing");
    }
    let (seq_text, t) = t.split_at(4);
    if !seq_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("sequence number is not 4 digits");
    }
    let seq: u16 = seq_text.parse().map_err(|_| "sequence number")?;
    let (receiver, line, account, t) = header_fields(t)?;
    let t = t.strip_prefix('[').ok_or("data block missing")?;
    let timestamp = if encrypted {
        let hex = t.strip_suffix(']').unwrap_or(t);
        match key {
            Some(key) => {
                let plain = key
                    .decrypt_hex(hex.as_bytes())
                    .map_err(|_| "cannot decrypt")?;
                let plain = String::from_utf8(plain).map_err(|_| "decrypted text is not ASCII")?;
                let close = plain
                    .find(']')
                    .ok_or("decrypted text has no closing bracket")?;
                trailing_timestamp(&plain[close + 1..])?
            }
            None => None,
        }
    } else {
        let close = t.find(']').ok_or("data block not closed")?;
        trailing_timestamp(&t[close + 1..])?
    };
    Ok(Response {
        kind,
        encrypted,
        seq,
        receiver,
        line,
        account,
        timestamp,
        framed: true,
    })
}

type HeaderFields<'a> = (Option<Prefix>, Option<Prefix>, ResponseAccount, &'a str);

/// The header fields between the sequence number and the data block: receiver `R…`, line
/// `L…` and account (`#acct`, or `A…` in NAKs that name none), each at most once and in any
/// order, since receivers differ (`R0L0A0`, pysiaalarm's `L0R0A0`). Returns them and the text
/// from the `[` on.
///
/// `A` is itself a hex digit, so in `L0A0[` (line 0, anonymous account 0) the line's digits
/// run into the account's: when the last field before `[` holds an `A` after its first digit
/// and something after it, and no account was named, it is split at the last `A`. Some
/// receivers echo an absent receiver number as text (pysiaalarm writes `None`): it is skipped.
fn header_fields(mut t: &str) -> Result<HeaderFields<'_>, &'static str> {
    let mut receiver: Option<&str> = None;
    let mut line: Option<&str> = None;
    let mut account = ResponseAccount::Absent;
    // The field taken last, if it was `R` or `L` (the one whose digits may hold `A…`).
    let mut last: Option<char> = None;
    loop {
        if let Some(rest) = t.strip_prefix("None") {
            t = rest;
            continue;
        }
        let Some(marker) = t.chars().next() else {
            return Err("data block missing");
        };
        let field = match marker {
            '[' => break,
            'R' if receiver.is_none() => &mut receiver,
            'L' if line.is_none() => &mut line,
            '#' if account == ResponseAccount::Absent => {
                let digits = take_hex_field(&mut t, '#', 16)?.unwrap_or_default();
                account = ResponseAccount::Account(Account::new(digits).map_err(|_| "account")?);
                last = None;
                continue;
            }
            'A' if account == ResponseAccount::Absent => {
                let digits = take_hex_field(&mut t, 'A', 6)?.unwrap_or_default();
                account = ResponseAccount::Anonymous(
                    Prefix::new(digits).map_err(|_| "anonymous account")?,
                );
                last = None;
                continue;
            }
            'R' | 'L' | '#' | 'A' => return Err("header field repeated"),
            _ => return Err("data block missing"),
        };
        *field = take_hex_field(&mut t, marker, 13)?;
        last = Some(marker);
    }
    let field = match (last, &account) {
        (Some('R'), ResponseAccount::Absent) => Some(&mut receiver),
        (Some('L'), ResponseAccount::Absent) => Some(&mut line),
        _ => None,
    };
    if let Some(field) = field
        && let Some(d) = *field
        && let Some(i) = d[1..].rfind(['A', 'a']).map(|i| i + 1)
        && i + 1 < d.len()
    {
        *field = Some(&d[..i]);
        account =
            ResponseAccount::Anonymous(Prefix::new(&d[i + 1..]).map_err(|_| "anonymous account")?);
    }
    let receiver = receiver
        .map(Prefix::new)
        .transpose()
        .map_err(|_| "receiver")?;
    let line = line.map(Prefix::new).transpose().map_err(|_| "line")?;
    Ok((receiver, line, account, t))
}

/// Takes `marker` and 1 to `max` hex digits off the front of `t`, if `t` starts with `marker`.
fn take_hex_field<'a>(
    t: &mut &'a str,
    marker: char,
    max: usize,
) -> Result<Option<&'a str>, &'static str> {
    match t.strip_prefix(marker) {
        Some(r) => {
            let n = r.bytes().take_while(u8::is_ascii_hexdigit).count();
            if n == 0 || n > max {
                return Err("bad header field");
            }
            let (digits, after) = r.split_at(n);
            *t = after;
            Ok(Some(digits))
        }
        None => Ok(None),
    }
}

/// Skips `[…]` blocks and reads an optional `_timestamp` at the end.
fn trailing_timestamp(mut rest: &str) -> Result<Option<Timestamp>, &'static str> {
    while let Some(block) = rest.strip_prefix('[') {
        let end = block.find(']').ok_or("extended data block not closed")?;
        rest = &block[end + 1..];
    }
    if rest.is_empty() {
        Ok(None)
    } else if rest.starts_with('_') {
        Timestamp::parse(rest)
            .map(Some)
            .map_err(|_| "bad timestamp")
    } else {
        Err("text after the data block is neither x-data nor a timestamp")
    }
}

impl Response {
    /// A clear ACK/DUH for a message (as a receiver would answer).
    pub fn answer(kind: ResponseKind, to: &crate::Message) -> Self {
        Self {
            kind,
            encrypted: false,
            seq: to.seq.get(),
            receiver: to.receiver.clone(),
            line: Some(to.line.clone()),
            account: ResponseAccount::Account(to.account.clone()),
            timestamp: None,
            framed: true,
        }
    }

    /// A NAK carrying the receiver's clock.
    pub fn nak(now: Timestamp) -> Self {
        Self {
            kind: ResponseKind::Nak,
            encrypted: false,
            seq: 0,
            receiver: Some(Prefix::zero()),
            line: Some(Prefix::zero()),
            account: ResponseAccount::Anonymous(Prefix::zero()),
            timestamp: Some(now),
            framed: true,
        }
    }

    fn header(&self) -> String {
        let mut h = String::from("\"");
        if self.encrypted {
            h.push('*');
        }
        h.push_str(self.kind.as_str());
        h.push('"');
        h.push_str(&format!("{:04}", self.seq.min(9999)));
        if let Some(r) = &self.receiver {
            h.push('R');
            h.push_str(r.as_str());
        }
        if let Some(l) = &self.line {
            h.push('L');
            h.push_str(l.as_str());
        }
        match &self.account {
            ResponseAccount::Account(a) => {
                h.push('#');
                h.push_str(a.as_str());
            }
            ResponseAccount::Anonymous(a) => {
                h.push('A');
                h.push_str(a.as_str());
            }
            ResponseAccount::Absent => {}
        }
        h.push('[');
        h
    }

    /// The frame of this response. An encrypted response needs `key` and pad randomness;
    /// a bare response encodes as its quoted token.
    pub fn encode(&self, key: Option<(&Key, &[u8; 16])>) -> Result<Vec<u8>, Dc09Error> {
        if !self.framed {
            let star = if self.encrypted { "*" } else { "" };
            return Ok(format!("\"{star}{}\"", self.kind).into_bytes());
        }
        let ts = self.timestamp.map(|t| t.to_wire()).unwrap_or_default();
        let mut body = self.header();
        match (self.encrypted, key) {
            (true, Some((key, random))) => {
                let tail = format!("]{ts}");
                let mut plain = pad_for(tail.len(), random);
                plain.push(b'|');
                plain.extend_from_slice(tail.as_bytes());
                body.push_str(&key.encrypt_to_hex(&plain));
            }
            (true, None) => {
                return Err(Dc09Error::InvalidField {
                    field: "response key",
                    value: String::new(),
                    reason: "an encrypted response needs a key",
                });
            }
            (false, _) => {
                body.push(']');
                body.push_str(&ts);
            }
        }
        frame::wrap(body.as_bytes())
    }
}

/// Splits a TCP byte stream from a receiver into replies: framed responses, `LF CR`, and the
/// bare quoted form.
#[derive(Debug, Default)]
pub struct ReplyReader {
    deframer: frame::Deframer,
}

impl ReplyReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes read from the connection. A chunk that starts with `"` and holds no `LF`
    /// is taken as one bare response (receivers write it in one piece).
    pub fn push(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        if self.deframer.pending().is_empty()
            && bytes.first() == Some(&b'"')
            && !bytes.contains(&LF)
        {
            return Some(bytes.to_vec());
        }
        self.deframer.push(bytes);
        None
    }

    /// The next complete framed reply, if any.
    pub fn next_reply(&mut self) -> Option<Vec<u8>> {
        self.deframer.next_frame()
    }
}
