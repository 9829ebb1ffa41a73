//! The delivery ledger: every receiver's durable queue, what has been put in it, and the
//! checkpoint that says what the hub has done.
//!
//! - **Enqueue.** Each receiver's deliveries of an intake batch become one queue item, with
//!   SIA sequence numbers fixed before (so every resend of a delivery reuses its number). The
//!   item is handed to the receiver's delivery task at once ([`Feed`]).
//! - **Overflow.** The queue holds at most `queue_capacity` deliveries: `reject_new` refuses
//!   what does not fit, `drop_oldest` removes whole items from the front (the delivery task
//!   skips them, also the one it may be retrying); both are counted and recorded as critical
//!   `alarm.queue_overflow` events. A store that refuses the item is recorded the same way.
//! - **Watermark.** Per receiver, the last sensor event whose deliveries are in its queue; an
//!   alarm of a sensor event at or below it is not queued again (the bridge resends events
//!   after a hub restart, and the engine, restored to its saved state, raises the same alarms).
//! - **Checkpoint.** The engine state, the intake cursor, and per receiver the SIA counter and
//!   the watermark, saved under [`STATE_KEY`] by [`save_loop`]. Only a saved checkpoint lets the
//!   delivery tasks remove delivered items (per receiver, [`Feed::committed`]) and the intake
//!   acknowledge sensor events to the bridge.
//!
//! At start the ledger reopens every queue and recovers what a crash after an enqueue but
//! before its checkpoint left behind: the SIA counter and the watermark are raised to what the
//! queued items carry.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use watchpost_config::alarms::{OverflowPolicy, ReceiverConfig};
use watchpost_runtime::Registry;
use watchpost_store::{NewEvent, Overflow, Queue, QueueConfig, QueueItem, Severity, Store};

use crate::AlarmError;
use crate::delivery::{Batch, Delivery, Source};
use crate::engine::EngineState;
use crate::history::event;
use crate::status::{ReceiverStats, receiver_type};
use crate::{blocking, now_ms};

/// Settings key of the saved state.
pub const STATE_KEY: &str = "alarms.state";

/// What one receiver's checkpoint holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReceiverCheckpoint {
    /// Last SIA sequence counter used.
    pub sia_counter: u64,
    /// Last sensor event whose deliveries are in this receiver's queue.
    pub watermark: Option<Source>,
}

/// The saved state of the service (`alarms.state`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    pub engine: EngineState,
    /// The last sensor event processed.
    pub cursor: Option<Source>,
    pub receivers: BTreeMap<String, ReceiverCheckpoint>,
}

impl Checkpoint {
    /// The saved checkpoint, or the empty one before the first.
    pub async fn load(store: &Store) -> Result<Self, AlarmError> {
        let store = store.clone();
        blocking(move || store.settings().get::<Checkpoint>(STATE_KEY))
            .await?
            .map(Option::unwrap_or_default)
            .map_err(|e| AlarmError::LoadState {
                source: Box::new(e),
            })
    }
}

/// A checkpoint and what becomes removable and acknowledgeable once it is on disk.
#[derive(Debug)]
pub struct Snapshot {
    pub checkpoint: Checkpoint,
    /// Per receiver (in ledger order): one past the last queue sequence this checkpoint covers.
    pub committed: Vec<u64>,
}

/// What a receiver's delivery task reads.
#[derive(Debug)]
pub struct Feed {
    pub queue: Queue,
    /// Items just enqueued (the task reads the queue itself only at start).
    pub enqueued: mpsc::UnboundedReceiver<QueueItem>,
    /// One past the highest queue sequence covered by a saved checkpoint: below it, delivered
    /// items may be removed.
    pub committed: watch::Receiver<u64>,
    pub stats: Arc<ReceiverStats>,
}

