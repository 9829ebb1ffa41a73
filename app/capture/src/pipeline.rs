//! GStreamer pipelines, one per camera.
//!
//! RTSP: `rtspsrc` → (on its video pad) depayloader → parser → `stream-format=avc|hvc1,
//! alignment=au` → `tee`, with two branches:
//! - recording: `queue` → `appsink`: compressed access units, never decoded, handed to the
//!   recorder thread;
//! - detection (when enabled): leaky `queue` → decoder → `videorate drop-only` →
//!   `videoscale` → `videoconvert` → RGB at the configured size and rate → `appsink` that
//!   writes into the frame ring. A camera with a `sub_url` gets a second `rtspsrc` for it and
//!   detection decodes the sub stream instead (the main stream is then never decoded).
//!
//! V4L2: `v4l2src` with the configured caps; compressed H.264 is parsed and passed through,
//! anything else is encoded once (x264, ultrafast, zero latency) so the rest is the same.
//!
//! HTTP MJPEG: `souphttpsrc` → `multipartdemux` → `jpegdec` → `videorate` (the configured
//! rate) → x264 once, then the same branches.
//!
//! Thermal: raw radiometric frames (`v4l2src` in `GRAY16_LE`/`YUY2`, or `tcpclientsrc` with the
//! `watchpost_thermal::wire` framing) → `appsink`, whose callback turns each frame into a
//! colourised picture ([`ThermalSink`]) pushed into `appsrc` → `videoconvert` → x264 → the same
//! `tee` and branches as a visible camera.

use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::mp4::{Codec, Sample, TrackInfo};

/// Pipeline errors, each naming the camera.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("camera {camera}: GStreamer initialisation failed: {source}")]
    Init {
        camera: String,
        source: gst::glib::Error,
    },
    #[error("camera {camera}: creating element {element}: {reason}")]
    Element {
        camera: String,
        element: &'static str,
        reason: String,
    },
    #[error("camera {camera}: building the pipeline: {reason}")]
    Build { camera: String, reason: String },
    #[error("camera {camera}: starting the pipeline: {reason}")]
    Start { camera: String, reason: String },
}

/// Receives a decoded, scaled frame for detection: (pts_ns, pixels).
pub type FrameSink = Arc<dyn Fn(u64, &[u8]) + Send + Sync>;

/// Where a pipeline delivers its output. Both closures run on GStreamer streaming threads and
/// must not block.
#[derive(Clone)]
pub struct Outputs {
    /// A compressed access unit and its track description.
    pub on_access_unit: Arc<dyn Fn(Sample, Arc<TrackInfo>) + Send + Sync>,
    /// A decoded, scaled RGB frame for detection: (pts_ns, bytes).
    pub on_detect_frame: Option<FrameSink>,
}

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outputs")
            .field("detect", &self.on_detect_frame.is_some())
            .finish()
    }
}

/// Where a thermal camera's raw frames come from.
#[derive(Debug, Clone)]
pub enum ThermalInput {
    Tcp {
        host: String,
        port: u16,
        fps: u32,
    },
    V4l2 {
        device: String,
        width: Option<u32>,
        height: Option<u32>,
        fps: Option<u32>,
    },
}

impl ThermalInput {
    fn fps(&self) -> u32 {
        match self {
            ThermalInput::Tcp { fps, .. } => *fps,
            ThermalInput::V4l2 { fps, .. } => fps.unwrap_or(9),
        }
        .max(1)
    }
}

/// Called on a streaming thread with each raw frame (delivered width, height, bytes); returns
/// the picture to encode, or why the frame cannot be used (the camera then goes to `error`).
pub type ThermalSink =
    Arc<dyn Fn(u32, u32, &[u8]) -> Result<watchpost_thermal::RgbImage, String> + Send + Sync>;

/// Detection branch settings.
#[derive(Debug, Clone, Copy)]
pub struct DetectBranch {
    pub fps: u32,
    pub width: u32,
    pub height: u32,
}

/// RTSP source settings.
#[derive(Debug, Clone)]
pub struct RtspSource {
    pub url: String,
    /// The camera's lower-resolution stream: when set, detection frames are decoded from it
    /// and the main stream is only recorded (never decoded).
    pub sub_url: Option<String>,
    pub tcp: bool,
    pub latency_ms: u32,
    pub username: Option<String>,
    pub password: Option<String>,
}

pub fn init(camera: &str) -> Result<(), PipelineError> {
    gst::init().map_err(|source| PipelineError::Init {
        camera: camera.into(),
        source,
    })
}

