//! The camera commands on the bus (`capture/camera/<id>/<command>/set`, docs/bus.md "Capture"):
//! trigger, snapshot, recordings and credentials, typed by the capture contract
//! (`watchpost_contract::capture`) and answered in the bus's one reply envelope with a
//! [`CaptureCode`] when refused.
//!
//! Each command runs in a task of its own (snapshots decode at most two at a time), so a slow
//! decode never holds up the worker's main loop and its heartbeat. A command sent without
//! `reply_to` is executed and answered to nobody.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use watchpost_bus::{Bus, BusError, Incoming, Outcome, ReplyError, Requests, Retain};
use watchpost_contract::capture::{
    self, CameraCommand, CaptureCode, Credentials, Recordings, Snapshot, SnapshotEvent,
    SnapshotTaken, Topic, Trigger,
};

use crate::index::RecordingIndex;
use crate::recorder::RecorderMsg;
use crate::secrets::CredentialVault;
use crate::snapshot::{self, SnapshotError};
use crate::time::rfc3339;

/// What a command needs of a running camera (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct CameraHandle {
    pub recorder_tx: SyncSender<RecorderMsg>,
    pub reconnect: Arc<tokio::sync::Notify>,
    pub credentials: Arc<Mutex<Option<(String, String)>>>,
}

/// Everything the command handlers share.
pub(crate) struct Commands {
    pub bus: Bus,
    /// The running cameras.
    pub cameras: HashMap<String, CameraHandle>,
    /// Every configured camera, running or not (the index outlives a camera's configuration).
    pub configured: HashSet<String>,
    pub vault: CredentialVault,
    pub index: Arc<dyn RecordingIndex>,
    pub snapshots: PathBuf,
    /// Snapshots decode a group of pictures: at most two at a time.
    pub decoders: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commands")
            .field("cameras", &self.cameras.keys())
            .field("snapshots", &self.snapshots)
            .finish_non_exhaustive()
    }
}

/// The four command subscriptions, made before the worker reports ready.
#[derive(Debug)]
pub(crate) struct Subscriptions {
    trigger: Requests<Trigger>,
    snapshot: Requests<Snapshot>,
    recordings: Requests<Recordings>,
    credentials: Requests<Credentials>,
}

async fn serve_one<C: CameraCommand>(bus: &Bus) -> Result<Requests<C>, BusError> {
    bus.serve::<C>(&bus.filter(&capture::command_filter(C::COMMAND)))
        .await
}

impl Subscriptions {
    pub async fn new(bus: &Bus) -> Result<Self, BusError> {
        Ok(Self {
            trigger: serve_one(bus).await?,
            snapshot: serve_one(bus).await?,
            recordings: serve_one(bus).await?,
            credentials: serve_one(bus).await?,
        })
    }
}

/// Answers commands until `shutdown` (or until the bus is gone), each in a task of its own.
pub(crate) async fn serve(cx: Arc<Commands>, mut subs: Subscriptions, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            Some(r) = subs.trigger.recv() => {
                tokio::spawn(answer(cx.clone(), r, Commands::trigger));
            }
            Some(r) = subs.snapshot.recv() => {
                tokio::spawn(answer(cx.clone(), r, Commands::snapshot));
            }
            Some(r) = subs.recordings.recv() => {
                tokio::spawn(answer(cx.clone(), r, Commands::recordings));
            }
            Some(r) = subs.credentials.recv() => {
                tokio::spawn(answer(cx.clone(), r, Commands::credentials));
            }
            else => return,
        }
    }
}

/// Decodes `request`, runs it on its camera and answers it.
async fn answer<C, F, Fut>(cx: Arc<Commands>, request: Incoming<C>, run: F)
where
    C: CameraCommand,
    F: FnOnce(Arc<Commands>, String, C) -> Fut,
    Fut: Future<Output = Outcome<C>>,
{
    let outcome = match Topic::parse(cx.bus.prefix(), &request.topic) {
        Some(Topic::Command(camera, _)) => match request.decode() {
            Ok(command) => run(cx.clone(), camera.to_string(), command).await,
            Err(refused) => Err(refused),
        },
        // The subscription's filter only lets command topics through.
        _ => Err(ReplyError::new(
            CaptureCode::CameraNotFound,
            format!("{} names no camera", request.topic),
        )),
    };
    if let Err(e) = cx.bus.respond(&request, &outcome).await {
        tracing::warn!(topic = %request.topic, error = %e, "cannot answer a camera command");
    }
}

