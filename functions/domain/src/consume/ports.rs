//! Ports of the consumer: the sinks a batch fans out to. Adapters implement them against DynamoDB,
//! S3, PostgreSQL and SQS; [`super::fakes`] implements them in memory for unit tests.
//!
//! Every port must be idempotent for the batch loop's use of it (the ESM redelivers whole batches):
//! the window store through conditional writes, objects through deterministic keys and bytes, the
//! table through its uniqueness on record coordinates, generic items through their coordinate key,
//! poison messages through their deduplication id.

use std::future::Future;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ledger::PartitionLedger;
use super::{GenericEvent, Poison, RawRecord};
use crate::event::RawHeader;
use crate::model::{RecordCoordinates, StoreEvent};
use crate::ports::PortError;
use crate::window::{WindowAggregate, WindowKey};

/// Result of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    Saved,
    /// Someone else changed the item since it was read; re-read and re-merge.
    Conflict,
}

/// Window aggregates, one item per (device, window start).
pub trait WindowStore: Send + Sync {
    /// The stored aggregates among `keys` (strongly consistent reads); absent keys are left out.
    fn load(
        &self,
        keys: &[WindowKey],
    ) -> impl Future<Output = Result<Vec<WindowAggregate>, PortError>> + Send;

    /// Writes `aggregate` only if the stored item still has `expected_count` as its count
    /// (`None`: only if no item exists).
    fn save(
        &self,
        aggregate: &WindowAggregate,
        expected_count: Option<u64>,
    ) -> impl Future<Output = Result<SaveOutcome, PortError>> + Send;
}

/// An object as read, with the entity tag a conditional write compares against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub bytes: Vec<u8>,
    pub etag: String,
}

/// When a conditional write may replace what is stored (S3 conditional writes: the `If-None-Match`
/// and `If-Match` headers of PutObject, Amazon S3 User Guide, "How to prevent object overwrites
/// with conditional writes").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// `If-None-Match: *`: only if no object exists under the key.
    Absent,
    /// `If-Match: <etag>`: only if the stored object still has this entity tag.
    Matches(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionalWrite {
    Written,
    /// The object changed since it was read (S3 answers 412 Precondition Failed, or 409
    /// ConditionalRequestConflict while another conditional write of the key is in flight, or 404
    /// when an `If-Match` object was deleted): re-read, re-merge, try again.
    Conflict,
}

/// Where archived store-event blocks and offloaded poison messages live (S3).
pub trait ObjectStore: Send + Sync {
    /// The object and its entity tag, `None` if it does not exist.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<StoredObject>, PortError>> + Send;

    /// Unconditional write, for objects whose bytes depend on their key only (offloaded poison).
    fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &'static str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Writes only if `condition` still holds: read-merge-write without losing a concurrent
    /// writer's lines.
    fn put_if(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &'static str,
        condition: WriteCondition,
    ) -> impl Future<Output = Result<ConditionalWrite, PortError>> + Send;
}

/// A store event together with the record it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreEventRow {
    pub coordinates: RecordCoordinates,
    pub event: StoreEvent,
}

/// The relational store of store events (PostgreSQL `sales` and `inventory`).
pub trait StoreEventTable: Send + Sync {
    /// Inserts the rows whose coordinates are not stored yet; returns how many were new.
    fn insert(&self, rows: &[StoreEventRow]) -> impl Future<Output = Result<u64, PortError>> + Send;
}

/// Explicit events as documents (DynamoDB), keyed by their record coordinates.
pub trait GenericEventStore: Send + Sync {
    /// Writes every event; writing one again with the same content is a no-op.
    fn put(&self, events: &[GenericEvent]) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Per partition, the lowest and highest stored offset and what those records held (see
/// [`super::ledger`]); kept with the explicit events (DynamoDB), one item per partition.
pub trait PartitionLedgerStore: Send + Sync {
    /// The stored ledgers among `topic_partitions`; absent ones are left out.
    fn load_ledgers(
        &self,
        topic_partitions: &[String],
    ) -> impl Future<Output = Result<Vec<PartitionLedger>, PortError>> + Send;

    /// Writes `ledger` only if the stored one is still `expected` (`None`: only if none exists).
    fn save_ledger(
        &self,
        ledger: &PartitionLedger,
        expected: Option<&PartitionLedger>,
    ) -> impl Future<Output = Result<SaveOutcome, PortError>> + Send;
}

/// The failure destination for records that cannot be processed (SQS FIFO).
pub trait PoisonSink: Send + Sync {
    fn send(&self, messages: &[PoisonMessage]) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Where a message's full content was moved when it was too large to send inline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffloadedContent {
    pub bucket: String,
    pub key: String,
    pub size: usize,
}

/// The body of a poison message: the record's coordinates, why it was set aside and the record
/// exactly as delivered (key and value base64 as received, headers as the ESM's signed bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoisonMessage {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub reason_kind: String,
    pub reason: String,
    pub key_base64: Option<String>,
    pub value_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<RawHeader>>,
    /// Set instead of key, value and headers when the full message lives in object storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offloaded: Option<OffloadedContent>,
}

/// The FIFO group: one per partition, so the queue keeps each partition's poison in order.
/// SQS allows 128 characters; longer names are replaced by a stable digest.
pub const SQS_ID_MAX_LEN: usize = 128;

impl PoisonMessage {
    pub fn from_poison(poison: &Poison) -> Self {
        let RawRecord {
            timestamp,
            key,
            value,
            headers,
            ..
        } = &poison.raw;
        Self {
            topic: poison.coordinates.topic.clone(),
            partition: poison.coordinates.partition,
            offset: poison.coordinates.offset,
            timestamp: *timestamp,
            reason_kind: poison.reason.kind().to_string(),
            reason: poison.reason.to_string(),
            key_base64: key.clone(),
            value_base64: value.clone(),
            headers: headers.clone(),
            offloaded: None,
        }
    }

    pub fn coordinates(&self) -> RecordCoordinates {
        RecordCoordinates {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
        }
    }

    pub fn group_id(&self) -> String {
        bounded_id(self.coordinates().topic_partition())
    }

    /// One per record: a replayed batch resends identical ids, which a FIFO queue drops.
    pub fn deduplication_id(&self) -> String {
        bounded_id(format!(
            "{}-{}",
            self.coordinates().topic_partition(),
            self.offset
        ))
    }

    /// A deterministic object key under `prefix` for the offloaded message.
    pub fn offload_key(&self, prefix: &str) -> String {
        format!("{prefix}{}/{}/{}.json", self.topic, self.partition, self.offset)
    }
}

fn bounded_id(id: String) -> String {
    if id.len() <= SQS_ID_MAX_LEN {
        id
    } else {
        Uuid::new_v5(&Uuid::NAMESPACE_OID, id.as_bytes()).to_string()
    }
}
