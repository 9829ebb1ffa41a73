//! One receiver's delivery task: sends the head of its queue until the receiver acknowledges it,
//! in order, and removes delivered items once a checkpoint covers them. A failed round (no
//! answer, a NAK, a DUH or another "not understood") is retried after the receiver's back-off,
//! for ever: whatever a receiver says about our frames can change (a fix on either side, a
//! restart). Never skips an item except one that cannot be decoded, a delivery that no retry
//! can deliver ([`Outcome::GivenUp`]: queued for another kind of receiver, a relay command the
//! fieldbus worker refuses as such), both recorded as critical, or one dropped by
//! `overflow = "drop_oldest"`.
//!
//! Stopping has two steps. On `drain` the task takes no new item; the item in flight is
//! finished as long as its tries succeed (a failed round leaves it queued instead of backing
//! off), and then what is delivered and checkpointed is removed from the queue. On `stop` the
//! task returns at once: a try in flight is abandoned and its item stays queued, to be sent
//! again (with the same SIA sequence number) by the next run. Either way nothing is removed
//! from the queue that the receiver has not acknowledged.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use watchpost_contract::alarm::DeliveryState;
use watchpost_store::{NewEvent, QueueItem, Severity};

use crate::delivery::{Batch, Delivery};
use crate::history;
use crate::ledger::Feed;
use crate::now_ms;
use crate::receivers::Receiver;
use crate::sia::{Outcome, Try, TryResult};

/// Removes delivered items from the queue in batches: when this many are waiting...
const ACK_BATCH: u64 = 64;
/// ...or when the oldest has waited this long, or the queue has nothing else to send.
const ACK_DELAY: Duration = Duration::from_millis(100);

/// How the task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Drained: remove what is delivered and checkpointed.
    Drained,
    /// Stopped or the service is gone: return at once.
    Stopped,
}

/// Runs the delivery task of one receiver until `drain` (then finishes the item in flight and
/// removes what it may) or `stop` (returns at once).
pub async fn run(
    receiver: Receiver,
    feed: Feed,
    history: mpsc::Sender<NewEvent>,
    drain: CancellationToken,
    stop: CancellationToken,
) {
    let mut task = Task {
        receiver,
        feed,
        history,
        done: 0,
        removed: 0,
        done_since: None,
        refusing: false,
        not_understood: false,
    };
    if task.deliver(&drain, &stop).await == End::Drained {
        let removable = task.removable();
        if removable > task.removed {
            task.remove_through(removable).await;
        }
    }
}

struct Task {
    receiver: Receiver,
    feed: Feed,
    history: mpsc::Sender<NewEvent>,
    /// Items below `done` are delivered...
    done: u64,
    /// ...below `removed` they are gone from the queue.
    removed: u64,
    /// When the oldest delivered item not yet removed was delivered.
    done_since: Option<Instant>,
    /// The receiver refuses our frames (recorded once until it acknowledges one again).
    refusing: bool,
    /// The receiver does not understand our deliveries (recorded once until it acknowledges
    /// one again).
    not_understood: bool,
}

impl Task {
    fn record(&self, e: NewEvent) {
        if self.history.try_send(e).is_err() {
            tracing::warn!(receiver = %self.feed.stats.id, "alarm history is full; an entry was not recorded");
        }
    }

    /// Records `alarm.not_understood` when the receiver starts answering that it does not
    /// understand our deliveries (DUH, HTTP 400/404/405/422, an unknown relay module or
    /// channel), once until a try is acknowledged. The delivery is retried.
    fn note_not_understood(&mut self, d: &Delivery, tries: &[Try]) {
        if tries.iter().any(|t| t.result == TryResult::Acked) {
            self.not_understood = false;
        }
        let Some(t) = tries.iter().find(|t| t.result.not_understood()) else {
            return;
        };
        if self.not_understood {
            return;
        }
        self.not_understood = true;
        let stats = &self.feed.stats;
        tracing::warn!(receiver = %stats.id, endpoint = %t.endpoint, "{}; retrying", t.result);
        self.record(history::event(
            "alarm.not_understood",
            &stats.id,
            Severity::Critical,
            json!({"alarm_id": d.alarm_id, "sensor": d.sensor, "event": d.kind,
                   "phase": d.phase, "endpoint": t.endpoint, "target": d.target,
                   "result": t.result.label(), "message": t.result.to_string(),
                   "seq": t.seq, "retried": true}),
        ));
    }