/// One receiver as the ledger sees it.
#[derive(Debug)]
struct Slot {
    cfg: ReceiverConfig,
    queue: Queue,
    stats: Arc<ReceiverStats>,
    enqueued: mpsc::UnboundedSender<QueueItem>,
    committed: Arc<watch::Sender<u64>>,
    /// One past the highest queue sequence enqueued so far.
    enqueued_next: u64,
    sia_counter: u64,
    watermark: Option<Source>,
    /// Enqueue time of the last item (for NULL supervision).
    last_enqueue_ms: i64,
}

/// Every receiver's queue, counters and checkpoint state.
#[derive(Debug)]
pub struct Ledger {
    slots: Vec<Slot>,
    overflow: OverflowPolicy,
}

/// The queue of receiver `id` in the store.
pub fn queue_name(id: &str) -> String {
    format!("alarm-{}", id.to_ascii_lowercase())
}

impl Ledger {
    /// Opens the queues of `receivers`, each bounded to `capacity` deliveries, and recovers
    /// their counters from `checkpoint` and what they hold. Returns the ledger and, in the same
    /// order, what each receiver's delivery task reads.
    pub async fn open(
        receivers: &[ReceiverConfig],
        store: &Store,
        checkpoint: &Checkpoint,
        capacity: u64,
        overflow: OverflowPolicy,
        metrics: &Registry,
    ) -> Result<(Self, Vec<Feed>), AlarmError> {
        let capacity = capacity.max(1);
        let mut slots = Vec::new();
        let mut feeds = Vec::new();
        let mut names = BTreeMap::new();
        for rc in receivers {
            let id = rc.id().to_string();
            let name = queue_name(&id);
            if let Some(other) = names.insert(name.clone(), id.clone()) {
                return Err(AlarmError::Receiver {
                    receiver: id,
                    field: "id",
                    reason: format!("differs from `{other}` only in case"),
                });
            }
            let queue = blocking({
                let store = store.clone();
                move || {
                    store.queue(
                        &name,
                        QueueConfig {
                            // Items are batches; the delivery bound is enforced on enqueue.
                            capacity: NonZeroU64::new(capacity.saturating_mul(2))
                                .unwrap_or(NonZeroU64::MIN),
                            overflow: Overflow::RejectNew,
                        },
                    )
                }
            })
            .await?
            .map_err(|e| AlarmError::OpenQueue {
                receiver: id.clone(),
                source: Box::new(e),
            })?;
            let items = blocking({
                let q = queue.clone();
                move || q.peek(usize::MAX)
            })
            .await?
            .map_err(|e| AlarmError::Queue {
                receiver: id.clone(),
                source: Box::new(e),
            })?;
            let saved = checkpoint.receivers.get(&id).cloned().unwrap_or_default();
            let (queued, sia_counter, watermark) = recover(&items, &saved);
            let stats = Arc::new(ReceiverStats::new(
                &id,
                receiver_type(rc),
                capacity,
                metrics,
            ));
            let oldest = items.first().map_or(0, |i| (i.enqueued_us / 1000) as i64);
            stats.set_queue(queued, oldest, now_ms());
            // Everything queued at start is covered by the saved state.
            let head = items.last().map_or(0, |i| i.seq + 1);
            let (committed, committed_rx) = watch::channel(head);
            let (enqueued, enqueued_rx) = mpsc::unbounded_channel();
            feeds.push(Feed {
                queue: queue.clone(),
                enqueued: enqueued_rx,
                committed: committed_rx,
                stats: stats.clone(),
            });
            slots.push(Slot {
                cfg: rc.clone(),
                queue,
                stats,
                enqueued,
                committed: Arc::new(committed),
                enqueued_next: head,
                sia_counter,
                watermark,
                last_enqueue_ms: now_ms(),
            });
        }
        Ok((Self { slots, overflow }, feeds))
    }

