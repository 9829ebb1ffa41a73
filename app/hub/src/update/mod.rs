//! Over-the-air updates in the hub: a bundle uploaded through the API (or the update page) is
//! streamed to the data partition, checked, and installed by RAUC, whose progress is the
//! update status the API and the page show (docs/update.md).
//!
//! Role: [`Updates`] is the one place that starts an install. It holds the status (a `watch`
//! channel the API reads and the page's live stream follows), the lock that lets one update
//! run at a time, and the connection to RAUC ([`watchpost_update::Rauc`]; the zbus client,
//! or the twin in tests).
//!
//! Design: an upload is refused before a byte is written when it has no length, is larger
//! than `[hub.update] max_bundle_bytes` or would leave less than `reserve_bytes` free; it is
//! written in chunks to `<data_dir>/update/` (never held in memory) and refused as truncated
//! when the body ends early. Then [`watchpost_update::check`] inspects it (frame, signer
//! against the keyring, RAUC's `Info`) and admits it (compatible, version unless forced);
//! then `InstallBundle`, and a task follows RAUC's `Progress` and `Completed` to the end.
//! Every step is an event in the event store (`update.*`). What was installed is kept in
//! `<data_dir>/update/last-install.json`, so after the reboot the status says whether the
//! new slot runs unconfirmed, was confirmed, or the boot loader came back to the old one.
//!
//! Failure: RAUC not on the bus is a status (`unavailable`) and a 503, never a hub failure.
//! A hub restarted during an install finds RAUC still installing and follows it again.
//!
//! Shutdown: the follower task ends with the hub's shutdown token; RAUC carries on alone.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, OwnedMutexGuard, watch};
use tokio_util::sync::CancellationToken;
use watchpost_config::HubUpdateConfig;
use watchpost_store::{JsonBody, NewEvent, Severity, Store};
use watchpost_update::bundle::Keyring;
use watchpost_update::check::{self, InspectError, Inspection, Refusal};
use watchpost_update::{InstallArgs, MarkState, Rauc, RaucError, RaucEvent, SlotRef, SlotStatus};

/// Where an update stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    /// Nothing in progress, nothing installed since the last confirmation.
    Idle,
    /// A bundle is being received (`received_bytes` of `total_bytes`).
    Downloading,
    /// The bundle is being checked (frame, signer, RAUC's `Info`, compatible, version).
    Verifying,
    /// RAUC is writing the other slot (`percent`).
    Installing,
    /// Installed; the other slot is primary and boots with the next restart.
    InstalledRebootPending,
    /// Running the new slot, which is not yet marked good.
    BootedUnconfirmed,
    /// Running the new slot, marked good.
    Confirmed,
    /// The boot loader came back to the previous slot (`reason`).
    RolledBack,
    /// The bundle was refused before anything was installed (`code`, `reason`).
    Refused,
    /// RAUC's install failed (`reason` is RAUC's `LastError`); the slots are as before.
    Failed,
    /// RAUC cannot be reached (`reason`).
    Unavailable,
}

impl UpdateState {
    /// Whether an update is under way (a bundle arriving, checked or installed): the board's
    /// status LED shows `updating` meanwhile.
    pub fn busy(self) -> bool {
        matches!(
            self,
            UpdateState::Downloading | UpdateState::Verifying | UpdateState::Installing
        )
    }
}

/// The update status (`GET /api/v1/system/update`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UpdateStatus {
    pub state: UpdateState,
    /// Install progress, 0–100 (RAUC's `Progress`), while installing and after.
    pub percent: Option<u8>,
    /// RAUC's progress message.
    pub message: Option<String>,
    pub received_bytes: Option<u64>,
    pub total_bytes: Option<u64>,
    /// The refusal's or failure's stable code (`BAD_SIGNATURE`, `WRONG_COMPATIBLE`, …).
    pub code: Option<String>,
    /// Why the update was refused, failed or rolled back.
    pub reason: Option<String>,
    /// The bundle being (or last) installed.
    pub bundle: Option<Inspection>,
    /// The firmware version running now.
    pub running_version: String,
    /// The bootname of the slot running now, and of the slot that boots next.
    pub booted: Option<String>,
    pub primary: Option<String>,
    /// RAUC's slots.
    pub slots: Vec<SlotStatus>,
}

