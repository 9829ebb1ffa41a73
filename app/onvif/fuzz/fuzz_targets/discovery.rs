//! Any datagram on the discovery port: parsing must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = watchpost_onvif::discovery::parse(data);
});
