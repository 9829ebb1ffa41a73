//! What a reply means for the message that was sent, and the clock correction a NAK asks for.

use crate::fields::Seq;
use crate::response::{Reply, ResponseKind};
use crate::timestamp::Timestamp;

/// How far (seconds) the time in a NAK may lie from the timestamp of the message it rejects
/// while the two clocks still count as agreeing: both have one-second resolution and the NAK is
/// written a round trip later. Receivers accept tens of seconds (DC-09's usual window is
/// −40 s/+20 s), so a NAK within this margin did not reject the clock.
pub const CLOCK_AGREEMENT_S: i64 = 3;

/// The sender's conclusion from one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered: ACK (or RSP) with the message's sequence number.
    Delivered,
    /// The receiver does not understand the message (DUH). Retrying unchanged will not help.
    NotUnderstood,
    /// NAK with a clock that disagrees with the message's timestamp: correct the clock offset
    /// and resend with a new timestamp (same sequence number).
    ClockRejected { receiver_time: Timestamp },
    /// NAK that is not about the clock: it names no time (a bare `"NAK"`, e.g. an unknown
    /// account), or the receiver's time agrees with the message's. The receiver refuses the
    /// frame itself: for an encrypted frame, most often because it cannot decrypt it (another
    /// key), otherwise the account or line. Resending the same frame will not help until the
    /// configuration changes.
    Refused { receiver_time: Option<Timestamp> },
    /// The receiver discarded the frame (bad CRC on its side): resend.
    Discarded,
    /// A reply for another sequence number: ignore it and keep waiting.
    Unrelated { seq: u16 },
}

/// Judges `reply` against the message with sequence `sent` that carried the timestamp
/// `stamped` (a NAK's time is compared with it, [`CLOCK_AGREEMENT_S`]).
pub fn judge(sent: Seq, stamped: Option<Timestamp>, reply: &Reply) -> Verdict {
    let r = match reply {
        Reply::Discarded => return Verdict::Discarded,
        Reply::Response(r) => r,
    };
    match r.kind {
        ResponseKind::Nak => match (r.timestamp, stamped) {
            (Some(t), Some(ours))
                if (t.unix_secs() - ours.unix_secs()).abs() <= CLOCK_AGREEMENT_S =>
            {
                Verdict::Refused {
                    receiver_time: Some(t),
                }
            }
            (Some(t), _) => Verdict::ClockRejected { receiver_time: t },
            (None, _) => Verdict::Refused {
                receiver_time: None,
            },
        },
        // Bare responses carry no sequence number and answer the last message.
        _ if r.framed && r.seq != sent.get() => Verdict::Unrelated { seq: r.seq },
        ResponseKind::Ack | ResponseKind::Rsp => Verdict::Delivered,
        ResponseKind::Duh => Verdict::NotUnderstood,
    }
}

/// Seconds to add to the local clock to get the receiver's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClockOffset(i64);

impl ClockOffset {
    pub fn new(secs: i64) -> Self {
        Self(secs)
    }

    /// The offset that makes `local_now` read as the receiver's time from its NAK.
    pub fn from_nak(receiver_time: Timestamp, local_now_unix_s: i64) -> Self {
        Self(receiver_time.unix_secs() - local_now_unix_s)
    }

    pub fn secs(self) -> i64 {
        self.0
    }

    /// The timestamp to put in a message sent at `local_now_unix_s` (also the receiver's time
    /// of anything else that happened at a local time, e.g. an event's time of occurrence).
    pub fn timestamp(self, local_now_unix_s: i64) -> Timestamp {
        Timestamp::from_unix_secs_clamped(local_now_unix_s.saturating_add(self.0))
    }
}