/// What the data partition keeps of the last install (`last-install.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastInstall {
    pub version: String,
    /// Bootname the update was installed from, and into.
    pub from: String,
    pub to: String,
    pub installed_at_us: u64,
    /// Set when the new slot was marked good.
    #[serde(default)]
    pub confirmed: bool,
}

/// Why an upload or install request did not start an install: what the API answers.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("an update is already in progress")]
    Busy,
    #[error("the upload must state its length (Content-Length)")]
    LengthRequired,
    #[error("the bundle has {size} bytes; the limit is {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error(
        "not enough space on the data partition: {needed} bytes needed (bundle and reserve), {free} free"
    )]
    NoSpace { needed: u64, free: u64 },
    #[error("the upload ended after {received} of {expected} bytes: the bundle is truncated")]
    UploadTruncated { received: u64, expected: u64 },
    #[error("{0}")]
    Refused(Refusal),
    #[error("RAUC is not available: {0}")]
    Rauc(RaucError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl UpdateError {
    /// The API's stable code.
    pub fn code(&self) -> &'static str {
        match self {
            UpdateError::Busy => "UPDATE_IN_PROGRESS",
            UpdateError::LengthRequired => "LENGTH_REQUIRED",
            UpdateError::TooLarge { .. } => "BUNDLE_TOO_LARGE",
            UpdateError::NoSpace { .. } => "NOT_ENOUGH_SPACE",
            UpdateError::UploadTruncated { .. } => "BUNDLE_TRUNCATED",
            UpdateError::Refused(r) => r.code(),
            UpdateError::Rauc(_) => "RAUC_UNAVAILABLE",
            UpdateError::Io { .. } => "UPDATE_IO",
        }
    }
}

/// How RAUC is reached: connected on first use and again after a failure.
#[derive(Debug)]
enum Source {
    Dbus {
        address: Option<String>,
        client: Mutex<Option<Arc<dyn Rauc>>>,
    },
    Fixed(Arc<dyn Rauc>),
}

/// The hub's update control (shared, cheap to clone through `Arc`).
#[derive(Debug)]
pub struct Updates {
    source: Source,
    config: HubUpdateConfig,
    dir: PathBuf,
    running_version: String,
    status: watch::Sender<UpdateStatus>,
    busy: Arc<Mutex<()>>,
    follower: StdMutex<Option<tokio::task::JoinHandle<()>>>,
}

const BUNDLE_FILE: &str = "bundle.raucb";
const PART_FILE: &str = "upload.part";
const LAST_INSTALL: &str = "last-install.json";

fn now_us() -> u64 {
    watchpost_store::now_us()
}

impl Updates {
    /// Update control over the real RAUC (connected when first needed).
    pub fn new(config: &HubUpdateConfig, data_dir: &Path, running_version: &str) -> Updates {
        Self::with_source(
            Source::Dbus {
                address: config.dbus_address.clone(),
                client: Mutex::new(None),
            },
            config,
            data_dir,
            running_version,
        )
    }

    /// Update control over a given RAUC (the twin in tests).
    pub fn with_rauc(
        rauc: Arc<dyn Rauc>,
        config: &HubUpdateConfig,
        data_dir: &Path,
        running_version: &str,
    ) -> Updates {
        Self::with_source(Source::Fixed(rauc), config, data_dir, running_version)
    }

    fn with_source(
        source: Source,
        config: &HubUpdateConfig,
        data_dir: &Path,
        running_version: &str,
    ) -> Updates {
        let status = UpdateStatus {
            state: UpdateState::Idle,
            percent: None,
            message: None,
            received_bytes: None,
            total_bytes: None,
            code: None,
            reason: None,
            bundle: None,
            running_version: running_version.to_string(),
            booted: None,
            primary: None,
            slots: Vec::new(),
        };
        Updates {
            source,
            config: config.clone(),
            dir: data_dir.join("update"),
            running_version: running_version.to_string(),
            status: watch::channel(status).0,
            busy: Arc::new(Mutex::new(())),
            follower: StdMutex::new(None),
        }
    }

    /// The directory bundles are stored in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The limits an upload is checked against.
    pub fn config(&self) -> &HubUpdateConfig {
        &self.config
    }