fn make(camera: &str, factory: &'static str) -> Result<gst::Element, PipelineError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|e| PipelineError::Element {
            camera: camera.into(),
            element: factory,
            reason: e.to_string(),
        })
}

/// The encoder for sources that are not H.264 already (V4L2 raw or MJPEG, HTTP MJPEG, the
/// thermal picture): x264 tuned for latency, a keyframe every `key_int` frames.
fn x264(camera: &str, key_int: u32) -> Result<gst::Element, PipelineError> {
    let enc = make(camera, "x264enc")?;
    enc.set_property_from_str("tune", "zerolatency");
    enc.set_property_from_str("speed-preset", "ultrafast");
    enc.set_property("key-int-max", key_int);
    Ok(enc)
}

/// `h264parse` and a capsfilter for AVC access units: the form the recorder and every branch
/// after the encoder take.
fn h264_avc(camera: &str) -> Result<(gst::Element, gst::Element), PipelineError> {
    let parse = make(camera, "h264parse")?;
    let avc = make(camera, "capsfilter")?;
    avc.set_property(
        "caps",
        gst::Caps::builder("video/x-h264")
            .field("stream-format", "avc")
            .field("alignment", "au")
            .build(),
    );
    Ok((parse, avc))
}

fn build_err(camera: &str, reason: impl std::fmt::Display) -> PipelineError {
    PipelineError::Build {
        camera: camera.into(),
        reason: reason.to_string(),
    }
}

/// Reads codec, size and decoder configuration from negotiated caps.
pub fn track_from_caps(caps: &gst::CapsRef) -> Option<TrackInfo> {
    let s = caps.structure(0)?;
    let codec = match s.name().as_str() {
        "video/x-h264" => Codec::H264,
        "video/x-h265" => Codec::H265,
        _ => return None,
    };
    let width = s.get::<i32>("width").ok()? as u32;
    let height = s.get::<i32>("height").ok()? as u32;
    let data = s.get::<gst::Buffer>("codec_data").ok()?;
    let map = data.map_readable().ok()?;
    Some(TrackInfo {
        codec,
        width,
        height,
        codec_data: map.as_slice().to_vec(),
    })
}

fn recording_sink(outputs: &Outputs) -> gst_app::AppSink {
    let on_au = outputs.on_access_unit.clone();
    let mut last: Option<(gst::Caps, Arc<TrackInfo>)> = None;
    let last = std::sync::Mutex::new(last.take());
    gst_app::AppSink::builder()
        .name("record")
        .sync(false)
        .max_buffers(300)
        .drop(true)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let track = {
                        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                        match &*last {
                            Some((c, t)) if c.as_ref() == caps => t.clone(),
                            _ => {
                                let Some(t) = track_from_caps(caps) else {
                                    return Ok(gst::FlowSuccess::Ok);
                                };
                                let t = Arc::new(t);
                                *last = Some((caps.to_owned(), t.clone()));
                                t
                            }
                        }
                    };
                    let Ok(map) = buffer.map_readable() else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let pts = buffer.pts().or(buffer.dts());
                    let dts = buffer.dts().or(buffer.pts());
                    let (Some(pts), Some(dts)) = (pts, dts) else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let au = Sample {
                        data: bytes::Bytes::copy_from_slice(map.as_slice()),
                        dts_ns: dts.nseconds() as i64,
                        pts_ns: pts.nseconds() as i64,
                        keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                    };
                    on_au(au, track);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build()
}

