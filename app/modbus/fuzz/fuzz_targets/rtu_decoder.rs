//! The RTU receiver and the slave behind it on arbitrary input: arbitrary chunks arriving after
//! arbitrary gaps. Checks that nothing panics, that every byte is accounted for (in a frame,
//! dropped, or still buffered), that every frame carries a valid CRC, and that the slave's
//! answers are well-formed frames for one of its own units only.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use watchpost_modbus::rtu::{self, silence_gap};
use watchpost_modbus::{
    Direction, Handled, Response, RtuEvent, RtuReceiver, Slave, UnitSet, VecBank, crc,
};

fuzz_target!(|data: &[u8]| {
    let units: UnitSet = [240u8, 241].into_iter().collect();
    let direction = if data.first().is_some_and(|b| b & 1 == 1) {
        Direction::Responses
    } else {
        Direction::Requests
    };
    let mut rx = RtuReceiver::new(direction, units, silence_gap(38_400));
    let slave = Slave::new(units);
    let mut bank = VecBank::default();
    let t0 = Instant::now();
    let mut now = t0;
    let mut fed = 0usize;
    let mut accounted = 0usize;
    // Input: [header byte] then repeated [gap_us_hi, gap_us_lo, len, bytes...].
    let mut rest = data.get(1..).unwrap_or_default();
    while rest.len() >= 3 {
        let gap = u64::from(u16::from_be_bytes([rest[0], rest[1]]));
        let len = usize::from(rest[2]).min(rest.len() - 3);
        let chunk = &rest[3..3 + len];
        rest = &rest[3 + len..];
        now += Duration::from_micros(gap);
        rx.handle_timeout(now);
        rx.push(chunk, now);
        fed += chunk.len();
        while let Some(ev) = rx.poll_event() {
            match ev {
                RtuEvent::Frame(adu) => {
                    accounted += adu.pdu.len() + 3;
                    let mut frame = Vec::new();
                    rtu::encode_with(adu.unit, &mut frame, |o| o.extend_from_slice(&adu.pdu));
                    assert!(crc::check(&frame));
                    assert!(frame.len() <= rtu::MAX_FRAME_LEN);
                    if direction == Direction::Requests {
                        match slave.handle(adu.unit, &adu.pdu, &mut bank) {
                            Handled::Reply(resp) => {
                                assert!(units.contains(adu.unit));
                                let out = rtu::encode_response(adu.unit, &resp);
                                assert!(out.len() <= rtu::MAX_FRAME_LEN);
                                let back = Response::decode(&out[1..out.len() - 2]);
                                assert_eq!(back.ok().as_ref().map(Response::function), Some(resp.function()));
                            }
                            Handled::NotAddressed { unit } => assert!(!units.contains(unit) && unit != 0),
                            Handled::Broadcast { .. } => assert_eq!(adu.unit, 0),
                        }
                    } else {
                        let _ = Response::decode(&adu.pdu);
                    }
                }
                RtuEvent::Dropped { bytes, .. } => {
                    assert!(bytes > 0);
                    accounted += bytes;
                }
            }
        }
        assert_eq!(fed, accounted + rx.buffered());
    }
    // Silence at the end resolves everything.
    now += Duration::from_secs(1);
    rx.handle_timeout(now);
    while let Some(ev) = rx.poll_event() {
        match ev {
            RtuEvent::Frame(adu) => accounted += adu.pdu.len() + 3,
            RtuEvent::Dropped { bytes, .. } => accounted += bytes,
        }
    }
    assert_eq!(rx.buffered(), 0);
    assert_eq!(fed, accounted);
});
