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

/// Resets `data_dir` to factory state. With `keep` the recordings and their index survive;
/// without it a recordings directory outside `data_dir` (`wipe_dirs`) is emptied as well.
/// The workers owning the stores must be stopped.
pub fn factory_reset(
    data_dir: &Path,
    keep: Option<&KeepRecordings>,
    wipe_dirs: &[PathBuf],
) -> Result<ResetReport, ResetError> {
    let mut report = ResetReport::default();
    let entries = match std::fs::read_dir(data_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(source) => {
            return Err(ResetError::Read {
                path: data_dir.to_path_buf(),
                source,
            });
        }
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ResetError::Read {
            path: data_dir.to_path_buf(),
            source,
        })?;
        paths.push(entry.path());
    }
    paths.sort();
    for path in paths {
        let kept = keep.is_some_and(|k| path == k.recordings_dir || path == k.index_store);
        if !kept {
            remove(&path, &mut report)?;
        }
    }
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
            for dir in wipe_dirs.iter().filter(|d| !d.starts_with(data_dir)) {
                let inner = match std::fs::read_dir(dir) {
                    Ok(rd) => rd,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(source) => {
                        return Err(ResetError::Read {
                            path: dir.clone(),
                            source,
                        });
                    }
                };
                for entry in inner.flatten() {
                    remove(&entry.path(), &mut report)?;
                }
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