    /// Number of receivers.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The position of receiver `id`.
    pub fn slot_of(&self, id: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.cfg.id().as_str() == id)
    }

    pub fn receiver(&self, slot: usize) -> &ReceiverConfig {
        &self.slots[slot].cfg
    }

    pub fn stats(&self, slot: usize) -> &Arc<ReceiverStats> {
        &self.slots[slot].stats
    }

    /// Every receiver's counters, in order.
    pub fn all_stats(&self) -> Vec<Arc<ReceiverStats>> {
        self.slots.iter().map(|s| s.stats.clone()).collect()
    }

    /// Enqueue time of the receiver's last item, or the ledger's start.
    pub fn last_enqueue_ms(&self, slot: usize) -> i64 {
        self.slots[slot].last_enqueue_ms
    }

    /// Sets the receiver's last enqueue time (a NULL message counts at the time it was due).
    pub fn set_last_enqueue_ms(&mut self, slot: usize, ms: i64) {
        self.slots[slot].last_enqueue_ms = ms;
    }

    /// The next SIA sequence counter value of receiver `slot` (the frame's number is
    /// `watchpost_dc09::Seq::from_counter` of it).
    pub fn next_sia_counter(&mut self, slot: usize) -> u64 {
        let s = &mut self.slots[slot];
        s.sia_counter += 1;
        s.sia_counter
    }

    /// Whether receiver `slot`'s queue already holds the deliveries of sensor event `source`.
    pub fn holds(&self, slot: usize, source: Option<Source>) -> bool {
        source.is_some() && self.slots[slot].watermark >= source
    }

    /// Enqueues one intake batch's `deliveries` for receiver `slot` as one item, applying the
    /// overflow policy; `source` is the batch's last sensor event (none for timers and tests).
    /// Overflow and a store that refuses the item are recorded in `history`.
    pub async fn enqueue(
        &mut self,
        slot: usize,
        mut deliveries: Vec<Delivery>,
        source: Option<Source>,
        history: &mut Vec<NewEvent>,
    ) -> Result<(), AlarmError> {
        let now = now_ms();
        let s = &self.slots[slot];
        let queued = s.stats.queued.load(Ordering::Relaxed);
        let room = s.stats.capacity.saturating_sub(queued);
        let need = deliveries.len() as u64;
        if need > room {
            match self.overflow {
                OverflowPolicy::RejectNew => {
                    let refused: Vec<Delivery> = deliveries.split_off(room as usize);
                    s.stats.rejected(refused.len() as u64);
                    history.push(event(
                        "alarm.queue_overflow",
                        s.cfg.id().as_str(),
                        Severity::Critical,
                        json!({"policy": "reject_new", "refused": refused, "capacity": s.stats.capacity}),
                    ));
                }
                OverflowPolicy::DropOldest => {
                    let (dropped, next) = drop_oldest(&s.queue, need - room).await?;
                    s.stats.dropped_before.fetch_max(next, Ordering::Relaxed);
                    let n: u64 = dropped.iter().map(|b| b.deliveries.len() as u64).sum();
                    s.stats.dropped(n);
                    s.stats.queued.fetch_sub(n.min(queued), Ordering::Relaxed);
                    history.push(event(
                        "alarm.queue_overflow",
                        s.cfg.id().as_str(),
                        Severity::Critical,
                        json!({"policy": "drop_oldest", "dropped": dropped, "capacity": s.stats.capacity}),
                    ));
                }
            }
        }
        if deliveries.is_empty() {
            return Ok(());
        }
        let batch = Batch { source, deliveries };
        match self.store_item(slot, &batch, now).await? {
            Some(_) => {}
            None => {
                let s = &self.slots[slot];
                s.stats.rejected(batch.deliveries.len() as u64);
                history.push(event(
                    "alarm.queue_overflow",
                    s.cfg.id().as_str(),
                    Severity::Critical,
                    json!({"policy": "store_full", "refused": batch.deliveries}),
                ));
            }
        }
        let s = &mut self.slots[slot];
        s.last_enqueue_ms = now;
        if source.is_some() {
            s.watermark = source;
        }
        Ok(())
    }

    /// Enqueues one delivery outside the rules (a test alarm, a supervision message); a full
    /// queue refuses it with [`AlarmError::QueueFull`]. Returns its queue sequence and records
    /// it in `history` as `kind`.
    pub async fn enqueue_one(
        &mut self,
        slot: usize,
        d: Delivery,
        kind: &str,
        history: &mut Vec<NewEvent>,
    ) -> Result<u64, AlarmError> {
        let now = now_ms();
        let s = &self.slots[slot];
        let stats = s.stats.clone();
        let receiver = s.cfg.id().to_string();
        let queued = stats.queued.load(Ordering::Relaxed);
        let full = |receiver: String| AlarmError::QueueFull {
            receiver,
            len: queued,
            capacity: stats.capacity,
        };
        if queued >= stats.capacity {
            stats.rejected(1);
            return Err(full(receiver));
        }
        let body = json!({"alarm_id": d.alarm_id, "event": d.kind, "target": d.target});
        let batch = Batch {
            source: None,
            deliveries: vec![d],
        };
        let Some(seq) = self.store_item(slot, &batch, now).await? else {
            stats.rejected(1);
            return Err(full(receiver));
        };
        history.push(event(kind, &receiver, Severity::Info, body));
        self.slots[slot].last_enqueue_ms = now;
        Ok(seq)
    }

    /// Appends `batch` to the slot's queue; on success updates the counters and hands the item
    /// to the delivery task (sending may start now; removal waits for a checkpoint).
    async fn store_item(
        &mut self,
        slot: usize,
        batch: &Batch,
        now: i64,
    ) -> Result<Option<u64>, AlarmError> {
        let s = &mut self.slots[slot];
        let n = batch.deliveries.len() as u64;
        let bytes = batch.encode();
        let q = s.queue.clone();
        let payload = bytes.clone();
        let enq = blocking(move || q.enqueue(&payload))
            .await?
            .map_err(|e| AlarmError::Queue {
                receiver: s.cfg.id().to_string(),
                source: Box::new(e),
            })?;
        let Some(seq) = enq.seq() else {
            return Ok(None);
        };
        let was = s.stats.queued.fetch_add(n, Ordering::Relaxed);
        if was == 0 {
            s.stats.oldest_ms.store(now, Ordering::Relaxed);
        }
        s.stats
            .set_queue(was + n, s.stats.oldest_ms.load(Ordering::Relaxed), now);
        let _ = s.enqueued.send(QueueItem {
            seq,
            enqueued_us: u64::try_from(now).unwrap_or(0) * 1000,
            payload: bytes,
        });
        s.enqueued_next = seq + 1;
        Ok(Some(seq))
    }

    /// The state to save now, with the engine's state and the intake's cursor.
    pub fn snapshot(&self, engine: EngineState, cursor: Option<Source>) -> Snapshot {
        Snapshot {
            checkpoint: Checkpoint {
                engine,
                cursor,
                receivers: self
                    .slots
                    .iter()
                    .map(|s| {
                        (
                            s.cfg.id().to_string(),
                            ReceiverCheckpoint {
                                sia_counter: s.sia_counter,
                                watermark: s.watermark,
                            },
                        )
                    })
                    .collect(),
            },
            committed: self.slots.iter().map(|s| s.enqueued_next).collect(),
        }
    }

    /// Where [`save_loop`] releases what a saved snapshot covers, per receiver.
    pub fn committed(&self) -> Vec<Arc<watch::Sender<u64>>> {
        self.slots.iter().map(|s| s.committed.clone()).collect()
    }
}

