//! The MBAP receiver on arbitrary chunks: nothing panics, every byte is accounted for, and
//! every frame re-encodes to the bytes it came from.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use watchpost_modbus::tcp;
use watchpost_modbus::{Direction, Request, TcpEvent, TcpReceiver};

fuzz_target!(|data: &[u8]| {
    let mut rx = TcpReceiver::new(Direction::Requests, Duration::from_millis(500));
    let mut now = Instant::now();
    let (mut fed, mut accounted) = (0usize, 0usize);
    let mut rest = data;
    while rest.len() >= 2 {
        let gap_ms = u64::from(rest[0]) * 4;
        let len = usize::from(rest[1]).min(rest.len() - 2);
        let chunk = &rest[2..2 + len];
        rest = &rest[2 + len..];
        now += Duration::from_millis(gap_ms);
        rx.push(chunk, now);
        fed += chunk.len();
        while let Some(ev) = rx.poll_event() {
            match ev {
                TcpEvent::Frame(adu) => {
                    let mut out = Vec::new();
                    tcp::encode_with(adu.transaction, adu.unit, &mut out, |o| {
                        o.extend_from_slice(&adu.pdu)
                    });
                    accounted += out.len();
                    if let Ok(req) = Request::decode(&adu.pdu) {
                        assert_eq!(tcp::encode_request(adu.transaction, adu.unit, &req), out);
                    }
                }
                TcpEvent::Dropped { bytes, .. } => accounted += bytes,
            }
        }
        assert_eq!(fed, accounted + rx.buffered());
    }
});
