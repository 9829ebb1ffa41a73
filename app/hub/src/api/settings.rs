//! `/api/v1/settings`: the configuration, editable at run time (docs/settings.md).
//!
//! Changes go pending → commit → apply, as in Bottlerocket:
//!
//! - `GET /settings` — the effective configuration (file, settings overlay, environment, as
//!   the workers load it now), the pending changes and the committed overlay; every secret
//!   reads `"***"`.
//! - `PUT /settings/pending` — a partial configuration in the TOML file's shape, merged into
//!   the pending changes and validated together with the file and the committed overlay
//!   (422 `INVALID_SETTING` naming the key). A secret sent as `"***"` keeps the current one.
//! - `DELETE /settings/pending` — discards the pending changes.
//! - `POST /settings/commit` — writes the pending changes into
//!   `<data_dir>/settings/overlay.toml` (atomically) and asks the supervisor to apply it: it
//!   restarts only the workers whose sections changed. The hub may be one of them: the answer
//!   comes first.
//! - `GET /settings/backup` — the overlay and the configuration file in one JSON file, their
//!   secrets sealed under the device key; `POST /settings/restore` takes it back (on the same
//!   box, or one given a copy of `<data_dir>/secrets/device.key`).
//!
//! The pending changes are kept in the hub's settings store (`settings/pending`, as TOML
//! text); each read-modify-write runs in one store write transaction, so two edits cannot
//! lose each other. Secrets are sealed at rest (`watchpost_config::secrets`): the overlay and
//! the pending changes are written with every secret as `"sealed:v1:…"` under the device key
//! and opened when read; everything in between (the `"***"` merge, validation, diffs) works
//! on opened values. Commits and restores are recorded in the event log (`settings.committed`,
//! `settings.restored`) with the changed key paths, never a value.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use watchpost_config::overlay::{self, REDACTED};
use watchpost_config::secrets::{self, SecretError, is_secret_key};
use watchpost_config::{ConfigError, toml};
use watchpost_runtime::proto::ApplyReport;
use watchpost_runtime::seal::Sealer;
use watchpost_store::{JsonBody, NewEvent, Severity};

use crate::error::{ApiError, ErrorBody};
use crate::state::HubState;

pub fn router() -> OpenApiRouter<HubState> {
    OpenApiRouter::new()
        .routes(routes!(get_settings))
        .routes(routes!(put_pending, delete_pending))
        .routes(routes!(commit))
        .routes(routes!(backup))
        .routes(routes!(restore))
}

/// The settings store key of the pending changes (TOML text).
const PENDING_KEY: &str = "settings/pending";
/// How long the supervisor has to answer an apply (it answers before restarting anything).
const APPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// `format` of a backup file.
const BACKUP_FORMAT: &str = "watchpost-settings-backup";
const BACKUP_VERSION: u32 = 1;
/// A sealed secret in a backup: this prefix, then hex of nonce ‖ ciphertext.
const SEALED_PREFIX: &str = "sealed:";

/// The configuration: effective, pending and committed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SettingsView {
    /// The configuration the workers load now: the file, the committed overlay and the
    /// environment overrides, every key with its value (secrets read `"***"`).
    #[schema(value_type = Object)]
    pub effective: Value,
    /// Changes not committed yet (the TOML file's shape), or `null`.
    #[schema(value_type = Option<Object>)]
    pub pending: Option<Value>,
    /// The committed overlay (`<data_dir>/settings/overlay.toml`); `{}` when there is none.
    #[schema(value_type = Object)]
    pub overlay: Value,
    /// Key paths the pending changes would change, e.g. `hub.events_max_age_days`.
    pub pending_changes: Vec<String>,
}

/// What a commit or a restore did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppliedView {
    /// Key paths of the overlay that changed (never their values).
    pub changed: Vec<String>,
    /// What the supervisor did: the sections that changed, the workers restarted, started,
    /// stopped, and the sections that wait for a restart of the appliance.
    pub apply: ApplyReport,
    /// Restores only: whether the backup's configuration file is this appliance's (the file
    /// is not restored; a different one means the result may differ from the backed-up box).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_file_matches: Option<bool>,
}

/// A settings backup (`GET /settings/backup`). Its secrets are sealed under the device key
/// (`<data_dir>/secrets/device.key`): it restores only on the same appliance, or on one given
/// a copy of that key.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// Always `watchpost-settings-backup`.
    pub format: String,
    /// Format version, 1.
    pub version: u32,
    /// When it was made (µs since the Unix epoch).
    pub created_us: u64,
    /// The firmware version that made it.
    pub firmware: String,
    /// The committed overlay, secrets as `"sealed:<hex>"`.
    #[schema(value_type = Object)]
    pub overlay: serde_json::Map<String, Value>,
    /// The configuration file the appliance runs with.
    pub base_file: BackupFile,
    /// The users of the appliance's user table, each with its stored record (password hash,
    /// role, second factor) sealed; a restore puts them back.
    #[serde(default)]
    pub users: Vec<BackupUser>,
}

