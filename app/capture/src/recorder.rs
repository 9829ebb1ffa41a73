//! The per-camera recorder: a thread that receives compressed access units from the
//! pipeline, keeps the recent groups of pictures in memory (pre-roll and snapshots), decides
//! when to record (continuous, event with pre/post-roll, schedule), bounds the write rate, and
//! writes fragmented-MP4 segments with their index records.
//!
//! It runs on its own OS thread because every write and index commit blocks on the disk; the
//! GStreamer streaming thread only hands samples over through a bounded channel and never
//! waits for the disk.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use watchpost_config::capture::RecordMode;

use crate::index::{RecordingIndex, RecordingTrigger, SegmentRecord, SegmentState};
use crate::mp4::{Muxer, Sample, TIMESCALE, TrackInfo};
use crate::schedule::Schedule;
use crate::segment::{self, SegmentFile};
use crate::time::WallClock;

/// One group of pictures: a keyframe and what follows it.
#[derive(Debug, Clone)]
pub struct Gop {
    pub track: Arc<TrackInfo>,
    pub samples: Vec<(Sample, u64)>,
}

/// Messages to the recorder thread.
#[derive(Debug)]
pub enum RecorderMsg {
    /// An access unit, with the track it belongs to and its arrival time (µs, wall clock).
    Sample {
        sample: Sample,
        track: Arc<TrackInfo>,
        arrival_us: u64,
    },
    /// The source stopped: close the segment (the next one starts after the gap).
    SourceDown,
    /// Event recording: an event started (`active`) or ended.
    Trigger {
        active: bool,
        reason: String,
    },
    /// The current group of pictures, for a snapshot.
    CurrentGop(Sender<Option<Gop>>),
    Shutdown,
}

/// What the recorder reports to the async side.
#[derive(Debug, Clone)]
pub enum RecorderEvent {
    Started(SegmentRecord),
    Stopped(SegmentRecord),
    Failed { reason: String },
}

/// Counters shared with status and metrics.
#[derive(Debug, Default)]
pub struct RecorderStats {
    pub bytes_written: AtomicU64,
    pub segments_closed: AtomicU64,
    pub frames_dropped_rate: AtomicU64,
    pub recording: AtomicBool,
    pub last_error: Mutex<Option<String>>,
}

/// Settings of one camera's recorder.
pub struct RecorderSettings {
    pub camera: String,
    pub root: PathBuf,
    pub mode: RecordMode,
    pub preroll_us: u64,
    pub postroll_us: u64,
    pub segment_us: u64,
    pub fragment_ms: u32,
    pub sync_every_fragments: u32,
    pub max_write_bytes_per_s: u64,
    pub schedule: Schedule,
    pub clock: Arc<dyn WallClock>,
}

impl std::fmt::Debug for RecorderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecorderSettings")
            .field("camera", &self.camera)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

struct Open {
    file: SegmentFile,
    muxer: Muxer,
    record: SegmentRecord,
}

struct TokenBucket {
    rate: u64,
    tokens: f64,
    last_us: Option<u64>,
    dropping: bool,
}

impl TokenBucket {
    /// Whether a sample of `size` bytes may be written now.
    fn admit(&mut self, now_us: u64, size: usize, keyframe: bool) -> bool {
        if self.rate == 0 {
            return true;
        }
        let cap = 2.0 * self.rate as f64;
        if let Some(last) = self.last_us {
            let dt = now_us.saturating_sub(last) as f64 / 1e6;
            self.tokens = (self.tokens + dt * self.rate as f64).min(cap);
        } else {
            self.tokens = cap;
        }
        self.last_us = Some(now_us);
        let size = size as f64;
        if self.dropping && !(keyframe && self.tokens >= size) {
            return false;
        }
        if self.tokens < size {
            // Drop until the next keyframe: a partial group of pictures cannot be decoded.
            self.dropping = true;
            return false;
        }
        self.dropping = false;
        self.tokens -= size;
        true
    }
}

