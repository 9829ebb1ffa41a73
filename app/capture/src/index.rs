//! The recording index: one record per segment file (camera, start, end, size, trigger),
//! kept in the worker's store. A record is written before its file is created and updated when
//! the file is closed, so after a crash every file on disk has a record and every record still
//! marked open is repaired from its file at start (see `segment::recover`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use watchpost_contract::capture::{Recording, Recordings, RecordingsPage};

use crate::time::rfc3339;

/// A segment's trigger and state are the capture contract's (the recording events and the
/// `recordings` command carry them as stored).
pub use watchpost_contract::capture::{RecordingTrigger, SegmentState};

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub camera: String,
    /// Wall-clock time of the first frame, µs since the Unix epoch (also the record's key).
    pub start_us: u64,
    /// Start plus the media duration of the whole fragments.
    pub end_us: u64,
    /// Path relative to the recordings directory.
    pub path: String,
    pub bytes: u64,
    pub fragments: u32,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub trigger: RecordingTrigger,
    pub state: SegmentState,
}

impl SegmentRecord {
    pub fn duration_ms(&self) -> u64 {
        self.end_us.saturating_sub(self.start_us) / 1000
    }

    /// The record as the `recordings` command answers it.
    pub fn recording(&self) -> Recording {
        Recording {
            camera: self.camera.clone(),
            start: rfc3339(self.start_us),
            end: rfc3339(self.end_us),
            start_us: self.start_us,
            end_us: self.end_us,
            duration_ms: self.duration_ms(),
            path: self.path.clone(),
            bytes: self.bytes,
            fragments: self.fragments,
            codec: self.codec.clone(),
            width: self.width,
            height: self.height,
            trigger: self.trigger.clone(),
            state: self.state,
        }
    }
}

/// One page of `camera`'s segments from `records` (newest first unless the query says
/// otherwise), and how many match in all: the answer to the `recordings` command.
pub fn page(records: &[SegmentRecord], camera: &str, q: &Recordings) -> RecordingsPage {
    let mut matching: Vec<&SegmentRecord> = records
        .iter()
        .filter(|r| r.camera == camera)
        .filter(|r| q.since_us.is_none_or(|t| r.end_us >= t))
        .filter(|r| q.until_us.is_none_or(|t| r.start_us < t))
        .collect();
    matching.sort_by_key(|r| r.start_us);
    if !q.oldest_first {
        matching.reverse();
    }
    let total = matching.len() as u64;
    let limit = q.limit.max(1) as usize;
    let skip = (q.page.max(1) as usize - 1).saturating_mul(limit);
    let items = matching
        .into_iter()
        .skip(skip)
        .take(limit)
        .map(SegmentRecord::recording)
        .collect();
    RecordingsPage { items, total }
}

/// Index errors.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("recording index: writing segment {camera}@{start_us}: {source}")]
    Put {
        camera: String,
        start_us: u64,
        source: Box<watchpost_store::StoreError>,
    },
    #[error("recording index: removing segment {camera}@{start_us}: {source}")]
    Remove {
        camera: String,
        start_us: u64,
        source: Box<watchpost_store::StoreError>,
    },
    #[error("recording index: listing segments: {source}")]
    List {
        source: Box<watchpost_store::StoreError>,
    },
}

/// Where the index lives. The store-backed one is used by the worker; the memory twin by
/// unit tests.
pub trait RecordingIndex: Send + Sync {
    fn put(&self, record: &SegmentRecord) -> Result<(), IndexError>;
    fn remove(&self, camera: &str, start_us: u64) -> Result<(), IndexError>;
    /// Every record, ordered by camera then start.
    fn list(&self) -> Result<Vec<SegmentRecord>, IndexError>;
}

const PREFIX: &str = watchpost_store::reset::RECORDING_INDEX_PREFIX;

fn key(camera: &str, start_us: u64) -> String {
    format!("{PREFIX}{camera}/{start_us:020}")
}

/// The index in the settings table of the capture worker's store (one JSON value per
/// segment under `recording/<camera>/<start_us>`).
#[derive(Debug, Clone)]
pub struct StoreIndex {
    store: watchpost_store::Store,
}