/// A user in a backup.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupUser {
    pub name: String,
    /// `admin`, `operator` or `viewer`.
    #[schema(value_type = String)]
    pub role: watchpost_config::Role,
    /// The user's record, sealed under the device key (absent in backups of older firmware).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

/// The configuration file in a backup.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupFile {
    /// Where it was.
    pub path: String,
    /// SHA-256 of its text (hex).
    pub sha256: String,
    /// Its text, sealed (it holds secrets), hex of nonce ‖ ciphertext.
    pub sealed: String,
}

/// The configuration file, its overlay and the environment the hub's workers run with.
struct Files {
    base_path: PathBuf,
    base_text: String,
    data_dir: PathBuf,
    overlay_path: PathBuf,
    env: Vec<(String, String)>,
}

impl Files {
    fn of(state: &HubState) -> Result<Self, ApiError> {
        let base_path = state
            .ctx
            .config_file()
            .map(Path::to_path_buf)
            .ok_or_else(|| {
                ApiError::unavailable(
                    "SETTINGS_UNAVAILABLE",
                    "the configuration file is not known (the hub runs without a supervisor)",
                )
            })?;
        let base_text = watchpost_config::read_base(&base_path)
            .map_err(|e| ApiError::internal("CONFIG_UNREADABLE", e.to_string()))?;
        Ok(Self {
            base_path,
            base_text,
            data_dir: state.config.system.data_dir.clone(),
            overlay_path: overlay::overlay_path(&state.config.system.data_dir),
            env: std::env::vars().collect(),
        })
    }

    /// The committed overlay, its secrets opened.
    fn committed(&self) -> Result<toml::Table, ApiError> {
        overlay::read_overlay_in(&self.data_dir)
            .map(Option::unwrap_or_default)
            .map_err(|e| ApiError::internal("OVERLAY_UNREADABLE", e.to_string()))
    }

    /// The configuration with `candidate` as the overlay, or 422 `INVALID_SETTING`.
    fn validate(&self, candidate: &toml::Table) -> Result<watchpost_config::Config, ApiError> {
        watchpost_config::validate_overlay(
            &self.base_text,
            &self.base_path,
            candidate,
            &self.overlay_path,
            &self.env,
        )
        .map_err(invalid_setting)
    }
}

/// 422 `INVALID_SETTING` with `details: {key, message, problems}`. A rejected secret's value is
/// not repeated.
fn invalid_setting(e: ConfigError) -> ApiError {
    let key = e.key().unwrap_or_default().to_string();
    let secret = overlay::key_steps(&key)
        .last()
        .is_some_and(|s| matches!(s, overlay::KeyStep::Key(k) if is_secret_key(k)));
    let parse_level = matches!(e, ConfigError::Parse { .. } | ConfigError::Overlay { .. });
    let message = if secret && parse_level {
        "not a valid value here (it is a secret: the value is not repeated)".to_string()
    } else {
        e.reason()
    };
    let problems: Vec<Value> = e
        .problems()
        .iter()
        .map(|p| json!({"key": p.key, "message": p.message}))
        .collect();
    let text = if key.is_empty() {
        message.clone()
    } else {
        format!("{key}: {message}")
    };
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_SETTING", text)
        .with_details(json!({"key": key, "message": message, "problems": problems}))
}

fn invalid_at(key: &str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_SETTING",
        format!("{key}: {message}"),
    )
    .with_details(json!({"key": key, "message": message, "problems": []}))
}

/// A table as JSON with its secrets redacted.
fn redacted(value: &impl Serialize) -> Value {
    let mut v = serde_json::to_value(value).unwrap_or(Value::Null);
    overlay::redact_secrets(&mut v);
    v
}

fn read_pending(
    data_dir: &Path,
    txn: &watchpost_store::SettingsTxn<'_>,
) -> Result<toml::Table, ApiError> {
    let text: Option<String> = txn.get(PENDING_KEY).map_err(ApiError::from)?;
    match text {
        None => Ok(toml::Table::new()),
        Some(t) => parse_pending(data_dir, &t),
    }
}

fn pending_of(state: &HubState) -> Result<Option<toml::Table>, ApiError> {
    let text: Option<String> = state.store.settings().get(PENDING_KEY)?;
    text.map(|t| parse_pending(&state.config.system.data_dir, &t))
        .transpose()
}

