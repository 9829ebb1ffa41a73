//! Storage benchmark: the Watchpost event log (redb + rkyv, through the public `Store` API) beside
//! sled 0.34 doing the same work, in the same run.
//!
//! Run with `make bench-store` (release profile). Each engine runs in its own child process so
//! that write volume (`/proc/self/io` `write_bytes`), CPU time and peak RSS belong to it alone.
//! Workload: N events (default 1M) in batches of B (default 100), one durable commit per batch
//! (redb `Durability::Immediate`; sled `apply_batch` + `flush`), each batch also updating a count,
//! a byte total and the next sequence as the store does. Then: newest-page queries (50 events,
//! validated and decoded, with the total), a validated scan of the newest 10,000, a clean reopen,
//! and a reopen after SIGKILL of a writer.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark tooling: a panic is the report

use std::io::{BufRead, BufReader, Write};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use rkyv::rancor;
use rkyv::util::AlignedVec;
use serde::{Deserialize, Serialize};
use watchpost_store::{
    Event, EventFilter, JsonBody, NewEvent, Order, Severity, Store, StoreOptions,
};

const PAGE: u32 = 50;
const QUERIES: usize = 2_000;
const SCAN: u64 = 10_000;
const BASE_US: u64 = 1_790_000_000_000_000;

#[derive(Debug, Clone)]
struct Args {
    dir: PathBuf,
    events: u64,
    batch: u64,
}

fn parse_args(args: &[String]) -> Args {
    let mut out = Args {
        dir: std::env::temp_dir().join("watchpost-store-bench"),
        events: 1_000_000,
        batch: 100,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dir" => out.dir = PathBuf::from(it.next().expect("--dir DIR")),
            "--events" => out.events = it.next().expect("--events N").parse().expect("number"),
            "--batch" => out.batch = it.next().expect("--batch N").parse().expect("number"),
            // `cargo bench` passes --bench; other flags are ignored.
            _ => {}
        }
    }
    out
}

/// Figures measured for one engine, sent from the child to the parent as one JSON line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Figures {
    engine: String,
    events: u64,
    batch: u64,
    insert_s: f64,
    payload_bytes: u64,
    write_bytes: u64,
    disk_apparent: u64,
    disk_allocated: u64,
    cpu_user_s: f64,
    cpu_sys_s: f64,
    peak_rss: u64,
    newest_p50_us: f64,
    newest_p99_us: f64,
    scan_10k_ms: f64,
    reopen_ms: f64,
    reopen_after_kill_ms: f64,
    reopen_after_kill_cold_ms: f64,
}

/// The i-th event: a sensor reading most of the time, an alarm one time in fifty.
fn event(i: u64) -> NewEvent {
    let alarm = i.is_multiple_of(50);
    let (kind, severity) = if alarm {
        ("alarm.raised", Severity::Alarm)
    } else {
        ("sensor.reading", Severity::Info)
    };
    let body = format!(
        r#"{{"value":{}.{},"unit":"C","zone":{}}}"#,
        15 + i % 10,
        i % 10,
        i % 12
    );
    NewEvent::new(
        BASE_US + i * 1_000,
        kind,
        format!("sensor-{}", i % 16),
        severity,
    )
    .with_body(JsonBody::parse(body).unwrap())
}

// ---- process measurements ----

fn proc_io_write_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn proc_cpu_s() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 after ")" and state.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // USER_HZ is 100 on Linux.
    (ticks(11) / 100.0, ticks(12) / 100.0)
}

fn proc_peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn disk_usage(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0;
    let mut allocated = 0;
    let Ok(meta) = std::fs::metadata(path) else {
        return (0, 0);
    };
    if meta.is_file() {
        return (meta.len(), meta.blocks() * 512);
    }
    for entry in std::fs::read_dir(path).unwrap().flatten() {
        let (a, b) = disk_usage(&entry.path());
        apparent += a;
        allocated += b;
    }
    (apparent, allocated)
}

fn percentile(sorted: &[Duration], p: usize) -> f64 {
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1e6
}

// ---- the engines ----

/// What the benchmark needs from an engine.
trait Engine: Sized {
    const NAME: &'static str;
    fn open(dir: &Path) -> Self;
    /// Appends a batch durably; returns the key+value bytes written for the events.
    fn append(&mut self, events: Vec<NewEvent>) -> u64;
    /// The newest `n` events, decoded and validated, and the total count.
    fn newest(&self, n: usize) -> (Vec<Event>, u64);
    /// Visits the newest `n` events (validated); returns how many.
    fn scan_newest(&self, n: u64) -> u64;
}

