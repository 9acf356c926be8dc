//! Ports of the consumer: the sinks a batch fans out to. Adapters implement them against DynamoDB,
//! S3, PostgreSQL and SQS; [`super::fakes`] implements them in memory for unit tests.
//!
//! Every port must be idempotent for the batch loop's use of it (the ESM redelivers whole batches):
//! the window store through conditional writes, objects through deterministic keys and bytes, the
//! table through its uniqueness on record coordinates, explicit items through their coordinate key,
//! poison messages through their deduplication id.

use std::future::Future;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use super::ledger::PartitionLedger;
use super::{ExplicitEvent, Poison, RawRecord};
use crate::event::RawHeader;
use crate::limits::{sqs_message_bytes, S3_MAX_PUT_OBJECT_BYTES, SQS_MAX_MESSAGE_BYTES};
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

/// S3 takes at most 5 GB in one `PutObject`; the object stores refuse more themselves (the
/// consumer's archive blocks and poison offloads stay far below it by construction).
pub fn check_object_size(key: &str, size: usize) -> Result<(), PortError> {
    if size as u64 > S3_MAX_PUT_OBJECT_BYTES {
        return Err(PortError::Rejected {
            component: "object store",
            message: format!(
                "{key}: {size} bytes exceed S3's {S3_MAX_PUT_OBJECT_BYTES}-byte PutObject limit"
            ),
        });
    }
    Ok(())
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
pub trait ExplicitEventStore: Send + Sync {
    /// Writes every event; writing one again with the same content is a no-op.
    fn put(&self, events: &[ExplicitEvent]) -> impl Future<Output = Result<(), PortError>> + Send;
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
            reason: poison.reason.message(),
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

/// How a poison message reaches the queue: inline, or whole in object storage with a pointer in the
/// queue. Both the SQS adapter and the in-memory fake deliver by this plan, so both refuse what SQS
/// would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueDelivery {
    Inline(String),
    Offload {
        key: String,
        full_body: String,
        pointer_body: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DeliveryError {
    #[error("poison message does not serialize: {0}")]
    Serialize(String),
    #[error("poison pointer of {size} bytes exceeds SQS's {limit}-byte message limit")]
    PointerTooLarge { size: usize, limit: usize },
}

impl PoisonMessage {
    /// The queue body: JSON, with the characters SQS refuses replaced.
    pub fn queue_body(&self) -> Result<String, DeliveryError> {
        serde_json::to_string(self)
            .map(queue_safe)
            .map_err(|e| DeliveryError::Serialize(e.to_string()))
    }

    /// Inline when the body fits an SQS message ([`SQS_MAX_MESSAGE_BYTES`], no attributes are
    /// sent); otherwise the whole body goes to `bucket` under `offload_prefix` and the queue gets a
    /// pointer with the coordinates and the (bounded) reason, which must itself fit.
    pub fn delivery(&self, bucket: &str, offload_prefix: &str) -> Result<QueueDelivery, DeliveryError> {
        let body = self.queue_body()?;
        if sqs_message_bytes(&body, &[]) <= SQS_MAX_MESSAGE_BYTES {
            return Ok(QueueDelivery::Inline(body));
        }
        let key = self.offload_key(offload_prefix);
        let pointer = PoisonMessage {
            key_base64: None,
            value_base64: None,
            headers: None,
            offloaded: Some(OffloadedContent {
                bucket: bucket.to_string(),
                key: key.clone(),
                size: body.len(),
            }),
            ..self.clone()
        };
        let pointer_body = pointer.queue_body()?;
        let size = sqs_message_bytes(&pointer_body, &[]);
        if size > SQS_MAX_MESSAGE_BYTES {
            return Err(DeliveryError::PointerTooLarge {
                size,
                limit: SQS_MAX_MESSAGE_BYTES,
            });
        }
        Ok(QueueDelivery::Offload {
            key,
            full_body: body,
            pointer_body,
        })
    }
}

/// SQS accepts only #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF (SQS
/// developer guide, "Amazon SQS message quotas", message content). JSON escapes control characters
/// already; the non-characters U+FFFE/U+FFFF could still come from reason text.
pub fn queue_safe(body: String) -> String {
    if body.chars().all(|c| !matches!(c, '\u{FFFE}' | '\u{FFFF}')) {
        body
    } else {
        body.replace(['\u{FFFE}', '\u{FFFF}'], "\u{FFFD}")
    }
}

fn bounded_id(id: String) -> String {
    if id.len() <= SQS_ID_MAX_LEN {
        id
    } else {
        Uuid::new_v5(&Uuid::NAMESPACE_OID, id.as_bytes()).to_string()
    }
}
