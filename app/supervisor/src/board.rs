//! The board under the supervisor: status LED, user button and hardware watchdog.
//!
//! The description comes from `[system] board` (`auto`: the device tree). The supervisor
//! owns the LED, the button and the watchdog; the board's relay outputs belong to the
//! fieldbus worker (a relay module with `board = true`), so they are left out here. With
//! `[system] board_io = "simulated"` the same drivers run on in-memory lines: the LED's
//! state shows in `/health`, and SIGUSR1 toggles the button line (pressed / released), so
//! the demo and the tests can press the button of a board that is not there.
//!
//! Failure: a board whose lines cannot be opened (busy, missing, no permission) leaves the
//! appliance running without them; the reason is logged and shown in `/health`. Only a
//! watchdog given by hand in `[supervisor.hardware_watchdog]` is required (see `lib.rs`).

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use watchpost_board::button::{ButtonAction, ButtonConfig};
use watchpost_board::led::run_status_led;
use watchpost_board::{
    ApplianceState, Board, BoardDescription, BoardPin, LinuxWatchdog, PinLog, SimPin, SimWatchdog,
    Watchdog,
};
use watchpost_config::{BoardIo, Config};
use watchpost_runtime::proto::BoardView;

/// The name `/health` shows for an LED state.
pub fn state_name(state: ApplianceState) -> &'static str {
    match state {
        ApplianceState::Booting => "booting",
        ApplianceState::Healthy => "healthy",
        ApplianceState::Degraded => "degraded",
        ApplianceState::Alarm => "alarm",
        ApplianceState::Updating => "updating",
        ApplianceState::ConfirmReset => "confirm_reset",
    }
}

/// What the appliance shows, most urgent first: the pending factory-reset confirmation, an
/// update, an alarm, then start-up, then worker health.
pub fn appliance_state(
    confirm_pending: bool,
    updating: bool,
    alarm: bool,
    ready: bool,
    all_healthy: bool,
) -> ApplianceState {
    if confirm_pending {
        ApplianceState::ConfirmReset
    } else if updating {
        ApplianceState::Updating
    } else if alarm {
        ApplianceState::Alarm
    } else if !ready {
        ApplianceState::Booting
    } else if all_healthy {
        ApplianceState::Healthy
    } else {
        ApplianceState::Degraded
    }
}

/// An armed watchdog and its timeout in seconds.
pub type ArmedWatchdog = (Box<dyn Watchdog>, u32);

/// The opened board: the LED and button run as tasks; the watchdog is handed to the
/// keepalive loop by the caller.
pub struct Panel {
    view: BoardView,
    started: Instant,
    led: Option<watch::Sender<ApplianceState>>,
    actions: Option<mpsc::Receiver<ButtonAction>>,
    /// The simulated button line, driven by SIGUSR1.
    sim_button: Option<SimPin>,
    /// Set between a long press and its confirmation or cancellation.
    pub confirm_pending: bool,
}

impl std::fmt::Debug for Panel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Panel").field("view", &self.view).finish()
    }
}

