//! AES-CBC as DC-09 uses it: 128/192/256-bit keys, an all-zero IV, no block padding (the
//! message carries its own random pad), cipher text sent as upper-case hex.

use std::fmt;

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};

use crate::error::{Dc09Error, excerpt};

const BLOCK: usize = 16;
const ZERO_IV: [u8; BLOCK] = [0; BLOCK];

/// How a key is written in configuration. Receivers differ: panels and most receivers take
/// 32/48/64 hex digits that are decoded to bytes; pysiaalarm (and so Home Assistant) takes
/// 16/24/32 characters and uses the characters' bytes as the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFormat {
    Hex,
    Ascii,
}

/// An AES key. `Debug` never shows the key material.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(KeyBytes);

#[derive(Clone, PartialEq, Eq)]
enum KeyBytes {
    Aes128([u8; 16]),
    Aes192([u8; 24]),
    Aes256([u8; 32]),
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(AES-{}, ***)", self.bits())
    }
}

impl Key {
    /// Parses a key written in `format`.
    pub fn parse(text: &str, format: KeyFormat) -> Result<Self, Dc09Error> {
        let err = |reason| Dc09Error::ParseKey { format, reason };
        match format {
            KeyFormat::Hex => {
                if !matches!(text.len(), 32 | 48 | 64) {
                    return Err(err("a hex key has 32, 48 or 64 hex digits"));
                }
                let bytes = hex_decode(text.as_bytes()).ok_or_else(|| err("not hex digits"))?;
                Self::from_bytes(&bytes).map_err(|_| err("a hex key has 32, 48 or 64 hex digits"))
            }
            KeyFormat::Ascii => {
                if !text.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
                    return Err(err("an ASCII key has only printable ASCII characters"));
                }
                Self::from_bytes(text.as_bytes())
                    .map_err(|_| err("an ASCII key has 16, 24 or 32 characters"))
            }
        }
    }

    /// A key from raw bytes (16, 24 or 32 of them).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Dc09Error> {
        let bad = || Dc09Error::InvalidField {
            field: "key length",
            value: bytes.len().to_string(),
            reason: "an AES key has 16, 24 or 32 bytes",
        };
        Ok(Self(match bytes.len() {
            16 => KeyBytes::Aes128(bytes.try_into().map_err(|_| bad())?),
            24 => KeyBytes::Aes192(bytes.try_into().map_err(|_| bad())?),
            32 => KeyBytes::Aes256(bytes.try_into().map_err(|_| bad())?),
            _ => return Err(bad()),
        }))
    }

    /// 128, 192 or 256.
    pub fn bits(&self) -> u16 {
        match &self.0 {
            KeyBytes::Aes128(_) => 128,
            KeyBytes::Aes192(_) => 192,
            KeyBytes::Aes256(_) => 256,
        }
    }

    /// Encrypts `plain` (a whole number of blocks) and returns the upper-case hex text.
    pub(crate) fn encrypt_to_hex(&self, plain: &[u8]) -> String {
        debug_assert_eq!(plain.len() % BLOCK, 0);
        let mut buf = plain.to_vec();
        let len = buf.len();
        // NoPadding on a whole number of blocks cannot fail; an error leaves `buf` as is and
        // is caught by the round-trip tests.
        let _ = match &self.0 {
            KeyBytes::Aes128(k) => cbc::Encryptor::<aes::Aes128>::new(k.into(), &ZERO_IV.into())
                .encrypt_padded_mut::<NoPadding>(&mut buf, len)
                .map(|_| ()),
            KeyBytes::Aes192(k) => cbc::Encryptor::<aes::Aes192>::new(k.into(), &ZERO_IV.into())
                .encrypt_padded_mut::<NoPadding>(&mut buf, len)
                .map(|_| ()),
            KeyBytes::Aes256(k) => cbc::Encryptor::<aes::Aes256>::new(k.into(), &ZERO_IV.into())
                .encrypt_padded_mut::<NoPadding>(&mut buf, len)
                .map(|_| ()),
        };
        hex_encode(&buf)
    }

    /// Decrypts upper- or lower-case hex cipher text.
    pub(crate) fn decrypt_hex(&self, hex: &[u8]) -> Result<Vec<u8>, Dc09Error> {
        let err = |reason| Dc09Error::Decrypt {
            input: excerpt(hex),
            reason,
        };
        let mut buf = hex_decode(hex).ok_or_else(|| err("cipher text is not hex"))?;
        if buf.is_empty() || buf.len() % BLOCK != 0 {
            return Err(err("cipher text is not a whole number of 16-byte blocks"));
        }
        let ok = match &self.0 {
            KeyBytes::Aes128(k) => cbc::Decryptor::<aes::Aes128>::new(k.into(), &ZERO_IV.into())
                .decrypt_padded_mut::<NoPadding>(&mut buf)
                .is_ok(),
            KeyBytes::Aes192(k) => cbc::Decryptor::<aes::Aes192>::new(k.into(), &ZERO_IV.into())
                .decrypt_padded_mut::<NoPadding>(&mut buf)
                .is_ok(),
            KeyBytes::Aes256(k) => cbc::Decryptor::<aes::Aes256>::new(k.into(), &ZERO_IV.into())
                .decrypt_padded_mut::<NoPadding>(&mut buf)
                .is_ok(),
        };
        if ok {
            Ok(buf)
        } else {
            Err(err("cipher text is not a whole number of 16-byte blocks"))
        }
    }
}

