//! Hardware watchdog: the Linux `/dev/watchdog` driver and an in-memory twin.
//!
//! Opening a Linux watchdog device arms it. From then on the board resets unless
//! [`Watchdog::keepalive`] is called at least once per timeout. The only way to
//! disarm it is the "magic close": write the character `V` and close the file
//! ([`Watchdog::close`]); a process that dies without doing so leaves the watchdog
//! armed, which is exactly what makes a wedged or crashed appliance reboot. Drivers
//! built with `CONFIG_WATCHDOG_NOWAYOUT` ignore the magic close; that is the
//! kernel's decision and not an error here.
//!
//! [`keepalive_loop`] is the cadence the supervisor runs: it pets the watchdog every
//! `period` while its health flag is true, stops petting while it is false (so the
//! board resets if the appliance stays unhealthy past the timeout), and performs the
//! magic close on an orderly shutdown.

use std::fmt;
use std::future::Future;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use tokio::sync::watch;
use tokio::time::Instant;

/// Largest timeout accepted by [`Watchdog::set_timeout`]; Linux drivers take an `int`
/// and most hardware tops out far below this (the i.MX8M WDOG at 128 s, the BCM2835
/// at 15 s).
pub const MAX_TIMEOUT_S: u32 = 3600;

/// Failure of a watchdog operation. Each variant names the operation and the device.
#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    /// The device node could not be opened (missing driver, permissions, already open:
    /// most drivers allow a single opener).
    #[error("opening watchdog {path}: {source}")]
    Open { path: PathBuf, source: Errno },
    /// A timeout of 0 or above [`MAX_TIMEOUT_S`] was requested.
    #[error("watchdog timeout {requested_s} s is out of range 1..={MAX_TIMEOUT_S}")]
    TimeoutOutOfRange { requested_s: u32 },
    /// The driver refused the timeout (`WDIOC_SETTIMEOUT`).
    #[error("setting the timeout of watchdog {path} to {requested_s} s: {source}")]
    SetTimeout {
        path: PathBuf,
        requested_s: u32,
        source: Errno,
    },
    /// Reading the timeout back failed (`WDIOC_GETTIMEOUT`).
    #[error("reading the timeout of watchdog {path}: {source}")]
    GetTimeout { path: PathBuf, source: Errno },
    /// The keepalive ioctl failed (`WDIOC_KEEPALIVE`).
    #[error("keepalive of watchdog {path}: {source}")]
    Keepalive { path: PathBuf, source: Errno },
    /// Writing the magic close character failed; the watchdog stays armed.
    #[error("magic close of watchdog {path}: {source}")]
    MagicClose { path: PathBuf, source: Errno },
}

/// A hardware watchdog that resets the board unless it is petted in time.
pub trait Watchdog: Send + fmt::Debug {
    /// Restarts the countdown.
    fn keepalive(&mut self) -> Result<(), WatchdogError>;
    /// Sets the countdown and returns the timeout the hardware actually uses (drivers
    /// round to what the hardware supports).
    fn set_timeout(&mut self, secs: u32) -> Result<u32, WatchdogError>;
    /// The timeout in force, in seconds.
    fn timeout(&mut self) -> Result<u32, WatchdogError>;
    /// Disarms the watchdog with the magic close (`V`) and releases the device.
    fn close(self: Box<Self>) -> Result<(), WatchdogError>;
}

fn check_timeout(secs: u32) -> Result<(), WatchdogError> {
    if secs == 0 || secs > MAX_TIMEOUT_S {
        return Err(WatchdogError::TimeoutOutOfRange { requested_s: secs });
    }
    Ok(())
}

/// The raw ioctls of `linux/watchdog.h`. These are the only unsafe items of the crate.
mod ioctl {
    use std::os::fd::RawFd;

    use nix::libc::c_int;

    nix::ioctl_read!(
        #[allow(unsafe_code)]
        wdioc_keepalive,
        b'W',
        5,
        c_int
    );
    nix::ioctl_readwrite!(
        #[allow(unsafe_code)]
        wdioc_settimeout,
        b'W',
        6,
        c_int
    );
    nix::ioctl_read!(
        #[allow(unsafe_code)]
        wdioc_gettimeout,
        b'W',
        7,
        c_int
    );

    /// `WDIOC_KEEPALIVE`.
    #[allow(unsafe_code)]
    pub(super) fn keepalive(fd: RawFd) -> nix::Result<()> {
        let mut unused: c_int = 0;
        // SAFETY: `fd` is an open descriptor owned by the caller for the duration of the
        // call, and the kernel writes at most one `c_int` through the pointer, which
        // points at a live local of that type.
        unsafe { wdioc_keepalive(fd, &mut unused) }.map(drop)
    }