    /// Records `alarm.refused` when the receiver starts refusing our frames (a NAK that is not
    /// about the clock: another key, an unknown account), once until a try is acknowledged.
    fn note_refusal(&mut self, tries: &[Try]) {
        if tries.iter().any(|t| t.result == TryResult::Acked) {
            self.refusing = false;
        }
        let Some(t) = tries
            .iter()
            .find(|t| matches!(t.result, TryResult::Refused { .. }))
        else {
            return;
        };
        if self.refusing {
            return;
        }
        self.refusing = true;
        let stats = &self.feed.stats;
        tracing::warn!(receiver = %stats.id, endpoint = %t.endpoint, "{}", t.result);
        self.record(history::event(
            "alarm.refused",
            &stats.id,
            Severity::Critical,
            json!({"endpoint": t.endpoint, "result": t.result.label(),
                   "message": t.result.to_string(), "seq": t.seq}),
        ));
    }

    /// Delivered items a saved checkpoint covers: one past the last.
    fn removable(&self) -> u64 {
        self.done.min(*self.feed.committed.borrow())
    }

    /// Removes the items below `removable` from the queue.
    async fn remove_through(&mut self, removable: u64) -> bool {
        let q = self.feed.queue.clone();
        match tokio::task::spawn_blocking(move || q.ack_through(removable - 1)).await {
            Ok(Ok(_)) => {
                self.removed = removable;
                self.done_since = (self.done > self.removed).then(Instant::now);
                true
            }
            Ok(Err(e)) => {
                self.feed
                    .stats
                    .set_error(Some(format!("removing delivered items: {e}")));
                true
            }
            Err(_) => false,
        }
    }

