//! Load generator for `make bench-fieldbus` (driven by `tests/fieldbus/bench_fieldbus.py`).
//!
//! `modbus_load tcp HOST:PORT CONNECTIONS SECONDS [DEPTH]`: each connection sends the request
//! mix of a Neasmart base station (an FC03 read of a zone block, then an FC16 write of a zone's
//! status, alternating over the 60 zones) for SECONDS, keeping DEPTH requests in flight (1 by
//! default: request, answer, request); prints one JSON line with the request count, requests
//! per second and latency percentiles (latency = request sent to its answer read).
//!
//! `modbus_load rtu TTY COUNT`: sends COUNT FC03 requests on a serial line (38400 8N1) one at a
//! time and prints the turnaround (request written to the first response byte read) and the
//! full round trip (to the last byte), as JSON.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use watchpost_modbus::{Request, rtu, tcp};

const UNIT: u8 = 240;

fn request(i: u64) -> Request {
    let zone = (i / 2 % 60) as u16;
    let n = 100 * (zone + 1);
    if i.is_multiple_of(2) {
        Request::ReadHoldingRegisters {
            address: n,
            count: 11,
        }
    } else {
        Request::WriteMultipleRegisters {
            address: n,
            values: vec![1, 0x0C65, 0x07C6 + (i % 7) as u16],
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1e6
}

/// One connection keeping `depth` requests in flight (1 = request, wait, request...).
async fn tcp_connection(
    addr: String,
    until: Instant,
    id: u64,
    depth: usize,
) -> (Vec<Duration>, u64) {
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    s.set_nodelay(true).unwrap();
    let mut lat = Vec::with_capacity(200_000);
    let mut errors = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0;
    let mut i = id;
    let mut tid: u16 = 0;
    let mut in_flight: std::collections::VecDeque<(u16, Instant)> = Default::default();
    let mut out = Vec::new();
    loop {
        let sending = Instant::now() < until;
        if !sending && in_flight.is_empty() {
            break;
        }
        if sending {
            out.clear();
            let now = Instant::now();
            while in_flight.len() < depth {
                tid = tid.wrapping_add(1);
                out.extend(tcp::encode_request(tid, UNIT, &request(i)));
                i += 1;
                in_flight.push_back((tid, now));
            }
            if !out.is_empty() {
                s.write_all(&out).await.expect("write");
            }
        }
        // A server that drops a request would stall the connection: give up on it after 2 s.
        let n = match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf[have..])).await {
            Ok(r) => r.expect("read"),
            Err(_) => {
                errors += in_flight.len() as u64;
                break;
            }
        };
        if n == 0 {
            panic!("server closed the connection");
        }
        have += n;
        // Take every complete MBAP frame.
        let mut at = 0;
        while have - at >= 7 {
            let len = usize::from(u16::from_be_bytes([buf[at + 4], buf[at + 5]]));
            if have - at < 6 + len {
                break;
            }
            let got = u16::from_be_bytes([buf[at], buf[at + 1]]);
            match in_flight.pop_front() {
                Some((want, t0)) => {
                    lat.push(t0.elapsed());
                    if want != got || buf[at + 7] & 0x80 != 0 {
                        errors += 1;
                    }
                }
                None => errors += 1,
            }
            at += 6 + len;
        }
        buf.copy_within(at..have, 0);
        have -= at;
    }
    (lat, errors)
}

async fn run_tcp(addr: String, connections: u64, seconds: f64, depth: usize) {
    // Warm-up: one short round so connection setup and first-touch costs are not measured.
    let warm = Instant::now() + Duration::from_millis(300);
    tcp_connection(addr.clone(), warm, 0, 1).await;
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for c in 0..connections {
        tasks.push(tokio::spawn(tcp_connection(
            addr.clone(),
            until,
            c * 1000,
            depth,
        )));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    println!(
        "{{\"requests\": {}, \"errors\": {}, \"seconds\": {:.3}, \"rps\": {:.1}, \"p50_us\": {:.1}, \"p99_us\": {:.1}, \"max_us\": {:.1}}}",
        all.len(),
        errors,
        elapsed,
        all.len() as f64 / elapsed,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 1.0),
    );
}

async fn run_rtu(tty: String, count: u64) {
    let mut port = tokio_serial::SerialStream::open(&tokio_serial::new(&tty, 38_400))
        .expect("open the serial line");
    // Wait until the slave answers (it may still be starting).
    let probe = rtu::encode_request(
        UNIT,
        &Request::ReadHoldingRegisters {
            address: 100,
            count: 11,
        },
    );
    let mut buf = [0u8; 512];
    let ready_by = Instant::now() + Duration::from_secs(15);
    loop {
        port.write_all(&probe).await.unwrap();
        match tokio::time::timeout(Duration::from_millis(200), port.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => break,
            _ if Instant::now() > ready_by => panic!("the slave on {tty} does not answer"),
            _ => {}
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Drain what is left of the probe's answer.
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(20), port.read(&mut buf)).await
    {
        if n == 0 {
            break;
        }
    }
    let mut turn = Vec::new();
    let mut round = Vec::new();
    let mut errors = 0;
    for i in 0..count + 20 {
        let frame = rtu::encode_request(
            UNIT,
            &Request::ReadHoldingRegisters {
                address: 100 * (1 + (i % 60) as u16),
                count: 11,
            },
        );
        // The line must be quiet before a new request.
        tokio::time::sleep(Duration::from_millis(3)).await;
        let t0 = Instant::now();
        port.write_all(&frame).await.unwrap();
        let want = 5 + 22;
        let mut have = 0;
        let mut first = None;
        let deadline = tokio::time::sleep(Duration::from_millis(500));
        tokio::pin!(deadline);
        while have < want {
            tokio::select! {
                r = port.read(&mut buf[have..]) => {
                    let n = r.unwrap();
                    if first.is_none() {
                        first = Some(Instant::now());
                    }
                    have += n;
                }
                _ = &mut deadline => break,
            }
        }
        if have < want || !watchpost_modbus::crc::check(&buf[..want]) {
            errors += 1;
            continue;
        }
        if i >= 20 {
            // On a pty the writer is often descheduled inside write() while the slave already
            // answers, so the turnaround is taken from the start of the write: the request's
            // 8 bytes, the slave's reaction, to the first byte of the answer.
            turn.push(first.unwrap().duration_since(t0));
            round.push(t0.elapsed());
        }
    }
    turn.sort();
    round.sort();
    println!(
        "{{\"requests\": {}, \"errors\": {}, \"turnaround_p50_us\": {:.1}, \"turnaround_p99_us\": {:.1}, \"roundtrip_p50_us\": {:.1}, \"roundtrip_p99_us\": {:.1}}}",
        turn.len(),
        errors,
        percentile(&turn, 0.5),
        percentile(&turn, 0.99),
        percentile(&round, 0.5),
        percentile(&round, 0.99),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // One thread: the generator must not need more of the machine than the server under test.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match args.get(1).map(String::as_str) {
        Some("tcp") => rt.block_on(run_tcp(
            args[2].clone(),
            args[3].parse().unwrap(),
            args[4].parse().unwrap(),
            args.get(5).map_or(1, |d| d.parse().unwrap()),
        )),
        Some("rtu") => rt.block_on(run_rtu(args[2].clone(), args[3].parse().unwrap())),
        _ => eprintln!(
            "usage: modbus_load tcp HOST:PORT CONNECTIONS SECONDS [DEPTH] | rtu TTY COUNT"
        ),
    }
}