    /// `WDIOC_SETTIMEOUT`; returns the timeout the driver settled on.
    #[allow(unsafe_code)]
    pub(super) fn set_timeout(fd: RawFd, secs: c_int) -> nix::Result<c_int> {
        let mut value = secs;
        // SAFETY: `fd` is open for the call; the kernel reads and then overwrites the
        // single `c_int` behind the pointer, which is a live local.
        unsafe { wdioc_settimeout(fd, &mut value) }?;
        Ok(value)
    }

    /// `WDIOC_GETTIMEOUT`.
    #[allow(unsafe_code)]
    pub(super) fn get_timeout(fd: RawFd) -> nix::Result<c_int> {
        let mut value: c_int = 0;
        // SAFETY: `fd` is open for the call; the kernel writes one `c_int` through the
        // pointer, which is a live local of that type.
        unsafe { wdioc_gettimeout(fd, &mut value) }?;
        Ok(value)
    }
}

/// A Linux watchdog device (`/dev/watchdog`, `/dev/watchdog0`, ...).
pub struct LinuxWatchdog {
    path: PathBuf,
    fd: Option<OwnedFd>,
}

impl fmt::Debug for LinuxWatchdog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinuxWatchdog")
            .field("path", &self.path)
            .field("open", &self.fd.is_some())
            .finish()
    }
}

impl LinuxWatchdog {
    /// Opens (and thereby arms) the watchdog and sets its timeout. If the timeout
    /// cannot be set the device is magic-closed again before the error is returned, so
    /// a failed open never leaves a watchdog armed with an unknown timeout.
    pub fn open(path: impl AsRef<Path>, timeout_s: u32) -> Result<Self, WatchdogError> {
        let path = path.as_ref().to_path_buf();
        check_timeout(timeout_s)?;
        let fd =
            open(&path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(|source| {
                WatchdogError::Open {
                    path: path.clone(),
                    source,
                }
            })?;
        let mut wd = LinuxWatchdog { path, fd: Some(fd) };
        match wd.set_timeout(timeout_s) {
            Ok(actual) => {
                tracing::info!(path = %wd.path.display(), requested_s = timeout_s, actual_s = actual, "hardware watchdog armed");
                Ok(wd)
            }
            Err(err) => {
                if let Err(close_err) = wd.magic_close() {
                    tracing::error!(error = %close_err, "could not disarm the watchdog after a failed open");
                }
                Err(err)
            }
        }
    }

    /// The device path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn raw_fd(&self) -> Result<i32, Errno> {
        self.fd.as_ref().map(AsRawFd::as_raw_fd).ok_or(Errno::EBADF)
    }

    fn magic_close(&mut self) -> Result<(), WatchdogError> {
        let Some(fd) = self.fd.take() else {
            return Ok(());
        };
        match nix::unistd::write(&fd, b"V") {
            Ok(1) => Ok(()),
            Ok(_) => Err(WatchdogError::MagicClose {
                path: self.path.clone(),
                source: Errno::EIO,
            }),
            Err(source) => Err(WatchdogError::MagicClose {
                path: self.path.clone(),
                source,
            }),
        }
        // `fd` is closed here, after the magic character went out.
    }
}

impl Watchdog for LinuxWatchdog {
    fn keepalive(&mut self) -> Result<(), WatchdogError> {
        self.raw_fd()
            .and_then(ioctl::keepalive)
            .map_err(|source| WatchdogError::Keepalive {
                path: self.path.clone(),
                source,
            })
    }

    fn set_timeout(&mut self, secs: u32) -> Result<u32, WatchdogError> {
        check_timeout(secs)?;
        let requested = i32::try_from(secs)
            .map_err(|_| WatchdogError::TimeoutOutOfRange { requested_s: secs })?;
        let actual = self
            .raw_fd()
            .and_then(|fd| ioctl::set_timeout(fd, requested))
            .map_err(|source| WatchdogError::SetTimeout {
                path: self.path.clone(),
                requested_s: secs,
                source,
            })?;
        Ok(u32::try_from(actual).unwrap_or(secs))
    }

    fn timeout(&mut self) -> Result<u32, WatchdogError> {
        let value = self
            .raw_fd()
            .and_then(ioctl::get_timeout)
            .map_err(|source| WatchdogError::GetTimeout {
                path: self.path.clone(),
                source,
            })?;
        u32::try_from(value).map_err(|_| WatchdogError::GetTimeout {
            path: self.path.clone(),
            source: Errno::ERANGE,
        })
    }

    fn close(mut self: Box<Self>) -> Result<(), WatchdogError> {
        self.magic_close()?;
        tracing::info!(path = %self.path.display(), "hardware watchdog disarmed (magic close)");
        Ok(())
    }
}