/// What the queued `items` say beyond the saved checkpoint: the number of deliveries they hold,
/// the last SIA counter used and the watermark.
fn recover(items: &[QueueItem], saved: &ReceiverCheckpoint) -> (u64, u64, Option<Source>) {
    let mut sia_counter = saved.sia_counter;
    let mut watermark = saved.watermark;
    let mut queued = 0u64;
    for item in items {
        if let Ok(b) = Batch::decode(&item.payload) {
            queued += b.deliveries.len() as u64;
            for s in b.sia_seqs() {
                // The counter wraps at 9999; its last use is the largest number mod 9999 only
                // within one wrap, which is all a queue can hold.
                let c = u64::from(s);
                if c > sia_counter % 9999 || sia_counter == 0 {
                    sia_counter = sia_counter - sia_counter % 9999 + c;
                }
            }
            if b.source > watermark {
                watermark = b.source;
            }
        }
    }
    (queued, sia_counter, watermark)
}

/// Writes snapshots in order (skipping any superseded while a write was running), then lets
/// delivery tasks remove what a written snapshot covers and reports its cursor on `saved` (the
/// intake acknowledges it to the bridge). A failed write is retried with the next snapshot;
/// nothing is released until a write succeeds. Ends when the snapshot channel closes, after
/// writing the last snapshot sent.
pub async fn save_loop(
    store: Store,
    committed: Vec<Arc<watch::Sender<u64>>>,
    mut rx: watch::Receiver<Option<Arc<Snapshot>>>,
    saved: watch::Sender<Option<Source>>,
) {
    loop {
        // An unseen snapshot is delivered even after the intake has closed the channel.
        if rx.changed().await.is_err() {
            return;
        }
        let Some(snap) = rx.borrow_and_update().clone() else {
            continue;
        };
        let s = store.clone();
        let cp = snap.clone();
        let written =
            tokio::task::spawn_blocking(move || s.settings().put(STATE_KEY, &cp.checkpoint)).await;
        match written {
            Ok(Ok(())) => {
                for (tx, next) in committed.iter().zip(&snap.committed) {
                    tx.send_if_modified(|v| {
                        let grow = *next > *v;
                        if grow {
                            *v = *next;
                        }
                        grow
                    });
                }
                if let Some(c) = snap.checkpoint.cursor {
                    saved.send_if_modified(|v| {
                        let new = *v != Some(c);
                        *v = Some(c);
                        new
                    });
                }
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot save the alarm state; retrying with the next change")
            }
            Err(e) => tracing::error!(error = %e, "alarm state saver failed"),
        }
    }
}

