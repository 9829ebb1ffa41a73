//! A test RTSP camera: `videotestsrc` encoded with x264 (small keyframe interval) served by
//! `gst-rtsp-server`. Used by the simulator (`watchpost-sim camera`), the capture crate's tests
//! (feature `test-support`, re-exported as `watchpost_capture::testsrc`) and the benchmark.
//!
//! Every mount is a shared media: several clients of one mount share one encoder, so a
//! benchmark can give many recorders the same stream for the price of one encode. The server
//! runs its own GLib main loop on a thread and stops when the [`TestServer`] is dropped.
#![forbid(unsafe_code)]

use gstreamer as gst;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

/// What the test camera sends.
#[derive(Debug, Clone)]
pub struct TestStream {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Keyframe interval in frames.
    pub key_int: u32,
    pub bitrate_kbps: u32,
    /// Mount path, e.g. `/cam`.
    pub path: String,
    /// `videotestsrc` pattern (`ball`, `smpte`, `snow`, ...).
    pub pattern: String,
    /// Pixels the picture scrolls per frame (0: still), so the encoder has motion to code.
    pub horizontal_speed: i32,
    /// H.265 (x265) instead of H.264 (x264).
    pub h265: bool,
    /// B-frames between reference frames (H.264 only; 0: none, as most cameras send).
    pub bframes: u32,
}

impl Default for TestStream {
    fn default() -> Self {
        Self {
            width: 320,
            height: 240,
            fps: 15,
            key_int: 15,
            bitrate_kbps: 300,
            path: "/cam".into(),
            pattern: "ball".into(),
            horizontal_speed: 0,
            h265: false,
            bframes: 0,
        }
    }
}

/// A running server; it serves until dropped with its main loop.
#[derive(Debug)]
pub struct TestServer {
    pub port: u16,
    main_loop: gst::glib::MainLoop,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// The URL of stream `path`.
    pub fn url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}{}", self.port, path)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The launch line of a stream.
pub fn launch_line(s: &TestStream) -> String {
    // The pattern goes into a launch line: keep it to a plain word.
    let pattern: String = s
        .pattern
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let (enc, pay) = if s.h265 {
        ("x265enc", "rtph265pay")
    } else {
        ("x264enc", "rtph264pay")
    };
    // `tune=zerolatency` turns B-frames off; a stream with B-frames goes without it.
    let tuning = if s.bframes > 0 && !s.h265 {
        // (x264's ultrafast preset has no B-frames either, nor has the baseline profile the
        // payloader would otherwise negotiate.)
        format!(
            "bframes={} b-adapt=false speed-preset=veryfast ! video/x-h264,profile=main",
            s.bframes
        )
    } else {
        "tune=zerolatency speed-preset=ultrafast".to_string()
    };
    format!(
        "( videotestsrc is-live=true pattern={} horizontal-speed={} ! video/x-raw,width={},height={},framerate={}/1 \
         ! {enc} key-int-max={} bitrate={} {tuning} \
         ! {pay} name=pay0 pt=96 config-interval=-1 )",
        pattern, s.horizontal_speed, s.width, s.height, s.fps, s.key_int, s.bitrate_kbps
    )
}

/// Serves `streams` on 127.0.0.1:`port` (0 picks a free port). Returns once listening.
pub fn serve(port: u16, streams: &[TestStream]) -> Result<TestServer, String> {
    gst::init().map_err(|e| e.to_string())?;
    let (tx, rx) = std::sync::mpsc::channel();
    let streams = streams.to_vec();
    let thread = std::thread::spawn(move || {
        let ctx = gst::glib::MainContext::new();
        let main_loop = gst::glib::MainLoop::new(Some(&ctx), false);
        let result = (|| -> Result<u16, String> {
            let _guard = ctx.acquire().map_err(|e| e.to_string())?;
            let server = rtsp::RTSPServer::new();
            server.set_address("127.0.0.1");
            server.set_service(&port.to_string());
            let mounts = server.mount_points().ok_or("no mount points")?;
            for s in &streams {
                let factory = rtsp::RTSPMediaFactory::new();
                factory.set_launch(&launch_line(s));
                factory.set_shared(true);
                mounts.add_factory(&s.path, factory);
            }
            server.attach(Some(&ctx)).map_err(|e| e.to_string())?;
            let bound = server.bound_port();
            std::mem::forget(server); // lives as long as the loop
            Ok(bound as u16)
        })();
        let ok = result.is_ok();
        let _ = tx.send(result.map(|p| (p, main_loop.clone())));
        if ok {
            main_loop.run();
        }
    });
    let (port, main_loop) = rx.recv().map_err(|e| e.to_string())??;
    Ok(TestServer {
        port,
        main_loop,
        thread: Some(thread),
    })
}
