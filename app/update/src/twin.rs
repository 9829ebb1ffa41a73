//! [`TwinRauc`]: RAUC in memory, for tests that need no bus (STYLE.md habit 12).
//!
//! It keeps what the real service keeps (two slots A and B, the primary, the booted slot,
//! `Operation`, `LastError`, `Progress`) and answers the same way: `Info` fails without a
//! reason for a bundle whose signature is bad, an install runs in the background, moves
//! `Progress` to 100 % and ends with `Completed`, the other slot becomes primary on success;
//! a compatible mismatch fails the install with RAUC's message and changes no slot.
//!
//! Twin bundles are small text files (see [`TwinRauc::bundle_text`]), since the twin cannot
//! read squashfs; the hub's own checks ([`crate::bundle`]) are tested with real bundles in
//! the system tests.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::broadcast;

use crate::rauc::{
    BoxFut, BundleInfo, InstallArgs, MarkState, Marked, Progress, Rauc, RaucError, RaucEvent,
    SlotRef, SlotStatus,
};

const MAGIC: &str = "watchpost-twin-bundle";

#[derive(Debug)]
struct State {
    compatible: String,
    booted: String,
    primary: String,
    /// (bootname, boot status, bundle version)
    slots: Vec<(String, String, Option<String>)>,
    operation: String,
    last_error: String,
    progress: Progress,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    events: broadcast::Sender<RaucEvent>,
    step: Duration,
}

/// RAUC in memory.
#[derive(Debug, Clone)]
pub struct TwinRauc {
    inner: Arc<Inner>,
}

struct TwinBundle {
    compatible: String,
    version: String,
    signed: bool,
}

fn parse(text: &str) -> Option<TwinBundle> {
    let mut lines = text.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let mut b = TwinBundle {
        compatible: String::new(),
        version: String::new(),
        signed: false,
    };
    for l in lines {
        match l.split_once('=') {
            Some(("compatible", v)) => b.compatible = v.to_string(),
            Some(("version", v)) => b.version = v.to_string(),
            Some(("signature", v)) => b.signed = v == "good",
            _ => {}
        }
    }
    Some(b)
}

impl TwinRauc {
    /// A system with `compatible`, booted from slot A, both slots good.
    pub fn new(compatible: &str) -> TwinRauc {
        let (events, _) = broadcast::channel(256);
        TwinRauc {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    compatible: compatible.to_string(),
                    booted: "A".into(),
                    primary: "A".into(),
                    slots: vec![
                        ("A".into(), "good".into(), None),
                        ("B".into(), "good".into(), None),
                    ],
                    operation: "idle".into(),
                    last_error: String::new(),
                    progress: Progress::default(),
                }),
                events,
                step: Duration::from_millis(5),
            }),
        }
    }

    /// The text of a twin bundle.
    pub fn bundle_text(compatible: &str, version: &str, signed: bool) -> String {
        let sig = if signed { "good" } else { "bad" };
        format!("{MAGIC}\ncompatible={compatible}\nversion={version}\nsignature={sig}\n")
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn emit(&self, e: RaucEvent) {
        let _ = self.inner.events.send(e);
    }

    fn set_progress(&self, percent: i32, message: &str) {
        let p = Progress {
            percent,
            message: message.into(),
            depth: 1,
        };
        self.state().progress = p.clone();
        self.emit(RaucEvent::Progress(p));
    }

    /// Simulates a reboot into `bootname`.
    pub fn reboot_into(&self, bootname: &str) {
        self.state().booted = bootname.to_string();
    }

    async fn run_install(self, bundle: TwinBundle, args: InstallArgs) {
        self.set_progress(0, "Installing");
        tokio::time::sleep(self.inner.step).await;
        let (compatible, target) = {
            let s = self.state();
            let other = if s.booted == "A" { "B" } else { "A" };
            (s.compatible.clone(), other.to_string())
        };
        if bundle.compatible != compatible && !args.ignore_compatible {
            let msg = format!(
                "Installation error: Compatible mismatch: Expected '{compatible}' but bundle manifest has '{}'",
                bundle.compatible
            );
            self.set_progress(100, "Installing failed.");
            self.finish(msg, 1);
            return;
        }
        for p in [20, 40, 60, 80] {
            self.set_progress(p, "Copying image to rootfs");
            tokio::time::sleep(self.inner.step).await;
        }
        {
            let mut s = self.state();
            for slot in s.slots.iter_mut() {
                if slot.0 == target {
                    slot.1 = "good".into();
                    slot.2 = Some(bundle.version.clone());
                }
            }
            s.primary = target;
        }
        self.set_progress(100, "Installing done.");
        self.finish(String::new(), 0);
    }

    fn finish(&self, last_error: String, result: i32) {
        {
            let mut s = self.state();
            s.last_error = last_error.clone();
            s.operation = "idle".into();
        }
        self.emit(RaucEvent::LastError(last_error));
        self.emit(RaucEvent::Operation("idle".into()));
        self.emit(RaucEvent::Completed(result));
    }
}

