//! A shared-memory ring of decoded video frames with latest-frame semantics.
//!
//! **Role.** The capture worker decodes a low-rate, scaled copy of each camera's video for the
//! detection worker. Frames are too big for the bus, so they go through one file per camera,
//! normally on `/dev/shm`, that the capture worker maps read-write ([`RingWriter`]) and any
//! other process maps read-only ([`RingReader`]). A reader always gets the newest complete
//! frame; older frames are overwritten without waiting for readers, so a slow or stopped reader
//! never slows capture down.
//!
//! **Layout** (all integers little-endian; see also `docs/capture.md`):
//!
//! | offset | size | content |
//! | --- | --- | --- |
//! | 0 | 8 | magic `WPFRING1` |
//! | 8 | 4 | length `L` of the description |
//! | 16 | `L` | the description: an rkyv-archived [`RingLayout`] (camera, size, pixel format, stride, slot count and stride, where the slots start) |
//! | 2048 | 8 | `latest`: number of the newest complete frame (0 = none yet), atomic |
//! | 2056 | 8 | `writer_pid` of the process writing |
//! | 4096 | `slot_stride` × `slot_count` | the slots |
//!
//! Each slot starts with a 64-byte header — `seq` (atomic u64), `pts_ns` (u64),
//! `captured_unix_ns` (u64), `len` (u32) — followed by the frame (`len` bytes, rows of
//! `stride` bytes). Frame `n` (from 1) goes to slot `n % slot_count`.
//!
//! **Protocol** (a sequence lock per slot): the writer sets the slot's `seq` to `2n - 1`
//! (odd: being written), writes the header fields and the pixels, sets `seq` to `2n` (release),
//! then sets `latest` to `n` (release). A reader loads `latest` (acquire), reads `seq` of its
//! slot, copies the frame, and reads `seq` again: if either value is not `2n` the slot was
//! overwritten meanwhile and the reader starts over with the new `latest`.
//!
//! **Failure and restarts.** The writer builds a new file under a temporary name and renames it
//! into place, so a reader never maps a half-written description. When the capture worker
//! restarts, the path points to a new file; [`RingReader::is_replaced`] tells a reader to map
//! it again. Every description field is checked against the file's size before use.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering, fence};

use memmap2::{Mmap, MmapMut};

/// First bytes of every ring file.
pub const MAGIC: &[u8; 8] = b"WPFRING1";
/// Version of the layout described above.
pub const LAYOUT_VERSION: u32 = 1;
const DESCRIPTION_OFFSET: usize = 16;
const CONTROL_OFFSET: usize = 2048;
const SLOTS_OFFSET: usize = 4096;
const SLOT_HEADER: usize = 64;
const PAGE: usize = 4096;

/// Pixel layout of the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
#[repr(u8)]
pub enum PixelFormat {
    /// 3 bytes per pixel, R G B.
    Rgb24 = 1,
    /// 1 byte per pixel.
    Gray8 = 2,
}

impl PixelFormat {
    pub fn bytes_per_pixel(self) -> u32 {
        match self {
            PixelFormat::Rgb24 => 3,
            PixelFormat::Gray8 => 1,
        }
    }
}

/// The description at the start of a ring file.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct RingLayout {
    pub version: u32,
    pub camera: String,
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    /// Bytes per row.
    pub stride: u32,
    /// Bytes of one frame (`stride * height`).
    pub frame_bytes: u32,
    pub slot_count: u32,
    /// Bytes from one slot to the next (header plus frame, rounded up to a page).
    pub slot_stride: u32,
    pub slots_offset: u32,
    /// Nominal frame rate, `fps_num / fps_den`.
    pub fps_num: u32,
    pub fps_den: u32,
}

