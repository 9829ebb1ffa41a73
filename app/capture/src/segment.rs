//! Segment files on disk: create with the init part, append whole fragments, patch the
//! duration on close, and repair files left open by a crash.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::index::{IndexError, RecordingIndex, SegmentRecord, SegmentState};
use crate::mp4::{self, Fragment, InitSegment, TIMESCALE};
use crate::time::civil;

/// File errors, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("creating segment {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing segment {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("syncing segment {path}: {source}")]
    Sync {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("repairing segment {path}: {source}")]
    Repair {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("repairing segment {path}: {source}")]
    Scan {
        path: PathBuf,
        source: mp4::ScanError,
    },
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// `<camera>/<YYYY-MM-DD>/<camera>_<YYYYMMDD>T<HHMMSS>.<mmm>Z.mp4`, in UTC.
pub fn relative_path(camera: &str, start_us: u64) -> String {
    let c = civil(start_us, 0);
    format!(
        "{camera}/{:04}-{:02}-{:02}/{camera}_{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z.mp4",
        c.year, c.month, c.day, c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
    )
}

fn sync_dir(dir: &Path) {
    // Makes the new directory entry durable; a failure only weakens crash safety.
    if let Ok(d) = File::open(dir)
        && let Err(e) = d.sync_all()
    {
        tracing::debug!(dir = %dir.display(), error = %e, "directory sync failed");
    }
}

/// An open segment file.
#[derive(Debug)]
pub struct SegmentFile {
    path: PathBuf,
    file: File,
    init: InitSegment,
    bytes: u64,
    fragments: u32,
    duration_ticks: u64,
    sync_every: u32,
    unsynced: u32,
}

impl SegmentFile {
    /// Creates the file (and its directories) and writes the init part durably.
    pub fn create(path: &Path, init: InitSegment, sync_every: u32) -> Result<Self, SegmentError> {
        let err = |source| SegmentError::Create {
            path: path.to_path_buf(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(err)?;
        file.write_all(&init.bytes).map_err(err)?;
        file.sync_data().map_err(err)?;
        sync_dir(dir);
        Ok(Self {
            path: path.to_path_buf(),
            file,
            bytes: init.bytes.len() as u64,
            init,
            fragments: 0,
            duration_ticks: 0,
            sync_every,
            unsynced: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
    pub fn fragments(&self) -> u32 {
        self.fragments
    }
    pub fn duration_ms(&self) -> u64 {
        self.duration_ticks * 1000 / u64::from(TIMESCALE)
    }

    /// Appends one fragment with a single write, then syncs per the policy.
    pub fn append(&mut self, f: &Fragment) -> Result<(), SegmentError> {
        self.file
            .write_all(&f.bytes)
            .map_err(|source| SegmentError::Write {
                path: self.path.clone(),
                source,
            })?;
        self.bytes += f.bytes.len() as u64;
        self.fragments += 1;
        self.duration_ticks += f.duration_ticks;
        self.unsynced += 1;
        if self.sync_every > 0 && self.unsynced >= self.sync_every {
            self.unsynced = 0;
            self.file.sync_data().map_err(|source| SegmentError::Sync {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Writes the final duration into the header and syncs.
    pub fn finish(self) -> Result<(u64, u32, u64), SegmentError> {
        let err = |source| SegmentError::Write {
            path: self.path.clone(),
            source,
        };
        for (off, b) in self.init.duration_patches(self.duration_ticks) {
            self.file.write_all_at(&b, off as u64).map_err(err)?;
        }
        self.file.sync_data().map_err(err)?;
        Ok((self.bytes, self.fragments, self.duration_ms()))
    }
}

/// What [`repair`] did to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// Cut to its whole fragments; the record now says so.
    Cut { removed_bytes: u64 },
    /// No whole fragment (or no file): file and record deleted.
    Dropped,
}

/// Repairs a segment whose record is still open: cuts the file after its last whole
/// fragment, writes the duration into its header, and closes the record.
pub fn repair(
    root: &Path,
    record: &SegmentRecord,
    index: &dyn RecordingIndex,
) -> Result<Repair, SegmentError> {
    let path = root.join(&record.path);
    let rerr = |source| SegmentError::Repair {
        path: path.clone(),
        source,
    };
    let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            index.remove(&record.camera, record.start_us)?;
            return Ok(Repair::Dropped);
        }
        Err(e) => return Err(rerr(e)),
    };
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).map_err(rerr)?;
    let scan = match mp4::scan(&buf) {
        Ok(s) if !s.fragments.is_empty() => s,
        _ => {
            drop(file);
            std::fs::remove_file(&path).map_err(rerr)?;
            index.remove(&record.camera, record.start_us)?;
            return Ok(Repair::Dropped);
        }
    };
    let removed = buf.len() as u64 - scan.valid_len;
    file.set_len(scan.valid_len).map_err(rerr)?;
    if let Some(offsets) = scan.duration_offsets {
        let d = scan.duration_ticks().to_be_bytes();
        for off in offsets {
            file.seek(SeekFrom::Start(off as u64)).map_err(rerr)?;
            file.write_all(&d).map_err(rerr)?;
        }
    }
    file.sync_all().map_err(rerr)?;
    let mut closed = record.clone();
    closed.end_us = record.start_us + scan.duration_ms() * 1000;
    closed.bytes = scan.valid_len;
    closed.fragments = scan.fragments.len() as u32;
    closed.state = SegmentState::Recovered;
    index.put(&closed)?;
    Ok(Repair::Cut {
        removed_bytes: removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_by_camera_and_day() {
        assert_eq!(
            relative_path("front", 1_709_251_199_500_000),
            "front/2024-02-29/front_20240229T235959.500Z.mp4"
        );
    }
}