fn detect_sink(on_frame: FrameSink) -> gst_app::AppSink {
    gst_app::AppSink::builder()
        .name("detect")
        .sync(false)
        .max_buffers(1)
        .drop(true)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(buffer) = sample.buffer()
                        && let Ok(map) = buffer.map_readable()
                    {
                        let pts = buffer.pts().map_or(0, |t| t.nseconds());
                        on_frame(pts, map.as_slice());
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build()
}

/// Adds `tee` → recording (and detection) branches after `upstream`, all linked and synced.
fn add_branches(
    camera: &str,
    pipeline: &gst::Pipeline,
    upstream: &gst::Element,
    codec: Codec,
    outputs: &Outputs,
    detect: Option<DetectBranch>,
) -> Result<Vec<gst::Element>, PipelineError> {
    let detecting = detect.is_some() && outputs.on_detect_frame.is_some();
    if !detecting {
        // Recording only: the appsink runs on the upstream streaming thread. A tee and a
        // queue would add a thread hop per access unit for nothing (the appsink callback
        // only hands the unit to the recorder's channel and never blocks).
        let sink = recording_sink(outputs);
        pipeline
            .add(sink.upcast_ref::<gst::Element>())
            .map_err(|e| build_err(camera, e))?;
        upstream
            .link(sink.upcast_ref::<gst::Element>())
            .map_err(|e| build_err(camera, e))?;
        return Ok(vec![sink.upcast()]);
    }
    let tee = make(camera, "tee")?;
    let q = make(camera, "queue")?;
    q.set_property("max-size-buffers", 200u32);
    q.set_property("max-size-bytes", 0u32);
    q.set_property("max-size-time", 0u64);
    let sink = recording_sink(outputs);
    let mut elems = vec![tee.clone(), q.clone(), sink.clone().upcast()];
    pipeline
        .add_many([&tee, &q, sink.upcast_ref()])
        .map_err(|e| build_err(camera, e))?;
    gst::Element::link_many([upstream, &tee, &q, sink.upcast_ref()])
        .map_err(|e| build_err(camera, e))?;
    if let (Some(d), Some(on_frame)) = (detect, outputs.on_detect_frame.clone()) {
        elems.extend(add_detect_chain(
            camera, pipeline, &tee, codec, d, on_frame,
        )?);
    }
    Ok(elems)
}

/// The detection chain after `upstream` (a `tee`, or a sub stream's parser): leaky `queue` →
/// decoder → `videorate drop-only` → `videoscale` → `videoconvert` → RGB at the branch's size
/// and rate → `appsink` handing frames to `on_frame`. Linked, not yet synced with the pipeline.
fn add_detect_chain(
    camera: &str,
    pipeline: &gst::Pipeline,
    upstream: &gst::Element,
    codec: Codec,
    d: DetectBranch,
    on_frame: FrameSink,
) -> Result<Vec<gst::Element>, PipelineError> {
    let dq = make(camera, "queue")?;
    dq.set_property_from_str("leaky", "downstream");
    dq.set_property("max-size-buffers", 60u32);
    let dec = make(
        camera,
        match codec {
            Codec::H264 => "avdec_h264",
            Codec::H265 => "avdec_h265",
        },
    )?;
    dec.set_property("max-threads", 1i32);
    let rate = make(camera, "videorate")?;
    rate.set_property("drop-only", true);
    let scale = make(camera, "videoscale")?;
    let convert = make(camera, "videoconvert")?;
    let filter = make(camera, "capsfilter")?;
    filter.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "RGB")
            .field("width", d.width as i32)
            .field("height", d.height as i32)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .field("framerate", gst::Fraction::new(d.fps as i32, 1))
            .build(),
    );
    let dsink = detect_sink(on_frame);
    let chain = [
        &dq,
        &dec,
        &rate,
        &scale,
        &convert,
        &filter,
        dsink.upcast_ref(),
    ];
    pipeline.add_many(chain).map_err(|e| build_err(camera, e))?;
    gst::Element::link_many([upstream, &dq]).map_err(|e| build_err(camera, e))?;
    gst::Element::link_many(chain).map_err(|e| build_err(camera, e))?;
    Ok(chain.iter().map(|e| (*e).clone()).collect())
}

fn post_error(pipeline: &gst::Pipeline, reason: &str) {
    let _ = pipeline.post_message(gst::message::Error::new(gst::StreamError::Decode, reason));
}

/// Pushes a colourised picture into the encoder's `appsrc`, (re)setting its caps when the
/// picture's size changes. Odd sizes lose their last row or column (x264 wants even sizes).
fn push_view(
    src: &gst_app::AppSrc,
    caps_size: &std::sync::Mutex<Option<(u32, u32)>>,
    fps: u32,
    img: watchpost_thermal::RgbImage,
) {
    let (w, h) = (img.width & !1, img.height & !1);
    if w == 0 || h == 0 {
        return;
    }
    let data = if (w, h) == (img.width, img.height) {
        img.data
    } else {
        let row = img.width as usize * 3;
        img.data
            .chunks_exact(row)
            .take(h as usize)
            .flat_map(|r| r[..w as usize * 3].iter().copied())
            .collect()
    };
    {
        let mut size = caps_size.lock().unwrap_or_else(|p| p.into_inner());
        if *size != Some((w, h)) {
            src.set_caps(Some(
                &gst::Caps::builder("video/x-raw")
                    .field("format", "RGB")
                    .field("width", w as i32)
                    .field("height", h as i32)
                    .field("framerate", gst::Fraction::new(fps as i32, 1))
                    .build(),
            ));
            *size = Some((w, h));
        }
    }
    let _ = src.push_buffer(gst::Buffer::from_mut_slice(data));
}

