//! Process exit codes, the contract between workers, the supervisor and systemd.

/// Exit codes used by `watchpost` processes. The numbers follow `sysexits.h` where one fits,
/// so that systemd's `RestartPreventExitStatus=78` keeps a misconfigured appliance from looping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Clean stop (shutdown requested).
    Clean = 0,
    /// A runtime failure: the supervisor restarts the worker with backoff.
    Failure = 1,
    /// Wrong command-line usage.
    Usage = 64,
    /// A device, port or peer the worker needs is not available (restart with backoff).
    Unavailable = 69,
    /// The configuration is invalid: reported as failed, not restarted in a loop.
    Config = 78,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }

    /// Maps a raw exit status back to a known code.
    pub fn from_code(code: i32) -> Option<Self> {
        match code {
            0 => Some(Self::Clean),
            1 => Some(Self::Failure),
            64 => Some(Self::Usage),
            69 => Some(Self::Unavailable),
            78 => Some(Self::Config),
            _ => None,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for c in [
            ExitCode::Clean,
            ExitCode::Failure,
            ExitCode::Usage,
            ExitCode::Unavailable,
            ExitCode::Config,
        ] {
            assert_eq!(ExitCode::from_code(c.code()), Some(c));
        }
        assert_eq!(ExitCode::Config.code(), 78);
        assert_eq!(ExitCode::from_code(3), None);
    }
}