fn not_running(camera: &str) -> ReplyError<CaptureCode> {
    ReplyError::new(
        CaptureCode::CameraNotFound,
        format!("no running camera `{camera}`"),
    )
}

/// Why a snapshot was not taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotFailure {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("snapshot of {camera}: the decoding task failed: {source}")]
    Task {
        camera: String,
        source: tokio::task::JoinError,
    },
    #[error("snapshot of {camera}: the worker is stopping")]
    Stopping { camera: String },
}

impl SnapshotFailure {
    /// The refusal answered to the `snapshot` command.
    fn reply_error(&self) -> ReplyError<CaptureCode> {
        let code = match self {
            SnapshotFailure::Snapshot(SnapshotError::NoFrame { .. }) => CaptureCode::NoFrame,
            SnapshotFailure::Snapshot(
                SnapshotError::Decode { .. } | SnapshotError::Write { .. },
            )
            | SnapshotFailure::Task { .. }
            | SnapshotFailure::Stopping { .. } => CaptureCode::SnapshotFailed,
        };
        ReplyError::new(code, self.to_string())
    }
}

impl Commands {
    /// `trigger/set`: starts or ends an event recording; a start also takes an event snapshot.
    pub async fn trigger(self: Arc<Self>, camera: String, t: Trigger) -> Outcome<Trigger> {
        let r = self
            .cameras
            .get(&camera)
            .ok_or_else(|| not_running(&camera))?;
        // A full queue means the recorder is far behind; the next trigger finds it again.
        let _ = r.recorder_tx.try_send(RecorderMsg::Trigger {
            active: t.active,
            reason: t.reason.clone(),
        });
        if t.active {
            tokio::spawn(self.clone().snapshot_on_event(camera, t.reason));
        }
        Ok(())
    }

    /// `snapshot/set`.
    pub async fn snapshot(self: Arc<Self>, camera: String, _: Snapshot) -> Outcome<Snapshot> {
        let r = self
            .cameras
            .get(&camera)
            .ok_or_else(|| not_running(&camera))?;
        self.take_snapshot(&camera, r)
            .await
            .map_err(|e| e.reply_error())
    }

    /// `recordings/set`: any configured camera may be asked, running or not.
    pub async fn recordings(self: Arc<Self>, camera: String, q: Recordings) -> Outcome<Recordings> {
        if !self.configured.contains(&camera) {
            return Err(ReplyError::new(
                CaptureCode::CameraNotFound,
                format!("no camera `{camera}`"),
            ));
        }
        q.check()?;
        let index = self.index.clone();
        let unreadable = |message: String| ReplyError::new(CaptureCode::IndexUnreadable, message);
        match tokio::task::spawn_blocking(move || index.list()).await {
            Ok(Ok(records)) => Ok(crate::index::page(&records, &camera, &q)),
            Ok(Err(e)) => Err(unreadable(e.to_string())),
            Err(e) => Err(unreadable(format!("the index task failed: {e}"))),
        }
    }

    /// `credentials/set`: sealed into the store, then the camera reconnects with them.
    pub async fn credentials(
        self: Arc<Self>,
        camera: String,
        c: Credentials,
    ) -> Outcome<Credentials> {
        let r = self
            .cameras
            .get(&camera)
            .ok_or_else(|| not_running(&camera))?;
        c.check()?;
        let vault = self.vault.clone();
        let cam = camera.clone();
        let sealed = c.clone();
        let saved = tokio::task::spawn_blocking(move || {
            vault.put(&cam, &sealed.username, &sealed.password)
        })
        .await;
        let not_saved = |reason: String| {
            ReplyError::new(
                CaptureCode::CredentialsNotSaved,
                format!("could not store the credentials of `{camera}`: {reason}"),
            )
        };
        match saved {
            Ok(Ok(())) => {
                *r.credentials.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((c.username, c.password));
                r.reconnect.notify_one();
                Ok(())
            }
            Ok(Err(e)) => Err(not_saved(e.to_string())),
            Err(e) => Err(not_saved(format!("the store task failed: {e}"))),
        }
    }

