//! Time-based one-time passwords (RFC 6238 over RFC 4226): HMAC-SHA1, 30 s steps, 6 digits,
//! as every authenticator app computes them by default. A code is accepted in the step before
//! and after the current one (clock drift of a phone) and never twice.

use sha1::{Digest, Sha1};

pub const STEP_S: u64 = 30;
pub const DIGITS: u32 = 6;
/// Secret length in bytes (160 bits, as RFC 4226 recommends).
pub const SECRET_LEN: usize = 20;

fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha1::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha1::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The HOTP value of `counter` (RFC 4226 §5.3 dynamic truncation).
pub fn hotp(secret: &[u8], counter: u64) -> u32 {
    let mac = hmac_sha1(secret, &counter.to_be_bytes());
    let offset = usize::from(mac[19] & 0x0f);
    let bin = (u32::from(mac[offset]) & 0x7f) << 24
        | u32::from(mac[offset + 1]) << 16
        | u32::from(mac[offset + 2]) << 8
        | u32::from(mac[offset + 3]);
    bin % 10u32.pow(DIGITS)
}

/// The code for Unix time `unix_s`, zero-padded.
pub fn code_at(secret: &[u8], unix_s: u64) -> String {
    format!("{:06}", hotp(secret, unix_s / STEP_S))
}

/// The time step `code` matches around `unix_s` (±1 step), if any.
pub fn matching_step(secret: &[u8], code: &str, unix_s: u64) -> Option<u64> {
    let code = code.trim().replace(' ', "");
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u32 = code.parse().ok()?;
    let now = unix_s / STEP_S;
    [now.saturating_sub(1), now, now + 1]
        .into_iter()
        .find(|&step| hotp(secret, step) == value)
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding (what `otpauth://` URIs carry).
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(B32[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(B32[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The enrollment URI authenticator apps read from the QR code.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_S}",
        enc(issuer),
        enc(account),
        base32(secret),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 Appendix B, SHA-1 rows (8 digits there; the low 6 digits are ours).
    #[test]
    fn rfc6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (t, eight) in [
            (59u64, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(code_at(secret, t), eight[2..], "t={t}");
        }
    }

    #[test]
    fn a_neighbouring_step_is_accepted_and_others_are_not() {
        let secret = b"12345678901234567890";
        let t = 1_111_111_111;
        let prev = code_at(secret, t - 30);
        assert_eq!(matching_step(secret, &prev, t), Some(t / 30 - 1));
        assert_eq!(matching_step(secret, &code_at(secret, t - 90), t), None);
        assert_eq!(matching_step(secret, "12a456", t), None);
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
        assert!(otpauth_uri("Watchpost", "ann", b"foobar").contains("secret=MZXW6YTBOI"));
    }
}