/// Builds a thermal camera's pipeline: raw frames in, `on_frame` makes the picture, which is
/// encoded and handled like any camera's video.
pub fn build_thermal(
    camera: &str,
    input: &ThermalInput,
    format: watchpost_thermal::RawFormat,
    outputs: Outputs,
    detect: Option<DetectBranch>,
    on_frame: ThermalSink,
) -> Result<gst::Pipeline, PipelineError> {
    let pipeline = gst::Pipeline::with_name(&format!("camera-{camera}"));
    let fps = input.fps();
    // Encoder half.
    let view = gst_app::AppSrc::builder()
        .name("view")
        .is_live(true)
        .format(gst::Format::Time)
        .do_timestamp(true)
        .max_bytes(8 * 1024 * 1024)
        .build();
    view.set_property_from_str("leaky-type", "downstream");
    let convert = make(camera, "videoconvert")?;
    let enc = x264(camera, fps * 2)?;
    let (parse, avc) = h264_avc(camera)?;
    pipeline
        .add_many([view.upcast_ref(), &convert, &enc, &parse, &avc])
        .map_err(|e| build_err(camera, e))?;
    gst::Element::link_many([view.upcast_ref(), &convert, &enc, &parse, &avc])
        .map_err(|e| build_err(camera, e))?;
    add_branches(camera, &pipeline, &avc, Codec::H264, &outputs, detect)?;
    // Source half.
    let caps_size = Arc::new(std::sync::Mutex::new(None));
    let weak = pipeline.downgrade();
    let deliver = {
        let view = view.clone();
        move |w: u32, h: u32, bytes: &[u8]| match on_frame(w, h, bytes) {
            Ok(img) => push_view(&view, &caps_size, fps, img),
            Err(reason) => {
                if let Some(p) = weak.upgrade() {
                    post_error(&p, &reason);
                }
            }
        }
    };
    let raw_sink = gst_app::AppSink::builder()
        .name("raw")
        .sync(false)
        .max_buffers(4)
        .drop(true);
    let source: gst::Element = match input {
        ThermalInput::Tcp { host, port, .. } => {
            let src = make(camera, "tcpclientsrc")?;
            src.set_property("host", host);
            src.set_property("port", i32::from(*port));
            src.set_property("timeout", 5u32);
            let decoder = std::sync::Mutex::new(watchpost_thermal::wire::Decoder::new());
            let weak = pipeline.downgrade();
            let cam = camera.to_string();
            let sink = raw_sink
                .max_buffers(64)
                .drop(false)
                .callbacks(
                    gst_app::AppSinkCallbacks::builder()
                        .new_sample(move |sink| {
                            let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                            let Some(buffer) = sample.buffer() else {
                                return Ok(gst::FlowSuccess::Ok);
                            };
                            let Ok(map) = buffer.map_readable() else {
                                return Ok(gst::FlowSuccess::Ok);
                            };
                            let mut d = decoder.lock().unwrap_or_else(|p| p.into_inner());
                            d.push(map.as_slice());
                            loop {
                                match d.next_frame() {
                                    Ok(Some(f)) if f.format == format => deliver(
                                        u32::from(f.width),
                                        u32::from(f.height),
                                        &f.payload,
                                    ),
                                    Ok(Some(f)) => {
                                        let reason = format!(
                                            "camera {cam}: the peer sends {} frames, the camera is configured for {}",
                                            f.format.name(),
                                            format.name()
                                        );
                                        if let Some(p) = weak.upgrade() {
                                            post_error(&p, &reason);
                                        }
                                        return Err(gst::FlowError::Error);
                                    }
                                    Ok(None) => break,
                                    Err(e) => {
                                        if let Some(p) = weak.upgrade() {
                                            post_error(&p, &e.to_string());
                                        }
                                        return Err(gst::FlowError::Error);
                                    }
                                }
                            }
                            Ok(gst::FlowSuccess::Ok)
                        })
                        .build(),
                )
                .build();
            pipeline
                .add_many([&src, sink.upcast_ref()])
                .map_err(|e| build_err(camera, e))?;
            src.link(&sink).map_err(|e| build_err(camera, e))?;
            src
        }
        ThermalInput::V4l2 {
            device,
            width,
            height,
            fps,
        } => {
            let src = make(camera, "v4l2src")?;
            src.set_property("device", device);
            let mut caps = gst::Caps::builder("video/x-raw").field(
                "format",
                match format {
                    watchpost_thermal::RawFormat::CentiKelvin16 => "GRAY16_LE",
                    watchpost_thermal::RawFormat::SplitFrame => "YUY2",
                },
            );
            if let (Some(w), Some(h)) = (width, height) {
                caps = caps.field("width", *w as i32).field("height", *h as i32);
            }
            if let Some(f) = fps {
                caps = caps.field("framerate", gst::Fraction::new(*f as i32, 1));
            }
            let filter = make(camera, "capsfilter")?;
            filter.set_property("caps", caps.build());
            let sink = raw_sink
                .callbacks(
                    gst_app::AppSinkCallbacks::builder()
                        .new_sample(move |sink| {
                            let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                            let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps())
                            else {
                                return Ok(gst::FlowSuccess::Ok);
                            };
                            let Ok(info) = gstreamer_video::VideoInfo::from_caps(caps) else {
                                return Ok(gst::FlowSuccess::Ok);
                            };
                            let Ok(map) = buffer.map_readable() else {
                                return Ok(gst::FlowSuccess::Ok);
                            };
                            let (w, h) = (info.width(), info.height());
                            let row = w as usize * 2;
                            let stride = usize::try_from(info.stride()[0]).unwrap_or(row);
                            let bytes = map.as_slice();
                            if stride == row {
                                deliver(w, h, bytes.get(..row * h as usize).unwrap_or(bytes));
                            } else {
                                // Rows padded by the driver: pack them.
                                let packed: Vec<u8> = bytes
                                    .chunks(stride)
                                    .take(h as usize)
                                    .flat_map(|r| r.iter().take(row).copied())
                                    .collect();
                                deliver(w, h, &packed);
                            }
                            Ok(gst::FlowSuccess::Ok)
                        })
                        .build(),
                )
                .build();
            pipeline
                .add_many([&src, &filter, sink.upcast_ref()])
                .map_err(|e| build_err(camera, e))?;
            gst::Element::link_many([&src, &filter, sink.upcast_ref()])
                .map_err(|e| build_err(camera, e))?;
            src
        }
    };
    let _ = source;
    // The source half is not live and would hold the state change in PAUSED until every sink
    // prerolled, which the encoder half (fed only once frames flow) never does: no sink here
    // waits for preroll.
    for sink in pipeline.iterate_sinks().into_iter().flatten() {
        sink.set_property("async", false);
    }
    Ok(pipeline)
}

