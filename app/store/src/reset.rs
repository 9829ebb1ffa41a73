//! Factory reset of a data directory: what the user button's confirmed long press (and, later,
//! the setup page) does while every worker is stopped.
//!
//! Settings are everything the workers keep under the data directory: their database files
//! (API-made receivers, mappings, cameras, users, checkpoints, history), secrets and run files.
//! A reset removes them all. Recordings are kept unless asked otherwise; keeping them also
//! keeps the capture store's recording index (the keys under [`RECORDING_INDEX_PREFIX`]), so
//! retention still knows every kept file and can delete it in time. Every other setting of
//! that store is removed.

use std::path::{Path, PathBuf};

use crate::{Store, StoreError};

/// Settings keys of the recording index (one per segment file).
pub const RECORDING_INDEX_PREFIX: &str = "recording/";

/// What survives a reset that keeps recordings.
#[derive(Debug, Clone)]
pub struct KeepRecordings {
    /// The recordings directory (kept whole).
    pub recordings_dir: PathBuf,
    /// The store holding the recording index; only its index keys are kept.
    pub index_store: PathBuf,
}

/// What a reset did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResetReport {
    /// Files and directories removed.
    pub removed: Vec<PathBuf>,
    /// Settings keys removed from the kept index store.
    pub settings_removed: usize,
}

/// Failure of a reset; the paths before it are already gone.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error("reading {path} for the factory reset: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("removing {path} for the factory reset: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("clearing the settings of {path}: {source}")]
    Store {
        path: PathBuf,
        source: Box<StoreError>,
    },
}

fn remove(path: &Path, report: &mut ResetReport) -> Result<(), ResetError> {
    let res = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    res.map_err(|source| ResetError::Remove {
        path: path.to_path_buf(),
        source,
    })?;
    report.removed.push(path.to_path_buf());
    Ok(())
}

/// The path with symlinks and `.`/`..` resolved, as far as it exists; the missing rest is
/// appended as given. Lets `./data/rec`, `/abs/data/rec` and a symlinked data directory
/// compare equal.
fn resolved(path: &Path) -> PathBuf {
    use std::path::Component;
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    // `.` and `..` lexically first (the tail may not exist, so the kernel cannot do it)...
    let mut lexical = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                lexical.pop();
            }
            other => lexical.push(other),
        }
    }
    // ...then symlinks on the longest part that exists.
    let mut existing = lexical.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(mut out) = existing.canonicalize() {
            out.extend(rest.iter().rev());
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return lexical,
        }
    }
}

/// Removes the entries of `dir`, keeping the paths in `keep` and descending into any
/// directory that contains one of them.
fn clear_dir(dir: &Path, keep: &[PathBuf], report: &mut ResetReport) -> Result<(), ResetError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ResetError::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ResetError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        paths.push(entry.path());
    }
    paths.sort();
    for path in paths {
        let real = resolved(&path);
        if keep.contains(&real) {
            continue;
        }
        let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        if is_dir && keep.iter().any(|k| k.starts_with(&real)) {
            clear_dir(&path, keep, report)?;
        } else {
            remove(&path, report)?;
        }
    }
    Ok(())
}

