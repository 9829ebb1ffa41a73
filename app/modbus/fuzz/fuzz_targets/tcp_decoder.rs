//! The MBAP receiver on arbitrary chunks: nothing panics, every byte is accounted for, every
//! frame re-encodes to the bytes it came from, and every decodable request survives an
//! encode/decode round trip. (Byte equality is not asked of the request: FC15 ignores the
//! padding bits of its last coil byte and encodes them as zero.)
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
                    assert_eq!(out.len(), tcp::HEADER_LEN + adu.pdu.len());
                    if let Ok(req) = Request::decode(&adu.pdu) {
                        let again = tcp::encode_request(adu.transaction, adu.unit, &req);
                        assert_eq!(again.len(), out.len());
                        assert_eq!(Request::decode(&again[tcp::HEADER_LEN..]), Ok(req));
                    }
                }
                TcpEvent::Dropped { bytes, .. } => accounted += bytes,
            }
        }
        assert_eq!(fed, accounted + rx.buffered());
    }
});
