//! The append-only event log: appends (single and batched), time-range scans with filters,
//! paginated queries with an exact total, and retention by age and size in bounded batches.

use std::fmt;
use std::num::NonZeroU32;
use std::ops::{Bound, ControlFlow};
use std::str::FromStr;
use std::time::Duration;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::codec::{
    ArchivedStoredEvent, Decoder, EVENT_KEY_LEN, StoredEvent, describe_event_key, encode_event,
    event_key, split_event_key,
};
use crate::{META, META_TABLE, Store, StoreError, meta_get, meta_put};

type EventKey = &'static [u8; EVENT_KEY_LEN];
type KeyBound = Bound<[u8; EVENT_KEY_LEN]>;
const EVENTS: TableDefinition<'static, EventKey, &'static [u8]> = TableDefinition::new("events");
const EVENTS_TABLE: &str = "events";
const META_COUNT: &str = "events.count";
const META_BYTES: &str = "events.bytes";
const META_NEXT_SEQ: &str = "events.next_seq";

pub(crate) fn tables_exist(txn: &redb::ReadTransaction) -> Result<bool, StoreError> {
    crate::table_exists(txn, EVENTS, EVENTS_TABLE)
}

pub(crate) fn create_tables(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(EVENTS)
        .map_err(|e| StoreError::table(EVENTS_TABLE, e))?;
    Ok(())
}

/// How serious an event is. Ordered: `Info < Notice < Warning < Alarm < Critical`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Notice,
    Warning,
    Alarm,
    Critical,
}

impl Severity {
    /// All severities, least serious first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Notice,
        Severity::Warning,
        Severity::Alarm,
        Severity::Critical,
    ];

    /// The lowercase name used in JSON and on the bus.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Notice => "notice",
            Severity::Warning => "warning",
            Severity::Alarm => "alarm",
            Severity::Critical => "critical",
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Severity::Info => 0,
            Severity::Notice => 1,
            Severity::Warning => 2,
            Severity::Alarm => 3,
            Severity::Critical => 4,
        }
    }

    fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(usize::from(v)).copied()
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of the severities.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {0:?} (expected info, notice, warning, alarm or critical)")]
pub struct UnknownSeverity(pub String);

impl FromStr for Severity {
    type Err = UnknownSeverity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownSeverity(s.to_owned()))
    }
}

/// A JSON document, checked to be well-formed when built.
#[derive(Debug, Clone)]
pub struct JsonBody(Box<RawValue>);

impl JsonBody {
    /// Parses `text` as JSON.
    pub fn parse(text: impl Into<String>) -> Result<Self, StoreError> {
        RawValue::from_string(text.into())
            .map(Self)
            .map_err(|source| StoreError::Body { source })
    }

    /// Serializes `value` to JSON.
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Result<Self, StoreError> {
        serde_json::value::to_raw_value(value)
            .map(Self)
            .map_err(|source| StoreError::Body { source })
    }

    /// `{}`.
    pub fn empty() -> Self {
        #[allow(clippy::expect_used)]
        let raw = RawValue::from_string("{}".to_owned()).expect("`{}` is valid JSON");
        Self(raw)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// Deserializes the body into `T`.
    pub fn to_value<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }
}

impl Default for JsonBody {
    fn default() -> Self {
        Self::empty()
    }
}

impl PartialEq for JsonBody {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Serialize for JsonBody {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// An event to append. The store assigns the sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// When it happened, in microseconds since the Unix epoch. Decides its place in the log.
    pub ts_us: u64,
    /// Dotted kind, e.g. `alarm.raised`, `worker.restarted`.
    pub kind: String,
    /// Where it came from, e.g. a sensor or camera id.
    pub source: String,
    pub severity: Severity,
    pub body: JsonBody,
}

impl NewEvent {
    /// An event with an empty (`{}`) body.
    pub fn new(
        ts_us: u64,
        kind: impl Into<String>,
        source: impl Into<String>,
        severity: Severity,
    ) -> Self {
        Self {
            ts_us,
            kind: kind.into(),
            source: source.into(),
            severity,
            body: JsonBody::empty(),
        }
    }