/// The recorder state machine (driven by [`run`], or directly by tests).
pub struct Recorder {
    s: RecorderSettings,
    index: Arc<dyn RecordingIndex>,
    stats: Arc<RecorderStats>,
    events: tokio::sync::mpsc::UnboundedSender<RecorderEvent>,
    gops: VecDeque<Gop>,
    open: Option<Open>,
    trigger_active: bool,
    trigger_reason: String,
    postroll_until_us: u64,
    session: bool,
    last_closed: Option<SegmentRecord>,
    bucket: TokenBucket,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("camera", &self.s.camera)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    pub fn new(
        s: RecorderSettings,
        index: Arc<dyn RecordingIndex>,
        stats: Arc<RecorderStats>,
        events: tokio::sync::mpsc::UnboundedSender<RecorderEvent>,
    ) -> Self {
        let rate = s.max_write_bytes_per_s;
        Self {
            s,
            index,
            stats,
            events,
            gops: VecDeque::new(),
            open: None,
            trigger_active: false,
            trigger_reason: String::new(),
            postroll_until_us: 0,
            session: false,
            last_closed: None,
            bucket: TokenBucket {
                rate,
                tokens: 0.0,
                last_us: None,
                dropping: false,
            },
        }
    }

    fn wants(&self, now_us: u64) -> bool {
        match self.s.mode {
            RecordMode::Continuous => true,
            RecordMode::Schedule => self.s.schedule.is_active(now_us),
            RecordMode::Event => self.trigger_active || now_us < self.postroll_until_us,
            RecordMode::Off => false,
        }
    }

    fn trigger(&self) -> RecordingTrigger {
        match self.s.mode {
            RecordMode::Schedule => RecordingTrigger::Schedule,
            RecordMode::Event => RecordingTrigger::Event {
                reason: self.trigger_reason.clone(),
            },
            RecordMode::Continuous | RecordMode::Off => RecordingTrigger::Continuous,
        }
    }

    fn fail(&mut self, reason: String) {
        tracing::warn!(camera = %self.s.camera, %reason, "recording error");
        *self
            .stats
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(reason.clone());
        let _ = self.events.send(RecorderEvent::Failed { reason });
    }

    /// Handles one message. Returns false on shutdown.
    pub fn handle(&mut self, msg: RecorderMsg) -> bool {
        match msg {
            RecorderMsg::Sample {
                sample,
                track,
                arrival_us,
            } => self.on_sample(sample, track, arrival_us),
            RecorderMsg::SourceDown => {
                self.close("source down");
                self.gops.clear();
            }
            RecorderMsg::Trigger { active, reason } => {
                let now = self.s.clock.now_us();
                if active {
                    self.trigger_active = true;
                    self.trigger_reason = reason;
                    // Start at once from the pre-roll instead of waiting for a keyframe.
                    if self.open.is_none() && self.wants(now) {
                        self.open_from_buffer(true);
                    }
                } else {
                    self.trigger_active = false;
                    self.postroll_until_us = now + self.s.postroll_us;
                }
            }
            RecorderMsg::CurrentGop(reply) => {
                let _ = reply.send(self.gops.back().cloned());
            }
            RecorderMsg::Shutdown => {
                self.close("shutdown");
                return false;
            }
        }
        true
    }

    /// Periodic check without samples (schedule ends, post-roll ends).
    pub fn tick(&mut self) {
        if self.open.is_some() && !self.wants(self.s.clock.now_us()) {
            self.close("policy");
        }
    }

