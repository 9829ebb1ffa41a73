//! What the supervisor does with the board's panel: the status LED's state and the user
//! button's gestures (the lines themselves are opened in [`crate::board`]).
//!
//! Role: the LED shows the most urgent of the appliance's states ([`crate::board::appliance_state`]
//! from the workers' indicators and health); the button's gestures are carried out here: a
//! short press announces the setup page, a long press arms the factory reset, a confirming
//! press asks whether the reset may go ahead ([`crate::reset`]) and, once the verdict
//! arrives, carries it out or says why not.
//!
//! Design: `on_button` never waits on another process: the question to the hub runs in a task
//! of its own and its verdict comes back through the supervision loop (`on_reset_verdict`).
//! Every gesture and its outcome is noted for `/health` (`board.last_button`); the setup page
//! and a refusal also go to systemd's `STATUS=`, which an installer reads with
//! `systemctl status watchpost`.
//!
//! Failure: a reset that is refused or fails leaves the LED on the appliance's state again; a
//! confirming press while a question is still out is noted and otherwise ignored.

use std::time::Instant;

use tokio::sync::mpsc;
use watchpost_board::{ApplianceState, ButtonAction};

use crate::reset::{Clearance, Verdict};
use crate::{Event, Supervisor, board};

impl Supervisor {
    /// What the status LED shows now.
    pub(crate) fn appliance_state(&self) -> ApplianceState {
        let now = Instant::now();
        let alarm = self.indicators.values().any(|(a, _)| *a);
        let updating = self.reset_checking || self.indicators.values().any(|(_, u)| *u);
        let all_healthy = self
            .slots
            .values()
            .all(|s| s.healthy(now, &self.policy) && s.faults.is_empty());
        board::appliance_state(
            self.panel.confirm_pending,
            updating,
            alarm,
            self.notified_ready,
            all_healthy,
        )
    }

    /// Carries out a button gesture.
    pub(crate) fn on_button(&mut self, action: ButtonAction) {
        match action {
            ButtonAction::PublishAddress => {
                let urls = board::announce_urls(self.config.hub.listen.port());
                tracing::warn!(setup = ?urls, "button: the appliance's setup page");
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&format!(
                    "setup page: {}",
                    urls.join(" ")
                ))]);
                self.panel
                    .note(&format!("publish_address {}", urls.join(" ")));
            }
            ButtonAction::FactoryResetArmed => {
                tracing::warn!("button: factory reset armed; press again to confirm");
                self.panel.confirm_pending = true;
                self.panel.note("factory_reset_armed");
            }
            ButtonAction::FactoryResetCancelled => {
                tracing::warn!("button: factory reset cancelled (no confirming press)");
                self.panel.confirm_pending = false;
                self.panel.note("factory_reset_cancelled");
            }
            ButtonAction::FactoryReset { wipe_recordings } => {
                self.panel.confirm_pending = false;
                if self.reset_checking {
                    tracing::warn!(
                        "button: factory reset confirmed again while the first is being checked; ignored"
                    );
                    self.panel.note("factory_reset already being checked");
                } else {
                    tracing::warn!(
                        wipe_recordings,
                        "button: factory reset confirmed; asking the hub whether alarms wait for delivery"
                    );
                    self.panel.note("factory_reset checking undelivered alarms");
                    self.ask_reset_clearance(wipe_recordings);
                }
            }
        }
        let state = self.appliance_state();
        self.panel.show(state);
    }

    /// Carries out a confirmed reset once its verdict is in, or says why it is refused.
    pub(crate) async fn on_reset_verdict(
        &mut self,
        verdict: Verdict,
        events_rx: &mut mpsc::UnboundedReceiver<Event>,
    ) {
        self.reset_checking = false;
        let Verdict {
            wipe_recordings,
            clearance,
        } = verdict;
        let outcome = match clearance {
            Ok(clearance) => {
                match clearance {
                    Clearance::NothingPending { alarms_enabled } => tracing::warn!(
                        alarms_enabled,
                        "factory reset: the hub has no alarm waiting for delivery"
                    ),
                    Clearance::NoHubStore => tracing::warn!(
                        "factory reset: no hub runs and none has a store; no alarm can be waiting"
                    ),
                }
                self.panel.show(ApplianceState::Updating);
                match self.factory_reset(wipe_recordings, events_rx).await {
                    Ok(()) if wipe_recordings => "factory_reset wiped recordings".into(),
                    Ok(()) => "factory_reset kept recordings".into(),
                    Err(why) => format!("factory_reset failed: {why}"),
                }
            }
            Err(refusal) => {
                tracing::error!(
                    reason = %refusal,
                    "factory reset refused, nothing was deleted; try again once the receivers have their alarms"
                );
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&format!(
                    "factory reset refused: {refusal}"
                ))]);
                format!("factory_reset refused: {refusal}")
            }
        };
        self.panel.note(&outcome);
        let state = self.appliance_state();
        self.panel.show(state);
    }
}
