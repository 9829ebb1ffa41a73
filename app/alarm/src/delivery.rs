//! What is stored in a receiver's durable queue: one item per intake batch, holding every
//! delivery of that batch for the receiver, in order.

use serde::{Deserialize, Serialize};

use crate::event::{EventKind, Phase};

/// How the receiver is addressed for one delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Target {
    /// A SIA DC-09 event; `seq` is fixed when queued, so every resend reuses it.
    Sia {
        seq: u16,
        zone: u16,
    },
    /// A SIA NULL supervision message.
    SiaNull {
        seq: u16,
    },
    Chekt {
        channel: u16,
        #[serde(default)]
        fallback_output: Option<String>,
    },
    Relay {
        output: String,
        action: RelayAction,
    },
}

/// What a relay delivery does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum RelayAction {
    Pulse { ms: u64 },
    On,
    Off,
}

/// One alarm (or restore, test, supervision message) for one receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub alarm_id: u64,
    pub sensor: String,
    pub sensor_name: String,
    pub kind: EventKind,
    pub phase: Phase,
    /// When the alarm arose (ms since the epoch).
    pub at_ms: i64,
    pub target: Target,
}

/// Where the deliveries of a batch came from (for de-duplication after a crash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Source {
    /// The bridge run that numbered the sensor events.
    pub epoch: u64,
    /// The last sensor event of the batch.
    pub seq: u64,
}

/// The payload of one queue item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    #[serde(default)]
    pub source: Option<Source>,
    pub deliveries: Vec<Delivery>,
}

impl Batch {
    pub fn encode(&self) -> Vec<u8> {
        // Plain data with string keys: serialisation cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The highest SIA sequence counter value used in this batch, if any.
    pub fn sia_seqs(&self) -> impl Iterator<Item = u16> + '_ {
        self.deliveries.iter().filter_map(|d| match d.target {
            Target::Sia { seq, .. } | Target::SiaNull { seq } => Some(seq),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_round_trips() {
        let b = Batch {
            source: Some(Source { epoch: 7, seq: 9 }),
            deliveries: vec![
                Delivery {
                    alarm_id: 1,
                    sensor: "d1".into(),
                    sensor_name: "Door".into(),
                    kind: EventKind::Intrusion,
                    phase: Phase::Alarm,
                    at_ms: 5,
                    target: Target::Sia { seq: 12, zone: 3 },
                },
                Delivery {
                    alarm_id: 1,
                    sensor: "d1".into(),
                    sensor_name: "Door".into(),
                    kind: EventKind::Intrusion,
                    phase: Phase::Alarm,
                    at_ms: 5,
                    target: Target::Relay {
                        output: "siren".into(),
                        action: RelayAction::Pulse { ms: 1000 },
                    },
                },
            ],
        };
        let back = Batch::decode(&b.encode()).unwrap();
        assert_eq!(back, b);
        assert_eq!(back.sia_seqs().collect::<Vec<_>>(), vec![12]);
        assert!(Batch::decode(b"{").is_err());
    }
}
