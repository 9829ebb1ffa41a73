//! The golden RTU frames of the Neasmart reference (captured from pymodbus, CRCs recomputed
//! independently), decoded and re-encoded byte for byte through the public API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use watchpost_modbus::rtu::{self, silence_gap};
use watchpost_modbus::{
    Adu, Direction, Handled, Request, Response, RtuEvent, RtuReceiver, Slave, VecBank,
};

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

fn receive(direction: Direction, frame: &[u8]) -> Adu {
    let units = [0xF0u8, 0xF1].into_iter().collect();
    let mut rx = RtuReceiver::new(direction, units, silence_gap(38_400));
    rx.push(frame, Instant::now());
    match rx.poll_event() {
        Some(RtuEvent::Frame(adu)) => adu,
        other => panic!("expected a frame from {frame:02X?}, got {other:?}"),
    }
}

#[test]
fn requests_decode_and_encode_byte_exact() {
    let cases = [
        (
            "F0 06 05 15 0C 65 48 C8",
            0xF0,
            Request::WriteSingleRegister {
                address: 1301,
                value: 0x0C65,
            },
        ),
        (
            "F1 06 00 02 00 04 3D 39",
            0xF1,
            Request::WriteSingleRegister {
                address: 2,
                value: 4,
            },
        ),
        (
            "F0 03 05 15 00 01 80 23",
            0xF0,
            Request::ReadHoldingRegisters {
                address: 1301,
                count: 1,
            },
        ),
        (
            "F1 03 00 02 00 01 31 3A",
            0xF1,
            Request::ReadHoldingRegisters {
                address: 2,
                count: 1,
            },
        ),
        (
            "00 06 00 07 0C 65 FC F1",
            0x00,
            Request::WriteSingleRegister {
                address: 7,
                value: 0x0C65,
            },
        ),
        (
            "F0 03 00 64 00 0B 50 F3",
            0xF0,
            Request::ReadHoldingRegisters {
                address: 100,
                count: 11,
            },
        ),
    ];
    for (wire, unit, request) in cases {
        let bytes = hex(wire);
        let adu = receive(Direction::Requests, &bytes);
        assert_eq!(adu.unit, unit, "{wire}");
        assert_eq!(Request::decode(&adu.pdu).unwrap(), request, "{wire}");
        assert_eq!(rtu::encode_request(unit, &request), bytes, "{wire}");
    }
}

#[test]
fn responses_decode_and_encode_byte_exact() {
    let cases = [
        (
            "F0 03 02 0C 65 00 BA",
            0xF0,
            Response::ReadHoldingRegisters(vec![0x0C65]),
        ),
        (
            "F1 03 02 00 04 F9 92",
            0xF1,
            Response::ReadHoldingRegisters(vec![4]),
        ),
        // A write's response echoes the request.
        (
            "F0 06 05 15 0C 65 48 C8",
            0xF0,
            Response::WriteSingleRegister {
                address: 1301,
                value: 0x0C65,
            },
        ),
    ];
    for (wire, unit, response) in cases {
        let bytes = hex(wire);
        let adu = receive(Direction::Responses, &bytes);
        assert_eq!(adu.unit, unit, "{wire}");
        assert_eq!(Response::decode(&adu.pdu).unwrap(), response, "{wire}");
        assert_eq!(rtu::encode_response(unit, &response), bytes, "{wire}");
    }
}

#[test]
fn a_slave_answers_the_golden_exchange() {
    let slave = Slave::new([0xF0u8, 0xF1].into_iter().collect());
    let mut bank = VecBank::default();
    // Write through unit 240, read back through both units: one register store.
    let w = receive(Direction::Requests, &hex("F0 06 05 15 0C 65 48 C8"));
    let Handled::Reply(echo) = slave.handle(w.unit, &w.pdu, &mut bank) else {
        panic!("no reply to the write");
    };
    assert_eq!(
        rtu::encode_response(w.unit, &echo),
        hex("F0 06 05 15 0C 65 48 C8")
    );
    let r = receive(Direction::Requests, &hex("F0 03 05 15 00 01 80 23"));
    let Handled::Reply(resp) = slave.handle(r.unit, &r.pdu, &mut bank) else {
        panic!("no reply to the read");
    };
    assert_eq!(
        rtu::encode_response(r.unit, &resp),
        hex("F0 03 02 0C 65 00 BA")
    );
    // The broadcast write is applied and not answered.
    let b = receive(Direction::Requests, &hex("00 06 00 07 0C 65 FC F1"));
    assert!(matches!(
        slave.handle(b.unit, &b.pdu, &mut bank),
        Handled::Broadcast { applied: true, .. }
    ));
    assert_eq!(bank.0[7], 0x0C65);
    // State through 241.
    let s = receive(Direction::Requests, &hex("F1 06 00 02 00 04 3D 39"));
    slave.handle(s.unit, &s.pdu, &mut bank);
    let r = receive(Direction::Requests, &hex("F1 03 00 02 00 01 31 3A"));
    let Handled::Reply(resp) = slave.handle(r.unit, &r.pdu, &mut bank) else {
        panic!("no reply");
    };
    assert_eq!(
        rtu::encode_response(r.unit, &resp),
        hex("F1 03 02 00 04 F9 92")
    );
}
