//! The RTU slave on a serial line (the SysBus through an RS485 transceiver).
//!
//! The loop reads whatever the line delivers, stamps it with the arrival time and feeds the
//! sans-IO receiver; a timer fires at the inter-frame silence so a partial frame is resolved
//! even when nothing follows it. A request for us is answered at once (the turnaround is the
//! time to handle it and write the reply); other units, broadcasts, garbage and bad CRCs get
//! silence. If the line fails (adapter unplugged, pty closed), it is reopened with backoff; the
//! rest of the gateway keeps running meanwhile.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::{SerialPortBuilderExt, SerialStream};
use tokio_util::sync::CancellationToken;
use watchpost_board::{Rs485Config, Rs485Direction};
use watchpost_config::fieldbus::{Parity, SerialConfig};
use watchpost_modbus::rtu::{self, silence_gap};
use watchpost_modbus::{Direction, RtuEvent, RtuReceiver, UnitSet};
use watchpost_runtime::logging::LogLimiter;

use crate::error::FieldbusError;
use crate::gateway::{FrameOutcome, Gateway};
use crate::metrics::Transport;

/// The inter-frame silence configured for `cfg`.
pub fn gap_of(cfg: &SerialConfig) -> Duration {
    cfg.inter_frame_gap_us
        .map(|us| Duration::from_micros(u64::from(us)))
        .unwrap_or_else(|| silence_gap(cfg.baud.get()))
}

/// Opens the serial line with the configured framing.
pub fn open(cfg: &SerialConfig) -> Result<SerialStream, FieldbusError> {
    let data_bits = match cfg.data_bits {
        5 => tokio_serial::DataBits::Five,
        6 => tokio_serial::DataBits::Six,
        7 => tokio_serial::DataBits::Seven,
        _ => tokio_serial::DataBits::Eight,
    };
    let parity = match cfg.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Even => tokio_serial::Parity::Even,
        Parity::Odd => tokio_serial::Parity::Odd,
    };
    let stop_bits = if cfg.stop_bits == 2 {
        tokio_serial::StopBits::Two
    } else {
        tokio_serial::StopBits::One
    };
    let path = cfg.port.to_string_lossy().into_owned();
    let port = tokio_serial::new(&path, cfg.baud.get())
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .flow_control(tokio_serial::FlowControl::None)
        .open_native_async()
        .map_err(|source| FieldbusError::OpenSerial {
            port: cfg.port.clone(),
            source,
        })?;
    Ok(port)
}

/// How the transceiver of a line is switched, as the board describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectionPlan {
    /// No switching (USB adapters with automatic direction, pseudo-terminals).
    None,
    /// The UART's kernel RS485 mode with these settings.
    Kernel(Rs485Config),
    /// A GPIO line drives DE/RE.
    Gpio {
        chip: std::path::PathBuf,
        line: u32,
        active_low: bool,
    },
}

/// Chooses the direction control of `port`: none unless the line is configured as RS485; then
/// what the board description says for that device, and the kernel RS485 mode with default
/// settings when the board does not describe it.
pub fn plan_for(
    rs485: bool,
    port: &Path,
    board: Option<&watchpost_board::BoardDescription>,
) -> DirectionPlan {
    if !rs485 {
        return DirectionPlan::None;
    }
    let same = |a: &Path, b: &Path| {
        a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
    };
    let spec = board.and_then(|b| {
        b.serial
            .iter()
            .find(|s| same(&s.device, port))
            .and_then(|s| s.rs485.clone())
    });
    match spec {
        Some(watchpost_board::description::Rs485Spec::Kernel {
            rts_on_send,
            delay_rts_before_send_ms,
            delay_rts_after_send_ms,
        }) => DirectionPlan::Kernel(Rs485Config {
            rts_on_send,
            delay_rts_before_send_ms,
            delay_rts_after_send_ms,
            ..Rs485Config::default()
        }),
        Some(watchpost_board::description::Rs485Spec::Gpio {
            chip,
            line,
            active_low,
        }) => DirectionPlan::Gpio {
            chip: watchpost_board::description::GpioLine {
                chip,
                line,
                active_low,
            }
            .chip_path(),
            line,
            active_low,
        },
        None => DirectionPlan::Kernel(Rs485Config::default()),
    }
}

/// The board description named by `[system] board` (`auto`: detected), if there is one.
pub fn board_description(name: &str) -> Option<watchpost_board::BoardDescription> {
    match watchpost_board::detect(Some(name)) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::info!(error = %e, "no board description; RS485 lines use the kernel RS485 mode with default settings");
            None
        }
    }
}