    /// Replaces the body.
    #[must_use]
    pub fn with_body(mut self, body: JsonBody) -> Self {
        self.body = body;
        self
    }
}

/// Identifies one stored event: its time and its store-wide unique sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventId {
    pub ts_us: u64,
    pub seq: u64,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Event {
    pub ts_us: u64,
    /// Store-wide sequence, increasing in append order, never reused (also across restarts).
    pub seq: u64,
    pub kind: String,
    pub source: String,
    pub severity: Severity,
    /// The event's details, as its producer recorded them.
    #[schema(value_type = serde_json::Value)]
    pub body: JsonBody,
}

impl Event {
    pub fn id(&self) -> EventId {
        EventId {
            ts_us: self.ts_us,
            seq: self.seq,
        }
    }
}

/// Which events a query or scan sees. Every field narrows; the default sees everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events with `ts_us >= since_us`.
    pub since_us: Option<u64>,
    /// Only events with `ts_us < until_us`.
    pub until_us: Option<u64>,
    /// Only events whose kind starts with this (e.g. `alarm.`).
    pub kind_prefix: Option<String>,
    /// Only events from exactly this source.
    pub source: Option<String>,
    /// Only events at least this severe.
    pub min_severity: Option<Severity>,
}

impl EventFilter {
    fn needs_record(&self) -> bool {
        self.kind_prefix.is_some() || self.source.is_some() || self.min_severity.is_some()
    }

    fn is_everything(&self) -> bool {
        !self.needs_record() && self.since_us.is_none() && self.until_us.is_none()
    }

    fn matches(&self, e: &ArchivedStoredEvent) -> bool {
        if let Some(prefix) = &self.kind_prefix
            && !e.kind.as_str().starts_with(prefix.as_str())
        {
            return false;
        }
        if let Some(source) = &self.source
            && e.source.as_str() != source
        {
            return false;
        }
        if let Some(min) = self.min_severity
            && e.severity < min.to_u8()
        {
            return false;
        }
        true
    }

    fn key_bounds(&self) -> Option<(KeyBound, KeyBound)> {
        if let (Some(since), Some(until)) = (self.since_us, self.until_us)
            && since >= until
        {
            return None;
        }
        let lower = self
            .since_us
            .map_or(Bound::Unbounded, |t| Bound::Included(event_key(t, 0)));
        let upper = self
            .until_us
            .map_or(Bound::Unbounded, |t| Bound::Excluded(event_key(t, 0)));
        Some((lower, upper))
    }
}

/// Direction of a query or scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    #[default]
    NewestFirst,
    OldestFirst,
}

/// One page of a filtered, ordered listing. `page` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    pub filter: EventFilter,
    pub order: Order,
    pub page: NonZeroU32,
    pub limit: NonZeroU32,
}

impl Default for EventQuery {
    fn default() -> Self {
        Self {
            filter: EventFilter::default(),
            order: Order::NewestFirst,
            page: NonZeroU32::MIN,
            limit: NonZeroU32::new(50).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// The list shape of the REST API: `{"items": [...], "pagination": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub pagination: Pagination,
}

/// Where a page sits in the whole listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Pagination {
    pub page: u32,
    pub limit: u32,
    /// Number of events matching the filter.
    pub total: u64,
    /// `ceil(total / limit)`; 0 when nothing matches.
    pub total_pages: u64,
}

impl Pagination {
    /// Page `page` of `limit` items out of `total`.
    pub fn new(page: NonZeroU32, limit: NonZeroU32, total: u64) -> Self {
        Self {
            page: page.get(),
            limit: limit.get(),
            total,
            total_pages: total.div_ceil(u64::from(limit.get())),
        }
    }
}

/// Totals of the whole log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EventStats {
    pub count: u64,
    /// Sum of key and value sizes of the stored records (what retention by size bounds).
    pub bytes: u64,
    pub oldest_ts_us: Option<u64>,
    pub newest_ts_us: Option<u64>,
    /// The sequence the next appended event gets.
    pub next_seq: u64,
}

/// What the log may keep. Unset limits do not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Delete events older than this (by their `ts_us`, against the `now_us` given).
    pub max_age: Option<Duration>,
    /// Delete the oldest events while the stored records exceed this many bytes.
    pub max_bytes: Option<u64>,
    /// Events deleted per write transaction: bounds how long a writer waits behind retention.
    pub batch_size: NonZeroU32,
    /// Transactions per call: bounds how long one call runs. The rest waits for the next call.
    pub max_batches: NonZeroU32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            max_age: None,
            max_bytes: None,
            batch_size: NonZeroU32::new(2_000).unwrap_or(NonZeroU32::MIN),
            max_batches: NonZeroU32::new(50).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// What one retention call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct RetentionReport {
    pub deleted: u64,
    pub deleted_bytes: u64,
    pub batches: u32,
    /// False when `max_batches` ran out before the log was within the policy.
    pub complete: bool,
}

