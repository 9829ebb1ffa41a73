//! Layout and drawing of dashboard pages and of the alarm screen.

use ab_glyph::FontRef;
use time::OffsetDateTime;

use crate::canvas::{Frame, Rgb};
use crate::state::{CameraView, DashboardState, Sensor, Zone};

static FONT_REGULAR: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
static FONT_BOLD: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold.ttf");

const BACKGROUND: Rgb = Rgb(16, 20, 24);
const HEADER: Rgb = Rgb(28, 34, 42);
const TILE: Rgb = Rgb(36, 44, 54);
const TEXT: Rgb = Rgb(235, 238, 242);
const MUTED: Rgb = Rgb(150, 160, 172);
const OK: Rgb = Rgb(80, 200, 120);
const WARN: Rgb = Rgb(240, 180, 60);
const BAD: Rgb = Rgb(230, 70, 70);
/// The alarm screen's background.
pub const ALARM_RED: Rgb = Rgb(200, 0, 0);
/// The first-boot setup code's bar.
pub const SETUP_BAR: Rgb = Rgb(20, 70, 140);

/// Why a renderer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("frame size {width}x{height} is outside 320x240..=3840x2160")]
    Size { width: u32, height: u32 },
    #[error("loading the embedded font {name}")]
    Font { name: &'static str },
}

