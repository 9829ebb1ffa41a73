//! The fragmented-MP4 muxer: one video track, samples in, init segment and fragments out.

use super::writer::BoxWriter;

/// Media time units per second in every file we write.
pub const TIMESCALE: u32 = 90_000;

/// Seconds from 1904-01-01 (the MP4 epoch) to 1970-01-01.
const MP4_EPOCH_OFFSET_S: u64 = 2_082_844_800;

/// The video codec of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    H264,
    H265,
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "hevc",
        }
    }
}

/// What the init segment describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    pub codec: Codec,
    pub width: u32,
    pub height: u32,
    /// The decoder configuration record (`avcC` / `hvcC` payload), from the parser's caps.
    pub codec_data: Vec<u8>,
}

/// One access unit, length-prefixed NAL units as the parser hands them over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub data: bytes::Bytes,
    /// Decode and presentation time in nanoseconds of any common origin.
    pub dts_ns: i64,
    pub pts_ns: i64,
    pub keyframe: bool,
}

/// The `ftyp` + `moov` that starts a file.
#[derive(Debug, Clone)]
pub struct InitSegment {
    pub bytes: Vec<u8>,
    /// Offsets of the 64-bit durations in `mvhd`, `tkhd` (both in [`TIMESCALE`]) and `mdhd`.
    pub duration_offsets: [usize; 3],
}

impl InitSegment {
    /// The writes that set the file's duration: (offset, big-endian u64).
    pub fn duration_patches(&self, duration_ticks: u64) -> [(usize, [u8; 8]); 3] {
        let b = duration_ticks.to_be_bytes();
        self.duration_offsets.map(|o| (o, b))
    }
}

/// A finished `moof` + `mdat`.
#[derive(Debug, Clone)]
pub struct Fragment {
    pub bytes: Vec<u8>,
    pub sequence: u32,
    /// Decode time of the first sample, from the start of the segment.
    pub start_ticks: u64,
    pub duration_ticks: u64,
    pub samples: u32,
    pub starts_with_keyframe: bool,
}

#[derive(Debug)]
struct Pending {
    sample: Sample,
    dts_ticks: i64,
    cto_ticks: i32,
    duration_ticks: u32,
}

/// Builds one segment: the init segment, then fragments of about `fragment_ticks`.
#[derive(Debug)]
pub struct Muxer {
    track: TrackInfo,
    fragment_ticks: u64,
    base_dts_ns: Option<i64>,
    pending: Vec<Pending>,
    pending_ticks: u64,
    emitted_ticks: u64,
    next_sequence: u32,
    last_duration: u32,
}

fn ns_to_ticks(ns: i64) -> i64 {
    (i128::from(ns) * i128::from(TIMESCALE) / 1_000_000_000) as i64
}

impl Muxer {
    pub fn new(track: TrackInfo, fragment_ms: u32) -> Self {
        Self {
            track,
            fragment_ticks: u64::from(fragment_ms) * u64::from(TIMESCALE) / 1000,
            base_dts_ns: None,
            pending: Vec::new(),
            pending_ticks: 0,
            emitted_ticks: 0,
            next_sequence: 1,
            // 30 fps until the stream tells us otherwise.
            last_duration: TIMESCALE / 30,
        }
    }

    pub fn track(&self) -> &TrackInfo {
        &self.track
    }

    /// Ticks written in fragments so far.
    pub fn emitted_ticks(&self) -> u64 {
        self.emitted_ticks
    }

    /// Ticks of everything pushed so far (emitted plus buffered).
    pub fn elapsed_ticks(&self) -> u64 {
        self.emitted_ticks + self.pending_ticks
    }