/// Removes whole items from the front of `queue` until at least `n` deliveries are gone;
/// returns them and one past the last sequence removed.
async fn drop_oldest(queue: &Queue, n: u64) -> Result<(Vec<Batch>, u64), AlarmError> {
    let q = queue.clone();
    blocking(move || {
        let mut dropped = Vec::new();
        let mut count = 0u64;
        let mut next = 0u64;
        while count < n {
            let items = q.peek(1)?;
            let Some(item) = items.into_iter().next() else {
                break;
            };
            q.ack(item.seq)?;
            next = item.seq + 1;
            if let Ok(b) = Batch::decode(&item.payload) {
                count += b.deliveries.len() as u64;
                dropped.push(b);
            } else {
                count += 1;
            }
        }
        Ok::<_, watchpost_store::StoreError>((dropped, next))
    })
    .await?
    .map_err(|e| AlarmError::Queue {
        receiver: queue.name().to_string(),
        source: Box::new(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::{RelayAction, Target};
    use crate::event::{EventKind, Phase};

    fn receiver(toml_text: &str) -> ReceiverConfig {
        toml::from_str(toml_text).expect("receiver config")
    }

    fn sia(id: &str) -> ReceiverConfig {
        receiver(&format!(
            "type = \"sia\"\nid = \"{id}\"\nhost = \"127.0.0.1:9\"\naccount = \"AAA\""
        ))
    }

    fn relay(id: &str) -> ReceiverConfig {
        receiver(&format!("type = \"relay\"\nid = \"{id}\"\nmodule = \"m1\""))
    }

    fn src(epoch: u64, seq: u64) -> Option<Source> {
        Some(Source { epoch, seq })
    }

    /// An alarm for SIA receiver `slot`, numbered by the ledger.
    fn sia_alarm(ledger: &mut Ledger, slot: usize, alarm_id: u64) -> Delivery {
        let counter = ledger.next_sia_counter(slot);
        Delivery {
            alarm_id,
            sensor: "door1".into(),
            sensor_name: "Door".into(),
            kind: EventKind::Intrusion,
            phase: Phase::Alarm,
            at_ms: 1,
            target: Target::Sia {
                seq: watchpost_dc09::Seq::from_counter(counter).get(),
                zone: 1,
            },
        }
    }

    fn relay_pulse(alarm_id: u64) -> Delivery {
        Delivery {
            alarm_id,
            sensor: "door1".into(),
            sensor_name: "Door".into(),
            kind: EventKind::Intrusion,
            phase: Phase::Alarm,
            at_ms: 1,
            target: Target::Relay {
                output: "siren".into(),
                action: RelayAction::Pulse { ms: 100 },
            },
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        metrics: Registry,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path().join("hub.redb")).unwrap();
            Self {
                _dir: dir,
                store,
                metrics: Registry::new(),
            }
        }

        async fn open(
            &self,
            receivers: &[ReceiverConfig],
            capacity: u64,
            overflow: OverflowPolicy,
        ) -> (Ledger, Vec<Feed>) {
            let checkpoint = Checkpoint::load(&self.store).await.unwrap();
            Ledger::open(
                receivers,
                &self.store,
                &checkpoint,
                capacity,
                overflow,
                &self.metrics,
            )
            .await
            .unwrap()
        }

        /// Saves the ledger's checkpoint with `cursor` as the service does; returns the
        /// acknowledged cursor.
        async fn save(&self, ledger: &Ledger, cursor: Option<Source>) -> Option<Source> {
            let (tx, rx) = watch::channel(None);
            let (saved, saved_rx) = watch::channel(None);
            let saver = tokio::spawn(save_loop(self.store.clone(), ledger.committed(), rx, saved));
            let snap = ledger.snapshot(EngineState::default(), cursor);
            tx.send(Some(Arc::new(snap))).unwrap();
            // The saver writes the last snapshot sent, then ends.
            drop(tx);
            saver.await.unwrap();
            *saved_rx.borrow()
        }
    }

    /// The queue's items as batches.
    async fn queued(feed: &Feed) -> Vec<(u64, Batch)> {
        let q = feed.queue.clone();
        let items = tokio::task::spawn_blocking(move || q.peek(usize::MAX))
            .await
            .unwrap()
            .unwrap();
        items
            .into_iter()
            .map(|i| (i.seq, Batch::decode(&i.payload).unwrap()))
            .collect()
    }

    fn queued_now(ledger: &Ledger, slot: usize) -> u64 {
        ledger.stats(slot).queued.load(Ordering::Relaxed)
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_is_one_item_handed_to_the_delivery_task_and_sets_the_watermark() {
        let f = Fixture::new();
        let (mut l, mut feeds) = f
            .open(
                &[sia("cms"), relay("outputs")],
                10,
                OverflowPolicy::RejectNew,
            )
            .await;
        assert_eq!(l.slot_of("outputs"), Some(1));
        let mut history = Vec::new();
        let a = sia_alarm(&mut l, 0, 1);
        let b = sia_alarm(&mut l, 0, 2);
        l.enqueue(0, vec![a.clone(), b.clone()], src(10, 3), &mut history)
            .await
            .unwrap();
        assert!(history.is_empty());
        let items = queued(&feeds[0]).await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].1.source, src(10, 3));
        assert_eq!(items[0].1.deliveries, vec![a, b]);
        assert_eq!(items[0].1.sia_seqs().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(queued_now(&l, 0), 2);
        // Handed over in memory, with the queue's sequence.
        let handed = feeds[0].enqueued.try_recv().unwrap();
        assert_eq!(handed.seq, items[0].0);
        // The receiver holds event 3 and everything before it; not the next one; and events
        // without a source (timers, tests) are never skipped.
        assert!(l.holds(0, src(10, 3)));
        assert!(l.holds(0, src(10, 2)));
        assert!(!l.holds(0, src(10, 4)));
        assert!(!l.holds(0, src(11, 1)));
        assert!(!l.holds(0, None));
        // The other receiver holds nothing.
        assert!(!l.holds(1, src(10, 3)));
        assert!(queued(&feeds[1]).await.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn reject_new_refuses_what_does_not_fit_and_records_it() {
        let f = Fixture::new();
        let (mut l, feeds) = f
            .open(&[relay("outputs")], 2, OverflowPolicy::RejectNew)
            .await;
        let mut history = Vec::new();
        let batch = vec![relay_pulse(1), relay_pulse(2), relay_pulse(3)];
        l.enqueue(0, batch, src(1, 1), &mut history).await.unwrap();
        // Two fit, the third is refused.
        let items = queued(&feeds[0]).await;
        assert_eq!(items.len(), 1);
        let ids: Vec<u64> = items[0].1.deliveries.iter().map(|d| d.alarm_id).collect();
        assert_eq!(ids, vec![1, 2]);
        assert_eq!(l.stats(0).rejected.load(Ordering::Relaxed), 1);
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].kind, "alarm.queue_overflow");
        assert_eq!(history[0].severity, Severity::Critical);
        // Full: the next batch is refused whole, and the watermark stays (the event's alarms
        // are not in the queue).
        history.clear();
        l.enqueue(0, vec![relay_pulse(4)], src(1, 2), &mut history)
            .await
            .unwrap();
        assert_eq!(queued(&feeds[0]).await.len(), 1);
        assert_eq!(l.stats(0).rejected.load(Ordering::Relaxed), 2);
        assert_eq!(history.len(), 1);
        assert!(!l.holds(0, src(1, 2)));
        // Outside the rules a full queue is an error.
        let e = l
            .enqueue_one(0, relay_pulse(5), "alarm.test", &mut history)
            .await
            .unwrap_err();
        assert!(matches!(
            e,
            AlarmError::QueueFull {
                len: 2,
                capacity: 2,
                ..
            }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn drop_oldest_removes_whole_items_from_the_front_and_tells_the_delivery_task() {
        let f = Fixture::new();
        let (mut l, feeds) = f
            .open(&[relay("outputs")], 2, OverflowPolicy::DropOldest)
            .await;
        let mut history = Vec::new();
        for (i, id) in [1u64, 2].into_iter().enumerate() {
            l.enqueue(0, vec![relay_pulse(id)], src(1, i as u64 + 1), &mut history)
                .await
                .unwrap();
        }
        let first_seq = queued(&feeds[0]).await[0].0;
        assert!(history.is_empty());
        l.enqueue(0, vec![relay_pulse(3)], src(1, 3), &mut history)
            .await
            .unwrap();
        let items = queued(&feeds[0]).await;
        let ids: Vec<u64> = items
            .iter()
            .flat_map(|(_, b)| b.deliveries.iter().map(|d| d.alarm_id))
            .collect();
        assert_eq!(ids, vec![2, 3]);
        assert_eq!(queued_now(&l, 0), 2);
        let stats = l.stats(0);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 1);
        // The delivery task skips everything below this, also an item it is retrying.
        assert_eq!(stats.dropped_before.load(Ordering::Relaxed), first_seq + 1);
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].kind, "alarm.queue_overflow");
        assert!(l.holds(0, src(1, 3)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_checkpoint_releases_removal_and_acknowledgement() {
        let f = Fixture::new();
        let (mut l, feeds) = f.open(&[sia("cms")], 10, OverflowPolicy::RejectNew).await;
        // Nothing queued at start: nothing to release.
        assert_eq!(*feeds[0].committed.borrow(), 0);
        let mut history = Vec::new();
        let d = sia_alarm(&mut l, 0, 1);
        l.enqueue(0, vec![d], src(10, 1), &mut history)
            .await
            .unwrap();
        let seq = queued(&feeds[0]).await[0].0;
        // Enqueued but not saved: the delivery task may send it, not remove it.
        assert_eq!(*feeds[0].committed.borrow(), 0);
        assert_eq!(f.save(&l, src(10, 1)).await, src(10, 1));
        assert_eq!(*feeds[0].committed.borrow(), seq + 1);
        let saved = Checkpoint::load(&f.store).await.unwrap();
        assert_eq!(saved.cursor, src(10, 1));
        assert_eq!(
            saved.receivers["cms"],
            ReceiverCheckpoint {
                sia_counter: 1,
                watermark: src(10, 1)
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_restart_the_queue_and_the_checkpoint_continue_where_they_were() {
        let f = Fixture::new();
        let cfg = [sia("cms")];
        let (mut l, feeds) = f.open(&cfg, 10, OverflowPolicy::RejectNew).await;
        let mut history = Vec::new();
        // Event 1: queued and saved.
        let d = sia_alarm(&mut l, 0, 1);
        l.enqueue(0, vec![d], src(10, 1), &mut history)
            .await
            .unwrap();
        f.save(&l, src(10, 1)).await;
        // Event 2: queued, then the hub dies before its checkpoint.
        let d = sia_alarm(&mut l, 0, 2);
        l.enqueue(0, vec![d], src(10, 2), &mut history)
            .await
            .unwrap();
        let last_seq = queued(&feeds[0]).await[1].0;
        drop((l, feeds));

        let saved = Checkpoint::load(&f.store).await.unwrap();
        assert_eq!(saved.cursor, src(10, 1));
        assert_eq!(saved.receivers["cms"].sia_counter, 1);
        let (mut l, feeds) = f.open(&cfg, 10, OverflowPolicy::RejectNew).await;
        // Both items are still queued (nothing was delivered) and count as saved.
        assert_eq!(queued(&feeds[0]).await.len(), 2);
        assert_eq!(queued_now(&l, 0), 2);
        assert_eq!(*feeds[0].committed.borrow(), last_seq + 1);
        // The queue says more than the checkpoint: event 2's alarms are queued already (the
        // bridge's resend of it is not queued again) and SIA number 2 is used.
        assert!(l.holds(0, src(10, 2)));
        assert!(!l.holds(0, src(10, 3)));
        assert_eq!(l.next_sia_counter(0), 3);
        // A new receiver starts empty.
        drop((l, feeds));
        let (l, feeds) = f
            .open(&[sia("cms"), sia("backup")], 10, OverflowPolicy::RejectNew)
            .await;
        assert!(queued(&feeds[1]).await.is_empty());
        assert!(!l.holds(1, src(10, 1)));
    }

    #[test]
    fn the_sia_counter_is_recovered_across_its_wrap() {
        let item = |seqs: &[u16]| QueueItem {
            seq: 1,
            enqueued_us: 0,
            payload: Batch {
                source: None,
                deliveries: seqs
                    .iter()
                    .map(|s| Delivery {
                        alarm_id: 1,
                        sensor: String::new(),
                        sensor_name: String::new(),
                        kind: EventKind::Test,
                        phase: Phase::Alarm,
                        at_ms: 0,
                        target: Target::SiaNull { seq: *s },
                    })
                    .collect(),
            }
            .encode(),
        };
        let saved = |sia_counter| ReceiverCheckpoint {
            sia_counter,
            watermark: None,
        };
        // Nothing saved yet.
        assert_eq!(recover(&[item(&[5, 6])], &saved(0)).1, 6);
        // Saved in the second wrap, queued beyond it.
        assert_eq!(recover(&[item(&[3])], &saved(9999 + 2)).1, 9999 + 3);
        // Nothing beyond the saved counter.
        assert_eq!(recover(&[item(&[1])], &saved(9999 + 2)).1, 9999 + 2);
        // A corrupt item counts nothing.
        let corrupt = QueueItem {
            seq: 2,
            enqueued_us: 0,
            payload: b"{".to_vec(),
        };
        assert_eq!(recover(&[corrupt], &saved(7)), (0, 7, None));
    }

    #[tokio::test(start_paused = true)]
    async fn receivers_whose_queue_names_collide_are_refused() {
        let f = Fixture::new();
        let checkpoint = Checkpoint::default();
        let e = Ledger::open(
            &[sia("cms"), sia("CMS")],
            &f.store,
            &checkpoint,
            10,
            OverflowPolicy::RejectNew,
            &f.metrics,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, AlarmError::Receiver { field: "id", .. }));
    }
}
