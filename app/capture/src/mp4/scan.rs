//! Reading back a (possibly torn) fragmented MP4: which fragments are whole, how long they
//! last, and where the duration fields are. Used to repair a segment after a crash. It reads
//! any bytes without panicking (it has a fuzz target).

use super::muxer::{Codec, TIMESCALE};

/// Why a file cannot be repaired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("scanning a segment: no complete ftyp+moov at the start ({len} bytes)")]
    NoInit { len: u64 },
    #[error("scanning a segment: moov has no {what}")]
    MissingBox { what: &'static str },
}

/// One whole `moof`+`mdat` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFragment {
    pub offset: u64,
    pub len: u64,
    pub sequence: u32,
    pub start_ticks: u64,
    pub duration_ticks: u64,
    pub samples: u32,
}

/// What a scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanResult {
    /// Bytes of `ftyp` + `moov`.
    pub init_len: u64,
    pub fragments: Vec<ScannedFragment>,
    /// Bytes up to the end of the last whole fragment (or the init part).
    pub valid_len: u64,
    pub timescale: u32,
    pub declared_duration_ticks: Option<u64>,
    /// Where the 64-bit durations of mvhd/tkhd/mdhd are (version-1 boxes only).
    pub duration_offsets: Option<[usize; 3]>,
    pub codec: Option<Codec>,
    pub width: u32,
    pub height: u32,
}

impl ScanResult {
    /// Duration of the whole fragments.
    pub fn duration_ticks(&self) -> u64 {
        self.fragments.iter().map(|f| f.duration_ticks).sum()
    }
    pub fn duration_ms(&self) -> u64 {
        self.duration_ticks() * 1000 / u64::from(self.timescale.max(1))
    }
}

#[derive(Debug, Clone, Copy)]
struct BoxRef {
    fourcc: [u8; 4],
    /// Offset of the box (its size field) within the buffer.
    start: usize,
    /// Offset of the payload.
    body: usize,
    end: usize,
}

/// Splits `buf[from..to]` into boxes; stops at the first box that does not fit.
fn children(buf: &[u8], from: usize, to: usize) -> (Vec<BoxRef>, bool) {
    let mut out = Vec::new();
    let mut at = from;
    while at + 8 <= to {
        let size32 = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        let fourcc = [buf[at + 4], buf[at + 5], buf[at + 6], buf[at + 7]];
        let (size, header) = match size32 {
            0 => ((to - at) as u64, 8),
            1 => {
                if at + 16 > to {
                    return (out, false);
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[at + 8..at + 16]);
                (u64::from_be_bytes(b), 16)
            }
            n => (u64::from(n), 8),
        };
        if size < header as u64 || ((to - at) as u64) < size {
            return (out, false);
        }
        let end = at + size as usize;
        out.push(BoxRef {
            fourcc,
            start: at,
            body: at + header,
            end,
        });
        at = end;
    }
    (out, at == to)
}

fn find(buf: &[u8], parent: &BoxRef, skip: usize, fourcc: &[u8; 4]) -> Option<BoxRef> {
    let from = parent.body + skip;
    if from > parent.end {
        return None;
    }
    children(buf, from, parent.end)
        .0
        .into_iter()
        .find(|b| &b.fourcc == fourcc)
}