impl RingLayout {
    /// A layout for tightly packed frames of `width x height`.
    pub fn new(
        camera: &str,
        width: u32,
        height: u32,
        format: PixelFormat,
        slot_count: u32,
        fps: u32,
    ) -> Self {
        let stride = width * format.bytes_per_pixel();
        let frame_bytes = stride * height;
        let slot_stride = (SLOT_HEADER + frame_bytes as usize).div_ceil(PAGE) * PAGE;
        Self {
            version: LAYOUT_VERSION,
            camera: camera.to_string(),
            width,
            height,
            format,
            stride,
            frame_bytes,
            slot_count,
            slot_stride: slot_stride as u32,
            slots_offset: SLOTS_OFFSET as u32,
            fps_num: fps,
            fps_den: 1,
        }
    }

    /// Size of the whole file.
    pub fn file_len(&self) -> u64 {
        u64::from(self.slots_offset) + u64::from(self.slot_stride) * u64::from(self.slot_count)
    }

    fn check(&self, file_len: u64) -> Result<(), RingError> {
        let ok = self.version == LAYOUT_VERSION
            && self.slot_count >= 1
            && self.width > 0
            && self.height > 0
            && u64::from(self.stride)
                >= u64::from(self.width) * u64::from(self.format.bytes_per_pixel())
            && u64::from(self.frame_bytes) == u64::from(self.stride) * u64::from(self.height)
            && u64::from(self.slot_stride) >= SLOT_HEADER as u64 + u64::from(self.frame_bytes)
            && (self.slot_stride as usize).is_multiple_of(8)
            && self.slots_offset as usize >= CONTROL_OFFSET + 64
            && (self.slots_offset as usize).is_multiple_of(8)
            && self.file_len() <= file_len;
        if ok {
            Ok(())
        } else {
            Err(RingError::BadLayout {
                reason: format!("{self:?} does not fit a file of {file_len} bytes"),
            })
        }
    }
}

/// Ring errors, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("creating frame ring {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("opening frame ring {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("frame ring {path} is not a ring file (bad magic or description)")]
    NotARing { path: PathBuf },
    #[error("frame ring description rejected: {reason}")]
    BadLayout { reason: String },
    #[error("writing a frame of {len} bytes into a ring of {frame_bytes}-byte frames")]
    FrameSize { len: usize, frame_bytes: u32 },
}

/// One frame copied out of a ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Frame number, from 1.
    pub number: u64,
    pub pts_ns: u64,
    pub captured_unix_ns: u64,
    pub data: Vec<u8>,
}

fn atomic_at(base: *const u8, offset: usize) -> *const AtomicU64 {
    base.wrapping_add(offset).cast::<AtomicU64>()
}

/// The writing side (the capture worker).
#[derive(Debug)]
pub struct RingWriter {
    path: PathBuf,
    layout: RingLayout,
    map: MmapMut,
    next: u64,
}

impl RingWriter {
    /// Creates (or replaces) the ring at `path`.
    pub fn create(path: &Path, layout: RingLayout) -> Result<Self, RingError> {
        let err = |source| RingError::Create {
            path: path.to_path_buf(),
            source,
        };
        let description =
            rkyv::to_bytes::<rkyv::rancor::Error>(&layout).map_err(|e| RingError::BadLayout {
                reason: e.to_string(),
            })?;
        if DESCRIPTION_OFFSET + description.len() > CONTROL_OFFSET {
            return Err(RingError::BadLayout {
                reason: "description too long (camera id?)".into(),
            });
        }
        layout.check(layout.file_len())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(err)?;
        file.set_len(layout.file_len()).map_err(err)?;
        // SAFETY: the file was just created by us under a private temporary name and sized
        // above; nobody else maps it until the rename below, and we never shrink it.
        let mut map = unsafe { MmapMut::map_mut(&file) }.map_err(err)?;
        map[..8].copy_from_slice(MAGIC);
        map[8..12].copy_from_slice(&(description.len() as u32).to_le_bytes());
        map[DESCRIPTION_OFFSET..DESCRIPTION_OFFSET + description.len()]
            .copy_from_slice(&description);
        map[CONTROL_OFFSET + 8..CONTROL_OFFSET + 16]
            .copy_from_slice(&u64::from(std::process::id()).to_le_bytes());
        std::fs::rename(&tmp, path).map_err(err)?;
        Ok(Self {
            path: path.to_path_buf(),
            layout,
            map,
            next: 1,
        })
    }

