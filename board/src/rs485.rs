//! RS485 transmit direction control.
//!
//! A half-duplex RS485 transceiver must be switched to "drive" before a frame is sent
//! and back to "receive" once its last bit has left the UART. Boards do this in one of
//! two ways, both behind the [`Rs485Direction`] trait so the fieldbus worker does not
//! care which:
//! - [`KernelRs485`]: the UART driver toggles RTS itself once the kernel RS485 mode is
//!   enabled with the `TIOCSRS485` ioctl (i.MX, Rockchip, the Raspberry Pi's PL011 with
//!   an RTS-wired transceiver). The hooks are then no-ops.
//! - [`GpioRs485`]: a GPIO line drives the transceiver's DE/RE pins; the caller raises
//!   it before writing and lowers it after `tcdrain` returned.
//!
//! Pseudo-terminals refuse the RS485 ioctls (`ENOTTY`), so the kernel path is only
//! exercised for its error on this machine; on hardware it is checked on the board.

use std::os::fd::{AsFd, AsRawFd};

use embedded_hal::digital::OutputPin;
use nix::errno::Errno;

/// Kernel RS485 mode settings (`struct serial_rs485`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rs485Config {
    /// RTS level while sending: `true` = high (most transceivers: DE active high).
    pub rts_on_send: bool,
    /// Delay between raising RTS and the first bit, in milliseconds.
    pub delay_rts_before_send_ms: u32,
    /// Delay between the last bit and dropping RTS, in milliseconds.
    pub delay_rts_after_send_ms: u32,
    /// Keep the receiver enabled while sending (echo of own frames).
    pub rx_during_tx: bool,
}

impl Default for Rs485Config {
    fn default() -> Self {
        Rs485Config {
            rts_on_send: true,
            delay_rts_before_send_ms: 0,
            delay_rts_after_send_ms: 0,
            rx_during_tx: false,
        }
    }
}

/// Direction switching failed.
#[derive(Debug, thiserror::Error)]
pub enum Rs485Error {
    /// `TIOCSRS485` was refused (not a UART with RS485 support, e.g. a pty or USB CDC).
    #[error("enabling kernel RS485 mode on {port}: {source}")]
    EnableKernelMode { port: String, source: Errno },
    /// Writing the direction GPIO failed.
    #[error("setting RS485 direction pin of {port} to {}: {kind:?}", if *transmit { "transmit" } else { "receive" })]
    DirectionPin {
        port: String,
        transmit: bool,
        kind: embedded_hal::digital::ErrorKind,
    },
}

/// Switching an RS485 transceiver between transmit and receive.
pub trait Rs485Direction: Send {
    /// Called right before a frame is written.
    fn begin_transmit(&mut self) -> Result<(), Rs485Error>;
    /// Called after the frame has fully left the UART (after `tcdrain`).
    fn end_transmit(&mut self) -> Result<(), Rs485Error>;
}

/// `SER_RS485_*` flags of `linux/serial.h`.
const SER_RS485_ENABLED: u32 = 1 << 0;
const SER_RS485_RTS_ON_SEND: u32 = 1 << 1;
const SER_RS485_RTS_AFTER_SEND: u32 = 1 << 2;
const SER_RS485_RX_DURING_TX: u32 = 1 << 4;

/// `struct serial_rs485` of `linux/serial.h`: 8 × u32 (the address fields of newer
/// kernels live in what older headers call padding; they stay zero here).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SerialRs485 {
    /// `SER_RS485_*` flags.
    pub flags: u32,
    /// Milliseconds.
    pub delay_rts_before_send: u32,
    /// Milliseconds.
    pub delay_rts_after_send: u32,
    /// Reserved by the kernel, zero.
    pub padding: [u32; 5],
}

impl SerialRs485 {
    /// The kernel structure for `cfg` with RS485 mode enabled.
    pub fn from_config(cfg: &Rs485Config) -> Self {
        let mut flags = SER_RS485_ENABLED;
        flags |= if cfg.rts_on_send {
            SER_RS485_RTS_ON_SEND
        } else {
            SER_RS485_RTS_AFTER_SEND
        };
        if cfg.rx_during_tx {
            flags |= SER_RS485_RX_DURING_TX;
        }
        SerialRs485 {
            flags,
            delay_rts_before_send: cfg.delay_rts_before_send_ms,
            delay_rts_after_send: cfg.delay_rts_after_send_ms,
            padding: [0; 5],
        }
    }
}

mod ioctl {
    use std::os::fd::RawFd;

    use super::SerialRs485;

    nix::ioctl_write_ptr_bad!(
        #[allow(unsafe_code)]
        tiocsrs485,
        nix::libc::TIOCSRS485,
        SerialRs485
    );