    /// Follows the status (the page's live stream).
    pub fn subscribe(&self) -> watch::Receiver<UpdateStatus> {
        self.status.subscribe()
    }

    async fn rauc(&self) -> Result<Arc<dyn Rauc>, RaucError> {
        match &self.source {
            Source::Fixed(r) => Ok(r.clone()),
            Source::Dbus { address, client } => {
                let mut c = client.lock().await;
                if let Some(r) = c.as_ref() {
                    return Ok(r.clone());
                }
                let r: Arc<dyn Rauc> =
                    Arc::new(watchpost_update::dbus::DbusRauc::connect(address.as_deref()).await?);
                *c = Some(r.clone());
                Ok(r)
            }
        }
    }

    /// Forgets the connection after a bus failure, so the next call connects again.
    async fn reset(&self, e: &RaucError) {
        if let (Source::Dbus { client, .. }, RaucError::Call { .. } | RaucError::Connect { .. }) =
            (&self.source, e)
        {
            *client.lock().await = None;
        }
    }

    fn set(&self, f: impl FnOnce(&mut UpdateStatus)) {
        self.status.send_modify(f);
    }

    /// The status with RAUC's slots read now.
    pub async fn status(&self) -> UpdateStatus {
        let mut s = self.status.borrow().clone();
        match self.slots().await {
            Ok((slots, booted, primary)) => {
                s.slots = slots;
                s.booted = Some(booted);
                s.primary = primary;
                if s.state == UpdateState::Unavailable {
                    s.state = UpdateState::Idle;
                    s.reason = None;
                }
                self.keep_slots(s.slots.clone(), s.booted.clone(), s.primary.clone());
            }
            Err(e) if s.state.busy() => {
                // RAUC is busy installing: the slots last read stand; the booted slot is a
                // property RAUC still answers (after a hub restart nothing was read before).
                if s.booted.is_none()
                    && let Ok(rauc) = self.rauc().await
                {
                    s.booted = rauc.boot_slot().await.ok();
                }
                tracing::debug!(error = %e, "RAUC answers no slot query while it installs");
            }
            Err(e) => {
                if matches!(s.state, UpdateState::Idle | UpdateState::Unavailable) {
                    s.state = UpdateState::Unavailable;
                    s.reason = Some(e.to_string());
                }
            }
        }
        s
    }

    /// Keeps the slots read last in the status, for while RAUC installs: it answers no slot
    /// queries then.
    fn keep_slots(&self, slots: Vec<SlotStatus>, booted: Option<String>, primary: Option<String>) {
        self.status.send_if_modified(|c| {
            let changed = c.slots != slots || c.booted != booted || c.primary != primary;
            if changed {
                c.slots = slots;
                c.booted = booted;
                c.primary = primary;
            }
            changed
        });
    }

    async fn slots(&self) -> Result<(Vec<SlotStatus>, String, Option<String>), RaucError> {
        let rauc = self.rauc().await?;
        let r = async {
            let slots = rauc.slot_status().await?;
            let booted = rauc.boot_slot().await?;
            let primary = rauc.primary().await.ok();
            let primary = primary.map(|p| bootname(&slots, &p));
            Ok((slots, booted, primary))
        }
        .await;
        if let Err(e) = &r {
            self.reset(e).await;
        }
        r
    }

