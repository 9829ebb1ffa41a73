//! Child process of the store crash test (feature `test-support`; never shipped).
//!
//! Usage: `watchpost-store-crash-writer DB_PATH BATCH`
//!
//! Appends batches of `BATCH` events with durable commits, forever, and after each commit prints
//! `event SEQ` (the last sequence of the batch) and then enqueues one item on queue `crash` and
//! prints `queue SEQ`. Each event gets `ts_us == seq`, so the test can check the log by time
//! range. A line is printed only after the commit it reports has returned; the parent SIGKILLs
//! this process at random moments and checks that everything printed is in the database.

use std::io::Write;
use std::num::NonZeroU64;
use std::process::ExitCode;

use watchpost_store::{NewEvent, Overflow, QueueConfig, Severity, Store, StoreError};

fn run(path: &str, batch: u64) -> Result<(), StoreError> {
    let store = Store::open(path)?;
    let log = store.events();
    let queue = store.queue(
        "crash",
        QueueConfig {
            capacity: NonZeroU64::MAX,
            overflow: Overflow::RejectNew,
        },
    )?;
    let mut out = std::io::stdout().lock();
    let mut next = log.stats()?.next_seq;
    loop {
        let events = (next..next + batch).map(|seq| {
            NewEvent::new(seq, "test.crash", "crash-writer", Severity::Info)
                .with_body(watchpost_store::JsonBody::empty())
        });
        let ids = log.append_batch(events)?;
        let Some(last) = ids.last() else {
            return Ok(());
        };
        next = last.seq + 1;
        // A closed pipe means the parent is gone; stop quietly.
        if writeln!(out, "event {}", last.seq)
            .and_then(|()| out.flush())
            .is_err()
        {
            return Ok(());
        }
        let seq = queue.enqueue(format!("item after {}", last.seq).as_bytes())?;
        if let Some(seq) = seq.seq()
            && writeln!(out, "queue {seq}")
                .and_then(|()| out.flush())
                .is_err()
        {
            return Ok(());
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(batch)) = (args.get(1), args.get(2).and_then(|b| b.parse().ok())) else {
        eprintln!("usage: watchpost-store-crash-writer DB_PATH BATCH");
        return ExitCode::from(2);
    };
    match run(path, batch) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crash writer: {e}");
            ExitCode::FAILURE
        }
    }
}
