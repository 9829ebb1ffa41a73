//! A stand-in camera for tests and benchmarks: serves one H.264 RTSP stream of a moving test
//! pattern (gstreamer-rtsp-server, x264 with a short keyframe interval) on 127.0.0.1.
//!
//! Usage: `watchpost-rtsp-testsrc [--port N] [--width W] [--height H] [--fps F] [--path /x]
//! [--keyframe-interval FRAMES]` (default: one keyframe per second, `--fps` frames).
//! Prints `port=<bound port>` once listening, then `client` for every RTSP connection and
//! `media` for every pipeline it starts, one per line, so a test can count upstream reads.
//! Stops when stdin closes (or on SIGTERM/SIGINT, whose default action ends it).
#![forbid(unsafe_code)]

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = arg(&args, "--port", 0);
    let width: u32 = arg(&args, "--width", 640);
    let height: u32 = arg(&args, "--height", 360);
    let fps: u32 = arg(&args, "--fps", 10);
    let keyframe_interval: u32 = arg(&args, "--keyframe-interval", fps).max(1);
    let path: String = arg(&args, "--path", "/stream".to_string());
    // `ball` (default) compresses to little; `snow` (noise) runs at the 2 Mbit/s cap.
    let pattern: String = arg(&args, "--pattern", "ball".to_string());
    if !pattern
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        eprintln!("testsrc: --pattern must be a videotestsrc pattern name");
        return std::process::ExitCode::from(64);
    }
    if let Err(e) = gst::init() {
        eprintln!("testsrc: GStreamer: {e}");
        return std::process::ExitCode::from(69);
    }
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let say = {
        let out = out.clone();
        move |line: &str| {
            let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(o, "{line}");
            let _ = o.flush();
        }
    };
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(&port.to_string());
    let Some(mounts) = server.mount_points() else {
        eprintln!("testsrc: no mount points");
        return std::process::ExitCode::from(1);
    };
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(&format!(
        "( videotestsrc is-live=true pattern={pattern} ! video/x-raw,width={width},height={height},framerate={fps}/1 ! \
         x264enc tune=zerolatency speed-preset=ultrafast key-int-max={keyframe_interval} bitrate=2000 ! \
         h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    ));
    factory.set_shared(true);
    let s1 = say.clone();
    factory.connect_media_configure(move |_, _| s1("media"));
    mounts.add_factory(&path, factory);
    let s2 = say.clone();
    server.connect_client_connected(move |_, _| s2("client"));
    let main_loop = glib::MainLoop::new(None, false);
    if server.attach(None).is_err() {
        eprintln!("testsrc: cannot listen on 127.0.0.1:{port}");
        return std::process::ExitCode::from(69);
    }
    say(&format!("port={}", server.bound_port()));
    // Quit when stdin closes (the test process went away).
    let ml = main_loop.clone();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            if line.is_err() {
                break;
            }
        }
        ml.quit();
    });
    main_loop.run();
    std::process::ExitCode::SUCCESS
}
