//! Restream of a camera the capture worker owns (V4L2): the capture side's own restream branch
//! (`watchpost_capture::pipeline::add_restream_branch`, the one `build_v4l2` inserts) behind an
//! encoded test picture, standing in for a V4L2 device this machine does not have, and the
//! rtsp worker's server reading it with `shmsrc`; ffprobe (a real client) reads the mount, and
//! three parallel clients share one shared-memory reader.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use gstreamer as gst;
use gstreamer::prelude::*;
use watchpost_rtsp::server::{ServerSettings, start};
use watchpost_rtsp::sources::Upstream;
use watchpost_runtime::Registry;

fn have(tool: &str) -> bool {
    Command::new(tool).arg("-version").output().is_ok()
}

/// What capture's `build_v4l2` produces for a raw camera, up to its `avc` caps filter.
fn capture_like_pipeline(socket: &std::path::Path) -> gst::Pipeline {
    let pipeline = gst::parse::launch(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=10/1 ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! h264parse ! video/x-h264,stream-format=avc,alignment=au ! identity name=avc",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let avc = pipeline.by_name("avc").unwrap();
    let tee =
        watchpost_capture::pipeline::add_restream_branch("usb", &pipeline, &avc, socket).unwrap();
    // The recording branch of the real pipeline.
    let rec = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .build()
        .unwrap();
    pipeline.add(&rec).unwrap();
    tee.link(&rec).unwrap();
    pipeline
}

fn ffprobe(url: &str) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "default=nw=1",
            url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn v4l2_camera_is_restreamed_from_capture_shared_memory() {
    if !have("ffprobe") {
        watchpost_runtime::testing::missing_peer("ffprobe is not installed");
        return;
    }
    gst::init().unwrap();
    for element in ["shmsink", "shmsrc", "x264enc"] {
        if gst::ElementFactory::find(element).is_none() {
            watchpost_runtime::testing::missing_peer(&format!(
                "GStreamer element {element} is missing"
            ));
            return;
        }
    }
    let dir = std::env::temp_dir().join(format!("wp-rtsp-shm-{}", std::process::id()));
    let socket = dir.join("run/restream/usb.sock");
    let capture = capture_like_pipeline(&socket);
    capture.set_state(gst::State::Playing).unwrap();

    let registry = Registry::new();
    let settings = ServerSettings {
        address: "127.0.0.1:0".parse().unwrap(),
        udp: false,
        max_clients_per_mount: 8,
        upstream_latency_ms: 0,
        session_timeout_s: 60,
        stalled_client_timeout_s: 10,
        upstream_timeout_ms: 5_000,
        users: Vec::new(),
        health: Default::default(),
    };
    let upstream = Upstream {
        camera: "usb".into(),
        name: "USB".into(),
        variant: "main",
        path: "/cameras/usb".into(),
        url: String::new(),
        username: None,
        password: None,
        tcp: true,
        width: 640,
        height: 360,
        fps: 10,
        shm_socket: Some(socket.clone()),
    };
    let server = start(&settings, &[upstream], None, &[], &registry).unwrap();
    let url = format!("rtsp://127.0.0.1:{}/cameras/usb", server.port);

    let info = ffprobe(&url);
    assert!(info.contains("codec_name=h264"), "{info}");
    assert!(
        info.contains("width=640") && info.contains("height=360"),
        "{info}"
    );

    // Three clients at once: one shared media, one reader of the shared memory.
    let before = prepared(&registry);
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                Command::new("ffmpeg")
                    .args(["-v", "error", "-rtsp_transport", "tcp", "-i", &url])
                    .args(["-t", "2", "-f", "null", "-"])
                    .output()
                    .unwrap()
            })
        })
        .collect();
    for c in clients {
        let out = c.join().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(prepared(&registry) - before, 1.0);

    drop(server);
    capture.set_state(gst::State::Null).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

fn prepared(registry: &Registry) -> f64 {
    registry
        .render()
        .lines()
        .find(|l| {
            l.starts_with("watchpost_rtsp_media_prepared_total{") && l.contains("/cameras/usb")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// `build_v4l2` (the capture worker's real V4L2 pipeline) puts the restream branch in when given
/// a socket, with and without the detection branch, and leaves it out otherwise. The pipeline
/// is only built, not started: there is no V4L2 device here.
#[test]
fn capture_v4l2_pipeline_has_the_restream_branch() {
    use std::sync::Arc;
    use watchpost_capture::pipeline::{DetectBranch, Outputs, V4l2Source, build_v4l2};
    gst::init().unwrap();
    for element in ["v4l2src", "shmsink", "x264enc", "jpegdec"] {
        if gst::ElementFactory::find(element).is_none() {
            watchpost_runtime::testing::missing_peer(&format!(
                "GStreamer element {element} is missing"
            ));
            return;
        }
    }
    let socket = std::env::temp_dir().join(format!("wp-rtsp-v4l2-{}/usb.sock", std::process::id()));
    let source = |restream: bool| V4l2Source {
        device: "/dev/video-none".into(),
        width: Some(1280),
        height: Some(720),
        fps: Some(15),
        fourcc: Some("MJPG".into()),
        restream_socket: restream.then(|| socket.clone()),
    };
    let outputs = |detect: bool| Outputs {
        on_access_unit: Arc::new(|_, _| {}),
        on_detect_frame: detect
            .then(|| Arc::new(|_: u64, _: &[u8]| {}) as watchpost_capture::pipeline::FrameSink),
    };
    let shm_sockets = |p: &gst::Pipeline| -> Vec<String> {
        p.iterate_recurse()
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.factory().is_some_and(|f| f.name() == "shmsink"))
            .map(|e| {
                e.property::<Option<String>>("socket-path")
                    .unwrap_or_default()
            })
            .collect()
    };
    let detect = DetectBranch {
        fps: 2,
        width: 320,
        height: 180,
    };
    for with_detect in [false, true] {
        let p = build_v4l2(
            "usb",
            &source(true),
            outputs(with_detect),
            with_detect.then_some(detect),
        )
        .unwrap();
        assert_eq!(
            shm_sockets(&p),
            [socket.to_string_lossy().into_owned()],
            "detect: {with_detect}"
        );
        let p = build_v4l2(
            "usb",
            &source(false),
            outputs(with_detect),
            with_detect.then_some(detect),
        )
        .unwrap();
        assert!(shm_sockets(&p).is_empty());
    }
    let _ = std::fs::remove_dir_all(socket.parent().unwrap());
}
