//! Event log through the public API: appends, filters, pagination and retention on 100,000
//! records, reopen.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::num::NonZeroU32;
use std::ops::ControlFlow;
use std::time::Duration;

use watchpost_store::{
    EventFilter, EventQuery, JsonBody, NewEvent, Order, RetentionPolicy, Severity, Store,
    StoreError,
};

const N: u64 = 100_000;
const BASE_US: u64 = 1_700_000_000_000_000;
const STEP_US: u64 = 1_000;

fn nz(v: u32) -> NonZeroU32 {
    NonZeroU32::new(v).unwrap()
}

/// The i-th synthetic event: one in ten is an alarm, sources cycle through seven sensors.
fn synthetic(i: u64) -> NewEvent {
    let kind = if i.is_multiple_of(10) {
        "alarm.raised"
    } else {
        "sensor.reading"
    };
    NewEvent::new(
        BASE_US + i * STEP_US,
        kind,
        format!("sensor-{}", i % 7),
        Severity::ALL[(i % 5) as usize],
    )
    .with_body(JsonBody::from_value(&serde_json::json!({ "i": i })).unwrap())
}

fn fill(store: &Store, n: u64) {
    let log = store.events();
    let mut i = 0;
    while i < n {
        let end = (i + 5_000).min(n);
        log.append_batch((i..end).map(synthetic)).unwrap();
        i = end;
    }
}

#[test]
fn append_get_and_stats() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("db/events.redb")).unwrap();
    let log = store.events();
    let body = JsonBody::parse(r#"{"zone":3,"state":"open"}"#).unwrap();
    let id = log
        .append(NewEvent::new(42, "alarm.raised", "door-1", Severity::Alarm).with_body(body))
        .unwrap();
    assert_eq!(id.seq, 0);
    let ev = log.get(id).unwrap().unwrap();
    assert_eq!(ev.kind, "alarm.raised");
    assert_eq!(ev.source, "door-1");
    assert_eq!(ev.severity, Severity::Alarm);
    assert_eq!(ev.body.as_str(), r#"{"zone":3,"state":"open"}"#);
    let json = serde_json::to_value(&ev).unwrap();
    assert_eq!(json["body"]["zone"], 3);
    assert_eq!(json["severity"], "alarm");
    let stats = log.stats().unwrap();
    assert_eq!(stats.count, 1);
    assert_eq!(stats.next_seq, 1);
    assert_eq!(stats.oldest_ts_us, Some(42));
    assert!(stats.bytes > 16);
    assert!(matches!(
        JsonBody::parse("{not json"),
        Err(StoreError::Body { .. })
    ));
}

#[test]
fn pagination_and_filters_on_100k() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("events.redb")).unwrap();
    fill(&store, N);
    let log = store.events();

    // Newest page: total from the meta table, items newest first.
    let page = log.newest(nz(50)).unwrap();
    assert_eq!(page.pagination.total, N);
    assert_eq!(page.pagination.total_pages, N / 50);
    assert_eq!(page.items.len(), 50);
    assert_eq!(page.items[0].seq, N - 1);
    assert_eq!(page.items[49].seq, N - 50);

    // A deep page in both orders.
    let q = |page, order| EventQuery {
        order,
        page: nz(page),
        limit: nz(100),
        ..EventQuery::default()
    };
    let p = log.query(&q(7, Order::NewestFirst)).unwrap();
    assert_eq!(p.items[0].seq, N - 1 - 600);
    let p = log.query(&q(1000, Order::OldestFirst)).unwrap();
    assert_eq!(p.items.len(), 100);
    assert_eq!(p.items[0].seq, N - 100);
    assert_eq!(p.items[99].seq, N - 1);
    // Past the end: no items, the total still says how many there are.
    let p = log.query(&q(1001, Order::OldestFirst)).unwrap();
    assert!(p.items.is_empty());
    assert_eq!(p.pagination.total, N);

    // Filters, checked against a model of the synthetic data.
    let model = |f: &dyn Fn(u64) -> bool| (0..N).filter(|&i| f(i)).collect::<Vec<_>>();
    let cases: Vec<(EventFilter, Vec<u64>)> = vec![
        (
            EventFilter {
                kind_prefix: Some("alarm.".into()),
                ..EventFilter::default()
            },
            model(&|i| i.is_multiple_of(10)),
        ),
        (
            EventFilter {
                source: Some("sensor-3".into()),
                min_severity: Some(Severity::Alarm),
                ..EventFilter::default()
            },
            model(&|i| i % 7 == 3 && i % 5 >= 3),
        ),
        (
            EventFilter {
                since_us: Some(BASE_US + 20_000 * STEP_US),
                until_us: Some(BASE_US + 30_000 * STEP_US),
                ..EventFilter::default()
            },
            model(&|i| (20_000..30_000).contains(&i)),
        ),
        (
            EventFilter {
                since_us: Some(BASE_US + 50_000 * STEP_US),
                kind_prefix: Some("sensor".into()),
                min_severity: Some(Severity::Critical),
                ..EventFilter::default()
            },
            model(&|i| i >= 50_000 && i % 10 != 0 && i % 5 == 4),
        ),
    ];
    for (filter, expected) in cases {
        let total = expected.len() as u64;
        for order in [Order::NewestFirst, Order::OldestFirst] {
            let mut ordered = expected.clone();
            if order == Order::NewestFirst {
                ordered.reverse();
            }
            let query = EventQuery {
                filter: filter.clone(),
                order,
                page: nz(3),
                limit: nz(25),
            };
            let p = log.query(&query).unwrap();
            assert_eq!(p.pagination.total, total, "{filter:?}");
            assert_eq!(p.pagination.total_pages, total.div_ceil(25));
            let seqs: Vec<u64> = p.items.iter().map(|e| e.seq).collect();
            assert_eq!(seqs, ordered[50..75].to_vec(), "{filter:?} {order:?}");
        }
    }

    // Empty time range.
    let p = log
        .query(&EventQuery {
            filter: EventFilter {
                since_us: Some(BASE_US + 10),
                until_us: Some(BASE_US + 10),
                ..EventFilter::default()
            },
            ..EventQuery::default()
        })
        .unwrap();
    assert_eq!(p.pagination.total, 0);
    assert_eq!(p.pagination.total_pages, 0);

    // Scan stops when asked.
    let mut seen = Vec::new();
    let visited = log
        .scan(&EventFilter::default(), Order::OldestFirst, |e| {
            seen.push(e.seq);
            if seen.len() == 10 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(visited, 10);
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
}

#[test]
fn retention_by_age_on_100k() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("events.redb")).unwrap();
    fill(&store, N);
    let log = store.events();
    let now = BASE_US + N * STEP_US;
    // Keep the last 30,000 (ts >= now - 30,000 ms).
    let policy = RetentionPolicy {
        max_age: Some(Duration::from_millis(30_000)),
        batch_size: nz(2_000),
        max_batches: nz(5),
        ..RetentionPolicy::default()
    };
    // A bounded call does part of the work and says so.
    let r = log.enforce_retention(&policy, now).unwrap();
    assert_eq!(r.deleted, 10_000);
    assert_eq!(r.batches, 5);
    assert!(!r.complete);
    // Later calls finish it.
    let mut deleted = r.deleted;
    loop {
        let r = log.enforce_retention(&policy, now).unwrap();
        deleted += r.deleted;
        if r.complete {
            break;
        }
    }
    assert_eq!(deleted, 70_000);
    let stats = log.stats().unwrap();
    assert_eq!(stats.count, 30_000);
    assert_eq!(stats.oldest_ts_us, Some(BASE_US + 70_000 * STEP_US));
    assert_eq!(log.newest(nz(1)).unwrap().pagination.total, 30_000);
    let oldest = log
        .query(&EventQuery {
            order: Order::OldestFirst,
            limit: nz(1),
            ..EventQuery::default()
        })
        .unwrap();
    assert_eq!(oldest.items[0].seq, 70_000);
    // Nothing left to do.
    let r = log.enforce_retention(&policy, now).unwrap();
    assert_eq!((r.deleted, r.complete), (0, true));

    // Counters survive a reopen and sequences continue.
    drop(log);
    drop(store);
    let store = Store::open(dir.path().join("events.redb")).unwrap();
    let log = store.events();
    let before = log.stats().unwrap();
    assert_eq!(before.count, 30_000);
    let id = log
        .append(NewEvent::new(now, "x", "y", Severity::Info))
        .unwrap();
    assert_eq!(id.seq, N);
}

