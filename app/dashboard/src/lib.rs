//! The sensor dashboard: frames rendered in Rust, no browser.
//!
//! Role: the `rtsp` worker serves `/dashboard` as an ordinary H.264 camera stream so that any
//! NVR can show the building's sensors next to its cameras. This crate turns bus state into
//! RGB frames; the worker feeds them to the encoder.
//!
//! Design: [`DashboardState`] is updated from retained bus topics (sensors, Neasmart zones,
//! cameras; see [`state`]). [`Renderer`] draws a header and a grid of tiles (name, state,
//! battery and last change for sensors; temperature and setpoint for zones; camera health),
//! paging when the tiles do not fit; [`Pager`] decides which page shows at a given time. A
//! sensor in alarm replaces everything with a full-screen red alarm frame. The fonts
//! (DejaVu Sans, Bitstream Vera licence in `fonts/`) are embedded in the binary. Lengths are
//! designed for 1920×1080 and scale with the frame.
//!
//! Failure: rendering cannot fail once a [`Renderer`] exists (bad sizes and fonts are refused
//! by [`Renderer::new`]); a bus payload that is not the expected JSON is reported by
//! [`DashboardState::apply`] and changes nothing. There is no shutdown state: it is all pure.
#![forbid(unsafe_code)]

pub mod canvas;
pub mod render;
pub mod state;

pub use canvas::{Frame, Rgb};
pub use render::{ALARM_RED, RenderError, Renderer, SETUP_BAR};
pub use state::{Camera, CameraView, DashboardState, Sensor, StateError, Zone};

/// Cycles pages: page `n` shows during the `n`-th interval since the pager started.
#[derive(Debug, Clone, Copy)]
pub struct Pager {
    interval_ms: u64,
}

impl Pager {
    pub fn new(interval_ms: u64) -> Self {
        Self {
            interval_ms: interval_ms.max(1),
        }
    }

    /// The page to show `elapsed_ms` after start, for `pages` pages.
    pub fn page_at(&self, elapsed_ms: u64, pages: usize) -> usize {
        ((elapsed_ms / self.interval_ms) as usize) % pages.max(1)
    }
}

/// Share of pixels in `frame` close to `c` (each channel within `tolerance`).
pub fn share_of_colour(frame: &Frame, c: Rgb, tolerance: u8) -> f64 {
    let near = |a: u8, b: u8| a.abs_diff(b) <= tolerance;
    let total = frame.data.len() / 3;
    if total == 0 {
        return 0.0;
    }
    let hits = frame
        .data
        .chunks_exact(3)
        .filter(|p| near(p[0], c.0) && near(p[1], c.1) && near(p[2], c.2))
        .count();
    hits as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(id: &str, alarm: bool) -> (String, Sensor) {
        (
            id.to_string(),
            Sensor {
                name: format!("Sensor {id}"),
                state: if alarm {
                    "open".into()
                } else {
                    "closed".into()
                },
                alarm,
                battery_pct: Some(75),
                changed_at_unix: Some(1_795_000_000),
                online: true,
            },
        )
    }

    #[test]
    fn alarm_frame_is_mostly_red() {
        let r = Renderer::new(1920, 1080, "Watchpost").unwrap();
        let mut state = DashboardState::default();
        state
            .sensors
            .extend([sensor("a", false), sensor("b", true)]);
        let mut f = Frame::new(1920, 1080);
        r.render(&state, 0, 1_795_000_100, &mut f);
        assert!(share_of_colour(&f, ALARM_RED, 10) > 0.8);
        // The alarm text is there (white pixels).
        assert!(share_of_colour(&f, Rgb(235, 238, 242), 10) > 0.005);
        // Without the alarm: no red at all.
        state.sensors.insert("b".into(), sensor("b", false).1);
        r.render(&state, 0, 1_795_000_100, &mut f);
        assert!(share_of_colour(&f, ALARM_RED, 10) < 0.01);
    }

    #[test]
    fn the_setup_code_bar_shows_until_the_box_is_claimed() {
        let r = Renderer::new(1280, 720, "Watchpost").unwrap();
        let mut state = DashboardState::default();
        let mut f = Frame::new(1280, 720);
        r.render(&state, 0, 1_795_000_100, &mut f);
        assert!(share_of_colour(&f, SETUP_BAR, 2) < 0.001);
        state.setup_code = Some("ABCD-EFGH".into());
        r.render(&state, 0, 1_795_000_100, &mut f);
        let share = share_of_colour(&f, SETUP_BAR, 2);
        assert!(share > 0.05, "bar share {share}");
    }

    #[test]
    fn paging_yields_different_pages() {
        let r = Renderer::new(1920, 1080, "Watchpost").unwrap();
        let mut state = DashboardState::default();
        let n = r.tiles_per_page() + 3;
        for i in 0..n {
            state.sensors.extend([sensor(&format!("s{i:02}"), false)]);
        }
        assert_eq!(r.page_count(&state), 2);
        let mut p0 = Frame::new(1920, 1080);
        let mut p1 = Frame::new(1920, 1080);
        r.render(&state, 0, 1_795_000_100, &mut p0);
        r.render(&state, 1, 1_795_000_100, &mut p1);
        let differing = p0
            .data
            .chunks_exact(3)
            .zip(p1.data.chunks_exact(3))
            .filter(|(a, b)| a != b)
            .count();
        assert!(differing > 10_000, "pages differ in {differing} pixels");
        // Page 2 wraps to page 0.
        let mut p2 = Frame::new(1920, 1080);
        r.render(&state, 2, 1_795_000_100, &mut p2);
        assert_eq!(p0, p2);
        let pager = Pager::new(10_000);
        assert_eq!(pager.page_at(0, 2), 0);
        assert_eq!(pager.page_at(10_000, 2), 1);
        assert_eq!(pager.page_at(20_500, 2), 0);
    }

    #[test]
    fn other_sizes_and_empty_state() {
        assert!(Renderer::new(100, 100, "x").is_err());
        let r = Renderer::new(640, 360, "Watchpost").unwrap();
        let mut f = Frame::new(1, 1);
        r.render(&DashboardState::default(), 0, 0, &mut f);
        assert_eq!((f.width, f.height), (640, 360));
        assert!(r.tiles_per_page() >= 1);
    }
}