impl Drop for LinuxWatchdog {
    fn drop(&mut self) {
        if self.fd.is_some() {
            tracing::warn!(path = %self.path.display(), "watchdog released without magic close: it stays armed and resets the board unless petted again");
        }
    }
}

/// What the simulated watchdog has seen. Read it through [`SimWatchdogHandle`].
#[derive(Debug, Clone, Default)]
struct SimState {
    timeout_s: u32,
    opened_at: Option<Instant>,
    keepalives: Vec<Instant>,
    magic_closed: bool,
    closed_at: Option<Instant>,
    fail_keepalive: bool,
}

/// In-memory twin of [`LinuxWatchdog`]: records every keepalive (with the tokio clock,
/// so paused-clock tests see exact instants) and the magic close. Clone the handle
/// from [`SimWatchdog::handle`] before boxing the watchdog to inspect it afterwards.
#[derive(Debug)]
pub struct SimWatchdog {
    state: Arc<Mutex<SimState>>,
}

/// Shared read (and fault-injection) access to a [`SimWatchdog`].
#[derive(Debug, Clone)]
pub struct SimWatchdogHandle {
    state: Arc<Mutex<SimState>>,
}

fn lock(state: &Mutex<SimState>) -> MutexGuard<'_, SimState> {
    // A panic while holding this lock can only come from a test assertion; the data
    // is plain records, so keep using it.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

const SIM_PATH: &str = "sim:watchdog";

impl SimWatchdog {
    /// Arms the simulated watchdog with `timeout_s`.
    pub fn open(timeout_s: u32) -> Result<Self, WatchdogError> {
        check_timeout(timeout_s)?;
        let state = SimState {
            timeout_s,
            opened_at: Some(Instant::now()),
            ..SimState::default()
        };
        Ok(SimWatchdog {
            state: Arc::new(Mutex::new(state)),
        })
    }

    /// A handle that outlives the watchdog, for inspection.
    pub fn handle(&self) -> SimWatchdogHandle {
        SimWatchdogHandle {
            state: Arc::clone(&self.state),
        }
    }
}

impl Watchdog for SimWatchdog {
    fn keepalive(&mut self) -> Result<(), WatchdogError> {
        let mut s = lock(&self.state);
        if s.fail_keepalive {
            return Err(WatchdogError::Keepalive {
                path: PathBuf::from(SIM_PATH),
                source: Errno::EIO,
            });
        }
        s.keepalives.push(Instant::now());
        Ok(())
    }

    fn set_timeout(&mut self, secs: u32) -> Result<u32, WatchdogError> {
        check_timeout(secs)?;
        lock(&self.state).timeout_s = secs;
        Ok(secs)
    }

    fn timeout(&mut self) -> Result<u32, WatchdogError> {
        Ok(lock(&self.state).timeout_s)
    }

    fn close(self: Box<Self>) -> Result<(), WatchdogError> {
        let mut s = lock(&self.state);
        s.magic_closed = true;
        s.closed_at = Some(Instant::now());
        Ok(())
    }
}

impl SimWatchdogHandle {
    /// Number of keepalives received.
    pub fn keepalive_count(&self) -> usize {
        lock(&self.state).keepalives.len()
    }

    /// The instants of every keepalive, oldest first.
    pub fn keepalives(&self) -> Vec<Instant> {
        lock(&self.state).keepalives.clone()
    }

    /// The timeout in force.
    pub fn timeout_s(&self) -> u32 {
        lock(&self.state).timeout_s
    }

    /// Whether the watchdog was disarmed with the magic close.
    pub fn magic_closed(&self) -> bool {
        lock(&self.state).magic_closed
    }

    /// Makes every following keepalive fail (`EIO`) while `fail` is true.
    pub fn fail_keepalives(&self, fail: bool) {
        lock(&self.state).fail_keepalive = fail;
    }

    /// The first instant at which real hardware would have reset the board, judging by
    /// the recorded keepalives up to `now`, or `None` if it never would have.
    pub fn reset_at(&self, now: Instant) -> Option<Instant> {
        let s = lock(&self.state);
        let timeout = Duration::from_secs(u64::from(s.timeout_s));
        let mut last = s.opened_at?;
        for &k in &s.keepalives {
            if k.duration_since(last) > timeout {
                return Some(last + timeout);
            }
            last = k;
        }
        if s.magic_closed {
            let closed = s.closed_at.unwrap_or(now);
            return (closed.duration_since(last) > timeout).then_some(last + timeout);
        }
        (now.duration_since(last) > timeout).then_some(last + timeout)
    }
}

/// The keepalive period the supervisor should use for a hardware timeout: a third
/// of it, so that one late tick still leaves a margin, and never below 100 ms.
pub fn keepalive_period(timeout_s: u32) -> Duration {
    let third = Duration::from_secs(u64::from(timeout_s)) / 3;
    third.max(Duration::from_millis(100))
}