    /// The `ftyp` and `moov` boxes; `created_unix_s` stamps the creation time.
    pub fn init_segment(&self, created_unix_s: u64) -> InitSegment {
        let t = &self.track;
        let created = created_unix_s + MP4_EPOCH_OFFSET_S;
        let mut w = BoxWriter::new();
        w.begin(b"ftyp");
        w.bytes(b"iso6");
        w.u32(0);
        for brand in [b"iso6", b"isom", b"iso5", b"mp41"] {
            w.bytes(brand);
        }
        w.end();
        w.begin(b"moov");
        // mvhd v1
        w.begin_full(b"mvhd", 1, 0);
        w.u64(created);
        w.u64(created);
        w.u32(TIMESCALE);
        let mvhd_duration = w.len();
        w.u64(0);
        w.u32(0x0001_0000); // rate 1.0
        w.u16(0x0100); // volume 1.0
        w.zeros(10);
        w.matrix();
        w.zeros(24);
        w.u32(2); // next track id
        w.end();
        w.begin(b"trak");
        // tkhd v1, enabled | in movie
        w.begin_full(b"tkhd", 1, 3);
        w.u64(created);
        w.u64(created);
        w.u32(1); // track id
        w.u32(0);
        let tkhd_duration = w.len();
        w.u64(0);
        w.zeros(8);
        w.u16(0); // layer
        w.u16(0); // alternate group
        w.u16(0); // volume (video)
        w.u16(0);
        w.matrix();
        w.u32(t.width << 16);
        w.u32(t.height << 16);
        w.end();
        w.begin(b"mdia");
        w.begin_full(b"mdhd", 1, 0);
        w.u64(created);
        w.u64(created);
        w.u32(TIMESCALE);
        let mdhd_duration = w.len();
        w.u64(0);
        w.u16(0x55c4); // "und"
        w.u16(0);
        w.end();
        w.begin_full(b"hdlr", 0, 0);
        w.u32(0);
        w.bytes(b"vide");
        w.zeros(12);
        w.bytes(b"Watchpost video\0");
        w.end();
        w.begin(b"minf");
        w.begin_full(b"vmhd", 0, 1);
        w.zeros(8);
        w.end();
        w.begin(b"dinf");
        w.begin_full(b"dref", 0, 0);
        w.u32(1);
        w.begin_full(b"url ", 0, 1);
        w.end();
        w.end();
        w.end();
        w.begin(b"stbl");
        w.begin_full(b"stsd", 0, 0);
        w.u32(1);
        let (entry, config) = match t.codec {
            Codec::H264 => (b"avc1", b"avcC"),
            Codec::H265 => (b"hvc1", b"hvcC"),
        };
        w.begin(entry);
        w.zeros(6);
        w.u16(1); // data reference index
        w.zeros(16);
        w.u16(t.width as u16);
        w.u16(t.height as u16);
        w.u32(0x0048_0000);
        w.u32(0x0048_0000);
        w.u32(0);
        w.u16(1); // frame count
        w.zeros(32); // compressor name
        w.u16(0x0018);
        w.u16(0xffff);
        w.begin(config);
        w.bytes(&t.codec_data);
        w.end();
        w.end();
        w.end(); // stsd
        for empty in [b"stts", b"stsc", b"stco"] {
            w.begin_full(empty, 0, 0);
            w.u32(0);
            w.end();
        }
        w.begin_full(b"stsz", 0, 0);
        w.u32(0);
        w.u32(0);
        w.end();
        w.end(); // stbl
        w.end(); // minf
        w.end(); // mdia
        w.end(); // trak
        w.begin(b"mvex");
        w.begin_full(b"trex", 0, 0);
        w.u32(1);
        w.u32(1);
        w.u32(0);
        w.u32(0);
        w.u32(0);
        w.end();
        w.end();
        w.end(); // moov
        InitSegment {
            bytes: w.buf,
            duration_offsets: [mvhd_duration, tkhd_duration, mdhd_duration],
        }
    }

    /// Adds a sample. Returns a fragment when the samples before it fill one.
    pub fn push(&mut self, sample: Sample) -> Option<Fragment> {
        let base = *self.base_dts_ns.get_or_insert(sample.dts_ns);
        let dts_ticks = ns_to_ticks(sample.dts_ns - base);
        let pts_ticks = ns_to_ticks(sample.pts_ns - base);
        if let Some(prev) = self.pending.last_mut() {
            let d = dts_ticks - prev.dts_ticks;
            // Timestamps that do not advance get the previous spacing, so durations stay > 0.
            let d = if d > 0 && d < i64::from(TIMESCALE) * 10 {
                d as u32
            } else {
                self.last_duration
            };
            prev.duration_ticks = d;
            self.last_duration = d;
            self.pending_ticks += u64::from(d);
        }
        let done = if self.pending_ticks >= self.fragment_ticks {
            self.build_fragment()
        } else {
            None
        };
        let cto = (pts_ticks - dts_ticks).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        self.pending.push(Pending {
            sample,
            dts_ticks,
            cto_ticks: cto,
            duration_ticks: 0,
        });
        done
    }

