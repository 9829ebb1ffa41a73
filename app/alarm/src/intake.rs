//! The intake of sensor events from the bridge, without I/O: the partner of the bridge's
//! journal (`watchpost_bridge::journal`).
//!
//! The bridge numbers its events per run (`epoch` = the run's start in ms, `seq` from 1) and
//! keeps them until acknowledged; every event carries `head`, the oldest one the bridge still
//! holds. The intake keeps a cursor (the last event processed, saved with the alarm state) and
//! decides for each event whether to process it, ignore it as a duplicate, or wait for the
//! events before it:
//! - the next event of the cursor's run is processed; an older one is a duplicate (a resend);
//! - an event of an older run is a duplicate; the first event of a newer run (a bridge
//!   restart) starts at that run's `head`;
//! - an event beyond the next one is a gap: it is skipped and the events are asked for again
//!   ([`IntakeResend`], at most every [`RESEND_SPACING`]), unless the bridge no longer holds
//!   the missing ones (the event is the bridge's `head`): then they are [`Lost`] and the
//!   event is processed.
//!
//! Acknowledgements ([`IntakeAck`]) are sent only once the state covering the cursor is saved
//! (the ledger's checkpoint), so the bridge keeps everything the hub could still lose.

use std::time::Duration;

use tokio::time::Instant;
use watchpost_contract::alarm::{IntakeAck, IntakeResend, SensorEvent};

use crate::delivery::Source;

/// Least time between two resend requests for gaps.
pub const RESEND_SPACING: Duration = Duration::from_millis(500);

/// Events the bridge dropped from its full journal before the hub saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost {
    pub epoch: u64,
    /// The first and last sequence numbers lost.
    pub from: u64,
    pub to: u64,
}

/// What to do with one sensor event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Process it; the cursor is now `source`. `lost` names events before it that the
    /// bridge no longer has.
    Take { source: Source, lost: Option<Lost> },
    /// Already processed (a resend, or an older bridge run).
    Duplicate,
    /// Events before it are missing; it is skipped until they come.
    Gap,
}

/// The cursor and the resend pacing.
#[derive(Debug, Clone)]
pub struct Intake {
    cursor: Option<Source>,
    last_gap_request: Option<Instant>,
}

impl Intake {
    /// Starts at `cursor` (the saved one; `None` before the first event ever).
    pub fn new(cursor: Option<Source>) -> Self {
        Self {
            cursor,
            last_gap_request: None,
        }
    }

    /// The last event processed.
    pub fn cursor(&self) -> Option<Source> {
        self.cursor
    }

    /// Decides on `ev` and moves the cursor when it is taken.
    pub fn admit(&mut self, ev: &SensorEvent) -> Verdict {
        let next = match self.cursor {
            Some(c) if c.epoch == ev.epoch => c.seq + 1,
            Some(c) if c.epoch > ev.epoch => return Verdict::Duplicate,
            // A new bridge run starts at its head.
            _ => ev.head.max(1),
        };
        if ev.seq < next {
            return Verdict::Duplicate;
        }
        let mut lost = None;
        if ev.seq > next {
            if ev.head > next && ev.seq == ev.head {
                // The bridge no longer has the events in between.
                lost = Some(Lost {
                    epoch: ev.epoch,
                    from: next,
                    to: ev.head - 1,
                });
            } else {
                return Verdict::Gap;
            }
        }
        let source = Source {
            epoch: ev.epoch,
            seq: ev.seq,
        };
        self.cursor = Some(source);
        Verdict::Take { source, lost }
    }

    /// Everything after the cursor (at start: everything the bridge holds).
    pub fn resend_request(&self) -> IntakeResend {
        match self.cursor {
            Some(c) => IntakeResend {
                epoch: c.epoch,
                from: c.seq + 1,
            },
            None => IntakeResend { epoch: 0, from: 1 },
        }
    }

    /// The resend request for a gap seen at `now`, unless one went out within
    /// [`RESEND_SPACING`] (the events asked for are on their way).
    pub fn gap_request(&mut self, now: Instant) -> Option<IntakeResend> {
        if self
            .last_gap_request
            .is_some_and(|t| now.duration_since(t) <= RESEND_SPACING)
        {
            return None;
        }
        self.last_gap_request = Some(now);
        Some(self.resend_request())
    }
}