    /// At the hub's start: what the last install left (rebooted into it, rolled back), and an
    /// install RAUC is still running (the hub was restarted during it), which is followed again.
    pub async fn start(self: &Arc<Self>, store: Store, shutdown: CancellationToken) {
        let Ok(rauc) = self.rauc().await else {
            return;
        };
        let Ok(booted) = rauc.boot_slot().await else {
            return;
        };
        // Subscribed before asking, so a `Completed` between the question and the
        // subscription is not missed.
        let events = rauc.events().await;
        if rauc.operation().await.ok().as_deref() == Some("installing")
            && let Ok(events) = events
            && let Ok(guard) = self.busy.clone().try_lock_owned()
        {
            self.set(|s| {
                s.state = UpdateState::Installing;
                s.reason =
                    Some("the hub restarted during this install; following RAUC again".into());
            });
            self.follow(rauc.clone(), events, guard, store, shutdown, booted);
            return;
        }
        let Some(last) = self.read_last() else {
            return;
        };
        let (state, reason) = if booted == last.to && last.confirmed {
            (UpdateState::Confirmed, None)
        } else if booted == last.to {
            (UpdateState::BootedUnconfirmed, None)
        } else {
            let slots = rauc.slot_status().await.unwrap_or_default();
            let primary = rauc.primary().await.ok().map(|p| bootname(&slots, &p));
            if primary.as_deref() == Some(last.to.as_str()) {
                (UpdateState::InstalledRebootPending, None)
            } else {
                (
                    UpdateState::RolledBack,
                    Some(format!(
                        "version {} was installed into slot {} but the appliance runs slot {} again: the new slot did not boot to a confirmed state and the boot loader fell back",
                        last.version, last.to, booted
                    )),
                )
            }
        };
        if state == UpdateState::RolledBack {
            record(
                &store,
                "update.rolled_back",
                "hub",
                Severity::Warning,
                json!({"version": last.version, "slot": last.to, "booted": booted}),
            )
            .await;
        }
        self.set(|s| {
            s.state = state;
            s.reason = reason;
            s.percent = None;
        });
    }