/// Resets `data_dir` to factory state. With `keep` the recordings and their index survive
/// wherever they are below `data_dir` (however the paths are spelled); without it the
/// directories in `wipe_dirs` outside `data_dir` (recordings, snapshots elsewhere) are
/// emptied as well. The workers owning the stores must be stopped.
pub fn factory_reset(
    data_dir: &Path,
    keep: Option<&KeepRecordings>,
    wipe_dirs: &[PathBuf],
) -> Result<ResetReport, ResetError> {
    let mut report = ResetReport::default();
    let kept: Vec<PathBuf> = keep
        .map(|k| vec![resolved(&k.recordings_dir), resolved(&k.index_store)])
        .unwrap_or_default();
    clear_dir(data_dir, &kept, &mut report)?;
    match keep {
        Some(k) if k.index_store.exists() => {
            let err = |source| ResetError::Store {
                path: k.index_store.clone(),
                source: Box::new(source),
            };
            let store = Store::open(&k.index_store).map_err(err)?;
            let settings = store.settings();
            for key in settings.keys().map_err(err)? {
                if !key.starts_with(RECORDING_INDEX_PREFIX) && settings.remove(&key).map_err(err)? {
                    report.settings_removed += 1;
                }
            }
        }
        Some(_) => {}
        None => {
            let data = resolved(data_dir);
            for dir in wipe_dirs.iter().filter(|d| !resolved(d).starts_with(&data)) {
                clear_dir(dir, &[], &mut report)?;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn populate(dir: &Path) -> PathBuf {
        let hub = Store::open(dir.join("hub.redb")).unwrap();
        hub.settings().put("alarms.managed", &"receivers").unwrap();
        drop(hub);
        let capture = Store::open(dir.join("capture.redb")).unwrap();
        capture
            .settings()
            .put("camera/yard", &"rtsp://cam")
            .unwrap();
        capture
            .settings()
            .put("recording/yard/00000000000000000001", &1)
            .unwrap();
        drop(capture);
        std::fs::create_dir_all(dir.join("secrets")).unwrap();
        std::fs::write(dir.join("secrets/device.key"), b"k").unwrap();
        std::fs::create_dir_all(dir.join("recordings/yard")).unwrap();
        std::fs::write(dir.join("recordings/yard/1.mp4"), b"mp4").unwrap();
        std::fs::create_dir_all(dir.join("run")).unwrap();
        std::fs::write(dir.join("run/listeners.json"), b"{}").unwrap();
        dir.join("recordings")
    }

    #[test]
    fn keeping_recordings_keeps_their_files_and_index_only() {
        let tmp = tempfile::tempdir().unwrap();
        let recordings = populate(tmp.path());
        let keep = KeepRecordings {
            recordings_dir: recordings.clone(),
            index_store: tmp.path().join("capture.redb"),
        };
        let report = factory_reset(tmp.path(), Some(&keep), &[]).unwrap();
        assert_eq!(report.settings_removed, 1);
        let mut left: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["capture.redb", "recordings"]);
        assert!(recordings.join("yard/1.mp4").exists());
        let capture = Store::open(tmp.path().join("capture.redb")).unwrap();
        assert_eq!(
            capture.settings().keys().unwrap(),
            ["recording/yard/00000000000000000001"]
        );
    }

    #[test]
    fn nested_and_differently_spelled_recordings_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        populate(&data);
        let nested = data.join("media/rec/yard");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(nested.join("7.mp4"), b"mp4").unwrap();
        std::fs::write(data.join("media/other.bin"), b"x").unwrap();
        // The same data directory through a symlink, and with `..` in the recordings path.
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&data, &link).unwrap();
        let keep = KeepRecordings {
            recordings_dir: link.join("media/x/../rec"),
            index_store: link.join("capture.redb"),
        };
        factory_reset(&data, Some(&keep), &[]).unwrap();
        assert!(
            nested.join("7.mp4").exists(),
            "a kept recording was deleted"
        );
        assert!(!data.join("media/other.bin").exists());
        assert!(data.join("capture.redb").exists());
        assert!(!data.join("hub.redb").exists() && !data.join("recordings").exists());
    }

    #[test]
    fn wiping_removes_everything_including_recordings_elsewhere() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        populate(&data);
        let elsewhere = tmp.path().join("nvr");
        std::fs::create_dir_all(elsewhere.join("yard")).unwrap();
        std::fs::write(elsewhere.join("yard/2.mp4"), b"mp4").unwrap();
        let report = factory_reset(&data, None, std::slice::from_ref(&elsewhere)).unwrap();
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
        assert!(elsewhere.exists() && std::fs::read_dir(&elsewhere).unwrap().count() == 0);
        assert!(report.removed.contains(&data.join("hub.redb")));
        // A missing data directory is already reset.
        assert_eq!(
            factory_reset(&tmp.path().join("none"), None, &[]).unwrap(),
            ResetReport::default()
        );
    }
}
