//! The producer service: typed requests, their validation, and the ports it drives (an event
//! publisher and the write side of a schema registry).
//!
//! Every request is validated, simulated or inferred, and encoded in full *before* anything is
//! published, so a bad request (too large, an event that does not fit, an incompatible schema)
//! publishes nothing.
//!
//! Retries: the Kafka client has no idempotent producer, so a retried request can publish
//! duplicates. To keep that detectable, every record carries an `event-id` header derived from the
//! request's content and the record's position: the same request always yields the same ids (and,
//! for simulations with an explicit `start_time_ms`, byte-identical records), so duplicates from a
//! retry are recognisable downstream. A publish that fails part-way reports how many records were
//! delivered.
//!
//! [`request`] holds the typed requests and their bounds, [`service`] the loop that prepares and
//! publishes them, [`ports`] what it drives and [`fakes`] in-memory ports for tests; this file
//! holds the per-record step ([`record`]) and the summary.

#[cfg(any(test, feature = "testing"))]
pub mod fakes;
pub mod ports;
pub mod request;
pub mod service;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::payload::PayloadError;
use crate::schema::InferenceError;
use crate::simulate::ValueFormat;

pub use ports::{
    Delivery, EventPublisher, OutgoingRecord, PublishError, RegisteredVersion, RegistryWriteError,
    SchemaRegistryWriter,
};
pub use request::{limits, validate, BodyCompression, ProduceRequest, ProducerSettings};
pub use service::ProducerService;

// ---------------------------------------------------------------------------------------------
// Summary

/// The first and last offset written to one partition, and how many records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetRange {
    pub first: i64,
    pub last: i64,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaVersionUsed {
    pub schema_name: String,
    pub version_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_number: Option<i64>,
    pub newly_registered: bool,
}

/// What one request produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProduceSummary {
    pub action: String,
    pub format: ValueFormat,
    pub topic: String,
    /// Well-formed records per type: `sensor_reading`, `sales_event`, `inventory_event`, or the
    /// schema name of explicit events.
    pub produced: BTreeMap<String, u64>,
    /// Deliberately malformed records (store-event simulation), in total and per kind.
    pub malformed: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub malformed_by_kind: BTreeMap<String, u64>,
    pub schema_versions: Vec<SchemaVersionUsed>,
    /// Topic → partition → offsets written.
    pub partitions: BTreeMap<String, BTreeMap<i32, OffsetRange>>,
    /// Deterministic id of this request's content; each record's `event-id` derives from it.
    pub request_fingerprint: Uuid,
}

impl ProduceSummary {
    pub fn total_records(&self) -> u64 {
        self.produced.values().sum::<u64>() + self.malformed
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

#[derive(Debug, Error)]
pub enum ProduceError {
    /// The request is wrong; nothing was published.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("cannot infer a schema from the events: {0}")]
    Inference(#[from] InferenceError),
    #[error("cannot encode: {0}")]
    Encoding(String),
    #[error(transparent)]
    Registry(#[from] RegistryWriteError),
    #[error("schema {schema_name:?} has no version identical to the inferred one and auto_register is false; nothing was published")]
    SchemaNotRegistered { schema_name: String },
    #[error(transparent)]
    Publish(#[from] PublishError),
}

impl ProduceError {
    /// True when retrying the same request could succeed (the failure was in an outside system).
    pub fn is_transient(&self) -> bool {
        match self {
            ProduceError::Registry(RegistryWriteError::Port(p)) => p.is_transient(),
            ProduceError::Publish(p) => p.source.is_transient(),
            _ => false,
        }
    }
}

impl From<PayloadError> for ProduceError {
    fn from(value: PayloadError) -> Self {
        ProduceError::Encoding(value.to_string())
    }
}

fn invalid(message: impl Into<String>) -> ProduceError {
    ProduceError::InvalidRequest(message.into())
}

// ---------------------------------------------------------------------------------------------
// Service

/// Header carrying the deterministic per-record id.
pub const EVENT_ID_HEADER: &str = "event-id";

fn used(schema_name: &str, registered: RegisteredVersion) -> SchemaVersionUsed {
    SchemaVersionUsed {
        schema_name: schema_name.to_string(),
        version_id: registered.version_id,
        version_number: registered.version_number,
        newly_registered: registered.newly_registered,
    }
}

/// The deterministic id of record `index` of the request with `fingerprint`, without hashing per
/// record: the fingerprint marked as a version-8 (custom) UUID, with `index` XORed into its low
/// 62 bits, which RFC 9562 leaves free under the variant bits.
///
/// Unique within a request: for one fingerprint the map from index to id is injective (an XOR
/// with distinct values below 2^62; a request holds at most [`limits::MAX_SIMULATED_RECORDS`]).
/// Across requests, ids collide only if the two fingerprints agree on the 60 random bits above
/// the index and their low 62 bits differ by the XOR of two indices. The fingerprint is a UUIDv5
/// of the whole resolved request (122 bits of SHA-1); for requests of up to 2^17 records an XOR
/// of two indices takes fewer than 2^17 values, so two requests collide with probability at most
/// 2^-60 · 2^17 / 2^62 = 2^-105, and any two of N requests at most N² · 2^-106.
pub fn event_id(fingerprint: Uuid, index: usize) -> Uuid {
    const INDEX_BITS: u128 = (1 << 62) - 1;
    let base = uuid::Builder::from_custom_bytes(*fingerprint.as_bytes()).into_uuid();
    Uuid::from_u128(base.as_u128() ^ (index as u128 & INDEX_BITS))
}

/// The `event-id` header value of record `index`: the id, hyphenated, in lower case.
pub fn event_id_header(fingerprint: Uuid, index: usize) -> Vec<u8> {
    let mut buffer = Uuid::encode_buffer();
    event_id(fingerprint, index)
        .hyphenated()
        .encode_lower(&mut buffer)
        .as_bytes()
        .to_vec()
}

/// One outgoing record with its `event-id` header.
pub fn record(
    key: Option<&str>,
    value: Vec<u8>,
    timestamp_ms: i64,
    fingerprint: Uuid,
    index: usize,
) -> OutgoingRecord {
    OutgoingRecord {
        key: key.map(|k| k.as_bytes().to_vec()),
        value,
        headers: vec![(EVENT_ID_HEADER.to_string(), event_id_header(fingerprint, index))],
        timestamp_ms,
    }
}

fn offset_ranges(deliveries: &[Delivery]) -> BTreeMap<i32, OffsetRange> {
    let mut ranges: BTreeMap<i32, OffsetRange> = BTreeMap::new();
    for d in deliveries {
        ranges
            .entry(d.partition)
            .and_modify(|r| {
                r.first = r.first.min(d.offset);
                r.last = r.last.max(d.offset);
                r.count += 1;
            })
            .or_insert(OffsetRange {
                first: d.offset,
                last: d.offset,
                count: 1,
            });
    }
    ranges
}
