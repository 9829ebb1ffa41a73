//! Board descriptions: which GPIO lines, serial ports, watchdog and NPU a board has.
//!
//! One TOML file per board lives in `board/boards/` and is compiled into the binary, so
//! an image never depends on files that could be missing. At start-up the supervisor
//! calls [`detect`]: with a name from the config it takes that description; otherwise
//! it reads `/proc/device-tree/compatible` (NUL-separated, most specific first) and
//! picks the board whose `compatible` list contains the most specific entry. A machine
//! without a device tree, or whose tree matches nothing, gets the `generic`
//! description (no board I/O, no hardware watchdog): the appliance still runs, it
//! only lacks LEDs and relays, and a warning says so.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the kernel exposes the device tree's root `compatible` property.
pub const DEVICE_TREE_COMPATIBLE: &str = "/proc/device-tree/compatible";

/// Name of the fallback description.
pub const GENERIC_BOARD: &str = "generic";

/// The embedded description files: `(file name, contents)`.
pub const BUILTIN: &[(&str, &str)] = &[
    ("imx8mp-evk.toml", include_str!("../boards/imx8mp-evk.toml")),
    ("rpi4.toml", include_str!("../boards/rpi4.toml")),
    ("rock3a.toml", include_str!("../boards/rock3a.toml")),
    ("rock5b.toml", include_str!("../boards/rock5b.toml")),
    (
        "qemu-virt-arm64.toml",
        include_str!("../boards/qemu-virt-arm64.toml"),
    ),
    ("generic.toml", include_str!("../boards/generic.toml")),
];

/// Failure to select or read a board description.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// The configured board name matches no description.
    #[error("unknown board {name:?}; known boards: {known}")]
    UnknownBoard { name: String, known: String },
    /// An embedded description does not parse (a build defect, caught by the tests).
    #[error("board description {file}: {source}")]
    ParseDescription {
        file: String,
        source: Box<toml::de::Error>,
    },
    /// The device tree exists but could not be read.
    #[error("reading {path}: {source}")]
    ReadCompatible {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A GPIO line on a character-device GPIO chip.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioLine {
    /// Chip name (`gpiochip0`) or path (`/dev/gpiochip0`).
    pub chip: String,
    /// Line offset on the chip.
    pub line: u32,
    /// The line is active when electrically low.
    #[serde(default)]
    pub active_low: bool,
}

impl GpioLine {
    /// The chip's device path.
    pub fn chip_path(&self) -> PathBuf {
        if self.chip.starts_with('/') {
            PathBuf::from(&self.chip)
        } else {
            Path::new("/dev").join(&self.chip)
        }
    }
}

/// The hardware watchdog of a board.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogSpec {
    /// Device node, e.g. `/dev/watchdog0`.
    pub device: PathBuf,
    /// Timeout to program, in seconds (within what the hardware supports).
    pub timeout_s: u32,
}

/// A relay output. The GPIO fields are listed here rather than flattened from
/// [`GpioLine`] because serde cannot combine `flatten` with `deny_unknown_fields`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySpec {
    /// Name used in config and on the bus (`relay0`).
    pub name: String,
    /// Chip name or path.
    pub chip: String,
    /// Line offset.
    pub line: u32,
    /// Active when electrically low.
    #[serde(default)]
    pub active_low: bool,
}

impl RelaySpec {
    /// The relay's GPIO line.
    pub fn gpio(&self) -> GpioLine {
        GpioLine {
            chip: self.chip.clone(),
            line: self.line,
            active_low: self.active_low,
        }
    }
}

/// How the RS485 transceiver's direction is switched.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Rs485Spec {
    /// The UART's kernel RS485 mode toggles RTS.
    Kernel {
        /// RTS high while sending.
        #[serde(default = "default_true")]
        rts_on_send: bool,
        /// Milliseconds between RTS and the first bit.
        #[serde(default)]
        delay_rts_before_send_ms: u32,
        /// Milliseconds between the last bit and RTS release.
        #[serde(default)]
        delay_rts_after_send_ms: u32,
    },
    /// A GPIO line drives DE/RE (high = transmit unless `active_low`).
    Gpio {
        /// Chip name or path.
        chip: String,
        /// Line offset.
        line: u32,
        /// Active when electrically low.
        #[serde(default)]
        active_low: bool,
    },
}

fn default_true() -> bool {
    true
}

/// A serial port of the board.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialSpec {
    /// Name used in config (`rs485-0`).
    pub name: String,
    /// Device node.
    pub device: PathBuf,
    /// RS485 direction control, if the port is RS485.
    pub rs485: Option<Rs485Spec>,
}