    /// Ends the segment: the buffered samples become the last fragment.
    pub fn flush(&mut self) -> Option<Fragment> {
        if let Some(last) = self.pending.last_mut() {
            last.duration_ticks = self.last_duration;
            self.pending_ticks += u64::from(self.last_duration);
        }
        self.build_fragment()
    }

    fn build_fragment(&mut self) -> Option<Fragment> {
        if self.pending.is_empty() {
            return None;
        }
        let samples = std::mem::take(&mut self.pending);
        let duration_ticks = std::mem::take(&mut self.pending_ticks);
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let start_ticks = self.emitted_ticks;
        let mdat_len: usize = samples.iter().map(|s| s.sample.data.len()).sum();
        let mut w = BoxWriter::new();
        w.begin(b"moof");
        w.begin_full(b"mfhd", 0, 0);
        w.u32(sequence);
        w.end();
        w.begin(b"traf");
        w.begin_full(b"tfhd", 0, 0x02_0000); // default-base-is-moof
        w.u32(1);
        w.end();
        w.begin_full(b"tfdt", 1, 0);
        w.u64(start_ticks);
        w.end();
        // data offset, and per sample: duration, size, flags, composition offset
        w.begin_full(
            b"trun",
            1,
            0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800,
        );
        w.u32(samples.len() as u32);
        let data_offset_at = w.len();
        w.i32(0);
        for s in &samples {
            w.u32(s.duration_ticks);
            w.u32(s.sample.data.len() as u32);
            w.u32(if s.sample.keyframe {
                0x0200_0000 // depends on no other sample
            } else {
                0x0101_0000 // depends on others, not a sync sample
            });
            w.i32(s.cto_ticks);
        }
        w.end();
        w.end(); // traf
        w.end(); // moof
        let moof_len = w.len();
        w.patch_u32(data_offset_at, (moof_len + 8) as u32);
        w.u32((mdat_len + 8) as u32);
        w.bytes(b"mdat");
        w.buf.reserve(mdat_len);
        for s in &samples {
            w.bytes(&s.sample.data);
        }
        self.emitted_ticks += duration_ticks;
        Some(Fragment {
            bytes: w.buf,
            sequence,
            start_ticks,
            duration_ticks,
            samples: samples.len() as u32,
            starts_with_keyframe: samples.first().is_some_and(|s| s.sample.keyframe),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::scan;

    fn track() -> TrackInfo {
        TrackInfo {
            codec: Codec::H264,
            width: 320,
            height: 240,
            codec_data: vec![1, 0x42, 0xc0, 0x1e, 0xff, 0xe0, 0x00],
        }
    }

    fn sample(i: i64) -> Sample {
        Sample {
            data: bytes::Bytes::from(vec![0, 0, 0, 2, 0x65, i as u8]),
            dts_ns: 5_000_000_000 + i * 40_000_000, // 25 fps, offset origin
            pts_ns: 5_000_000_000 + i * 40_000_000,
            keyframe: i % 25 == 0,
        }
    }

    #[test]
    fn fragments_are_about_a_second_and_scan_back() {
        let mut m = Muxer::new(track(), 1000);
        let init = m.init_segment(1_700_000_000);
        let mut file = init.bytes.clone();
        let mut frags = Vec::new();
        for i in 0..100 {
            if let Some(f) = m.push(sample(i)) {
                frags.push(f);
            }
        }
        frags.extend(m.flush());
        // 100 frames at 25 fps = 4 s = 4 fragments of 25 frames.
        assert_eq!(frags.len(), 4);
        assert!(
            frags
                .iter()
                .all(|f| f.samples == 25 && f.duration_ticks == 90_000)
        );
        assert!(frags.iter().all(|f| f.starts_with_keyframe));
        assert_eq!(m.emitted_ticks(), 360_000);
        for f in &frags {
            file.extend_from_slice(&f.bytes);
        }
        for (off, b) in init.duration_patches(m.emitted_ticks()) {
            file[off..off + 8].copy_from_slice(&b);
        }
        let s = scan(&file).unwrap();
        assert_eq!(s.fragments.len(), 4);
        assert_eq!(s.duration_ticks(), 360_000);
        assert_eq!(s.valid_len, file.len() as u64);
        assert_eq!(s.declared_duration_ticks, Some(360_000));
        assert_eq!((s.width, s.height), (320, 240));
        // A torn last fragment is dropped by the scan.
        let torn = &file[..file.len() - 3];
        let s = scan(torn).unwrap();
        assert_eq!(s.fragments.len(), 3);
        assert_eq!(s.duration_ticks(), 270_000);
    }
}
