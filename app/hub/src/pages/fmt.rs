//! Small text formats of the pages: times (UTC, as the event log stores them), durations,
//! byte counts and optional numbers.

use time::macros::format_description;
use time::{Date, Month, OffsetDateTime, Time};

/// Milliseconds since the Unix epoch as `2026-12-07 18:20:05 UTC` (the number itself when it
/// is beyond the years ±9999 that `time` represents).
pub fn time_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// Microseconds since the Unix epoch, as [`time_ms`].
pub fn time_us(us: u64) -> String {
    time_ms(i64::try_from(us / 1000).unwrap_or(i64::MAX))
}

/// A `datetime-local` input's value (`2026-12-07T18:20`, optionally with `:SS`), read as UTC,
/// → µs since the Unix epoch. `None` when it is not one.
pub fn parse_datetime_local(s: &str) -> Option<u64> {
    let (date, time) = s.trim().split_once('T')?;
    let mut d = date.splitn(3, '-');
    let y: i32 = d.next()?.parse().ok()?;
    let mo: u8 = d.next()?.parse().ok()?;
    let day: u8 = d.next()?.parse().ok()?;
    let mut t = time.split(':');
    let h: u8 = t.next()?.parse().ok()?;
    let mi: u8 = t.next()?.parse().ok()?;
    let sec: u8 = match t.next() {
        Some(x) => x.split('.').next()?.parse().ok()?,
        None => 0,
    };
    if !(1970..=9999).contains(&y) {
        return None;
    }
    let date = Date::from_calendar_date(y, Month::try_from(mo).ok()?, day).ok()?;
    let secs = date
        .with_time(Time::from_hms(h, mi, sec).ok()?)
        .assume_utc()
        .unix_timestamp();
    u64::try_from(secs).ok().map(|s| s * 1_000_000)
}

/// A duration in seconds as `3 d 4 h`, `5 h 12 min`, `42 s`.
pub fn duration_s(s: u64) -> String {
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Bytes as `1.5 GB` (powers of 1000, as disks are sold).
pub fn bytes(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// A machine name as a label: `time_program` → `Time program`.
pub fn label(name: &str) -> String {
    let mut s = name.replace('_', " ");
    if let Some(first) = s.get(..1) {
        let up = first.to_uppercase();
        s.replace_range(..1, &up);
    }
    s
}

/// `21.5 °C`-style text of an optional reading, `–` when absent.
pub fn opt(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.1}{unit}"),
        _ => "–".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_and_parse_as_utc() {
        assert_eq!(time_ms(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time_ms(1_796_667_605_000), "2026-12-07 18:20:05 UTC");
        assert_eq!(
            parse_datetime_local("2026-12-07T18:20:05"),
            Some(1_796_667_605_000_000)
        );
        assert_eq!(
            parse_datetime_local("2026-12-07T18:20"),
            Some(1_796_667_600_000_000)
        );
        assert_eq!(
            parse_datetime_local("2024-02-29T00:00"),
            Some(1_709_164_800_000_000)
        );
        assert_eq!(parse_datetime_local("2026-13-01T00:00"), None);
        assert_eq!(parse_datetime_local("2026-02-30T00:00"), None);
        assert_eq!(parse_datetime_local("yesterday"), None);
        assert_eq!(parse_datetime_local(""), None);
    }

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500_000), "1.5 MB");
        assert_eq!(duration_s(42), "42 s");
        assert_eq!(duration_s(3 * 86_400 + 4 * 3600 + 5), "3 d 4 h");
        assert_eq!(opt(Some(21.456), " °C"), "21.5 °C");
        assert_eq!(opt(None, " °C"), "–");
        assert_eq!(label("time_program"), "Time program");
        assert_eq!(label(""), "");
        assert_eq!(opt(Some(f64::NAN), " °C"), "–");
    }
}
