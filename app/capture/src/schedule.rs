//! Recording schedules: days of the week and start/stop times, evaluated against a wall clock
//! in a fixed offset from UTC.

use watchpost_config::capture::ScheduleWindowConfig;

use crate::time::civil;

/// One window: on `days` (bit 0 = Monday), from `start_min` to `stop_min` after midnight. A
/// window with `stop_min <= start_min` runs past midnight into the following day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub days: u8,
    pub start_min: u32,
    pub stop_min: u32,
}

/// A recording schedule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schedule {
    windows: Vec<Window>,
    offset_min: i32,
}

impl Schedule {
    /// Builds a schedule from the camera's `record.schedule` windows.
    pub fn from_config(windows: &[ScheduleWindowConfig], offset_min: i32) -> Self {
        let windows = windows
            .iter()
            .map(|w| Window {
                days: w.days.mask(),
                start_min: w.start.minutes(),
                stop_min: w.stop.minutes(),
            })
            .collect();
        Self {
            windows,
            offset_min,
        }
    }

    pub fn new(windows: Vec<Window>, offset_min: i32) -> Self {
        Self {
            windows,
            offset_min,
        }
    }

    /// Whether recording is on at `unix_us`.
    pub fn is_active(&self, unix_us: u64) -> bool {
        let c = civil(unix_us, self.offset_min);
        let minute = c.hour * 60 + c.minute;
        let today = 1u8 << c.weekday;
        let yesterday = 1u8 << ((c.weekday + 6) % 7);
        self.windows.iter().any(|w| {
            if w.stop_min > w.start_min {
                w.days & today != 0 && minute >= w.start_min && minute < w.stop_min
            } else {
                // Overnight: the evening part belongs to the listed day, the morning part to
                // the day after it.
                (w.days & today != 0 && minute >= w.start_min)
                    || (w.days & yesterday != 0 && minute < w.stop_min)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{ManualWallClock, WallClock};
    use watchpost_config::types::{DayName, Days};

    // 2026-11-23T00:00:00Z is a Monday.
    const MONDAY_US: u64 = 1_795_392_000_000_000;

    fn window(day: DayName, start: &str, stop: &str) -> ScheduleWindowConfig {
        ScheduleWindowConfig {
            days: Days::new(vec![day]).unwrap(),
            start: start.parse().unwrap(),
            stop: stop.parse().unwrap(),
        }
    }

    fn at(clock: &ManualWallClock, day: u64, h: u64, m: u64) -> u64 {
        clock.set_us(MONDAY_US + ((day * 24 + h) * 60 + m) * 60_000_000);
        clock.now_us()
    }

    #[test]
    fn weekday_office_hours_and_overnight_weekend() {
        let cfg = vec![
            window(DayName::Weekdays, "08:00", "18:30"),
            window(DayName::Sat, "22:00", "06:00"),
        ];
        let s = Schedule::from_config(&cfg, 0);
        let c = ManualWallClock::new(0);
        assert!(crate::time::civil(MONDAY_US, 0).weekday == 0);
        assert!(!s.is_active(at(&c, 0, 7, 59)));
        assert!(s.is_active(at(&c, 0, 8, 0)));
        assert!(s.is_active(at(&c, 4, 18, 29)));
        assert!(!s.is_active(at(&c, 4, 18, 30)));
        assert!(!s.is_active(at(&c, 5, 12, 0))); // Saturday noon
        assert!(s.is_active(at(&c, 5, 23, 0))); // Saturday night
        assert!(s.is_active(at(&c, 6, 5, 59))); // Sunday early morning
        assert!(!s.is_active(at(&c, 6, 6, 0)));
        assert!(!s.is_active(at(&c, 0, 1, 0))); // Monday early: Sunday has no window
    }

    #[test]
    fn offset_shifts_the_windows() {
        let s = Schedule::new(
            vec![Window {
                days: 127,
                start_min: 9 * 60,
                stop_min: 10 * 60,
            }],
            120,
        );
        let c = ManualWallClock::new(0);
        // 07:30Z is 09:30 at UTC+2.
        assert!(s.is_active(at(&c, 2, 7, 30)));
        assert!(!s.is_active(at(&c, 2, 9, 30)));
    }
}
