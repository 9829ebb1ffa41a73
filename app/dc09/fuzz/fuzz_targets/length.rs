//! The length field must equal the body length: any other stated length, and any truncated or
//! extended body, is rejected.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchpost_dc09::{Dc09Error, frame};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let stated = usize::from(u16::from_le_bytes([data[0], data[1]]) & 0x0FFF);
    let body = &data[2..];
    let Ok(good) = frame::wrap(body) else {
        return;
    };
    let mut f = good.clone();
    f[5..9].copy_from_slice(format!("{stated:04X}").as_bytes());
    match frame::unwrap(&f) {
        Ok(b) => assert_eq!((b, stated), (body, body.len())),
        Err(e) => {
            assert_ne!(stated, body.len());
            assert!(matches!(e, Dc09Error::ParseLength { .. }), "{e}");
        }
    }
    if !body.is_empty() {
        let mut short = good[..good.len() - 2].to_vec();
        short.push(b'\r');
        assert!(frame::unwrap(&short).is_err());
    }
    let mut long = good[..good.len() - 1].to_vec();
    long.extend_from_slice(b"X\r");
    assert!(frame::unwrap(&long).is_err());
});
