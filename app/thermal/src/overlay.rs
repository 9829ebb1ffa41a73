//! A minimal temperature overlay: a crosshair on the hottest spot and its reading, drawn with
//! a built-in 3x5 pixel font (digits, `.`, `-`, `°`, `C`), so no font files are needed.

use crate::{RgbImage, Spot};

/// Rows of a 3x5 glyph, three bits each (bit 2 is the left column).
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b111, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b001, 0b001, 0b001],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        '.' => [0b000, 0b000, 0b000, 0b000, 0b010],
        '-' => [0b000, 0b000, 0b111, 0b000, 0b000],
        'C' => [0b111, 0b100, 0b100, 0b100, 0b111],
        '°' => [0b010, 0b101, 0b010, 0b000, 0b000],
        ' ' => [0; 5],
        _ => return None,
    })
}

const FG: [u8; 3] = [255, 255, 255];
const BG: [u8; 3] = [0, 0, 0];

fn fill(img: &mut RgbImage, x0: i64, y0: i64, w: i64, h: i64, rgb: [u8; 3]) {
    for y in y0.max(0)..(y0 + h).min(i64::from(img.height)) {
        for x in x0.max(0)..(x0 + w).min(i64::from(img.width)) {
            img.set_pixel(x as u32, y as u32, rgb);
        }
    }
}

/// Draws `text` with its top-left corner at (`x`, `y`), each font pixel `scale` pixels wide,
/// on a black box. Characters without a glyph are skipped.
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: u32) {
    let s = i64::from(scale.max(1));
    let glyphs: Vec<[u8; 5]> = text.chars().filter_map(glyph).collect();
    let width = glyphs.len() as i64 * 4 * s + s;
    fill(img, x, y, width, 7 * s, BG);
    for (i, g) in glyphs.iter().enumerate() {
        let gx = x + s + i as i64 * 4 * s;
        for (row, bits) in g.iter().enumerate() {
            for col in 0..3 {
                if bits & (0b100 >> col) != 0 {
                    fill(img, gx + col * s, y + s + row as i64 * s, s, s, FG);
                }
            }
        }
    }
}

/// Marks `spot` with a crosshair and writes its temperature (one decimal) next to it, keeping
/// the label inside the picture.
pub fn draw_hotspot_overlay(img: &mut RgbImage, spot: &Spot) {
    let scale = (img.width / 160).max(1);
    let arm = i64::from(3 * scale + 2);
    let (sx, sy) = (i64::from(spot.x), i64::from(spot.y));
    let t = i64::from(scale.div_ceil(2));
    fill(img, sx - arm, sy - t / 2, 2 * arm + 1, t.max(1), FG);
    fill(img, sx - t / 2, sy - arm, t.max(1), 2 * arm + 1, FG);
    let label = format!("{:.1}°C", spot.celsius);
    let s = i64::from(scale);
    let label_w = (label.chars().count() as i64) * 4 * s + s;
    let label_h = 7 * s;
    let mut lx = sx + arm + 2;
    if lx + label_w > i64::from(img.width) {
        lx = sx - arm - 2 - label_w;
    }
    let mut ly = sy - label_h / 2;
    ly = ly.clamp(0, (i64::from(img.height) - label_h).max(0));
    draw_text(img, lx.max(0), ly, &label, scale);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_draws_crosshair_and_label() {
        let mut img = RgbImage {
            width: 80,
            height: 60,
            data: vec![100; 80 * 60 * 3],
        };
        let spot = Spot {
            x: 40,
            y: 30,
            celsius: 63.25,
        };
        draw_hotspot_overlay(&mut img, &spot);
        assert_eq!(img.pixel(40, 30), Some(FG));
        assert_eq!(img.pixel(36, 30), Some(FG));
        // The label box sits right of the crosshair.
        assert_eq!(img.pixel(47, 30), Some(BG));
        // Far corners untouched.
        assert_eq!(img.pixel(0, 0), Some([100, 100, 100]));
    }

    #[test]
    fn label_stays_inside_at_the_right_edge() {
        let mut img = RgbImage {
            width: 40,
            height: 20,
            data: vec![100; 40 * 20 * 3],
        };
        draw_hotspot_overlay(
            &mut img,
            &Spot {
                x: 39,
                y: 0,
                celsius: -12.0,
            },
        );
        assert_eq!(img.pixel(39, 0), Some(FG));
    }
}