    fn read_last(&self) -> Option<LastInstall> {
        let text = std::fs::read(self.dir.join(LAST_INSTALL)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn write_last(&self, last: &LastInstall) {
        let path = self.dir.join(LAST_INSTALL);
        let tmp = self.dir.join("last-install.json.tmp");
        let r = serde_json::to_vec_pretty(last)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = r {
            tracing::warn!(path = %path.display(), error = %e, "cannot record the last install");
        }
    }

    /// Takes the update lock, or says an update is in progress.
    pub fn try_begin(&self) -> Result<OwnedMutexGuard<()>, UpdateError> {
        self.busy
            .clone()
            .try_lock_owned()
            .map_err(|_| UpdateError::Busy)
    }

    /// Checks an announced upload against the limits and the free space, before anything is
    /// written.
    pub fn admit_upload(&self, length: Option<u64>) -> Result<u64, UpdateError> {
        let size = length.ok_or(UpdateError::LengthRequired)?;
        if size > self.config.max_bundle_bytes {
            return Err(UpdateError::TooLarge {
                size,
                limit: self.config.max_bundle_bytes,
            });
        }
        std::fs::create_dir_all(&self.dir).map_err(|source| UpdateError::Io {
            what: "creating",
            path: self.dir.clone(),
            source,
        })?;
        // A bundle left from an earlier upload is replaced: it does not count as used.
        let _ = std::fs::remove_file(self.dir.join(PART_FILE));
        let _ = std::fs::remove_file(self.dir.join(BUNDLE_FILE));
        let free = free_bytes(&self.dir).map_err(|source| UpdateError::Io {
            what: "reading the free space of",
            path: self.dir.clone(),
            source,
        })?;
        let needed = size.saturating_add(self.config.reserve_bytes);
        if needed > free {
            return Err(UpdateError::NoSpace { needed, free });
        }
        Ok(size)
    }

    /// Stores an upload of `expected` bytes from `body`, a chunk at a time.
    pub async fn receive<S, E>(&self, expected: u64, mut body: S) -> Result<PathBuf, UpdateError>
    where
        S: futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        self.set(|s| {
            *s = UpdateStatus {
                state: UpdateState::Downloading,
                received_bytes: Some(0),
                total_bytes: Some(expected),
                running_version: self.running_version.clone(),
                ..blank()
            }
        });
        let part = self.dir.join(PART_FILE);
        let io = |what, source| UpdateError::Io {
            what,
            path: part.clone(),
            source,
        };
        let mut file = tokio::fs::File::create(&part)
            .await
            .map_err(|e| io("creating", e))?;
        let mut received: u64 = 0;
        let mut reported: u64 = 0;
        let truncated = |received| UpdateError::UploadTruncated { received, expected };
        loop {
            match body.next().await {
                Some(Ok(chunk)) => {
                    received += chunk.len() as u64;
                    if received > expected {
                        drop(file);
                        let _ = tokio::fs::remove_file(&part).await;
                        return Err(UpdateError::TooLarge {
                            size: received,
                            limit: expected,
                        });
                    }
                    file.write_all(&chunk).await.map_err(|e| io("writing", e))?;
                    if received - reported >= 1 << 20 {
                        reported = received;
                        self.set(|s| s.received_bytes = Some(received));
                    }
                }
                Some(Err(e)) => {
                    tracing::info!(error = %e, received, expected, "update upload broke off");
                    drop(file);
                    let _ = tokio::fs::remove_file(&part).await;
                    return Err(truncated(received));
                }
                None => break,
            }
        }
        if received != expected {
            drop(file);
            let _ = tokio::fs::remove_file(&part).await;
            return Err(truncated(received));
        }
        file.sync_all().await.map_err(|e| io("syncing", e))?;
        drop(file);
        let bundle = self.dir.join(BUNDLE_FILE);
        tokio::fs::rename(&part, &bundle)
            .await
            .map_err(|e| io("renaming", e))?;
        self.set(|s| s.received_bytes = Some(received));
        Ok(bundle)
    }

    /// Inspects, admits and starts installing the bundle at `path`; the install goes on in a
    /// task that holds `guard` until RAUC completes. Returns the status with the install
    /// started.
    #[allow(clippy::too_many_arguments)]
    pub async fn install(
        self: &Arc<Self>,
        path: PathBuf,
        force: bool,
        guard: OwnedMutexGuard<()>,
        store: Store,
        user: &str,
        shutdown: CancellationToken,
    ) -> Result<UpdateStatus, UpdateError> {
        self.set(|s| s.state = UpdateState::Verifying);
        let rauc = self.rauc().await.map_err(UpdateError::Rauc)?;
        let keyring = {
            let p = self.config.keyring.clone();
            tokio::task::spawn_blocking(move || {
                std::fs::read(&p).ok().map(|b| Keyring::from_pem(&b))
            })
            .await
            .ok()
            .flatten()
        };
        let inspection = match check::inspect_bundle(rauc.as_ref(), &path, keyring.as_ref()).await {
            Ok(i) => i,
            Err(InspectError::Refused(r)) => return Err(UpdateError::Refused(r)),
            Err(InspectError::Rauc(e)) => {
                self.reset(&e).await;
                return Err(UpdateError::Rauc(e));
            }
            Err(InspectError::Read { path, source }) => {
                return Err(UpdateError::Io {
                    what: "reading",
                    path,
                    source,
                });
            }
        };
        let compatible = rauc.compatible().await.map_err(UpdateError::Rauc)?;
        check::admit(&inspection, &compatible, &self.running_version, force)
            .map_err(UpdateError::Refused)?;
        record(
            &store,
            "update.verified",
            user,
            Severity::Info,
            json!({"version": inspection.version, "compatible": inspection.compatible, "signer": inspection.signer, "size": inspection.size, "force": force}),
        )
        .await;
        let booted = rauc.boot_slot().await.map_err(UpdateError::Rauc)?;
        if let Ok((slots, b, primary)) = self.slots().await {
            self.keep_slots(slots, Some(b), primary);
        }
        let events = rauc.events().await.map_err(UpdateError::Rauc)?;
        rauc.install_bundle(path, InstallArgs::default())
            .await
            .map_err(UpdateError::Rauc)?;
        self.set(|s| {
            s.state = UpdateState::Installing;
            s.percent = Some(0);
            s.bundle = Some(inspection.clone());
        });
        record(
            &store,
            "update.install_started",
            user,
            Severity::Notice,
            json!({"version": inspection.version, "from_slot": booted}),
        )
        .await;
        self.follow(rauc, events, guard, store, shutdown, booted);
        Ok(self.status.borrow().clone())
    }

    /// Follows RAUC's events until `Completed`, then records the outcome.
    fn follow(
        self: &Arc<Self>,
        rauc: Arc<dyn Rauc>,
        mut events: futures::stream::BoxStream<'static, RaucEvent>,
        guard: OwnedMutexGuard<()>,
        store: Store,
        shutdown: CancellationToken,
        booted: String,
    ) {
        let me = self.clone();
        let task = tokio::spawn(async move {
            let _guard = guard;
            let mut last_logged = 0u8;
            let result = loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    e = events.next() => match e {
                        Some(RaucEvent::Progress(p)) => {
                            let pct = u8::try_from(p.percent.clamp(0, 100)).unwrap_or(0);
                            me.set(|s| { s.percent = Some(pct); s.message = Some(p.message.clone()); });
                            if pct >= last_logged.saturating_add(25) {
                                last_logged = pct;
                                record(&store, "update.progress", "rauc", Severity::Info, json!({"percent": pct, "message": p.message})).await;
                            }
                        }
                        Some(RaucEvent::Completed(r)) => break Some(r),
                        Some(_) => {}
                        None => break None,
                    }
                }
            };
            let _ = tokio::fs::remove_file(me.dir.join(BUNDLE_FILE)).await;
            let last_error = rauc.last_error().await.unwrap_or_default();
            match result {
                Some(0) => {
                    let slots = rauc.slot_status().await.unwrap_or_default();
                    let primary = rauc.primary().await.ok().map(|p| bootname(&slots, &p));
                    let version = me
                        .status
                        .borrow()
                        .bundle
                        .as_ref()
                        .map(|b| b.version.clone())
                        .unwrap_or_default();
                    let to = primary.clone().unwrap_or_default();
                    // Followed again after a hub restart, the status has no bundle: the slot
                    // says what it holds now.
                    let version = if version.is_empty() {
                        slots
                            .iter()
                            .find(|s| s.bootname.as_deref() == Some(to.as_str()))
                            .and_then(|s| s.bundle_version.clone())
                            .unwrap_or_default()
                    } else {
                        version
                    };
                    me.write_last(&LastInstall {
                        version: version.clone(),
                        from: booted.clone(),
                        to: to.clone(),
                        installed_at_us: now_us(),
                        confirmed: false,
                    });
                    me.set(|s| {
                        s.state = UpdateState::InstalledRebootPending;
                        s.percent = Some(100);
                        s.primary = primary.clone();
                        s.reason = None;
                    });
                    record(
                        &store,
                        "update.installed",
                        "rauc",
                        Severity::Notice,
                        json!({"version": version, "slot": to}),
                    )
                    .await;
                }
                other => {
                    let reason = if last_error.is_empty() {
                        format!("RAUC's install ended without success ({other:?})")
                    } else {
                        last_error
                    };
                    me.set(|s| {
                        s.state = UpdateState::Failed;
                        s.code = Some("INSTALL_FAILED".into());
                        s.reason = Some(reason.clone());
                    });
                    record(
                        &store,
                        "update.failed",
                        "rauc",
                        Severity::Warning,
                        json!({"reason": reason}),
                    )
                    .await;
                }
            }
        });
        if let Ok(mut f) = self.follower.lock() {
            *f = Some(task);
        }
    }

    /// Records a refusal or an upload that failed in the status and the event store.
    pub async fn refused(&self, store: &Store, user: &str, e: &UpdateError) {
        let failed = matches!(e, UpdateError::Rauc(_) | UpdateError::Io { .. });
        self.set(|s| {
            s.state = if matches!(e, UpdateError::Rauc(_)) {
                UpdateState::Unavailable
            } else if failed {
                UpdateState::Failed
            } else {
                UpdateState::Refused
            };
            s.code = Some(e.code().to_string());
            s.reason = Some(e.to_string());
            s.percent = None;
        });
        let _ = tokio::fs::remove_file(self.dir.join(BUNDLE_FILE)).await;
        record(
            store,
            "update.refused",
            user,
            Severity::Warning,
            json!({"code": e.code(), "reason": e.to_string()}),
        )
        .await;
    }

    /// `Mark(state, slot)`; marking the booted slot good confirms the last install.
    pub async fn mark(
        &self,
        store: &Store,
        user: &str,
        state: MarkState,
        slot: SlotRef,
    ) -> Result<watchpost_update::Marked, UpdateError> {
        let rauc = self.rauc().await.map_err(UpdateError::Rauc)?;
        let booted_mark = state == MarkState::Good && slot == SlotRef::Booted;
        let m = rauc
            .mark(state, slot.clone())
            .await
            .map_err(UpdateError::Rauc)?;
        if booted_mark
            && let Some(mut last) = self.read_last()
            && rauc.boot_slot().await.ok().as_deref() == Some(last.to.as_str())
        {
            last.confirmed = true;
            self.write_last(&last);
            self.set(|s| {
                s.state = UpdateState::Confirmed;
                s.reason = None;
            });
        }
        record(
            store,
            "update.marked",
            user,
            Severity::Notice,
            json!({"state": state.as_str(), "slot": m.slot, "message": m.message}),
        )
        .await;
        Ok(m)
    }
}

