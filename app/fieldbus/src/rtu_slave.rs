//! The RTU slave on a serial line (the SysBus through an RS485 transceiver).
//!
//! The loop reads whatever the line delivers, stamps it with the arrival time and feeds the
//! sans-IO receiver; a timer fires at the inter-frame silence so a partial frame is resolved
//! even when nothing follows it. A request for us is answered at once (the turnaround is the
//! time to handle it and write the reply); other units, broadcasts, garbage and bad CRCs get
//! silence. If the line cannot be opened (adapter missing) or fails (adapter unplugged, pty
//! closed), the worker reports it as a fault and opens it again with backoff; the rest of the
//! gateway keeps running meanwhile.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_serial::{SerialPortBuilderExt, SerialStream};
use tokio_util::sync::CancellationToken;
use watchpost_board::{Rs485Config, Rs485Direction};
use watchpost_config::fieldbus::{Parity, SerialConfig};
use watchpost_modbus::rtu::{self, silence_gap};
use watchpost_modbus::{Direction, RtuEvent, RtuReceiver, UnitSet};
use watchpost_runtime::WorkerCtx;
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
    /// The UART's kernel RS485 mode with these settings. `from_board`: the board description
    /// names this port as a kernel-mode RS485 UART (a refusal is then an error); otherwise the
    /// mode is only tried, and a port that does not support it is used without switching.
    Kernel {
        settings: Rs485Config,
        from_board: bool,
    },
    /// A GPIO line drives DE/RE.
    Gpio {
        chip: std::path::PathBuf,
        line: u32,
        active_low: bool,
    },
}

/// Chooses the direction control of `port`: none unless the line is configured as RS485; then
/// what the board description says for that device, and an attempt at the kernel RS485 mode
/// with default settings when the board does not describe it.
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
        }) => DirectionPlan::Kernel {
            settings: Rs485Config {
                rts_on_send,
                delay_rts_before_send_ms,
                delay_rts_after_send_ms,
                ..Rs485Config::default()
            },
            from_board: true,
        },
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
        None => DirectionPlan::Kernel {
            settings: Rs485Config::default(),
            from_board: false,
        },
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
        DirectionPlan::Kernel {
            settings,
            from_board,
        } => kernel_direction(&cfg.port, &settings, from_board),
        DirectionPlan::Gpio {
            chip,
            line,
            active_low,
        } => gpio_direction(&cfg.port, &chip, line, active_low),
    }
}

/// Whether an errno from `TIOCSRS485` means "this port has no kernel RS485 mode" (a
/// pseudo-terminal, a USB CDC adapter, a UART driver without RS485 support) rather than a
/// passing failure. `ENOSYS` is what qemu-user answers for the untranslated ioctl.
fn rs485_unsupported(errno: nix::errno::Errno) -> bool {
    use nix::errno::Errno;
    matches!(errno, Errno::ENOTTY | Errno::ENOSYS | Errno::EINVAL)
}

/// The kernel RS485 mode for `port`. When the port does not support it: an error naming the
/// board description if that asked for it (`from_board`), else a warning and no switching
/// (adapters with automatic direction work that way; a pty is what the tests use).
fn kernel_direction(
    port: &Path,
    settings: &Rs485Config,
    from_board: bool,
) -> Result<Box<dyn Rs485Direction>, FieldbusError> {
    match enable_kernel_rs485(port, settings) {
        Ok(d) => Ok(d),
        Err(FieldbusError::Rs485 {
            port,
            source: watchpost_board::Rs485Error::EnableKernelMode { source: errno, .. },
        }) if rs485_unsupported(errno) => {
            if from_board {
                Err(FieldbusError::Rs485Unsupported { port, errno })
            } else {
                tracing::warn!(
                    port = %port.display(),
                    error = %errno,
                    "the serial line has no kernel RS485 mode (not a UART with RS485 support: a USB adapter or a pseudo-terminal) and the board description does not describe it; serving it without direction switching. Set rs485 = false for adapters with automatic direction, or describe the port in the board description"
                );
                Ok(Box::new(NoDirection))
            }
        }
        Err(e) => Err(e),
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
        // tcdrain blocks for the frame's time on the wire (7 ms for a zone block at 38400
        // baud): on the worker's multi-threaded runtime, let the other tasks move off this
        // thread meanwhile.
        let tty = &self.tty;
        let drain = || nix::sys::termios::tcdrain(tty);
        let drained = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(drain),
            _ => drain(),
        };
        if let Err(e) = drained {
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

/// An opened line with its transceiver switching set up.
pub struct OpenLine {
    port: SerialStream,
    direction: Box<dyn Rs485Direction>,
}

impl std::fmt::Debug for OpenLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenLine").finish_non_exhaustive()
    }
}