    pub fn layout(&self) -> &RingLayout {
        &self.layout
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames written so far.
    pub fn frames_written(&self) -> u64 {
        self.next - 1
    }

    /// Publishes one frame (exactly `frame_bytes` long). Returns its number.
    pub fn write(
        &mut self,
        pts_ns: u64,
        captured_unix_ns: u64,
        data: &[u8],
    ) -> Result<u64, RingError> {
        if data.len() != self.layout.frame_bytes as usize {
            return Err(RingError::FrameSize {
                len: data.len(),
                frame_bytes: self.layout.frame_bytes,
            });
        }
        let n = self.next;
        let slot = self.layout.slots_offset as usize
            + (n % u64::from(self.layout.slot_count)) as usize * self.layout.slot_stride as usize;
        let base = self.map.as_mut_ptr();
        // SAFETY: `slot` and CONTROL_OFFSET are 8-aligned offsets inside the mapping (checked
        // by `RingLayout::check` at creation), the mapping is page-aligned and lives as long
        // as `self`; other processes only access these words atomically or by the seqlock
        // protocol described in the crate docs.
        let (seq, latest) = unsafe { (&*atomic_at(base, slot), &*atomic_at(base, CONTROL_OFFSET)) };
        seq.store(2 * n - 1, Ordering::Relaxed);
        fence(Ordering::Release);
        let header = &mut self.map[slot + 8..slot + 32];
        header[..8].copy_from_slice(&pts_ns.to_le_bytes());
        header[8..16].copy_from_slice(&captured_unix_ns.to_le_bytes());
        header[16..20].copy_from_slice(&(data.len() as u32).to_le_bytes());
        self.map[slot + SLOT_HEADER..slot + SLOT_HEADER + data.len()].copy_from_slice(data);
        seq.store(2 * n, Ordering::Release);
        latest.store(n, Ordering::Release);
        self.next += 1;
        Ok(n)
    }
}

/// The reading side, mapped read-only.
#[derive(Debug)]
pub struct RingReader {
    path: PathBuf,
    inode: u64,
    layout: RingLayout,
    map: Mmap,
}

impl RingReader {
    pub fn open(path: &Path) -> Result<Self, RingError> {
        let err = |source| RingError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(err)?;
        let meta = file.metadata().map_err(err)?;
        // SAFETY: the mapping is read-only. The writer never truncates a ring file after
        // creating it (it replaces it by rename), so the mapped range stays valid; concurrent
        // writes are handled by the seqlock protocol, and every field read from the
        // description is validated against the file size before being used as an offset.
        let map = unsafe { Mmap::map(&file) }.map_err(err)?;
        let not_ring = || RingError::NotARing {
            path: path.to_path_buf(),
        };
        if map.len() < SLOTS_OFFSET || &map[..8] != MAGIC {
            return Err(not_ring());
        }
        let len = u32::from_le_bytes([map[8], map[9], map[10], map[11]]) as usize;
        if DESCRIPTION_OFFSET + len > CONTROL_OFFSET {
            return Err(not_ring());
        }
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(len);
        aligned.extend_from_slice(&map[DESCRIPTION_OFFSET..DESCRIPTION_OFFSET + len]);
        let layout: RingLayout = rkyv::from_bytes::<RingLayout, rkyv::rancor::Error>(&aligned)
            .map_err(|_| not_ring())?;
        layout.check(map.len() as u64)?;
        Ok(Self {
            path: path.to_path_buf(),
            inode: meta.ino(),
            layout,
            map,
        })
    }

    pub fn layout(&self) -> &RingLayout {
        &self.layout
    }

    /// Whether the path now names another file (the writer restarted): open it again.
    pub fn is_replaced(&self) -> bool {
        std::fs::metadata(&self.path).map_or(true, |m| m.ino() != self.inode)
    }