/// The stored pending changes, their secrets opened.
fn parse_pending(data_dir: &Path, text: &str) -> Result<toml::Table, ApiError> {
    let mut table: toml::Table = toml::from_str(text)
        .map_err(|e| ApiError::internal("PENDING_UNREADABLE", e.message().to_string()))?;
    secrets::open_table_in(data_dir, &mut table)
        .map_err(|e| ApiError::internal("PENDING_UNREADABLE", e.to_string()))?;
    Ok(table)
}

/// The pending changes as stored: TOML text with every secret sealed.
fn pending_text(data_dir: &Path, pending: &toml::Table) -> Result<String, ApiError> {
    let mut sealed = pending.clone();
    seal(data_dir, &mut sealed)?;
    toml::to_string(&sealed).map_err(|e| ApiError::internal("PENDING_UNREADABLE", e.to_string()))
}

/// Seals every secret of `table` under the device key of `data_dir` (created if missing).
fn seal(data_dir: &Path, table: &mut toml::Table) -> Result<(), ApiError> {
    let sealer = Sealer::for_data_dir(data_dir).map_err(device_key_error)?;
    secrets::seal_table(&sealer, table).map_err(|e| match e {
        SecretError::Seal { source, .. } => device_key_error(source),
        SecretError::Open { .. } | SecretError::NoKey { .. } => {
            ApiError::internal("DEVICE_KEY", e.to_string())
        }
    })
}

fn view(files: &Files, pending: Option<toml::Table>) -> Result<SettingsView, ApiError> {
    let committed = files.committed()?;
    let effective = watchpost_config::load_with_env(&files.base_path, &files.env).map_err(|e| {
        ApiError::internal(
            "CONFIG_INVALID",
            format!("the configuration does not load: {e}"),
        )
    })?;
    let pending_changes = match &pending {
        Some(p) => {
            overlay::changed_paths(&committed, &overlay::merge_overlay(committed.clone(), p))
        }
        None => Vec::new(),
    };
    Ok(SettingsView {
        effective: redacted(&effective),
        pending: pending.as_ref().map(redacted),
        overlay: redacted(&committed),
        pending_changes,
    })
}

/// The effective configuration, the pending changes and the committed overlay.
#[utoipa::path(
    get,
    path = "/settings",
    tag = "settings",
    extensions(("x-watchpost-role" = json!("admin"))),
    responses(
        (status = 200, description = "The configuration (secrets read `***`)", body = SettingsView),
        (status = 500, description = "`CONFIG_UNREADABLE`, `CONFIG_INVALID`, `OVERLAY_UNREADABLE`, `PENDING_UNREADABLE`, `STORE_ERROR`", body = ErrorBody),
        (status = 503, description = "`SETTINGS_UNAVAILABLE`: the hub runs without a supervisor", body = ErrorBody),
    ),
)]
async fn get_settings(State(state): State<HubState>) -> Result<Json<SettingsView>, ApiError> {
    load_view(&state).await.map(Json)
}

/// The effective configuration, the pending changes and the committed overlay (what
/// `GET /settings` answers; the settings page reads the same).
pub(crate) async fn load_view(state: &HubState) -> Result<SettingsView, ApiError> {
    let s = state.clone();
    run_blocking(move || {
        let files = Files::of(&s)?;
        view(&files, pending_of(&s)?)
    })
    .await
}

/// Merges a partial configuration into the pending changes, validated with everything else.
#[utoipa::path(
    put,
    path = "/settings/pending",
    tag = "settings",
    extensions(("x-watchpost-role" = json!("admin"))),
    request_body(content = Object, description = "A partial configuration in the TOML file's shape, e.g. `{\"hub\": {\"events_max_age_days\": 30}}`. Tables merge key by key, arrays and values replace; a secret sent as `\"***\"` keeps the current one."),
    responses(
        (status = 200, description = "The pending changes are stored", body = SettingsView),
        (status = 400, description = "`INVALID_BODY`: not a JSON object", body = ErrorBody),
        (status = 422, description = "`INVALID_SETTING`: `details.key` names the rejected key, `details.message` says why", body = ErrorBody),
        (status = 500, description = "`CONFIG_UNREADABLE`, `CONFIG_INVALID`, `OVERLAY_UNREADABLE`, `PENDING_UNREADABLE`, `STORE_ERROR`", body = ErrorBody),
        (status = 503, description = "`SETTINGS_UNAVAILABLE`: the hub runs without a supervisor", body = ErrorBody),
    ),
)]
async fn put_pending(
    State(state): State<HubState>,
    crate::api::extract::Json(body): crate::api::extract::Json<Value>,
) -> Result<Json<SettingsView>, ApiError> {
    stage_patch(&state, body).await.map(Json)
}