#[test]
fn retention_by_size_on_100k() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("events.redb")).unwrap();
    fill(&store, N);
    let log = store.events();
    let full = log.stats().unwrap();
    let max_bytes = full.bytes / 4;
    let policy = RetentionPolicy {
        max_bytes: Some(max_bytes),
        max_batches: nz(1_000),
        ..RetentionPolicy::default()
    };
    let r = log.enforce_retention(&policy, 0).unwrap();
    assert!(r.complete);
    let after = log.stats().unwrap();
    assert_eq!(after.bytes, full.bytes - r.deleted_bytes);
    assert_eq!(after.count, N - r.deleted);
    assert!(after.bytes <= max_bytes);
    // Oldest first, and no more than needed: one more record would have fit over the limit.
    assert!(
        after.bytes + 200 > max_bytes,
        "{} vs {max_bytes}",
        after.bytes
    );
    let oldest = log
        .query(&EventQuery {
            order: Order::OldestFirst,
            limit: nz(1),
            ..EventQuery::default()
        })
        .unwrap();
    assert_eq!(oldest.items[0].seq, r.deleted);
    let newest = log.newest(nz(1)).unwrap();
    assert_eq!(newest.items[0].seq, N - 1);
    // The running count agrees with a scan of what is left.
    let mut count_by_scan = 0;
    log.scan(&EventFilter::default(), Order::OldestFirst, |_| {
        count_by_scan += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(count_by_scan, after.count);
}

#[test]
fn second_owner_is_refused_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("owned.redb");
    let store = Store::open(&path).unwrap();
    match Store::open(&path) {
        Err(StoreError::AlreadyOpen { path: p }) => assert_eq!(p, path),
        other => panic!("expected AlreadyOpen, got {other:?}"),
    }
    let msg = Store::open(&path).unwrap_err().to_string();
    assert!(msg.contains("owned.redb"), "{msg}");
    // Clones share the one owner.
    let clone = store.clone();
    clone
        .events()
        .append(NewEvent::new(1, "a", "b", Severity::Info))
        .unwrap();
    assert_eq!(store.events().stats().unwrap().count, 1);
    drop(store);
    drop(clone);
    Store::open(&path).unwrap();
}

#[test]
fn open_rejects_a_file_that_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.redb");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    match Store::open(&path) {
        Err(StoreError::Open { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected Open error, got {other:?}"),
    }
}

#[test]
fn store_is_shared_across_threads() {
    fn assert_traits<T: Clone + Send + Sync>() {}
    assert_traits::<Store>();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("t.redb")).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    store
                        .events()
                        .append(NewEvent::new(i, "t", format!("thread-{t}"), Severity::Info))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let stats = store.events().stats().unwrap();
    assert_eq!(stats.count, 100);
    assert_eq!(stats.next_seq, 100);
}
