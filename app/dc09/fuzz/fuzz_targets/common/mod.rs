//! Builds typed DC-09 values from fuzzer bytes (a byte reader that yields zeros when empty).

#![allow(dead_code)]

use watchpost_dc09::{
    Account, ContactId, ExtendedData, Key, Message, Payload, Prefix, Qualifier, Seq, SiaCode,
    SiaEvent, Timestamp,
};

pub struct Src<'a>(pub &'a [u8]);

impl Src<'_> {
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    pub fn hex(&mut self, min: usize, max: usize) -> String {
        let n = min + usize::from(self.u8()) % (max - min + 1);
        (0..n)
            .map(|_| char::from(b"0123456789ABCDEF"[usize::from(self.u8() % 16)]))
            .collect()
    }
    pub fn random16(&mut self) -> [u8; 16] {
        std::array::from_fn(|_| self.u8())
    }
}

fn opt(src: &mut Src<'_>, v: u32) -> Option<u32> {
    if src.u8() % 2 == 0 { None } else { Some(v) }
}

pub fn message(src: &mut Src<'_>) -> Message {
    let payload = match src.u8() % 3 {
        0 => Payload::Null,
        1 => {
            let q = [Qualifier::New, Qualifier::Restore, Qualifier::Status][usize::from(src.u8() % 3)];
            Payload::ContactId(
                ContactId::new(q, src.u16() % 1000, src.u8() % 100, src.u16() % 1000)
                    .expect("in range"),
            )
        }
        _ => {
            let code = [b'A' + src.u8() % 26, b'A' + src.u8() % 26];
            let (u, a, z) = (src.u32(), src.u32(), src.u32());
            Payload::Sia(SiaEvent {
                user: opt(src, u),
                area: opt(src, a),
                code: SiaCode::new(std::str::from_utf8(&code).expect("ascii")).expect("letters"),
                zone: opt(src, z),
            })
        }
    };
    let mut extended = Vec::new();
    for _ in 0..src.u8() % 3 {
        let id = char::from(b'A' + src.u8() % 26);
        let len = usize::from(src.u8()) % 40;
        let text: String = (0..len)
            .map(|_| {
                let c = 0x20 + src.u8() % 95;
                if b"[]|".contains(&c) { 'x' } else { char::from(c) }
            })
            .collect();
        extended.push(ExtendedData::new(id, &text).expect("valid text"));
    }
    let receiver = if src.u8() % 2 == 0 {
        None
    } else {
        Some(Prefix::new(&src.hex(1, 6)).expect("hex"))
    };
    let timestamp = if src.u8() % 4 == 0 {
        None
    } else {
        Some(Timestamp::from_unix_secs_clamped(i64::from(src.u32()) * 64))
    };
    Message {
        seq: Seq::new(1 + src.u16() % 9999).expect("in range"),
        receiver,
        line: Prefix::new(&src.hex(1, 6)).expect("hex"),
        account: Account::new(&src.hex(3, 16)).expect("hex"),
        payload,
        extended,
        timestamp,
    }
}

pub fn key(src: &mut Src<'_>) -> Key {
    let n = [16usize, 24, 32][usize::from(src.u8() % 3)];
    let bytes: Vec<u8> = (0..n).map(|_| src.u8()).collect();
    Key::from_bytes(&bytes).expect("valid length")
}