impl Panel {
    /// Selects and opens the board for `config`. Returns the panel and, when the board's
    /// watchdog is to be used (no `[supervisor.hardware_watchdog]`, `board_watchdog` on),
    /// the armed watchdog with its timeout.
    pub fn open(config: &Config) -> (Panel, Option<ArmedWatchdog>) {
        let io = config.system.board_io;
        let mut view = BoardView {
            name: config.system.board.clone(),
            title: String::new(),
            io: match io {
                BoardIo::Hardware => "hardware".into(),
                BoardIo::Simulated => "simulated".into(),
            },
            led: None,
            watchdog: None,
            button: false,
            last_button: None,
            error: None,
        };
        let mut panel = Panel {
            view: view.clone(),
            started: Instant::now(),
            led: None,
            actions: None,
            sim_button: None,
            confirm_pending: false,
        };
        let desc = match watchpost_board::detect(Some(&config.system.board)) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "no board description; running without board I/O");
                view.error = Some(e.to_string());
                panel.view = view;
                return (panel, None);
            }
        };
        view.name = desc.name.clone();
        view.title = desc.title.clone();
        let wd_spec = desc.watchdog.clone().filter(|_| {
            config.supervisor.hardware_watchdog.is_none() && config.supervisor.board_watchdog
        });
        let lines = BoardDescription {
            relays: Vec::new(),
            watchdog: None,
            ..desc
        };
        let opened = match io {
            BoardIo::Hardware => Board::open_linux(lines, false),
            BoardIo::Simulated => Board::simulated(lines, &PinLog::new(), false),
        };
        match opened {
            Ok(board) => {
                if let Some(led) = board.status_led {
                    let (tx, rx) = watch::channel(ApplianceState::Booting);
                    tokio::spawn(async move {
                        if let Err(e) = run_status_led(led, rx).await {
                            tracing::error!(error = %e, "status LED stopped");
                        }
                    });
                    view.led = Some(state_name(ApplianceState::Booting).into());
                    panel.led = Some(tx);
                }
                if let Some(pin) = board.button {
                    if let BoardPin::Sim(p) = &pin {
                        panel.sim_button = Some(p.clone());
                    }
                    let b = &config.supervisor.button;
                    let cfg = ButtonConfig {
                        long_press_ms: b.long_press_ms,
                        confirm_window_ms: b.confirm_window_ms,
                        wipe_recordings: b.wipe_recordings,
                        ..ButtonConfig::default()
                    };
                    let (tx, rx) = mpsc::channel(8);
                    tokio::spawn(async move {
                        if let Err(e) = watchpost_board::button::run_button(pin, cfg, tx).await {
                            tracing::error!(error = %e, "user button stopped");
                        }
                    });
                    view.button = true;
                    panel.actions = Some(rx);
                }
            }
            Err(e) => {
                tracing::error!(board = %view.name, error = %e, "cannot open the board's LED and button; running without them");
                view.error = Some(e.to_string());
            }
        }
        let mut watchdog = None;
        if let Some(spec) = wd_spec {
            let armed = match io {
                BoardIo::Hardware => LinuxWatchdog::open(&spec.device, spec.timeout_s).map(|w| {
                    (
                        Box::new(w) as Box<dyn Watchdog>,
                        spec.device.display().to_string(),
                    )
                }),
                BoardIo::Simulated => SimWatchdog::open(spec.timeout_s)
                    .map(|w| (Box::new(w) as Box<dyn Watchdog>, "simulated".to_string())),
            };
            match armed {
                Ok((w, shown)) => {
                    tracing::info!(board = %view.name, watchdog = %shown, timeout_s = spec.timeout_s, "board watchdog armed");
                    view.watchdog = Some(shown);
                    watchdog = Some((w, spec.timeout_s));
                }
                Err(e) => {
                    tracing::error!(board = %view.name, error = %e, "cannot arm the board's watchdog; systemd's watchdog still applies");
                    view.error = Some(e.to_string());
                }
            }
        }
        tracing::info!(board = %view.name, io = %view.io, led = view.led.is_some(), button = view.button, "board opened");
        panel.view = view;
        (panel, watchdog)
    }

    /// Shows `state` on the LED.
    pub fn show(&mut self, state: ApplianceState) {
        if let Some(tx) = &self.led
            && *tx.borrow() != state
        {
            let _ = tx.send(state);
            self.view.led = Some(state_name(state).into());
        }
    }

    /// Hands the button's gestures to the caller's loop.
    pub fn take_actions(&mut self) -> Option<mpsc::Receiver<ButtonAction>> {
        self.actions.take()
    }

    /// Whether the button is simulated (SIGUSR1 presses it).
    pub fn has_simulated_button(&self) -> bool {
        self.sim_button.is_some()
    }

    /// Records a gesture for `/health`.
    pub fn note(&mut self, what: &str) {
        let at = self.started.elapsed();
        self.view.last_button = Some(format!("{what} at {} ms", at.as_millis()));
    }

    /// Toggles the simulated button line (SIGUSR1); false on real hardware.
    pub fn toggle_simulated_button(&self) -> bool {
        match &self.sim_button {
            Some(p) => {
                let pressed = !p.level();
                p.drive(pressed);
                tracing::info!(pressed, "simulated button toggled");
                true
            }
            None => false,
        }
    }

    /// The view for `/health`.
    pub fn view(&self) -> BoardView {
        self.view.clone()
    }
}