/// The acknowledgement of everything through `saved` (a cursor covered by a checkpoint).
pub fn ack(saved: Source) -> IntakeAck {
    IntakeAck {
        epoch: saved.epoch,
        through: saved.seq,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use watchpost_contract::alarm::Sensor;

    fn ev(epoch: u64, seq: u64, head: u64) -> SensorEvent {
        SensorEvent {
            epoch,
            seq,
            head,
            at_ms: 0,
            reminder: false,
            sync: false,
            sensor: Sensor::new("door1", "Door", "DoorSensor", None),
        }
    }

    fn take(epoch: u64, seq: u64) -> Verdict {
        Verdict::Take {
            source: Source { epoch, seq },
            lost: None,
        }
    }

    #[test]
    fn in_order_events_are_taken_and_repeats_are_duplicates() {
        let mut i = Intake::new(None);
        assert_eq!(i.resend_request(), IntakeResend { epoch: 0, from: 1 });
        assert_eq!(i.admit(&ev(10, 1, 1)), take(10, 1));
        assert_eq!(i.admit(&ev(10, 2, 1)), take(10, 2));
        assert_eq!(i.admit(&ev(10, 1, 1)), Verdict::Duplicate);
        assert_eq!(i.admit(&ev(10, 2, 2)), Verdict::Duplicate);
        assert_eq!(i.cursor(), Some(Source { epoch: 10, seq: 2 }));
        assert_eq!(i.resend_request(), IntakeResend { epoch: 10, from: 3 });
        assert_eq!(
            ack(i.cursor().unwrap()),
            IntakeAck {
                epoch: 10,
                through: 2
            }
        );
    }

    #[test]
    fn a_gap_waits_for_the_missing_events() {
        let mut i = Intake::new(Some(Source { epoch: 10, seq: 2 }));
        assert_eq!(i.admit(&ev(10, 4, 1)), Verdict::Gap);
        assert_eq!(i.admit(&ev(10, 5, 1)), Verdict::Gap);
        assert_eq!(i.cursor(), Some(Source { epoch: 10, seq: 2 }));
        // The resend brings them in order.
        assert_eq!(i.admit(&ev(10, 3, 3)), take(10, 3));
        assert_eq!(i.admit(&ev(10, 4, 3)), take(10, 4));
        assert_eq!(i.admit(&ev(10, 5, 3)), take(10, 5));
    }

    #[test]
    fn events_the_bridge_dropped_are_lost_not_waited_for() {
        let mut i = Intake::new(Some(Source { epoch: 10, seq: 2 }));
        // The journal overflowed: it holds 6.. now, and 6 is the event that says so.
        assert_eq!(
            i.admit(&ev(10, 6, 6)),
            Verdict::Take {
                source: Source { epoch: 10, seq: 6 },
                lost: Some(Lost {
                    epoch: 10,
                    from: 3,
                    to: 5
                }),
            }
        );
        // A later event beyond the head is still a gap (the head itself may come again).
        assert_eq!(i.admit(&ev(10, 9, 7)), Verdict::Gap);
    }

    #[test]
    fn a_bridge_restart_starts_at_the_new_runs_head() {
        let mut i = Intake::new(Some(Source { epoch: 10, seq: 7 }));
        // The new run's first event.
        assert_eq!(i.admit(&ev(20, 1, 1)), take(20, 1));
        // The old run's events, resent late, are duplicates.
        assert_eq!(i.admit(&ev(10, 8, 8)), Verdict::Duplicate);
        assert_eq!(i.admit(&ev(20, 2, 1)), take(20, 2));

        // A hub that saw nothing of a run whose first events were acknowledged already (by
        // nobody else) starts at the head the bridge reports.
        let mut i = Intake::new(Some(Source { epoch: 10, seq: 7 }));
        assert_eq!(i.admit(&ev(30, 5, 5)), take(30, 5));
        // ... but an event past the head of a new run waits for the head.
        let mut i = Intake::new(Some(Source { epoch: 10, seq: 7 }));
        assert_eq!(i.admit(&ev(30, 6, 5)), Verdict::Gap);
        assert_eq!(i.resend_request(), IntakeResend { epoch: 10, from: 8 });
    }

    #[tokio::test(start_paused = true)]
    async fn gap_requests_are_spaced() {
        let mut i = Intake::new(Some(Source { epoch: 10, seq: 2 }));
        let first = i.gap_request(Instant::now());
        assert_eq!(first, Some(IntakeResend { epoch: 10, from: 3 }));
        tokio::time::advance(RESEND_SPACING / 2).await;
        assert_eq!(i.gap_request(Instant::now()), None);
        tokio::time::advance(RESEND_SPACING / 2).await;
        assert_eq!(i.gap_request(Instant::now()), None);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(i.gap_request(Instant::now()), first);
    }

    /// The intake and the bridge's journal talking through their messages: restarts of
    /// either, resends, the journal's overflow.
    #[test]
    fn with_the_bridges_journal() {
        use watchpost_bridge::journal::Journal;
        let door = Sensor::new("door1", "Door", "DoorSensor", None);
        let seqs = |evs: &[SensorEvent]| evs.iter().map(|e| e.seq).collect::<Vec<_>>();

        // The hub's first start: it asks for everything; there is nothing yet.
        let mut j = Journal::new(100, 3);
        let mut hub = Intake::new(None);
        let r = hub.resend_request();
        assert!(j.resend_from(r.epoch, r.from, 0).is_empty());
        let evs: Vec<SensorEvent> = (0..3).map(|t| j.push(&door, false, false, t)).collect();
        for e in &evs {
            assert!(matches!(hub.admit(e), Verdict::Take { lost: None, .. }));
        }
        // Its checkpoint covers event 2 when it dies: only that much is acknowledged.
        let saved = Source { epoch: 100, seq: 2 };
        let a = ack(saved);
        assert_eq!(j.ack(a.epoch, a.through), 2);

        // The hub restarts from its checkpoint and gets event 3 again.
        let mut hub = Intake::new(Some(saved));
        let r = hub.resend_request();
        let again = j.resend_from(r.epoch, r.from, 10);
        assert_eq!(seqs(&again), vec![3]);
        assert_eq!(hub.admit(&again[0]), take(100, 3));
        // The bridge's periodic resend of what is not acknowledged yet is a duplicate.
        let due = j.due(10_000, 1_000);
        assert_eq!(hub.admit(&due[0]), Verdict::Duplicate);
        let a = ack(hub.cursor().unwrap());
        j.ack(a.epoch, a.through);
        assert!(j.is_empty());

        // The bridge restarts: a new run numbers from 1, and the hub follows it.
        let mut j = Journal::new(200, 3);
        let first = j.push(&door, false, true, 20);
        assert_eq!(hub.admit(&first), take(200, 1));
        // The hub is away while five more events come: the journal keeps the last three.
        let live: Vec<SensorEvent> = (0..5)
            .map(|t| j.push(&door, false, false, 30 + t))
            .collect();
        assert_eq!(seqs(&live), vec![2, 3, 4, 5, 6]);
        assert_eq!(j.dropped, 3);
        // Back, the hub asks for what follows its cursor; 2 and 3 are gone, and recorded so.
        let r = hub.resend_request();
        assert_eq!(
            r,
            IntakeResend {
                epoch: 200,
                from: 2
            }
        );
        let again = j.resend_from(r.epoch, r.from, 40);
        assert_eq!(seqs(&again), vec![4, 5, 6]);
        assert_eq!(
            hub.admit(&again[0]),
            Verdict::Take {
                source: Source { epoch: 200, seq: 4 },
                lost: Some(Lost {
                    epoch: 200,
                    from: 2,
                    to: 3
                }),
            }
        );
        assert_eq!(hub.admit(&again[1]), take(200, 5));
        assert_eq!(hub.admit(&again[2]), take(200, 6));
        // Events of the old run resent late change nothing.
        assert_eq!(hub.admit(&evs[2]), Verdict::Duplicate);
    }
}