/// Kind of neural accelerator and how TensorFlow Lite reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NpuKind {
    /// VeriSilicon VIP (i.MX8M Plus) through the VX external delegate.
    VxDelegate,
    /// Coral Edge TPU through libedgetpu.
    Edgetpu,
}

/// The board's NPU.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpuSpec {
    /// Accelerator kind.
    pub kind: NpuKind,
    /// The TensorFlow Lite external delegate library.
    pub delegate_path: PathBuf,
}

/// Everything Watchpost needs to know about one board.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardDescription {
    /// Short name, also the file name (`rpi4`).
    pub name: String,
    /// Human-readable name.
    pub title: String,
    /// Device-tree `compatible` strings that select this board.
    pub compatible: Vec<String>,
    /// CPU architecture of the image (`aarch64`), if the board is an image target.
    pub arch: Option<String>,
    /// The Yocto `MACHINE` that builds its image.
    pub yocto_machine: Option<String>,
    /// Hardware watchdog.
    pub watchdog: Option<WatchdogSpec>,
    /// Status LED.
    pub status_led: Option<GpioLine>,
    /// Relay outputs.
    #[serde(default)]
    pub relays: Vec<RelaySpec>,
    /// User button.
    pub button: Option<GpioLine>,
    /// Serial ports.
    #[serde(default)]
    pub serial: Vec<SerialSpec>,
    /// Neural accelerator.
    pub npu: Option<NpuSpec>,
}

impl BoardDescription {
    /// Parses one description file (`file` names it in errors).
    pub fn parse(file: &str, text: &str) -> Result<Self, BoardError> {
        toml::from_str(text).map_err(|e| BoardError::ParseDescription {
            file: file.to_owned(),
            source: Box::new(e),
        })
    }
}

/// Every embedded description, parsed.
pub fn builtin_boards() -> Result<Vec<BoardDescription>, BoardError> {
    BUILTIN
        .iter()
        .map(|(file, text)| BoardDescription::parse(file, text))
        .collect()
}

