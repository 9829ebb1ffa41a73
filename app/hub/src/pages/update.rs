//! `/update`: over-the-air updates on the setup page (docs/update.md). Everyone signed in sees
//! the running version, RAUC's slots and where an update stands (state, percent, RAUC's
//! message, the reason of a refusal, failure or rollback: after a rollback, which version
//! failed); the state follows the update live (`update` events of `/live`), without a reload.
//! Administrators also get the upload form (with "install an older version") and the buttons
//! that mark the running slot good or bad.
//!
//! Design: the upload is the API's own `POST /api/v1/system/update`: the page's script sends
//! the chosen file as the raw request body with `fetch` and the session's CSRF header, so the
//! bundle streams to the data partition exactly as through the API (never a multipart body the
//! hub would have to take apart); without the script the form says so and names the command
//! line. Marking is a form POST to `/update/mark` that calls the same path as the API's mark.

use axum::extract::{Extension, Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use watchpost_config::Role;
use watchpost_update::{MarkState, SlotRef};

use crate::auth::Principal;
use crate::pages::layout::{self, FlashQuery, PageCtx, csrf_input};
use crate::state::HubState;
use crate::update::{UpdateState, UpdateStatus};

/// A state as the page prints it.
pub fn state_label(s: UpdateState) -> &'static str {
    match s {
        UpdateState::Idle => "idle",
        UpdateState::Downloading => "receiving the bundle",
        UpdateState::Verifying => "checking the bundle",
        UpdateState::Installing => "installing",
        UpdateState::InstalledRebootPending => "installed, reboot pending",
        UpdateState::BootedUnconfirmed => "running the new version, not yet confirmed",
        UpdateState::Confirmed => "running the new version, confirmed",
        UpdateState::RolledBack => "rolled back",
        UpdateState::Refused => "refused",
        UpdateState::Failed => "failed",
        UpdateState::Unavailable => "RAUC unavailable",
    }
}

fn state_class(s: UpdateState) -> &'static str {
    match s {
        UpdateState::Idle | UpdateState::Confirmed | UpdateState::InstalledRebootPending => {
            "state ok"
        }
        UpdateState::RolledBack
        | UpdateState::Refused
        | UpdateState::Failed
        | UpdateState::Unavailable => "state bad",
        _ => "state warn",
    }
}

/// What `/live` sends as an `update` event (and the page prints in its `data-update` fields).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpdateLive {
    /// The state's id (`installing`) and its label.
    pub state: String,
    pub label: String,
    /// `ok`, `warn` or `bad`.
    pub class: String,
    /// 0–100 while installing and after; 0 otherwise.
    pub percent: u8,
    pub progress: String,
    pub message: String,
    pub reason: String,
    pub version: String,
}

