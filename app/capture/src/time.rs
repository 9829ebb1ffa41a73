//! Wall-clock time: a clock trait (so schedules and retention are tested with a manual clock)
//! and civil-date arithmetic for file names and schedules, without a time-zone database.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch.
pub trait WallClock: Send + Sync {
    fn now_us(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_us(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }
}

/// A clock set by hand. Clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualWallClock(Arc<AtomicU64>);

impl ManualWallClock {
    pub fn new(now_us: u64) -> Self {
        Self(Arc::new(AtomicU64::new(now_us)))
    }
    pub fn set_us(&self, us: u64) {
        self.0.store(us, Ordering::SeqCst);
    }
    pub fn advance_s(&self, s: u64) {
        self.0.fetch_add(s * 1_000_000, Ordering::SeqCst);
    }
}

impl WallClock for ManualWallClock {
    fn now_us(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A broken-down date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
    /// 0 = Monday .. 6 = Sunday.
    pub weekday: u32,
}

/// Splits `unix_us` shifted by `offset_min` minutes into a civil date and time.
pub fn civil(unix_us: u64, offset_min: i32) -> Civil {
    let ms = unix_us as i64 / 1000 + i64::from(offset_min) * 60_000;
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Days-to-date conversion for the proleptic Gregorian calendar (era of 400 years).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (in_day / 3_600_000) as u32,
        minute: (in_day / 60_000 % 60) as u32,
        second: (in_day / 1000 % 60) as u32,
        millis: (in_day % 1000) as u32,
        // 1970-01-01 was a Thursday (3).
        weekday: (days + 3).rem_euclid(7) as u32,
    }
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-22T14:31:19.250Z`.
pub fn rfc3339(unix_us: u64) -> String {
    let c = civil(unix_us, 0);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let c = civil(0, 0);
        assert_eq!((c.year, c.month, c.day, c.weekday), (1970, 1, 1, 3));
        // 2024-02-29T23:59:59.5Z, a Thursday
        let c = civil(1_709_251_199_500_000, 0);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis),
            (2024, 2, 29, 23, 59, 59, 500)
        );
        assert_eq!(c.weekday, 3);
        // +60 min moves it into Friday, March 1st.
        let c = civil(1_709_251_199_500_000, 60);
        assert_eq!((c.month, c.day, c.hour, c.weekday), (3, 1, 0, 4));
        assert_eq!(rfc3339(1_709_251_199_500_000), "2024-02-29T23:59:59.500Z");
    }
}