impl StoreIndex {
    pub fn new(store: watchpost_store::Store) -> Self {
        Self { store }
    }
}

impl RecordingIndex for StoreIndex {
    fn put(&self, r: &SegmentRecord) -> Result<(), IndexError> {
        self.store
            .settings()
            .put(&key(&r.camera, r.start_us), r)
            .map_err(|source| IndexError::Put {
                camera: r.camera.clone(),
                start_us: r.start_us,
                source: Box::new(source),
            })
    }

    fn remove(&self, camera: &str, start_us: u64) -> Result<(), IndexError> {
        self.store
            .settings()
            .remove(&key(camera, start_us))
            .map(|_| ())
            .map_err(|source| IndexError::Remove {
                camera: camera.to_string(),
                start_us,
                source: Box::new(source),
            })
    }

    fn list(&self) -> Result<Vec<SegmentRecord>, IndexError> {
        let settings = self.store.settings();
        let keys = settings.keys().map_err(|source| IndexError::List {
            source: Box::new(source),
        })?;
        let mut out = Vec::new();
        for k in keys.iter().filter(|k| k.starts_with(PREFIX)) {
            match settings.get::<SegmentRecord>(k) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => {}
                Err(e) => tracing::warn!(key = %k, error = %e, "unreadable index record skipped"),
            }
        }
        Ok(out)
    }
}

/// An index in memory.
#[derive(Debug, Default)]
pub struct MemoryIndex {
    records: Mutex<BTreeMap<String, SegmentRecord>>,
}

impl RecordingIndex for MemoryIndex {
    fn put(&self, r: &SegmentRecord) -> Result<(), IndexError> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key(&r.camera, r.start_us), r.clone());
        Ok(())
    }
    fn remove(&self, camera: &str, start_us: u64) -> Result<(), IndexError> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key(camera, start_us));
        Ok(())
    }
    fn list(&self) -> Result<Vec<SegmentRecord>, IndexError> {
        Ok(self
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(camera: &str, start_s: u64) -> SegmentRecord {
        SegmentRecord {
            camera: camera.into(),
            start_us: start_s * 1_000_000,
            end_us: (start_s + 10) * 1_000_000,
            path: format!("{camera}/{start_s}.mp4"),
            bytes: 1,
            fragments: 1,
            codec: "h264".into(),
            width: 2,
            height: 2,
            trigger: RecordingTrigger::Continuous,
            state: SegmentState::Closed,
        }
    }

    #[test]
    fn pages_one_camera_newest_first() {
        let all: Vec<_> = (0..7)
            .map(|i| rec("a", i * 10))
            .chain([rec("b", 5)])
            .collect();
        let starts = |p: &RecordingsPage| -> Vec<u64> {
            p.items.iter().map(|r| r.start_us / 1_000_000).collect()
        };
        let q = Recordings {
            limit: 3,
            ..Default::default()
        };
        let p = page(&all, "a", &q);
        assert_eq!(p.total, 7);
        assert_eq!(starts(&p), [60, 50, 40]);
        let q3 = Recordings {
            page: 3,
            ..q.clone()
        };
        assert_eq!(page(&all, "a", &q3).items.len(), 1);
        let old = Recordings {
            oldest_first: true,
            since_us: Some(25_000_000),
            until_us: Some(50_000_000),
            ..q
        };
        let p = page(&all, "a", &old);
        assert_eq!((starts(&p), p.total), (vec![20, 30, 40], 3));
        assert_eq!(page(&all, "zz", &Recordings::default()).total, 0);
    }

    #[test]
    fn a_record_is_answered_with_its_times_in_both_spellings() {
        let r = rec("a", 1_795_341_600).recording();
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"camera": "a", "start": "2026-11-22T10:00:00.000Z",
                "end": "2026-11-22T10:00:10.000Z", "start_us": 1_795_341_600_000_000_u64,
                "end_us": 1_795_341_610_000_000_u64, "duration_ms": 10_000,
                "path": "a/1795341600.mp4", "bytes": 1, "fragments": 1, "codec": "h264",
                "width": 2, "height": 2, "trigger": {"kind": "continuous"}, "state": "closed"})
        );
    }
}
