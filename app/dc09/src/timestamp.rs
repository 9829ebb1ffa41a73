//! DC-09 timestamps: `_HH:MM:SS,MM-DD-YYYY`, always UTC, whole seconds.
//!
//! Calendar arithmetic is done here on the proleptic Gregorian calendar (days since
//! 1970-01-01), so the crate needs no date library and stays deterministic: the caller passes
//! the current time in, the crate never reads a clock.

use std::fmt;

use crate::error::{Dc09Error, excerpt};

/// A point in time with one-second resolution, between 1970-01-01 and 9999-12-31 (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Seconds in a day.
const DAY_S: i64 = 86_400;
/// 9999-12-31T23:59:59Z.
const MAX_UNIX_S: i64 = 253_402_300_799;

impl Timestamp {
    /// The time `secs` seconds after the Unix epoch.
    pub fn from_unix_secs(secs: i64) -> Result<Self, Dc09Error> {
        if (0..=MAX_UNIX_S).contains(&secs) {
            Ok(Self(secs))
        } else {
            Err(Dc09Error::InvalidField {
                field: "timestamp",
                value: secs.to_string(),
                reason: "must lie between 1970-01-01 and 9999-12-31",
            })
        }
    }

    /// The same as [`Timestamp::from_unix_secs`], clamped into the supported range.
    pub fn from_unix_secs_clamped(secs: i64) -> Self {
        Self(secs.clamp(0, MAX_UNIX_S))
    }

    pub fn unix_secs(self) -> i64 {
        self.0
    }

    /// Civil date and time: (year, month, day, hour, minute, second).
    pub fn civil(self) -> (i64, u32, u32, u32, u32, u32) {
        let days = self.0.div_euclid(DAY_S);
        let secs = self.0.rem_euclid(DAY_S);
        let (y, m, d) = civil_from_days(days);
        // secs < 86400, so each part fits.
        let h = (secs / 3600) as u32;
        let mi = ((secs % 3600) / 60) as u32;
        let s = (secs % 60) as u32;
        (y, m, d, h, mi, s)
    }

    /// The wire form including the leading underscore, e.g. `_14:29:10,11-22-2026`.
    pub fn to_wire(self) -> String {
        self.to_string()
    }

    /// Parses the wire form; the leading underscore is optional.
    pub fn parse(text: &str) -> Result<Self, Dc09Error> {
        let err = |reason| Dc09Error::ParseTimestamp {
            input: excerpt(text.as_bytes()),
            reason,
        };
        let t = text.strip_prefix('_').unwrap_or(text);
        let b = t.as_bytes();
        if b.len() != 19 {
            return Err(err("expected HH:MM:SS,MM-DD-YYYY"));
        }
        let sep_ok = b[2] == b':' && b[5] == b':' && b[8] == b',' && b[11] == b'-' && b[14] == b'-';
        if !sep_ok {
            return Err(err("expected HH:MM:SS,MM-DD-YYYY"));
        }
        let num = |from: usize, to: usize| -> Result<i64, Dc09Error> {
            let part = &b[from..to];
            if !part.iter().all(u8::is_ascii_digit) {
                return Err(err("fields must be decimal digits"));
            }
            Ok(part
                .iter()
                .fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0')))
        };
        let (h, mi, s) = (num(0, 2)?, num(3, 5)?, num(6, 8)?);
        let (mo, d, y) = (num(9, 11)?, num(12, 14)?, num(15, 19)?);
        if h > 23 || mi > 59 || s > 59 {
            return Err(err("time of day out of range"));
        }
        if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
            return Err(err("no such date"));
        }
        if y < 1970 {
            return Err(err("year before 1970"));
        }
        let days = days_from_civil(y, mo, d);
        Ok(Self(days * DAY_S + h * 3600 + mi * 60 + s))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, mi, s) = self.civil();
        write!(f, "_{h:02}:{mi:02}:{s:02},{mo:02}-{d:02}-{y:04}")
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a civil date. Works in 400-year cycles of 146097 days, with
/// years counted from March so that the leap day is the last day of the year.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let cycle = y.div_euclid(400);
    let year_of_cycle = y - cycle * 400;
    let month_from_march = (m + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + d - 1;
    let day_of_cycle = year_of_cycle * 365 + year_of_cycle / 4 - year_of_cycle / 100 + day_of_year;
    cycle * 146_097 + day_of_cycle - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let cycle = z.div_euclid(146_097);
    let day_of_cycle = z - cycle * 146_097;
    let year_of_cycle =
        (day_of_cycle - day_of_cycle / 1460 + day_of_cycle / 36_524 - day_of_cycle / 146_096) / 365;
    let day_of_year =
        day_of_cycle - (365 * year_of_cycle + year_of_cycle / 4 - year_of_cycle / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let d = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let m = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let y = year_of_cycle + cycle * 400 + i64::from(m <= 2);
    // d is 1..=31 and m is 1..=12 by construction.
    (y, m as u32, d as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let t = Timestamp::from_unix_secs(0).unwrap();
        assert_eq!(t.to_wire(), "_00:00:00,01-01-1970");
        // 2026-11-22 14:29:10 UTC
        let t = Timestamp::parse("_14:29:10,11-22-2026").unwrap();
        assert_eq!(t.unix_secs(), 1_795_357_750);
        assert_eq!(t.to_wire(), "_14:29:10,11-22-2026");
        let leap = Timestamp::parse("23:59:59,02-29-2024").unwrap();
        assert_eq!(leap.unix_secs(), 1_709_251_199);
        assert_eq!(
            Timestamp::from_unix_secs(MAX_UNIX_S).unwrap().to_wire(),
            "_23:59:59,12-31-9999"
        );
    }

    #[test]
    fn rejects_bad_text() {
        for bad in [
            "",
            "_14:29:10,11-22-26",
            "_24:00:00,01-01-2020",
            "_12:00:00,02-29-2023",
            "_12:00:00,13-01-2023",
            "_12:00:00,00-01-2023",
            "_12:0a:00,01-01-2023",
            "_12:00:00,01-01-1969",
            "_12-00-00,01:01:2023",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
        assert!(Timestamp::from_unix_secs(-1).is_err());
        assert!(Timestamp::from_unix_secs(MAX_UNIX_S + 1).is_err());
    }

    #[test]
    fn round_trip_over_centuries() {
        let mut s = 0i64;
        while s <= MAX_UNIX_S {
            let t = Timestamp::from_unix_secs(s).unwrap();
            assert_eq!(Timestamp::parse(&t.to_wire()).unwrap(), t, "{s}");
            s += 7_777_777 + 13;
        }
    }
}