    fn on_sample(&mut self, sample: Sample, track: Arc<TrackInfo>, arrival_us: u64) {
        let format_changed = self
            .gops
            .back()
            .is_some_and(|g| !Arc::ptr_eq(&g.track, &track) && *g.track != *track);
        if format_changed {
            self.close("format change");
            self.gops.clear();
        }
        let key = sample.keyframe;
        if key {
            self.gops.push_back(Gop {
                track: track.clone(),
                samples: Vec::new(),
            });
            // Keep what pre-roll needs, plus the current group.
            let keep_us = if self.s.mode == RecordMode::Event {
                self.s.preroll_us
            } else {
                0
            };
            while self.gops.len() > 1 {
                let second_start = self.gops[1].samples.first().map_or(arrival_us, |s| s.1);
                if arrival_us.saturating_sub(second_start) >= keep_us {
                    self.gops.pop_front();
                } else {
                    break;
                }
            }
        }
        let Some(gop) = self.gops.back_mut() else {
            return; // nothing before the first keyframe is usable
        };
        gop.samples.push((sample.clone(), arrival_us));
        let now = arrival_us;
        let wants = self.wants(now);
        if let Some(open) = &self.open {
            if !wants {
                self.close("policy");
                return;
            }
            let elapsed_us = open.muxer.elapsed_ticks() * 1_000_000 / u64::from(TIMESCALE);
            if key && elapsed_us >= self.s.segment_us {
                self.close_segment();
                self.open_from_buffer(false);
                return;
            }
            self.write(sample, now);
        } else if wants {
            self.open_from_buffer(self.s.mode == RecordMode::Event);
        }
    }

    /// Opens a segment and writes the buffered samples: the whole pre-roll for events,
    /// otherwise the current group of pictures.
    fn open_from_buffer(&mut self, preroll: bool) {
        let samples: Vec<(Sample, u64)> = if preroll {
            self.gops
                .iter()
                .flat_map(|g| g.samples.iter().cloned())
                .collect()
        } else {
            self.gops
                .back()
                .map(|g| g.samples.clone())
                .unwrap_or_default()
        };
        let (Some(first), Some(gop)) = (samples.first(), self.gops.back()) else {
            return;
        };
        let track = gop.track.clone();
        let start_us = first.1;
        let rel = segment::relative_path(&self.s.camera, start_us);
        let record = SegmentRecord {
            camera: self.s.camera.clone(),
            start_us,
            end_us: start_us,
            path: rel.clone(),
            bytes: 0,
            fragments: 0,
            codec: track.codec.name().into(),
            width: track.width,
            height: track.height,
            trigger: self.trigger(),
            state: SegmentState::Open,
        };
        // The record goes first, so no file ever exists without one.
        if let Err(e) = self.index.put(&record) {
            self.fail(e.to_string());
            return;
        }
        let muxer = Muxer::new((*track).clone(), self.s.fragment_ms);
        let init = muxer.init_segment(start_us / 1_000_000);
        let file =
            match SegmentFile::create(&self.s.root.join(&rel), init, self.s.sync_every_fragments) {
                Ok(f) => f,
                Err(e) => {
                    let _ = self.index.remove(&record.camera, record.start_us);
                    self.fail(e.to_string());
                    return;
                }
            };
        self.stats.recording.store(true, Ordering::Relaxed);
        if !self.session {
            self.session = true;
            let _ = self.events.send(RecorderEvent::Started(record.clone()));
        }
        tracing::debug!(camera = %self.s.camera, path = %rel, "segment opened");
        self.open = Some(Open {
            file,
            muxer,
            record,
        });
        for (s, at) in samples {
            self.write(s, at);
        }
    }