/// A slot's bootname from its RAUC name (`rootfs.1` → `B`); the name when none is known.
fn bootname(slots: &[SlotStatus], name: &str) -> String {
    slots
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.bootname.clone())
        .unwrap_or_else(|| name.to_string())
}

fn blank() -> UpdateStatus {
    UpdateStatus {
        state: UpdateState::Idle,
        percent: None,
        message: None,
        received_bytes: None,
        total_bytes: None,
        code: None,
        reason: None,
        bundle: None,
        running_version: String::new(),
        booted: None,
        primary: None,
        slots: Vec::new(),
    }
}

/// Free bytes for an unprivileged writer on the file system holding `dir`.
// The statvfs counts are 32-bit on some 32-bit ARM targets.
#[allow(clippy::useless_conversion)]
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let s = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(u64::from(s.blocks_available()).saturating_mul(u64::from(s.fragment_size())))
}

/// One `update.*` event in the event store.
pub async fn record(
    store: &Store,
    kind: &str,
    source: &str,
    severity: Severity,
    body: serde_json::Value,
) {
    let store = store.clone();
    let kind = kind.to_string();
    let source = source.to_string();
    let r = tokio::task::spawn_blocking(move || {
        let body = JsonBody::from_value(&body)?;
        store
            .events()
            .append(NewEvent::new(now_us(), kind, source, severity).with_body(body))
    })
    .await;
    if let Ok(Err(e)) = r {
        tracing::warn!(error = %e, "cannot record an update event");
    }
}