fn state_id(s: UpdateState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl UpdateLive {
    pub fn of(s: &UpdateStatus) -> UpdateLive {
        let progress = match (s.state, s.percent, s.received_bytes, s.total_bytes) {
            (UpdateState::Downloading, _, Some(r), Some(t)) => format!(
                "{} of {} received",
                crate::pages::fmt::bytes(r),
                crate::pages::fmt::bytes(t)
            ),
            (_, Some(p), ..) => format!("{p} %"),
            _ => "–".into(),
        };
        let reason = match (&s.code, &s.reason) {
            (Some(c), Some(r)) => format!("{c}: {r}"),
            (None, Some(r)) => r.clone(),
            (Some(c), None) => c.clone(),
            (None, None) => "–".into(),
        };
        UpdateLive {
            state: state_id(s.state),
            label: state_label(s.state).into(),
            class: state_class(s.state).trim_start_matches("state ").into(),
            percent: s.percent.unwrap_or(0),
            progress,
            message: s.message.clone().unwrap_or_else(|| "–".into()),
            reason,
            version: s
                .bundle
                .as_ref()
                .map_or_else(|| "–".into(), |b| b.version.clone()),
        }
    }
}

/// The status card: its fields update from `/live`.
pub fn status_card(s: &UpdateStatus) -> Markup {
    let l = UpdateLive::of(s);
    html! {
        dl class="kv" data-update {
            dt { "State" } dd { span class=(state_class(s.state)) data-field="label" data-state=(l.state) { (l.label) } }
            dt { "Progress" } dd {
                progress max="100" value=(l.percent) data-field-value="percent" { (l.percent) " %" }
                " " span data-field="progress" { (l.progress) }
            }
            dt { "RAUC says" } dd data-field="message" { (l.message) }
            dt { "Bundle version" } dd data-field="version" { (l.version) }
            dt { "Reason" } dd data-field="reason" { (l.reason) }
        }
    }
}

/// Running version, booted and primary slot, RAUC's slots.
pub fn slots(s: &UpdateStatus) -> Markup {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "–".into());
    html! {
        dl class="kv" {
            dt { "Running version" } dd data-running-version { (s.running_version) }
            dt { "Running slot" } dd { (opt(&s.booted)) }
            dt { "Boots next" } dd { (opt(&s.primary)) }
        }
        @if s.slots.is_empty() {
            p class="muted" { "RAUC did not list its slots." }
        } @else {
            (layout::scroll_table(
                "RAUC's slots",
                html! {
                    th scope="col" { "Slot" }
                    th scope="col" { "Boot name" }
                    th scope="col" { "State" }
                    th scope="col" { "Boot status" }
                    th scope="col" { "Installed version" }
                    th scope="col" { "Installed at" }
                },
                html! {
                    @for x in &s.slots {
                        tr data-slot=(x.name) {
                            th scope="row" { (x.name) }
                            td { (opt(&x.bootname)) }
                            td { (opt(&x.state)) }
                            td { (opt(&x.boot_status)) }
                            td { (opt(&x.bundle_version)) }
                            td { (opt(&x.installed_timestamp)) }
                        }
                    }
                },
            ))
        }
    }
}

/// The administrator's controls: upload with "force", mark good/bad.
pub fn controls(ctx: &PageCtx) -> Markup {
    html! {
        section class="card" aria-labelledby="up-h" {
            h2 id="up-h" { "Install an update" }
            form method="post" action="/api/v1/system/update" data-update-upload enctype="application/octet-stream" {
                p {
                    label for="bundle" { "Update bundle (.raucb)" }
                    input type="file" id="bundle" name="bundle" accept=".raucb" required;
                }
                p {
                    input type="checkbox" id="force" name="force" value="true";
                    " "
                    label for="force" { "Install even if it is older than the running version" }
                }
                p class="hint" {
                    "The bundle is checked (signature, compatible, version) before anything is written to the other slot. "
                    "Without JavaScript, upload with "
                    code { "curl -u admin --data-binary @update.raucb -H 'Content-Type: application/octet-stream' http://<box>/api/v1/system/update" }
                    "."
                }
                button type="submit" { "Upload and install" }
                p role="status" aria-live="polite" {}
            }
        }
        section class="card" aria-labelledby="mark-h" {
            h2 id="mark-h" { "Confirm or reject the running version" }
            p class="hint" { "Marking the running slot good keeps it; bad makes the boot loader fall back to the other slot at the next reboot." }
            form method="post" action="/update/mark" data-enhance {
                (csrf_input(ctx))
                button type="submit" name="state" value="good" { "Mark running slot good" }
                " "
                button type="submit" name="state" value="bad" { "Mark running slot bad" }
                p role="status" aria-live="polite" {}
            }
        }
    }
}

pub fn render(ctx: &PageCtx, s: &UpdateStatus, flash: &FlashQuery) -> Markup {
    html! {
        (flash.render())
        div class="grid" {
            section class="card" aria-labelledby="st-h" {
                h2 id="st-h" { "Update" }
                (status_card(s))
                @if s.state == UpdateState::RolledBack {
                    p class="bad" data-rollback { (s.reason.as_deref().unwrap_or("The boot loader fell back to the previous slot.")) }
                }
            }
            section class="card" aria-labelledby="fw-h" {
                h2 id="fw-h" { "Firmware" }
                (slots(s))
            }
        }
        @if ctx.allows(Role::Admin) {
            (controls(ctx))
        } @else {
            p class="muted" { "Only administrators can install updates or mark slots." }
        }
        p class="hint" { "Also on the command line: " code { "watchpost update status" } "." }
    }
}

