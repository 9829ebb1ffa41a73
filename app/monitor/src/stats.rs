//! Rolling figures of a ping target over its last `window` echoes (sans-IO).
//!
//! Echoes are kept in the order they were sent. An echo is pending until its reply arrives or
//! its timeout passes (then it is lost). The figures are taken over the newest `window`
//! echoes that come before the oldest one still pending, so every echo counted is final and
//! a lost echo, which is known only at its timeout, is not under-counted against the replies
//! that come back at once: the figures lag by at most the timeout.

use std::collections::VecDeque;

use watchpost_contract::monitor::Figure;

/// One echo's fate.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Echo {
    /// Sent at this time (ms, monotonic), no reply yet.
    Pending {
        seq: u16,
        sent_ms: u64,
    },
    /// Answered after this many milliseconds.
    Reply(f64),
    Lost,
}

/// The echoes of one target.
#[derive(Debug, Clone)]
pub struct PingWindow {
    window: usize,
    echoes: VecDeque<Echo>,
    /// Consecutive lost echoes, newest last (for up/down).
    consecutive_lost: u32,
    last_rtt_ms: Option<f64>,
}

/// What the window says now.
#[derive(Debug, Clone, PartialEq)]
pub struct PingFigures {
    /// Final echoes counted (at most the window).
    pub counted: usize,
    pub loss_percent: f64,
    pub rtt_avg_ms: Option<f64>,
    pub rtt_min_ms: Option<f64>,
    pub rtt_max_ms: Option<f64>,
    /// Mean absolute difference of consecutive round trips (RFC 3550's idea, unsmoothed).
    pub jitter_ms: Option<f64>,
    pub rtt_last_ms: Option<f64>,
    /// Echoes lost in a row, up to the newest final one.
    pub consecutive_lost: u32,
}

impl PingFigures {
    /// The figures of the target's status.
    pub fn figures(&self) -> Vec<Figure> {
        let mut v = vec![
            figure("loss_percent", self.loss_percent),
            figure("echoes", self.counted as f64),
        ];
        for (name, value) in [
            ("rtt_avg_ms", self.rtt_avg_ms),
            ("rtt_min_ms", self.rtt_min_ms),
            ("rtt_max_ms", self.rtt_max_ms),
            ("jitter_ms", self.jitter_ms),
            ("rtt_last_ms", self.rtt_last_ms),
        ] {
            if let Some(x) = value {
                v.push(figure(name, x));
            }
        }
        v
    }
}

fn figure(metric: &str, value: f64) -> Figure {
    Figure {
        metric: metric.into(),
        item: None,
        value,
    }
}