/// The appliance's addresses for a short press: every non-loopback IPv4/IPv6 address of the
/// host with the hub's port, as setup-page URLs.
pub fn announce_urls(hub_port: u16) -> Vec<String> {
    let mut urls = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for ifa in addrs {
            let Some(addr) = ifa.address else { continue };
            if let Some(v4) = addr.as_sockaddr_in() {
                let ip = v4.ip();
                if !ip.is_loopback() {
                    urls.push(format!("http://{ip}:{hub_port}/"));
                }
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                let ip = v6.ip();
                if !ip.is_loopback() && !ip.is_unicast_link_local() {
                    urls.push(format!("http://[{ip}]:{hub_port}/"));
                }
            }
        }
    }
    urls.sort();
    urls.dedup();
    urls
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "[system]\ndata_dir = \"/tmp/wp-board-test\"\nboard = \"rpi4\"\nboard_io = \"simulated\"\n{extra}"
        );
        watchpost_config::from_str_with_env(&text, std::path::Path::new("t.toml"), &[]).unwrap()
    }

    #[test]
    fn the_most_urgent_state_wins() {
        use ApplianceState::*;
        assert_eq!(appliance_state(false, false, false, false, false), Booting);
        assert_eq!(appliance_state(false, false, false, true, true), Healthy);
        assert_eq!(appliance_state(false, false, false, true, false), Degraded);
        assert_eq!(appliance_state(false, false, true, true, false), Alarm);
        assert_eq!(appliance_state(false, false, true, false, true), Alarm);
        assert_eq!(appliance_state(false, true, true, true, true), Updating);
        assert_eq!(appliance_state(true, true, true, true, true), ConfirmReset);
        for s in ApplianceState::ALL {
            assert!(!state_name(s).is_empty());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn simulated_board_drives_led_button_and_watchdog() {
        let cfg = config("[supervisor.button]\nlong_press_ms = 1000\nconfirm_window_ms = 2000\n");
        let (mut panel, wd) = Panel::open(&cfg);
        let mut actions = panel.take_actions().expect("rpi4 has a button");
        let view = panel.view();
        assert_eq!(view.name, "rpi4");
        assert_eq!(view.io, "simulated");
        assert_eq!(view.led.as_deref(), Some("booting"));
        assert_eq!(view.watchdog.as_deref(), Some("simulated"));
        assert!(view.button && view.error.is_none());
        let (_, timeout) = wd.expect("rpi4 has a watchdog");
        assert_eq!(timeout, 15);

        panel.show(ApplianceState::Healthy);
        assert_eq!(panel.view().led.as_deref(), Some("healthy"));

        // Short press: publish the address.
        assert!(panel.toggle_simulated_button());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(panel.toggle_simulated_button());
        let a = tokio::time::timeout(Duration::from_secs(1), actions.recv()).await;
        assert_eq!(a.unwrap(), Some(ButtonAction::PublishAddress));

        // Long press, then a confirming press: factory reset.
        panel.toggle_simulated_button();
        let a = tokio::time::timeout(Duration::from_secs(2), actions.recv()).await;
        assert_eq!(a.unwrap(), Some(ButtonAction::FactoryResetArmed));
        panel.toggle_simulated_button();
        tokio::time::sleep(Duration::from_millis(300)).await;
        panel.toggle_simulated_button();
        tokio::time::sleep(Duration::from_millis(100)).await;
        panel.toggle_simulated_button();
        let a = tokio::time::timeout(Duration::from_secs(1), actions.recv()).await;
        assert_eq!(
            a.unwrap(),
            Some(ButtonAction::FactoryReset {
                wipe_recordings: false
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hand_given_watchdog_replaces_the_boards_and_generic_has_no_io() {
        let cfg =
            config("[supervisor.hardware_watchdog]\ndevice = \"/dev/watchdog9\"\ntimeout_s = 5\n");
        let (panel, wd) = Panel::open(&cfg);
        assert!(wd.is_none());
        assert!(panel.view().watchdog.is_none());
        let cfg = config("[supervisor]\nboard_watchdog = false\n");
        assert!(Panel::open(&cfg).1.is_none());

        let mut cfg = config("");
        cfg.system.board = "generic".into();
        let (mut panel, wd) = Panel::open(&cfg);
        assert!(wd.is_none());
        let view = panel.view();
        assert!(view.led.is_none() && !view.button && view.error.is_none());
        panel.show(ApplianceState::Alarm);
        assert!(!panel.toggle_simulated_button());

        cfg.system.board = "no-such-board".into();
        let (panel, _) = Panel::open(&cfg);
        assert!(panel.view().error.unwrap().contains("no-such-board"));
    }

    #[tokio::test]
    async fn real_lines_that_do_not_exist_are_reported_not_fatal() {
        let mut cfg = config("[supervisor]\nboard_watchdog = false\n");
        cfg.system.board_io = BoardIo::Hardware;
        let (panel, wd) = Panel::open(&cfg);
        assert!(wd.is_none());
        let view = panel.view();
        assert_eq!(view.io, "hardware");
        if std::path::Path::new("/dev/gpiochip0").exists() {
            // A machine with GPIO: the line opened, or the reason it did not is shown.
            assert!(view.error.is_some() || view.led.is_some());
        } else {
            // No gpiochip0 (build machines, CI): the named error, and no LED or button.
            let error = view.error.expect("the missing chip is reported");
            assert!(error.contains("gpiochip0"), "{error}");
            assert!(view.led.is_none() && !view.button);
        }
    }
}