/// What to attach behind an RTSP source's parser once its codec is known.
#[derive(Clone)]
enum RtspTail {
    /// The main stream: recording (and detection when it has no sub stream).
    Main(Outputs, Option<DetectBranch>),
    /// The sub stream: detection only.
    Detect(DetectBranch, FrameSink),
}

fn rtsp_element(
    camera: &str,
    src: &RtspSource,
    url: &str,
    name: &str,
) -> Result<gst::Element, PipelineError> {
    let rtspsrc = gst::ElementFactory::make("rtspsrc")
        .name(name)
        .build()
        .map_err(|e| PipelineError::Element {
            camera: camera.into(),
            element: "rtspsrc",
            reason: e.to_string(),
        })?;
    rtspsrc.set_property("location", url);
    rtspsrc.set_property("latency", src.latency_ms);
    rtspsrc.set_property_from_str("protocols", if src.tcp { "tcp" } else { "udp" });
    // Connection attempts and silence are handled by our own watchdog; keep these short.
    rtspsrc.set_property("tcp-timeout", 5_000_000u64);
    rtspsrc.set_property("timeout", 5_000_000u64);
    rtspsrc.set_property("do-retransmission", false);
    if let Some(u) = &src.username {
        rtspsrc.set_property("user-id", u);
    }
    if let Some(p) = &src.password {
        rtspsrc.set_property("user-pw", p);
    }
    Ok(rtspsrc)
}