impl PingWindow {
    pub fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            echoes: VecDeque::new(),
            consecutive_lost: 0,
            last_rtt_ms: None,
        }
    }

    /// Echo `seq` was sent at `now_ms`.
    pub fn sent(&mut self, seq: u16, now_ms: u64) {
        self.echoes.push_back(Echo::Pending {
            seq,
            sent_ms: now_ms,
        });
        self.trim();
    }

    /// The reply to echo `seq` arrived at `now_ms`; `false` when no such echo is pending (a
    /// late or duplicate reply).
    pub fn replied(&mut self, seq: u16, now_ms: u64) -> bool {
        for e in self.echoes.iter_mut().rev() {
            if let Echo::Pending { seq: s, sent_ms } = *e
                && s == seq
            {
                let rtt = now_ms.saturating_sub(sent_ms) as f64;
                *e = Echo::Reply(rtt);
                self.last_rtt_ms = Some(rtt);
                self.recount();
                return true;
            }
        }
        false
    }

    /// Like [`PingWindow::replied`] with the round trip measured by the caller (µs precision).
    pub fn replied_rtt(&mut self, seq: u16, rtt_ms: f64) -> bool {
        for e in self.echoes.iter_mut().rev() {
            if let Echo::Pending { seq: s, .. } = *e
                && s == seq
            {
                *e = Echo::Reply(rtt_ms);
                self.last_rtt_ms = Some(rtt_ms);
                self.recount();
                return true;
            }
        }
        false
    }

    /// Echoes pending for `timeout_ms` or longer at `now_ms` are lost.
    pub fn expire(&mut self, now_ms: u64, timeout_ms: u64) {
        let mut changed = false;
        for e in self.echoes.iter_mut() {
            if let Echo::Pending { sent_ms, .. } = *e
                && now_ms.saturating_sub(sent_ms) >= timeout_ms
            {
                *e = Echo::Lost;
                changed = true;
            }
        }
        if changed {
            self.recount();
        }
    }

    /// Keeps the final echoes of the window plus those pending after them.
    fn trim(&mut self) {
        let pending_from = self
            .echoes
            .iter()
            .position(|e| matches!(e, Echo::Pending { .. }))
            .unwrap_or(self.echoes.len());
        if pending_from > self.window {
            self.echoes.drain(..pending_from - self.window);
        }
    }

    fn recount(&mut self) {
        // Consecutive losses up to the newest final echo.
        let mut n = 0;
        for e in self.echoes.iter().rev() {
            match e {
                Echo::Pending { .. } => continue,
                Echo::Lost => n += 1,
                Echo::Reply(_) => break,
            }
        }
        self.consecutive_lost = n;
        self.trim();
    }

    /// The figures over the newest `window` final echoes before the oldest pending one.
    pub fn figures(&self) -> PingFigures {
        let end = self
            .echoes
            .iter()
            .position(|e| matches!(e, Echo::Pending { .. }))
            .unwrap_or(self.echoes.len());
        let start = end.saturating_sub(self.window);
        let mut lost = 0usize;
        let mut rtts = Vec::new();
        for e in self.echoes.range(start..end) {
            match e {
                Echo::Lost => lost += 1,
                Echo::Reply(r) => rtts.push(*r),
                Echo::Pending { .. } => {}
            }
        }
        let counted = end - start;
        let loss_percent = if counted == 0 {
            0.0
        } else {
            lost as f64 * 100.0 / counted as f64
        };
        let (avg, min, max) = if rtts.is_empty() {
            (None, None, None)
        } else {
            let sum: f64 = rtts.iter().sum();
            (
                Some(sum / rtts.len() as f64),
                rtts.iter().copied().reduce(f64::min),
                rtts.iter().copied().reduce(f64::max),
            )
        };
        let jitter = (rtts.len() >= 2).then(|| {
            let d: f64 = rtts.windows(2).map(|w| (w[1] - w[0]).abs()).sum();
            d / (rtts.len() - 1) as f64
        });
        PingFigures {
            counted,
            loss_percent,
            rtt_avg_ms: avg,
            rtt_min_ms: min,
            rtt_max_ms: max,
            jitter_ms: jitter,
            rtt_last_ms: self.last_rtt_ms,
            consecutive_lost: self.consecutive_lost,
        }
    }

    /// Sequence numbers still pending.
    pub fn pending(&self) -> usize {
        self.echoes
            .iter()
            .filter(|e| matches!(e, Echo::Pending { .. }))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_over_final_echoes_only() {
        let mut w = PingWindow::new(4);
        w.sent(1, 0);
        w.sent(2, 10);
        w.sent(3, 20);
        assert!(w.replied(1, 5));
        assert!(w.replied(3, 28));
        // Echo 2 is pending: only echo 1 counts.
        let f = w.figures();
        assert_eq!(f.counted, 1);
        assert_eq!(f.loss_percent, 0.0);
        w.expire(1_010, 1_000);
        let f = w.figures();
        assert_eq!(f.counted, 3);
        assert!((f.loss_percent - 100.0 / 3.0).abs() < 1e-9);
        assert_eq!(f.rtt_avg_ms, Some(6.5));
        assert_eq!(f.rtt_min_ms, Some(5.0));
        assert_eq!(f.rtt_max_ms, Some(8.0));
        assert_eq!(f.jitter_ms, Some(3.0));
        assert_eq!(f.consecutive_lost, 0);
        assert!(
            !w.replied(2, 1_020),
            "a late reply to a lost echo is ignored"
        );
    }

    #[test]
    fn the_window_is_exact_for_a_periodic_drop() {
        // Three of every ten echoes lost, the window a multiple of ten: exactly 30 %.
        let mut w = PingWindow::new(100);
        let mut t = 0;
        for seq in 0..1_000u16 {
            w.sent(seq, t);
            if seq % 10 >= 3 {
                w.replied(seq, t + 1);
            }
            t += 20;
            w.expire(t, 200);
        }
        w.expire(t + 1_000, 200);
        let f = w.figures();
        assert_eq!(f.counted, 100);
        assert_eq!(f.loss_percent, 30.0);
        assert!(w.echoes.len() <= 110);
    }

    #[test]
    fn consecutive_losses_mark_down() {
        let mut w = PingWindow::new(10);
        for seq in 0..3 {
            w.sent(seq, u64::from(seq) * 10);
        }
        w.expire(5_000, 1_000);
        assert_eq!(w.figures().consecutive_lost, 3);
        assert_eq!(w.figures().rtt_avg_ms, None);
        w.sent(3, 5_000);
        w.replied(3, 5_001);
        assert_eq!(w.figures().consecutive_lost, 0);
        assert_eq!(w.pending(), 0);
    }
}
