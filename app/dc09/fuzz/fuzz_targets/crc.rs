//! The table CRC equals the bit-by-bit definition, and framing detects any single damaged byte
//! in the body (CRC-16 catches every burst of up to 16 bits).
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchpost_dc09::{crc16, crc16_bitwise, frame};

fuzz_target!(|data: &[u8]| {
    assert_eq!(crc16(data), crc16_bitwise(data));
    let Some((&flip, body)) = data.split_first() else {
        return;
    };
    let Ok(framed) = frame::wrap(body) else {
        assert!(body.len() > frame::MAX_BODY);
        return;
    };
    assert_eq!(frame::unwrap(&framed).expect("own frame"), body);
    if body.is_empty() || flip == 0 {
        return;
    }
    let mut damaged = framed.clone();
    let at = 9 + usize::from(flip) % body.len();
    damaged[at] ^= flip;
    assert!(frame::unwrap(&damaged).is_err(), "damage at {at} not detected");
});
