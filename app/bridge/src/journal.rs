//! Sensor events kept until the hub acknowledges them (sans-IO).
//!
//! The partner of the alarm service's intake (`watchpost_alarm::intake`). Events are numbered
//! from 1 within one bridge run (`epoch` = the run's start time in ms).
//! The hub acknowledges "everything through N"; unacknowledged events are offered again when
//! the hub asks, when it comes back online, and when they have waited a resend interval. The
//! journal is bounded: when full, the oldest event is dropped and counted, and `head` moves
//! on so the hub can see and record the gap.

use std::collections::VecDeque;

use watchpost_contract::alarm::{Sensor, SensorEvent};

#[derive(Debug)]
pub struct Journal {
    epoch: u64,
    next_seq: u64,
    capacity: usize,
    events: VecDeque<SensorEvent>,
    /// When the unacknowledged events were last (re)sent.
    last_sent_ms: i64,
    pub dropped: u64,
}

impl Journal {
    pub fn new(epoch: u64, capacity: usize) -> Self {
        Self {
            epoch,
            next_seq: 1,
            capacity: capacity.max(1),
            events: VecDeque::new(),
            last_sent_ms: 0,
            dropped: 0,
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The oldest sequence number still held (the next one when empty).
    pub fn head(&self) -> u64 {
        self.events.front().map_or(self.next_seq, |e| e.seq)
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Records a new event and returns it (to publish).
    pub fn push(
        &mut self,
        sensor: &Sensor,
        reminder: bool,
        sync: bool,
        now_ms: i64,
    ) -> SensorEvent {
        if self.events.len() >= self.capacity {
            self.events.pop_front();
            self.dropped += 1;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let head = self.events.front().map_or(seq, |e| e.seq);
        let ev = SensorEvent {
            epoch: self.epoch,
            seq,
            head,
            at_ms: now_ms,
            reminder,
            sync,
            sensor: sensor.clone(),
        };
        if self.events.is_empty() {
            self.last_sent_ms = now_ms;
        }
        self.events.push_back(ev.clone());
        ev
    }

    /// The hub has processed everything through `through` of run `epoch`.
    pub fn ack(&mut self, epoch: u64, through: u64) -> usize {
        if epoch != self.epoch {
            return 0;
        }
        let before = self.events.len();
        while self.events.front().is_some_and(|e| e.seq <= through) {
            self.events.pop_front();
        }
        before - self.events.len()
    }

    /// Events to send again for a request to resend from `from` in run `epoch` (another run:
    /// everything held), with `head` brought up to date.
    pub fn resend_from(&mut self, epoch: u64, from: u64, now_ms: i64) -> Vec<SensorEvent> {
        let from = if epoch == self.epoch { from } else { 0 };
        self.last_sent_ms = now_ms;
        let head = self.head();
        self.events
            .iter()
            .filter(|e| e.seq >= from)
            .map(|e| SensorEvent { head, ..e.clone() })
            .collect()
    }

    /// Everything unacknowledged, if it has waited `interval_ms` since it was last sent.
    pub fn due(&mut self, now_ms: i64, interval_ms: i64) -> Vec<SensorEvent> {
        if self.events.is_empty() || now_ms - self.last_sent_ms < interval_ms {
            return Vec::new();
        }
        self.resend_from(self.epoch, 0, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> Sensor {
        Sensor::new("d", "Door", "DoorSensor", None)
    }

    #[test]
    fn numbering_ack_and_resend() {
        let mut j = Journal::new(77, 3);
        let a = j.push(&s(), false, false, 0);
        let b = j.push(&s(), false, false, 1);
        assert_eq!((a.seq, a.head, b.seq, b.head, a.epoch), (1, 1, 2, 1, 77));
        assert_eq!(j.ack(77, 1), 1);
        assert_eq!(j.ack(1, 5), 0);
        assert_eq!(j.head(), 2);
        let again = j.resend_from(77, 2, 10);
        assert_eq!(again.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2]);
        assert_eq!(j.resend_from(5, 99, 10).len(), 1);
        assert!(j.due(100, 1000).is_empty());
        assert_eq!(j.due(1010, 1000).len(), 1);
        j.ack(77, 2);
        assert!(j.is_empty());
        assert_eq!(j.head(), 3);
    }

    #[test]
    fn full_journal_drops_oldest_and_moves_head() {
        let mut j = Journal::new(1, 2);
        for i in 0..5 {
            j.push(&s(), false, false, i);
        }
        assert_eq!((j.len(), j.dropped, j.head()), (2, 3, 4));
        let e = j.push(&s(), false, false, 9);
        assert_eq!((e.seq, e.head), (6, 5));
    }
}
