//! `watchpost-sim`: plays the peripherals that cannot exist on a development machine (YoLink
//! cloud and local hub, a Neasmart base station, cameras), following each vendor's documented
//! protocol. `make demo` and the system tests use it.
//!
//! Each simulated device is a subcommand in its own module; add one with a variant of
//! [`Device`] and one arm in `main`.

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

mod yolink;

mod camera;

mod neasmart;

#[derive(Debug, Parser)]
#[command(
    name = "watchpost-sim",
    version,
    about = "Simulated peripherals for Watchpost"
)]
struct Cli {
    #[command(subcommand)]
    device: Device,
}

#[derive(Debug, Subcommand)]
enum Device {
    /// Print which simulated devices this build has.
    List,
    /// The YoLink cloud or a YoLink Local Hub: token, HTTP API, reports to an MQTT broker.
    Yolink(yolink::YolinkArgs),
    /// An H.264 RTSP camera and a radiometric thermal camera with known temperatures.
    Camera(camera::CameraArgs),
    /// A Rehau Neasmart 2.0 base station polling the gateway over Modbus TCP.
    Neasmart(neasmart::NeasmartArgs),
}

fn main() -> anyhow::Result<()> {
    watchpost_runtime::logging::init(watchpost_runtime::logging::LogFormat::Text, "info", "sim");
    let cli = Cli::parse();
    match cli.device {
        Device::List => {
            println!("simulated devices: (none yet)");
            Ok(())
        }
        Device::Yolink(args) => yolink::run(args),
        Device::Camera(args) => camera::run(args),
        Device::Neasmart(args) => neasmart::run(args),
    }
}