    async fn deliver(&mut self, drain: &CancellationToken, stop: &CancellationToken) -> End {
        let stats = self.feed.stats.clone();
        // What the queue holds at start; later items arrive from the intake in memory.
        let mut pending: VecDeque<QueueItem> = {
            let q = self.feed.queue.clone();
            match tokio::task::spawn_blocking(move || q.peek(usize::MAX)).await {
                Ok(Ok(items)) => items.into(),
                Ok(Err(e)) => {
                    stats.set_error(Some(format!("reading the queue: {e}")));
                    VecDeque::new()
                }
                Err(_) => return End::Stopped,
            }
        };
        'items: loop {
            // Remove what is delivered and checkpointed, in batches.
            let removable = self.removable();
            if removable > self.removed {
                let due = removable - self.removed >= ACK_BATCH
                    || self.done_since.is_some_and(|t| t.elapsed() >= ACK_DELAY);
                if due && !self.remove_through(removable).await {
                    return End::Stopped;
                }
            }
            if drain.is_cancelled() {
                return End::Drained;
            }
            while let Ok(item) = self.feed.enqueued.try_recv() {
                pending.push_back(item);
            }
            let dropped_before = stats.dropped_before.load(Ordering::Relaxed);
            while pending
                .front()
                .is_some_and(|i| i.seq < self.done || i.seq < dropped_before)
            {
                pending.pop_front();
            }
            let Some(item) = pending.pop_front() else {
                stats.set_state(DeliveryState::Idle);
                let pending_removal = self.done > self.removed;
                tokio::select! {
                    _ = stop.cancelled() => return End::Stopped,
                    _ = drain.cancelled() => return End::Drained,
                    i = self.feed.enqueued.recv() => match i {
                        Some(i) => pending.push_back(i),
                        None => return End::Drained,
                    },
                    r = self.feed.committed.changed(), if pending_removal => if r.is_err() {
                        return End::Stopped;
                    },
                    _ = tokio::time::sleep(ACK_DELAY), if pending_removal => {
                        self.done_since = Some(Instant::now() - ACK_DELAY);
                    }
                }
                continue;
            };
            let batch = match Batch::decode(&item.payload) {
                Ok(b) => b,
                Err(e) => {
                    self.record(history::event(
                        "alarm.queue_corrupt",
                        &stats.id,
                        Severity::Critical,
                        json!({"queue_seq": item.seq, "error": e.to_string(),
                               "payload": String::from_utf8_lossy(&item.payload)}),
                    ));
                    self.done = item.seq + 1;
                    self.done_since.get_or_insert_with(Instant::now);
                    continue;
                }
            };
            stats.set_state(DeliveryState::Delivering);
            stats
                .oldest_ms
                .store((item.enqueued_us / 1000) as i64, Ordering::Relaxed);
            for d in &batch.deliveries {
                let mut round = 0u32;
                loop {
                    round += 1;
                    let mut tries = Vec::new();
                    let outcome = tokio::select! {
                        _ = stop.cancelled() => return End::Stopped,
                        o = self.receiver.deliver(d, &mut tries) => o,
                    };
                    let now = now_ms();
                    // The delivery time first: a reader in between sees the link up (it is),
                    // never a delivered round as a failed one (see `ReceiverStats::link_up`).
                    if let Outcome::Delivered { .. } = outcome {
                        stats.last_delivered_ms.store(now, Ordering::Release);
                    }
                    stats.last_attempt_ms.store(now, Ordering::Release);
                    if let Some(off) = self.receiver.clock_offset_s() {
                        stats.clock_offset_s.store(off, Ordering::Relaxed);
                    }
                    for t in &tries {
                        stats.attempt(t.result.label());
                        if t.result.not_understood() {
                            stats.not_understood();
                        }
                        self.record(history::attempt(&stats.id, d, t));
                    }
                    self.note_refusal(&tries);
                    self.note_not_understood(d, &tries);
                    match outcome {
                        Outcome::Delivered { endpoint } => {
                            stats.delivered(1);
                            if round > 1 || tries.len() > 1 {
                                stats.late_delivery_ms.store(now, Ordering::Relaxed);
                            }
                            stats.set_endpoint(&endpoint);
                            stats.set_error(None);
                            break;
                        }
                        Outcome::GivenUp { endpoint } => {
                            stats.given_up();
                            stats.set_endpoint(&endpoint);
                            let reason = tries
                                .last()
                                .map_or_else(String::new, |t| t.result.to_string());
                            stats.set_error(Some(format!(
                                "alarm {} ({} {}) given up: {reason}",
                                d.alarm_id,
                                d.kind.as_str(),
                                d.phase.as_str()
                            )));
                            tracing::error!(receiver = %stats.id, alarm_id = d.alarm_id, %reason, "alarm delivery given up");
                            self.record(history::event(
                                "alarm.given_up",
                                &stats.id,
                                Severity::Critical,
                                json!({"alarm_id": d.alarm_id, "sensor": d.sensor, "event": d.kind,
                                       "phase": d.phase, "endpoint": endpoint, "target": d.target,
                                       "reason": reason}),
                            ));
                            break;
                        }
                        Outcome::Failed => {
                            stats.failed_rounds.fetch_add(1, Ordering::Relaxed);
                            stats.set_state(DeliveryState::Retrying);
                            // The most telling try: a refusal or a "not understood" says what
                            // to fix, whatever came after it on the other endpoint.
                            let telling = tries
                                .iter()
                                .find(|t| {
                                    matches!(t.result, TryResult::Refused { .. })
                                        || t.result.not_understood()
                                })
                                .or(tries.last());
                            stats.set_error(
                                telling.map(|t| format!("{}: {}", t.endpoint, t.result)),
                            );
                            // Draining: the item stays queued for the next run.
                            if drain.is_cancelled() {
                                return End::Drained;
                            }
                            tokio::select! {
                                _ = stop.cancelled() => return End::Stopped,
                                _ = drain.cancelled() => return End::Drained,
                                _ = tokio::time::sleep(self.receiver.backoff(round)) => {}
                            }
                            // `overflow = "drop_oldest"` may have dropped this very item while
                            // it was being retried (already counted and recorded as dropped):
                            // give it up rather than deliver an alarm reported as dropped.
                            if item.seq < stats.dropped_before.load(Ordering::Relaxed) {
                                continue 'items;
                            }
                        }
                    }
                }
            }
            self.done = item.seq + 1;
            self.done_since.get_or_insert_with(Instant::now);
            let n = batch.deliveries.len() as u64;
            let left = stats.queued.load(Ordering::Relaxed).saturating_sub(n);
            let oldest = if left == 0 {
                0
            } else {
                stats.oldest_ms.load(Ordering::Relaxed)
            };
            stats.set_queue(left, oldest, now_ms());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use watchpost_bus::Bus;
    use watchpost_config::alarms::{OverflowPolicy, ReceiverConfig};
    use watchpost_runtime::Registry;
    use watchpost_runtime::testing::HeldPort;
    use watchpost_store::{Queue, Store};

    use super::*;
    use crate::delivery::{Delivery, RelayAction, Source, Target};
    use crate::event::{EventKind, Phase};
    use crate::ledger::{Checkpoint, Ledger};
    use crate::sia::SystemClock;

    /// A relay receiver behind a bus client whose broker refuses every connection (commands go
    /// into the void and time out after `timeout_ms`), and one alarm queued for it.
    struct Fixture {
        _dir: tempfile::TempDir,
        _port: HeldPort,
        shutdown: CancellationToken,
        _ledger: Ledger,
        queue: Queue,
        stats: Arc<crate::status::ReceiverStats>,
        history: mpsc::Receiver<NewEvent>,
        drain: CancellationToken,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    impl Fixture {
        /// Starts the delivery task with one relay pulse queued.
        async fn start(timeout_ms: u64) -> Self {
            let cfg = format!(
                "type = \"relay\"\nid = \"outputs\"\nmodule = \"m1\"\ntimeout_ms = {timeout_ms}\n\
                 backoff_initial_ms = 5000\nbackoff_max_ms = 5000"
            );
            let target = Target::Relay {
                output: "siren".into(),
                action: RelayAction::Pulse { ms: 100 },
            };
            Self::with(&cfg, 1, target).await
        }

        /// Starts the delivery task of the receiver `cfg` (TOML) with alarm `alarm_id` for
        /// `target` queued.
        async fn with(cfg: &str, alarm_id: u64, target: Target) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let port = HeldPort::new().unwrap();
            let config = watchpost_config::from_str_with_env(
                &format!(
                    "[system]\ndata_dir = \"/tmp\"\n[bus]\nexternal = \"127.0.0.1:{}\"\n",
                    port.port()
                ),
                std::path::Path::new("t.toml"),
                &[],
            )
            .unwrap();
            let shutdown = CancellationToken::new();
            let bus = Bus::connect(&config, "hub", shutdown.clone());
            let cfg: ReceiverConfig = toml::from_str(cfg).unwrap();
            let store = Store::open(dir.path().join("hub.redb")).unwrap();
            let (mut ledger, mut feeds) = Ledger::open(
                std::slice::from_ref(&cfg),
                &store,
                &Checkpoint::default(),
                10,
                OverflowPolicy::RejectNew,
                &Registry::new(),
            )
            .await
            .unwrap();
            let receiver = Receiver::new(
                &cfg,
                std::slice::from_ref(&cfg),
                &bus,
                Arc::new(SystemClock),
            )
            .unwrap();
            let d = Delivery {
                alarm_id,
                sensor: "door1".into(),
                sensor_name: "Door".into(),
                kind: EventKind::Intrusion,
                phase: Phase::Alarm,
                at_ms: 1,
                target,
            };
            let source = Some(Source { epoch: 1, seq: 1 });
            ledger
                .enqueue(0, vec![d], source, &mut Vec::new())
                .await
                .unwrap();
            let feed = feeds.pop().unwrap();
            let (queue, stats) = (feed.queue.clone(), feed.stats.clone());
            let (history_tx, history) = mpsc::channel(100);
            let (drain, stop) = (CancellationToken::new(), CancellationToken::new());
            let task = tokio::spawn(run(receiver, feed, history_tx, drain.clone(), stop.clone()));
            Self {
                _dir: dir,
                _port: port,
                shutdown,
                _ledger: ledger,
                queue,
                stats,
                history,
                drain,
                stop,
                task,
            }
        }

        async fn queue_len(&self) -> u64 {
            let q = self.queue.clone();
            tokio::task::spawn_blocking(move || q.len())
                .await
                .unwrap()
                .unwrap()
        }

        /// Waits for the task to end (a deadline in the test's paused time).
        async fn ended(&mut self) {
            tokio::time::timeout(Duration::from_secs(600), &mut self.task)
                .await
                .expect("the delivery task ends")
                .unwrap();
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            self.stop.cancel();
            self.shutdown.cancel();
        }
    }

    /// Waits (in the test's paused time) until `cond` holds.
    async fn wait_until(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(600);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn draining_leaves_a_failing_delivery_queued_instead_of_backing_off() {
        let mut f = Fixture::start(200).await;
        // The command times out: a failed round, then a back-off of 5 s.
        let stats = f.stats.clone();
        wait_until("a failed round", || {
            stats.failed_rounds.load(Ordering::Relaxed) >= 1
        })
        .await;
        f.drain.cancel();
        f.ended().await;
        assert_eq!(f.queue_len().await, 1);
        assert_eq!(f.stats.delivered.load(Ordering::Relaxed), 0);
        let attempt = f.history.recv().await.unwrap();
        assert_eq!(attempt.kind, "alarm.attempt");
        assert_eq!(attempt.severity, Severity::Warning);
    }

    #[tokio::test(start_paused = true)]
    async fn draining_waits_for_the_try_in_flight_and_stopping_abandons_it() {
        let mut f = Fixture::start(60_000).await;
        let stats = f.stats.clone();
        wait_until("the delivery", || {
            stats.state() == DeliveryState::Delivering
        })
        .await;
        f.drain.cancel();
        // The try runs on (its answer could still come) until the task is stopped.
        for _ in 0..30 {
            tokio::time::advance(Duration::from_secs(1)).await;
            assert!(!f.task.is_finished());
        }
        f.stop.cancel();
        f.ended().await;
        // Abandoned, not failed: no attempt counted, and the alarm stays queued.
        assert_eq!(f.stats.attempts.load(Ordering::Relaxed), 0);
        assert_eq!(f.queue_len().await, 1);
    }

    /// A SIA receiver on a port of its own that answers DUH to the first `duh` frames and
    /// acknowledges the rest, holding its first acknowledgement until `release` fires.
    async fn duh_then_ack(
        duh: usize,
        release: tokio::sync::oneshot::Receiver<()>,
    ) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use watchpost_dc09::{Message, Response, ResponseKind};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut release = Some(release);
            let mut answered = Vec::new();
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            loop {
                let mut chunk = [0u8; 512];
                let n = match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => {
                        // The sender drops the connection after a failed try: take the next.
                        conn = listener.accept().await.unwrap().0;
                        buf.clear();
                        continue;
                    }
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                let Some(end) = buf.iter().position(|b| *b == b'\r') else {
                    continue;
                };
                let frame: Vec<u8> = buf.drain(..=end).collect();
                let msg = Message::decode(&frame, None).unwrap().message;
                let kind = if answered.len() < duh {
                    ResponseKind::Duh
                } else {
                    if let Some(r) = release.take() {
                        let _ = r.await;
                    }
                    ResponseKind::Ack
                };
                answered.push(kind.as_str().to_string());
                let reply = Response::answer(kind, &msg).encode(None).unwrap();
                conn.write_all(&reply).await.unwrap();
                if kind == ResponseKind::Ack {
                    return answered;
                }
            }
        });
        (port, task)
    }

    #[tokio::test]
    async fn a_duh_is_retried_counted_shown_and_recorded_once_and_the_alarm_delivered() {
        let (release_tx, release) = tokio::sync::oneshot::channel();
        let (port, receiver_task) = duh_then_ack(2, release).await;
        let cfg = format!(
            "type = \"sia\"\nid = \"cms\"\nhost = \"127.0.0.1:{port}\"\naccount = \"AAA\"\n\
             attempts = 1\nack_timeout_ms = 10000\nbackoff_initial_ms = 10\nbackoff_max_ms = 10"
        );
        let mut f = Fixture::with(&cfg, 7, Target::Sia { seq: 12, zone: 3 }).await;
        let stats = f.stats.clone();

        // Two rounds answered DUH: retried, counted, shown with what to check.
        let s = stats.clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        while s.not_understood.load(Ordering::Relaxed) < 2 {
            assert!(Instant::now() < deadline, "two DUHs: {:?}", s.view(0));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(stats.failed_rounds.load(Ordering::Relaxed), 2);
        assert_eq!(stats.given_up.load(Ordering::Relaxed), 0);
        assert_eq!(stats.queued.load(Ordering::Relaxed), 1);
        assert!(!stats.link_up());
        let error = stats.view(0).last_error.unwrap();
        assert!(
            error.ends_with(
                "receiver did not understand our frame (DUH): check account, key and format"
            ),
            "{error}"
        );
        // The third round is acknowledged: the same alarm, delivered.
        release_tx.send(()).unwrap();
        let answered = tokio::time::timeout(Duration::from_secs(30), receiver_task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answered, ["DUH", "DUH", "ACK"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while stats.delivered.load(Ordering::Relaxed) < 1 {
            assert!(Instant::now() < deadline, "delivered: {:?}", stats.view(0));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(stats.link_up());
        assert_eq!(stats.view(0).last_error, None);
        assert_eq!(stats.state(), DeliveryState::Idle);
        f.stop.cancel();
        f.ended().await;

        let mut kinds = Vec::new();
        let mut not_understood = Vec::new();
        while let Ok(e) = f.history.try_recv() {
            if e.kind == "alarm.not_understood" {
                not_understood.push(e.clone());
            }
            kinds.push(e.kind);
        }
        assert_eq!(
            kinds,
            [
                "alarm.attempt",
                "alarm.not_understood",
                "alarm.attempt",
                "alarm.attempt"
            ]
        );
        let e = &not_understood[0];
        assert_eq!(e.severity, Severity::Critical);
        let body: serde_json::Value = e.body.to_value().unwrap();
        assert_eq!(body["retried"], true);
        assert_eq!(body["alarm_id"], 7);
        assert_eq!(body["result"], "duh");
    }
}