/// The store as the appliance uses it; `QUICK` turns on `StoreOptions::quick_repair`.
struct Redb<const QUICK: bool> {
    store: Store,
}

impl<const QUICK: bool> Engine for Redb<QUICK> {
    const NAME: &'static str = if QUICK { "redb-quick" } else { "redb" };

    fn open(dir: &Path) -> Self {
        let options = StoreOptions {
            quick_repair: QUICK,
            ..StoreOptions::default()
        };
        let store = Store::open_with(dir.join("events.redb"), &options).unwrap();
        Self { store }
    }

    fn append(&mut self, events: Vec<NewEvent>) -> u64 {
        let log = self.store.events();
        let before = log.stats().unwrap().bytes;
        log.append_batch(events).unwrap();
        log.stats().unwrap().bytes - before
    }

    fn newest(&self, n: usize) -> (Vec<Event>, u64) {
        let page = self
            .store
            .events()
            .newest(NonZeroU32::new(n as u32).unwrap())
            .unwrap();
        (page.items, page.pagination.total)
    }

    fn scan_newest(&self, n: u64) -> u64 {
        let log = self.store.events();
        let newest = log.stats().unwrap().newest_ts_us.unwrap();
        let since = newest + 1_000 - n * 1_000;
        log.scan(
            &EventFilter {
                since_us: Some(since),
                ..EventFilter::default()
            },
            Order::NewestFirst,
            |_| std::ops::ControlFlow::Continue(()),
        )
        .unwrap()
    }
}

/// The same record layout as the store's archived event.
#[derive(rkyv::Archive, rkyv::Serialize)]
struct SledRecord {
    ts_us: u64,
    seq: u64,
    severity: u8,
    kind: String,
    source: String,
    body: String,
}

/// Meta keys sort before every event key (events have ts_us > 0).
fn sled_meta_key(name: &str) -> Vec<u8> {
    let mut k = vec![0u8; 16];
    k.extend_from_slice(name.as_bytes());
    k
}

struct Sled {
    db: sled::Db,
    next_seq: u64,
    count: u64,
    bytes: u64,
}

fn severity_code(s: Severity) -> u8 {
    Severity::ALL.iter().position(|v| *v == s).unwrap() as u8
}

fn sled_decode(buf: &mut AlignedVec, key: &[u8], value: &[u8]) -> Event {
    assert_eq!(key.len(), 16);
    buf.clear();
    buf.extend_from_slice(value);
    let a = rkyv::access::<ArchivedSledRecord, rancor::Error>(buf).unwrap();
    Event {
        ts_us: a.ts_us.to_native(),
        seq: a.seq.to_native(),
        kind: a.kind.as_str().to_owned(),
        source: a.source.as_str().to_owned(),
        severity: Severity::ALL[usize::from(a.severity)],
        body: JsonBody::parse(a.body.as_str().to_owned()).unwrap(),
    }
}

impl Engine for Sled {
    const NAME: &'static str = "sled";

    fn open(dir: &Path) -> Self {
        // Same cache budget as the store's default.
        let db = sled::Config::new()
            .path(dir.join("events.sled"))
            .cache_capacity(StoreOptions::default().cache_bytes as u64)
            .open()
            .unwrap();
        let get = |name: &str| {
            db.get(sled_meta_key(name))
                .unwrap()
                .map_or(0, |v| u64::from_le_bytes(v.as_ref().try_into().unwrap()))
        };
        let (next_seq, count, bytes) = (get("next_seq"), get("count"), get("bytes"));
        Self {
            db,
            next_seq,
            count,
            bytes,
        }
    }