fn known_names(boards: &[BoardDescription]) -> String {
    boards
        .iter()
        .map(|b| b.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The embedded description named `name`.
pub fn by_name(name: &str) -> Result<BoardDescription, BoardError> {
    let boards = builtin_boards()?;
    let known = known_names(&boards);
    boards
        .into_iter()
        .find(|b| b.name == name)
        .ok_or_else(|| BoardError::UnknownBoard {
            name: name.to_owned(),
            known,
        })
}

/// Picks the description for a device-tree `compatible` property (the raw bytes:
/// NUL-separated strings, most specific first). Returns `None` if nothing matches.
pub fn match_compatible(
    compatible: &[u8],
    boards: &[BoardDescription],
) -> Option<BoardDescription> {
    compatible
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| std::str::from_utf8(s).ok())
        .find_map(|entry| {
            boards
                .iter()
                .find(|b| b.compatible.iter().any(|c| c == entry))
                .cloned()
        })
}

/// Selects the board: `override_name` if given, else by the device tree at
/// [`DEVICE_TREE_COMPATIBLE`], else `generic`.
pub fn detect(override_name: Option<&str>) -> Result<BoardDescription, BoardError> {
    detect_from(override_name, Path::new(DEVICE_TREE_COMPATIBLE))
}

/// [`detect`] with the `compatible` file given (for tests and unusual mounts).
pub fn detect_from(
    override_name: Option<&str>,
    compatible_path: &Path,
) -> Result<BoardDescription, BoardError> {
    if let Some(name) = override_name.filter(|n| !n.is_empty() && *n != "auto") {
        let board = by_name(name)?;
        tracing::info!(board = %board.name, "board selected by configuration");
        return Ok(board);
    }
    let bytes = match std::fs::read(compatible_path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(BoardError::ReadCompatible {
                path: compatible_path.to_path_buf(),
                source,
            });
        }
    };
    let boards = builtin_boards()?;
    if let Some(bytes) = bytes {
        if let Some(board) = match_compatible(&bytes, &boards) {
            tracing::info!(board = %board.name, "board detected from the device tree");
            return Ok(board);
        }
        let shown = String::from_utf8_lossy(&bytes).replace('\0', " ");
        tracing::warn!(compatible = %shown.trim(), "no board description matches the device tree; running without board I/O");
    } else {
        tracing::info!("no device tree: generic board without board I/O");
    }
    by_name(GENERIC_BOARD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses_and_names_match_files() {
        let boards = builtin_boards().unwrap();
        assert_eq!(boards.len(), BUILTIN.len());
        for ((file, _), b) in BUILTIN.iter().zip(&boards) {
            assert_eq!(format!("{}.toml", b.name), *file);
            if let Some(wd) = &b.watchdog {
                assert!((1..=crate::watchdog::MAX_TIMEOUT_S).contains(&wd.timeout_s));
            }
        }
        let names: std::collections::HashSet<_> = boards.iter().map(|b| &b.name).collect();
        assert_eq!(names.len(), boards.len(), "duplicate board names");
    }

    #[test]
    fn every_builtin_file_in_the_directory_is_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("boards");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = BUILTIN.iter().map(|(f, _)| (*f).to_owned()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_file_named() {
        let text = "name = \"x\"\ntitle = \"X\"\ncompatible = []\nwatchdgo = 1\n";
        let err = BoardDescription::parse("x.toml", text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("x.toml") && msg.contains("watchdgo"), "{msg}");
        let text = "name = \"x\"\ntitle = \"X\"\ncompatible = []\n[[serial]]\nname = \"s\"\ndevice = \"/dev/ttyS0\"\n[serial.rs485]\nmode = \"gpio\"\nchip = \"gpiochip0\"\nline = 1\nrts_on_send = true\n";
        assert!(BoardDescription::parse("y.toml", text).is_err());
        let text = "name = \"x\"\ntitle = \"X\"\ncompatible = []\n[[relays]]\nname = \"r\"\nchip = \"gpiochip0\"\nline = 1\ncolour = 3\n";
        assert!(BoardDescription::parse("z.toml", text).is_err());
    }

    #[test]
    fn most_specific_compatible_wins() {
        let boards = builtin_boards().unwrap();
        let pick = |c: &[u8]| match_compatible(c, &boards).map(|b| b.name);
        assert_eq!(
            pick(b"fsl,imx8mp-evk\0fsl,imx8mp\0").as_deref(),
            Some("imx8mp-evk")
        );
        // An unknown i.MX8MP carrier still matches through the SoC entry.
        assert_eq!(
            pick(b"acme,gw-8mp\0fsl,imx8mp\0").as_deref(),
            Some("imx8mp-evk")
        );
        assert_eq!(
            pick(b"raspberrypi,4-compute-module\0brcm,bcm2711\0").as_deref(),
            Some("rpi4")
        );
        assert_eq!(
            pick(b"radxa,rock-5b\0rockchip,rk3588\0").as_deref(),
            Some("rock5b")
        );
        assert_eq!(
            pick(b"radxa,rock3a\0rockchip,rk3568\0").as_deref(),
            Some("rock3a")
        );
        assert_eq!(
            pick(b"linux,dummy-virt\0").as_deref(),
            Some("qemu-virt-arm64")
        );
        assert_eq!(pick(b"acme,unknown\0").as_deref(), None);
        assert_eq!(pick(b"").as_deref(), None);
        assert_eq!(
            pick(b"\xff\xfe\0linux,dummy-virt").as_deref(),
            Some("qemu-virt-arm64")
        );
    }

    #[test]
    fn detect_uses_override_then_device_tree_then_generic() {
        let dir = std::env::temp_dir().join(format!("wp-board-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let compat = dir.join("compatible");
        std::fs::write(&compat, b"raspberrypi,4-model-b\0brcm,bcm2711\0").unwrap();
        assert_eq!(detect_from(None, &compat).unwrap().name, "rpi4");
        assert_eq!(detect_from(Some("auto"), &compat).unwrap().name, "rpi4");
        assert_eq!(detect_from(Some("rock5b"), &compat).unwrap().name, "rock5b");
        std::fs::write(&compat, b"acme,thing\0").unwrap();
        assert_eq!(detect_from(None, &compat).unwrap().name, GENERIC_BOARD);
        let missing = dir.join("missing");
        assert_eq!(detect_from(None, &missing).unwrap().name, GENERIC_BOARD);
        match detect_from(Some("rpi5"), &compat).unwrap_err() {
            BoardError::UnknownBoard { name, known } => {
                assert_eq!(name, "rpi5");
                assert!(known.contains("rpi4"));
            }
            other => panic!("unexpected {other:?}"),
        }
        // A directory where the file should be is an I/O error, not a silent fallback.
        assert!(matches!(
            detect_from(None, &dir),
            Err(BoardError::ReadCompatible { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn imx8mp_has_the_vx_delegate_and_kernel_rs485() {
        let b = by_name("imx8mp-evk").unwrap();
        let npu = b.npu.unwrap();
        assert_eq!(npu.kind, NpuKind::VxDelegate);
        assert!(matches!(
            b.serial[0].rs485,
            Some(Rs485Spec::Kernel {
                rts_on_send: true,
                ..
            })
        ));
        let pi = by_name("rpi4").unwrap();
        assert!(matches!(
            pi.serial[0].rs485,
            Some(Rs485Spec::Gpio { line: 18, .. })
        ));
        assert_eq!(
            pi.status_led.unwrap().chip_path(),
            PathBuf::from("/dev/gpiochip0")
        );
    }
}
