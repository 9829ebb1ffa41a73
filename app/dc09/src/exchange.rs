//! What a reply means for the message that was sent, and the clock correction a NAK asks for.

use crate::fields::Seq;
use crate::response::{Reply, ResponseKind};
use crate::timestamp::Timestamp;

/// The sender's conclusion from one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered: ACK (or RSP) with the message's sequence number.
    Delivered,
    /// The receiver does not understand the message (DUH). Retrying unchanged will not help.
    NotUnderstood,
    /// NAK with the receiver's clock: correct the clock offset and resend with a new
    /// timestamp (same sequence number).
    ClockRejected { receiver_time: Timestamp },
    /// NAK without a usable timestamp (e.g. unknown account): treat as a failed attempt.
    Rejected,
    /// The receiver discarded the frame (bad CRC on its side): resend.
    Discarded,
    /// A reply for another sequence number: ignore it and keep waiting.
    Unrelated { seq: u16 },
}

/// Judges `reply` against the message with sequence `sent`.
pub fn judge(sent: Seq, reply: &Reply) -> Verdict {
    let r = match reply {
        Reply::Discarded => return Verdict::Discarded,
        Reply::Response(r) => r,
    };
    match r.kind {
        ResponseKind::Nak => match r.timestamp {
            Some(t) => Verdict::ClockRejected { receiver_time: t },
            None => Verdict::Rejected,
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

    /// The timestamp to put in a message sent at `local_now_unix_s`.
    pub fn timestamp(self, local_now_unix_s: i64) -> Timestamp {
        Timestamp::from_unix_secs_clamped(local_now_unix_s.saturating_add(self.0))
    }
}