/// Pets `watchdog` every `period` while `healthy` holds `true`; skips ticks while it
/// is `false` (so the hardware resets the board if the appliance stays unhealthy for
/// longer than the timeout). When `shutdown` completes the watchdog is disarmed with
/// the magic close. A keepalive error ends the loop with that error and leaves the
/// watchdog armed: the board then resets, which is the safe outcome.
pub async fn keepalive_loop<S>(
    mut watchdog: Box<dyn Watchdog>,
    period: Duration,
    healthy: watch::Receiver<bool>,
    shutdown: S,
) -> Result<(), WatchdogError>
where
    S: Future<Output = ()>,
{
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut was_healthy = true;
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => return watchdog.close(),
            _ = ticker.tick() => {
                let ok = *healthy.borrow();
                if ok {
                    watchdog.keepalive()?;
                } else if was_healthy {
                    tracing::warn!("appliance unhealthy: hardware watchdog no longer petted");
                }
                was_healthy = ok;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_zero_and_huge_timeouts() {
        assert!(matches!(
            SimWatchdog::open(0),
            Err(WatchdogError::TimeoutOutOfRange { requested_s: 0 })
        ));
        let mut wd = SimWatchdog::open(10).unwrap();
        assert!(wd.set_timeout(MAX_TIMEOUT_S + 1).is_err());
        assert_eq!(wd.set_timeout(30).unwrap(), 30);
        assert_eq!(wd.timeout().unwrap(), 30);
    }

    #[test]
    fn open_missing_device_names_the_path() {
        let err = LinuxWatchdog::open("/nonexistent/watchdog", 10).unwrap_err();
        match err {
            WatchdogError::Open { path, source } => {
                assert_eq!(path, PathBuf::from("/nonexistent/watchdog"));
                assert_eq!(source, Errno::ENOENT);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn ioctls_on_a_non_watchdog_fail_and_a_failed_open_disarms() {
        // /dev/null accepts the magic write but not the watchdog ioctls: the open must
        // fail on SETTIMEOUT rather than succeed half-way. The kernel answers ENOTTY;
        // qemu-user (the cross-test runner) answers ENOSYS for ioctls it does not know.
        let err = LinuxWatchdog::open("/dev/null", 10).unwrap_err();
        assert!(
            matches!(
                err,
                WatchdogError::SetTimeout {
                    requested_s: 10,
                    source: Errno::ENOTTY | Errno::ENOSYS,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn period_is_a_third_of_the_timeout() {
        assert_eq!(keepalive_period(30), Duration::from_secs(10));
        assert_eq!(keepalive_period(1), Duration::from_nanos(333_333_333));
    }

    #[tokio::test(start_paused = true)]
    async fn loop_pets_on_cadence_and_magic_closes_on_shutdown() {
        let wd = SimWatchdog::open(3).unwrap();
        let handle = wd.handle();
        let (_tx, rx) = watch::channel(true);
        let start = Instant::now();
        let shutdown = tokio::time::sleep(Duration::from_millis(10_500));
        keepalive_loop(Box::new(wd), keepalive_period(3), rx, shutdown)
            .await
            .unwrap();
        let ticks = handle.keepalives();
        // Ticks at 0, 1, 2, ... 10 s.
        assert_eq!(ticks.len(), 11);
        for (i, t) in ticks.iter().enumerate() {
            assert_eq!(t.duration_since(start), Duration::from_secs(i as u64));
        }
        assert!(handle.magic_closed());
        assert_eq!(handle.reset_at(Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn unhealthy_appliance_stops_petting_and_would_reset() {
        let wd = SimWatchdog::open(3).unwrap();
        let handle = wd.handle();
        let (tx, rx) = watch::channel(true);
        let start = Instant::now();
        let task = tokio::spawn(keepalive_loop(
            Box::new(wd),
            Duration::from_secs(1),
            rx,
            std::future::pending(),
        ));
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        tx.send(false).unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(handle.keepalive_count(), 3); // 0, 1, 2 s
        assert_eq!(
            handle.reset_at(Instant::now()),
            Some(start + Duration::from_secs(5))
        );
        assert!(!handle.magic_closed());
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn keepalive_error_ends_the_loop_without_disarming() {
        let wd = SimWatchdog::open(3).unwrap();
        let handle = wd.handle();
        handle.fail_keepalives(true);
        let (_tx, rx) = watch::channel(true);
        let err = keepalive_loop(
            Box::new(wd),
            Duration::from_secs(1),
            rx,
            std::future::pending(),
        )
        .await
        .unwrap_err();
        assert!(matches!(
            err,
            WatchdogError::Keepalive {
                source: Errno::EIO,
                ..
            }
        ));
        assert!(!handle.magic_closed());
    }
}