/// One tile in page order.
enum Tile<'a> {
    Sensor(&'a Sensor),
    Zone(&'a Zone),
    Camera(&'a str, CameraView),
}

/// Draws dashboard frames of one size.
#[derive(Debug)]
pub struct Renderer {
    regular: FontRef<'static>,
    bold: FontRef<'static>,
    width: u32,
    height: u32,
    /// Scale of every length relative to the 1920x1080 design.
    unit: f32,
    cols: u32,
    rows: u32,
    title: String,
}

impl Renderer {
    pub fn new(width: u32, height: u32, title: &str) -> Result<Self, RenderError> {
        if !(320..=3840).contains(&width) || !(240..=2160).contains(&height) {
            return Err(RenderError::Size { width, height });
        }
        let regular = FontRef::try_from_slice(FONT_REGULAR)
            .map_err(|_| RenderError::Font { name: "DejaVuSans" })?;
        let bold = FontRef::try_from_slice(FONT_BOLD).map_err(|_| RenderError::Font {
            name: "DejaVuSans-Bold",
        })?;
        let unit = (width as f32 / 1920.0).min(height as f32 / 1080.0);
        let tile_w = 450.0 * unit;
        let tile_h = 210.0 * unit;
        let header = 90.0 * unit;
        let cols = ((width as f32 - 20.0 * unit) / (tile_w + 20.0 * unit))
            .floor()
            .max(1.0) as u32;
        let rows = ((height as f32 - header - 20.0 * unit) / (tile_h + 20.0 * unit))
            .floor()
            .max(1.0) as u32;
        Ok(Self {
            regular,
            bold,
            width,
            height,
            unit,
            cols,
            rows,
            title: title.to_string(),
        })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// Tiles per page.
    pub fn tiles_per_page(&self) -> usize {
        (self.cols * self.rows) as usize
    }

    /// Number of pages for `state` (at least one).
    pub fn page_count(&self, state: &DashboardState) -> usize {
        state.tile_count().div_ceil(self.tiles_per_page()).max(1)
    }

    /// Draws the frame for `state` at Unix time `now`: the alarm screen when any sensor is in
    /// alarm, otherwise page `page` (modulo the page count).
    pub fn render(&self, state: &DashboardState, page: usize, now: i64, frame: &mut Frame) {
        if frame.width != self.width || frame.height != self.height {
            *frame = Frame::new(self.width, self.height);
        }
        let alarms = state.alarms();
        if alarms.is_empty() {
            self.render_page(state, page % self.page_count(state), now, frame);
        } else {
            self.render_alarm(&alarms, now, frame);
        }
    }

    fn u(&self, v: f32) -> f32 {
        v * self.unit
    }

    fn render_alarm(&self, alarms: &[(&str, &Sensor)], now: i64, frame: &mut Frame) {
        frame.clear(ALARM_RED);
        let w = self.width as f32;
        let margin = self.u(60.0);
        let big = self.u(200.0);
        let label = "ALARM";
        let lw = Frame::text_width(&self.bold, big, label);
        frame.draw_text(
            &self.bold,
            big,
            (w - lw) / 2.0,
            self.u(80.0),
            w,
            TEXT,
            label,
        );
        let mut y = self.u(380.0);
        let line = self.u(110.0);
        let shown = ((self.height as f32 - y - margin) / line).floor().max(1.0) as usize;
        for (_, s) in alarms.iter().take(shown) {
            let text = if s.state.is_empty() {
                s.name.clone()
            } else {
                format!("{} — {}", s.name, s.state)
            };
            frame.draw_text(
                &self.bold,
                self.u(80.0),
                margin,
                y,
                w - 2.0 * margin,
                TEXT,
                &text,
            );
            if let Some(t) = s.changed_at_unix {
                let since = format!("since {}", clock(t));
                frame.draw_text(
                    &self.regular,
                    self.u(40.0),
                    margin,
                    y + self.u(82.0),
                    w - 2.0 * margin,
                    TEXT,
                    &since,
                );
            }
            y += line + self.u(30.0);
        }
        if alarms.len() > shown {
            let more = format!("+{} more", alarms.len() - shown);
            frame.draw_text(
                &self.regular,
                self.u(40.0),
                margin,
                self.height as f32 - margin,
                w,
                TEXT,
                &more,
            );
        }
        let _ = now;
    }

    fn render_page(&self, state: &DashboardState, page: usize, now: i64, frame: &mut Frame) {
        frame.clear(BACKGROUND);
        let w = self.width as f32;
        let header_h = self.u(90.0);
        frame.fill_rect(0, 0, self.width as i32, header_h as i32, HEADER);
        frame.draw_text(
            &self.bold,
            self.u(48.0),
            self.u(30.0),
            self.u(18.0),
            w * 0.6,
            TEXT,
            &self.title,
        );
        let pages = self.page_count(state);
        let right = format!("{}   page {}/{}", clock(now), page + 1, pages);
        let rw = Frame::text_width(&self.regular, self.u(36.0), &right);
        frame.draw_text(
            &self.regular,
            self.u(36.0),
            w - rw - self.u(30.0),
            self.u(26.0),
            rw + 1.0,
            MUTED,
            &right,
        );
        if let Some(code) = &state.setup_code {
            let bar_h = self.u(100.0);
            let top = self.height as f32 - bar_h;
            frame.fill_rect(0, top as i32, self.width as i32, bar_h as i32, SETUP_BAR);
            frame.draw_text(
                &self.bold,
                self.u(48.0),
                self.u(30.0),
                top + self.u(24.0),
                w - self.u(60.0),
                TEXT,
                &format!("Setup code {code}  ·  open the setup page: /claim"),
            );
        }
        let tiles: Vec<Tile<'_>> = state
            .sensors
            .values()
            .map(Tile::Sensor)
            .chain(state.zones.values().map(Tile::Zone))
            .chain(
                state
                    .cameras
                    .values()
                    .map(|c| Tile::Camera(&c.name, state.camera_view(c, now))),
            )
            .collect();
        if tiles.is_empty() {
            frame.draw_text(
                &self.regular,
                self.u(48.0),
                self.u(60.0),
                header_h + self.u(60.0),
                w,
                MUTED,
                "Waiting for sensors…",
            );
            return;
        }
        let per_page = self.tiles_per_page();
        let gap = self.u(20.0);
        let tile_w = (w - gap * (self.cols as f32 + 1.0)) / self.cols as f32;
        let tile_h = self.u(210.0);
        for (i, tile) in tiles
            .iter()
            .skip(page * per_page)
            .take(per_page)
            .enumerate()
        {
            let col = (i as u32 % self.cols) as f32;
            let row = (i as u32 / self.cols) as f32;
            let x = gap + col * (tile_w + gap);
            let y = header_h + gap + row * (tile_h + gap);
            frame.fill_rect(x as i32, y as i32, tile_w as i32, tile_h as i32, TILE);
            self.draw_tile(frame, tile, x, y, tile_w, tile_h, now);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn draw_tile(
        &self,
        frame: &mut Frame,
        tile: &Tile<'_>,
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        now: i64,
    ) {
        let pad = self.u(20.0);
        let inner = w - 2.0 * pad;
        let (name, accent, main, detail) = match tile {
            Tile::Sensor(s) => {
                let accent = if !s.online {
                    MUTED
                } else if is_quiet_state(&s.state) {
                    OK
                } else {
                    WARN
                };
                let mut detail = Vec::new();
                if let Some(b) = s.battery_pct {
                    detail.push(format!("battery {b}%"));
                }
                if let Some(t) = s.changed_at_unix {
                    detail.push(ago(now - t));
                }
                if !s.online {
                    detail.push("offline".into());
                }
                let main = if s.state.is_empty() {
                    "—".to_string()
                } else {
                    s.state.clone()
                };
                (s.name.as_str(), accent, main, detail.join(" · "))
            }
            Tile::Zone(z) => {
                let main = match z.temperature_c {
                    Some(t) => format!("{t:.1} °C"),
                    None => "— °C".into(),
                };
                let detail = match z.setpoint_c {
                    Some(s) => format!("setpoint {s:.1} °C"),
                    None => String::new(),
                };
                (z.name.as_str(), Rgb(90, 160, 240), main, detail)
            }
            Tile::Camera(name, v) => {
                let accent = if v.online { OK } else { BAD };
                let detail = if v.detail.is_empty() {
                    "camera".to_string()
                } else {
                    format!("camera · {}", v.detail)
                };
                (*name, accent, v.headline.clone(), detail)
            }
        };
        frame.fill_rect(x as i32, y as i32, self.u(10.0) as i32, h as i32, accent);
        frame.draw_text(
            &self.bold,
            self.u(38.0),
            x + pad,
            y + pad,
            inner,
            TEXT,
            name,
        );
        frame.draw_text(
            &self.bold,
            self.u(52.0),
            x + pad,
            y + self.u(75.0),
            inner,
            accent,
            &main,
        );
        frame.draw_text(
            &self.regular,
            self.u(28.0),
            x + pad,
            y + h - self.u(50.0),
            inner,
            MUTED,
            &detail,
        );
    }
}

/// States that mean "nothing to see" (drawn green).
fn is_quiet_state(state: &str) -> bool {
    matches!(
        state.to_ascii_lowercase().as_str(),
        "closed"
            | "normal"
            | "ok"
            | "no motion"
            | "nomotion"
            | "dry"
            | "idle"
            | "armed"
            | "disarmed"
    )
}

fn clock(unix: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
}

fn ago(seconds: i64) -> String {
    let s = seconds.max(0);
    if s < 60 {
        format!("{s} s ago")
    } else if s < 3600 {
        format!("{} min ago", s / 60)
    } else if s < 86_400 {
        format!("{} h ago", s / 3600)
    } else {
        format!("{} d ago", s / 86_400)
    }
}