fn ok<'a, T: Send + 'a>(v: T) -> BoxFut<'a, Result<T, RaucError>> {
    Box::pin(async move { Ok(v) })
}

impl Rauc for TwinRauc {
    fn install_bundle(
        &self,
        source: PathBuf,
        args: InstallArgs,
    ) -> BoxFut<'_, Result<(), RaucError>> {
        Box::pin(async move {
            {
                let mut s = self.state();
                if s.operation != "idle" {
                    return Err(RaucError::Refused {
                        method: "InstallBundle",
                        message: "already processing a different method".into(),
                    });
                }
                s.operation = "installing".into();
            }
            self.emit(RaucEvent::Operation("installing".into()));
            let text = tokio::fs::read_to_string(&source).await.unwrap_or_default();
            match parse(&text) {
                Some(b) if b.signed => {
                    tokio::spawn(self.clone().run_install(b, args));
                }
                _ => {
                    let me = self.clone();
                    tokio::spawn(async move {
                        me.set_progress(100, "Installing failed.");
                        me.finish("signature verification failed".into(), 1);
                    });
                }
            }
            Ok(())
        })
    }

    fn info(&self, bundle: PathBuf) -> BoxFut<'_, Result<BundleInfo, RaucError>> {
        Box::pin(async move {
            let text = tokio::fs::read_to_string(&bundle).await.unwrap_or_default();
            match parse(&text) {
                Some(b) if b.signed => Ok(BundleInfo {
                    compatible: b.compatible,
                    version: b.version,
                }),
                _ => Err(RaucError::Refused {
                    method: "Info",
                    message: "rauc info error".into(),
                }),
            }
        })
    }

    fn mark(&self, state: MarkState, slot: SlotRef) -> BoxFut<'_, Result<Marked, RaucError>> {
        let mut s = self.state();
        let booted = s.booted.clone();
        let target = match &slot {
            SlotRef::Booted => booted,
            SlotRef::Other => if booted == "A" { "B" } else { "A" }.to_string(),
            SlotRef::Named(n) => match n.as_str() {
                "rootfs.0" => "A".to_string(),
                "rootfs.1" => "B".to_string(),
                _ => {
                    return Box::pin(async move {
                        Err(RaucError::Refused {
                            method: "Mark",
                            message: format!(
                                "No slot with class rootfs and name '{}' found",
                                slot.as_str()
                            ),
                        })
                    });
                }
            },
        };
        let name = if target == "A" {
            "rootfs.0"
        } else {
            "rootfs.1"
        };
        match state {
            MarkState::Good => {
                for sl in s.slots.iter_mut().filter(|sl| sl.0 == target) {
                    sl.1 = "good".into();
                }
            }
            MarkState::Bad => {
                for sl in s.slots.iter_mut().filter(|sl| sl.0 == target) {
                    sl.1 = "bad".into();
                }
                if s.primary == target {
                    s.primary = if target == "A" { "B" } else { "A" }.into();
                }
            }
            MarkState::Active => s.primary = target.clone(),
        }
        let message = format!("marked slot {name} as {}", state.as_str());
        ok(Marked {
            slot: name.to_string(),
            message,
        })
    }

    fn slot_status(&self) -> BoxFut<'_, Result<Vec<SlotStatus>, RaucError>> {
        let s = self.state();
        let slots = s
            .slots
            .iter()
            .enumerate()
            .map(|(i, (boot, status, version))| SlotStatus {
                name: format!("rootfs.{i}"),
                class: "rootfs".into(),
                bootname: Some(boot.clone()),
                state: Some(
                    if *boot == s.booted {
                        "booted"
                    } else {
                        "inactive"
                    }
                    .into(),
                ),
                boot_status: Some(status.clone()),
                device: None,
                bundle_version: version.clone(),
                installed_timestamp: None,
            })
            .collect();
        ok(slots)
    }

    fn primary(&self) -> BoxFut<'_, Result<String, RaucError>> {
        let p = self.state().primary.clone();
        ok(if p == "A" { "rootfs.0" } else { "rootfs.1" }.to_string())
    }

    fn operation(&self) -> BoxFut<'_, Result<String, RaucError>> {
        ok(self.state().operation.clone())
    }

    fn last_error(&self) -> BoxFut<'_, Result<String, RaucError>> {
        ok(self.state().last_error.clone())
    }

    fn progress(&self) -> BoxFut<'_, Result<Progress, RaucError>> {
        ok(self.state().progress.clone())
    }

    fn compatible(&self) -> BoxFut<'_, Result<String, RaucError>> {
        ok(self.state().compatible.clone())
    }

    fn boot_slot(&self) -> BoxFut<'_, Result<String, RaucError>> {
        ok(self.state().booted.clone())
    }

    fn events(&self) -> BoxFut<'_, Result<BoxStream<'static, RaucEvent>, RaucError>> {
        let rx = self.inner.events.subscribe();
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(e) => return Some((e, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        ok(stream.boxed())
    }
}
