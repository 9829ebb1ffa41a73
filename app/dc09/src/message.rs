//! Messages from premises equipment to a receiver: `SIA-DCS`, `ADM-CID` and `NULL`, clear or
//! AES-encrypted, built into frames and parsed back from them.
//!
//! Body layout (between the frame's length field and `CR`):
//! `"<token>"<seq>[R<rcvr>]L<line>#<acct>[<data>]<[x-data]…><_timestamp>`, where `<data>` is
//! `#<acct>|<event>` for events and empty for `NULL`. Encrypted messages put `*` before the
//! token and replace everything after the opening `[` with the upper-case hex of
//! AES-CBC(pad `|` data `]` x-data timestamp).

use std::fmt;

use crate::crypto::{Key, pad_for};
use crate::error::{Dc09Error, excerpt};
use crate::fields::{Account, Prefix, Seq};
use crate::frame;
use crate::timestamp::Timestamp;

/// The message token, i.e. which kind of data the message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Token {
    SiaDcs,
    AdmCid,
    Null,
}

impl Token {
    pub fn as_str(self) -> &'static str {
        match self {
            Token::SiaDcs => "SIA-DCS",
            Token::AdmCid => "ADM-CID",
            Token::Null => "NULL",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "SIA-DCS" => Some(Token::SiaDcs),
            "ADM-CID" => Some(Token::AdmCid),
            "NULL" => Some(Token::Null),
            _ => None,
        }
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Contact ID event qualifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qualifier {
    /// `1`: new event or opening.
    New,
    /// `3`: restore or closing.
    Restore,
    /// `6`: a previously reported condition is still present.
    Status,
}

impl Qualifier {
    pub fn digit(self) -> char {
        match self {
            Qualifier::New => '1',
            Qualifier::Restore => '3',
            Qualifier::Status => '6',
        }
    }

    fn from_digit(c: u8) -> Option<Self> {
        match c {
            b'1' => Some(Qualifier::New),
            b'3' => Some(Qualifier::Restore),
            b'6' => Some(Qualifier::Status),
            _ => None,
        }
    }
}

/// An Ademco Contact ID event: `QEEE GG CCC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContactId {
    qualifier: Qualifier,
    event: u16,
    group: u8,
    zone: u16,
}

impl ContactId {
    /// `event` is the 3-digit event code (e.g. 130 burglary), `group` the 2-digit partition
    /// (0 when unused), `zone` the 3-digit zone or user number.
    pub fn new(qualifier: Qualifier, event: u16, group: u8, zone: u16) -> Result<Self, Dc09Error> {
        let bad = |field, value: u16, reason| Dc09Error::InvalidField {
            field,
            value: value.to_string(),
            reason,
        };
        if event > 999 {
            return Err(bad("Contact ID event code", event, "must be 0..=999"));
        }
        if group > 99 {
            return Err(bad("Contact ID group", u16::from(group), "must be 0..=99"));
        }
        if zone > 999 {
            return Err(bad("Contact ID zone", zone, "must be 0..=999"));
        }
        Ok(Self {
            qualifier,
            event,
            group,
            zone,
        })
    }

    pub fn qualifier(&self) -> Qualifier {
        self.qualifier
    }
    pub fn event(&self) -> u16 {
        self.event
    }
    pub fn group(&self) -> u8 {
        self.group
    }
    pub fn zone(&self) -> u16 {
        self.zone
    }
}

impl fmt::Display for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{:03} {:02} {:03}",
            self.qualifier.digit(),
            self.event,
            self.group,
            self.zone
        )
    }
}

/// A two-letter SIA event code such as `BA` (burglary alarm) or `WH` (water leak restore).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiaCode([u8; 2]);

impl SiaCode {
    pub fn new(code: &str) -> Result<Self, Dc09Error> {
        match code.as_bytes() {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Ok(Self([*a, *b])),
            _ => Err(Dc09Error::InvalidField {
                field: "SIA event code",
                value: code.to_string(),
                reason: "must be two upper-case letters",
            }),
        }
    }

    /// For literals in `const` items, where a bad code fails the build:
    /// `const BA: SiaCode = SiaCode::of(*b"BA");`.
    pub const fn of(code: [u8; 2]) -> Self {
        assert!(
            code[0].is_ascii_uppercase() && code[1].is_ascii_uppercase(),
            "a SIA code is two upper-case letters"
        );
        Self(code)
    }

