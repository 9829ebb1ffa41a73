//! On-disk encodings: the event key, the archived event record, and the aligned copy that every
//! read goes through before rkyv validates it.

use rkyv::rancor;
use rkyv::util::AlignedVec;

/// Length of an event key: big-endian `ts_us` then big-endian `seq`, so byte order is time order.
pub(crate) const EVENT_KEY_LEN: usize = 16;

pub(crate) fn event_key(ts_us: u64, seq: u64) -> [u8; EVENT_KEY_LEN] {
    let mut key = [0u8; EVENT_KEY_LEN];
    key[..8].copy_from_slice(&ts_us.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

pub(crate) fn split_event_key(key: &[u8; EVENT_KEY_LEN]) -> (u64, u64) {
    let mut ts = [0u8; 8];
    let mut seq = [0u8; 8];
    ts.copy_from_slice(&key[..8]);
    seq.copy_from_slice(&key[8..]);
    (u64::from_be_bytes(ts), u64::from_be_bytes(seq))
}

/// The archived form of an event. Kept private so the public `Event` type can change without
/// changing the file format; a layout change here bumps `FORMAT_VERSION`.
#[derive(rkyv::Archive, rkyv::Serialize)]
pub(crate) struct StoredEvent {
    pub ts_us: u64,
    pub seq: u64,
    pub severity: u8,
    pub kind: String,
    pub source: String,
    /// JSON text, validated when the event was built.
    pub body: String,
}

pub(crate) fn encode_event(event: &StoredEvent) -> Result<AlignedVec, rancor::Error> {
    rkyv::to_bytes::<rancor::Error>(event)
}

/// Reusable aligned buffer for validated access to archived records.
///
/// redb returns value slices at arbitrary addresses, while archived `u64` fields need 8-byte
/// alignment; copying into this buffer first costs one memcpy per record and no allocation after
/// the first few reads.
#[derive(Default)]
pub(crate) struct Decoder {
    buf: AlignedVec,
}

impl Decoder {
    pub(crate) fn event<'b>(
        &'b mut self,
        bytes: &[u8],
    ) -> Result<&'b ArchivedStoredEvent, rancor::Error> {
        self.buf.clear();
        self.buf.extend_from_slice(bytes);
        rkyv::access::<ArchivedStoredEvent, rancor::Error>(&self.buf)
    }
}

/// Formats an event key for error messages.
pub(crate) fn describe_event_key(key: &[u8; EVENT_KEY_LEN]) -> String {
    let (ts, seq) = split_event_key(key);
    format!("ts_us={ts} seq={seq}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_is_time_then_sequence() {
        assert!(event_key(1, u64::MAX) < event_key(2, 0));
        assert!(event_key(5, 1) < event_key(5, 2));
        assert_eq!(split_event_key(&event_key(7, 9)), (7, 9));
    }

    #[test]
    fn decode_from_unaligned_slice() {
        let stored = StoredEvent {
            ts_us: 11,
            seq: 12,
            severity: 3,
            kind: "alarm.raised".into(),
            source: "door-1".into(),
            body: "{}".into(),
        };
        let bytes = encode_event(&stored).unwrap();
        // Shift by one byte so the slice is certainly misaligned.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        let mut dec = Decoder::default();
        let a = dec.event(&shifted[1..]).unwrap();
        assert_eq!(a.seq.to_native(), 12);
        assert_eq!(a.kind.as_str(), "alarm.raised");
    }

    #[test]
    fn corrupt_bytes_are_rejected() {
        let mut dec = Decoder::default();
        assert!(dec.event(&[0xff; 7]).is_err());
    }
}
