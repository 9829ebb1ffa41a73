//! The worker's errors and how each maps to an exit code.

use std::net::SocketAddr;
use std::path::PathBuf;

use watchpost_runtime::ExitCode;

/// Why the fieldbus worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum FieldbusError {
    #[error("fieldbus configuration: {0}")]
    Config(String),
    #[error("opening the store {path}: {source}")]
    OpenStore {
        path: PathBuf,
        source: Box<watchpost_store::StoreError>,
    },
    #[error("reading persisted registers from {path}: {source}")]
    LoadRegisters {
        path: PathBuf,
        source: Box<watchpost_store::StoreError>,
    },
    #[error("binding the Modbus TCP server to {addr}: {source}")]
    BindTcp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("opening serial line {}: {source}", port.display())]
    OpenSerial {
        port: PathBuf,
        source: tokio_serial::Error,
    },
    #[error("opening serial line {}: {source}", port.display())]
    OpenSerialIo {
        port: PathBuf,
        source: std::io::Error,
    },
    #[error("enabling RS485 mode on {}: {source}", port.display())]
    Rs485 {
        port: PathBuf,
        source: watchpost_board::Rs485Error,
    },
    #[error("serial line {} has no kernel RS485 mode or refuses its settings ({errno}), but the board description names it as an RS485 UART in kernel mode: check the port in [fieldbus] against the board's serial ports, or set rs485 = false for an adapter that switches direction itself", port.display())]
    Rs485Unsupported {
        port: PathBuf,
        errno: nix::errno::Errno,
    },
    #[error("requesting RS485 direction line {line} of {}: {source}", chip.display())]
    Rs485Gpio {
        chip: PathBuf,
        line: u32,
        source: linux_embedded_hal::gpio_cdev::Error,
    },
    #[error("serial line {}: {source}", port.display())]
    SerialIo {
        port: PathBuf,
        source: std::io::Error,
    },
    #[error("serial line {} was closed", port.display())]
    SerialClosed { port: PathBuf },
    #[error("subscribing to {filter}: {source}")]
    Subscribe {
        filter: String,
        source: watchpost_bus::BusError,
    },
    #[error("a background task of the fieldbus worker ended: {task}")]
    TaskEnded { task: &'static str },
}

impl FieldbusError {
    /// The process exit code for this error (see the worker contract in docs/).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            // Retrying cannot help: the configured device does not do what the board says.
            Self::Config(_) | Self::Rs485Unsupported { .. } => ExitCode::Config,
            Self::BindTcp { .. }
            | Self::OpenSerial { .. }
            | Self::OpenSerialIo { .. }
            | Self::Rs485 { .. }
            | Self::Rs485Gpio { .. }
            | Self::OpenStore { .. } => ExitCode::Unavailable,
            Self::LoadRegisters { .. }
            | Self::SerialIo { .. }
            | Self::SerialClosed { .. }
            | Self::Subscribe { .. }
            | Self::TaskEnded { .. } => ExitCode::Failure,
        }
    }
}