    pub fn as_str(&self) -> &str {
        // Two ASCII upper-case letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for SiaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SIA DC-03 event as carried in `SIA-DCS`: `N[id<user>/][ri<area>/]<code>[<zone>]`.
///
/// The modifiers are written in the order user, area because that is the order common
/// receivers parse them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SiaEvent {
    /// `id` modifier: user number.
    pub user: Option<u32>,
    /// `ri` modifier: area/partition (some receivers, Home Assistant among them, treat it as
    /// the zone).
    pub area: Option<u32>,
    pub code: SiaCode,
    /// Point/zone number after the code.
    pub zone: Option<u32>,
}

impl fmt::Display for SiaEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("N")?;
        if let Some(u) = self.user {
            write!(f, "id{u}/")?;
        }
        if let Some(a) = self.area {
            write!(f, "ri{a}/")?;
        }
        f.write_str(self.code.as_str())?;
        if let Some(z) = self.zone {
            write!(f, "{z}")?;
        }
        Ok(())
    }
}

/// What a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Payload {
    /// Link test / supervision; empty data block.
    Null,
    ContactId(ContactId),
    Sia(SiaEvent),
}

impl Payload {
    pub fn token(&self) -> Token {
        match self {
            Payload::Null => Token::Null,
            Payload::ContactId(_) => Token::AdmCid,
            Payload::Sia(_) => Token::SiaDcs,
        }
    }
}

/// An extended data block `[<id><text>]`, e.g. `[Ifront door]` (alarm text).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExtendedData {
    id: u8,
    text: String,
}

impl ExtendedData {
    /// `id` is an upper-case letter; `text` is printable ASCII without `[`, `]` or `|`, at most
    /// 200 characters.
    pub fn new(id: char, text: &str) -> Result<Self, Dc09Error> {
        if !id.is_ascii_uppercase() {
            return Err(Dc09Error::InvalidField {
                field: "extended data identifier",
                value: id.to_string(),
                reason: "must be an upper-case letter",
            });
        }
        let printable = text
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && !b"[]|".contains(&b));
        if !printable || text.len() > 200 {
            return Err(Dc09Error::InvalidField {
                field: "extended data text",
                value: text.to_string(),
                reason: "must be at most 200 printable ASCII characters without [ ] |",
            });
        }
        Ok(Self {
            id: id as u8,
            text: text.to_string(),
        })
    }

    /// `[H<time>]`: when the event happened (DC-09's time of occurrence), which differs from
    /// the message's timestamp when the message was held back, e.g. while the receiver was
    /// unreachable. Written like the timestamp, without its underscore:
    /// `[H14:29:10,11-22-2026]` (UTC).
    pub fn time_of_occurrence(at: Timestamp) -> Self {
        let wire = at.to_wire();
        Self {
            id: b'H',
            text: wire.strip_prefix('_').unwrap_or(&wire).to_string(),
        }
    }

    /// The time of an `H` block, if this is one and it reads as a time.
    pub fn occurred_at(&self) -> Option<Timestamp> {
        (self.id == b'H')
            .then(|| Timestamp::parse(&self.text).ok())
            .flatten()
    }

    pub fn id(&self) -> char {
        char::from(self.id)
    }
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// One message from premises equipment to a receiver.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Message {
    pub seq: Seq,
    /// `R…`; omitted from the frame when `None`.
    pub receiver: Option<Prefix>,
    /// `L…`, mandatory.
    pub line: Prefix,
    pub account: Account,
    pub payload: Payload,
    pub extended: Vec<ExtendedData>,
    /// Time of the message (UTC). Mandatory when encrypted; always sent by the appliance.
    pub timestamp: Option<Timestamp>,
}

/// A message parsed from a frame, with whether it arrived encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub message: Message,
    pub encrypted: bool,
}

impl Message {
    /// The header through the opening `[` of the data block.
    fn header(&self, encrypted: bool) -> String {
        let mut h = String::with_capacity(40);
        h.push('"');
        if encrypted {
            h.push('*');
        }
        h.push_str(self.payload.token().as_str());
        h.push('"');
        h.push_str(&self.seq.to_string());
        if let Some(r) = &self.receiver {
            h.push('R');
            h.push_str(r.as_str());
        }
        h.push('L');
        h.push_str(self.line.as_str());
        h.push('#');
        h.push_str(self.account.as_str());
        h.push('[');
        h
    }

    /// What follows the opening `[` in a clear message: data, `]`, x-data, timestamp.
    fn tail(&self) -> String {
        let mut t = String::new();
        match &self.payload {
            Payload::Null => {}
            Payload::ContactId(c) => t.push_str(&format!("#{}|{c}", self.account)),
            Payload::Sia(s) => t.push_str(&format!("#{}|{s}", self.account)),
        }
        t.push(']');
        for x in &self.extended {
            t.push('[');
            t.push(char::from(x.id));
            t.push_str(&x.text);
            t.push(']');
        }
        if let Some(ts) = self.timestamp {
            t.push_str(&ts.to_wire());
        }
        t
    }