/// Characters the pad is drawn from: printable, and never `|`, `[` or `]`.
const PAD_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// The pad placed before `|` so that pad + `|` + `rest` fills whole blocks: 1 to 16 bytes,
/// a full 16 when `|` + `rest` already ends on a block boundary. `random` supplies the
/// randomness (the caller owns the random source, which keeps this crate deterministic).
pub fn pad_for(rest_len: usize, random: &[u8; 16]) -> Vec<u8> {
    let len = BLOCK - (rest_len + 1) % BLOCK;
    random[..len]
        .iter()
        .map(|&r| PAD_ALPHABET[usize::from(r) % PAD_ALPHABET.len()])
        .collect()
}

pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

pub(crate) fn hex_decode(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    text.chunks_exact(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_formats() {
        let k = Key::parse("0123456789ABCDEF", KeyFormat::Ascii).unwrap();
        assert_eq!(k.bits(), 128);
        let k = Key::parse(&"ab".repeat(24), KeyFormat::Hex).unwrap();
        assert_eq!(k.bits(), 192);
        let k = Key::parse(&"0f".repeat(32), KeyFormat::Hex).unwrap();
        assert_eq!(k.bits(), 256);
        assert!(Key::parse("0123456789ABCDEF", KeyFormat::Hex).is_err());
        assert!(Key::parse(&"zz".repeat(16), KeyFormat::Hex).is_err());
        assert!(Key::parse("short", KeyFormat::Ascii).is_err());
        assert!(Key::parse("0123456789ABCDE ", KeyFormat::Ascii).is_err());
        assert_eq!(format!("{k:?}"), "Key(AES-256, ***)");
    }

    #[test]
    fn hex_and_ascii_forms_of_the_same_bytes_agree() {
        let ascii = Key::parse("0123456789ABCDEF", KeyFormat::Ascii).unwrap();
        let hex = Key::parse(&hex_encode(b"0123456789ABCDEF"), KeyFormat::Hex).unwrap();
        assert_eq!(ascii, hex);
    }

    #[test]
    fn fips_197_aes128_cbc_vector() {
        // CBC with a zero IV over a single block is plain AES, so the FIPS-197 appendix C.1
        // example applies.
        let key =
            Key::from_bytes(&hex_decode(b"000102030405060708090a0b0c0d0e0f").unwrap()).unwrap();
        let plain = hex_decode(b"00112233445566778899aabbccddeeff").unwrap();
        assert_eq!(
            key.encrypt_to_hex(&plain),
            "69C4E0D86A7B0430D8CDB78070B4C55A"
        );
        assert_eq!(
            key.decrypt_hex(b"69c4e0d86a7b0430d8cdb78070b4c55a")
                .unwrap(),
            plain
        );
    }

    #[test]
    fn round_trip_every_key_size() {
        for n in [16usize, 24, 32] {
            let key = Key::from_bytes(&vec![7u8; n]).unwrap();
            let plain: Vec<u8> = (0..64u8).collect();
            let hex = key.encrypt_to_hex(&plain);
            assert_eq!(key.decrypt_hex(hex.as_bytes()).unwrap(), plain);
        }
    }

    #[test]
    fn pad_fills_blocks_and_avoids_delimiters() {
        let random = [0x7cu8; 16];
        for rest in 0..64 {
            let pad = pad_for(rest, &random);
            assert!((1..=16).contains(&pad.len()));
            assert_eq!((pad.len() + 1 + rest) % 16, 0);
            assert!(!pad.iter().any(|b| b"|[]".contains(b)));
        }
        assert_eq!(pad_for(15, &random).len(), 16);
    }
}