/// `GET /update`.
pub async fn get(
    State(state): State<HubState>,
    ctx: PageCtx,
    Query(flash): Query<FlashQuery>,
) -> Response {
    let s = state.update.status().await;
    layout::live_page("Update", &ctx, render(&ctx, &s, &flash))
}

/// `POST /update/mark`'s form: `state` is `good` or `bad`; the slot is the running one.
#[derive(Debug, Deserialize)]
pub struct MarkForm {
    pub state: String,
}

/// `POST /update/mark`.
pub async fn post_mark(
    State(state): State<HubState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    Form(form): Form<MarkForm>,
) -> Response {
    let kind = match form.state.as_str() {
        "good" => Ok(MarkState::Good),
        "bad" => Ok(MarkState::Bad),
        other => Err((
            StatusCode::BAD_REQUEST,
            format!("unknown mark {other:?}: good or bad"),
        )),
    };
    let result = match kind {
        Err(e) => Err(e),
        Ok(kind) => state
            .update
            .mark(&state.store, &p.user, kind, SlotRef::Booted)
            .await
            .map(|m| format!("Slot {} marked {}: {}", m.slot, form.state, m.message))
            .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    };
    layout::form_outcome(layout::wants_json(&headers), "/update", result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::layout::tests_support;

    fn status(state: UpdateState) -> UpdateStatus {
        UpdateStatus {
            state,
            percent: Some(40),
            message: Some("Copying image to rootfs.1".into()),
            received_bytes: None,
            total_bytes: None,
            code: None,
            reason: None,
            bundle: None,
            running_version: "0.1.0".into(),
            booted: Some("A".into()),
            primary: Some("A".into()),
            slots: vec![],
        }
    }

    #[test]
    fn admins_get_controls_viewers_do_not() {
        let s = status(UpdateState::Installing);
        let admin =
            render(&tests_support::ctx(Role::Admin), &s, &FlashQuery::default()).into_string();
        assert!(admin.contains("data-update-upload") && admin.contains("name=\"force\""));
        assert!(admin.contains("action=\"/update/mark\"") && admin.contains("name=\"csrf\""));
        assert!(admin.contains("installing") && admin.contains("40 %"));
        let viewer = render(
            &tests_support::ctx(Role::Viewer),
            &s,
            &FlashQuery::default(),
        )
        .into_string();
        assert!(!viewer.contains("data-update-upload") && !viewer.contains("/update/mark"));
        assert!(viewer.contains("Copying image to rootfs.1") && viewer.contains("0.1.0"));
    }

    #[test]
    fn a_rollback_says_which_version_failed() {
        let mut s = status(UpdateState::RolledBack);
        s.reason = Some(
            "version 0.2.0 was installed into slot B but the appliance runs slot A again".into(),
        );
        let h = render(
            &tests_support::ctx(Role::Viewer),
            &s,
            &FlashQuery::default(),
        )
        .into_string();
        assert!(h.contains("data-rollback") && h.contains("version 0.2.0 was installed"));
        let l = UpdateLive::of(&s);
        assert_eq!((l.state.as_str(), l.class.as_str()), ("rolled_back", "bad"));
    }

    #[test]
    fn live_values_print_upload_progress_and_refusals() {
        let mut s = status(UpdateState::Downloading);
        s.received_bytes = Some(1 << 20);
        s.total_bytes = Some(4 << 20);
        assert!(UpdateLive::of(&s).progress.contains("received"));
        s.state = UpdateState::Refused;
        s.code = Some("BAD_SIGNATURE".into());
        s.reason = Some("signed by a stranger".into());
        assert_eq!(
            UpdateLive::of(&s).reason,
            "BAD_SIGNATURE: signed by a stranger"
        );
    }
}