/// Links an `rtspsrc`'s video pad, when it appears, to depayloader → parser → `avc|hvc1`/`au`
/// → `tail`. Only the first video stream is used.
fn link_rtsp_video(camera: &str, pipeline: &gst::Pipeline, rtspsrc: &gst::Element, tail: RtspTail) {
    let weak = pipeline.downgrade();
    let cam = camera.to_string();
    let linked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    rtspsrc.connect_pad_added(move |_src, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let Some(caps) = pad.current_caps() else {
            return;
        };
        let Some(s) = caps.structure(0) else { return };
        if s.get::<&str>("media").ok() != Some("video") {
            return;
        }
        if linked.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return; // one video stream per camera
        }
        let encoding = s
            .get::<&str>("encoding-name")
            .unwrap_or("")
            .to_ascii_uppercase();
        let result = (|| -> Result<(), PipelineError> {
            let (codec, depay, parse, format, media) = match encoding.as_str() {
                "H264" => (
                    Codec::H264,
                    "rtph264depay",
                    "h264parse",
                    "avc",
                    "video/x-h264",
                ),
                "H265" => (
                    Codec::H265,
                    "rtph265depay",
                    "h265parse",
                    "hvc1",
                    "video/x-h265",
                ),
                other => {
                    return Err(build_err(
                        &cam,
                        format!("unsupported RTP encoding `{other}` (H.264/H.265 only)"),
                    ));
                }
            };
            let depay = make(&cam, depay)?;
            let parse = make(&cam, parse)?;
            let filter = make(&cam, "capsfilter")?;
            filter.set_property(
                "caps",
                gst::Caps::builder(media)
                    .field("stream-format", format)
                    .field("alignment", "au")
                    .build(),
            );
            pipeline
                .add_many([&depay, &parse, &filter])
                .map_err(|e| build_err(&cam, e))?;
            gst::Element::link_many([&depay, &parse, &filter]).map_err(|e| build_err(&cam, e))?;
            let mut all = vec![depay.clone(), parse, filter.clone()];
            match &tail {
                RtspTail::Main(outputs, detect) => all.extend(add_branches(
                    &cam, &pipeline, &filter, codec, outputs, *detect,
                )?),
                RtspTail::Detect(d, on_frame) => all.extend(add_detect_chain(
                    &cam,
                    &pipeline,
                    &filter,
                    codec,
                    *d,
                    on_frame.clone(),
                )?),
            }
            for e in all.iter().rev() {
                e.sync_state_with_parent().map_err(|e| build_err(&cam, e))?;
            }
            let sink = depay
                .static_pad("sink")
                .ok_or_else(|| build_err(&cam, "depayloader has no sink pad"))?;
            pad.link(&sink).map_err(|e| build_err(&cam, e))?;
            Ok(())
        })();
        if let Err(e) = result {
            tracing::error!(camera = %cam, error = %e, "cannot handle the camera's stream");
            let _ = pipeline.post_message(gst::message::Error::new(
                gst::StreamError::CodecNotFound,
                &e.to_string(),
            ));
        }
    });
}

/// Builds the RTSP pipeline; the parsing chain is added when the server announces its codec.
/// With a sub stream and detection, a second `rtspsrc` feeds the detection branch from the sub
/// stream and the main stream is only recorded; either source failing fails the pipeline (and
/// the camera reconnects both).
pub fn build_rtsp(
    camera: &str,
    src: &RtspSource,
    outputs: Outputs,
    detect: Option<DetectBranch>,
) -> Result<gst::Pipeline, PipelineError> {
    let pipeline = gst::Pipeline::with_name(&format!("camera-{camera}"));
    let main = rtsp_element(camera, src, &src.url, "main")?;
    pipeline.add(&main).map_err(|e| build_err(camera, e))?;
    let sub = match (&src.sub_url, detect, outputs.on_detect_frame.clone()) {
        (Some(url), Some(d), Some(on_frame)) => Some((url.clone(), d, on_frame)),
        _ => None,
    };
    match sub {
        Some((url, d, on_frame)) => {
            link_rtsp_video(camera, &pipeline, &main, RtspTail::Main(outputs, None));
            let sub = rtsp_element(camera, src, &url, "sub")?;
            pipeline.add(&sub).map_err(|e| build_err(camera, e))?;
            link_rtsp_video(camera, &pipeline, &sub, RtspTail::Detect(d, on_frame));
        }
        None => link_rtsp_video(camera, &pipeline, &main, RtspTail::Main(outputs, detect)),
    }
    Ok(pipeline)
}

/// The detection pipeline of an RTSP camera whose main stream the RTSP client records
/// ([`crate::rtsp_client`]): only the sub stream's `rtspsrc` → depayloader → parser →
/// detection chain.
pub fn build_rtsp_sub_detect(
    camera: &str,
    src: &RtspSource,
    sub_url: &str,
    detect: DetectBranch,
    on_frame: FrameSink,
) -> Result<gst::Pipeline, PipelineError> {
    let pipeline = gst::Pipeline::with_name(&format!("camera-{camera}-sub"));
    let sub = rtsp_element(camera, src, sub_url, "sub")?;
    pipeline.add(&sub).map_err(|e| build_err(camera, e))?;
    link_rtsp_video(camera, &pipeline, &sub, RtspTail::Detect(detect, on_frame));
    Ok(pipeline)
}

