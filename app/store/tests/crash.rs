//! Crash test: a child process appends events and enqueues items with durable commits, printing
//! each committed sequence; it is SIGKILLed at random (seeded) moments 20 times. After each kill
//! the database must open, hold every printed sequence, and have no gaps.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::num::NonZeroU64;
use std::ops::ControlFlow;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use watchpost_store::{EventFilter, EventId, Order, Overflow, QueueConfig, Store, StoreError};

const ROUNDS: usize = 20;
const SEED: u64 = 0x5EED_0001_57A4_E000;
const BATCH: &str = "20";

/// splitmix64: a small deterministic generator, so a failing run can be repeated exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn queue_config() -> QueueConfig {
    QueueConfig {
        capacity: NonZeroU64::MAX,
        overflow: Overflow::RejectNew,
    }
}

#[test]
fn sigkill_never_loses_a_committed_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let exe = env!("CARGO_BIN_EXE_watchpost-store-crash-writer");
    let mut rng = Rng(SEED);
    // Events 0..verified_events are checked already; queue items up to acked are acknowledged.
    let mut verified_events = 0u64;
    let mut acked: Option<u64> = None;
    let mut killed_with_output = 0;

    for round in 0..ROUNDS {
        let delay = Duration::from_millis(rng.between(100, 1500));
        let mut child = Command::new(exe)
            .arg(&path)
            .arg(BATCH)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });

        let started = Instant::now();
        let mut lines = Vec::new();
        if round == 0 {
            // While the child owns the file, a second owner is refused, naming the path.
            lines.push(rx.recv_timeout(Duration::from_secs(20)).unwrap());
            match Store::open(&path) {
                Err(StoreError::AlreadyOpen { path: p }) => assert_eq!(p, path),
                other => panic!("expected AlreadyOpen while the child runs, got {other:?}"),
            }
        }
        // The kill moment: the child writes the whole time, so this is where it gets cut.
        let remaining = delay.saturating_sub(started.elapsed());
        std::thread::sleep(remaining);
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            status.code().is_none(),
            "round {round}: the writer exited by itself ({status}) instead of being killed"
        );
        reader.join().unwrap();
        lines.extend(rx.try_iter());

        let mut printed_events = Vec::new();
        let mut printed_queue = Vec::new();
        for line in &lines {
            let (what, seq) = line.split_once(' ').unwrap();
            let seq: u64 = seq.parse().unwrap();
            match what {
                "event" => printed_events.push(seq),
                "queue" => printed_queue.push(seq),
                _ => panic!("unexpected line {line:?}"),
            }
        }
        if !printed_events.is_empty() {
            killed_with_output += 1;
        }

        // Reopen (redb repairs after the unclean stop) and check.
        let store = Store::open(&path).unwrap();
        let log = store.events();
        let stats = log.stats().unwrap();
        assert_eq!(
            stats.count, stats.next_seq,
            "round {round}: nothing is ever deleted, so count == next_seq"
        );
        for &seq in &printed_events {
            assert!(
                log.get(EventId { ts_us: seq, seq }).unwrap().is_some(),
                "round {round}: printed event {seq} is missing"
            );
        }
        // No gaps: every event from the last checked one on is there, in order.
        let mut expected = verified_events;
        log.scan(
            &EventFilter {
                since_us: Some(verified_events),
                ..EventFilter::default()
            },
            Order::OldestFirst,
            |e| {
                assert_eq!((e.seq, e.ts_us), (expected, expected), "round {round}: gap");
                expected += 1;
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        assert_eq!(expected, stats.next_seq, "round {round}");
        if let Some(&last) = printed_events.last() {
            assert!(stats.next_seq > last);
        }
        verified_events = stats.next_seq;

        // Queue: every printed item is there, contiguous after what was acknowledged.
        let q = store.queue("crash", queue_config()).unwrap();
        let qs = q.stats().unwrap();
        let items = q.peek(usize::MAX).unwrap();
        let first = acked.map_or(0, |a| a + 1);
        assert_eq!(qs.len, items.len() as u64, "round {round}");
        assert_eq!(qs.len, qs.next_seq - first, "round {round}: queue length");
        for (i, item) in items.iter().enumerate() {
            assert_eq!(item.seq, first + i as u64, "round {round}: queue gap");
        }
        for &seq in &printed_queue {
            assert!(
                items.iter().any(|i| i.seq == seq),
                "round {round}: printed queue item {seq} is missing"
            );
        }
        // Acknowledge what was checked; the next round checks the ack survived too.
        if let Some(last) = items.last() {
            assert_eq!(q.ack_through(last.seq).unwrap(), items.len() as u64);
            acked = Some(last.seq);
        }
    }

    // A final full pass over the whole log.
    let store = Store::open(&path).unwrap();
    let log = store.events();
    let mut n = 0u64;
    log.scan(&EventFilter::default(), Order::OldestFirst, |e| {
        assert_eq!(e.seq, n);
        n += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(n, log.stats().unwrap().next_seq);
    assert!(n > 0, "the writer never committed anything");
    assert!(
        killed_with_output >= ROUNDS / 2,
        "only {killed_with_output} of {ROUNDS} rounds committed before the kill"
    );
    eprintln!("crash test: {ROUNDS} kills, {n} events committed and verified");
}
