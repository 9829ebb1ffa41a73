//! Durable FIFO queues for store-and-forward delivery (one per alarm receiver).
//!
//! Each queue is its own table, `queue/<name>`, keyed by a `u64` sequence that only grows (it is
//! kept in the `queues` table and survives restarts and emptying). A value is the enqueue time
//! (big-endian µs) followed by the payload bytes, which the store does not interpret.

use std::num::NonZeroU64;
use std::time::Duration;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;

use crate::{Store, StoreError, now_us};

const QUEUES: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("queues");
const QUEUES_TABLE: &str = "queues";
const TABLE_PREFIX: &str = "queue/";
const STATE_LEN: usize = 32;
const ITEM_HEADER_LEN: usize = 8;

pub(crate) fn tables_exist(txn: &redb::ReadTransaction) -> Result<bool, StoreError> {
    crate::table_exists(txn, QUEUES, QUEUES_TABLE)
}

pub(crate) fn create_tables(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(QUEUES)
        .map_err(|e| StoreError::table(QUEUES_TABLE, e))?;
    Ok(())
}

/// A queue name: 1 to 64 characters from `a-z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(String);

impl QueueName {
    pub fn new(name: &str) -> Result<Self, StoreError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(StoreError::QueueName {
                name: name.to_owned(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What happens to an enqueue when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Keep what is queued; the new item is not stored ([`Enqueued::Rejected`]).
    RejectNew,
    /// Delete the oldest items to make room ([`Enqueued::StoredDroppingOldest`] lists them).
    DropOldest,
}

/// Capacity and overflow policy of a queue handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Most items the queue holds.
    pub capacity: NonZeroU64,
    pub overflow: Overflow,
}

/// Outcome of [`Queue::enqueue`]. Overflow is never silent: it is one of these variants.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored durably with this sequence.
    Stored { seq: u64 },
    /// Stored durably with `seq`, after deleting the oldest items whose sequences are in
    /// `dropped` (oldest first), in the same transaction.
    StoredDroppingOldest { seq: u64, dropped: Vec<u64> },
    /// Not stored: the queue holds `len` items and its capacity is `capacity`.
    Rejected { len: u64, capacity: u64 },
}

impl Enqueued {
    /// The sequence of the stored item, if it was stored.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Enqueued::Stored { seq } | Enqueued::StoredDroppingOldest { seq, .. } => Some(*seq),
            Enqueued::Rejected { .. } => None,
        }
    }
}

/// One queued item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueItem {
    pub seq: u64,
    /// Wall-clock time of the enqueue, µs since the Unix epoch.
    pub enqueued_us: u64,
    pub payload: Vec<u8>,
}

/// Counters of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    pub len: u64,
    /// Payload and header bytes of the queued items.
    pub bytes: u64,
    /// The sequence the next item gets.
    pub next_seq: u64,
    /// Items deleted by [`Overflow::DropOldest`] over the queue's life.
    pub dropped_total: u64,
    pub oldest_enqueued_us: Option<u64>,
}

/// Per-queue counters stored in the `queues` table, updated with every change of the queue.
#[derive(Debug, Clone, Copy, Default)]
struct State {
    next_seq: u64,
    len: u64,
    bytes: u64,
    dropped_total: u64,
}

