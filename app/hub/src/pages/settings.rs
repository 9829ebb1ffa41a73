//! `/settings` (administrators): every key of the configuration, editable. The form is
//! generated from the effective configuration ([`super::settings_form`]); a submission stages
//! the changed keys as pending changes through the settings API's own functions
//! (`api::settings::stage_patch`), so the page and `PUT /api/v1/settings/pending` validate
//! alike. A refused value comes back beside its field (the API's `details.key`), with a
//! summary at the top. The pending changes are listed (old → new, secrets only "changed")
//! with Apply (commit: the supervisor restarts only the workers that read a changed section)
//! and Discard. Backup is a download of `GET /api/v1/settings/backup`; restore takes that file
//! back (the script reads the chosen file into the form's text area; without the script, paste
//! it).

use std::collections::BTreeMap;

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use watchpost_config::Role;
use watchpost_config::overlay::is_secret_key;

use super::layout::{self, Flash, FlashQuery, PageCtx, csrf_input, notice};
use super::settings_form::{self, Field, Kind, Section};
use super::with_headers;
use crate::api::settings::{AppliedView, Backup, SettingsView};
use crate::auth::access::{Access, Pages};
use crate::error::ApiError;
use crate::state::HubState;

/// The settings page and its form targets.
pub fn pages() -> Pages {
    let admin = Access::Role(Role::Admin);
    Pages::new()
        .get("/settings", admin, with_headers(get))
        .post("/settings", admin, with_headers(post_stage))
        .post("/settings/apply", admin, with_headers(post_apply))
        .post("/settings/discard", admin, with_headers(post_discard))
        .post("/settings/restore", admin, with_headers(post_restore))
}

/// What the editor shows besides the effective values: the texts the user submitted (when
/// re-rendering a refused form) and the errors by field key.
#[derive(Debug, Default)]
pub struct Edits {
    pub texts: BTreeMap<String, String>,
    pub errors: BTreeMap<String, String>,
    /// Key paths named by the refusal (for the summary), with their messages.
    pub summary: Vec<(String, String)>,
}

impl Edits {
    fn from_form(form: &[(String, String)]) -> Self {
        let mut texts = BTreeMap::new();
        for (k, v) in form {
            texts.insert(k.clone(), v.clone());
        }
        Self {
            texts,
            ..Self::default()
        }
    }
}

/// One input with its label, hint and error.
pub fn field(f: &Field, edits: &Edits) -> Markup {
    let id = f.id();
    let err_id = format!("{id}-error");
    let hint_id = format!("{id}-hint");
    let error = edits.errors.get(&f.key);
    let text = edits.texts.get(&f.key).unwrap_or(&f.text);
    let described = match (error.is_some(), hint(f).is_some()) {
        (true, true) => Some(format!("{err_id} {hint_id}")),
        (true, false) => Some(err_id.clone()),
        (false, true) => Some(hint_id.clone()),
        (false, false) => None,
    };
    let invalid = error.map(|_| "true");
    html! {
        div class="field" {
            label for=(id) { (f.name()) " " code class="muted" { (f.key) } }
            @match f.kind {
                Kind::Bool => {
                    input type="hidden" name=(f.key) value="false";
                    input id=(id) name=(f.key) type="checkbox" value="true"
                        checked[text == "true"] aria-invalid=[invalid]
                        aria-describedby=[described.as_deref()];
                }
                Kind::Integer => {
                    input id=(id) name=(f.key) type="number" step="1" value=(text)
                        aria-invalid=[invalid] aria-describedby=[described.as_deref()];
                }
                Kind::Float => {
                    input id=(id) name=(f.key) type="number" step="any" value=(text)
                        aria-invalid=[invalid] aria-describedby=[described.as_deref()];
                }
                Kind::Secret => {
                    input id=(id) name=(f.key) type="password" value=""
                        autocomplete="new-password"
                        aria-invalid=[invalid] aria-describedby=[described.as_deref()];
                }
                Kind::Toml => {
                    textarea id=(id) name=(f.key) rows=(rows(text)) spellcheck="false"
                        class="toml" aria-invalid=[invalid]
                        aria-describedby=[described.as_deref()] { (text) }
                }
                Kind::Text | Kind::Unset | Kind::List(_) => {
                    input id=(id) name=(f.key) type="text" value=(text)
                        aria-invalid=[invalid] aria-describedby=[described.as_deref()];
                }
            }
            @if let Some(h) = hint(f) {
                span id=(hint_id) class="hint" { (h) }
            }
            @if let Some(e) = error {
                span id=(err_id) class="error" { (e) }
            }
        }
    }
}