    /// The frame of this message in clear.
    pub fn encode(&self) -> Result<Vec<u8>, Dc09Error> {
        let mut body = self.header(false);
        body.push_str(&self.tail());
        frame::wrap(body.as_bytes())
    }

    /// The frame of this message encrypted with `key`; `random` supplies the pad (fresh
    /// random bytes for every message).
    pub fn encode_encrypted(&self, key: &Key, random: &[u8; 16]) -> Result<Vec<u8>, Dc09Error> {
        if self.timestamp.is_none() {
            return Err(Dc09Error::EncodeMissingTimestamp {
                seq: self.seq.get(),
            });
        }
        let tail = self.tail();
        let mut plain = pad_for(tail.len(), random);
        plain.push(b'|');
        plain.extend_from_slice(tail.as_bytes());
        let mut body = self.header(true);
        body.push_str(&key.encrypt_to_hex(&plain));
        frame::wrap(body.as_bytes())
    }

    /// Parses a whole frame (`LF … CR`). `key` decrypts encrypted messages; an encrypted
    /// message without a key is an error.
    pub fn decode(frame_bytes: &[u8], key: Option<&Key>) -> Result<Decoded, Dc09Error> {
        let body = frame::unwrap(frame_bytes)?;
        let err = |reason| Dc09Error::ParseMessage {
            input: excerpt(body),
            reason,
        };
        let text = std::str::from_utf8(body).map_err(|_| err("not ASCII"))?;
        if !text.is_ascii() {
            return Err(err("not ASCII"));
        }
        let mut cur = Cursor::new(text);
        if !cur.eat('"') {
            return Err(err("does not start with a quoted token"));
        }
        let encrypted = cur.eat('*');
        let token_text = cur
            .take_until('"')
            .ok_or_else(|| err("unterminated token"))?;
        let token = Token::parse(token_text).ok_or_else(|| err("unknown token"))?;
        cur.eat('"');
        let seq_text = cur
            .take_n(4)
            .ok_or_else(|| err("sequence number missing"))?;
        if !seq_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("sequence number is not 4 digits"));
        }
        let seq = Seq::new(seq_text.parse().map_err(|_| err("sequence number"))?)
            .map_err(|_| err("sequence number 0000 in a message"))?;
        let receiver = if cur.eat('R') {
            Some(Prefix::new(cur.take_hex(6)).map_err(|_| err("bad receiver number"))?)
        } else {
            None
        };
        if !cur.eat('L') {
            return Err(err("line prefix missing"));
        }
        let line = Prefix::new(cur.take_hex(6)).map_err(|_| err("bad line prefix"))?;
        if !cur.eat('#') {
            return Err(err("account missing"));
        }
        let account = Account::new(cur.take_hex(16)).map_err(|_| err("bad account"))?;
        if !cur.eat('[') {
            return Err(err("data block missing"));
        }
        let rest = cur.rest();
        let clear_tail: String = if encrypted {
            let key = key.ok_or_else(|| err("encrypted message and no key"))?;
            let plain = key.decrypt_hex(rest.as_bytes())?;
            let plain = String::from_utf8(plain).map_err(|_| err("decrypted text is not ASCII"))?;
            if !plain.is_ascii() {
                return Err(err("decrypted text is not ASCII"));
            }
            let bar = plain
                .find('|')
                .ok_or_else(|| err("decrypted text has no pad separator"))?;
            if plain[..bar].contains(['[', ']']) {
                return Err(err("pad contains a bracket"));
            }
            plain[bar + 1..].to_string()
        } else {
            rest.to_string()
        };
        let (payload, extended, timestamp) =
            parse_tail(&clear_tail, token, &account).map_err(|reason| Dc09Error::ParseMessage {
                input: excerpt(clear_tail.as_bytes()),
                reason,
            })?;
        if encrypted && timestamp.is_none() {
            return Err(err("encrypted message without timestamp"));
        }
        Ok(Decoded {
            message: Message {
                seq,
                receiver,
                line,
                account,
                payload,
                extended,
                timestamp,
            },
            encrypted,
        })
    }
}

type Tail = (Payload, Vec<ExtendedData>, Option<Timestamp>);