/// Handle to the event log of a [`Store`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventLog {
    store: Store,
}

fn record_len(value: &[u8]) -> u64 {
    (EVENT_KEY_LEN + value.len()) as u64
}

fn storage(e: redb::StorageError) -> StoreError {
    StoreError::storage(EVENTS_TABLE, e)
}

fn to_event(key: &[u8; EVENT_KEY_LEN], e: &ArchivedStoredEvent) -> Result<Event, StoreError> {
    let decode = |reason: String| StoreError::Decode {
        table: EVENTS_TABLE.to_owned(),
        key: describe_event_key(key),
        reason,
    };
    let severity = Severity::from_u8(e.severity)
        .ok_or_else(|| decode(format!("unknown severity code {}", e.severity)))?;
    let body = RawValue::from_string(e.body.as_str().to_owned())
        .map_err(|err| decode(format!("body is not JSON: {err}")))?;
    Ok(Event {
        ts_us: e.ts_us.to_native(),
        seq: e.seq.to_native(),
        kind: e.kind.as_str().to_owned(),
        source: e.source.as_str().to_owned(),
        severity,
        body: JsonBody(body),
    })
}

fn access<'d>(
    dec: &'d mut Decoder,
    key: &[u8; EVENT_KEY_LEN],
    value: &[u8],
) -> Result<&'d ArchivedStoredEvent, StoreError> {
    dec.event(value).map_err(|err| StoreError::Decode {
        table: EVENTS_TABLE.to_owned(),
        key: describe_event_key(key),
        reason: err.to_string(),
    })
}

impl EventLog {
    pub(crate) fn new(store: Store) -> Self {
        Self { store }
    }

    /// Appends one event with a durable commit.
    pub fn append(&self, event: NewEvent) -> Result<EventId, StoreError> {
        let ids = self.append_batch(std::iter::once(event))?;
        ids.into_iter().next().ok_or(StoreError::Encode {
            what: "event",
            reason: "append produced no id".to_owned(),
        })
    }