    fn append(&mut self, events: Vec<NewEvent>) -> u64 {
        let mut batch = sled::Batch::default();
        let mut written = 0;
        for e in events {
            let seq = self.next_seq;
            self.next_seq += 1;
            let rec = SledRecord {
                ts_us: e.ts_us,
                seq,
                severity: severity_code(e.severity),
                kind: e.kind,
                source: e.source,
                body: e.body.as_str().to_owned(),
            };
            let value = rkyv::to_bytes::<rancor::Error>(&rec).unwrap();
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&e.ts_us.to_be_bytes());
            key[8..].copy_from_slice(&seq.to_be_bytes());
            written += 16 + value.len() as u64;
            batch.insert(&key[..], value.as_slice());
        }
        self.count = self.next_seq;
        self.bytes += written;
        for (name, v) in [
            ("next_seq", self.next_seq),
            ("count", self.count),
            ("bytes", self.bytes),
        ] {
            batch.insert(sled_meta_key(name), &v.to_le_bytes()[..]);
        }
        self.db.apply_batch(batch).unwrap();
        self.db.flush().unwrap();
        written
    }

    fn newest(&self, n: usize) -> (Vec<Event>, u64) {
        let mut buf = AlignedVec::new();
        let mut items = Vec::with_capacity(n);
        for kv in self.db.iter().rev() {
            let (k, v) = kv.unwrap();
            if k.len() != 16 {
                break;
            }
            items.push(sled_decode(&mut buf, &k, &v));
            if items.len() == n {
                break;
            }
        }
        let total = self
            .db
            .get(sled_meta_key("count"))
            .unwrap()
            .map_or(0, |v| u64::from_le_bytes(v.as_ref().try_into().unwrap()));
        (items, total)
    }

    fn scan_newest(&self, n: u64) -> u64 {
        let mut buf = AlignedVec::new();
        let mut seen = 0;
        for kv in self.db.iter().rev() {
            let (k, v) = kv.unwrap();
            if k.len() != 16 {
                break;
            }
            let _ = sled_decode(&mut buf, &k, &v);
            seen += 1;
            if seen == n {
                break;
            }
        }
        seen
    }
}

// ---- one engine, in a child process ----

fn run_engine<E: Engine>(args: &Args) -> Figures {
    let dir = args.dir.join(E::NAME);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = Figures {
        engine: E::NAME.to_owned(),
        events: args.events,
        batch: args.batch,
        ..Figures::default()
    };

    let mut engine = E::open(&dir);
    let io0 = proc_io_write_bytes();
    let t0 = Instant::now();
    let mut i = 0;
    while i < args.events {
        let end = (i + args.batch).min(args.events);
        f.payload_bytes += engine.append((i..end).map(event).collect());
        i = end;
    }
    f.insert_s = t0.elapsed().as_secs_f64();
    f.write_bytes = proc_io_write_bytes() - io0;
    (f.cpu_user_s, f.cpu_sys_s) = proc_cpu_s();

    let mut lat = Vec::with_capacity(QUERIES);
    for _ in 0..QUERIES {
        let t = Instant::now();
        let (items, total) = engine.newest(PAGE as usize);
        lat.push(t.elapsed());
        assert_eq!(items.len(), PAGE as usize);
        assert_eq!(total, args.events);
        assert_eq!(items[0].seq, args.events - 1);
    }
    lat.sort();
    f.newest_p50_us = percentile(&lat, 50);
    f.newest_p99_us = percentile(&lat, 99);

    let t = Instant::now();
    let n = engine.scan_newest(SCAN);
    f.scan_10k_ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(n, SCAN.min(args.events));

    drop(engine);
    (f.disk_apparent, f.disk_allocated) = disk_usage(&dir);
    let t = Instant::now();
    let engine = E::open(&dir);
    f.reopen_ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(engine.newest(1).1, args.events);
    drop(engine);

    f.reopen_after_kill_ms = reopen_after_kill::<E>(&dir, args, false);
    f.reopen_after_kill_cold_ms = reopen_after_kill::<E>(&dir, args, true);
    f.peak_rss = proc_peak_rss();
    f
}

/// Writes back and drops the page cache of every file under `path`, as after a power cycle.
fn evict_from_page_cache(path: &Path) {
    use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            evict_from_page_cache(&entry.path());
        }
        return;
    }
    let file = std::fs::File::open(path).unwrap();
    file.sync_all().unwrap();
    posix_fadvise(&file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).unwrap();
}

