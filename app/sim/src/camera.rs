//! `watchpost-sim camera`: a visible IP camera and, optionally, a radiometric thermal camera.
//!
//! - Visible: an H.264 RTSP stream (the capture crate's test camera, `videotestsrc` + x264
//!   served by gst-rtsp-server) at `rtsp://127.0.0.1:<port><path>`; with `--streams N` the
//!   mounts are `<path>0` .. `<path>N-1`, each its own encoder. Clients of one mount share it.
//! - Thermal (`--thermal-port`): raw radiometric frames over TCP in the framing of
//!   `watchpost_thermal::wire`, showing `watchpost_thermal::synthetic::Scene::default()` — a
//!   22.10 °C background, a 20×20 block at (100, 40) at 65.35 °C and a 16×16 block at (20, 80)
//!   at 5.10 °C, 160×120, exact in both raw formats. With `--hot-period-s N` the hot block is
//!   on for N seconds and off (background temperature) for N seconds, so temperature rules fire
//!   and clear.
//!
//! On start it prints one line per service (`rtsp <url>`, `thermal tcp://<addr>`) and then
//! serves until killed.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use watchpost_camera_testsrc::{TestStream, serve};
use watchpost_thermal::RawFormat;
use watchpost_thermal::synthetic::Scene;
use watchpost_thermal::wire::{self, WireFrame};

/// Raw radiometric format of the simulated thermal camera.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ThermalFormatArg {
    Centikelvin16,
    SplitFrame,
}

#[derive(Debug, clap::Args)]
pub struct CameraArgs {
    /// RTSP port on 127.0.0.1 (0 picks a free one; 8554 is the appliance's own RTSP server).
    #[arg(long, default_value_t = 8560)]
    port: u16,
    /// Mount path of the stream.
    #[arg(long, default_value = "/cam")]
    path: String,
    #[arg(long, default_value_t = 640)]
    width: u32,
    #[arg(long, default_value_t = 360)]
    height: u32,
    #[arg(long, default_value_t = 15)]
    fps: u32,
    /// Keyframe interval in frames.
    #[arg(long, default_value_t = 15)]
    key_int: u32,
    #[arg(long, default_value_t = 800)]
    bitrate_kbps: u32,
    /// `videotestsrc` pattern.
    #[arg(long, default_value = "ball")]
    pattern: String,
    /// Pixels the picture scrolls per frame (motion for the encoder; 0 = still).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    horizontal_speed: i32,
    /// Number of independent streams (mounts `<path>0..`); 1 serves `<path>` itself.
    #[arg(long, default_value_t = 1)]
    streams: u32,
    /// Serve no RTSP stream (thermal only).
    #[arg(long)]
    no_rtsp: bool,
    /// Encode H.265 (x265) instead of H.264.
    #[arg(long)]
    h265: bool,
    /// B-frames between reference frames (H.264 only; cameras rarely send them, and the
    /// capture worker records such a stream through GStreamer's parser).
    #[arg(long, default_value_t = 0)]
    bframes: u32,
    /// TCP port on 127.0.0.1 for the radiometric thermal camera (0 picks a free one).
    #[arg(long)]
    thermal_port: Option<u16>,
    #[arg(long, value_enum, default_value_t = ThermalFormatArg::Centikelvin16)]
    thermal_format: ThermalFormatArg,
    #[arg(long, default_value_t = 9)]
    thermal_fps: u32,
    /// Hot block on for N s, off for N s; 0 keeps it on.
    #[arg(long, default_value_t = 0)]
    hot_period_s: u64,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

struct Thermal {
    scene: Scene,
    format: RawFormat,
    fps: u32,
    period: Duration,
    started: Instant,
}

impl Thermal {
    fn hot_on(&self) -> bool {
        if self.period.is_zero() {
            return true;
        }
        let n = self.started.elapsed().as_millis() / self.period.as_millis().max(1);
        n.is_multiple_of(2)
    }

    /// Streams frames to one client until it goes away.
    fn feed(&self, mut peer: TcpStream) {
        let _ = peer.set_nodelay(true);
        let interval = Duration::from_secs(1) / self.fps.max(1);
        let mut next = Instant::now();
        for sequence in 0u32.. {
            let Ok((width, height, payload)) = self.scene.raw(self.format, self.hot_on()) else {
                return;
            };
            let frame = WireFrame {
                format: self.format,
                width: width as u16,
                height: height as u16,
                sequence,
                captured_us: now_us(),
                payload,
            };
            if peer.write_all(&wire::encode(&frame)).is_err() {
                return;
            }
            next += interval;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else {
                next = now;
            }
        }
    }
}

pub fn run(args: CameraArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    let _server = if args.no_rtsp {
        None
    } else {
        let base = TestStream {
            width: args.width,
            height: args.height,
            fps: args.fps,
            key_int: args.key_int,
            bitrate_kbps: args.bitrate_kbps,
            path: args.path.clone(),
            pattern: args.pattern.clone(),
            horizontal_speed: args.horizontal_speed,
            h265: args.h265,
            bframes: args.bframes,
        };
        let streams: Vec<TestStream> = if args.streams <= 1 {
            vec![base]
        } else {
            (0..args.streams)
                .map(|i| TestStream {
                    path: format!("{}{i}", args.path),
                    ..base.clone()
                })
                .collect()
        };
        let server = serve(args.port, &streams)
            .map_err(anyhow::Error::msg)
            .context("starting the RTSP server")?;
        for s in &streams {
            writeln!(out, "rtsp {}", server.url(&s.path))?;
        }
        Some(server)
    };
    if let Some(port) = args.thermal_port {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .with_context(|| format!("binding the thermal camera on port {port}"))?;
        writeln!(out, "thermal tcp://{}", listener.local_addr()?)?;
        let thermal = Arc::new(Thermal {
            scene: Scene::default(),
            format: match args.thermal_format {
                ThermalFormatArg::Centikelvin16 => RawFormat::CentiKelvin16,
                ThermalFormatArg::SplitFrame => RawFormat::SplitFrame,
            },
            fps: args.thermal_fps,
            period: Duration::from_secs(args.hot_period_s),
            started: Instant::now(),
        });
        std::thread::spawn(move || {
            for peer in listener.incoming().flatten() {
                let t = thermal.clone();
                std::thread::spawn(move || t.feed(peer));
            }
        });
    }
    out.flush()?;
    tracing::info!("simulated camera serving; stop it with a signal");
    loop {
        std::thread::park();
    }
}