/// V4L2 source settings.
#[derive(Debug, Clone)]
pub struct V4l2Source {
    pub device: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<u32>,
    pub fourcc: Option<String>,
    /// Share the H.264 with the rtsp worker through a `shmsink` on this socket (the device
    /// can be opened by one process only). See [`add_restream_branch`].
    pub restream_socket: Option<std::path::PathBuf>,
}

/// Size of a restream branch's shared-memory area: a few seconds of a 1080p stream.
const RESTREAM_SHM_BYTES: u32 = 8 << 20;

/// Restream branch (for the rtsp worker): `upstream` (H.264 `avc`/`au`) → `tee` →
/// leaky `queue` → `h264parse config-interval=-1` → byte-stream/au → `shmsink` on `socket`.
/// Returns the tee, to which the caller links its own branches. The queue drops the oldest
/// units when no reader keeps up, so the recording is never held back; SPS/PPS go with every
/// keyframe so a reader can start at any keyframe. A stale socket file is removed first.
pub fn add_restream_branch(
    camera: &str,
    pipeline: &gst::Pipeline,
    upstream: &gst::Element,
    socket: &std::path::Path,
) -> Result<gst::Element, PipelineError> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(|e| build_err(camera, e))?;
    }
    let _ = std::fs::remove_file(socket);
    let tee = make(camera, "tee")?;
    let q = make(camera, "queue")?;
    q.set_property_from_str("leaky", "downstream");
    q.set_property("max-size-buffers", 60u32);
    q.set_property("max-size-bytes", 0u32);
    q.set_property("max-size-time", 0u64);
    let parse = make(camera, "h264parse")?;
    parse.set_property("config-interval", -1i32);
    let caps = make(camera, "capsfilter")?;
    caps.set_property(
        "caps",
        gst::Caps::builder("video/x-h264")
            .field("stream-format", "byte-stream")
            .field("alignment", "au")
            .build(),
    );
    let sink = make(camera, "shmsink")?;
    sink.set_property("socket-path", socket.to_string_lossy().as_ref());
    sink.set_property("wait-for-connection", false);
    sink.set_property("sync", false);
    sink.set_property("async", false);
    sink.set_property("shm-size", RESTREAM_SHM_BYTES);
    sink.set_property("perms", 0o600u32);
    let chain = [&tee, &q, &parse, &caps, &sink];
    pipeline.add_many(chain).map_err(|e| build_err(camera, e))?;
    upstream.link(&tee).map_err(|e| build_err(camera, e))?;
    gst::Element::link_many(chain).map_err(|e| build_err(camera, e))?;
    Ok(tee)
}

/// Builds a V4L2 pipeline: H.264 cameras are passed through, others are encoded once.
pub fn build_v4l2(
    camera: &str,
    src: &V4l2Source,
    outputs: Outputs,
    detect: Option<DetectBranch>,
) -> Result<gst::Pipeline, PipelineError> {
    let pipeline = gst::Pipeline::with_name(&format!("camera-{camera}"));
    let v4l2 = make(camera, "v4l2src")?;
    v4l2.set_property("device", &src.device);
    let fourcc = src.fourcc.as_deref().map(str::to_ascii_uppercase);
    let media = match fourcc.as_deref() {
        Some("H264") => "video/x-h264",
        Some("MJPG") => "image/jpeg",
        _ => "video/x-raw",
    };
    let mut caps = gst::Caps::builder(media);
    if let Some(f) = fourcc.as_deref().filter(|f| *f == "YUYV") {
        let _ = f;
        caps = caps.field("format", "YUY2");
    }
    if let (Some(w), Some(h)) = (src.width, src.height) {
        caps = caps.field("width", w as i32).field("height", h as i32);
    }
    if let Some(fps) = src.fps {
        caps = caps.field("framerate", gst::Fraction::new(fps as i32, 1));
    }
    let filter = make(camera, "capsfilter")?;
    filter.set_property("caps", caps.build());
    pipeline
        .add_many([&v4l2, &filter])
        .map_err(|e| build_err(camera, e))?;
    v4l2.link(&filter).map_err(|e| build_err(camera, e))?;
    let mut tail = filter;
    if media != "video/x-h264" {
        let key_int = src.fps.unwrap_or(30).max(1) * 2;
        let elems: Vec<gst::Element> = if media == "image/jpeg" {
            vec![make(camera, "jpegdec")?, make(camera, "videoconvert")?]
        } else {
            vec![make(camera, "videoconvert")?]
        };
        let enc = x264(camera, key_int)?;
        let mut chain = elems;
        chain.push(enc);
        for e in &chain {
            pipeline.add(e).map_err(|er| build_err(camera, er))?;
            tail.link(e).map_err(|er| build_err(camera, er))?;
            tail = e.clone();
        }
    }
    let (parse, avc) = h264_avc(camera)?;
    pipeline
        .add_many([&parse, &avc])
        .map_err(|e| build_err(camera, e))?;
    gst::Element::link_many([&tail, &parse, &avc]).map_err(|e| build_err(camera, e))?;
    let upstream = match &src.restream_socket {
        Some(socket) => add_restream_branch(camera, &pipeline, &avc, socket)?,
        None => avc,
    };
    add_branches(camera, &pipeline, &upstream, Codec::H264, &outputs, detect)?;
    Ok(pipeline)
}