fn rows(text: &str) -> usize {
    (text.lines().count() + 1).clamp(3, 20)
}

fn hint(f: &Field) -> Option<String> {
    match f.kind {
        Kind::Secret => Some("Secret: leave empty to keep the current one.".into()),
        Kind::Unset => Some("Not set: leave empty to keep it unset.".into()),
        Kind::List(_) => Some("Comma-separated.".into()),
        Kind::Toml => Some(format!(
            "TOML setting `{0}` (`{0} = …`, `[{0}]` or `[[{0}]]`).",
            f.name()
        )),
        _ => None,
    }
}

/// The editor form: one collapsible fieldset per section. `hidden` are extra hidden inputs
/// (the wizard's step).
pub fn editor(
    ctx: &PageCtx,
    sections: &[Section],
    edits: &Edits,
    action: &str,
    submit: &str,
    open: bool,
) -> Markup {
    html! {
        form method="post" action=(action) class="settings" {
            (csrf_input(ctx))
            @for s in sections {
                @let has_error = s.fields.iter().any(|f| edits.errors.contains_key(&f.key));
                details open[open || has_error] {
                    summary { (s.name) }
                    fieldset id=(format!("s-{}", s.name)) {
                        legend { "[" (s.name) "]" }
                        @for f in &s.fields { (field(f, edits)) }
                    }
                }
            }
            button type="submit" { (submit) }
        }
    }
}

/// The summary of a refused submission: the keys, each linking to its field.
pub fn error_summary(fields: &[Field], edits: &Edits) -> Markup {
    html! {
        @if !edits.summary.is_empty() {
            div class="notice error" role="alert" id="error-summary" {
                p { "These settings were not accepted:" }
                ul {
                    @for (key, message) in &edits.summary {
                        li {
                            @match settings_form::field_of(fields, key) {
                                Some(f) => a href=(format!("#{}", f.id())) { code { (key) } },
                                None => code { (key) },
                            }
                            ": " (message)
                        }
                    }
                }
            }
        }
    }
}

/// The pending changes as `key: old → new` (secrets: "changed").
pub fn pending_diff(ctx: &PageCtx, view: &SettingsView) -> Markup {
    let empty = Value::Null;
    let pending = view.pending.as_ref().unwrap_or(&empty);
    html! {
        section class="card" aria-labelledby="pending-h" {
            h2 id="pending-h" { "Pending changes" }
            @if view.pending_changes.is_empty() {
                p class="muted" { "None: the configuration is as the workers run it." }
            } @else {
                ul class="diff" {
                    @for key in &view.pending_changes {
                        li {
                            code { (key) } ": "
                            @if last_is_secret(key) {
                                "changed"
                            } @else {
                                (show(settings_form::at_path(&view.effective, key)))
                                " → "
                                (show(settings_form::at_path(pending, key)))
                            }
                        }
                    }
                }
                form method="post" action="/settings/apply" class="inline" {
                    (csrf_input(ctx))
                    button type="submit" { "Apply" }
                }
                form method="post" action="/settings/discard" class="inline" {
                    (csrf_input(ctx))
                    button type="submit" class="secondary" { "Discard" }
                }
            }
        }
    }
}

fn last_is_secret(key: &str) -> bool {
    watchpost_config::overlay::key_steps(key)
        .iter()
        .rev()
        .find_map(|s| match s {
            watchpost_config::overlay::KeyStep::Key(k) => Some(is_secret_key(k)),
            watchpost_config::overlay::KeyStep::Index(_) => None,
        })
        .unwrap_or(false)
}

fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "–".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn backup_restore(ctx: &PageCtx) -> Markup {
    html! {
        section class="card" aria-labelledby="backup-h" {
            h2 id="backup-h" { "Backup and restore" }
            p {
                a href="/api/v1/settings/backup" download { "Download a backup" }
                " (the committed settings and the configuration file; secrets sealed under this appliance's device key)."
            }
            form method="post" action="/settings/restore" {
                (csrf_input(ctx))
                div class="field" {
                    label for="restore-file" { "Backup file" }
                    input id="restore-file" type="file" accept="application/json,.json"
                        data-restore-into="restore-text" aria-describedby="restore-hint";
                }
                div class="field" {
                    label for="restore-text" { "Backup (JSON)" }
                    textarea id="restore-text" name="backup" rows="4" spellcheck="false" class="toml" {}
                    span id="restore-hint" class="hint" { "Choosing a file fills this in; without JavaScript, paste the file's text." }
                }
                button type="submit" { "Restore" }
            }
        }
    }
}

/// The whole page body.
pub fn render(ctx: &PageCtx, view: &SettingsView, edits: &Edits, flash: &FlashQuery) -> Markup {
    let sections = settings_form::sections(&view.effective);
    let fields: Vec<Field> = sections.iter().flat_map(|s| s.fields.clone()).collect();
    html! {
        (flash.render())
        (error_summary(&fields, edits))
        p {
            "Changes are staged first, then applied together: only the workers that read a changed section restart. "
            a href="/setup" { "First-boot setup" } " walks through the settings that matter most."
        }
        (pending_diff(ctx, view))
        section aria-labelledby="edit-h" {
            h2 id="edit-h" { "Configuration" }
            (editor(ctx, &sections, edits, "/settings", "Stage changes", false))
        }
        (backup_restore(ctx))
    }
}

/// The outcome of staging a form.
#[derive(Debug)]
pub enum Staged {
    /// These keys are pending now (none: nothing changed).
    Ok(Vec<String>),
    /// Refused: the form again with these errors.
    Refused(Edits),
    /// The settings cannot be read or written at all.
    Failed(ApiError),
}

/// Stages the changed keys of a submitted form (`fields`: what the form was generated from).
pub async fn stage_form(state: &HubState, fields: &[Field], form: &[(String, String)]) -> Staged {
    let parsed = settings_form::parse(fields, form);
    let mut edits = Edits::from_form(form);
    if !parsed.errors.is_empty() {
        edits.summary = parsed
            .errors
            .iter()
            .map(|(k, m)| (k.clone(), m.clone()))
            .collect();
        edits.errors = parsed.errors;
        return Staged::Refused(edits);
    }
    if parsed.changed.is_empty() {
        return Staged::Ok(Vec::new());
    }
    match crate::api::settings::stage_patch(state, parsed.patch).await {
        Ok(_) => Staged::Ok(parsed.changed),
        Err(e) if e.code == "INVALID_SETTING" => {
            refusal_edits(fields, &mut edits, &e);
            Staged::Refused(edits)
        }
        Err(e) => Staged::Failed(e),
    }
}

/// Puts a 422 `INVALID_SETTING` beside its field: `details.key`, `details.message`, and each
/// of `details.problems`.
pub fn refusal_edits(fields: &[Field], edits: &mut Edits, e: &ApiError) {
    let mut named: Vec<(String, String)> = Vec::new();
    let detail = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    if let (Some(k), Some(m)) = (detail(&e.details, "key"), detail(&e.details, "message")) {
        named.push((k, m));
    }
    if let Some(problems) = e.details.get("problems").and_then(Value::as_array) {
        for p in problems {
            if let (Some(k), Some(m)) = (detail(p, "key"), detail(p, "message"))
                && !named.iter().any(|(nk, _)| *nk == k)
            {
                named.push((k, m));
            }
        }
    }
    if named.is_empty() {
        named.push((String::new(), e.message.clone()));
    }
    for (key, message) in &named {
        if let Some(f) = settings_form::field_of(fields, key) {
            let text = if *key == f.key {
                message.clone()
            } else {
                format!("{key}: {message}")
            };
            edits
                .errors
                .entry(f.key.clone())
                .and_modify(|m| {
                    m.push_str("; ");
                    m.push_str(&text);
                })
                .or_insert(text);
        }
    }
    edits.summary = named;
}