    /// Decodes the camera's current group of pictures into a JPEG, keeps it as the camera's
    /// latest snapshot file and publishes the bytes on `.../snapshot`.
    async fn take_snapshot(
        &self,
        camera: &str,
        r: &CameraHandle,
    ) -> Result<SnapshotTaken, SnapshotFailure> {
        let Ok(_permit) = self.decoders.acquire().await else {
            return Err(SnapshotFailure::Stopping {
                camera: camera.to_string(),
            });
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let _ = r.recorder_tx.try_send(RecorderMsg::CurrentGop(tx));
        let cam = camera.to_string();
        let dir = self.snapshots.clone();
        let decoded = tokio::task::spawn_blocking(move || {
            let gop = rx
                .recv_timeout(Duration::from_secs(2))
                .ok()
                .flatten()
                .ok_or_else(|| SnapshotError::NoFrame {
                    camera: cam.clone(),
                })?;
            let taken_us = gop.samples.last().map_or(0, |s| s.1);
            let jpeg = snapshot::jpeg_from_gop(&cam, &gop)?;
            let path = snapshot::store_latest(&dir, &cam, &jpeg)?;
            Ok::<_, SnapshotError>((jpeg, path, taken_us))
        })
        .await
        .map_err(|source| SnapshotFailure::Task {
            camera: camera.to_string(),
            source,
        })?;
        let (jpeg, path, taken_us) = decoded?;
        let topic = self.bus.topic(&capture::snapshot(camera));
        let bytes = jpeg.len() as u64;
        if let Err(e) = self.bus.publish_bytes(&topic, jpeg, Retain::No).await {
            tracing::warn!(camera, error = %e, "cannot publish the snapshot");
        }
        Ok(SnapshotTaken {
            path: path.to_string_lossy().into_owned(),
            bytes,
            taken_at: rfc3339(taken_us),
        })
    }

    /// A snapshot on an event (a bus trigger, a thermal rule firing): taken like one on
    /// demand, then announced on `.../snapshot/event` with the event's reason.
    pub async fn snapshot_on_event(self: Arc<Self>, camera: String, reason: String) {
        let Some(r) = self.cameras.get(&camera) else {
            return;
        };
        match self.take_snapshot(&camera, r).await {
            Ok(s) => {
                let topic = self.bus.topic(&capture::snapshot_event(&camera));
                let event = SnapshotEvent {
                    camera,
                    reason,
                    path: s.path,
                    bytes: s.bytes,
                    taken_at: s.taken_at,
                };
                if let Err(e) = self.bus.publish_json(&topic, &event, Retain::No).await {
                    tracing::warn!(camera = %event.camera, error = %e, "cannot publish the snapshot event");
                }
            }
            Err(SnapshotFailure::Snapshot(SnapshotError::NoFrame { .. })) => {
                tracing::debug!(camera, reason, "no frame yet for an event snapshot");
            }
            Err(e) => {
                tracing::warn!(camera, reason, error = %e, "event snapshot failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{MemoryIndex, RecordingTrigger, SegmentRecord, SegmentState};

    /// Commands with one running camera `gate` (its recorder's queue returned) and one
    /// configured camera `spare` that does not run, over a bus client with no broker.
    fn commands(
        data: &std::path::Path,
        index: Arc<dyn RecordingIndex>,
    ) -> (Arc<Commands>, std::sync::mpsc::Receiver<RecorderMsg>) {
        let config = watchpost_config::from_str_with_env(
            "[system]\ndata_dir = \"/tmp\"\n[bus]\nexternal = \"127.0.0.1:9\"\n",
            std::path::Path::new("t.toml"),
            &[],
        )
        .unwrap();
        let bus = Bus::connect(&config, "capture-test", CancellationToken::new());
        let store = watchpost_store::Store::open(data.join("capture.redb")).unwrap();
        let key = crate::secrets::device_key(data).unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        let gate = CameraHandle {
            recorder_tx: tx,
            reconnect: Arc::new(tokio::sync::Notify::new()),
            credentials: Arc::new(Mutex::new(None)),
        };
        let cx = Commands {
            bus,
            cameras: HashMap::from([("gate".to_string(), gate)]),
            configured: HashSet::from(["gate".to_string(), "spare".to_string()]),
            vault: CredentialVault::new(key, store),
            index,
            snapshots: data.join("snapshots"),
            decoders: tokio::sync::Semaphore::new(2),
        };
        (Arc::new(cx), rx)
    }

    fn segment(camera: &str, start_s: u64) -> SegmentRecord {
        SegmentRecord {
            camera: camera.into(),
            start_us: start_s * 1_000_000,
            end_us: (start_s + 60) * 1_000_000,
            path: format!("{camera}/{start_s}.mp4"),
            bytes: 10,
            fragments: 60,
            codec: "h264".into(),
            width: 320,
            height: 240,
            trigger: RecordingTrigger::Continuous,
            state: SegmentState::Closed,
        }
    }

    #[tokio::test]
    async fn unknown_cameras_are_refused_with_camera_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let (cx, _rx) = commands(dir.path(), Arc::new(MemoryIndex::default()));
        let t = Trigger {
            active: true,
            reason: "door".into(),
        };
        let code = |r: Result<(), ReplyError<CaptureCode>>| r.unwrap_err().code;
        assert_eq!(
            code(cx.clone().trigger("nope".into(), t).await),
            CaptureCode::CameraNotFound
        );
        assert_eq!(
            cx.clone()
                .snapshot("spare".into(), Snapshot {})
                .await
                .unwrap_err()
                .code,
            CaptureCode::CameraNotFound
        );
        let c = Credentials {
            username: "u".into(),
            password: "p".into(),
        };
        assert_eq!(
            code(cx.clone().credentials("spare".into(), c).await),
            CaptureCode::CameraNotFound
        );
        assert_eq!(
            cx.recordings("nope".into(), Recordings::default())
                .await
                .unwrap_err()
                .code,
            CaptureCode::CameraNotFound
        );
    }

    #[tokio::test]
    async fn recordings_page_the_index_of_any_configured_camera() {
        let dir = tempfile::tempdir().unwrap();
        let index = Arc::new(MemoryIndex::default());
        for (camera, start) in [("gate", 0), ("gate", 60), ("gate", 120), ("spare", 0)] {
            index.put(&segment(camera, start)).unwrap();
        }
        let (cx, _rx) = commands(dir.path(), index);
        let q = Recordings {
            limit: 2,
            ..Default::default()
        };
        let page = cx.clone().recordings("gate".into(), q).await.unwrap();
        assert_eq!(page.total, 3);
        let starts: Vec<u64> = page.items.iter().map(|r| r.start_us / 1_000_000).collect();
        assert_eq!(starts, [120, 60]);
        // A camera that does not run still has its index.
        let page = cx
            .clone()
            .recordings("spare".into(), Recordings::default())
            .await
            .unwrap();
        assert_eq!((page.total, page.items[0].duration_ms), (1, 60_000));
        let bad = Recordings {
            page: 0,
            ..Default::default()
        };
        assert_eq!(
            cx.recordings("gate".into(), bad).await.unwrap_err().code,
            CaptureCode::InvalidQuery
        );
    }

    #[tokio::test]
    async fn a_trigger_reaches_the_recorder() {
        let dir = tempfile::tempdir().unwrap();
        let (cx, rx) = commands(dir.path(), Arc::new(MemoryIndex::default()));
        let end = Trigger {
            active: false,
            reason: "door".into(),
        };
        cx.trigger("gate".into(), end).await.unwrap();
        match rx.try_recv().unwrap() {
            RecorderMsg::Trigger { active, reason } => {
                assert_eq!((active, reason.as_str()), (false, "door"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn credentials_are_checked_sealed_and_handed_to_the_camera() {
        let dir = tempfile::tempdir().unwrap();
        let (cx, _rx) = commands(dir.path(), Arc::new(MemoryIndex::default()));
        let bad = Credentials {
            username: "a:b".into(),
            password: "p".into(),
        };
        assert_eq!(
            cx.clone()
                .credentials("gate".into(), bad)
                .await
                .unwrap_err()
                .code,
            CaptureCode::InvalidCredentials
        );
        let good = Credentials {
            username: "viewer".into(),
            password: "s3cret".into(),
        };
        cx.clone().credentials("gate".into(), good).await.unwrap();
        let gate = &cx.cameras["gate"];
        assert_eq!(
            gate.credentials.lock().unwrap().clone(),
            Some(("viewer".to_string(), "s3cret".to_string()))
        );
        assert_eq!(
            cx.vault.get("gate").unwrap(),
            Some(("viewer".to_string(), "s3cret".to_string()))
        );
    }

    #[test]
    fn snapshot_failures_map_to_their_codes() {
        let no_frame = SnapshotFailure::Snapshot(SnapshotError::NoFrame {
            camera: "gate".into(),
        });
        assert_eq!(no_frame.reply_error().code, CaptureCode::NoFrame);
        let decode = SnapshotFailure::Snapshot(SnapshotError::Decode {
            camera: "gate".into(),
            reason: "bad stream".into(),
        });
        let refused = decode.reply_error();
        assert_eq!(refused.code, CaptureCode::SnapshotFailed);
        assert!(refused.message.contains("bad stream"), "{refused:?}");
        let stopping = SnapshotFailure::Stopping {
            camera: "gate".into(),
        };
        assert_eq!(stopping.reply_error().code, CaptureCode::SnapshotFailed);
    }
}