/// Merges `body` (a partial configuration) into the pending changes, validated with the file
/// and the committed overlay (what `PUT /settings/pending` does; the settings page's form too).
pub(crate) async fn stage_patch(state: &HubState, body: Value) -> Result<SettingsView, ApiError> {
    let Value::Object(_) = body else {
        return Err(ApiError::bad_request(
            "INVALID_BODY",
            "the body must be a JSON object (a partial configuration)",
        ));
    };
    let s = state.clone();
    run_blocking(move || {
        let files = Files::of(&s)?;
        let committed = files.committed()?;
        let pending = s
            .store
            .settings()
            .write(|txn| Ok(stage(&files, &committed, txn, body)))??;
        view(&files, Some(pending))
    })
    .await
}

/// Merges `patch` into the pending changes inside `txn`: the new pending changes, or why not.
fn stage(
    files: &Files,
    committed: &toml::Table,
    txn: &mut watchpost_store::SettingsTxn<'_>,
    mut patch: Value,
) -> Result<toml::Table, ApiError> {
    let pending = read_pending(&files.data_dir, txn)?;
    if let Some(key) = null_at(&patch, "") {
        return Err(invalid_at(
            &key,
            "null is not a configuration value (leave the key out)",
        ));
    }
    // "***" keeps the current secret: the one of the configuration with the pending changes.
    let current = files.validate(&overlay::merge_overlay(committed.clone(), &pending))?;
    let current = serde_json::to_value(&current).unwrap_or(Value::Null);
    keep_secrets(&mut patch, Some(&current), "")?;
    let patch: toml::Table = serde_json::from_value(patch)
        .map_err(|e| ApiError::bad_request("INVALID_BODY", e.to_string()))?;
    let pending = overlay::merge_overlay(pending, &patch);
    files.validate(&overlay::merge_overlay(committed.clone(), &pending))?;
    txn.put(PENDING_KEY, &pending_text(&files.data_dir, &pending)?)?;
    Ok(pending)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The key path of the first `null` in `v`.
fn null_at(v: &Value, path: &str) -> Option<String> {
    match v {
        Value::Null => Some(path.to_string()),
        Value::Object(m) => m.iter().find_map(|(k, x)| null_at(x, &join(path, k))),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| null_at(x, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// Replaces every secret given as `"***"` in `patch` by the value at the same place of
/// `current` (array elements matched by their `id` or `name`, else by position).
fn keep_secrets(patch: &mut Value, current: Option<&Value>, path: &str) -> Result<(), ApiError> {
    match patch {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let p = join(path, k);
                let cur = current.and_then(|c| c.get(k));
                if is_secret_key(k) && v.as_str() == Some(REDACTED) {
                    match cur {
                        Some(c) if !c.is_null() => *v = c.clone(),
                        _ => {
                            return Err(invalid_at(
                                &p,
                                "`***` keeps the current secret, but there is none here",
                            ));
                        }
                    }
                } else {
                    keep_secrets(v, cur, &p)?;
                }
            }
        }
        Value::Array(items) => {
            let cur_items = current.and_then(Value::as_array);
            for (i, item) in items.iter_mut().enumerate() {
                let ident = |x: &Value| {
                    x.get("id")
                        .or_else(|| x.get("name"))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                };
                let cur = cur_items.and_then(|c| match ident(item) {
                    Some(id) => c.iter().find(|x| ident(x).as_deref() == Some(id.as_str())),
                    None => c.get(i),
                });
                keep_secrets(item, cur, &format!("{path}[{i}]"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Discards the pending changes.
#[utoipa::path(
    delete,
    path = "/settings/pending",
    tag = "settings",
    extensions(("x-watchpost-role" = json!("admin"))),
    responses(
        (status = 204, description = "Discarded (or there were none)"),
        (status = 500, description = "`STORE_ERROR`", body = ErrorBody),
    ),
)]
async fn delete_pending(State(state): State<HubState>) -> Result<StatusCode, ApiError> {
    discard_pending(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Discards the pending changes (or there were none).
pub(crate) async fn discard_pending(state: &HubState) -> Result<(), ApiError> {
    state
        .blocking(|store| store.settings().remove(PENDING_KEY))
        .await?;
    Ok(())
}

/// Writes the pending changes into the overlay and applies it: only the workers whose
/// sections changed restart.
#[utoipa::path(
    post,
    path = "/settings/commit",
    tag = "settings",
    extensions(("x-watchpost-role" = json!("admin"))),
    responses(
        (status = 200, description = "Committed and applied", body = AppliedView),
        (status = 409, description = "`NO_PENDING_CHANGES`", body = ErrorBody),
        (status = 422, description = "`INVALID_SETTING` (the configuration changed underneath, e.g. the file), `APPLY_REFUSED` (the supervisor could not load it; nothing was changed)", body = ErrorBody),
        (status = 500, description = "`CONFIG_UNREADABLE`, `OVERLAY_UNREADABLE`, `OVERLAY_WRITE_FAILED`, `PENDING_UNREADABLE`, `STORE_ERROR`", body = ErrorBody),
        (status = 503, description = "`SETTINGS_UNAVAILABLE`, `SUPERVISOR_UNAVAILABLE` (nothing was changed)", body = ErrorBody),
    ),
)]
async fn commit(State(state): State<HubState>) -> Result<Json<AppliedView>, ApiError> {
    commit_pending(&state).await.map(Json)
}

/// Writes the pending changes into the overlay and has the supervisor apply it (what
/// `POST /settings/commit` does; the settings page's "Apply" too).
pub(crate) async fn commit_pending(state: &HubState) -> Result<AppliedView, ApiError> {
    supervised(state)?;
    let s = state.clone();
    let (files, before, after, pending) = run_blocking(move || {
        let files = Files::of(&s)?;
        let (before, after, pending) = s.store.settings().write(|txn| {
            caught(|| {
                let pending = read_pending(&files.data_dir, txn)?;
                if txn.get::<String>(PENDING_KEY)?.is_none() {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "NO_PENDING_CHANGES",
                        "there are no pending changes to commit",
                    ));
                }
                let before = files.committed()?;
                let after = overlay::merge_overlay(before.clone(), &pending);
                files.validate(&after)?;
                write_overlay(&files, &after)?;
                txn.remove(PENDING_KEY)?;
                Ok((before, after, pending))
            })
        })??;
        Ok((files, before, after, pending))
    })
    .await?;
    let changed = overlay::changed_paths(&before, &after);
    let apply = apply_or_roll_back(state, &files, &before, Some(&pending)).await?;
    record(state, "settings.committed", &changed, &apply).await;
    Ok(AppliedView {
        changed,
        apply,
        base_file_matches: None,
    })
}

fn supervised(state: &HubState) -> Result<(), ApiError> {
    if state.ctx.is_supervised() {
        Ok(())
    } else {
        Err(ApiError::unavailable(
            "SUPERVISOR_UNAVAILABLE",
            "the hub runs without a supervisor: nothing could apply the settings",
        ))
    }
}

/// Asks the supervisor to apply the overlay just written. When it refuses or does not answer,
/// the overlay `before` is put back (and the pending changes, for a commit).
async fn apply_or_roll_back(
    state: &HubState,
    files: &Files,
    before: &toml::Table,
    pending: Option<&toml::Table>,
) -> Result<ApplyReport, ApiError> {
    let failure = match state.ctx.apply_config(APPLY_TIMEOUT).await {
        Ok(report) if report.error.is_none() => return Ok(report),
        Ok(report) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "APPLY_REFUSED",
            format!(
                "the supervisor did not apply the settings: {}",
                report.error.unwrap_or_default()
            ),
        ),
        Err(e) => ApiError::unavailable(
            "SUPERVISOR_UNAVAILABLE",
            format!("the supervisor did not answer: {e}"),
        ),
    };
    let data_dir = files.data_dir.clone();
    let path = files.overlay_path.clone();
    let before = before.clone();
    let pending = pending.cloned();
    let s = state.clone();
    let rolled = run_blocking(move || {
        write_overlay_at(&data_dir, &path, &before)?;
        if let Some(p) = pending {
            s.store
                .settings()
                .put(PENDING_KEY, &pending_text(&data_dir, &p)?)?;
        }
        Ok(())
    })
    .await;
    if let Err(e) = rolled {
        tracing::error!(error = %e.message, "cannot put the previous settings overlay back");
    }
    Err(failure)
}

/// Writes `table` (secrets opened) as the overlay of `files`, its secrets sealed.
fn write_overlay(files: &Files, table: &toml::Table) -> Result<(), ApiError> {
    write_overlay_at(&files.data_dir, &files.overlay_path, table)
}

/// Writes `table` to `path` atomically with every secret sealed under the device key of
/// `data_dir`: a temporary file (mode 0600) written and synced, renamed over, the directory
/// synced.
fn write_overlay_at(data_dir: &Path, path: &Path, table: &toml::Table) -> Result<(), ApiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| {
        ApiError::internal(
            "OVERLAY_WRITE_FAILED",
            format!("writing {}: {e}", path.display()),
        )
    };
    let mut sealed = table.clone();
    seal(data_dir, &mut sealed)?;
    let text = format!(
        "# Settings changed at run time (the hub's settings API). Written by the appliance;\n\
         # deep-merged over the configuration file; secrets sealed under the device key.\n\
         # See docs/settings.md.\n{}",
        toml::to_string(&sealed).map_err(|e| fail(std::io::Error::other(e)))?
    );
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let tmp = path.with_extension("toml.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(text.as_bytes()).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(fail)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fail)
}

/// Records a commit or restore in the event log: the key paths, never a value.
async fn record(state: &HubState, kind: &str, changed: &[String], apply: &ApplyReport) {
    let body = JsonBody::from_value(&json!({
        "changed": changed,
        "restarted": apply.restarted,
        "started": apply.started,
        "stopped": apply.stopped,
        "needs_appliance_restart": apply.needs_appliance_restart,
    }));
    let Ok(body) = body else { return };
    let event =
        NewEvent::new(watchpost_store::now_us(), kind, "settings", Severity::Info).with_body(body);
    let log = state.store.events();
    match tokio::task::spawn_blocking(move || log.append(event)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot record the settings change"),
        Err(e) => tracing::warn!(error = %e, "cannot record the settings change"),
    }
}

/// A backup of the settings: the overlay and the configuration file, secrets sealed.
#[utoipa::path(
    get,
    path = "/settings/backup",
    tag = "settings",
    extensions(("x-watchpost-role" = json!("admin"))),
    responses(
        (status = 200, description = "The backup, as a file (`Content-Disposition: attachment`). Its secrets are sealed under this appliance's device key.", body = Backup, content_type = "application/json"),
        (status = 500, description = "`CONFIG_UNREADABLE`, `OVERLAY_UNREADABLE`, `DEVICE_KEY`", body = ErrorBody),
        (status = 503, description = "`SETTINGS_UNAVAILABLE`: the hub runs without a supervisor", body = ErrorBody),
    ),
)]
async fn backup(State(state): State<HubState>) -> Result<Response, ApiError> {
    let s = state.clone();
    let doc = run_blocking(move || {
        let files = Files::of(&s)?;
        let sealer = sealer(&s)?;
        let mut overlay_json = serde_json::to_value(files.committed()?).unwrap_or(json!({}));
        seal_secrets(&sealer, &mut overlay_json, "")?;
        let Value::Object(overlay) = overlay_json else {
            return Err(ApiError::internal(
                "OVERLAY_UNREADABLE",
                "the overlay is not a table",
            ));
        };
        let sealed = sealer
            .seal("backup:base_file", files.base_text.as_bytes())
            .map_err(device_key_error)?;
        Ok(Backup {
            format: BACKUP_FORMAT.into(),
            version: BACKUP_VERSION,
            created_us: watchpost_store::now_us(),
            firmware: s.version.into(),
            overlay,
            base_file: BackupFile {
                path: files.base_path.display().to_string(),
                sha256: sha256_hex(files.base_text.as_bytes()),
                sealed,
            },
            users: s
                .auth
                .users()
                .into_iter()
                .map(|u| {
                    let sealed = s
                        .auth
                        .export_user(&u.name)
                        .map(|r| sealer.seal(&format!("backup:user:{}", u.name), r.as_bytes()))
                        .transpose()
                        .map_err(device_key_error)?;
                    Ok(BackupUser {
                        name: u.name,
                        role: u.role,
                        sealed,
                    })
                })
                .collect::<Result<_, ApiError>>()?,
        })
    })
    .await?;
    let body = serde_json::to_vec_pretty(&doc)
        .map_err(|e| ApiError::internal("BACKUP_FAILED", e.to_string()))?;
    let name = format!(
        "attachment; filename=\"watchpost-settings-{}.json\"",
        doc.created_us / 1_000_000
    );
    let disposition =
        HeaderValue::from_str(&name).unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

fn sealer(state: &HubState) -> Result<Sealer, ApiError> {
    Sealer::for_data_dir(&state.config.system.data_dir).map_err(device_key_error)
}

fn device_key_error(e: watchpost_runtime::seal::SealError) -> ApiError {
    ApiError::internal("DEVICE_KEY", e.to_string())
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    watchpost_runtime::seal::hex(&sha2::Sha256::digest(b))
}

/// Seals every secret of `v` (a string under a secret key) as `"sealed:<hex>"`, bound to its
/// key path.
fn seal_secrets(sealer: &Sealer, v: &mut Value, path: &str) -> Result<(), ApiError> {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                let p = join(path, k);
                match x {
                    Value::String(secret) if is_secret_key(k) => {
                        let sealed = sealer
                            .seal(&format!("backup:{p}"), secret.as_bytes())
                            .map_err(device_key_error)?;
                        *x = Value::String(format!("{SEALED_PREFIX}{sealed}"));
                    }
                    _ => seal_secrets(sealer, x, &p)?,
                }
            }
        }
        Value::Array(items) => {
            for (i, x) in items.iter_mut().enumerate() {
                seal_secrets(sealer, x, &format!("{path}[{i}]"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Opens what [`seal_secrets`] sealed; 422 `BACKUP_KEY_MISMATCH` when the key is another's.
fn open_secrets(sealer: &Sealer, v: &mut Value, path: &str) -> Result<(), ApiError> {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                let p = join(path, k);
                match x {
                    Value::String(s) if is_secret_key(k) => {
                        let Some(sealed) = s.strip_prefix(SEALED_PREFIX) else {
                            return Err(invalid_backup(format!("the secret `{p}` is not sealed")));
                        };
                        let plain = sealer
                            .open(&format!("backup:{p}"), sealed)
                            .map_err(|_| key_mismatch(&p))?;
                        *x = Value::String(String::from_utf8(plain).map_err(|_| key_mismatch(&p))?);
                    }
                    _ => open_secrets(sealer, x, &p)?,
                }
            }
        }
        Value::Array(items) => {
            for (i, x) in items.iter_mut().enumerate() {
                open_secrets(sealer, x, &format!("{path}[{i}]"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn invalid_backup(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BACKUP", message)
}

fn key_mismatch(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "BACKUP_KEY_MISMATCH",
        format!(
            "`{what}` of the backup does not open with this appliance's device key: restore on \
             the appliance that made it, or copy its secrets/device.key here first"
        ),
    )
}

/// Restores a backup: validates it, writes the overlay, applies it. The configuration file
/// is not written; the answer says whether it is the backed-up one.
#[utoipa::path(
    post,
    path = "/settings/restore",
    tag = "settings",
    extensions(("x-watchpost-role" = json!("admin"))),
    request_body = Backup,
    responses(
        (status = 200, description = "Restored and applied; pending changes are discarded", body = AppliedView),
        (status = 400, description = "`INVALID_BODY`", body = ErrorBody),
        (status = 422, description = "`INVALID_BACKUP` (format or version), `BACKUP_KEY_MISMATCH` (sealed under another device key), `INVALID_SETTING` (the overlay does not fit this appliance's file), `APPLY_REFUSED`", body = ErrorBody),
        (status = 500, description = "`CONFIG_UNREADABLE`, `OVERLAY_UNREADABLE`, `OVERLAY_WRITE_FAILED`, `DEVICE_KEY`, `STORE_ERROR`", body = ErrorBody),
        (status = 503, description = "`SETTINGS_UNAVAILABLE`, `SUPERVISOR_UNAVAILABLE` (nothing was changed)", body = ErrorBody),
    ),
)]
async fn restore(
    State(state): State<HubState>,
    crate::api::extract::Json(doc): crate::api::extract::Json<Backup>,
) -> Result<Json<AppliedView>, ApiError> {
    restore_backup(&state, doc).await.map(Json)
}

/// Restores a backup (what `POST /settings/restore` does; the settings page's restore form
/// too).
pub(crate) async fn restore_backup(state: &HubState, doc: Backup) -> Result<AppliedView, ApiError> {
    if doc.format != BACKUP_FORMAT || doc.version != BACKUP_VERSION {
        return Err(invalid_backup(format!(
            "not a settings backup this firmware reads (format `{}` version {}; expected \
             `{BACKUP_FORMAT}` version {BACKUP_VERSION})",
            doc.format, doc.version
        )));
    }
    supervised(state)?;
    let s = state.clone();
    let (files, before, after, matches) = run_blocking(move || {
        let files = Files::of(&s)?;
        let sealer = sealer(&s)?;
        let base = sealer
            .open("backup:base_file", &doc.base_file.sealed)
            .map_err(|_| key_mismatch("base_file"))?;
        let matches = sha256_hex(&base) == sha256_hex(files.base_text.as_bytes());
        let mut overlay_json = Value::Object(doc.overlay);
        open_secrets(&sealer, &mut overlay_json, "")?;
        if let Some(key) = null_at(&overlay_json, "") {
            return Err(invalid_at(&key, "null is not a configuration value"));
        }
        let after: toml::Table = serde_json::from_value(overlay_json)
            .map_err(|e| invalid_backup(format!("the overlay is not a table: {e}")))?;
        files.validate(&after)?;
        // The users first: every one opened before any is written.
        let mut users = Vec::new();
        for u in &doc.users {
            if let Some(sealed) = &u.sealed {
                let record = sealer
                    .open(&format!("backup:user:{}", u.name), sealed)
                    .map_err(|_| key_mismatch(&format!("users.{}", u.name)))?;
                let record = String::from_utf8(record)
                    .map_err(|_| invalid_backup(format!("user {} is damaged", u.name)))?;
                users.push((u.name.clone(), record));
            }
        }
        for (name, record) in &users {
            s.auth
                .import_user(name, record)
                .map_err(|e| invalid_backup(e.to_string()))?;
        }
        let before = s.store.settings().write(|txn| {
            caught(|| {
                let before = files.committed()?;
                write_overlay(&files, &after)?;
                txn.remove(PENDING_KEY)?;
                Ok(before)
            })
        })??;
        Ok((files, before, after, matches))
    })
    .await?;
    let changed = overlay::changed_paths(&before, &after);
    let apply = apply_or_roll_back(state, &files, &before, None).await?;
    record(state, "settings.restored", &changed, &apply).await;
    Ok(AppliedView {
        changed,
        apply,
        base_file_matches: Some(matches),
    })
}

/// Runs `f` inside a store transaction's closure: its refusal (an [`ApiError`]) commits
/// nothing it did not write and is passed out; a store error aborts the transaction.
fn caught<T>(
    f: impl FnOnce() -> Result<T, ApiError>,
) -> Result<Result<T, ApiError>, watchpost_store::StoreError> {
    Ok(f())
}

/// Runs file and store work off the async threads.
async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal("TASK_FAILED", e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_keep_the_current_secret_matched_by_id() {
        let current = json!({
            "bus": {"password": "bus-pw"},
            "alarms": {"receivers": [
                {"id": "a", "key": "key-a"},
                {"id": "b", "key": "key-b"},
            ]},
        });
        let mut patch = json!({
            "bus": {"password": "***"},
            "alarms": {"receivers": [{"id": "b", "key": "***"}, {"id": "c", "key": "new"}]},
        });
        keep_secrets(&mut patch, Some(&current), "").unwrap();
        assert_eq!(patch["bus"]["password"], "bus-pw");
        assert_eq!(patch["alarms"]["receivers"][0]["key"], "key-b");
        assert_eq!(patch["alarms"]["receivers"][1]["key"], "new");

        let mut patch = json!({"alarms": {"receivers": [{"id": "z", "key": "***"}]}});
        let e = keep_secrets(&mut patch, Some(&current), "").unwrap_err();
        assert_eq!(e.details["key"], "alarms.receivers[0].key");
    }

    #[test]
    fn the_overlay_and_pending_changes_are_written_sealed_and_read_opened() {
        let dir = std::env::temp_dir().join(format!("wp-hub-sealed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let table: toml::Table = toml::from_str(
            "[bus]\nusername = \"u\"\npassword = \"bus-pw-123\"\n\
             [[alarms.receivers]]\nid = \"r\"\nkey = \"0123456789abcdef\"\n",
        )
        .unwrap();
        let path = overlay::overlay_path(&dir);
        write_overlay_at(&dir, &path, &table).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("bus-pw-123") && !text.contains("0123456789abcdef"),
            "{text}"
        );
        assert!(text.contains("username = \"u\""), "{text}");
        assert_eq!(overlay::read_overlay_in(&dir).unwrap(), Some(table.clone()));

        let stored = pending_text(&dir, &table).unwrap();
        assert!(!stored.contains("bus-pw-123"), "{stored}");
        assert_eq!(parse_pending(&dir, &stored).unwrap(), table);
        // Pending changes stored in clear (before sealing) still read.
        let clear = toml::to_string(&table).unwrap();
        assert_eq!(parse_pending(&dir, &clear).unwrap(), table);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nulls_are_named() {
        assert_eq!(
            null_at(&json!({"a": {"b": [1, null]}}), "").as_deref(),
            Some("a.b[1]")
        );
        assert_eq!(null_at(&json!({"a": 1}), ""), None);
    }

    #[test]
    fn backup_secrets_seal_and_open_in_place() {
        let sealer = Sealer::new([3; 32]);
        let mut v = json!({"bus": {"password": "pw", "username": "u"},
                           "auth": {"users": [{"name": "x", "password": "secret-pw"}]}});
        let plain = v.clone();
        seal_secrets(&sealer, &mut v, "").unwrap();
        let text = v.to_string();
        assert!(
            !text.contains("secret-pw") && !text.contains("\"pw\""),
            "{text}"
        );
        assert_eq!(v["bus"]["username"], "u");
        open_secrets(&sealer, &mut v, "").unwrap();
        assert_eq!(v, plain);

        let mut v2 = plain.clone();
        seal_secrets(&sealer, &mut v2, "").unwrap();
        let e = open_secrets(&Sealer::new([4; 32]), &mut v2, "").unwrap_err();
        assert_eq!(e.code, "BACKUP_KEY_MISMATCH");
    }
}
