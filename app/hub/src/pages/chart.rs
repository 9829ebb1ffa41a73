//! A zone's 24 h temperature as an inline SVG line (no chart library, no script): drawn on
//! the server from the sampler's points ([`super::history`]), sized by its `viewBox` so it
//! scales to the card's width. A gap in the samples (no reading) breaks the line.

use maud::{Markup, html};

const W: f64 = 300.0;
const H: f64 = 90.0;
const PAD_X: f64 = 34.0;
const PAD_Y: f64 = 8.0;

/// The SVG path data of `samples` (°C or `None`, oldest first, evenly spaced in time) within
/// `[lo, hi]` °C; every point is `x,y` with finite numbers.
pub fn path(samples: &[Option<f64>], lo: f64, hi: f64) -> String {
    let n = samples.len();
    let span = if hi - lo > f64::EPSILON { hi - lo } else { 1.0 };
    let step = if n > 1 {
        (W - PAD_X) / (n - 1) as f64
    } else {
        0.0
    };
    let mut d = String::new();
    let mut pen_down = false;
    for (i, s) in samples.iter().enumerate() {
        match s {
            Some(v) if v.is_finite() => {
                let x = PAD_X + step * i as f64;
                let y = PAD_Y + (H - 2.0 * PAD_Y) * (1.0 - (v - lo) / span);
                d.push_str(if pen_down { " L" } else { " M" });
                d.push_str(&format!("{x:.1},{y:.1}"));
                pen_down = true;
            }
            _ => pen_down = false,
        }
    }
    d.trim_start().to_string()
}

/// Where the newest sample sits (marked, so a single sample shows too).
fn last_point(samples: &[Option<f64>], lo: f64, hi: f64) -> Option<(f64, f64)> {
    let d = path(samples, lo, hi);
    let last = d.rsplit([' ', 'M', 'L']).find(|s| !s.is_empty())?;
    let (x, y) = last.split_once(',')?;
    Some((x.parse().ok()?, y.parse().ok()?))
}

/// The chart of one zone: a titled SVG image with its min/max axis labels, or a sentence
/// when there are no samples yet.
pub fn temperature_chart(label: &str, samples: &[Option<f64>]) -> Markup {
    let values: Vec<f64> = samples
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    if values.is_empty() {
        return html! { p class="muted" { "No temperature history yet (one sample every 5 minutes)." } };
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lo = (min - 0.5).floor();
    let hi = (max + 0.5).ceil();
    let summary = format!(
        "{label}: temperature over the last 24 hours, from {min:.1} to {max:.1} °C, {} samples",
        values.len()
    );
    html! {
        svg class="chart" viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(summary)
            xmlns="http://www.w3.org/2000/svg" {
            title { (summary) }
            line x1=(PAD_X) y1=(PAD_Y) x2=(W) y2=(PAD_Y) stroke="#c9d2d9" stroke-width="1" {}
            line x1=(PAD_X) y1=(H - PAD_Y) x2=(W) y2=(H - PAD_Y) stroke="#c9d2d9" stroke-width="1" {}
            text x="2" y=(PAD_Y + 4.0) font-size="10" fill="#4a5660" { (format!("{hi:.0}°")) }
            text x="2" y=(H - PAD_Y + 4.0) font-size="10" fill="#4a5660" { (format!("{lo:.0}°")) }
            path d=(path(samples, lo, hi)) fill="none" stroke="#0b4f6c" stroke-width="2"
                stroke-linejoin="round" {}
            @if let Some((x, y)) = last_point(samples, lo, hi) {
                circle cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="3" fill="#0b4f6c" {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_day_is_one_line_of_288_finite_points() {
        let samples: Vec<Option<f64>> = (0..288)
            .map(|i| Some(20.0 + (f64::from(i) / 20.0).sin()))
            .collect();
        let d = path(&samples, 18.0, 22.0);
        assert_eq!(d.matches('M').count(), 1);
        assert_eq!(d.matches('L').count(), 287);
        let points: Vec<&str> = d.split([' ', 'M', 'L']).filter(|s| !s.is_empty()).collect();
        assert_eq!(points.len(), 288);
        for p in points {
            let (x, y) = p.split_once(',').unwrap();
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!(
                x.is_finite() && y.is_finite() && (0.0..=W).contains(&x) && (0.0..=H).contains(&y)
            );
        }
        assert!(!d.contains("NaN") && !d.contains("inf"));
    }

    #[test]
    fn gaps_break_the_line_and_flat_or_nan_data_stays_finite() {
        let d = path(
            &[Some(20.0), None, Some(21.0), Some(f64::NAN), Some(21.0)],
            20.0,
            20.0,
        );
        assert_eq!(d.matches('M').count(), 3);
        assert!(!d.contains("NaN"));
        assert_eq!(path(&[], 0.0, 1.0), "");
        let one = temperature_chart("Zone 1.1", &[Some(20.0)]).into_string();
        assert!(one.contains("role=\"img\"") && one.contains("<title>"));
        assert!(one.contains("<circle"), "a single sample is marked");
        assert!(!one.contains("NaN"));
        let none = temperature_chart("Zone 1.1", &[None, None]).into_string();
        assert!(none.contains("No temperature history"));
    }
}