    /// Number of the newest complete frame (0: none yet).
    pub fn latest_number(&self) -> u64 {
        // SAFETY: CONTROL_OFFSET is 8-aligned inside the page-aligned mapping, which lives as
        // long as `self`; the word is only ever accessed atomically.
        unsafe { &*atomic_at(self.map.as_ptr(), CONTROL_OFFSET) }.load(Ordering::Acquire)
    }

    /// Copies out the newest frame if it is newer than `after`, retrying while the writer
    /// overtakes the copy.
    pub fn read_latest(&self, after: u64) -> Option<Frame> {
        for _ in 0..64 {
            let n = self.latest_number();
            if n == 0 || n <= after {
                return None;
            }
            let slot = self.layout.slots_offset as usize
                + (n % u64::from(self.layout.slot_count)) as usize
                    * self.layout.slot_stride as usize;
            let base = self.map.as_ptr();
            // SAFETY: `slot` is an 8-aligned offset inside the mapping (layout checked at open).
            let seq = unsafe { &*atomic_at(base, slot) };
            if seq.load(Ordering::Acquire) != 2 * n {
                continue;
            }
            let h = &self.map[slot + 8..slot + 32];
            let word = |i: usize| {
                u64::from_le_bytes([
                    h[i],
                    h[i + 1],
                    h[i + 2],
                    h[i + 3],
                    h[i + 4],
                    h[i + 5],
                    h[i + 6],
                    h[i + 7],
                ])
            };
            let pts_ns = word(0);
            let captured_unix_ns = word(8);
            let len = (u32::from_le_bytes([h[16], h[17], h[18], h[19]]) as usize)
                .min(self.layout.frame_bytes as usize);
            let mut data = vec![0u8; len];
            // SAFETY: the source range lies inside the mapping (len is clamped to frame_bytes,
            // which fits the slot). The writer may be changing these bytes concurrently; the
            // copy goes through raw pointers (no reference to the shared bytes is formed) and
            // its result is discarded below unless the sequence number is unchanged.
            unsafe {
                std::ptr::copy_nonoverlapping(base.add(slot + SLOT_HEADER), data.as_mut_ptr(), len);
            }
            fence(Ordering::Acquire);
            if seq.load(Ordering::Relaxed) == 2 * n {
                return Some(Frame {
                    number: n,
                    pts_ns,
                    captured_unix_ns,
                    data,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_and_reader_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cam.ring");
        let layout = RingLayout::new("cam", 4, 2, PixelFormat::Rgb24, 3, 5);
        let mut w = RingWriter::create(&path, layout.clone()).unwrap();
        let r = RingReader::open(&path).unwrap();
        assert_eq!(r.layout(), &layout);
        assert_eq!(r.read_latest(0), None);
        for i in 1..=5u8 {
            let n = w.write(u64::from(i) * 200, 7, &[i; 24]).unwrap();
            assert_eq!(n, u64::from(i));
        }
        let f = r.read_latest(0).unwrap();
        assert_eq!((f.number, f.pts_ns, f.captured_unix_ns), (5, 1000, 7));
        assert_eq!(f.data, vec![5; 24]);
        assert_eq!(r.read_latest(5), None);
        assert!(w.write(0, 0, &[0; 23]).is_err());
        assert!(!r.is_replaced());
        let _w2 = RingWriter::create(&path, layout).unwrap();
        assert!(r.is_replaced());
    }

    #[test]
    fn foreign_files_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, vec![0u8; 8192]).unwrap();
        assert!(matches!(
            RingReader::open(&path),
            Err(RingError::NotARing { .. })
        ));
        let mut bytes = vec![0u8; 8192];
        bytes[..8].copy_from_slice(MAGIC);
        bytes[8..12].copy_from_slice(&100u32.to_le_bytes());
        std::fs::write(&path, bytes).unwrap();
        assert!(RingReader::open(&path).is_err());
    }
}
