//! The thermal feeder: copies frames from a capture worker's view ring
//! (`<frames_dir>/<id>.view.ring`, RGB24, mapped read-only) into the appsrcs of the live
//! `/thermal/<id>` media.
//!
//! The ring is only read while someone watches. It is opened lazily, re-opened when the capture
//! worker replaces it (restart, new size), and polled at twice its frame rate so that every
//! frame is pushed once, soon after it is written. A ring whose layout differs from an appsrc's
//! caps (the capture worker restarted with another picture size) updates the caps.

use std::path::Path;
use std::time::{Duration, Instant};

use gstreamer as gst;
use tokio_util::sync::CancellationToken;
use watchpost_frame_ring::{PixelFormat, RingLayout, RingReader};

use crate::server::{AppSrcs, rgb_caps};

/// How often a missing ring is looked for again.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

/// GStreamer's default row stride of packed RGB: `width * 3` rounded up to 4.
fn gst_stride(width: u32) -> usize {
    (width as usize * 3).div_ceil(4) * 4
}

/// The frame in GStreamer's layout: as is when the strides agree, else row by row.
pub fn to_gst_layout(layout: &RingLayout, data: Vec<u8>) -> Vec<u8> {
    let (w, h) = (layout.width as usize, layout.height as usize);
    let (src, dst) = (layout.stride as usize, gst_stride(layout.width));
    if src == dst {
        return data;
    }
    let mut out = vec![0u8; dst * h];
    for (row, chunk) in out.chunks_exact_mut(dst).enumerate() {
        let from = row * src;
        if let Some(pixels) = data.get(from..from + w * 3) {
            chunk[..w * 3].copy_from_slice(pixels);
        }
    }
    out
}

fn open(path: &Path) -> Option<RingReader> {
    match RingReader::open(path) {
        Ok(r) if r.layout().format == PixelFormat::Rgb24 => Some(r),
        Ok(r) => {
            tracing::warn!(ring = %path.display(), format = ?r.layout().format, "thermal view ring is not RGB24; ignored");
            None
        }
        Err(e) => {
            tracing::debug!(error = %e, "thermal view ring not available yet");
            None
        }
    }
}

/// Runs until `shutdown`: feeds the appsrcs in `sources` from the ring at `path`.
pub async fn run(path: std::path::PathBuf, sources: AppSrcs, shutdown: CancellationToken) {
    let mut reader: Option<RingReader> = None;
    let mut last_try = Instant::now() - REOPEN_EVERY;
    let mut last_number = 0u64;
    let mut poll = Duration::from_millis(50);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(poll) => {}
        }
        if sources.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
            // Nobody watches: let go of the mapping (the capture worker may replace it).
            reader = None;
            continue;
        }
        if reader.as_ref().is_some_and(RingReader::is_replaced) {
            reader = None;
        }
        if reader.is_none() {
            if last_try.elapsed() < REOPEN_EVERY {
                continue;
            }
            last_try = Instant::now();
            reader = open(&path);
            last_number = 0;
            if let Some(r) = &reader {
                let l = r.layout();
                let fps = f64::from(l.fps_num.max(1)) / f64::from(l.fps_den.max(1));
                poll = Duration::from_secs_f64((0.5 / fps).clamp(0.005, 0.5));
                tracing::info!(ring = %path.display(), width = l.width, height = l.height, fps, "thermal view ring opened");
            }
        }
        let Some(r) = &reader else { continue };
        let Some(frame) = r.read_latest(last_number) else {
            continue;
        };
        last_number = frame.number;
        let layout = r.layout().clone();
        push(&sources, &layout, to_gst_layout(&layout, frame.data));
    }
}

/// Pushes one frame into every live appsrc, fixing caps that do not match the ring.
fn push(sources: &AppSrcs, layout: &RingLayout, data: Vec<u8>) {
    let caps = rgb_caps(layout.width, layout.height, layout.fps_num, layout.fps_den);
    let buffer = gst::Buffer::from_slice(data);
    let mut list = sources.lock().unwrap_or_else(|p| p.into_inner());
    list.retain(|src| {
        if src.caps().as_ref() != Some(&caps) {
            src.set_caps(Some(&caps));
        }
        match src.push_buffer(buffer.clone()) {
            Ok(_) | Err(gst::FlowError::Flushing) => true,
            Err(e) => {
                tracing::debug!(error = ?e, "thermal appsrc refused a frame; dropping it");
                false
            }
        }
    });
}

/// The newest frame of the ring at `path` (for snapshots): its layout and GStreamer-packed
/// pixels.
pub fn latest_frame(path: &Path) -> Option<(RingLayout, Vec<u8>)> {
    let r = open(path)?;
    let frame = r.read_latest(0)?;
    let layout = r.layout().clone();
    let data = to_gst_layout(&layout, frame.data);
    Some((layout, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repacks_rows_to_gstreamer_stride() {
        // 2 pixels wide: 6 bytes of pixels, GStreamer wants 8 per row.
        let l = RingLayout::new("t", 2, 2, PixelFormat::Rgb24, 2, 9);
        let data: Vec<u8> = (0..12).collect();
        let out = to_gst_layout(&l, data);
        assert_eq!(out, [0, 1, 2, 3, 4, 5, 0, 0, 6, 7, 8, 9, 10, 11, 0, 0]);
        // 4 pixels wide: already aligned, untouched.
        let l = RingLayout::new("t", 4, 1, PixelFormat::Rgb24, 2, 9);
        let data: Vec<u8> = (0..12).collect();
        assert_eq!(to_gst_layout(&l, data.clone()), data);
    }
}
