//! Durable queues through the public API: order, ack, overflow policies, reopen.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::num::NonZeroU64;

use watchpost_store::{Enqueued, Overflow, QueueConfig, Store, StoreError};

fn config(capacity: u64, overflow: Overflow) -> QueueConfig {
    QueueConfig {
        capacity: NonZeroU64::new(capacity).unwrap(),
        overflow,
    }
}

#[test]
fn order_ack_and_sequences_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queues.redb");
    let cfg = config(1_000, Overflow::RejectNew);
    {
        let store = Store::open(&path).unwrap();
        let q = store.queue("sia-primary", cfg).unwrap();
        for i in 0..10u8 {
            assert_eq!(
                q.enqueue(&[i]).unwrap(),
                Enqueued::Stored { seq: u64::from(i) }
            );
        }
        let head = q.peek(3).unwrap();
        assert_eq!(
            head.iter()
                .map(|i| (i.seq, i.payload[0]))
                .collect::<Vec<_>>(),
            vec![(0, 0), (1, 1), (2, 2)]
        );
        // Peek does not remove.
        assert_eq!(q.len().unwrap(), 10);
        assert!(q.ack(0).unwrap());
        assert!(
            !q.ack(0).unwrap(),
            "a second ack of the same item is a no-op"
        );
        assert!(q.ack(5).unwrap(), "ack out of order removes just that item");
        assert_eq!(q.len().unwrap(), 8);
        assert_eq!(q.ack_through(3).unwrap(), 3);
        assert_eq!(q.len().unwrap(), 5);
        assert_eq!(
            q.peek(100)
                .unwrap()
                .iter()
                .map(|i| i.seq)
                .collect::<Vec<_>>(),
            vec![4, 6, 7, 8, 9]
        );
    }
    {
        let store = Store::open(&path).unwrap();
        let q = store.queue("sia-primary", cfg).unwrap();
        assert_eq!(q.len().unwrap(), 5);
        assert_eq!(q.peek(1).unwrap()[0].seq, 4);
        assert_eq!(q.peek(1).unwrap()[0].payload, vec![4]);
        // Drain completely, reopen: the sequence still does not restart.
        assert_eq!(q.ack_through(u64::MAX).unwrap(), 5);
        assert!(q.is_empty().unwrap());
        assert_eq!(q.oldest_age().unwrap(), None);
    }
    let store = Store::open(&path).unwrap();
    let q = store.queue("sia-primary", cfg).unwrap();
    assert_eq!(q.enqueue(b"next").unwrap().seq(), Some(10));
    assert_eq!(q.stats().unwrap().next_seq, 11);
}

#[test]
fn queues_are_independent() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("q.redb")).unwrap();
    let cfg = config(10, Overflow::RejectNew);
    let a = store.queue("chekt", cfg).unwrap();
    let b = store.queue("sia-backup", cfg).unwrap();
    assert_eq!(a.enqueue(b"a0").unwrap().seq(), Some(0));
    assert_eq!(a.enqueue(b"a1").unwrap().seq(), Some(1));
    assert_eq!(b.enqueue(b"b0").unwrap().seq(), Some(0));
    assert_eq!(a.len().unwrap(), 2);
    assert_eq!(b.len().unwrap(), 1);
    assert_eq!(store.queue_names().unwrap(), vec!["chekt", "sia-backup"]);
    assert!(store.remove_queue("chekt").unwrap());
    assert!(!store.remove_queue("chekt").unwrap());
    assert_eq!(store.queue_names().unwrap(), vec!["sia-backup"]);
    assert_eq!(b.peek(10).unwrap()[0].payload, b"b0");
}

#[test]
fn overflow_reject_new_is_reported_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("q.redb")).unwrap();
    let q = store.queue("r1", config(3, Overflow::RejectNew)).unwrap();
    for i in 0..3u8 {
        assert!(matches!(q.enqueue(&[i]).unwrap(), Enqueued::Stored { .. }));
    }
    assert_eq!(
        q.enqueue(b"x").unwrap(),
        Enqueued::Rejected {
            len: 3,
            capacity: 3
        }
    );
    let stats = q.stats().unwrap();
    assert_eq!((stats.len, stats.next_seq, stats.dropped_total), (3, 3, 0));
    assert_eq!(q.peek(10).unwrap().last().unwrap().payload, vec![2]);
    // Room again after an ack.
    assert!(q.ack(0).unwrap());
    assert_eq!(q.enqueue(b"y").unwrap(), Enqueued::Stored { seq: 3 });
}

#[test]
fn overflow_drop_oldest_names_what_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.redb");
    let store = Store::open(&path).unwrap();
    let q = store.queue("r2", config(3, Overflow::DropOldest)).unwrap();
    for i in 0..3u8 {
        assert!(matches!(q.enqueue(&[i]).unwrap(), Enqueued::Stored { .. }));
    }
    assert_eq!(
        q.enqueue(b"3").unwrap(),
        Enqueued::StoredDroppingOldest {
            seq: 3,
            dropped: vec![0]
        }
    );
    // A handle with a smaller capacity drops several at once, oldest first.
    let small = store.queue("r2", config(1, Overflow::DropOldest)).unwrap();
    assert_eq!(
        small.enqueue(b"4").unwrap(),
        Enqueued::StoredDroppingOldest {
            seq: 4,
            dropped: vec![1, 2, 3]
        }
    );
    let stats = small.stats().unwrap();
    assert_eq!((stats.len, stats.dropped_total), (1, 4));
    assert_eq!(small.peek(10).unwrap()[0].payload, b"4");
}

#[test]
fn oldest_age_comes_from_the_head_item() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("q.redb")).unwrap();
    let q = store
        .queue("aged", config(10, Overflow::RejectNew))
        .unwrap();
    let an_hour_ago = watchpost_store::now_us() - 3_600_000_000;
    let _ = q.enqueue_at(b"old", an_hour_ago).unwrap();
    let _ = q.enqueue(b"new").unwrap();
    assert_eq!(q.stats().unwrap().oldest_enqueued_us, Some(an_hour_ago));
    let age = q.oldest_age().unwrap().unwrap();
    assert!(age.as_secs() >= 3_600, "{age:?}");
    assert_eq!(q.peek(1).unwrap()[0].enqueued_us, an_hour_ago);
}

#[test]
fn bad_queue_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("q.redb")).unwrap();
    for name in ["", "Upper", "has space", "slash/x", &"x".repeat(65)] {
        match store.queue(name, config(1, Overflow::RejectNew)) {
            Err(StoreError::QueueName { name: n }) => assert_eq!(n, name),
            other => panic!("{name:?}: {other:?}"),
        }
    }
}
