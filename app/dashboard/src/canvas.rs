//! An RGB frame with the few drawing operations the dashboard needs: filled rectangles and
//! anti-aliased text in the embedded fonts.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};

/// An sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

/// A packed RGB24 frame, rows top to bottom, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl Frame {
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            data: vec![0; width as usize * height as usize * 3],
        }
    }

    /// The pixel at (x, y).
    pub fn pixel(&self, x: u32, y: u32) -> Rgb {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        Rgb(self.data[i], self.data[i + 1], self.data[i + 2])
    }

    /// Fills the whole frame.
    pub fn clear(&mut self, c: Rgb) {
        for px in self.data.chunks_exact_mut(3) {
            px[0] = c.0;
            px[1] = c.1;
            px[2] = c.2;
        }
    }

    /// Fills a rectangle, clipped to the frame.
    pub fn fill_rect(&mut self, x: i32, y: i32, w: i32, h: i32, c: Rgb) {
        let (fw, fh) = (self.width as i32, self.height as i32);
        let (x0, y0) = (x.clamp(0, fw), y.clamp(0, fh));
        let (x1, y1) = ((x + w).clamp(0, fw), (y + h).clamp(0, fh));
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        let stride = self.width as usize * 3;
        for row in y0..y1 {
            let start = row as usize * stride + x0 as usize * 3;
            let end = row as usize * stride + x1 as usize * 3;
            for px in self.data[start..end].chunks_exact_mut(3) {
                px[0] = c.0;
                px[1] = c.1;
                px[2] = c.2;
            }
        }
    }

    fn blend(&mut self, x: i32, y: i32, c: Rgb, alpha: f32) {
        if x < 0 || y < 0 || x >= self.width as i32 || y >= self.height as i32 {
            return;
        }
        let a = alpha.clamp(0.0, 1.0);
        let i = (y as usize * self.width as usize + x as usize) * 3;
        let mix = |dst: u8, src: u8| (dst as f32 + (src as f32 - dst as f32) * a).round() as u8;
        self.data[i] = mix(self.data[i], c.0);
        self.data[i + 1] = mix(self.data[i + 1], c.1);
        self.data[i + 2] = mix(self.data[i + 2], c.2);
    }

    /// Width in pixels of `text` at `size_px`.
    pub fn text_width(font: &FontRef<'_>, size_px: f32, text: &str) -> f32 {
        let scaled = font.as_scaled(PxScale::from(size_px));
        let mut width = 0.0;
        let mut prev = None;
        for ch in text.chars() {
            let id = scaled.glyph_id(ch);
            if let Some(p) = prev {
                width += scaled.kern(p, id);
            }
            width += scaled.h_advance(id);
            prev = Some(id);
        }
        width
    }

    /// Draws `text` with its top-left at (x, y), cut with an ellipsis to `max_width` pixels.
    /// Returns the width drawn.
    #[allow(clippy::too_many_arguments)]
    pub fn draw_text(
        &mut self,
        font: &FontRef<'_>,
        size_px: f32,
        x: f32,
        y: f32,
        max_width: f32,
        c: Rgb,
        text: &str,
    ) -> f32 {
        let fitted = fit(font, size_px, max_width, text);
        let scaled = font.as_scaled(PxScale::from(size_px));
        let baseline = y + scaled.ascent();
        let mut caret = x;
        let mut prev = None;
        for ch in fitted.chars() {
            let id = scaled.glyph_id(ch);
            if let Some(p) = prev {
                caret += scaled.kern(p, id);
            }
            let glyph = id.with_scale_and_position(PxScale::from(size_px), point(caret, baseline));
            caret += scaled.h_advance(id);
            prev = Some(id);
            if let Some(outlined) = font.outline_glyph(glyph) {
                let b = outlined.px_bounds();
                outlined.draw(|gx, gy, coverage| {
                    self.blend(
                        b.min.x as i32 + gx as i32,
                        b.min.y as i32 + gy as i32,
                        c,
                        coverage,
                    );
                });
            }
        }
        caret - x
    }
}

/// `text`, shortened with "…" until it fits `max_width`.
fn fit(font: &FontRef<'_>, size_px: f32, max_width: f32, text: &str) -> String {
    if Frame::text_width(font, size_px, text) <= max_width {
        return text.to_string();
    }
    let mut chars: Vec<char> = text.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let candidate: String = chars.iter().collect::<String>() + "…";
        if Frame::text_width(font, size_px, &candidate) <= max_width {
            return candidate;
        }
    }
    String::new()
}