/// Starts a writer on the database, SIGKILLs it while it writes, and times the next open
/// (`cold`: after evicting the files from the page cache).
fn reopen_after_kill<E: Engine>(dir: &Path, args: &Args, cold: bool) -> f64 {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--dirty-writer", E::NAME, "--dir"])
        .arg(&args.dir)
        .args(["--batch", &args.batch.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "writing");
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    if cold {
        evict_from_page_cache(dir);
    }
    let t = Instant::now();
    let engine = E::open(dir);
    let ms = t.elapsed().as_secs_f64() * 1e3;
    assert!(engine.newest(1).1 >= args.events);
    ms
}

fn dirty_writer<E: Engine>(args: &Args) -> ! {
    let mut engine = E::open(&args.dir.join(E::NAME));
    let mut i = 10_000_000_000;
    let mut out = std::io::stdout();
    loop {
        engine.append((i..i + args.batch).map(event).collect());
        i += args.batch;
        if i == 10_000_000_000 + args.batch {
            writeln!(out, "writing").unwrap();
            out.flush().unwrap();
        }
    }
}

// ---- the parent: run both, print the table ----

fn child_figures(engine: &str, args: &Args) -> Figures {
    eprintln!(
        "store bench: {engine}: {} events in batches of {} ...",
        args.events, args.batch
    );
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--engine", engine, "--dir"])
        .arg(&args.dir)
        .args(["--events", &args.events.to_string()])
        .args(["--batch", &args.batch.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "{engine} run failed: {}", out.status);
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("FIGURES "))
        .expect("child printed its figures");
    serde_json::from_str(line).unwrap()
}

type Metric = (&'static str, fn(&Figures) -> f64, usize);

const MIB: f64 = 1024.0 * 1024.0;

const METRICS: &[Metric] = &[
    ("inserts/s", |f| f.events as f64 / f.insert_s, 0),
    (
        "durable commits/s",
        |f| f.events as f64 / f.batch as f64 / f.insert_s,
        0,
    ),
    (
        "record bytes/event (key+value)",
        |f| f.payload_bytes as f64 / f.events as f64,
        1,
    ),
    (
        "bytes written/event (/proc/self/io)",
        |f| f.write_bytes as f64 / f.events as f64,
        0,
    ),
    (
        "write amplification (written/record)",
        |f| f.write_bytes as f64 / f.payload_bytes as f64,
        2,
    ),
    (
        "disk size, apparent (MiB)",
        |f| f.disk_apparent as f64 / MIB,
        1,
    ),
    (
        "disk size, allocated (MiB)",
        |f| f.disk_allocated as f64 / MIB,
        1,
    ),
    ("CPU user, inserts (s)", |f| f.cpu_user_s, 2),
    ("CPU sys, inserts (s)", |f| f.cpu_sys_s, 2),
    ("peak RSS (MiB)", |f| f.peak_rss as f64 / MIB, 1),
    ("newest page of 50, p50 (us)", |f| f.newest_p50_us, 1),
    ("newest page of 50, p99 (us)", |f| f.newest_p99_us, 1),
    ("scan newest 10k, validated (ms)", |f| f.scan_10k_ms, 2),
    ("reopen after clean close (ms)", |f| f.reopen_ms, 2),
    ("reopen after SIGKILL (ms)", |f| f.reopen_after_kill_ms, 2),
    (
        "reopen after SIGKILL, cold cache (ms)",
        |f| f.reopen_after_kill_cold_ms,
        2,
    ),
];

/// Prints the figures with ratios to the store's default configuration (first column).
fn print_table(redb: &Figures, quick: &Figures, sled: &Figures) {
    println!();
    println!(
        "store bench: {} events in batches of {}, one durable commit per batch",
        redb.events, redb.batch
    );
    println!("redb = watchpost-store defaults; redb-quick = StoreOptions {{ quick_repair: true }}");
    println!(
        "{:<38} {:>11} {:>11} {:>11} {:>11} {:>10}",
        "metric", "redb", "redb-quick", "sled 0.34", "quick/redb", "sled/redb"
    );
    println!("{}", "-".repeat(97));
    for (name, get, prec) in METRICS {
        let (r, q, s) = (get(redb), get(quick), get(sled));
        let ratio = |v: f64| if r > 0.0 { v / r } else { f64::NAN };
        println!(
            "{name:<38} {r:>11.prec$} {q:>11.prec$} {s:>11.prec$} {:>10.2}x {:>9.2}x",
            ratio(q),
            ratio(s)
        );
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = parse_args(&argv);
    let flag = |name: &str| {
        argv.iter()
            .position(|a| a == name)
            .and_then(|i| argv.get(i + 1))
            .cloned()
    };
    if let Some(engine) = flag("--dirty-writer") {
        match engine.as_str() {
            "redb" => dirty_writer::<Redb<false>>(&args),
            "redb-quick" => dirty_writer::<Redb<true>>(&args),
            _ => dirty_writer::<Sled>(&args),
        }
    }
    if let Some(engine) = flag("--engine") {
        let figures = match engine.as_str() {
            "redb" => run_engine::<Redb<false>>(&args),
            "redb-quick" => run_engine::<Redb<true>>(&args),
            _ => run_engine::<Sled>(&args),
        };
        println!("FIGURES {}", serde_json::to_string(&figures).unwrap());
        return ExitCode::SUCCESS;
    }
    std::fs::create_dir_all(&args.dir).unwrap();
    let r = child_figures("redb", &args);
    let q = child_figures("redb-quick", &args);
    let s = child_figures("sled", &args);
    print_table(&r, &q, &s);
    let _ = std::fs::remove_dir_all(&args.dir);
    ExitCode::SUCCESS
}
