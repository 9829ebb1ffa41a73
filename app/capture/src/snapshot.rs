//! Snapshots: the newest frame of a camera as JPEG, decoded on demand from the group of
//! pictures the recorder keeps in memory (keyframe up to the newest frame). Nothing is
//! decoded unless a snapshot is asked for.

use std::path::{Path, PathBuf};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::mp4::Codec;
use crate::recorder::Gop;

/// Snapshot errors, each naming the camera.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot of {camera}: no frame received yet")]
    NoFrame { camera: String },
    #[error("snapshot of {camera}: decoding failed: {reason}")]
    Decode { camera: String, reason: String },
    #[error("snapshot of {camera}: writing {path}: {source}")]
    Write {
        camera: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn derr(camera: &str, reason: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Decode {
        camera: camera.into(),
        reason: reason.to_string(),
    }
}

/// Runs `appsrc ! <middle> ! appsink`, pushes `buffers`, returns the last output sample.
fn run_through(
    camera: &str,
    caps: &gst::Caps,
    middle: &str,
    buffers: Vec<gst::Buffer>,
) -> Result<gst::Sample, SnapshotError> {
    let desc = format!("appsrc name=src format=time ! {middle} ! appsink name=sink sync=false");
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| derr(camera, e))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| derr(camera, "not a pipeline"))?;
    let src = pipeline
        .by_name("src")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or_else(|| derr(camera, "no appsrc"))?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| derr(camera, "no appsink"))?;
    src.set_caps(Some(caps));
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| derr(camera, e))?;
    for b in buffers {
        if src.push_buffer(b).is_err() {
            break;
        }
    }
    let _ = src.end_of_stream();
    let mut last = None;
    while let Some(s) = sink.try_pull_sample(gst::ClockTime::from_seconds(5)) {
        last = Some(s);
    }
    let error = pipeline.bus().and_then(|b| {
        b.pop_filtered(&[gst::MessageType::Error])
            .and_then(|m| match m.view() {
                gst::MessageView::Error(e) => Some(e.error().to_string()),
                _ => None,
            })
    });
    let _ = pipeline.set_state(gst::State::Null);
    match (last, error) {
        (Some(s), _) => Ok(s),
        (None, Some(e)) => Err(derr(camera, e)),
        (None, None) => Err(derr(camera, "the decoder produced no frame")),
    }
}

/// Decodes the group of pictures and encodes its last frame as JPEG.
pub fn jpeg_from_gop(camera: &str, gop: &Gop) -> Result<Vec<u8>, SnapshotError> {
    gst::init().map_err(|e| derr(camera, e))?;
    let t = &gop.track;
    let (media, format, decoder) = match t.codec {
        Codec::H264 => ("video/x-h264", "avc", "avdec_h264"),
        Codec::H265 => ("video/x-h265", "hvc1", "avdec_h265"),
    };
    let caps = gst::Caps::builder(media)
        .field("stream-format", format)
        .field("alignment", "au")
        .field("width", t.width as i32)
        .field("height", t.height as i32)
        .field("codec_data", gst::Buffer::from_slice(t.codec_data.clone()))
        .build();
    let base = gop.samples.first().map_or(0, |s| s.0.dts_ns);
    let buffers: Vec<gst::Buffer> = gop
        .samples
        .iter()
        .map(|(s, _)| {
            let mut b = gst::Buffer::from_slice(s.data.clone());
            if let Some(bm) = b.get_mut() {
                bm.set_pts(gst::ClockTime::from_nseconds(
                    (s.pts_ns - base).max(0) as u64
                ));
                bm.set_dts(gst::ClockTime::from_nseconds(
                    (s.dts_ns - base).max(0) as u64
                ));
                if !s.keyframe {
                    bm.set_flags(gst::BufferFlags::DELTA_UNIT);
                }
            }
            b
        })
        .collect();
    if buffers.is_empty() {
        return Err(SnapshotError::NoFrame {
            camera: camera.into(),
        });
    }
    let raw = run_through(
        camera,
        &caps,
        &format!("{decoder} ! videoconvert ! video/x-raw,format=I420"),
        buffers,
    )?;
    let raw_caps = raw
        .caps()
        .ok_or_else(|| derr(camera, "decoded frame without caps"))?
        .to_owned();
    let frame = raw
        .buffer()
        .ok_or_else(|| derr(camera, "decoded frame without data"))?
        .copy();
    let jpeg = run_through(camera, &raw_caps, "jpegenc quality=85", vec![frame])?;
    let buf = jpeg.buffer().ok_or_else(|| derr(camera, "no JPEG data"))?;
    let map = buf.map_readable().map_err(|e| derr(camera, e))?;
    Ok(map.as_slice().to_vec())
}

/// Writes `jpeg` as `<dir>/<camera>.jpg` atomically (temporary file, then rename).
pub fn store_latest(dir: &Path, camera: &str, jpeg: &[u8]) -> Result<PathBuf, SnapshotError> {
    let path = dir.join(format!("{camera}.jpg"));
    let tmp = dir.join(format!(".{camera}.jpg.tmp"));
    let werr = |source| SnapshotError::Write {
        camera: camera.into(),
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(werr)?;
    std::fs::write(&tmp, jpeg).map_err(werr)?;
    std::fs::rename(&tmp, &path).map_err(werr)?;
    Ok(path)
}