/// Parses `data ] [x]… [_timestamp]`.
fn parse_tail(tail: &str, token: Token, account: &Account) -> Result<Tail, &'static str> {
    let close = tail.find(']').ok_or("data block not closed")?;
    let data = &tail[..close];
    if data.contains('[') {
        return Err("bracket inside data block");
    }
    let payload = parse_data(data, token, account)?;
    let mut rest = &tail[close + 1..];
    let mut extended = Vec::new();
    while let Some(block) = rest.strip_prefix('[') {
        let end = block.find(']').ok_or("extended data block not closed")?;
        let inner = &block[..end];
        let mut chars = inner.chars();
        let id = chars.next().ok_or("empty extended data block")?;
        extended.push(ExtendedData::new(id, chars.as_str()).map_err(|_| "bad extended data")?);
        rest = &block[end + 1..];
    }
    let timestamp = if rest.is_empty() {
        None
    } else if rest.starts_with('_') {
        Some(Timestamp::parse(rest).map_err(|_| "bad timestamp")?)
    } else {
        return Err("text after the data block is neither x-data nor a timestamp");
    };
    Ok((payload, extended, timestamp))
}

fn parse_data(data: &str, token: Token, account: &Account) -> Result<Payload, &'static str> {
    if token == Token::Null {
        return if data.is_empty() {
            Ok(Payload::Null)
        } else {
            Err("NULL message with data")
        };
    }
    let (acct, event) = data
        .strip_prefix('#')
        .and_then(|d| d.split_once('|'))
        .ok_or("data does not start with #account|")?;
    if !acct.eq_ignore_ascii_case(account.as_str()) {
        return Err("account in data differs from the header");
    }
    match token {
        Token::AdmCid => parse_contact_id(event).map(Payload::ContactId),
        Token::SiaDcs => parse_sia(event).map(Payload::Sia),
        Token::Null => Err("NULL message with data"),
    }
}

fn parse_contact_id(s: &str) -> Result<ContactId, &'static str> {
    let b = s.as_bytes();
    if b.len() != 11 || b[4] != b' ' || b[7] != b' ' {
        return Err("Contact ID is not QEEE GG CCC");
    }
    let digits = |r: std::ops::Range<usize>| -> Result<u16, &'static str> {
        let part = &s[r];
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().map_err(|_| "Contact ID digits")
        } else {
            Err("Contact ID fields must be digits")
        }
    };
    let q = Qualifier::from_digit(b[0]).ok_or("unknown Contact ID qualifier")?;
    let group = u8::try_from(digits(5..7)?).map_err(|_| "Contact ID group")?;
    ContactId::new(q, digits(1..4)?, group, digits(8..11)?).map_err(|_| "Contact ID out of range")
}

fn parse_sia(s: &str) -> Result<SiaEvent, &'static str> {
    let mut rest = s
        .strip_prefix('N')
        .ok_or("SIA event does not start with N")?;
    let user = modifier("id", &mut rest)?;
    let area = modifier("ri", &mut rest)?;
    if rest.len() < 2 || !rest.is_char_boundary(2) {
        return Err("SIA event code missing");
    }
    let code = SiaCode::new(&rest[..2]).map_err(|_| "SIA event code")?;
    let zone_text = &rest[2..];
    let zone = if zone_text.is_empty() {
        None
    } else {
        Some(parse_decimal(zone_text).ok_or("SIA zone must be a decimal number")?)
    };
    Ok(SiaEvent {
        user,
        area,
        code,
        zone,
    })
}

/// Takes the modifier `name` (e.g. `ri`) with its number and `/` off the front of `rest`.
fn modifier(name: &str, rest: &mut &str) -> Result<Option<u32>, &'static str> {
    if let Some(r) = rest.strip_prefix(name) {
        let (num, after) = r.split_once('/').ok_or("SIA modifier without /")?;
        *rest = after;
        Ok(Some(parse_decimal(num).ok_or("SIA modifier value")?))
    } else {
        Ok(None)
    }
}

/// A decimal number without sign or leading zeros (so that it round-trips), at most u32.
fn parse_decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// A tiny left-to-right reader over ASCII text.
struct Cursor<'a> {
    s: &'a str,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Self { s }
    }
    fn eat(&mut self, c: char) -> bool {
        if let Some(r) = self.s.strip_prefix(c) {
            self.s = r;
            true
        } else {
            false
        }
    }
    fn take_until(&mut self, c: char) -> Option<&'a str> {
        let i = self.s.find(c)?;
        let (a, b) = self.s.split_at(i);
        self.s = b;
        Some(a)
    }
    fn take_n(&mut self, n: usize) -> Option<&'a str> {
        if self.s.len() < n || !self.s.is_char_boundary(n) {
            return None;
        }
        let (a, b) = self.s.split_at(n);
        self.s = b;
        Some(a)
    }
    /// Up to `max` hex digits (possibly none).
    fn take_hex(&mut self, max: usize) -> &'a str {
        let n = self
            .s
            .bytes()
            .take(max + 1)
            .take_while(u8::is_ascii_hexdigit)
            .count();
        let (a, b) = self.s.split_at(n);
        self.s = b;
        a
    }
    fn rest(&self) -> &'a str {
        self.s
    }
}