/// The hub service: what the last install left, or an install still running (one entry of
/// [`crate::services::start`]); and the board's status LED on `updating` while an update is
/// under way (the hub's indicator to the supervisor, [`WorkerCtx::set_updating`]).
///
/// [`WorkerCtx::set_updating`]: watchpost_runtime::WorkerCtx::set_updating
pub fn start(state: &crate::state::HubState) -> tokio::task::JoinHandle<()> {
    let updates = state.update.clone();
    let store = state.store.clone();
    let shutdown = state.ctx.shutdown().clone();
    let ctx = state.ctx.clone();
    let status = updates.subscribe();
    tokio::spawn(async move {
        let led = tokio::spawn(led(status, ctx, shutdown.clone()));
        updates.start(store, shutdown).await;
        let _ = led.await;
    })
}

/// Keeps the LED's `updating` indicator with the status until shutdown.
async fn led(
    mut status: watch::Receiver<UpdateStatus>,
    ctx: Arc<watchpost_runtime::WorkerCtx>,
    shutdown: CancellationToken,
) {
    loop {
        let busy = status.borrow_and_update().state.busy();
        ctx.set_updating(busy);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            r = status.changed() => if r.is_err() { break },
        }
    }
    ctx.set_updating(false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_led_shows_updating_while_an_update_is_under_way() {
        let dir = tempfile::tempdir().expect("temp dir");
        let rauc: Arc<dyn Rauc> = Arc::new(watchpost_update::twin::TwinRauc::new("watchpost-test"));
        let updates = Updates::with_rauc(rauc, &HubUpdateConfig::default(), dir.path(), "0.1.0");
        let shutdown = CancellationToken::new();
        let ctx = Arc::new(watchpost_runtime::WorkerCtx::standalone(
            "hub",
            shutdown.clone(),
        ));
        let task = tokio::spawn(led(updates.subscribe(), ctx.clone(), shutdown.clone()));
        let wait_for = |want: bool| {
            let ctx = ctx.clone();
            async move {
                for _ in 0..500 {
                    if ctx.indicator_state().1 == want {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                panic!("the LED indicator never became updating={want}");
            }
        };
        wait_for(false).await;
        for (state, on) in [
            (UpdateState::Downloading, true),
            (UpdateState::Failed, false),
            (UpdateState::Installing, true),
            (UpdateState::InstalledRebootPending, false),
            (UpdateState::Verifying, true),
        ] {
            updates.set(|s| s.state = state);
            wait_for(on).await;
        }
        shutdown.cancel();
        task.await.expect("LED task");
        assert!(!ctx.indicator_state().1, "shutdown clears the indicator");
    }
}