/// HTTP MJPEG source settings.
#[derive(Debug, Clone)]
pub struct HttpMjpegSource {
    pub url: String,
    pub fps: u32,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Share the encoded H.264 with the rtsp worker (see [`add_restream_branch`]).
    pub restream_socket: Option<std::path::PathBuf>,
}

/// Builds an HTTP MJPEG pipeline: `souphttpsrc` → `multipartdemux` → JPEG decoder → a steady
/// frame rate → x264 (once) → the same branches as any camera. The demuxer's pad appears when
/// the first part arrives and is linked then.
pub fn build_http_mjpeg(
    camera: &str,
    src: &HttpMjpegSource,
    outputs: Outputs,
    detect: Option<DetectBranch>,
) -> Result<gst::Pipeline, PipelineError> {
    let pipeline = gst::Pipeline::with_name(&format!("camera-{camera}"));
    let http = make(camera, "souphttpsrc")?;
    http.set_property("location", &src.url);
    http.set_property("is-live", true);
    http.set_property("do-timestamp", true);
    // Reconnects are ours (backoff, state and reason); the stall watchdog covers silence.
    http.set_property("retries", 0i32);
    http.set_property("timeout", 5u32);
    if let Some(u) = &src.username {
        http.set_property("user-id", u);
    }
    if let Some(p) = &src.password {
        http.set_property("user-pw", p);
    }
    let demux = make(camera, "multipartdemux")?;
    demux.set_property("single-stream", true);
    let dec = make(camera, "jpegdec")?;
    let convert = make(camera, "videoconvert")?;
    let rate = make(camera, "videorate")?;
    let fps = src.fps.max(1);
    let raw = make(camera, "capsfilter")?;
    raw.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("framerate", gst::Fraction::new(fps as i32, 1))
            .build(),
    );
    let enc = x264(camera, fps * 2)?;
    let (parse, avc) = h264_avc(camera)?;
    let chain = [&dec, &convert, &rate, &raw, &enc, &parse, &avc];
    pipeline
        .add_many([&http, &demux])
        .map_err(|e| build_err(camera, e))?;
    pipeline.add_many(chain).map_err(|e| build_err(camera, e))?;
    http.link(&demux).map_err(|e| build_err(camera, e))?;
    gst::Element::link_many(chain).map_err(|e| build_err(camera, e))?;
    let upstream = match &src.restream_socket {
        Some(socket) => add_restream_branch(camera, &pipeline, &avc, socket)?,
        None => avc,
    };
    add_branches(camera, &pipeline, &upstream, Codec::H264, &outputs, detect)?;
    let weak = pipeline.downgrade();
    let cam = camera.to_string();
    demux.connect_pad_added(move |_demux, pad| {
        let Some(sink) = dec.static_pad("sink") else {
            return;
        };
        if sink.is_linked() {
            return; // one picture stream per camera
        }
        let caps = pad.current_caps();
        let media = caps
            .as_ref()
            .and_then(|c| c.structure(0))
            .map(|s| s.name().to_string())
            .unwrap_or_default();
        let result = if media == "image/jpeg" {
            pad.link(&sink).map(|_| ()).map_err(|e| e.to_string())
        } else {
            Err(format!(
                "camera {cam}: the HTTP stream carries `{media}`, not JPEG pictures"
            ))
        };
        if let Err(reason) = result
            && let Some(p) = weak.upgrade()
        {
            post_error(&p, &reason);
        }
    });
    Ok(pipeline)
}