/// The transceiver direction hooks for a line, following [`plan_for`].
pub fn direction_for(
    cfg: &SerialConfig,
    board: Option<&watchpost_board::BoardDescription>,
) -> Result<Box<dyn Rs485Direction>, FieldbusError> {
    match plan_for(cfg.rs485, &cfg.port, board) {
        DirectionPlan::None => Ok(Box::new(NoDirection)),
        DirectionPlan::Kernel(k) => enable_kernel_rs485(&cfg.port, &k),
        DirectionPlan::Gpio {
            chip,
            line,
            active_low,
        } => gpio_direction(&cfg.port, &chip, line, active_low),
    }
}

fn enable_kernel_rs485(
    port: &Path,
    settings: &Rs485Config,
) -> Result<Box<dyn Rs485Direction>, FieldbusError> {
    // The RS485 setting belongs to the UART, not to the file descriptor: set it through a
    // descriptor of our own and keep the returned handle for its (no-op) hooks.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(port)
        .map_err(|source| FieldbusError::OpenSerialIo {
            port: port.to_path_buf(),
            source,
        })?;
    let name = port.to_string_lossy().into_owned();
    let k = watchpost_board::KernelRs485::enable(&name, &file, settings).map_err(|source| {
        FieldbusError::Rs485 {
            port: port.to_path_buf(),
            source,
        }
    })?;
    Ok(Box::new(k))
}

fn gpio_direction(
    port: &Path,
    chip: &Path,
    line: u32,
    active_low: bool,
) -> Result<Box<dyn Rs485Direction>, FieldbusError> {
    use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
    let err = |source: linux_embedded_hal::gpio_cdev::Error| FieldbusError::Rs485Gpio {
        chip: chip.to_path_buf(),
        line,
        source,
    };
    let mut c = Chip::new(chip).map_err(err)?;
    let mut flags = LineRequestFlags::OUTPUT;
    if active_low {
        flags |= LineRequestFlags::ACTIVE_LOW;
    }
    let handle = c
        .get_line(line)
        .map_err(err)?
        .request(flags, 0, "watchpost-rs485")
        .map_err(err)?;
    let pin = linux_embedded_hal::CdevPin::new(handle).map_err(err)?;
    let name = port.to_string_lossy().into_owned();
    let inner =
        watchpost_board::GpioRs485::new(&name, pin).map_err(|source| FieldbusError::Rs485 {
            port: port.to_path_buf(),
            source,
        })?;
    // A descriptor of our own on the same tty to wait for the output to drain before the
    // transceiver is switched back to receive.
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(port)
        .map_err(|source| FieldbusError::OpenSerialIo {
            port: port.to_path_buf(),
            source,
        })?;
    Ok(Box::new(DrainThenSwitch { inner, tty }))
}

/// GPIO direction control: after a frame, wait until the UART has sent its last bit
/// (`tcdrain`, at most one frame time: 70 ms for 256 bytes at 38400 baud) before releasing
/// the line.
struct DrainThenSwitch<D> {
    inner: D,
    tty: std::fs::File,
}

impl<D: Rs485Direction> Rs485Direction for DrainThenSwitch<D> {
    fn begin_transmit(&mut self) -> Result<(), watchpost_board::Rs485Error> {
        self.inner.begin_transmit()
    }
    fn end_transmit(&mut self) -> Result<(), watchpost_board::Rs485Error> {
        if let Err(e) = nix::sys::termios::tcdrain(&self.tty) {
            tracing::debug!(error = %e, "tcdrain before releasing the RS485 transmitter failed");
        }
        self.inner.end_transmit()
    }
}

/// No direction switching (USB adapters with automatic direction, pseudo-terminals).
#[derive(Debug)]
struct NoDirection;

impl Rs485Direction for NoDirection {
    fn begin_transmit(&mut self) -> Result<(), watchpost_board::Rs485Error> {
        Ok(())
    }
    fn end_transmit(&mut self) -> Result<(), watchpost_board::Rs485Error> {
        Ok(())
    }
}

/// Serves the line until `shutdown`. `port` is the already opened line (opened at start so
/// that a missing device is reported before readiness).
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    mut port: SerialStream,
    cfg: SerialConfig,
    board: Option<watchpost_board::BoardDescription>,
    units: UnitSet,
    mut direction: Box<dyn Rs485Direction>,
    gateway: Arc<Gateway>,
    shutdown: CancellationToken,
) {
    let limiter = LogLimiter::new(5, Duration::from_secs(60));
    let mut backoff = Duration::from_millis(200);
    loop {
        match serve_line(
            &mut port,
            &cfg,
            units,
            direction.as_mut(),
            &gateway,
            &shutdown,
            &limiter,
        )
        .await
        {
            Ok(()) => return,
            Err(e) => {
                if limiter.check("line").is_some() {
                    tracing::warn!(port = %cfg.port.display(), error = %e, retry_ms = backoff.as_millis() as u64, "SysBus serial line failed; reopening");
                }
            }
        }
        // Reopen with backoff until it works or we are told to stop.
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
            match open(&cfg) {
                Ok(p) => {
                    port = p;
                    gateway.metrics.serial_reopens.inc();
                    if let DirectionPlan::Kernel(k) = plan_for(cfg.rs485, &cfg.port, board.as_ref())
                    {
                        match enable_kernel_rs485(&cfg.port, &k) {
                            Ok(d) => direction = d,
                            Err(e) => {
                                tracing::warn!(error = %e, "re-enabling RS485 mode failed");
                            }
                        }
                    }
                    tracing::info!(port = %cfg.port.display(), "SysBus serial line reopened");
                    backoff = Duration::from_millis(200);
                    break;
                }
                Err(e) => {
                    if limiter.check("reopen").is_some() {
                        tracing::warn!(error = %e, "reopening the SysBus serial line failed");
                    }
                }
            }
        }
    }
}