/// A short account of an apply: what restarted and what waits for a restart.
pub fn applied_message(a: &AppliedView) -> String {
    let r = &a.apply;
    let mut parts = Vec::new();
    if a.changed.is_empty() {
        parts.push("Nothing changed.".to_string());
    } else {
        parts.push(format!("Applied {}.", a.changed.join(", ")));
    }
    let list = |v: &[String]| v.join(", ");
    let restarted: Vec<String> = r.restarted.iter().map(ToString::to_string).collect();
    let started: Vec<String> = r.started.iter().map(ToString::to_string).collect();
    let stopped: Vec<String> = r.stopped.iter().map(ToString::to_string).collect();
    if restarted.is_empty() {
        parts.push("No worker restarted.".into());
    } else {
        parts.push(format!("Restarted: {}.", list(&restarted)));
    }
    if !started.is_empty() {
        parts.push(format!("Started: {}.", list(&started)));
    }
    if !stopped.is_empty() {
        parts.push(format!("Stopped: {}.", list(&stopped)));
    }
    if !r.needs_appliance_restart.is_empty() {
        parts.push(format!(
            "Takes effect when the appliance restarts: {}.",
            list(&r.needs_appliance_restart)
        ));
    }
    parts.join(" ")
}

/// `303` to `back` with a message.
pub fn back_with(back: &str, result: Result<String, String>) -> Response {
    let (key, m) = match result {
        Ok(m) => ("ok", m),
        Err(m) => ("error", m),
    };
    let sep = if back.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{back}{sep}{key}={}", layout::url_encode(&m))).into_response()
}

fn unavailable(ctx: &PageCtx, e: &ApiError) -> Response {
    layout::page_with_status(
        StatusCode::OK,
        "Settings",
        ctx,
        notice(
            Flash::Error,
            &format!("The settings cannot be read: {}", e.message),
        ),
    )
}

/// `GET /settings`.
pub async fn get(
    State(state): State<HubState>,
    ctx: PageCtx,
    Query(flash): Query<FlashQuery>,
) -> Response {
    match crate::api::settings::load_view(&state).await {
        Ok(view) => layout::page(
            "Settings",
            &ctx,
            render(&ctx, &view, &Edits::default(), &flash),
        ),
        Err(e) => unavailable(&ctx, &e),
    }
}

/// `POST /settings`: stage the changed keys.
pub async fn post_stage(
    State(state): State<HubState>,
    ctx: PageCtx,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let view = match crate::api::settings::load_view(&state).await {
        Ok(v) => v,
        Err(e) => return unavailable(&ctx, &e),
    };
    let fields: Vec<Field> = settings_form::sections(&view.effective)
        .into_iter()
        .flat_map(|s| s.fields)
        .collect();
    match stage_form(&state, &fields, &form).await {
        Staged::Ok(changed) if changed.is_empty() => {
            back_with("/settings", Ok("Nothing changed.".into()))
        }
        Staged::Ok(changed) => back_with(
            "/settings",
            Ok(format!(
                "Staged {}. Apply them to take effect.",
                changed.join(", ")
            )),
        ),
        Staged::Refused(edits) => {
            // The pending list as it is now (the refused change is not in it).
            let view = crate::api::settings::load_view(&state)
                .await
                .unwrap_or(view);
            layout::page_with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Settings",
                &ctx,
                render(&ctx, &view, &edits, &FlashQuery::default()),
            )
        }
        Staged::Failed(e) => back_with("/settings", Err(e.message)),
    }
}

/// `POST /settings/apply`: commit the pending changes.
pub async fn post_apply(State(state): State<HubState>) -> Response {
    let result = crate::api::settings::commit_pending(&state)
        .await
        .map(|a| applied_message(&a))
        .map_err(|e| e.message);
    back_with("/settings", result)
}

/// `POST /settings/discard`.
pub async fn post_discard(State(state): State<HubState>) -> Response {
    let result = crate::api::settings::discard_pending(&state)
        .await
        .map(|()| "Pending changes discarded.".to_string())
        .map_err(|e| e.message);
    back_with("/settings", result)
}

/// The restore form.
#[derive(Debug, Deserialize)]
pub struct RestoreForm {
    #[serde(default)]
    pub backup: String,
}

