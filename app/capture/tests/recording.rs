//! Recording against a real RTSP peer (the crate's test camera, gst-rtsp-server + x264), checked
//! with ffprobe: segments, durations against the index, SIGKILL mid-recording, a source outage,
//! retention with a small budget, the detection ring, and USB capture when a device exists.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use watchpost_capture::index::{RecordingIndex, SegmentRecord, SegmentState, StoreIndex};

const FRAGMENT_MS: u64 = 500;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn testsrc(port: u16) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_watchpost-capture-testsrc"))
        .args([
            "--port",
            &port.to_string(),
            "--key-int",
            "15",
            "--fps",
            "15",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening"), "testsrc said {line:?}");
    Proc(child)
}

fn write_config(dir: &Path, url: &str, extra: &str) -> PathBuf {
    let text = format!(
        r#"
[system]
data_dir = "{data}"
[broker]
enabled = false
[bus]
external = "127.0.0.1:9"
[capture]
enabled = true
[capture.recording]
segment_s = 2
fragment_ms = {FRAGMENT_MS}
[capture.storage]
check_interval_s = 1
min_free_percent = 0.0
{extra}
[[capture.cameras]]
id = "cam1"
source = {{ type = "rtsp", url = "{url}" }}
reconnect = {{ initial_ms = 200, max_ms = 1000, stall_timeout_ms = 1500 }}
"#,
        data = dir.join("data").display()
    );
    let path = dir.join("watchpost.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn standalone(config: &Path, log: &Path) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Proc(
        Command::new(env!("CARGO_BIN_EXE_watchpost-capture-standalone"))
            .args(["--config", config.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stderr(log.try_clone().unwrap())
            .stdout(log)
            .spawn()
            .unwrap(),
    )
}

fn mp4_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "mp4") {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn index(data: &Path) -> Vec<SegmentRecord> {
    let store = watchpost_store::Store::open(data.join("capture.redb")).unwrap();
    let mut v = StoreIndex::new(store).list().unwrap();
    v.sort_by_key(|r| r.start_us);
    v
}

#[derive(Debug)]
struct Probe {
    codec: String,
    width: u64,
    height: u64,
    duration_s: f64,
}

fn ffprobe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_packets:format=duration",
        ])
        .args(["-of", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["streams"][0];
    Probe {
        codec: s["codec_name"].as_str().unwrap_or("").into(),
        width: s["width"].as_u64().unwrap_or(0),
        height: s["height"].as_u64().unwrap_or(0),
        duration_s: v["format"]["duration"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0.0),
    }
}

fn check_against_index(root: &Path, r: &SegmentRecord) {
    check_codec_against_index(root, r, "h264");
}

fn check_codec_against_index(root: &Path, r: &SegmentRecord, codec: &str) {
    let p = ffprobe(&root.join(&r.path));
    assert_eq!(
        (p.codec.as_str(), p.width, p.height),
        (codec, 320, 240),
        "{r:?}"
    );
    let index_s = r.duration_ms() as f64 / 1000.0;
    assert!(
        (p.duration_s - index_s).abs() <= FRAGMENT_MS as f64 / 1000.0,
        "{}: ffprobe {} s, index {} s",
        r.path,
        p.duration_s,
        index_s
    );
    let size = std::fs::metadata(root.join(&r.path)).unwrap().len();
    assert_eq!(size, r.bytes, "{}: file size and index disagree", r.path);
}

fn gap_s() -> u64 {
    std::env::var("WATCHPOST_CAPTURE_GAP_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

#[test]
fn records_survives_sigkill_and_reconnects_after_an_outage() {
    if !have("ffprobe") {
        watchpost_runtime::testing::missing_peer(
            "ffprobe is not installed (scripts/install-deps.sh installs ffmpeg)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The source comes back on the same address after the outage: its port is held throughout.
    let held = watchpost_runtime::testing::HeldPort::new().unwrap();
    let port = held.port();
    let mut src = Some(testsrc(port));
    let url = format!("rtsp://127.0.0.1:{port}/cam");
    let config = write_config(dir.path(), &url, "");
    let data = dir.path().join("data");
    let root = data.join("recordings");
    let log = dir.path().join("capture.log");

    // 1. Record until three files exist, then SIGKILL the worker mid-segment.
    let mut worker = standalone(&config, &log);
    wait_until("three segments", Duration::from_secs(40), || {
        mp4_files(&root).len() >= 3
    });
    std::thread::sleep(Duration::from_millis(1200)); // into the third segment
    worker.0.kill().unwrap(); // SIGKILL
    worker.0.wait().unwrap();
    let before = index(&data);
    let closed: Vec<_> = before
        .iter()
        .filter(|r| r.state == SegmentState::Closed)
        .collect();
    let open: Vec<_> = before
        .iter()
        .filter(|r| r.state == SegmentState::Open)
        .collect();
    assert!(closed.len() >= 2, "{before:?}");
    assert_eq!(open.len(), 1, "{before:?}");
    for r in &closed {
        check_against_index(&root, r);
    }
    // The interrupted file is playable up to its last whole fragment even before repair.
    let torn = ffprobe(&root.join(&open[0].path));
    assert_eq!(torn.codec, "h264");

    // 2. Restart: the open segment is repaired and recording resumes.
    let mut worker = standalone(&config, &log);
    let files_before = mp4_files(&root).len();
    wait_until("recording to resume", Duration::from_secs(30), || {
        mp4_files(&root).len() > files_before
    });

    // 3. The source goes away for a while and comes back.
    let outage_start = Instant::now();
    drop(src.take());
    std::thread::sleep(Duration::from_secs(gap_s()));
    let files_at_return = mp4_files(&root).len();
    src = Some(testsrc(port));
    wait_until(
        "recording after the outage",
        Duration::from_secs(30),
        || mp4_files(&root).len() > files_at_return,
    );
    let outage = outage_start.elapsed();
    std::thread::sleep(Duration::from_millis(2500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    worker.0.wait().unwrap();
    drop(src);

    let after = index(&data);
    assert!(
        after.iter().all(|r| r.state != SegmentState::Open),
        "{after:?}"
    );
    let repaired = after
        .iter()
        .find(|r| r.start_us == open[0].start_us)
        .unwrap();
    assert_eq!(repaired.state, SegmentState::Recovered);
    for r in &after {
        check_against_index(&root, r);
    }
    assert_eq!(
        mp4_files(&root).len(),
        after.len(),
        "files and index disagree"
    );
    // The gap shows in the index: one hole of about the outage's length.
    let max_gap_us = after
        .windows(2)
        .map(|w| w[1].start_us.saturating_sub(w[0].end_us))
        .max()
        .unwrap();
    assert!(
        max_gap_us >= (gap_s() - 1) * 1_000_000
            && max_gap_us <= outage.as_micros() as u64 + 5_000_000,
        "largest gap {max_gap_us} µs for an outage of {outage:?}"
    );
    // Status went offline, then online again.
    let text = std::fs::read_to_string(&log).unwrap();
    // A camera that is only recorded is read by the RTSP client, not by GStreamer's chain.
    assert!(
        text.contains("recording ingest playing (RTSP client)"),
        "the recording-only camera did not go through the RTSP client"
    );
    let states: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("camera state"))
        .filter_map(|l| ["Offline", "Online"].into_iter().find(|s| l.contains(s)))
        .collect();
    let offline = states
        .iter()
        .position(|s| *s == "Offline")
        .expect("offline state logged");
    assert!(
        states[offline..].contains(&"Online"),
        "no online state after the outage: {states:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_newest_within_budget_and_fills_the_frame_ring() {
    if !have("ffprobe") {
        watchpost_runtime::testing::missing_peer("ffprobe is not installed");
        return;
    }
    let server = watchpost_capture::testsrc::serve(0, &[Default::default()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let budget = 120_000u64;
    let extra = format!("max_bytes = {budget}\nheadroom_bytes = 30000");
    let path = write_config(dir.path(), &server.url("/cam"), &extra);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("detect = { enabled = true, fps = 5, width = 300, height = 300 }\n");
    text = text.replace("segment_s = 2", "segment_s = 1");
    let frames_dir = dir.path().join("frames");
    text = text.replace(
        "[capture]\nenabled = true",
        &format!(
            "[capture]\nenabled = true\nframes_dir = \"{}\"",
            frames_dir.display()
        ),
    );
    std::fs::write(&path, &text).unwrap();
    let config = watchpost_config::load(&path).unwrap();
    let token = watchpost_runtime::CancellationToken::new();
    let ctx = std::sync::Arc::new(watchpost_runtime::WorkerCtx::standalone(
        "capture",
        token.clone(),
    ));
    let worker = tokio::spawn(watchpost_capture::run(config, ctx.clone()));
    let data = dir.path().join("data");
    let root = data.join("recordings");
    let metric = |name: &str| -> f64 {
        ctx.metrics()
            .render()
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric("watchpost_capture_recorded_bytes_total") < 3.0 * budget as f64 {
        assert!(Instant::now() < deadline, "recording too slow");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let one retention pass run after the last segment closes.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let reader = watchpost_frame_ring::RingReader::open(&frames_dir.join("cam1.ring")).unwrap();
    let frame = reader
        .read_latest(0)
        .expect("a detection frame in the ring");
    assert_eq!(frame.data.len(), 300 * 300 * 3);
    token.cancel();
    worker.await.unwrap().unwrap();
    drop(server);
    let records = index(&data);
    let total: u64 = records.iter().map(|r| r.bytes).sum();
    let largest = records.iter().map(|r| r.bytes).max().unwrap_or(0);
    assert!(
        total <= budget + 2 * largest,
        "{total} bytes kept for a budget of {budget}"
    );
    // Oldest went first: what is left is one continuous stretch of the newest.
    for w in records.windows(2) {
        assert!(
            w[1].start_us.saturating_sub(w[0].end_us) < 1_500_000,
            "hole inside the kept recordings: {w:?}"
        );
    }
    assert_eq!(
        mp4_files(&root).len(),
        records.len(),
        "files and index disagree"
    );
    assert!(metric("watchpost_capture_recorded_bytes_total") as u64 > total);
}

#[test]
fn usb_capture_when_a_device_is_present() {
    let Some(dev) = (0..8)
        .map(|i| PathBuf::from(format!("/dev/video{i}")))
        .find(|p| p.exists())
    else {
        println!("SKIP: no /dev/video* device on this machine; USB capture was not exercised");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[system]
data_dir = "{}"
[broker]
enabled = false
[bus]
external = "127.0.0.1:9"
[capture]
enabled = true
[[capture.cameras]]
id = "usb"
source = {{ type = "v4l2", device = "{}" }}
"#,
        dir.path().join("data").display(),
        dev.display()
    );
    let cfg = dir.path().join("w.toml");
    std::fs::write(&cfg, text).unwrap();
    let log = dir.path().join("log");
    let mut w = standalone(&cfg, &log);
    let root = dir.path().join("data/recordings");
    wait_until("a USB segment", Duration::from_secs(30), || {
        !mp4_files(&root).is_empty()
    });
    w.0.kill().unwrap();
}

/// A radiometric V4L2 camera (Lepton/PureThermal Y16 or a split-frame USB thermal camera):
/// only a device known to be one can be used, so it is named in `WATCHPOST_THERMAL_DEVICE`
/// (and `WATCHPOST_THERMAL_FORMAT`, `centikelvin16` by default).
#[test]
fn thermal_v4l2_when_a_device_is_named() {
    let Some(dev) = std::env::var_os("WATCHPOST_THERMAL_DEVICE").map(PathBuf::from) else {
        println!(
            "SKIP: WATCHPOST_THERMAL_DEVICE is not set; no radiometric V4L2 camera was exercised"
        );
        return;
    };
    if !dev.exists() {
        println!("SKIP: {} does not exist", dev.display());
        return;
    }
    let format =
        std::env::var("WATCHPOST_THERMAL_FORMAT").unwrap_or_else(|_| "centikelvin16".into());
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[system]
data_dir = "{data}"
[broker]
enabled = false
[bus]
external = "127.0.0.1:9"
[capture]
enabled = true
frames_dir = "{frames}"
[[capture.cameras]]
id = "heat"
kind = "thermal"
source = {{ type = "v4l2", device = "{dev}" }}
thermal = {{ format = "{format}" }}
"#,
        data = dir.path().join("data").display(),
        frames = dir.path().join("frames").display(),
        dev = dev.display(),
    );
    let cfg = dir.path().join("w.toml");
    std::fs::write(&cfg, text).unwrap();
    let mut w = standalone(&cfg, &dir.path().join("log"));
    let root = dir.path().join("data/recordings");
    wait_until("a thermal segment", Duration::from_secs(30), || {
        !mp4_files(&root).is_empty()
    });
    assert!(dir.path().join("frames/heat.view.ring").exists());
    w.0.kill().unwrap();
}

/// With a `sub_url`, detection decodes the sub stream (here solid red, 160×120) and the main
/// stream (solid blue, 320×240) is only recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_decodes_the_sub_stream_when_there_is_one() {
    use watchpost_capture::testsrc::TestStream;
    let server = watchpost_capture::testsrc::serve(
        0,
        &[
            TestStream {
                pattern: "blue".into(),
                ..Default::default()
            },
            TestStream {
                width: 160,
                height: 120,
                fps: 5,
                key_int: 5,
                bitrate_kbps: 100,
                path: "/sub".into(),
                pattern: "red".into(),
                ..Default::default()
            },
        ],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let frames_dir = dir.path().join("frames");
    let path = write_config(dir.path(), &server.url("/cam"), "");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            &format!("url = \"{}\" }}", server.url("/cam")),
            &format!(
                "url = \"{}\", sub_url = \"{}\" }}",
                server.url("/cam"),
                server.url("/sub")
            ),
        )
        .replace(
            "[capture]\nenabled = true",
            &format!(
                "[capture]\nenabled = true\nframes_dir = \"{}\"",
                frames_dir.display()
            ),
        )
        + "detect = { enabled = true, fps = 5, width = 64, height = 48 }\n";
    assert!(text.contains("sub_url"), "{text}");
    std::fs::write(&path, &text).unwrap();
    let config = watchpost_config::load(&path).unwrap();
    let token = watchpost_runtime::CancellationToken::new();
    let ctx = std::sync::Arc::new(watchpost_runtime::WorkerCtx::standalone(
        "capture",
        token.clone(),
    ));
    let worker = tokio::spawn(watchpost_capture::run(config, ctx.clone()));
    let ring = frames_dir.join("cam1.ring");
    let deadline = Instant::now() + Duration::from_secs(30);
    let frame = loop {
        assert!(Instant::now() < deadline, "no detection frame in the ring");
        if let Ok(reader) = watchpost_frame_ring::RingReader::open(&ring)
            && let Some(f) = reader.read_latest(0)
        {
            break f;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(frame.data.len(), 64 * 48 * 3);
    let n = (64 * 48) as u64;
    let mean = |c: usize| {
        frame
            .data
            .iter()
            .skip(c)
            .step_by(3)
            .map(|&v| u64::from(v))
            .sum::<u64>()
            / n
    };
    let (r, g, b) = (mean(0), mean(1), mean(2));
    assert!(
        r > 180 && g < 80 && b < 80,
        "the ring shows rgb({r}, {g}, {b}), not the red sub stream"
    );
    // The main stream is what is recorded.
    let data = dir.path().join("data");
    let deadline = Instant::now() + Duration::from_secs(30);
    // (The store is the worker's while it runs: wait for a second file, then read the index.)
    while mp4_files(&data.join("recordings")).len() < 2 {
        assert!(Instant::now() < deadline, "no second segment");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    token.cancel();
    worker.await.unwrap().unwrap();
    drop(server);
    let seg = index(&data)
        .into_iter()
        .find(|s| s.state == SegmentState::Closed)
        .unwrap();
    assert_eq!((seg.width, seg.height), (320, 240));
    check_against_index(&data.join("recordings"), &seg);
}

/// H.265 cameras are passed through too (`hvc1` sample entry), and ffprobe reads the segments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h265_is_recorded_without_decoding() {
    if !have("ffprobe") {
        watchpost_runtime::testing::missing_peer("ffprobe is not installed");
        return;
    }
    if gstreamer::init().is_err() || gstreamer::ElementFactory::find("x265enc").is_none() {
        watchpost_runtime::testing::missing_peer(
            "GStreamer's x265enc (gstreamer1.0-plugins-bad) is not installed",
        );
        return;
    }
    let server = watchpost_capture::testsrc::serve(
        0,
        &[watchpost_capture::testsrc::TestStream {
            h265: true,
            ..Default::default()
        }],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &server.url("/cam"), "");
    let config = watchpost_config::load(&path).unwrap();
    let token = watchpost_runtime::CancellationToken::new();
    let ctx = std::sync::Arc::new(watchpost_runtime::WorkerCtx::standalone(
        "capture",
        token.clone(),
    ));
    let worker = tokio::spawn(watchpost_capture::run(config, ctx.clone()));
    let data = dir.path().join("data");
    let root = data.join("recordings");
    let deadline = Instant::now() + Duration::from_secs(40);
    while mp4_files(&root).len() < 3 {
        assert!(Instant::now() < deadline, "no H.265 segments");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    token.cancel();
    worker.await.unwrap().unwrap();
    drop(server);
    let records = index(&data);
    assert!(records.len() >= 3, "{records:?}");
    for r in &records {
        assert_eq!(r.state, SegmentState::Closed, "{r:?}");
        assert_eq!(r.codec, "hevc", "{r:?}");
        check_codec_against_index(&root, r, "hevc");
    }
}

/// A camera that sends B-frames: RTP timestamps give no decode order, so the RTSP client hands
/// the camera over to GStreamer's chain (whose parser derives it) and the recording is whole.
#[test]
fn b_frames_fall_back_to_the_gstreamer_chain() {
    if !have("ffprobe") {
        watchpost_runtime::testing::missing_peer("ffprobe is not installed");
        return;
    }
    let server = watchpost_capture::testsrc::serve(
        0,
        &[watchpost_capture::testsrc::TestStream {
            bframes: 2,
            ..Default::default()
        }],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.url("/cam"), "");
    // x264 with B-frames and look-ahead takes longer than 1.5 s to its first frame.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("stall_timeout_ms = 1500", "stall_timeout_ms = 8000"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let root = data.join("recordings");
    let log = dir.path().join("capture.log");
    let mut worker = standalone(&config, &log);
    let deadline = Instant::now() + Duration::from_secs(40);
    while mp4_files(&root).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "no segments after the fallback:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    worker.0.kill().unwrap();
    let _ = worker.0.wait();
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("B-frames"),
        "no B-frame fallback logged:\n{text}"
    );
    assert!(
        text.contains("recording through GStreamer's RTSP chain"),
        "{text}"
    );
    let closed: Vec<_> = index(&data)
        .into_iter()
        .filter(|s| s.state == SegmentState::Closed)
        .collect();
    assert!(closed.len() >= 2, "{closed:?}");
    for r in &closed {
        check_codec_against_index(&root, r, "h264");
    }
}