/// Opens the line and sets up its direction control as the board describes it.
pub fn open_line(
    cfg: &SerialConfig,
    board: Option<&watchpost_board::BoardDescription>,
) -> Result<OpenLine, FieldbusError> {
    let port = open(cfg)?;
    let direction = direction_for(cfg, board)?;
    Ok(OpenLine { port, direction })
}

/// The subject under which a line that cannot be served is reported as a fault.
pub fn fault_subject(cfg: &SerialConfig) -> String {
    format!("neasmart serial {}", cfg.port.display())
}

const REOPEN_FIRST: Duration = Duration::from_millis(200);
const REOPEN_MAX: Duration = Duration::from_secs(10);

/// Serves the line until `ctx`'s shutdown. `first` is the outcome of opening it at start (so a
/// line that opens is open before readiness). A line that cannot be opened or fails later is
/// reported as a fault of the worker (`/health` degraded with the reason) and opened again
/// with backoff (200 ms doubling to 10 s) until it works; everything else in the worker keeps
/// serving meanwhile.
pub async fn serve(
    first: Result<OpenLine, FieldbusError>,
    cfg: SerialConfig,
    board: Option<watchpost_board::BoardDescription>,
    units: UnitSet,
    gateway: Arc<Gateway>,
    ctx: Arc<WorkerCtx>,
) {
    let shutdown = ctx.shutdown().clone();
    let subject = fault_subject(&cfg);
    let port_label = cfg.port.to_string_lossy().into_owned();
    let line_up = ctx.metrics().gauge(
        "watchpost_fieldbus_serial_line_up",
        "1 while the RTU serial line is open and served, 0 while it is being reopened.",
        &[("port", &port_label)],
    );
    let open_failures = ctx.metrics().counter(
        "watchpost_fieldbus_serial_open_failures_total",
        "Failed attempts to open the RTU serial line (missing adapter, busy or refused port).",
        &[("port", &port_label)],
    );
    let limiter = LogLimiter::new(5, Duration::from_secs(60));
    let mut backoff = REOPEN_FIRST;
    let mut next = first;
    let mut served_before = false;
    loop {
        match next {
            Ok(mut line) => {
                ctx.clear_fault(&subject);
                line_up.set(1.0);
                if served_before {
                    gateway.metrics.serial_reopens.inc();
                    tracing::info!(port = %cfg.port.display(), "SysBus serial line reopened");
                }
                served_before = true;
                backoff = REOPEN_FIRST;
                let served = serve_line(
                    &mut line.port,
                    &cfg,
                    units,
                    line.direction.as_mut(),
                    &gateway,
                    &shutdown,
                    &limiter,
                )
                .await;
                line_up.set(0.0);
                match served {
                    Ok(()) => return,
                    Err(e) => {
                        ctx.set_fault(&subject, e.to_string());
                        if limiter.check("line").is_some() {
                            tracing::warn!(port = %cfg.port.display(), error = %e, retry_ms = backoff.as_millis() as u64, "SysBus serial line failed; reopening");
                        }
                    }
                }
                // The port and its direction control (a requested GPIO line) are released
                // before the line is opened again.
                drop(line);
            }
            Err(e) => {
                open_failures.inc();
                ctx.set_fault(&subject, e.to_string());
                if limiter.check("open").is_some() {
                    tracing::warn!(error = %e, retry_ms = backoff.as_millis() as u64, "the SysBus serial line cannot be opened; Modbus TCP and the API keep serving, retrying");
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(REOPEN_MAX);
        next = open_line(&cfg, board.as_ref());
    }
}

/// Serves one opened line until `shutdown` (`Ok`) or a line error. Generic over the port so
/// the tests drive it through an in-memory pipe.
async fn serve_line<P: AsyncRead + AsyncWrite + Unpin>(
    port: &mut P,
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
    use std::os::fd::AsRawFd;
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::task::{Context, Poll};

    use watchpost_board::{GpioRs485, PinLog, SimPin};
    use watchpost_modbus::Request;
    use watchpost_neasmart::{Model, ModelConfig};
    use watchpost_runtime::Registry;

    use super::*;
    use crate::metrics::GatewayMetrics;

    fn board(text: &str) -> watchpost_board::BoardDescription {
        watchpost_board::BoardDescription::parse("t.toml", text).unwrap()
    }

    fn kernel_board(device: &Path) -> watchpost_board::BoardDescription {
        board(&format!(
            "name = \"k\"\ntitle = \"K\"\ncompatible = []\n[[serial]]\nname = \"rs485-0\"\ndevice = \"{}\"\n[serial.rs485]\nmode = \"kernel\"\ndelay_rts_after_send_ms = 2\n",
            device.display()
        ))
    }

    fn serial(port: &Path, rs485: bool) -> SerialConfig {
        SerialConfig {
            port: port.to_path_buf(),
            baud: Default::default(),
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            rs485,
            inter_frame_gap_us: None,
        }
    }

    #[test]
    fn direction_follows_the_board() {
        let port = Path::new("/dev/ttyS1");
        assert_eq!(plan_for(false, port, None), DirectionPlan::None);
        let fallback = DirectionPlan::Kernel {
            settings: Rs485Config::default(),
            from_board: false,
        };
        assert_eq!(plan_for(true, port, None), fallback);
        match plan_for(true, port, Some(&kernel_board(port))) {
            DirectionPlan::Kernel {
                settings,
                from_board: true,
            } => assert_eq!(settings.delay_rts_after_send_ms, 2),
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
        // A port the board does not describe: the kernel mode is only tried.
        assert_eq!(
            plan_for(true, Path::new("/dev/ttyUSB0"), Some(&gpio)),
            fallback
        );
    }

    /// A pseudo-terminal and the path of its slave end.
    fn pty() -> (nix::pty::OpenptyResult, std::path::PathBuf) {
        let pty = nix::pty::openpty(None, None).unwrap();
        let path = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())).unwrap();
        (pty, path)
    }

    #[test]
    fn a_port_without_kernel_rs485_mode() {
        let (_pty, path) = pty();
        // Not RS485: nothing is tried.
        assert!(direction_for(&serial(&path, false), None).is_ok());
        // RS485, the board does not describe the port: the pty refuses TIOCSRS485 (ENOTTY),
        // which is a warning, and the line is served without switching.
        assert!(direction_for(&serial(&path, true), None).is_ok());
        // The board says this port is a kernel-mode RS485 UART: a configuration error that
        // names the port and does not restart the worker in a loop.
        let Err(e) = direction_for(&serial(&path, true), Some(&kernel_board(&path))) else {
            panic!("a pty accepted TIOCSRS485");
        };
        assert!(
            matches!(&e, FieldbusError::Rs485Unsupported { port, errno }
                if port == &path && rs485_unsupported(*errno)),
            "{e:?}"
        );
        assert_eq!(e.exit_code(), watchpost_runtime::ExitCode::Config);
        let text = e.to_string();
        assert!(
            text.contains(&path.display().to_string()) && text.contains("board description"),
            "{text}"
        );
        // A device that cannot be opened at all stays "unavailable" (restarted with backoff).
        let missing = serial(Path::new("/nonexistent/ttyRS485"), true);
        let Err(e) = direction_for(&missing, None) else {
            panic!("opened a missing device");
        };
        assert_eq!(e.exit_code(), watchpost_runtime::ExitCode::Unavailable);
    }

    /// What happened on the line, in order: the transceiver switched, bytes written.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Ev {
        Transmit,
        Receive,
        Wrote(Vec<u8>),
        Flushed,
    }

    type Events = Arc<Mutex<Vec<Ev>>>;

    /// The GPIO direction driver of the board crate on a simulated pin, recording its calls.
    struct Recording {
        inner: GpioRs485<SimPin>,
        events: Events,
    }

    impl Rs485Direction for Recording {
        fn begin_transmit(&mut self) -> Result<(), watchpost_board::Rs485Error> {
            self.events.lock().unwrap().push(Ev::Transmit);
            self.inner.begin_transmit()
        }
        fn end_transmit(&mut self) -> Result<(), watchpost_board::Rs485Error> {
            self.events.lock().unwrap().push(Ev::Receive);
            self.inner.end_transmit()
        }
    }

    /// The slave's end of the line: an in-memory pipe that records writes.
    struct Line {
        io: tokio::io::DuplexStream,
        events: Events,
    }

    impl AsyncRead for Line {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Line {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let r = Pin::new(&mut self.io).poll_write(cx, buf);
            if let Poll::Ready(Ok(n)) = &r {
                self.events
                    .lock()
                    .unwrap()
                    .push(Ev::Wrote(buf[..*n].to_vec()));
            }
            r
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            let r = Pin::new(&mut self.io).poll_flush(cx);
            if r.is_ready() {
                self.events.lock().unwrap().push(Ev::Flushed);
            }
            r
        }
        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }

    #[tokio::test]
    async fn a_missing_line_is_a_fault_retried_until_it_appears() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("ttyUSB0");
        let cfg = serial(&link, false);
        let ctx = Arc::new(WorkerCtx::standalone("fieldbus", CancellationToken::new()));
        let gateway = Arc::new(Gateway::new(
            Model::new(ModelConfig::default()),
            [240u8].into_iter().collect(),
            GatewayMetrics::new(ctx.metrics()),
        ));
        let first = open_line(&cfg, None);
        assert!(matches!(first, Err(FieldbusError::OpenSerial { .. })));
        let task = tokio::spawn(serve(
            first,
            cfg.clone(),
            None,
            [240u8].into_iter().collect(),
            gateway,
            ctx.clone(),
        ));
        let faults = || ctx.faults();
        let wait = |want_fault: bool| async move {
            for _ in 0..1000 {
                let f = faults();
                if f.is_empty() != want_fault {
                    return f;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("fault set never became {want_fault}: {:?}", faults());
        };
        let f = wait(true).await;
        assert_eq!(f[0].subject, fault_subject(&cfg));
        assert!(f[0].reason.contains("ttyUSB0"), "{}", f[0].reason);
        // The adapter is plugged in: the line opens on a retry and the fault ends.
        let (_pty, path) = pty();
        std::os::unix::fs::symlink(&path, &link).unwrap();
        wait(false).await;
        let text = ctx.metrics().render();
        assert!(
            text.contains("watchpost_fieldbus_serial_line_up{port=") && text.contains("} 1"),
            "{text}"
        );
        ctx.shutdown().cancel();
        task.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gpio_direction_waits_for_the_output_to_drain() {
        let (pty, path) = pty();
        let pins = PinLog::new();
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut d = DrainThenSwitch {
            inner: GpioRs485::new("sim-rs485", pins.pin("de")).unwrap(),
            tty,
        };
        for _ in 0..2 {
            d.begin_transmit().unwrap();
            d.end_transmit().unwrap();
        }
        let levels: Vec<bool> = pins.changes_of("de").iter().map(|c| c.0).collect();
        assert_eq!(levels, vec![true, false, true, false]);
        drop(pty);
    }

    #[tokio::test]
    async fn the_transceiver_drives_the_line_only_around_answers() {
        let events: Events = Arc::default();
        let pins = PinLog::new();
        let mut direction = Recording {
            inner: GpioRs485::new("sim-rs485", pins.pin("de")).unwrap(),
            events: events.clone(),
        };
        let registry = Registry::new();
        let gateway = Gateway::new(
            Model::new(ModelConfig::default()),
            [240u8, 241].into_iter().collect(),
            GatewayMetrics::new(&registry),
        );
        let (ours, mut base) = tokio::io::duplex(1024);
        let mut line = Line {
            io: ours,
            events: events.clone(),
        };
        let cfg = serial(Path::new("sim"), true);
        let units: UnitSet = [240u8, 241].into_iter().collect();
        let shutdown = CancellationToken::new();
        let limiter = LogLimiter::new(5, Duration::from_secs(60));
        let serving = serve_line(
            &mut line,
            &cfg,
            units,
            &mut direction,
            &gateway,
            &shutdown,
            &limiter,
        );
        let talking = async {
            let silence = || tokio::time::sleep(Duration::from_millis(20));
            // Silence for another unit, a broadcast and garbage: the transmitter stays off.
            let write = Request::WriteSingleRegister {
                address: 7,
                value: 0x0C65,
            };
            base.write_all(&rtu::encode_request(16, &write))
                .await
                .unwrap();
            silence().await;
            base.write_all(&rtu::encode_request(0, &write))
                .await
                .unwrap();
            silence().await;
            base.write_all(&[0x55, 0xAA, 0x01]).await.unwrap();
            silence().await;
            // A read for us: answered between "transmit" and "receive".
            let read = Request::ReadHoldingRegisters {
                address: 7,
                count: 1,
            };
            base.write_all(&rtu::encode_request(240, &read))
                .await
                .unwrap();
            let expected = [240u8, 3, 2, 0x0C, 0x65];
            let mut answer = [0u8; 7];
            tokio::time::timeout(Duration::from_secs(5), base.read_exact(&mut answer))
                .await
                .expect("no answer")
                .unwrap();
            assert_eq!(&answer[..5], &expected);
            silence().await;
            shutdown.cancel();
            answer
        };
        let (served, answer) = tokio::join!(serving, talking);
        served.unwrap();
        let mut written = Vec::new();
        let got = events.lock().unwrap().clone();
        // Exactly one transmission, and every byte of it inside the transmit window.
        assert_eq!(got.first(), Some(&Ev::Transmit), "{got:?}");
        assert_eq!(got.last(), Some(&Ev::Receive), "{got:?}");
        assert_eq!(
            got.iter().filter(|e| **e == Ev::Transmit).count(),
            1,
            "{got:?}"
        );
        assert!(
            got[got.len() - 2] == Ev::Flushed,
            "switched back before the flush: {got:?}"
        );
        for e in &got {
            if let Ev::Wrote(b) = e {
                written.extend_from_slice(b);
            }
        }
        assert_eq!(written, answer);
        // The simulated DE pin went high once and back low.
        let levels: Vec<bool> = pins.changes_of("de").iter().map(|c| c.0).collect();
        assert_eq!(levels, vec![true, false]);
        // The broadcast was applied, silently.
        assert_eq!(gateway.model().register(7), 0x0C65);
    }
}