impl State {
    fn encode(&self) -> [u8; STATE_LEN] {
        let mut out = [0u8; STATE_LEN];
        for (i, v) in [self.next_seq, self.len, self.bytes, self.dropped_total]
            .into_iter()
            .enumerate()
        {
            out[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    fn decode(name: &QueueName, bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.len() != STATE_LEN {
            return Err(StoreError::Decode {
                table: QUEUES_TABLE.to_owned(),
                key: name.as_str().to_owned(),
                reason: format!("state is {} bytes, expected {STATE_LEN}", bytes.len()),
            });
        }
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        Ok(Self {
            next_seq: word(0),
            len: word(1),
            bytes: word(2),
            dropped_total: word(3),
        })
    }
}

fn load_state(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &QueueName,
) -> Result<State, StoreError> {
    match table
        .get(name.as_str())
        .map_err(|e| StoreError::storage(QUEUES_TABLE, e))?
    {
        Some(v) => State::decode(name, v.value()),
        None => Ok(State::default()),
    }
}

fn save_state(
    table: &mut redb::Table<'_, &'static str, &'static [u8]>,
    name: &QueueName,
    state: &State,
) -> Result<(), StoreError> {
    table
        .insert(name.as_str(), state.encode().as_slice())
        .map_err(|e| StoreError::storage(QUEUES_TABLE, e))?;
    Ok(())
}

fn decode_item(table: &str, seq: u64, value: &[u8]) -> Result<QueueItem, StoreError> {
    if value.len() < ITEM_HEADER_LEN {
        return Err(StoreError::Decode {
            table: table.to_owned(),
            key: seq.to_string(),
            reason: format!("item is {} bytes, shorter than its header", value.len()),
        });
    }
    let mut ts = [0u8; ITEM_HEADER_LEN];
    ts.copy_from_slice(&value[..ITEM_HEADER_LEN]);
    Ok(QueueItem {
        seq,
        enqueued_us: u64::from_be_bytes(ts),
        payload: value[ITEM_HEADER_LEN..].to_vec(),
    })
}

fn enqueued_us_of(value: &[u8]) -> Option<u64> {
    let mut ts = [0u8; ITEM_HEADER_LEN];
    ts.copy_from_slice(value.get(..ITEM_HEADER_LEN)?);
    Some(u64::from_be_bytes(ts))
}

pub(crate) fn names(store: &Store) -> Result<Vec<String>, StoreError> {
    let txn = store.db().begin_read()?;
    let table = txn
        .open_table(QUEUES)
        .map_err(|e| StoreError::table(QUEUES_TABLE, e))?;
    let mut names = Vec::new();
    for entry in table
        .iter()
        .map_err(|e| StoreError::storage(QUEUES_TABLE, e))?
    {
        let (k, _) = entry.map_err(|e| StoreError::storage(QUEUES_TABLE, e))?;
        names.push(k.value().to_owned());
    }
    Ok(names)
}

pub(crate) fn remove(store: &Store, name: &QueueName) -> Result<bool, StoreError> {
    let table_name = format!("{TABLE_PREFIX}{}", name.as_str());
    let txn = store.begin_write()?;
    let existed = {
        let mut queues = txn
            .open_table(QUEUES)
            .map_err(|e| StoreError::table(QUEUES_TABLE, e))?;
        let existed = queues
            .remove(name.as_str())
            .map_err(|e| StoreError::storage(QUEUES_TABLE, e))?
            .is_some();
        let def: TableDefinition<'_, u64, &[u8]> = TableDefinition::new(&table_name);
        txn.delete_table(def)
            .map_err(|e| StoreError::table(&table_name, e))?;
        existed
    };
    txn.commit()?;
    Ok(existed)
}

/// Handle to one durable queue. Cheap to clone; all handles of a name share its items.
#[derive(Debug, Clone)]
pub struct Queue {
    store: Store,
    name: QueueName,
    table_name: String,
    config: QueueConfig,
}

impl Queue {
    pub(crate) fn open(
        store: Store,
        name: QueueName,
        config: QueueConfig,
    ) -> Result<Self, StoreError> {
        let queue = Self {
            table_name: format!("{TABLE_PREFIX}{}", name.as_str()),
            store,
            name,
            config,
        };
        if queue.exists()? {
            return Ok(queue);
        }
        let txn = queue.store.begin_write()?;
        {
            let mut queues = txn
                .open_table(QUEUES)
                .map_err(|e| StoreError::table(QUEUES_TABLE, e))?;
            if queues
                .get(queue.name.as_str())
                .map_err(|e| StoreError::storage(QUEUES_TABLE, e))?
                .is_none()
            {
                save_state(&mut queues, &queue.name, &State::default())?;
            }
            txn.open_table(queue.def())
                .map_err(|e| StoreError::table(&queue.table_name, e))?;
        }
        txn.commit()?;
        Ok(queue)
    }

    /// Whether the queue's state and table exist (a read: opening an existing queue commits
    /// nothing).
    fn exists(&self) -> Result<bool, StoreError> {
        let txn = self.store.db().begin_read()?;
        let queues = txn
            .open_table(QUEUES)
            .map_err(|e| StoreError::table(QUEUES_TABLE, e))?;
        let has_state = queues
            .get(self.name.as_str())
            .map_err(|e| StoreError::storage(QUEUES_TABLE, e))?
            .is_some();
        Ok(has_state && crate::table_exists(&txn, self.def(), &self.table_name)?)
    }

    fn def(&self) -> TableDefinition<'_, u64, &'static [u8]> {
        TableDefinition::new(&self.table_name)
    }

    fn storage(&self, e: redb::StorageError) -> StoreError {
        StoreError::storage(&self.table_name, e)
    }

    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    pub fn config(&self) -> QueueConfig {
        self.config
    }

    /// Appends `payload` with a durable commit, applying the capacity and overflow policy.
    pub fn enqueue(&self, payload: &[u8]) -> Result<Enqueued, StoreError> {
        self.enqueue_at(payload, now_us())
    }

    /// [`Self::enqueue`] with an explicit enqueue time (µs since the Unix epoch).
    pub fn enqueue_at(&self, payload: &[u8], enqueued_us: u64) -> Result<Enqueued, StoreError> {
        let capacity = self.config.capacity.get();
        let txn = self.store.begin_write()?;
        let outcome = {
            let mut queues = txn
                .open_table(QUEUES)
                .map_err(|e| StoreError::table(QUEUES_TABLE, e))?;
            let mut table = txn
                .open_table(self.def())
                .map_err(|e| StoreError::table(&self.table_name, e))?;
            let mut state = load_state(&queues, &self.name)?;
            let mut dropped = Vec::new();
            if state.len >= capacity {
                match self.config.overflow {
                    Overflow::RejectNew => {
                        // Nothing written: the transaction is dropped, which aborts it.
                        return Ok(Enqueued::Rejected {
                            len: state.len,
                            capacity,
                        });
                    }
                    Overflow::DropOldest => {
                        while state.len >= capacity {
                            let Some((k, v)) = table.pop_first().map_err(|e| self.storage(e))?
                            else {
                                break;
                            };
                            dropped.push(k.value());
                            state.len -= 1;
                            state.bytes = state.bytes.saturating_sub(v.value().len() as u64);
                            state.dropped_total += 1;
                        }
                    }
                }
            }
            let seq = state.next_seq;
            let mut value = Vec::with_capacity(ITEM_HEADER_LEN + payload.len());
            value.extend_from_slice(&enqueued_us.to_be_bytes());
            value.extend_from_slice(payload);
            table
                .insert(seq, value.as_slice())
                .map_err(|e| self.storage(e))?;
            state.next_seq += 1;
            state.len += 1;
            state.bytes += value.len() as u64;
            save_state(&mut queues, &self.name, &state)?;
            if dropped.is_empty() {
                Enqueued::Stored { seq }
            } else {
                tracing::warn!(
                    queue = self.name.as_str(),
                    dropped = dropped.len(),
                    capacity,
                    "queue full: dropped oldest items"
                );
                Enqueued::StoredDroppingOldest { seq, dropped }
            }
        };
        txn.commit()?;
        Ok(outcome)
    }

    /// Up to `n` items from the head, oldest first. Does not remove them.
    pub fn peek(&self, n: usize) -> Result<Vec<QueueItem>, StoreError> {
        let txn = self.store.db().begin_read()?;
        let table = txn
            .open_table(self.def())
            .map_err(|e| StoreError::table(&self.table_name, e))?;
        let mut items = Vec::new();
        for entry in table.iter().map_err(|e| self.storage(e))?.take(n) {
            let (k, v) = entry.map_err(|e| self.storage(e))?;
            items.push(decode_item(&self.table_name, k.value(), v.value())?);
        }
        Ok(items)
    }

    /// Removes the item `seq` (durably). Returns whether it was there.
    pub fn ack(&self, seq: u64) -> Result<bool, StoreError> {
        let txn = self.store.begin_write()?;
        {
            let mut queues = txn
                .open_table(QUEUES)
                .map_err(|e| StoreError::table(QUEUES_TABLE, e))?;
            let mut table = txn
                .open_table(self.def())
                .map_err(|e| StoreError::table(&self.table_name, e))?;
            let Some(v) = table.remove(seq).map_err(|e| self.storage(e))? else {
                return Ok(false);
            };
            let len = v.value().len() as u64;
            drop(v);
            let mut state = load_state(&queues, &self.name)?;
            state.len = state.len.saturating_sub(1);
            state.bytes = state.bytes.saturating_sub(len);
            save_state(&mut queues, &self.name, &state)?;
        }
        txn.commit()?;
        Ok(true)
    }

    /// Removes every item with a sequence up to and including `seq` (durably). Returns how many.
    pub fn ack_through(&self, seq: u64) -> Result<u64, StoreError> {
        let txn = self.store.begin_write()?;
        let removed = {
            let mut queues = txn
                .open_table(QUEUES)
                .map_err(|e| StoreError::table(QUEUES_TABLE, e))?;
            let mut table = txn
                .open_table(self.def())
                .map_err(|e| StoreError::table(&self.table_name, e))?;
            let mut removed = 0u64;
            let mut bytes = 0u64;
            for entry in table
                .extract_from_if(..=seq, |_, _| true)
                .map_err(|e| self.storage(e))?
            {
                let (_, v) = entry.map_err(|e| self.storage(e))?;
                removed += 1;
                bytes += v.value().len() as u64;
            }
            if removed == 0 {
                return Ok(0);
            }
            let mut state = load_state(&queues, &self.name)?;
            state.len = state.len.saturating_sub(removed);
            state.bytes = state.bytes.saturating_sub(bytes);
            save_state(&mut queues, &self.name, &state)?;
            removed
        };
        txn.commit()?;
        Ok(removed)
    }

    /// Number of queued items. O(1).
    pub fn len(&self) -> Result<u64, StoreError> {
        Ok(self.stats()?.len)
    }

    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// How long the head item has waited, by the wall clock; `None` when empty.
    pub fn oldest_age(&self) -> Result<Option<Duration>, StoreError> {
        let now = now_us();
        Ok(self
            .stats()?
            .oldest_enqueued_us
            .map(|t| Duration::from_micros(now.saturating_sub(t))))
    }

    /// Counters and the head item's enqueue time.
    pub fn stats(&self) -> Result<QueueStats, StoreError> {
        let txn = self.store.db().begin_read()?;
        let queues = txn
            .open_table(QUEUES)
            .map_err(|e| StoreError::table(QUEUES_TABLE, e))?;
        let table = txn
            .open_table(self.def())
            .map_err(|e| StoreError::table(&self.table_name, e))?;
        let state = load_state(&queues, &self.name)?;
        let oldest = table.first().map_err(|e| self.storage(e))?;
        Ok(QueueStats {
            len: state.len,
            bytes: state.bytes,
            next_seq: state.next_seq,
            dropped_total: state.dropped_total,
            oldest_enqueued_us: oldest.and_then(|(_, v)| enqueued_us_of(v.value())),
        })
    }
}