/// `POST /settings/restore`.
pub async fn post_restore(
    State(state): State<HubState>,
    Form(form): Form<RestoreForm>,
) -> Response {
    let doc: Backup = match serde_json::from_str(&form.backup) {
        Ok(d) => d,
        Err(e) => {
            return back_with(
                "/settings",
                Err(format!("That is not a settings backup: {e}")),
            );
        }
    };
    let result = crate::api::settings::restore_backup(&state, doc)
        .await
        .map(|a| {
            let same = match a.base_file_matches {
                Some(false) => " The backup was made with another configuration file.",
                _ => "",
            };
            format!("Restored. {}{same}", applied_message(&a))
        })
        .map_err(|e| e.message);
    back_with("/settings", result)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::pages::layout::tests_support::ctx;

    fn view() -> SettingsView {
        SettingsView {
            effective: json!({
                "hub": {"enabled": true, "events_max_age_days": 30, "name": "box",
                        "tags": ["a"]},
                "bus": {"password": "***"},
                "fieldbus": {"relays": [{"module": "m1", "unit_id": 3}]},
            }),
            pending: Some(json!({"hub": {"events_max_age_days": 7}, "bus": {"password": "***"}})),
            overlay: json!({}),
            pending_changes: vec!["bus.password".into(), "hub.events_max_age_days".into()],
        }
    }

    #[test]
    fn every_input_has_a_label_and_the_form_csrf() {
        let html = render(
            &ctx(Role::Admin),
            &view(),
            &Edits::default(),
            &FlashQuery::default(),
        )
        .into_string();
        let fields: Vec<Field> = settings_form::sections(&view().effective)
            .into_iter()
            .flat_map(|s| s.fields)
            .collect();
        for f in &fields {
            assert!(
                html.contains(&format!("<label for=\"{}\">", f.id())),
                "no label for {}",
                f.key
            );
            assert!(html.contains(&format!("id=\"{}\"", f.id())), "{}", f.key);
        }
        assert!(html.contains("<details><summary>hub</summary><fieldset"));
        assert!(html.contains("type=\"hidden\" name=\"hub.enabled\" value=\"false\""));
        assert!(html.contains("type=\"checkbox\" value=\"true\" checked"));
        assert!(html.contains("type=\"password\" value=\"\""));
        assert!(html.contains("[[relays]]"));
        assert!(html.contains("name=\"csrf\" value=\"tok123\""));
        // The diff: a value old → new, a secret only "changed".
        assert!(
            html.contains("hub.events_max_age_days</code>: 30 → 7"),
            "{html}"
        );
        assert!(html.contains("bus.password</code>: changed"));
        assert!(html.contains("action=\"/settings/apply\""));
        assert!(html.contains("href=\"/api/v1/settings/backup\""));
        assert!(!html.contains("<script>") && !html.contains("style="));
    }

    #[test]
    fn a_refusal_sits_beside_its_field_and_in_the_summary() {
        let v = view();
        let fields: Vec<Field> = settings_form::sections(&v.effective)
            .into_iter()
            .flat_map(|s| s.fields)
            .collect();
        let mut edits = Edits::from_form(&[("hub.events_max_age_days".into(), "-1".into())]);
        let e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_SETTING", "x")
            .with_details(json!({"key": "fieldbus.relays[0].unit_id", "message": "out of range",
                                 "problems": [{"key": "hub.events_max_age_days", "message": "too small"}]}));
        refusal_edits(&fields, &mut edits, &e);
        let html = render(&ctx(Role::Admin), &v, &edits, &FlashQuery::default()).into_string();
        assert!(html.contains(
            "aria-invalid=\"true\" aria-describedby=\"f-fieldbus.relays-error f-fieldbus.relays-hint\""
        ), "{html}");
        assert!(html.contains(
            "<span id=\"f-fieldbus.relays-error\" class=\"error\">fieldbus.relays[0].unit_id: out of range</span>"
        ));
        assert!(html.contains(
            "<span id=\"f-hub.events_max_age_days-error\" class=\"error\">too small</span>"
        ));
        // The submitted text is kept.
        assert!(html.contains("value=\"-1\""));
        assert!(html.contains("id=\"error-summary\""));
        assert!(
            html.contains("href=\"#f-fieldbus.relays\"><code>fieldbus.relays[0].unit_id</code>")
        );
        // Sections with an error are open.
        assert!(html.contains("<details open><summary>fieldbus</summary>"));
    }
}