fn be32(buf: &[u8], at: usize) -> Option<u32> {
    buf.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be64(buf: &[u8], at: usize) -> Option<u64> {
    let b = buf.get(at..at + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_be_bytes(a))
}

/// Scans `buf`, the whole content of a segment file.
pub fn scan(buf: &[u8]) -> Result<ScanResult, ScanError> {
    let len = buf.len();
    let (top, _) = children(buf, 0, len);
    let no_init = || ScanError::NoInit { len: len as u64 };
    let ftyp = top
        .first()
        .filter(|b| &b.fourcc == b"ftyp")
        .ok_or_else(no_init)?;
    let moov = top
        .get(1)
        .filter(|b| &b.fourcc == b"moov")
        .ok_or_else(no_init)?;
    let _ = ftyp;
    let mvhd = find(buf, moov, 0, b"mvhd").ok_or(ScanError::MissingBox { what: "mvhd" })?;
    let trak = find(buf, moov, 0, b"trak").ok_or(ScanError::MissingBox { what: "trak" })?;
    let tkhd = find(buf, &trak, 0, b"tkhd").ok_or(ScanError::MissingBox { what: "tkhd" })?;
    let mdia = find(buf, &trak, 0, b"mdia").ok_or(ScanError::MissingBox { what: "mdia" })?;
    let mdhd = find(buf, &mdia, 0, b"mdhd").ok_or(ScanError::MissingBox { what: "mdhd" })?;
    let version = |b: &BoxRef| buf.get(b.body).copied().unwrap_or(0);
    let timescale = if version(&mdhd) == 1 {
        be32(buf, mdhd.body + 20)
    } else {
        be32(buf, mdhd.body + 12)
    }
    .filter(|t| *t > 0)
    .unwrap_or(TIMESCALE);
    let (duration_offsets, declared) =
        if version(&mvhd) == 1 && version(&tkhd) == 1 && version(&mdhd) == 1 {
            let offs = [mvhd.body + 24, tkhd.body + 28, mdhd.body + 24];
            let fits = offs.iter().all(|o| o + 8 <= moov.end);
            if fits {
                (Some(offs), be64(buf, mdhd.body + 24).filter(|d| *d > 0))
            } else {
                (None, None)
            }
        } else {
            (None, None)
        };
    let mut codec = None;
    let (mut width, mut height) = (0, 0);
    if let Some(stsd) = find(buf, &mdia, 0, b"minf")
        .and_then(|minf| find(buf, &minf, 0, b"stbl"))
        .and_then(|stbl| find(buf, &stbl, 0, b"stsd"))
        && let Some(entry) = children(buf, (stsd.body + 8).min(stsd.end), stsd.end)
            .0
            .first()
    {
        codec = match &entry.fourcc {
            b"avc1" | b"avc3" => Some(Codec::H264),
            b"hvc1" | b"hev1" => Some(Codec::H265),
            _ => None,
        };
        if let Some(wh) = be32(buf, entry.body + 24) {
            width = wh >> 16;
            height = wh & 0xffff;
        }
    }
    let mut fragments = Vec::new();
    let mut valid_len = moov.end as u64;
    let mut i = 2;
    while i < top.len() {
        let Some(moof) = top.get(i) else { break };
        if &moof.fourcc != b"moof" {
            // Unknown top-level boxes (free, skip, ...) are kept.
            i += 1;
            valid_len = moof.end as u64;
            continue;
        }
        let Some(mdat) = top.get(i + 1).filter(|b| &b.fourcc == b"mdat") else {
            break;
        };
        let Some(frag) = parse_moof(buf, moof, mdat) else {
            break;
        };
        fragments.push(frag);
        valid_len = mdat.end as u64;
        i += 2;
    }
    Ok(ScanResult {
        init_len: moov.end as u64,
        fragments,
        valid_len,
        timescale,
        declared_duration_ticks: declared,
        duration_offsets,
        codec,
        width,
        height,
    })
}

fn parse_moof(buf: &[u8], moof: &BoxRef, mdat: &BoxRef) -> Option<ScannedFragment> {
    let mfhd = find(buf, moof, 0, b"mfhd")?;
    let sequence = be32(buf, mfhd.body + 4)?;
    let traf = find(buf, moof, 0, b"traf")?;
    let tfhd = find(buf, &traf, 0, b"tfhd")?;
    let tfhd_flags = be32(buf, tfhd.body)? & 0x00ff_ffff;
    // Optional tfhd fields in order: base data offset (8), description index (4), then the
    // default duration (4).
    let mut at = tfhd.body + 8;
    if tfhd_flags & 0x01 != 0 {
        at += 8;
    }
    if tfhd_flags & 0x02 != 0 {
        at += 4;
    }
    let default_duration = if tfhd_flags & 0x08 != 0 {
        be32(buf, at)?
    } else {
        0
    };
    let start_ticks = match find(buf, &traf, 0, b"tfdt") {
        Some(tfdt) if buf.get(tfdt.body) == Some(&1) => be64(buf, tfdt.body + 4)?,
        Some(tfdt) => u64::from(be32(buf, tfdt.body + 4)?),
        None => 0,
    };
    let trun = find(buf, &traf, 0, b"trun")?;
    let flags = be32(buf, trun.body)? & 0x00ff_ffff;
    let count = be32(buf, trun.body + 4)?;
    let mut at = trun.body + 8;
    if flags & 0x01 != 0 {
        at += 4;
    }
    if flags & 0x04 != 0 {
        at += 4;
    }
    let per_sample = [0x100, 0x200, 0x400, 0x800]
        .iter()
        .filter(|f| flags & **f != 0)
        .count()
        * 4;
    let needed = (count as usize).checked_mul(per_sample)?;
    if at.checked_add(needed)? > trun.end {
        return None;
    }
    let mut duration = 0u64;
    let mut data = 0u64;
    for _ in 0..count {
        let mut f = at;
        let d = if flags & 0x100 != 0 {
            let v = be32(buf, f)?;
            f += 4;
            v
        } else {
            default_duration
        };
        if flags & 0x200 != 0 {
            data += u64::from(be32(buf, f)?);
        }
        duration += u64::from(d);
        at += per_sample;
    }
    // The sample sizes must fit the mdat that follows.
    if flags & 0x200 != 0 && data > (mdat.end - mdat.body) as u64 {
        return None;
    }
    Some(ScannedFragment {
        offset: moof.start as u64,
        len: (mdat.end - moof.start) as u64,
        sequence,
        start_ticks,
        duration_ticks: duration,
        samples: count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(scan(&[]), Err(ScanError::NoInit { len: 0 })));
        assert!(scan(&[0, 0, 0, 1, b'f', b't', b'y', b'p']).is_err());
        let mut odd = vec![
            0, 0, 0, 8, b'f', b't', b'y', b'p', 0, 0, 0, 9, b'm', b'o', b'o', b'v', 1,
        ];
        assert!(scan(&odd).is_err());
        odd.extend_from_slice(&[0xff; 40]);
        let _ = scan(&odd);
    }
}