    /// Appends events in one transaction with one durable commit: all are stored or none.
    /// Writers that produce many small events (fieldbus samples) should coalesce them here to
    /// spare the flash. Returns the ids in input order.
    pub fn append_batch(
        &self,
        events: impl IntoIterator<Item = NewEvent>,
    ) -> Result<Vec<EventId>, StoreError> {
        let txn = self.store.begin_write()?;
        let mut ids = Vec::new();
        {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| StoreError::table(META_TABLE, e))?;
            let mut table = txn
                .open_table(EVENTS)
                .map_err(|e| StoreError::table(EVENTS_TABLE, e))?;
            let mut next_seq = meta_get(&meta, META_NEXT_SEQ)?;
            let mut count = meta_get(&meta, META_COUNT)?;
            let mut bytes = meta_get(&meta, META_BYTES)?;
            for event in events {
                let seq = next_seq;
                next_seq += 1;
                let ts_us = event.ts_us;
                let stored = StoredEvent {
                    ts_us,
                    seq,
                    severity: event.severity.to_u8(),
                    kind: event.kind,
                    source: event.source,
                    body: event.body.as_str().to_owned(),
                };
                let value = encode_event(&stored).map_err(|err| StoreError::Encode {
                    what: "event",
                    reason: err.to_string(),
                })?;
                let key = event_key(ts_us, seq);
                table.insert(&key, value.as_slice()).map_err(storage)?;
                count += 1;
                bytes += record_len(&value);
                ids.push(EventId { ts_us, seq });
            }
            if ids.is_empty() {
                return Ok(ids);
            }
            meta_put(&mut meta, META_NEXT_SEQ, next_seq)?;
            meta_put(&mut meta, META_COUNT, count)?;
            meta_put(&mut meta, META_BYTES, bytes)?;
        }
        txn.commit()?;
        Ok(ids)
    }

    /// The event with this id, if it is still stored.
    pub fn get(&self, id: EventId) -> Result<Option<Event>, StoreError> {
        let txn = self.store.db().begin_read()?;
        let table = txn
            .open_table(EVENTS)
            .map_err(|e| StoreError::table(EVENTS_TABLE, e))?;
        let key = event_key(id.ts_us, id.seq);
        let Some(value) = table.get(&key).map_err(storage)? else {
            return Ok(None);
        };
        let mut dec = Decoder::default();
        let archived = access(&mut dec, &key, value.value())?;
        to_event(&key, archived).map(Some)
    }

    /// Count, size and time span of the whole log. O(1).
    pub fn stats(&self) -> Result<EventStats, StoreError> {
        let txn = self.store.db().begin_read()?;
        let meta = txn
            .open_table(META)
            .map_err(|e| StoreError::table(META_TABLE, e))?;
        let table = txn
            .open_table(EVENTS)
            .map_err(|e| StoreError::table(EVENTS_TABLE, e))?;
        let first = table.first().map_err(storage)?;
        let last = table.last().map_err(storage)?;
        Ok(EventStats {
            count: meta_get(&meta, META_COUNT)?,
            bytes: meta_get(&meta, META_BYTES)?,
            oldest_ts_us: first.map(|(k, _)| split_event_key(k.value()).0),
            newest_ts_us: last.map(|(k, _)| split_event_key(k.value()).0),
            next_seq: meta_get(&meta, META_NEXT_SEQ)?,
        })
    }

    /// The newest `limit` events, newest first, with the total. Reads only those records.
    pub fn newest(&self, limit: NonZeroU32) -> Result<Page<Event>, StoreError> {
        self.query(&EventQuery {
            limit,
            ..EventQuery::default()
        })
    }

    /// One page of the events matching `query.filter`, in `query.order`, with the number of
    /// matching events.
    ///
    /// Cost: without a filter the total comes from the meta table and only the records up to the
    /// end of the page are visited (deep pages walk keys, not values). With a time range the keys
    /// in the range are counted; with a kind, source or severity filter every record in the range
    /// is validated and tested.
    pub fn query(&self, query: &EventQuery) -> Result<Page<Event>, StoreError> {
        let limit = u64::from(query.limit.get());
        let skip = u64::from(query.page.get() - 1) * limit;
        let txn = self.store.db().begin_read()?;
        let table = txn
            .open_table(EVENTS)
            .map_err(|e| StoreError::table(EVENTS_TABLE, e))?;
        let everything = query.filter.is_everything();
        let needs_record = query.filter.needs_record();
        let mut items = Vec::new();
        let mut matched: u64 = 0;
        if let Some((lower, upper)) = query.filter.key_bounds() {
            let range = table
                .range::<&[u8; EVENT_KEY_LEN]>((lower.as_ref(), upper.as_ref()))
                .map_err(storage)?;
            let iter: Box<dyn Iterator<Item = _>> = match query.order {
                Order::NewestFirst => Box::new(range.rev()),
                Order::OldestFirst => Box::new(range),
            };
            let mut dec = Decoder::default();
            for entry in iter {
                let (key, value) = entry.map_err(storage)?;
                let in_window = matched >= skip && (items.len() as u64) < limit;
                if needs_record {
                    let archived = access(&mut dec, key.value(), value.value())?;
                    if !query.filter.matches(archived) {
                        continue;
                    }
                    if in_window {
                        items.push(to_event(key.value(), archived)?);
                    }
                } else if in_window {
                    let archived = access(&mut dec, key.value(), value.value())?;
                    items.push(to_event(key.value(), archived)?);
                }
                matched += 1;
                if everything && items.len() as u64 == limit {
                    break;
                }
            }
        }
        let total = if everything {
            let meta = txn
                .open_table(META)
                .map_err(|e| StoreError::table(META_TABLE, e))?;
            meta_get(&meta, META_COUNT)?
        } else {
            matched
        };
        Ok(Page {
            items,
            pagination: Pagination::new(query.page, query.limit, total),
        })
    }

    /// Calls `visit` with every event matching `filter`, in `order`, until it returns
    /// `ControlFlow::Break`. Reads from one snapshot: appends made meanwhile are not seen.
    /// Returns the number of events visited.
    pub fn scan(
        &self,
        filter: &EventFilter,
        order: Order,
        mut visit: impl FnMut(Event) -> ControlFlow<()>,
    ) -> Result<u64, StoreError> {
        let txn = self.store.db().begin_read()?;
        let table = txn
            .open_table(EVENTS)
            .map_err(|e| StoreError::table(EVENTS_TABLE, e))?;
        let Some((lower, upper)) = filter.key_bounds() else {
            return Ok(0);
        };
        let range = table
            .range::<&[u8; EVENT_KEY_LEN]>((lower.as_ref(), upper.as_ref()))
            .map_err(storage)?;
        let iter: Box<dyn Iterator<Item = _>> = match order {
            Order::NewestFirst => Box::new(range.rev()),
            Order::OldestFirst => Box::new(range),
        };
        let mut dec = Decoder::default();
        let mut visited = 0;
        for entry in iter {
            let (key, value) = entry.map_err(storage)?;
            let archived = access(&mut dec, key.value(), value.value())?;
            if !filter.matches(archived) {
                continue;
            }
            visited += 1;
            if visit(to_event(key.value(), archived)?).is_break() {
                break;
            }
        }
        Ok(visited)
    }

    /// Deletes the oldest events until the log satisfies `policy` (ages measured against
    /// `now_us`), in transactions of at most `policy.batch_size` events so that a writer never
    /// waits behind more than one batch. Stops after `policy.max_batches` transactions; the owner
    /// calls this periodically (e.g. every minute) and the rest goes on the next call.
    pub fn enforce_retention(
        &self,
        policy: &RetentionPolicy,
        now_us: u64,
    ) -> Result<RetentionReport, StoreError> {
        let cutoff_us = policy
            .max_age
            .map(|age| now_us.saturating_sub(u64::try_from(age.as_micros()).unwrap_or(u64::MAX)));
        let mut report = RetentionReport::default();
        if cutoff_us.is_none() && policy.max_bytes.is_none() {
            report.complete = true;
            return Ok(report);
        }
        while report.batches < policy.max_batches.get() {
            let (deleted, deleted_bytes) =
                self.retention_batch(cutoff_us, policy.max_bytes, policy.batch_size.get())?;
            if deleted == 0 {
                report.complete = true;
                break;
            }
            report.batches += 1;
            report.deleted += deleted;
            report.deleted_bytes += deleted_bytes;
            if deleted < u64::from(policy.batch_size.get()) {
                report.complete = true;
                break;
            }
        }
        if report.deleted > 0 {
            tracing::debug!(
                path = %self.store.path().display(),
                deleted = report.deleted,
                bytes = report.deleted_bytes,
                complete = report.complete,
                "event retention"
            );
        }
        Ok(report)
    }

    /// One retention transaction. Returns how many events and bytes it deleted.
    fn retention_batch(
        &self,
        cutoff_us: Option<u64>,
        max_bytes: Option<u64>,
        batch_size: u32,
    ) -> Result<(u64, u64), StoreError> {
        let txn = self.store.begin_write()?;
        let (deleted, deleted_bytes) = {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| StoreError::table(META_TABLE, e))?;
            let mut table = txn
                .open_table(EVENTS)
                .map_err(|e| StoreError::table(EVENTS_TABLE, e))?;
            let count = meta_get(&meta, META_COUNT)?;
            let bytes = meta_get(&meta, META_BYTES)?;
            let mut deleted = 0u64;
            let mut deleted_bytes = 0u64;
            let mut last_key: Option<[u8; EVENT_KEY_LEN]> = None;
            for entry in table.iter().map_err(storage)? {
                if deleted >= u64::from(batch_size) {
                    break;
                }
                let (key, value) = entry.map_err(storage)?;
                let (ts_us, _) = split_event_key(key.value());
                let too_old = cutoff_us.is_some_and(|cutoff| ts_us < cutoff);
                let too_big =
                    max_bytes.is_some_and(|max| bytes.saturating_sub(deleted_bytes) > max);
                if !too_old && !too_big {
                    break;
                }
                deleted += 1;
                deleted_bytes += record_len(value.value());
                last_key = Some(*key.value());
            }
            let Some(last_key) = last_key else {
                return Ok((0, 0));
            };
            table
                .retain_in::<&[u8; EVENT_KEY_LEN], _>(..=&last_key, |_, _| false)
                .map_err(storage)?;
            meta_put(&mut meta, META_COUNT, count.saturating_sub(deleted))?;
            meta_put(&mut meta, META_BYTES, bytes.saturating_sub(deleted_bytes))?;
            (deleted, deleted_bytes)
        };
        txn.commit()?;
        Ok((deleted, deleted_bytes))
    }
}