    /// `TIOCSRS485`.
    #[allow(unsafe_code)]
    pub(super) fn set_rs485(fd: RawFd, cfg: &SerialRs485) -> nix::Result<()> {
        // SAFETY: `fd` is open for the call (the caller borrows it), and the pointer
        // refers to a live `#[repr(C)]` struct with the kernel's 32-byte layout, which
        // the kernel only reads.
        unsafe { tiocsrs485(fd, cfg) }.map(drop)
    }
}

/// Direction handled by the UART driver in kernel RS485 mode.
#[derive(Debug)]
pub struct KernelRs485 {
    port: String,
}

impl KernelRs485 {
    /// Enables kernel RS485 mode on the open serial port `fd` (named `port` in errors).
    pub fn enable(port: &str, fd: impl AsFd, cfg: &Rs485Config) -> Result<Self, Rs485Error> {
        let raw = SerialRs485::from_config(cfg);
        ioctl::set_rs485(fd.as_fd().as_raw_fd(), &raw).map_err(|source| {
            Rs485Error::EnableKernelMode {
                port: port.to_owned(),
                source,
            }
        })?;
        Ok(KernelRs485 {
            port: port.to_owned(),
        })
    }

    /// The port name.
    pub fn port(&self) -> &str {
        &self.port
    }
}

impl Rs485Direction for KernelRs485 {
    fn begin_transmit(&mut self) -> Result<(), Rs485Error> {
        Ok(())
    }
    fn end_transmit(&mut self) -> Result<(), Rs485Error> {
        Ok(())
    }
}

/// Direction driven by a GPIO line (high = transmit).
#[derive(Debug)]
pub struct GpioRs485<P> {
    port: String,
    pin: P,
}

impl<P: OutputPin + Send> GpioRs485<P> {
    /// Takes over `pin` and puts the transceiver in receive mode.
    pub fn new(port: &str, pin: P) -> Result<Self, Rs485Error> {
        let mut dir = GpioRs485 {
            port: port.to_owned(),
            pin,
        };
        dir.set(false)?;
        Ok(dir)
    }

    fn set(&mut self, transmit: bool) -> Result<(), Rs485Error> {
        let res = if transmit {
            self.pin.set_high()
        } else {
            self.pin.set_low()
        };
        res.map_err(|e| Rs485Error::DirectionPin {
            port: self.port.clone(),
            transmit,
            kind: embedded_hal::digital::Error::kind(&e),
        })
    }
}

impl<P: OutputPin + Send> Rs485Direction for GpioRs485<P> {
    fn begin_transmit(&mut self) -> Result<(), Rs485Error> {
        self.set(true)
    }
    fn end_transmit(&mut self) -> Result<(), Rs485Error> {
        self.set(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::PinLog;

    #[test]
    fn kernel_struct_layout_and_flags() {
        assert_eq!(std::mem::size_of::<SerialRs485>(), 32);
        let s = SerialRs485::from_config(&Rs485Config::default());
        assert_eq!(s.flags, SER_RS485_ENABLED | SER_RS485_RTS_ON_SEND);
        let s = SerialRs485::from_config(&Rs485Config {
            rts_on_send: false,
            delay_rts_before_send_ms: 2,
            delay_rts_after_send_ms: 3,
            rx_during_tx: true,
        });
        assert_eq!(
            s.flags,
            SER_RS485_ENABLED | SER_RS485_RTS_AFTER_SEND | SER_RS485_RX_DURING_TX
        );
        assert_eq!((s.delay_rts_before_send, s.delay_rts_after_send), (2, 3));
    }

    #[test]
    fn kernel_mode_on_a_pty_is_refused_with_the_port_named() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let err = KernelRs485::enable("pty-test", &pty.slave, &Rs485Config::default()).unwrap_err();
        match err {
            Rs485Error::EnableKernelMode { port, source } => {
                assert_eq!(port, "pty-test");
                // ENOTTY from the kernel; ENOSYS from qemu-user, which does not
                // translate the RS485 ioctls (cross-test runs).
                assert!(matches!(source, Errno::ENOTTY | Errno::ENOSYS), "{source}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn gpio_direction_frames_each_transmission() {
        let log = PinLog::new();
        let mut dir = GpioRs485::new("ttymxc1", log.pin("de")).unwrap();
        for _ in 0..2 {
            dir.begin_transmit().unwrap();
            dir.end_transmit().unwrap();
        }
        let levels: Vec<bool> = log.changes_of("de").iter().map(|c| c.0).collect();
        assert_eq!(levels, vec![true, false, true, false]);
        let mut kernel = KernelRs485 { port: "x".into() };
        kernel.begin_transmit().unwrap();
        kernel.end_transmit().unwrap();
        assert_eq!(kernel.port(), "x");
    }
}
