//! Retention: which segments to delete, by age per camera and by disk budget, oldest first.
//! The planner is pure; the worker lists the index, asks the file system for its free space,
//! plans, and deletes (file first, then record).

use std::collections::HashMap;

use crate::index::{SegmentRecord, SegmentState};

/// Limits for one planning pass.
#[derive(Debug, Clone, Default)]
pub struct RetentionLimits {
    /// Per-camera maximum age in µs (absent or 0: no age limit).
    pub max_age_us: HashMap<String, u64>,
    /// Budget for all recordings (0: none).
    pub max_bytes: u64,
    /// Keep at least this many bytes free on the file system (0: no watermark).
    pub min_free_bytes: u64,
    /// Once a limit is hit, delete until this far below it.
    pub headroom_bytes: u64,
}

/// What the file system holding the recordings reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    pub free_bytes: u64,
    pub total_bytes: u64,
}

/// Why a segment is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Age,
    Budget,
    FreeSpace,
}

/// Plans deletions. Open segments are never deleted.
pub fn plan(
    records: &[SegmentRecord],
    limits: &RetentionLimits,
    disk: Option<DiskSpace>,
    now_us: u64,
) -> Vec<(SegmentRecord, Reason)> {
    let mut closed: Vec<&SegmentRecord> = records
        .iter()
        .filter(|r| r.state != SegmentState::Open)
        .collect();
    closed.sort_by_key(|r| (r.start_us, r.camera.clone()));
    let mut out = Vec::new();
    let mut keep = Vec::new();
    for r in closed {
        let max_age = limits.max_age_us.get(&r.camera).copied().unwrap_or(0);
        if max_age > 0 && r.end_us.saturating_add(max_age) < now_us {
            out.push((r.clone(), Reason::Age));
        } else {
            keep.push(r);
        }
    }
    let total: u64 = records.iter().map(|r| r.bytes).sum();
    let mut used = total - out.iter().map(|(r, _)| r.bytes).sum::<u64>();
    let mut free = disk.map(|d| d.free_bytes + out.iter().map(|(r, _)| r.bytes).sum::<u64>());
    let over_budget = limits.max_bytes > 0 && used > limits.max_bytes;
    let low_space = limits.min_free_bytes > 0 && free.is_some_and(|f| f < limits.min_free_bytes);
    if !over_budget && !low_space {
        return out;
    }
    let budget_target = limits.max_bytes.saturating_sub(limits.headroom_bytes);
    let free_target = limits.min_free_bytes.saturating_add(limits.headroom_bytes);
    for r in keep {
        let need_budget = over_budget && used > budget_target;
        let need_space = low_space && free.is_some_and(|f| f < free_target);
        if !need_budget && !need_space {
            break;
        }
        used = used.saturating_sub(r.bytes);
        free = free.map(|f| f + r.bytes);
        out.push((
            r.clone(),
            if need_budget {
                Reason::Budget
            } else {
                Reason::FreeSpace
            },
        ));
    }
    out
}

/// Free and total bytes of the file system holding `path`.
pub fn disk_space(path: &std::path::Path) -> Option<DiskSpace> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    let frag = s.fragment_size() as u64;
    Some(DiskSpace {
        free_bytes: s.blocks_available() as u64 * frag,
        total_bytes: s.blocks() as u64 * frag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::RecordingTrigger;

    fn rec(camera: &str, start_s: u64, bytes: u64, state: SegmentState) -> SegmentRecord {
        SegmentRecord {
            camera: camera.into(),
            start_us: start_s * 1_000_000,
            end_us: (start_s + 60) * 1_000_000,
            path: format!("{camera}/{start_s}.mp4"),
            bytes,
            fragments: 60,
            codec: "h264".into(),
            width: 1920,
            height: 1080,
            trigger: RecordingTrigger::Continuous,
            state,
        }
    }

    #[test]
    fn budget_deletes_oldest_first_down_to_headroom() {
        let records = vec![
            rec("b", 120, 100, SegmentState::Closed),
            rec("a", 0, 100, SegmentState::Closed),
            rec("a", 60, 100, SegmentState::Recovered),
            rec("a", 180, 100, SegmentState::Closed),
            rec("a", 240, 100, SegmentState::Open),
        ];
        let limits = RetentionLimits {
            max_bytes: 450,
            headroom_bytes: 150,
            ..Default::default()
        };
        // 500 used > 450: delete to 300 or less, oldest first: a@0, a@60.
        let p = plan(&records, &limits, None, 1000 * 1_000_000);
        let got: Vec<(String, u64)> = p
            .iter()
            .map(|(r, _)| (r.camera.clone(), r.start_us / 1_000_000))
            .collect();
        assert_eq!(got, vec![("a".into(), 0), ("a".into(), 60)]);
        assert!(p.iter().all(|(_, why)| *why == Reason::Budget));
        // Under the budget: nothing.
        let limits = RetentionLimits {
            max_bytes: 600,
            headroom_bytes: 100,
            ..Default::default()
        };
        assert!(plan(&records, &limits, None, 0).is_empty());
    }

    #[test]
    fn age_per_camera_and_free_space_watermark() {
        let records = vec![
            rec("a", 0, 100, SegmentState::Closed),
            rec("b", 10, 100, SegmentState::Closed),
            rec("b", 1000, 100, SegmentState::Closed),
            rec("b", 2000, 100, SegmentState::Closed),
        ];
        let mut limits = RetentionLimits::default();
        limits.max_age_us.insert("a".into(), 500 * 1_000_000);
        let p = plan(&records, &limits, None, 600 * 1_000_000);
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].0.camera.as_str(), p[0].1), ("a", Reason::Age));
        // Free space 50 < 120 wanted: delete until free >= 120 + 50 headroom.
        limits.max_age_us.clear();
        limits.min_free_bytes = 120;
        limits.headroom_bytes = 50;
        let disk = DiskSpace {
            free_bytes: 50,
            total_bytes: 1000,
        };
        let p = plan(&records, &limits, Some(disk), 0);
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|(_, why)| *why == Reason::FreeSpace));
        assert_eq!(p[1].0.start_us, 10 * 1_000_000);
    }
}