    fn write(&mut self, sample: Sample, now_us: u64) {
        if !self
            .bucket
            .admit(now_us, sample.data.len(), sample.keyframe)
        {
            self.stats
                .frames_dropped_rate
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(open) = &mut self.open else { return };
        if let Some(fragment) = open.muxer.push(sample) {
            let before = open.file.bytes();
            if let Err(e) = open.file.append(&fragment) {
                self.fail(e.to_string());
                self.abandon();
                return;
            }
            self.stats
                .bytes_written
                .fetch_add(open.file.bytes() - before, Ordering::Relaxed);
        }
    }

    /// Drops the open segment after a write error; its record stays open and is repaired.
    fn abandon(&mut self) {
        self.open = None;
        self.stats.recording.store(false, Ordering::Relaxed);
    }

    fn close_segment(&mut self) {
        let Some(mut open) = self.open.take() else {
            return;
        };
        if let Some(last) = open.muxer.flush() {
            let before = open.file.bytes();
            if let Err(e) = open.file.append(&last) {
                self.fail(e.to_string());
                return;
            }
            self.stats
                .bytes_written
                .fetch_add(open.file.bytes() - before, Ordering::Relaxed);
        }
        let mut record = open.record;
        match open.file.finish() {
            Ok((bytes, fragments, duration_ms)) => {
                record.bytes = bytes;
                record.fragments = fragments;
                record.end_us = record.start_us + duration_ms * 1000;
                record.state = SegmentState::Closed;
                if let Err(e) = self.index.put(&record) {
                    self.fail(e.to_string());
                }
                self.stats.segments_closed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(camera = %self.s.camera, path = %record.path, duration_ms, "segment closed");
                self.last_closed = Some(record);
            }
            Err(e) => self.fail(e.to_string()),
        }
    }

    /// Closes the segment and ends the recording session.
    fn close(&mut self, why: &str) {
        let was_open = self.open.is_some();
        self.close_segment();
        self.stats.recording.store(false, Ordering::Relaxed);
        if self.session {
            self.session = false;
            if let Some(r) = self.last_closed.take() {
                tracing::info!(camera = %self.s.camera, reason = why, "recording stopped");
                let _ = self.events.send(RecorderEvent::Stopped(r));
            } else if was_open {
                tracing::info!(camera = %self.s.camera, reason = why, "recording stopped");
            }
        }
    }
}

/// Runs the recorder until `Shutdown` or until the sender side is gone.
pub fn run(mut recorder: Recorder, rx: Receiver<RecorderMsg>) {
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(msg) => {
                if !recorder.handle(msg) {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => recorder.tick(),
            Err(RecvTimeoutError::Disconnected) => {
                recorder.close("worker stopping");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The recorder driven directly with synthetic access units and a manual wall clock:
    //! schedules, event recording with pre- and post-roll, start/stop events, the write budget.
    use super::*;
    use crate::index::MemoryIndex;
    use crate::mp4::Codec;
    use crate::schedule::Window;
    use crate::time::ManualWallClock;

    // 2026-11-23T00:00:00Z is a Monday.
    const MONDAY_US: u64 = 1_795_392_000_000_000;
    const FPS: u64 = 10;
    const FRAME_US: u64 = 1_000_000 / FPS;

    struct Rig {
        rec: Recorder,
        clock: ManualWallClock,
        index: Arc<MemoryIndex>,
        stats: Arc<RecorderStats>,
        events: tokio::sync::mpsc::UnboundedReceiver<RecorderEvent>,
        track: Arc<TrackInfo>,
        dir: tempfile::TempDir,
        /// Frames fed so far (the stream's own clock).
        n: u64,
        /// Wall-clock time of frame 0.
        origin_us: u64,
    }

    fn rig(mode: RecordMode, schedule: Schedule, origin_us: u64, budget: u64) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualWallClock::new(origin_us);
        let index = Arc::new(MemoryIndex::default());
        let stats = Arc::new(RecorderStats::default());
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let settings = RecorderSettings {
            camera: "cam".into(),
            root: dir.path().to_path_buf(),
            mode,
            preroll_us: 3_000_000,
            postroll_us: 2_000_000,
            segment_us: 3_600_000_000,
            fragment_ms: 1000,
            sync_every_fragments: 1,
            max_write_bytes_per_s: budget,
            schedule,
            clock: Arc::new(clock.clone()),
        };
        Rig {
            rec: Recorder::new(settings, index.clone(), stats.clone(), tx),
            clock,
            index,
            stats,
            events,
            track: Arc::new(TrackInfo {
                codec: Codec::H264,
                width: 320,
                height: 240,
                codec_data: vec![1, 0x42, 0xc0, 0x1e, 0xff, 0xe0, 0x00],
            }),
            dir,
            n: 0,
            origin_us,
        }
    }

    impl Rig {
        fn now_us(&self) -> u64 {
            self.origin_us + self.n * FRAME_US
        }

        /// Feeds `seconds` of a 10 fps stream with a keyframe every second (1 kB frames).
        fn feed(&mut self, seconds: u64) {
            for _ in 0..seconds * FPS {
                let at = self.now_us();
                self.clock.set_us(at);
                let mut data = vec![0u8; 1000];
                data[..5].copy_from_slice(&[0, 0, 3, 0xe4, 0x65]);
                let sample = Sample {
                    data: bytes::Bytes::from(data),
                    dts_ns: (self.n * FRAME_US * 1000) as i64,
                    pts_ns: (self.n * FRAME_US * 1000) as i64,
                    keyframe: self.n.is_multiple_of(FPS),
                };
                assert!(self.rec.handle(RecorderMsg::Sample {
                    sample,
                    track: self.track.clone(),
                    arrival_us: at,
                }));
                self.n += 1;
            }
        }

        fn trigger(&mut self, active: bool) {
            self.clock.set_us(self.now_us());
            self.rec.handle(RecorderMsg::Trigger {
                active,
                reason: "door".into(),
            });
        }

        fn records(&self) -> Vec<SegmentRecord> {
            self.index.list().unwrap()
        }

        fn events(&mut self) -> Vec<&'static str> {
            let mut out = Vec::new();
            while let Ok(e) = self.events.try_recv() {
                out.push(match e {
                    RecorderEvent::Started(_) => "started",
                    RecorderEvent::Stopped(_) => "stopped",
                    RecorderEvent::Failed { .. } => "failed",
                });
            }
            out
        }

        /// The file of a closed record, read back: whole fragments, the duration the index says.
        fn check_file(&self, r: &SegmentRecord) -> crate::mp4::ScanResult {
            let bytes = std::fs::read(self.dir.path().join(&r.path)).unwrap();
            assert_eq!(bytes.len() as u64, r.bytes);
            let s = crate::mp4::scan(&bytes).unwrap();
            assert_eq!(s.valid_len, r.bytes);
            assert_eq!(s.fragments.len() as u32, r.fragments);
            assert_eq!(s.duration_ms(), r.duration_ms());
            assert_eq!(s.declared_duration_ticks, Some(s.duration_ticks()));
            s
        }
    }

    fn secs(us: u64) -> f64 {
        us as f64 / 1e6
    }

    #[test]
    fn schedule_window_opens_and_closes_on_the_manual_clock() {
        // Mondays 08:00-08:01 UTC; the stream starts at 07:59:30.
        let window = Window {
            days: 1,
            start_min: 8 * 60,
            stop_min: 8 * 60 + 1,
        };
        let eight = MONDAY_US + 8 * 3_600_000_000;
        let mut r = rig(
            RecordMode::Schedule,
            Schedule::new(vec![window], 0),
            eight - 30_000_000,
            0,
        );
        r.feed(29);
        assert!(r.records().is_empty(), "nothing before the window");
        assert!(r.events().is_empty());
        r.feed(2); // crosses 08:00
        assert!(r.stats.recording.load(Ordering::Relaxed));
        assert_eq!(r.events(), ["started"]);
        r.feed(60); // to 08:01:01
        assert!(!r.stats.recording.load(Ordering::Relaxed));
        assert_eq!(r.events(), ["stopped"]);
        let recs = r.records();
        assert_eq!(recs.len(), 1, "{recs:?}");
        let seg = &recs[0];
        assert_eq!(
            (seg.state, &seg.trigger),
            (SegmentState::Closed, &RecordingTrigger::Schedule)
        );
        // It starts with the group of pictures running at 08:00 and ends at 08:01.
        assert!(
            seg.start_us <= eight && seg.start_us > eight - 1_000_000,
            "{seg:?}"
        );
        let end = eight + 60_000_000;
        assert!(
            seg.end_us.abs_diff(end) <= 1_000_000,
            "ends {}",
            secs(seg.end_us - eight)
        );
        r.check_file(seg);
        // Outside the window (and on Tuesday at 08:00 too) nothing more is recorded.
        r.feed(30);
        r.origin_us += 24 * 3_600_000_000 - 60_000_000;
        r.feed(10);
        assert_eq!(r.records().len(), 1);
        assert!(r.events().is_empty());
    }

    #[test]
    fn schedule_end_without_frames_closes_on_tick() {
        let window = Window {
            days: 1,
            start_min: 8 * 60,
            stop_min: 8 * 60 + 1,
        };
        let eight = MONDAY_US + 8 * 3_600_000_000;
        let mut r = rig(
            RecordMode::Schedule,
            Schedule::new(vec![window], 0),
            eight,
            0,
        );
        r.feed(10);
        assert_eq!(r.events(), ["started"]);
        // The source goes quiet; the clock passes the window's end.
        r.clock.set_us(eight + 59_000_000);
        r.rec.tick();
        assert!(r.stats.recording.load(Ordering::Relaxed));
        r.clock.set_us(eight + 61_000_000);
        r.rec.tick();
        assert!(!r.stats.recording.load(Ordering::Relaxed));
        assert_eq!(r.events(), ["stopped"]);
        let seg = &r.records()[0];
        assert_eq!(seg.state, SegmentState::Closed);
        assert_eq!(r.check_file(seg).duration_ms(), 10_000);
    }

    #[test]
    fn event_recording_has_preroll_and_postroll() {
        let mut r = rig(RecordMode::Event, Schedule::default(), MONDAY_US, 0);
        r.feed(10);
        assert!(r.records().is_empty(), "nothing recorded without an event");
        let fired_at = r.now_us();
        r.trigger(true);
        assert_eq!(r.events(), ["started"], "the segment opens at once");
        let seg = &r.records()[0];
        assert_eq!(seg.state, SegmentState::Open);
        // The pre-roll (3 s) in whole groups of pictures: 3 to 4 s before the trigger.
        let preroll = fired_at - seg.start_us;
        assert!(
            (3_000_000..=4_000_000).contains(&preroll),
            "pre-roll {} s",
            secs(preroll)
        );
        r.feed(5);
        let ended_at = r.now_us();
        r.trigger(false);
        r.feed(1);
        assert!(r.stats.recording.load(Ordering::Relaxed), "post-roll runs");
        r.feed(5);
        assert!(!r.stats.recording.load(Ordering::Relaxed));
        assert_eq!(r.events(), ["stopped"]);
        let recs = r.records();
        assert_eq!(recs.len(), 1);
        let seg = &recs[0];
        assert_eq!(seg.state, SegmentState::Closed);
        assert_eq!(
            seg.trigger,
            RecordingTrigger::Event {
                reason: "door".into()
            }
        );
        // Ends with the post-roll (2 s after the trigger ended), within a fragment.
        let end = ended_at + 2_000_000;
        assert!(
            seg.end_us.abs_diff(end) <= 1_000_000,
            "ends {} s after the trigger",
            secs(seg.end_us - ended_at)
        );
        let scan = r.check_file(seg);
        assert!(scan.fragments.len() >= 9, "{scan:?}");
        // A second event is a second segment and a second start/stop pair.
        r.feed(5);
        r.trigger(true);
        r.feed(2);
        r.trigger(false);
        r.clock.set_us(r.now_us() + 2_500_000);
        r.rec.tick();
        assert_eq!(r.events(), ["started", "stopped"]);
        assert_eq!(r.records().len(), 2);
    }

    #[test]
    fn write_budget_drops_whole_groups_of_pictures() {
        // 10 kB/s of video against a budget of 4 kB/s.
        let mut r = rig(
            RecordMode::Continuous,
            Schedule::default(),
            MONDAY_US,
            4_000,
        );
        r.feed(30);
        r.rec.handle(RecorderMsg::Shutdown);
        let seg = &r.records()[0];
        let written = r.stats.bytes_written.load(Ordering::Relaxed);
        let dropped = r.stats.frames_dropped_rate.load(Ordering::Relaxed);
        assert!(dropped >= 150, "{dropped} frames dropped");
        // Media bytes within the budget plus its two-second burst; the file adds headers.
        let media = 1000 * (300 - dropped);
        assert!(media <= 4_000 * 32, "{media} bytes of media in 30 s");
        assert!(written >= media);
        let scan = r.check_file(seg);
        let samples: u64 = scan.fragments.iter().map(|f| u64::from(f.samples)).sum();
        assert_eq!(samples, 300 - dropped);
    }
}
