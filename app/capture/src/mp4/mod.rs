//! Fragmented MP4 (ISO BMFF) for recordings, written and read without any media library.
//!
//! A segment file is an init part (`ftyp` + `moov` with an empty sample table and `mvex`)
//! followed by fragments (`moof` + `mdat`), each about a second long. Every fragment is written
//! with one `write` call, so after a crash the file holds whole fragments plus at most a torn
//! tail, which [`scan`] finds and the recorder cuts off. When a segment is closed, the durations
//! in `mvhd`, `tkhd` and `mdhd` are patched in place, so players see the length up front.
//!
//! The muxer ([`Muxer`]) is sans-IO: samples in, byte blocks out.

mod muxer;
mod scan;
mod writer;

pub use muxer::{Codec, Fragment, InitSegment, Muxer, Sample, TIMESCALE, TrackInfo};
pub use scan::{ScanError, ScanResult, ScannedFragment, scan};