async fn serve_line(
    port: &mut SerialStream,
    cfg: &SerialConfig,
    units: UnitSet,
    direction: &mut dyn Rs485Direction,
    gateway: &Gateway,
    shutdown: &CancellationToken,
    limiter: &LogLimiter,
) -> Result<(), FieldbusError> {
    let mut rx = RtuReceiver::new(Direction::Requests, units, gap_of(cfg));
    let counters = gateway.metrics.transport(Transport::Rtu);
    let mut buf = [0u8; 512];
    let mut pdu = Vec::with_capacity(256);
    let mut out = Vec::with_capacity(260);
    loop {
        let deadline = rx.silence_deadline();
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = port.read(&mut buf) => {
                let n = r.map_err(|source| FieldbusError::SerialIo { port: cfg.port.clone(), source })?;
                if n == 0 {
                    return Err(FieldbusError::SerialClosed { port: cfg.port.clone() });
                }
                rx.push(&buf[..n], Instant::now());
            }
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            }, if deadline.is_some() => {
                rx.handle_timeout(Instant::now());
            }
        }
        while let Some(ev) = rx.poll_event() {
            match ev {
                RtuEvent::Frame(adu) => {
                    pdu.clear();
                    if gateway.handle(Transport::Rtu, adu.unit, &adu.pdu, &mut pdu)
                        != FrameOutcome::Answered
                    {
                        continue;
                    }
                    out.clear();
                    rtu::encode_with(adu.unit, &mut out, |o| o.extend_from_slice(&pdu));
                    if let Err(e) = direction.begin_transmit()
                        && limiter.check("rs485").is_some()
                    {
                        tracing::warn!(error = %e, "RS485 transmit switch failed");
                    }
                    port.write_all(&out)
                        .await
                        .map_err(|source| FieldbusError::SerialIo {
                            port: cfg.port.clone(),
                            source,
                        })?;
                    port.flush()
                        .await
                        .map_err(|source| FieldbusError::SerialIo {
                            port: cfg.port.clone(),
                            source,
                        })?;
                    if let Err(e) = direction.end_transmit()
                        && limiter.check("rs485").is_some()
                    {
                        tracing::warn!(error = %e, "RS485 receive switch failed");
                    }
                }
                RtuEvent::Dropped { reason, bytes } => {
                    counters.dropped(reason, bytes);
                    if limiter.check("rtu-drop").is_some() {
                        tracing::debug!(reason = reason.as_str(), bytes, "SysBus bytes dropped");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(text: &str) -> watchpost_board::BoardDescription {
        watchpost_board::BoardDescription::parse("t.toml", text).unwrap()
    }

    #[test]
    fn direction_follows_the_board() {
        let port = Path::new("/dev/ttyS1");
        assert_eq!(plan_for(false, port, None), DirectionPlan::None);
        assert_eq!(
            plan_for(true, port, None),
            DirectionPlan::Kernel(Rs485Config::default())
        );
        let kernel = board(
            "name = \"k\"\ntitle = \"K\"\ncompatible = []\n[[serial]]\nname = \"rs485-0\"\ndevice = \"/dev/ttyS1\"\n[serial.rs485]\nmode = \"kernel\"\ndelay_rts_after_send_ms = 2\n",
        );
        match plan_for(true, port, Some(&kernel)) {
            DirectionPlan::Kernel(k) => assert_eq!(k.delay_rts_after_send_ms, 2),
            other => panic!("{other:?}"),
        }
        let gpio = board(
            "name = \"g\"\ntitle = \"G\"\ncompatible = []\n[[serial]]\nname = \"rs485-0\"\ndevice = \"/dev/ttyS1\"\n[serial.rs485]\nmode = \"gpio\"\nchip = \"gpiochip0\"\nline = 18\n",
        );
        assert!(matches!(
            plan_for(true, port, Some(&gpio)),
            DirectionPlan::Gpio {
                line: 18,
                active_low: false,
                ..
            }
        ));
        // A port the board does not describe: kernel mode with defaults.
        assert_eq!(
            plan_for(true, Path::new("/dev/ttyUSB0"), Some(&gpio)),
            DirectionPlan::Kernel(Rs485Config::default())
        );
    }
}
